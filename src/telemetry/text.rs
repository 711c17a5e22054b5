//! The text log format's fields: `name=value`, the message bare, separated by spaces, with
//! control characters in every value escaped ([`Printable`]). Values quote upstreams and
//! clients (an error body, a stderr line), and a raw newline in one would start a forged log
//! line. JSON logs need no such care: serde escapes every string.
//!
//! Written straight into the line, value by value: the audit line of every tool call goes
//! through here, so a field costs no copy of its text first.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

use crate::protocol::text::Printable;

/// The [`FormatFields`] of the text format.
pub struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Fields {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Fields<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_> {
    fn name(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        let name = field.name();
        if name != "message" {
            self.writer
                .write_str(name.strip_prefix("r#").unwrap_or(name))?;
            self.writer.write_char('=')?;
        }
        Ok(())
    }

    fn write(&mut self, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
        self.name(field)?;
        write!(Printable(&mut self.writer), "{value:?}")
    }

    /// A string as `Debug` writes it (quoted, escaped): plain printable ASCII without
    /// quotes or backslashes reads the same, so it is written as it is.
    fn write_str(&mut self, field: &Field, value: &str) -> fmt::Result {
        let plain = value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if !plain {
            return self.write(field, &value);
        }
        self.name(field)?;
        self.writer.write_char('"')?;
        self.writer.write_str(value)?;
        self.writer.write_char('"')
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self.write(field, value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = self.write_str(field, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::TextFields;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn fields_are_written_as_name_value_with_control_characters_escaped() {
        let lines = Lines::default();
        let out = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(TextFields);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let body = "line one\nINFO forged\u{1b}[31m";
            tracing::info!(
                target: "t",
                who = %"alice\r",
                kind = "tool",
                quoted = "say \"hi\"\\",
                accented = "é",
                r#type = 3,
                ok = true,
                ms = 1.5,
                body = %body,
                "said {}", "hi\tthere"
            );
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            " INFO t: said hi\\tthere who=alice\\r kind=\"tool\" quoted=\"say \\\"hi\\\"\\\\\" \
             accented=\"é\" type=3 ok=true ms=1.5 \
             body=line one\\nINFO forged\\u{1b}[31m\n"
        );
    }
}
