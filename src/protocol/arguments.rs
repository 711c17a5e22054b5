//! A tool call's `arguments`, kept as the client's JSON text.
//!
//! The gateway reads nothing of most calls' arguments: they go to the upstream as they came.
//! Parsed into a `Value` tree they cost more than anything else on a call with a large
//! payload (1 MiB of small records: a tree of sixty thousand maps, built, copied for the
//! upstream, written out and dropped twice). Kept as text they are checked once (valid JSON,
//! not nested deeper than a parsed message may be), copied never (the text is shared), and
//! written back byte for byte. What does read them (the `Mcp-Param-*` headers of an annotated
//! tool, a policy, a task) gets the value, parsed once on first use.
//!
//! [`Params`] is what the gateway sends upstream: a request's params as a value, plus the
//! client's arguments as text when they pass through.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

/// How deep a tool call's arguments may nest: a message (one level) holds `params` (one
/// more), and a parsed message may nest 127 levels (serde_json's limit), as
/// [`super::payload::MAX_DEPTH`] is for a result one level nearer the top.
pub const MAX_DEPTH: usize = super::payload::MAX_DEPTH - 1;

/// A tool call's `arguments` as JSON text, and where they stood among the other members of
/// `params` (they are written back there). Clones share the text and the parsed value.
#[derive(Clone)]
pub struct Arguments {
    shared: Arc<Shared>,
    at: usize,
}

struct Shared {
    text: Box<str>,
    value: OnceLock<Value>,
    /// The top-level member names, when the parser's depth check read them anyway.
    names: Option<Vec<String>>,
}

impl Arguments {
    /// `text` is valid JSON, as the parser handed it over; `at` is its index among the
    /// members of `params`.
    pub(crate) fn from_text(text: &str, at: usize) -> Arguments {
        Self::outlined(text, at, None)
    }

    /// [`Arguments::from_text`] with the top-level member names, already read.
    pub(crate) fn outlined(text: &str, at: usize, names: Option<Vec<String>>) -> Arguments {
        Arguments {
            shared: Arc::new(Shared {
                // Written back as it came, so on one line for stdio upstreams.
                text: super::scan::one_line(text).into(),
                value: OnceLock::new(),
                names,
            }),
            at,
        }
    }

    /// Arguments from the parser: `None` if they nest deeper than [`MAX_DEPTH`] (a parsed
    /// message could not hold them). Long text is checked in the same pass that reads its
    /// member names.
    pub(crate) fn checked(text: &str, at: usize) -> Option<Arguments> {
        // Each level takes two bytes at least: shorter text cannot be too deep.
        if text.len() <= 2 * MAX_DEPTH {
            return Some(Self::from_text(text, at));
        }
        let names = super::scan::outline(text, MAX_DEPTH)?;
        Some(Self::outlined(text, at, Some(names)))
    }

    /// The JSON text, exactly as the client wrote it.
    pub fn text(&self) -> &str {
        &self.shared.text
    }

    /// The index of `arguments` among the members of `params`.
    pub fn at(&self) -> usize {
        self.at
    }

    /// A member before the arguments was removed: they stand one place earlier.
    pub(crate) fn moved_back(&mut self) {
        self.at = self.at.saturating_sub(1);
    }

    /// The arguments as a value, parsed on first use.
    pub fn value(&self) -> &Value {
        self.shared.value.get_or_init(|| parse(&self.shared.text))
    }

    pub fn into_value(self) -> Value {
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => shared
                .value
                .into_inner()
                .unwrap_or_else(|| parse(&shared.text)),
            Err(shared) => shared.value.get_or_init(|| parse(&shared.text)).clone(),
        }
    }

    /// What the arguments are, without building them: the names of an object's members (in
    /// order, each once), or the JSON type of anything else.
    pub fn shape(&self) -> Shape {
        if let Some(value) = self.shared.value.get() {
            return Shape::of(value);
        }
        let text = self.text();
        match text.trim_start().as_bytes().first() {
            Some(b'{') => Shape::Object(match &self.shared.names {
                Some(names) => names.clone(),
                None => super::scan::top_level_names(text),
            }),
            Some(b'[') => Shape::Other("array"),
            Some(b'"') => Shape::Other("string"),
            Some(b't' | b'f') => Shape::Other("bool"),
            Some(b'n') => Shape::Other("null"),
            _ => Shape::Other("number"),
        }
    }
}

/// What [`Arguments::shape`] tells.
#[derive(Debug, PartialEq)]
pub enum Shape {
    Object(Vec<String>),
    /// `array`, `string`, `number`, `bool` or `null`.
    Other(&'static str),
}

impl Shape {
    pub fn of(value: &Value) -> Shape {
        match value {
            Value::Object(map) => Shape::Object(map.keys().cloned().collect()),
            Value::Array(_) => Shape::Other("array"),
            Value::String(_) => Shape::Other("string"),
            Value::Number(_) => Shape::Other("number"),
            Value::Bool(_) => Shape::Other("bool"),
            Value::Null => Shape::Other("null"),
        }
    }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl PartialEq for Arguments {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && (self.text() == other.text() || self.value() == other.value())
    }
}

impl fmt::Debug for Arguments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arguments")
            .field("at", &self.at)
            .field("text", &self.text())
            .finish()
    }
}

/// Puts `arguments` back into `params` as a value, at the place they came from.
pub fn restore(params: &mut Option<Value>, arguments: Arguments) {
    let at = arguments.at();
    let value = arguments.into_value();
    let params = params.get_or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(map) = params {
        let at = at.min(map.len());
        map.shift_insert(at, "arguments".to_owned(), value);
    }
}

/// Removes the member `key` from params held as `value` plus `arguments` as text: the
/// arguments themselves (as a value), or another member, after which the arguments stand
/// one place earlier if it stood before them.
pub(crate) fn remove(
    value: &mut Option<Value>,
    arguments: &mut Option<Arguments>,
    key: &str,
) -> Option<Value> {
    if key == "arguments"
        && let Some(args) = arguments.take()
    {
        return Some(args.into_value());
    }
    let params = value.as_mut()?.as_object_mut()?;
    let index = params.keys().position(|k| k == key)?;
    let removed = params.shift_remove(key)?;
    if let Some(args) = arguments
        && index < args.at()
    {
        args.moved_back();
    }
    Some(removed)
}

/// The params of a request the gateway sends: a value, and a tool call's arguments as the
/// client's text when they pass through (then `value` has no `arguments` member).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    pub value: Option<Value>,
    pub arguments: Option<Arguments>,
}

impl Params {
    /// A member of the params, the arguments parsed if they are asked for.
    pub fn get(&self, key: &str) -> Option<&Value> {
        if key == "arguments"
            && let Some(arguments) = &self.arguments
        {
            return Some(arguments.value());
        }
        super::field::of(self.value.as_ref()?, key)
    }

    /// The params' value (an empty object if there was none), to change members other than
    /// the arguments.
    pub fn object(&mut self) -> &mut Value {
        self.value.get_or_insert_with(|| Value::Object(Map::new()))
    }

    /// Removes a member (the arguments, if another, keep their place among the others).
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        remove(&mut self.value, &mut self.arguments, key)
    }

    /// The params as one value, arguments included.
    pub fn into_value(self) -> Option<Value> {
        let mut value = self.value;
        if let Some(arguments) = self.arguments {
            restore(&mut value, arguments);
        }
        value
    }
}

impl From<Option<Value>> for Params {
    fn from(value: Option<Value>) -> Params {
        Params {
            value,
            arguments: None,
        }
    }
}

impl From<Value> for Params {
    fn from(value: Value) -> Params {
        Params::from(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_value_is_parsed_from_the_text_once_and_the_text_kept_as_it_came() {
        let text = r#"{ "b": [1, 2], "a": {"x": null} }"#;
        let args = Arguments::from_text(text, 1);
        assert_eq!(args.text(), text);
        assert_eq!(args.value(), &json!({"b": [1, 2], "a": {"x": null}}));
        assert!(std::ptr::eq(args.value(), args.value()));
        assert_eq!(args.at(), 1);
        let keys: Vec<&String> = args.value().as_object().unwrap().keys().collect();
        assert_eq!(keys, ["b", "a"], "the members keep their order");
    }

    #[test]
    fn the_shape_is_read_without_parsing_and_agrees_with_the_value() {
        for text in [
            r#"{"city":"Paris","token":"s3cret","city":1}"#,
            r#" {"a\"b":{"c":1},"\u00e9":[]}"#,
            "{}",
            "[1,2]",
            r#""text""#,
            "12.5",
            "-3",
            "true",
            "false",
            "null",
        ] {
            let unparsed = Arguments::from_text(text, 0).shape();
            let parsed: Value = serde_json::from_str(text).unwrap();
            assert_eq!(unparsed, Shape::of(&parsed), "{text}");
        }
        assert_eq!(
            Arguments::from_text(r#"{"city":"Paris","token":"s3cret","city":1}"#, 0).shape(),
            Shape::Object(vec!["city".into(), "token".into()])
        );
    }

    #[test]
    fn restoring_puts_the_arguments_back_where_they_were() {
        for (params, at, expected) in [
            (
                json!({"name": "t", "_meta": {}}),
                1,
                json!({"name": "t", "arguments": {"a": 1}, "_meta": {}}),
            ),
            (
                json!({"name": "t"}),
                0,
                json!({"arguments": {"a": 1}, "name": "t"}),
            ),
            (
                json!({"name": "t"}),
                5,
                json!({"name": "t", "arguments": {"a": 1}}),
            ),
        ] {
            let mut params = Some(params);
            restore(&mut params, Arguments::from_text(r#"{"a":1}"#, at));
            let params = params.unwrap();
            assert_eq!(params, expected);
            let order: Vec<&String> = params.as_object().unwrap().keys().collect();
            let wanted: Vec<&String> = expected.as_object().unwrap().keys().collect();
            assert_eq!(order, wanted);
        }
        let mut none = None;
        restore(&mut none, Arguments::from_text("[]", 3));
        assert_eq!(none, Some(json!({"arguments": []})));
    }

    #[test]
    fn params_read_their_arguments_from_the_text() {
        let params = Params {
            value: Some(json!({"name": "t"})),
            arguments: Some(Arguments::from_text(r#"{"q":"x"}"#, 1)),
        };
        assert_eq!(params.get("name"), Some(&json!("t")));
        assert_eq!(params.get("arguments"), Some(&json!({"q": "x"})));
        assert_eq!(params.get("other"), None);
        assert_eq!(
            params.into_value(),
            Some(json!({"name": "t", "arguments": {"q": "x"}}))
        );
        assert_eq!(Params::from(json!({"a": 1})).get("a"), Some(&json!(1)));
    }

    #[test]
    fn removing_a_member_keeps_the_arguments_in_place() {
        let params = || Params {
            value: Some(json!({"a": 1, "b": 2, "c": 3})),
            arguments: Some(Arguments::from_text(r#"{"q":1}"#, 2)),
        };
        let order = |p: Params| -> Vec<String> {
            p.into_value()
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        let mut p = params();
        assert_eq!(p.remove("a"), Some(json!(1)));
        assert_eq!(order(p), ["b", "arguments", "c"]);
        let mut p = params();
        assert_eq!(p.remove("c"), Some(json!(3)));
        assert_eq!(order(p), ["a", "b", "arguments"]);
        let mut p = params();
        assert_eq!(p.remove("arguments"), Some(json!({"q": 1})));
        assert!(p.arguments.is_none());
        assert_eq!(order(p), ["a", "b", "c"]);
        assert_eq!(params().remove("missing"), None);
    }
}
