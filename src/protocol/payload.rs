//! A result as an upstream sent it: kept as JSON text until something looks inside it.
//!
//! Most answers pass through the gateway unread: the members it needs (`resultType`,
//! `isError`, whether there is a `_meta`) are noted when the answer is parsed, the rest stays
//! text, and the client gets that text back with at most a member or two appended. Reading
//! any other part of the result (through `Deref`) parses it then, once; changing it (through
//! `DerefMut`) turns it into a [`Value`] for good. A result that names a top-level member
//! twice is parsed at once, so the gateway and the client never read different values.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;
use smallvec::SmallVec;

use super::envelope::{self, CACHE_SCOPE, COMPLETE, RESULT_TYPE, SERVER_INFO, TTL_MS};
use super::scan;

/// A JSON-RPC result.
#[derive(Clone)]
pub struct Payload(Repr);

#[derive(Clone)]
enum Repr {
    Value(Value),
    /// Boxed: a result is no larger than a `Value` either way.
    Text(Box<Text>),
}

#[derive(Clone)]
struct Text {
    text: Box<str>,
    top: Top,
    /// The text parsed, once something read inside it.
    parsed: OnceLock<Value>,
}

/// A result's `resultType` as noted: nearly always `complete`, which needs no value built.
#[derive(Clone, Debug)]
enum ResultType {
    Complete,
    Other(Value),
}

impl ResultType {
    fn as_str(&self) -> Option<&str> {
        match self {
            ResultType::Complete => Some(COMPLETE),
            ResultType::Other(v) => v.as_str(),
        }
    }
}

/// What the gateway reads of a result without parsing it.
#[derive(Clone, Debug, Default)]
struct Top {
    /// The result is an object (MCP results always are).
    object: bool,
    /// How many members the object has.
    members: usize,
    result_type: Option<ResultType>,
    is_error: Option<Value>,
    /// `_meta`, `ttlMs` or `cacheScope`: members a face may have to change.
    meta: bool,
    cache_hints: bool,
    /// A top-level member named twice.
    duplicate: bool,
}

/// What [`Payload::shape_for_stateless`] closes a result without `_meta` with: the
/// gateway's `serverInfo` in a `_meta` of its own.
static META_TAIL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut out = String::from(r#""_meta":{"#);
    super::compact::string(&mut out, SERVER_INFO);
    out.push(':');
    out.push_str(envelope::gateway_info_json());
    out.push_str("}}");
    out
});

impl Payload {
    /// A result from its JSON text (already known to be valid JSON).
    pub fn from_text(text: &str) -> Payload {
        // Anything but an object (which MCP results always are) has nothing to note.
        let top = Top::scan(text);
        if top.duplicate {
            // Parsed now: the gateway and the client then see the same (last) value.
            return Payload(Repr::Value(parse(text)));
        }
        Payload(Repr::Text(Box::new(Text {
            // Written back as it came, so on one line for stdio clients.
            text: super::scan::one_line(text).into(),
            top,
            parsed: OnceLock::new(),
        })))
    }

    /// The result's type; `complete` when it names none (a handshake-era server).
    pub fn result_type(&self) -> &str {
        match &self.0 {
            Repr::Text(t) => t
                .top
                .result_type
                .as_ref()
                .and_then(ResultType::as_str)
                .unwrap_or(COMPLETE),
            Repr::Value(v) => envelope::result_type(v),
        }
    }

    /// Whether the result says `isError: true` (a tool's own error).
    pub fn is_error(&self) -> bool {
        let flag = match &self.0 {
            Repr::Text(t) => t.top.is_error.as_ref(),
            Repr::Value(v) => super::field::of(v, "isError"),
        };
        flag.and_then(Value::as_bool) == Some(true)
    }

    pub fn is_object(&self) -> bool {
        match &self.0 {
            Repr::Text(t) => t.top.object,
            Repr::Value(v) => v.is_object(),
        }
    }

    pub fn into_value(self) -> Value {
        match self.0 {
            Repr::Value(v) => v,
            Repr::Text(t) => t.parsed.into_inner().unwrap_or_else(|| parse(&t.text)),
        }
    }

    /// Appends the result as compact JSON: its own text when it has not been changed.
    pub fn write_json(&self, out: &mut String) {
        match &self.0 {
            Repr::Text(t) => out.push_str(&t.text),
            Repr::Value(v) => super::compact::value(out, v),
        }
    }

    /// [`envelope::for_stateless`]: `resultType` unless set, and the gateway's `serverInfo`
    /// in `_meta`. A result without `_meta` gets them appended to its text.
    pub fn shape_for_stateless(&mut self) {
        if let Repr::Text(t) = &mut self.0
            && let Text { text, top, parsed } = &mut **t
            && top.object
            && !top.meta
            && let Some(open) = text.strip_suffix('}')
        {
            let mut out = String::with_capacity(text.len() + 128);
            out.push_str(open);
            if top.members > 0 {
                out.push(',');
            }
            if top.result_type.is_none() {
                out.push_str(r#""resultType":"complete","#);
                top.result_type = Some(ResultType::Complete);
                top.members += 1;
            }
            out.push_str(&META_TAIL);
            top.meta = true;
            top.members += 1;
            *text = out.into_boxed_str();
            *parsed = OnceLock::new();
            return;
        }
        envelope::for_stateless(self);
    }

    /// [`envelope::for_handshake`]: nothing to do for a result without the members it
    /// removes.
    pub fn shape_for_handshake(&mut self) {
        if let Repr::Text(t) = &self.0
            && t.top.result_type.is_none()
            && !t.top.meta
            && !t.top.cache_hints
        {
            return;
        }
        envelope::for_handshake(self);
    }
}

/// How deep a result may nest arrays and objects: serde_json parses a message up to 127
/// levels, and the result is one level into the message. Skipping a value as text has no
/// such limit, so it is checked here: a result is refused exactly when parsing it as part
/// of its message would be, and a kept one always parses.
pub const MAX_DEPTH: usize = 126;

/// Whether `text` (valid JSON) nests deeper than [`MAX_DEPTH`].
pub fn too_deep(text: &str) -> bool {
    super::scan::nests_deeper(text, MAX_DEPTH)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Payload(Repr::Value(value))
    }
}

impl Deref for Payload {
    type Target = Value;

    fn deref(&self) -> &Value {
        match &self.0 {
            Repr::Value(v) => v,
            Repr::Text(t) => t.parsed.get_or_init(|| parse(&t.text)),
        }
    }
}

impl DerefMut for Payload {
    fn deref_mut(&mut self) -> &mut Value {
        if let Repr::Text(t) = &mut self.0 {
            let value = t.parsed.take().unwrap_or_else(|| parse(&t.text));
            self.0 = Repr::Value(value);
        }
        match &mut self.0 {
            Repr::Value(v) => v,
            Repr::Text(_) => unreachable!("made a value above"),
        }
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl Top {
    /// What [`Top`]'s parse notes of `text` (valid JSON), found by walking its structure
    /// ([`scan::members`]) rather than parsing it: only the values of `resultType` and
    /// `isError` are read. A member name with escapes is rare, and parsed.
    fn scan(text: &str) -> Top {
        if !text.starts_with('{') {
            return Top::default();
        }
        let mut top = Top {
            object: true,
            ..Top::default()
        };
        // On the stack for the usual few members.
        let mut names: SmallVec<[&str; 8]> = SmallVec::new();
        let mut escaped = false;
        scan::members(text, |member| {
            escaped |= member.escaped;
            top.duplicate |= names.contains(&member.name);
            top.note(member.name, member.rest);
            names.push(member.name);
        });
        if escaped {
            return serde_json::from_str::<Top>(text).unwrap_or_default();
        }
        top.members = names.len();
        top
    }

    /// Notes the member `name` whose value `value` starts with (valid JSON): the values of
    /// `resultType` and `isError` are read, `"complete"`, `true` and `false` without a parse.
    fn note(&mut self, name: &str, value: &str) {
        match name {
            RESULT_TYPE => {
                self.result_type = Some(if value.starts_with(r#""complete""#) {
                    ResultType::Complete
                } else {
                    ResultType::Other(first_value(value))
                });
            }
            "isError" => {
                self.is_error = Some(match value.as_bytes().first() {
                    Some(b'f') => Value::Bool(false),
                    Some(b't') => Value::Bool(true),
                    _ => first_value(value),
                });
            }
            other => {
                self.meta |= other == "_meta";
                self.cache_hints |= other == TTL_MS || other == CACHE_SCOPE;
            }
        }
    }
}

/// The JSON value `text` starts with (valid JSON follows it).
fn first_value(text: &str) -> Value {
    Value::deserialize(&mut serde_json::Deserializer::from_str(text)).unwrap_or(Value::Null)
}

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Top;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
                let mut top = Top {
                    object: true,
                    ..Top::default()
                };
                // On the stack for the usual few members.
                let mut names: SmallVec<[Cow<'de, str>; 8]> = SmallVec::new();
                while let Some(Name(name)) = map.next_key()? {
                    top.duplicate |= names.contains(&name);
                    // Every value as its text, noted as the walk notes it.
                    let raw: &'de serde_json::value::RawValue = map.next_value()?;
                    top.note(&name, raw.get());
                    names.push(name);
                }
                top.members = names.len();
                Ok(top)
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// A member name, borrowed from the text unless it has escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text_of(p: &Payload) -> String {
        let mut out = String::new();
        p.write_json(&mut out);
        out
    }

    #[test]
    fn an_unread_result_goes_out_as_it_came() {
        let text =
            r#"{"content":[{"type":"text","text":"caf\u00e9"}],"n":12345678901234567890123}"#;
        let p = Payload::from_text(text);
        assert_eq!(text_of(&p), text);
        assert!(!p.is_error());
        assert_eq!(p.result_type(), COMPLETE);
        // Reading parses it; the text still goes out unchanged.
        assert_eq!(p["content"][0]["text"], "café");
        assert_eq!(text_of(&p), text);
    }

    #[test]
    fn what_the_gateway_reads_is_what_parsing_reads() {
        for text in [
            r#"{"isError":true,"resultType":"input_required"}"#,
            r#"{"resultType":"complete","isError":true}"#,
            r#"{"resultType":"compl\u0065te"}"#,
            r#"{"resultType":"complete ","a":1}"#,
            r#"{"isError":"yes","resultType":7}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#""text""#,
            r#"null"#,
            r#"{"isError":false,"a":{"isError":true,"resultType":"x"}}"#,
        ] {
            let raw = Payload::from_text(text);
            let value = Payload::from(serde_json::from_str::<Value>(text).unwrap());
            assert_eq!(raw.is_error(), value.is_error(), "{text}");
            assert_eq!(raw.result_type(), value.result_type(), "{text}");
            assert_eq!(raw.is_object(), value.is_object(), "{text}");
            assert_eq!(raw, value, "{text}");
        }
    }

    /// The walk over a result's text notes what parsing it notes, whatever the names, the
    /// values, the spacing and the repeats.
    #[test]
    fn the_walk_notes_what_the_parse_notes() {
        use rand::{Rng, SeedableRng};
        let names = [
            "resultType",
            "isError",
            "_meta",
            "ttlMs",
            "cacheScope",
            "content",
            r#"is\u0045rror"#,
            r#"_m\u0065ta"#,
            ":",
            "{",
            "",
        ];
        let values = [
            r#""complete""#,
            r#""complete ""#,
            r#""x""#,
            "true",
            "false",
            "null",
            "-7.5e3",
            r#"{"isError":true,"resultType":"y","_meta":{}}"#,
            r#"[{"_meta":1},"\"}",[]]"#,
            r#""a\"b:{,""#,
            "{}",
        ];
        let spaces = ["", " ", "\n\t ", "\r\n"];
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let pick = |rng: &mut rand::rngs::StdRng, from: &[&'static str]| {
            from[rng.random_range(0..from.len())]
        };
        for _ in 0..5000 {
            let mut text = String::from("{");
            for i in 0..rng.random_range(0..6) {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(pick(&mut rng, &spaces));
                text.push_str(&format!(r#""{}""#, pick(&mut rng, &names)));
                text.push_str(pick(&mut rng, &spaces));
                text.push(':');
                text.push_str(pick(&mut rng, &spaces));
                text.push_str(pick(&mut rng, &values));
                text.push_str(pick(&mut rng, &spaces));
            }
            text.push('}');
            let walked = Top::scan(&text);
            let parsed: Top = serde_json::from_str(&text).expect("valid JSON");
            assert_eq!(format!("{walked:?}"), format!("{parsed:?}"), "{text}");
        }
        for text in ["[1]", r#""{\"a\":1}""#, "7", "null"] {
            assert!(!Top::scan(text).object, "{text}");
        }
    }

    #[test]
    fn a_member_named_twice_is_read_once_the_way_parsing_reads_it() {
        let p = Payload::from_text(r#"{"isError":false,"x":1,"isError":true}"#);
        assert!(p.is_error());
        assert_eq!(text_of(&p), r#"{"isError":true,"x":1}"#);
    }

    #[test]
    fn shaping_the_text_gives_what_shaping_the_value_gives() {
        for text in [
            r#"{"content":[],"isError":false}"#,
            r#"{"content":[],"resultType":"input_required","inputRequests":{}}"#,
            r#"{ }"#,
            r#"{"content":[],"_meta":{"k":1}}"#,
            r#"{"a":1,"ttlMs":5,"cacheScope":"public","resultType":"complete"}"#,
            r#"[]"#,
        ] {
            let mut value: Value = serde_json::from_str(text).unwrap();
            envelope::for_stateless(&mut value);
            let mut raw = Payload::from_text(text);
            raw.shape_for_stateless();
            let written: Value = serde_json::from_str(&text_of(&raw)).unwrap();
            assert_eq!(written, value, "{text}");
            assert_eq!(*raw, value, "{text}");
            assert_eq!(raw.result_type(), envelope::result_type(&value), "{text}");

            let mut value: Value = serde_json::from_str(text).unwrap();
            envelope::for_handshake(&mut value);
            let mut raw = Payload::from_text(text);
            raw.shape_for_handshake();
            let written: Value = serde_json::from_str(&text_of(&raw)).unwrap();
            assert_eq!(written, value, "{text}");
        }
    }

    /// Kept as text, a result would escape serde_json's nesting limit: it is refused at
    /// the same depth as when the whole message was parsed as values.
    #[test]
    fn a_result_nested_too_deep_is_refused_as_parsing_refuses_it() {
        for depth in [1, 100, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 200, 1000] {
            let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            let keyed = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
            for result in [
                nested,
                keyed,
                format!(r#"{{"s":"[[{{\"\\","x":{}}}"#, "[1]"),
            ] {
                let message = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#);
                let as_values = serde_json::from_str::<Value>(&message).is_ok();
                let parsed = crate::protocol::Message::parse(message.as_bytes());
                assert_eq!(parsed.is_ok(), as_values, "depth {depth}: {result:.40}");
                if let Ok(crate::protocol::Message::Response(r)) = parsed {
                    let payload = r.outcome.expect("a result");
                    assert_eq!(*payload, serde_json::from_str::<Value>(&result).unwrap());
                }
            }
        }
    }

    #[test]
    fn a_changed_result_is_written_from_its_value() {
        let mut p = Payload::from_text(r#"{"a":1}"#);
        p["b"] = json!(2);
        assert_eq!(text_of(&p), r#"{"a":1,"b":2}"#);
        assert_eq!(p.into_value(), json!({"a": 1, "b": 2}));
    }
}
