//! Text from outside (an upstream's error body, its stderr, a client's name) made safe to put
//! in a log line, an error message or `/readyz`.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use super::word;

/// `text` with control characters escaped: `\n`, `\r`, `\t`, `\0` by name, others as
/// `\u{..}`. A newline from an upstream can then not start a line of its own in a text log
/// (a forged `INFO manifold::audit` line), nor NUL or escape sequences reach a terminal.
/// Everything else, backslashes and non-ASCII letters included, is kept as it is. Idempotent
/// on its own output, which has no control characters.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let _ = Printable(&mut out).write_str(text);
    Cow::Owned(out)
}

/// A writer that passes text on as [`printable`] would return it, piece by piece: for
/// formatting a value straight into a log line without a copy of it first.
pub struct Printable<'a, W: fmt::Write + ?Sized>(pub &'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Printable<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Control characters are U+0000–U+001F, U+007F, and U+0080–U+009F, which UTF-8
        // writes as 0xC2 0x80–0x9F: text without those bytes passes on unexamined.
        if !may_hold_controls(text.as_bytes()) {
            return self.0.write_str(text);
        }
        let mut rest = text;
        while let Some(at) = rest.find(char::is_control) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                '\0' => self.0.write_str("\\0")?,
                c => write!(self.0, "{}", c.escape_unicode())?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// Whether `text` has a byte below 0x20, 0x7f or 0xc2. Every value of every text log line
/// is scanned: eight bytes at a time, a few operations for the eight.
fn may_hold_controls(text: &[u8]) -> bool {
    let controls = |eight: &[u8; 8]| {
        let w = word::of(eight);
        word::below(w, 0x20) | word::equal(w, 0x7f) | word::equal(w, 0xc2) != 0
    };
    let mut rest = text;
    while let Some((eight, tail)) = rest.split_first_chunk::<8>() {
        if controls(eight) {
            return true;
        }
        rest = tail;
    }
    match text.last_chunk::<8>() {
        // The last eight bytes: the few left, and some already read.
        Some(eight) if !rest.is_empty() => controls(eight),
        _ => rest.iter().any(|b| *b < 0x20 || *b == 0x7f || *b == 0xc2),
    }
}

#[cfg(test)]
mod tests {
    use super::{may_hold_controls, printable};

    #[test]
    fn every_byte_of_every_length_is_scanned() {
        for len in 0..40 {
            let text = vec![b'.'; len];
            assert!(!may_hold_controls(&text));
            for at in 0..len {
                for b in [0, b'\n', 0x1f, 0x7f, 0xc2] {
                    let mut text = text.clone();
                    text[at] = b;
                    assert!(may_hold_controls(&text), "{len} {at} {b}");
                }
                let mut text = text.clone();
                text[at] = 0xc3;
                assert!(!may_hold_controls(&text), "{len} {at}");
            }
        }
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(printable("plain ünïcode \\ text"), "plain ünïcode \\ text");
        assert_eq!(
            printable("a\nb\r\tc\0d\u{1b}[31m\u{7f}\u{85}"),
            "a\\nb\\r\\tc\\0d\\u{1b}[31m\\u{7f}\\u{85}"
        );
        let once = printable("x\ny").into_owned();
        assert_eq!(printable(&once), once);
    }
}
