//! Text from outside (an upstream's error body, its stderr, a client's name) made safe to put
//! in a log line, an error message or `/readyz`.

use std::borrow::Cow;

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
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::printable;

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
