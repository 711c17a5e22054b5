//! Compact JSON text of a message, written by hand: the same bytes `serde_json` writes, for
//! less work on the request path.
//!
//! Every proxied call is written twice (to the upstream and to the client), and most of what
//! is written is strings: `_meta` keys such as `io.modelcontextprotocol/protocolVersion`, tool
//! names, text content. `serde_json` looks up each byte of a string in its escape table; here
//! a string is searched for the bytes JSON must escape (`"`, `\` and the controls below
//! U+0020) eight bytes at a time, and copied in runs between them. Numbers other than
//! integers go through `serde_json` itself, so their shortest round-trip form is its own.

use serde_json::{Number, Value};

use super::word;

/// Appends `value` as compact JSON.
pub fn value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => number(out, n),
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                self::value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, key);
                out.push(':');
                self::value(out, item);
            }
            out.push('}');
        }
    }
}

/// Appends an integer.
pub fn integer(out: &mut String, n: i64) {
    out.push_str(itoa::Buffer::new().format(n));
}

fn number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64() {
        integer(out, i);
    } else if let Some(u) = n.as_u64() {
        out.push_str(itoa::Buffer::new().format(u));
    } else {
        // A float: serde_json's shortest form that reads back as the same number.
        out.push_str(&serde_json::to_string(n).unwrap_or_default());
    }
}

/// Appends `text` as a JSON string: quoted, with `"`, `\` and control characters escaped
/// the way `serde_json` escapes them (`\n` and the like by name, the rest as `\u00XX`).
pub fn string(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push('"');
    let mut start = 0;
    // Every byte to escape is ASCII, so each cut falls on a character boundary.
    while let Some(at) = next_escape(bytes, start) {
        out.push_str(&text[start..at]);
        escape(out, bytes[at]);
        start = at + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

fn escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let named = match byte {
        b'"' => '"',
        b'\\' => '\\',
        0x08 => 'b',
        0x0c => 'f',
        b'\n' => 'n',
        b'\r' => 'r',
        b'\t' => 't',
        _ => {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
            return;
        }
    };
    out.push('\\');
    out.push(named);
}

/// The index of the first byte at or after `from` that JSON must escape: eight bytes at a
/// time (see [`word`]), then the last few one by one.
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut rest = &bytes[from.min(bytes.len())..];
    let mut at = from;
    while let Some((eight, tail)) = rest.split_first_chunk::<8>() {
        let w = word::of(eight);
        let marks = word::below(w, 0x20) | word::equal(w, b'"') | word::equal(w, b'\\');
        if marks != 0 {
            return Some(at + word::first(marks));
        }
        rest = tail;
        at += 8;
    }
    rest.iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(v: &Value) -> String {
        let mut out = String::new();
        value(&mut out, v);
        out
    }

    #[test]
    fn every_byte_below_0x80_in_every_position_is_written_as_serde_json_writes_it() {
        // Each ASCII character at each offset of a word and across a word's end, alone and
        // among others that need escaping, in strings of every length up to 24.
        for c in 0u8..0x80 {
            let c = char::from(c);
            for len in 1..24 {
                for at in 0..len {
                    let mut s: String = "abcdefghijklmnopqrstuvwx"[..len].to_owned();
                    s.replace_range(at..at + 1, &c.to_string());
                    let v = Value::String(s.clone());
                    assert_eq!(text(&v), serde_json::to_string(&v).unwrap(), "{s:?}");
                    let mixed = Value::String(format!("{s}\"{s}\\\n{s}"));
                    assert_eq!(text(&mixed), serde_json::to_string(&mixed).unwrap());
                }
            }
        }
    }

    #[test]
    fn non_ascii_text_passes_unescaped() {
        for s in [
            "é",
            "naïve \u{7f} \u{80}\u{9f}",
            "日本語のテキスト\"で\"す",
            "🙂🙂🙂🙂\\",
            "\u{2028}\u{2029}",
        ] {
            let v = Value::String(s.to_owned());
            assert_eq!(text(&v), serde_json::to_string(&v).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn values_of_every_kind_match_serde_json() {
        let v = json!({
            "null": null, "t": true, "f": false,
            "ints": [0, -1, 1, i64::MIN, i64::MAX, u64::MAX],
            "floats": [0.1, -0.0, 1e-7, 1.5e300, 123456789.12345678, 2.0],
            "nested": {"a": [[], {}, [{"b": "c\u{1}"}]], "": ""},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"},
        });
        assert_eq!(text(&v), serde_json::to_string(&v).unwrap());
    }
}
