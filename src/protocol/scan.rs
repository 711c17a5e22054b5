//! Walking valid JSON text by its structure, eight bytes at a time: how deep it nests, and
//! the member names of its top level, without building any of it.
//!
//! For text that passes through the gateway unparsed (results, a tool call's arguments),
//! which may be megabytes. Only brackets and quotes matter outside strings, and only quotes
//! and backslashes inside them; the bytes between are skipped a word at a time
//! ([`super::word`]). The text must be valid JSON (as serde_json handed it over): these
//! functions check nothing else.

use std::borrow::Cow;
use std::ops::ControlFlow;

use super::word;

/// `text` on one line: line breaks turned to spaces. In valid JSON a raw CR or LF can only be
/// whitespace between tokens (strings escape them), so the value is the same; text that
/// passes through must not break the line framing of stdio peers.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_none() {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.replace(['\n', '\r'], " "))
}

/// Whether `text` nests deeper than `max` levels of arrays and objects.
pub fn nests_deeper(text: &str, max: usize) -> bool {
    // Each level takes two bytes at least: shorter text cannot be too deep.
    text.len() > 2 * max && outline(text, max).is_none()
}

/// The member names of the object `text` is, each once, in the order a parsed map keeps
/// them (where a name first appears). Empty for anything but an object.
pub fn top_level_names(text: &str) -> Vec<String> {
    outline(text, usize::MAX).unwrap_or_default()
}

/// In one pass: `None` if `text` nests deeper than `max` levels, else its top-level member
/// names (as [`top_level_names`]).
pub fn outline(text: &str, max: usize) -> Option<Vec<String>> {
    let bytes = text.as_bytes();
    let mut names: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut object = false;
    let walked = walk(bytes, |token| {
        match token {
            Token::Open => {
                if depth == 0 {
                    object = bytes[text.len() - text.trim_start().len()] == b'{';
                }
                depth += 1;
                if depth > max {
                    return ControlFlow::Break(());
                }
            }
            Token::Close => depth = depth.saturating_sub(1),
            // A string at the top level of an object, followed by a colon, is a name.
            Token::String {
                start,
                end,
                escaped,
            } if depth == 1 && object => {
                let after = bytes[end..].iter().find(|b| !b.is_ascii_whitespace());
                if after == Some(&b':') {
                    let name = if escaped {
                        serde_json::from_str::<String>(&text[start - 1..end]).unwrap_or_default()
                    } else {
                        text[start..end - 1].to_owned()
                    };
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            Token::String { .. } => {}
        }
        ControlFlow::Continue(())
    });
    walked.is_continue().then_some(names)
}

/// A top-level member of an object's text, as [`members`] finds it.
pub struct Member<'t> {
    /// The name as written between its quotes (escapes left as they are).
    pub name: &'t str,
    /// Whether the name has escapes, so `name` is not its value.
    pub escaped: bool,
    /// The text from the member's value to the end of the object's text.
    pub rest: &'t str,
}

/// Calls `f` for each top-level member of the object `text` is, in order, names repeated
/// as written; for anything but an object, never. One pass, as [`outline`].
pub fn members<'t>(text: &'t str, mut f: impl FnMut(Member<'t>)) {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'{') {
        return;
    }
    let mut depth = 0usize;
    let _ = walk(bytes, |token| {
        match token {
            Token::Open => depth += 1,
            Token::Close => depth = depth.saturating_sub(1),
            Token::String {
                start,
                end,
                escaped,
            } if depth == 1 => {
                // A string at the top level followed by a colon is a name (a value is
                // followed by a comma or the closing brace).
                let mut after = bytes[end..].iter().enumerate();
                if let Some((colon, b':')) = after.find(|(_, b)| !b.is_ascii_whitespace()) {
                    let from = end + colon + 1;
                    let value = bytes[from..]
                        .iter()
                        .position(|b| !b.is_ascii_whitespace())
                        .map_or(text.len(), |at| from + at);
                    f(Member {
                        name: &text[start..end - 1],
                        escaped,
                        rest: &text[value..],
                    });
                }
            }
            Token::String { .. } => {}
        }
        ControlFlow::Continue(())
    });
}

enum Token {
    /// `{` or `[`.
    Open,
    /// `}` or `]`.
    Close,
    /// A string: its content is `start..end - 1` (`end` is past the closing quote).
    String {
        start: usize,
        end: usize,
        escaped: bool,
    },
}

/// Calls `f` for each bracket and string of `bytes`, in order, until it breaks.
#[inline(always)]
fn walk(bytes: &[u8], mut f: impl FnMut(Token) -> ControlFlow<()>) -> ControlFlow<()> {
    let mut i = 0;
    while let Some(at) = next(bytes, i, structural) {
        i = at + 1;
        let token = match bytes[at] {
            b'"' => {
                let start = i;
                let mut escaped = false;
                loop {
                    let Some(q) = next(bytes, i, quote_or_backslash) else {
                        return ControlFlow::Continue(());
                    };
                    if bytes[q] == b'\\' {
                        escaped = true;
                        i = q + 2;
                        continue;
                    }
                    i = q + 1;
                    break;
                }
                Token::String {
                    start,
                    end: i,
                    escaped,
                }
            }
            b'{' | b'[' => Token::Open,
            _ => Token::Close,
        };
        f(token)?;
    }
    ControlFlow::Continue(())
}

/// Marks `{ } [ ] "`: `[` and `]` are `{` and `}` without the 0x20 bit.
#[inline(always)]
fn structural(w: u64) -> u64 {
    let folded = w | (u64::from_le_bytes([0x20; 8]));
    word::equal(folded, b'{') | word::equal(folded, b'}') | word::equal(w, b'"')
}

#[inline(always)]
fn quote_or_backslash(w: u64) -> u64 {
    word::equal(w, b'"') | word::equal(w, b'\\')
}

/// The index of the first byte at or after `from` that `marks` marks.
#[inline(always)]
fn next(bytes: &[u8], from: usize, marks: impl Fn(u64) -> u64) -> Option<usize> {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let m = marks(word::of(chunk.try_into().expect("eight bytes")));
        if m != 0 {
            return Some(i + word::first(m));
        }
        i += 8;
    }
    let rest = bytes.get(i..).filter(|rest| !rest.is_empty())?;
    // The last word of the text, shifted down to start at `i` (spaces above the end), when
    // the text has eight bytes: a short text's many last words are then read, not copied.
    let w = match bytes.len().checked_sub(8) {
        Some(last) => {
            let shift = 8 * (i - last) as u32;
            let spaces = u64::from_le_bytes([b' '; 8]);
            let tail = word::of(bytes[last..].try_into().expect("eight bytes"));
            tail >> shift | spaces << (64 - shift)
        }
        None => {
            let mut tail = [b' '; 8];
            tail[..rest.len()].copy_from_slice(rest);
            word::of(&tail)
        }
    };
    let m = marks(w);
    (m != 0).then(|| i + word::first(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// How deep `value` nests (a scalar is 0).
    fn depth(value: &Value) -> usize {
        match value {
            Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Random JSON, with strings full of what could fool a scanner.
    fn random(rng: &mut rand::rngs::StdRng, level: usize) -> Value {
        use rand::Rng;
        let strings = [
            "",
            "plain",
            "q\"uote",
            "back\\slash",
            "{[",
            "]}",
            "\\\"",
            "é😀",
            "a\u{1}b",
            ":",
            "\\",
        ];
        let pick = |rng: &mut rand::rngs::StdRng| strings[rng.random_range(0..strings.len())];
        match (level, rng.random_range(0..6)) {
            (0, _) | (_, 0) => json!(rng.random_range(-5..5)),
            (_, 1) => json!(pick(rng)),
            (_, 2) => Value::Null,
            (_, 3) => Value::Array(
                (0..rng.random_range(0..4))
                    .map(|_| random(rng, level - 1))
                    .collect(),
            ),
            _ => {
                let mut map = serde_json::Map::new();
                for _ in 0..rng.random_range(0..5) {
                    map.insert(pick(rng).to_owned(), random(rng, level - 1));
                }
                Value::Object(map)
            }
        }
    }

    #[test]
    fn depth_and_names_agree_with_a_parser_on_random_json() {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0x5ca7);
        for _ in 0..3000 {
            let value = random(&mut rng, 7);
            let d = depth(&value);
            let names: Vec<String> = match &value {
                Value::Object(map) => map.keys().cloned().collect(),
                _ => Vec::new(),
            };
            for text in [
                value.to_string(),
                serde_json::to_string_pretty(&value).unwrap(),
            ] {
                for max in [0, 1, 2, 3, d.saturating_sub(1), d, d + 1] {
                    assert_eq!(nests_deeper(&text, max), d > max, "{max}: {text}");
                }
                assert_eq!(top_level_names(&text), names, "{text}");
            }
        }
    }

    #[test]
    fn names_are_read_once_unescaped_and_only_at_the_top_of_an_object() {
        let text = r#" { "a" : {"x":1}, "b\"c" :[{"y":2}], "a": "a:", "\u00e9":"\":" } "#;
        assert_eq!(top_level_names(text), ["a", "b\"c", "é"]);
        assert!(top_level_names(r#"["a", {"b": 1}]"#).is_empty());
        assert!(top_level_names(r#""a""#).is_empty());
        assert!(top_level_names("{}").is_empty());
    }

    #[test]
    fn line_breaks_between_tokens_become_spaces_and_the_value_stays() {
        let pretty = "{\r\n  \"a\": [1,\n 2],\n  \"b\": \"x\\ny\"\n}";
        let flat = one_line(pretty);
        assert!(!flat.contains(['\n', '\r']), "{flat}");
        assert_eq!(
            serde_json::from_str::<Value>(&flat).unwrap(),
            serde_json::from_str::<Value>(pretty).unwrap()
        );
        assert!(matches!(one_line(r#"{"a":1}"#), Cow::Borrowed(_)));
    }

    #[test]
    fn brackets_in_strings_and_escapes_do_not_count() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(nests_deeper(&deep, 199));
        assert!(!nests_deeper(&deep, 200));
        let fake = format!(r#"["{}", "\\\"{}", 1]"#, "[".repeat(300), "{".repeat(300));
        assert!(!nests_deeper(&fake, 1));
        assert!(nests_deeper(&fake, 0));
    }
}
