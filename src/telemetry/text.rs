//! The text log format's fields: `name=value`, the message bare, separated by spaces, with
//! control characters in every value escaped ([`Printable`]). Values quote upstreams and
//! clients (an error body, a stderr line), and a raw newline in one would start a forged log
//! line. JSON logs need no such care: serde escapes every string.
//!
//! The audit line of every tool call goes through here. Its pieces (a space, a name, `=`, a
//! value or part of one) are gathered on the stack and reach the line in one write: the
//! line's writer is a few dynamic calls away, which cost more than copying a piece. Numbers
//! and booleans skip `core::fmt` (and the escaping, which they never need) for the same
//! text `Debug` writes.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};

use super::clock;
use super::stderr::Stderr;
use crate::protocol::text::Printable;

/// The [`FormatFields`] of the text format.
pub struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Fields::new(Gather {
            line: writer,
            bytes: [0; GATHER],
            len: 0,
        });
        fields.record(&mut visitor);
        visitor.result?;
        visitor.writer.flush()
    }
}

/// Writes fields one by one into `writer`: the visitor of [`TextFields`], and what a
/// [`Line`] writes with.
struct Fields<W> {
    writer: W,
    first: bool,
    result: fmt::Result,
}

/// The most bytes [`Gather`] holds; an audit line's fields are about 200.
const GATHER: usize = 256;

/// Text on its way into the line, gathered until [`GATHER`] bytes are there or the fields
/// end; a piece longer than that goes straight in.
struct Gather<'writer> {
    line: Writer<'writer>,
    bytes: [u8; GATHER],
    len: usize,
}

impl Gather<'_> {
    fn flush(&mut self) -> fmt::Result {
        // Only whole strs come in, so this is one.
        let text = std::str::from_utf8(&self.bytes[..self.len]).map_err(|_| fmt::Error)?;
        self.line.write_str(text)?;
        self.len = 0;
        Ok(())
    }
}

impl fmt::Write for Gather<'_> {
    #[inline]
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if text.len() > GATHER - self.len {
            self.flush()?;
            if text.len() > GATHER {
                return self.line.write_str(text);
            }
        }
        self.bytes[self.len..self.len + text.len()].copy_from_slice(text.as_bytes());
        self.len += text.len();
        Ok(())
    }

    #[inline]
    fn write_char(&mut self, c: char) -> fmt::Result {
        // The separators and quotes the fields are written with are ASCII: one byte in.
        if c.is_ascii() && self.len < GATHER {
            self.bytes[self.len] = c as u8;
            self.len += 1;
            return Ok(());
        }
        self.write_str(c.encode_utf8(&mut [0; 4]))
    }
}

impl<W: fmt::Write> Fields<W> {
    fn new(writer: W) -> Self {
        Fields {
            writer,
            first: true,
            result: Ok(()),
        }
    }

    fn name(&mut self, name: &str) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        if name != "message" {
            self.writer
                .write_str(name.strip_prefix("r#").unwrap_or(name))?;
            self.writer.write_char('=')?;
        }
        Ok(())
    }

    fn write(&mut self, field: &str, value: &dyn fmt::Debug) -> fmt::Result {
        self.name(field)?;
        write!(Printable(&mut self.writer), "{value:?}")
    }

    /// Text as `%` records it: `Display` of a `str` writes it whole, so only the escaping is
    /// left.
    fn write_display(&mut self, field: &str, value: &str) -> fmt::Result {
        self.name(field)?;
        Printable(&mut self.writer).write_str(value)
    }

    /// Text without control characters (a number, a boolean), written as it is.
    fn write_plain(&mut self, field: &str, text: &str) -> fmt::Result {
        self.name(field)?;
        self.writer.write_str(text)
    }

    fn write_f64(&mut self, field: &str, value: f64) -> fmt::Result {
        match shortest(value, &mut ryu::Buffer::new()) {
            Some(text) => self.write_plain(field, text),
            None => self.write(field, &value),
        }
    }

    /// A string as `Debug` writes it (quoted, escaped): plain printable ASCII without
    /// quotes or backslashes reads the same, so it is written as it is.
    fn write_str(&mut self, field: &str, value: &str) -> fmt::Result {
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

impl<W: fmt::Write> Visit for Fields<W> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self.write(field.name(), value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = self.write_str(field.name(), value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.result.is_ok() {
            self.result = self.write_plain(field.name(), itoa::Buffer::new().format(value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.result.is_ok() {
            self.result = self.write_plain(field.name(), itoa::Buffer::new().format(value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.result.is_ok() {
            self.result = self.write_plain(field.name(), if value { "true" } else { "false" });
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.result.is_ok() {
            self.result = self.write_f64(field.name(), value);
        }
    }
}

/// One line of the text log, written to stderr without an event: for a line logged on every
/// request (the audit line), where tracing's dispatch and its `Full` format cost several
/// times what the line itself does. It reads exactly as the log layer writes the same event:
/// the time, the level, the target, then the fields in order, each written by [`Fields`].
///
/// [`Line::start`] gives one only when the line would come out that way: the installed
/// subscriber logs this text format to stderr without colours (its log layer's writer is a
/// plain [`LogWriter`]) and no span is current (the layer would write the spans it sees
/// first). Otherwise the caller logs the event as usual. The caller first asks
/// `tracing::enabled!` for the event, so the log's filter still decides; a line written here
/// goes to the log alone, so it suits only events no other layer takes.
pub struct Line {
    fields: Fields<String>,
}

/// Room for a line's text up front: an audit line is about 250 bytes.
const LINE: usize = 320;

impl Line {
    pub fn start(target: &str, level: tracing::Level) -> Option<Line> {
        let plain = tracing::dispatcher::get_default(|log| {
            log.downcast_ref::<LogWriter>().is_some_and(|w| w.plain)
                && log.current_span().id().is_none()
        });
        plain.then(|| Line::begin(target, level))
    }

    /// The line's head, as `Format<Full, Timestamp>` writes it without colours.
    pub(crate) fn begin(target: &str, level: tracing::Level) -> Line {
        let mut text = String::with_capacity(LINE);
        if clock::Timestamp
            .format_time(&mut Writer::new(&mut text))
            .is_err()
        {
            text.push_str("<unknown time>");
        }
        text.push(' ');
        text.push_str(match level {
            tracing::Level::TRACE => "TRACE",
            tracing::Level::DEBUG => "DEBUG",
            tracing::Level::INFO => " INFO",
            tracing::Level::WARN => " WARN",
            tracing::Level::ERROR => "ERROR",
        });
        text.push(' ');
        text.push_str(target);
        text.push_str(": ");
        Line {
            fields: Fields::new(text),
        }
    }

    /// The event's message: its text, escaped, without a name.
    pub fn message(&mut self, text: &str) -> &mut Self {
        self.display("message", text)
    }

    /// A field recorded as a `&str` (`name = value`): quoted and escaped as `Debug` writes it.
    pub fn str(&mut self, name: &str, value: &str) -> &mut Self {
        let _ = self.fields.write_str(name, value);
        self
    }

    /// A field recorded with `%` (`name = %value`): as it is, control characters escaped.
    pub fn display(&mut self, name: &str, value: &str) -> &mut Self {
        let _ = self.fields.write_display(name, value);
        self
    }

    pub fn f64(&mut self, name: &str, value: f64) -> &mut Self {
        let _ = self.fields.write_f64(name, value);
        self
    }

    pub fn i64(&mut self, name: &str, value: i64) -> &mut Self {
        let _ = self
            .fields
            .write_plain(name, itoa::Buffer::new().format(value));
        self
    }

    /// The whole line, newline included.
    pub(crate) fn finish(self) -> String {
        let mut text = self.fields.writer;
        text.push('\n');
        text
    }

    /// Writes the line out where the log layer writes its lines.
    pub fn write(self) {
        let _ = std::io::Write::write_all(&mut Stderr, self.finish().as_bytes());
    }
}

/// The log layer's writer, both formats: each line to [`Stderr`]. `plain` marks the text
/// format without colours, whose lines a [`Line`] may write itself.
#[derive(Debug, Clone, Copy)]
pub struct LogWriter {
    pub plain: bool,
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr
    }
}

/// `value` as `{:?}` writes it, written by ryu where the two must agree; `None` elsewhere.
///
/// Both write the shortest decimal that reads back as `value` and, of those, the one
/// closest to it: the same digits, unless two are equally close, a tie each breaks its own
/// way (ryu to the even digit, `{:?}` up, in Rust 1.95; neither promises a rule), so
/// [`may_tie`] leaves those values to `{:?}`. Both lay the digits out the same
/// way (`0.0012`, `123.45`, `100.0`) from 1e-4 up to 1e16, outside of which `{:?}` writes
/// an exponent (`1e-5`, `1e16`) where ryu may not; zero, NaN and the infinities are outside
/// too.
fn shortest(value: f64, buffer: &mut ryu::Buffer) -> Option<&str> {
    let magnitude = value.abs();
    if !(1e-4..1e16).contains(&magnitude) || may_tie(magnitude) {
        return None;
    }
    Some(buffer.format_finite(value))
}

/// Whether two shortest decimals could lie equally close to `value` (finite, positive).
///
/// Such a tie puts `value` exactly halfway between two decimals of n digits, so `value`
/// itself has n + 1 significant digits; and a shortest decimal never needs more than 17.
/// So only a `value` of at most 18 significant digits can tie, and not an integer either
/// (below 1e16 the shortest decimal of an integer is itself). `value` is odd × 2^-k, that
/// is odd × 5^k / 10^k, whose significant digits are those of odd × 5^k.
fn may_tie(value: f64) -> bool {
    let bits = value.to_bits();
    let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
    // value = mantissa × 2^exponent (a normal number: the range of `shortest` has only those)
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1075;
    let zeros = mantissa.trailing_zeros();
    let odd = mantissa >> zeros;
    let k = -(exponent + zeros as i32);
    // 5^27 alone has 19 digits.
    (1..27).contains(&k) && u128::from(odd) * 5u128.pow(k as u32) < 10u128.pow(18)
}

/// The lines `emit` logs, without time, through [`TextFields`] (for tests that compare what
/// is written with what the log layer writes).
#[cfg(test)]
pub(crate) fn logged(emit: impl FnOnce()) -> String {
    use tracing_subscriber::layer::SubscriberExt;

    let lines = Lines::default();
    let out = lines.clone();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(move || out.clone())
        .with_ansi(false)
        .without_time()
        .fmt_fields(TextFields);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
    let text = lines.0.lock().map(|l| l.clone()).unwrap_or_default();
    String::from_utf8(text).unwrap_or_default()
}

/// A writer a test can read back.
#[cfg(test)]
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut lines) = self.0.lock() {
            lines.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tracing_subscriber::layer::SubscriberExt;

    use super::{TextFields, logged, may_tie, shortest};

    #[test]
    fn fields_are_written_as_name_value_with_control_characters_escaped() {
        let text = logged(|| {
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
        assert_eq!(
            text,
            " INFO t: said hi\\tthere who=alice\\r kind=\"tool\" quoted=\"say \\\"hi\\\"\\\\\" \
             accented=\"é\" type=3 ok=true ms=1.5 \
             body=line one\\nINFO forged\\u{1b}[31m\n"
        );
    }

    /// Values from all over the range of f64, and the durations of the audit log.
    fn floats() -> Vec<f64> {
        let mut rng =
            <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0x9e37_79b9_7f4a_7c15_u64);
        let mut next = move || rand::Rng::random::<u64>(&mut rng);
        let mut values = vec![
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            1.0,
            -1.5,
            100.0,
            0.1 + 0.2,
            1e-5,
            1e-4,
            1e-4_f64.next_down(),
            1e-4_f64.next_up(),
            1e15,
            1e16,
            1e16_f64.next_down(),
            9_007_199_254_740_993.0,
            123_456_789.125,
            // Halfway between two shortest decimals: left to `{:?}`.
            7_266_621.0 / 32_768.0,
            613.0 / 1_048_576.0,
        ];
        for i in 0..20_000u32 {
            values.push(f64::from_bits(next()));
            // Normal numbers around the range where ryu writes them.
            let exponent = 1023 - 16 + next() % 72;
            values.push(f64::from_bits(exponent << 52 | next() >> 12));
            // The audit log's duration_ms, as it is computed: a few ns to days.
            let nanos = next() % 10u64.pow(1 + i % 14);
            values.push(Duration::from_nanos(nanos).as_secs_f64() * 1000.0);
            values.push(Duration::from_nanos(u64::from(i)).as_secs_f64() * 1000.0);
            values.push(f64::from(i) / 1000.0);
            // Few significant bits, hence few digits: where ties are.
            let odd = (next() >> (12 + next() % 52)) | 1;
            values.push(odd as f64 / 2f64.powi((next() % 60) as i32));
        }
        values
    }

    #[test]
    fn floats_are_written_as_debug_writes_them() {
        let values = floats();
        let mut buffer = ryu::Buffer::new();
        let mut fast = 0;
        for value in &values {
            if let Some(text) = shortest(*value, &mut buffer) {
                assert_eq!(text, format!("{value:?}"), "{:#x}", value.to_bits());
                fast += 1;
            }
        }
        // Most durations take the fast path; a few through the layer, either path.
        assert!(fast > values.len() / 2, "{fast} of {}", values.len());
        let durations = (1..100_000u64)
            .map(|n| Duration::from_nanos(n * 7_919).as_secs_f64() * 1000.0)
            .filter(|ms| shortest(*ms, &mut buffer).is_some())
            .count();
        assert!(durations > 99_000, "{durations}");
        for value in values.iter().take(2_000) {
            let line = logged(|| tracing::info!(target: "t", ms = *value));
            assert_eq!(line, format!(" INFO t: ms={value:?}\n"));
        }
    }

    #[test]
    fn only_values_of_few_digits_may_tie() {
        // 221.759674072265625, halfway between ...562 and ...563: ryu rounds to the even
        // digit, `{:?}` (Rust 1.95) up.
        let tie = 7_266_621.0 / 32_768.0;
        assert!(may_tie(tie));
        assert_eq!(shortest(tie, &mut ryu::Buffer::new()), None);
        assert!(may_tie(0.5));
        assert!(!may_tie(1.0), "an integer");
        assert!(!may_tie(1e15));
        assert!(!may_tie(0.1), "0.1000000000000000055511151231257827...");
        assert!(!may_tie(
            Duration::from_nanos(1_234_567).as_secs_f64() * 1000.0
        ));
    }

    #[test]
    fn integers_and_booleans_are_written_as_debug_writes_them() {
        let line = logged(|| {
            tracing::info!(
                target: "t",
                a = i64::MIN,
                b = i64::MAX,
                c = u64::MAX,
                d = 0u64,
                e = -1i32,
                f = 255u8,
                g = Some(-32602),
                h = None::<i32>,
                i = true,
                j = false,
                k = 7u128,
                "m"
            )
        });
        let expected = format!(
            " INFO t: m a={:?} b={:?} c={:?} d={:?} e={:?} f={:?} g={:?} i={:?} j={:?} k={:?}\n",
            i64::MIN,
            i64::MAX,
            u64::MAX,
            0u64,
            -1i32,
            255u8,
            -32602,
            true,
            false,
            7u128
        );
        assert_eq!(line, expected);
        assert_eq!(
            line,
            " INFO t: m a=-9223372036854775808 b=9223372036854775807 \
             c=18446744073709551615 d=0 e=-1 f=255 g=-32602 i=true j=false k=7\n"
        );
    }

    /// A line goes straight out only under a log layer that writes plain text to stderr, and
    /// outside any span that layer would write first.
    #[test]
    fn a_line_is_written_directly_only_where_the_log_layer_would_write_it_so() {
        use super::{Line, LogWriter};
        use tracing_subscriber::Layer as _;

        let layer = |plain| {
            tracing_subscriber::fmt::layer()
                .with_writer(LogWriter { plain })
                .with_ansi(false)
                .fmt_fields(TextFields)
                .with_filter(tracing_subscriber::EnvFilter::new("debug"))
        };
        let start = || Line::start("t", tracing::Level::INFO).is_some();
        let plain = || tracing_subscriber::registry().with(layer(true));
        assert!(tracing::subscriber::with_default(plain(), start));
        assert!(!tracing::subscriber::with_default(
            tracing_subscriber::registry().with(layer(false)),
            start
        ));
        assert!(!tracing::subscriber::with_default(
            tracing::subscriber::NoSubscriber::default(),
            start
        ));
        // Another writer (a test's, a file's): the event goes its way.
        assert!(!tracing::subscriber::with_default(
            tracing_subscriber::registry().with(tracing_subscriber::fmt::layer()),
            start
        ));
        tracing::subscriber::with_default(plain(), || {
            let span = tracing::info_span!("request");
            let _inside = span.enter();
            assert!(!start(), "the layer would write the span's name first");
        });
        tracing::subscriber::with_default(plain(), || {
            assert!(start(), "the span has closed");
        });
    }

    #[test]
    fn a_lines_head_is_the_full_formats() {
        for level in [
            tracing::Level::TRACE,
            tracing::Level::DEBUG,
            tracing::Level::INFO,
            tracing::Level::WARN,
            tracing::Level::ERROR,
        ] {
            let mut line = super::Line::begin("a::b", level);
            line.message("m").str("k", "v");
            let direct = line.finish();
            let event = logged(|| match level {
                tracing::Level::TRACE => tracing::trace!(target: "a::b", k = "v", "m"),
                tracing::Level::DEBUG => tracing::debug!(target: "a::b", k = "v", "m"),
                tracing::Level::INFO => tracing::info!(target: "a::b", k = "v", "m"),
                tracing::Level::WARN => tracing::warn!(target: "a::b", k = "v", "m"),
                tracing::Level::ERROR => tracing::error!(target: "a::b", k = "v", "m"),
            });
            assert_eq!(direct.split_once(' ').unwrap().1, event);
        }
    }

    /// Past what [`super::Gather`] holds: pieces longer than it, and many short ones, some
    /// escaped, in the same line.
    #[test]
    fn long_lines_are_written_whole_and_in_order() {
        let long = "x".repeat(300);
        let escaped = "\n".repeat(150);
        let line = logged(|| {
            for round in 0..3 {
                tracing::info!(
                    target: "t",
                    round,
                    a = %long,
                    b = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz",
                    c = %escaped,
                    d = 12345.678,
                    e = long.as_str(),
                    f = %"é".repeat(100),
                    "{}", "y".repeat(250)
                );
            }
        });
        let one = |round| {
            format!(
                " INFO t: {} round={round} a={long} \
                 b=\"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\" \
                 c={} d=12345.678 e=\"{long}\" f={}\n",
                "y".repeat(250),
                "\\n".repeat(150),
                "é".repeat(100),
            )
        };
        assert_eq!(line, format!("{}{}{}", one(0), one(1), one(2)));
    }
}
