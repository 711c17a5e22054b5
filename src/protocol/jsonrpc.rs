//! JSON-RPC 2.0 envelopes: parse once at the edge, keep `params` and `result` as raw JSON.
//!
//! MCP narrows JSON-RPC: ids are strings or integers and never `null` on requests, `params`
//! is an object when present, and responses to unreadable requests may carry `"id": null`
//! or no id at all (both forms are accepted).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::arguments::{self, Arguments, Params, Shape};
use super::codes;
use super::envelope;
use super::payload::Payload;

/// A request id: MCP allows strings and integers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Num(i64),
    Str(String),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Num(n) => write!(f, "{n}"),
            Id::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl Id {
    /// Reads an id from JSON; `None` for anything MCP does not allow (null, floats, objects).
    pub fn from_value(value: &Value) -> Option<Id> {
        match value {
            Value::String(s) => Some(Id::Str(s.clone())),
            Value::Number(n) => n.as_i64().map(Id::Num),
            _ => None,
        }
    }

    /// Appends the id as JSON.
    fn write_json(&self, out: &mut String) {
        match self {
            Id::Num(n) => super::compact::integer(out, *n),
            Id::Str(s) => super::compact::string(out, s),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Id::Num(n) => Value::from(*n),
            Id::Str(s) => Value::from(s.clone()),
        }
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: i32,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ErrorObject {}

/// A request. Its params are read through [`Request::param`] and, whole, through
/// [`Request::full_params`] or [`Request::params_mut`]: a parsed `tools/call` keeps its
/// `arguments` as the client's text ([`Arguments`]), outside the params value, until
/// something changes them.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: Id,
    pub method: String,
    /// Without `arguments` while [`Request::arguments`] holds them.
    params: Option<Value>,
    arguments: Option<Arguments>,
    /// Members the gateway adds to `params._meta` for one upstream hop (its 2026-07-28
    /// envelope), as JSON text (`"name":value,...`): written into the message's text after
    /// the client's own `_meta` members, never built as values (see [`Request::full_params`]).
    pub hop_meta: Option<Box<str>>,
}

impl PartialEq for Request {
    fn eq(&self, other: &Self) -> bool {
        let same_params = if self.arguments.is_none() && other.arguments.is_none() {
            self.params == other.params
        } else {
            self.params().into_value() == other.params().into_value()
        };
        self.id == other.id
            && self.method == other.method
            && self.hop_meta == other.hop_meta
            && same_params
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub method: String,
    pub params: Option<Value>,
}

/// A response; `id` is `None` only for errors about a request whose id could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: Option<Id>,
    pub outcome: Result<Payload, ErrorObject>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request(Request),
    Notification(Notification),
    Response(Response),
}

impl Request {
    pub fn new(id: Id, method: impl Into<String>, params: Option<Value>) -> Self {
        Self::with_params(id, method, Params::from(params))
    }

    /// A request whose tool-call arguments (if any) pass through as text.
    pub fn with_params(id: Id, method: impl Into<String>, params: Params) -> Self {
        Self {
            id,
            method: method.into(),
            params: params.value,
            arguments: params.arguments,
            hop_meta: None,
        }
    }

    /// The params without the arguments while those pass through as text: for reading any
    /// other member.
    pub fn params_except_arguments(&self) -> Option<&Value> {
        self.params.as_ref()
    }

    /// The params without the arguments while those pass through as text, to read or change
    /// other members in place (adding or removing members before the arguments moves them).
    pub fn params_except_arguments_mut(&mut self) -> &mut Option<Value> {
        &mut self.params
    }

    /// Removes a member of the params (the arguments keep their place among the others).
    pub fn remove_param(&mut self, key: &str) -> Option<Value> {
        arguments::remove(&mut self.params, &mut self.arguments, key)
    }

    /// The tool call's arguments when they pass through as the client's text.
    pub fn arguments(&self) -> Option<&Arguments> {
        self.arguments.as_ref()
    }

    /// What the arguments are (member names, or a JSON type), read without parsing them when
    /// they pass through as text.
    pub fn arguments_shape(&self) -> Option<Shape> {
        match &self.arguments {
            Some(args) => Some(args.shape()),
            None => self.param("arguments").map(Shape::of),
        }
    }

    /// The params for another hop: the arguments, if they pass through, stay text (shared,
    /// not copied).
    pub fn params(&self) -> Params {
        Params {
            value: self.params.clone(),
            arguments: self.arguments.clone(),
        }
    }

    /// The params as one value to change, the arguments parsed into it first.
    pub fn params_mut(&mut self) -> &mut Option<Value> {
        if let Some(args) = self.arguments.take() {
            arguments::restore(&mut self.params, args);
        }
        &mut self.params
    }

    /// The params as one value, the arguments included.
    pub fn into_params(mut self) -> Option<Value> {
        self.params_mut();
        self.params
    }

    /// The params with the arguments included, as they go on the wire: with
    /// [`Request::hop_meta`] in `_meta`.
    pub fn full_params(&self) -> Option<Value> {
        let mut params = self.params.clone();
        if let Some(args) = &self.arguments {
            arguments::restore(&mut params, args.clone());
        }
        let Some(hop) = &self.hop_meta else {
            return params;
        };
        let hop: Map<String, Value> =
            serde_json::from_str(&format!("{{{hop}}}")).unwrap_or_default();
        let mut params = params.unwrap_or_else(|| Value::Object(Map::new()));
        if let Some(obj) = params.as_object_mut() {
            let meta = obj
                .entry("_meta")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(meta) = meta.as_object_mut() {
                meta.extend(hop);
            }
        }
        Some(params)
    }

    /// Appends the params as JSON: the arguments' text where they stood, and
    /// [`Request::hop_meta`] after the client's own `_meta` members, or as a `_meta` of its
    /// own after the other params.
    fn write_params(&self, out: &mut String) {
        use super::compact;
        let hop = self.hop_meta.as_deref();
        if hop.is_none() && self.arguments.is_none() {
            if let Some(p) = &self.params {
                out.push_str(r#","params":"#);
                compact::value(out, p);
            }
            return;
        }
        out.push_str(r#","params":{"#);
        let mut first = true;
        let mut meta_written = false;
        let mut arguments = self.arguments.as_ref();
        let mut write_arguments = |out: &mut String, first: &mut bool| {
            if let Some(args) = arguments.take() {
                if !std::mem::take(first) {
                    out.push(',');
                }
                out.push_str(r#""arguments":"#);
                out.push_str(args.text());
            }
        };
        let empty = Map::new();
        let params = match &self.params {
            Some(Value::Object(params)) => params,
            _ => &empty,
        };
        for (i, (key, value)) in params.iter().enumerate() {
            if self.arguments.as_ref().is_some_and(|a| a.at() == i) {
                write_arguments(out, &mut first);
            }
            if !std::mem::take(&mut first) {
                out.push(',');
            }
            compact::string(out, key);
            out.push(':');
            match (value, hop) {
                (Value::Object(meta), Some(hop)) if key == "_meta" => {
                    out.push('{');
                    for (k, v) in meta {
                        compact::string(out, k);
                        out.push(':');
                        compact::value(out, v);
                        out.push(',');
                    }
                    out.push_str(hop);
                    out.push('}');
                    meta_written = true;
                }
                _ => compact::value(out, value),
            }
        }
        // Arguments that stood last (or after members a change removed).
        write_arguments(out, &mut first);
        if let Some(hop) = hop.filter(|_| !meta_written) {
            if !first {
                out.push(',');
            }
            out.push_str(r#""_meta":{"#);
            out.push_str(hop);
            out.push('}');
        }
        out.push('}');
    }

    /// A field of `params`, if params is an object that has it (the arguments parsed, once,
    /// if they are asked for and pass through as text).
    pub fn param(&self, key: &str) -> Option<&Value> {
        if key == "arguments"
            && let Some(args) = &self.arguments
        {
            return Some(args.value());
        }
        super::field::of(self.params.as_ref()?, key)
    }

    /// A string field of `params`, or an invalid-params error naming the field.
    pub fn str_param(&self, key: &str) -> Result<&str, ErrorObject> {
        match self.param(key) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(ErrorObject::invalid_params(format!(
                "'{key}' must be a string"
            ))),
            None => Err(ErrorObject::invalid_params(format!(
                "missing required field '{key}'"
            ))),
        }
    }
}

impl Notification {
    pub fn new(method: impl Into<String>, params: Option<Value>) -> Self {
        Self {
            method: method.into(),
            params,
        }
    }
}

impl Response {
    pub fn ok(id: Id, result: impl Into<Payload>) -> Self {
        Self {
            id: Some(id),
            outcome: Ok(result.into()),
        }
    }

    pub fn err(id: Option<Id>, error: ErrorObject) -> Self {
        Self {
            id,
            outcome: Err(error),
        }
    }
}

impl Message {
    /// Parses one message from bytes. An array is reported as [`ParseError::Batch`] so the
    /// caller can decide per protocol revision; everything else that is not a single valid
    /// message becomes the JSON-RPC error object to answer with.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        Message::parse_taking(bytes, false).0
    }

    /// [`Message::parse`] for a message known to be in the stateless era (its HTTP header
    /// says so): the client's envelope keys ([`envelope::HOP_KEYS`]) are read out of
    /// `params._meta` in the same pass, as [`Envelope::take`](envelope::Envelope::take) would
    /// take them afterwards, without being built into the params first. The params come out
    /// as they would after that take; the keys go to
    /// [`Envelope::from_taken`](envelope::Envelope::from_taken).
    pub fn parse_stateless(bytes: &[u8]) -> (Result<Message, ParseError>, envelope::Taken) {
        Message::parse_taking(bytes, true)
    }

    fn parse_taking(bytes: &[u8], take: bool) -> (Result<Message, ParseError>, envelope::Taken) {
        let mut taken = envelope::Taken::default();
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return (Message::parse_other(bytes), taken);
        }
        let members = Members {
            taken: take.then_some(&mut taken),
        };
        let parsed = Message::parse_object(bytes, members);
        (parsed, taken)
    }

    fn parse_object(bytes: &[u8], members: Members<'_>) -> Result<Message, ParseError> {
        // The whole message checked as UTF-8 at once costs less than each string in it on
        // its own, as a parse from bytes does. Text that is not UTF-8 is parsed from the
        // bytes, for the parser's own error (and the place it names).
        let top = match std::str::from_utf8(bytes) {
            Ok(text) => Message::read_members(serde_json::Deserializer::from_str(text), members),
            Err(_) => Message::read_members(serde_json::Deserializer::from_slice(bytes), members),
        }
        .map_err(|e| ParseError::Invalid(ErrorObject::parse_error(e)))?;
        if let Some(key) = top.duplicate {
            return Err(ParseError::Invalid(ErrorObject::invalid_request(format!(
                "duplicate '{key}' member in the message"
            ))));
        }
        top.into_message().map_err(ParseError::Invalid)
    }

    fn read_members<'de, R: serde_json::de::Read<'de>>(
        mut de: serde_json::Deserializer<R>,
        members: Members<'_>,
    ) -> serde_json::Result<Envelope> {
        let top = serde::de::DeserializeSeed::deserialize(members, &mut de)?;
        de.end()?;
        Ok(top)
    }

    /// A message that is not an object: a batch, or an error.
    fn parse_other(bytes: &[u8]) -> Result<Message, ParseError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| ParseError::Invalid(ErrorObject::parse_error(e)))?;
        match value {
            Value::Array(items) => Err(ParseError::Batch(items)),
            other => Message::from_value(other).map_err(ParseError::Invalid),
        }
    }

    /// Interprets an already-parsed JSON value as one message.
    pub fn from_value(value: Value) -> Result<Message, ErrorObject> {
        let Value::Object(mut obj) = value else {
            return Err(ErrorObject::invalid_request(
                "message must be a JSON object",
            ));
        };
        let mut envelope = Envelope::default();
        for (i, key) in ENVELOPE_KEYS.iter().enumerate() {
            let value = obj.remove(*key);
            if i == RESULT {
                envelope.result = value.map(Payload::from);
            } else {
                *envelope.member(i) = value;
            }
        }
        envelope.into_message()
    }

    pub fn to_value(&self) -> Value {
        let mut obj = Map::with_capacity(4);
        obj.insert("jsonrpc".into(), Value::from("2.0"));
        match self {
            Message::Request(r) => {
                obj.insert("id".into(), r.id.to_value());
                obj.insert("method".into(), Value::from(r.method.clone()));
                if let Some(p) = r.full_params() {
                    obj.insert("params".into(), p);
                }
            }
            Message::Notification(n) => {
                obj.insert("method".into(), Value::from(n.method.clone()));
                if let Some(p) = &n.params {
                    obj.insert("params".into(), p.clone());
                }
            }
            Message::Response(r) => {
                obj.insert("id".into(), r.id.as_ref().map_or(Value::Null, Id::to_value));
                match &r.outcome {
                    Ok(result) => obj.insert("result".into(), (**result).clone()),
                    Err(e) => obj.insert("error".into(), error_value(e)),
                };
            }
        }
        Value::Object(obj)
    }

    /// Serialises to compact JSON text (no newlines, so it is valid stdio framing). Written
    /// straight from the message, with the members in the order [`Message::to_value`] gives
    /// them: no tree is cloned on the way.
    pub fn to_json(&self) -> String {
        use super::compact;
        // Room for a typical call or answer, so the text is not grown (copied) on the way.
        let mut out = String::with_capacity(
            512 + match self {
                Message::Request(Request {
                    arguments: Some(args),
                    ..
                }) => args.text().len(),
                _ => 0,
            },
        );
        out.push_str(r#"{"jsonrpc":"2.0","#);
        match self {
            Message::Request(r) => {
                out.push_str(r#""id":"#);
                r.id.write_json(&mut out);
                out.push_str(r#","method":"#);
                compact::string(&mut out, &r.method);
                r.write_params(&mut out);
            }
            Message::Notification(n) => {
                out.push_str(r#""method":"#);
                compact::string(&mut out, &n.method);
                if let Some(p) = &n.params {
                    out.push_str(r#","params":"#);
                    compact::value(&mut out, p);
                }
            }
            Message::Response(r) => {
                out.push_str(r#""id":"#);
                match &r.id {
                    Some(id) => id.write_json(&mut out),
                    None => out.push_str("null"),
                }
                match &r.outcome {
                    Ok(result) => {
                        out.push_str(r#","result":"#);
                        result.write_json(&mut out);
                    }
                    Err(e) => {
                        out.push_str(r#","error":{"code":"#);
                        compact::integer(&mut out, i64::from(e.code));
                        out.push_str(r#","message":"#);
                        compact::string(&mut out, &e.message);
                        if let Some(data) = &e.data {
                            out.push_str(r#","data":"#);
                            compact::value(&mut out, data);
                        }
                        out.push('}');
                    }
                }
            }
        }
        out.push('}');
        out
    }

    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request(r) => Some(&r.method),
            Message::Notification(n) => Some(&n.method),
            Message::Response(_) => None,
        }
    }
}

/// The members of a message object that make the JSON-RPC envelope (others are ignored),
/// and the first of them it named twice. JSON parsers disagree on duplicate keys (first or
/// last wins), so a message whose `method` reads one way here and another way in a proxy or
/// an upstream is refused, not interpreted. Read straight from the text: no map of the
/// members is built (and hashed) only to be taken apart again.
#[derive(Default)]
struct Envelope {
    jsonrpc: Option<Value>,
    id: Option<Value>,
    method: Option<Value>,
    params: Option<Value>,
    /// `params.arguments`, kept as text (see [`Arguments`]).
    arguments: Option<Arguments>,
    /// Kept as text: most results pass through unread (see [`Payload`]).
    result: Option<Payload>,
    error: Option<Value>,
    duplicate: Option<&'static str>,
}

const ENVELOPE_KEYS: [&str; 6] = ["jsonrpc", "id", "method", "params", "result", "error"];
/// The index of `result` in [`ENVELOPE_KEYS`].
const RESULT: usize = 4;
/// The index of `params` in [`ENVELOPE_KEYS`].
const PARAMS: usize = 3;

impl Envelope {
    /// The member [`ENVELOPE_KEYS`]`[i]` names, other than `result` ([`RESULT`]).
    fn member(&mut self, i: usize) -> &mut Option<Value> {
        match i {
            0 => &mut self.jsonrpc,
            1 => &mut self.id,
            2 => &mut self.method,
            3 => &mut self.params,
            _ => &mut self.error,
        }
    }

    /// Notes member `i` as read, and the first member read twice.
    fn seen(&mut self, i: usize, again: bool) {
        if again && self.duplicate.is_none() {
            self.duplicate = Some(ENVELOPE_KEYS[i]);
        }
    }

    fn into_message(self) -> Result<Message, ErrorObject> {
        if self.jsonrpc.as_ref().and_then(Value::as_str) != Some("2.0") {
            return Err(ErrorObject::invalid_request("'jsonrpc' must be \"2.0\""));
        }
        let mut params = match self.params {
            None | Some(Value::Null) => None,
            Some(p @ Value::Object(_)) => Some(p),
            Some(_) => return Err(ErrorObject::invalid_request("'params' must be an object")),
        };
        match self.method {
            Some(Value::String(method)) => {
                // Only a tool call's arguments pass through as text; elsewhere (a prompt's
                // arguments) they are small, and read.
                let mut arguments = self.arguments;
                if method != super::methods::TOOLS_CALL
                    && let Some(args) = arguments.take()
                {
                    arguments::restore(&mut params, args);
                }
                let params = Params {
                    value: params,
                    arguments,
                };
                request_or_notification(method, self.id, params)
            }
            Some(_) => Err(ErrorObject::invalid_request("'method' must be a string")),
            None => response(self.id, self.result, self.error),
        }
    }
}

/// A member name of a message object: which envelope member, if any. Read without a copy.
struct Key(Option<usize>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(Key(ENVELOPE_KEYS.iter().position(|k| *k == name)))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// Reads a message object into an [`Envelope`]; with `taken`, the client's envelope keys
/// out of `params._meta` into it (see [`Message::parse_stateless`]).
struct Members<'t> {
    taken: Option<&'t mut envelope::Taken>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Members<'_> {
    type Value = Envelope;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Envelope, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Members<'_> {
    type Value = Envelope;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<Envelope, A::Error> {
        let mut envelope = Envelope::default();
        while let Some(Key(key)) = map.next_key()? {
            let Some(i) = key else {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            };
            let again = if i == RESULT {
                let text: &serde_json::value::RawValue = map.next_value()?;
                if super::payload::too_deep(text.get()) {
                    return Err(serde::de::Error::custom("recursion limit exceeded"));
                }
                envelope
                    .result
                    .replace(Payload::from_text(text.get()))
                    .is_some()
            } else if i == PARAMS {
                let seed = ParamsSeed {
                    taken: self.taken.as_deref_mut(),
                };
                let (value, arguments) = map.next_value_seed(seed)?;
                envelope.arguments = arguments;
                envelope.params.replace(value).is_some()
            } else {
                let value: Value = map.next_value()?;
                envelope.member(i).replace(value).is_some()
            };
            envelope.seen(i, again);
        }
        Ok(envelope)
    }
}

/// `params` read in the same pass as the rest of the message (so within the same nesting
/// limit), its `arguments` member kept as text: an object's other members as values, the
/// arguments' text and place apart. Anything but an object comes out as a non-object value
/// (refused later) or `Null`. With `take`, the client's envelope keys are taken out of
/// `_meta` as it is read ([`MetaSeed`]).
struct ParamsSeed<'t> {
    taken: Option<&'t mut envelope::Taken>,
}

type ParamsRead = (Value, Option<Arguments>);

impl<'de> serde::de::DeserializeSeed<'de> for ParamsSeed<'_> {
    type Value = ParamsRead;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ParamsSeed<'_> {
    type Value = ParamsRead;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("params")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        mut self,
        mut map: A,
    ) -> Result<Self::Value, A::Error> {
        let mut members = Map::new();
        let mut arguments: Option<Arguments> = None;
        let mut metas = 0;
        while let Some(key) = map.next_key_seed(Names(&PARAMS_READ_APART))? {
            match key {
                Named::Other(name) => {
                    members.insert(name, map.next_value()?);
                    continue;
                }
                Named::Known(META) => {
                    let Some(taken) = self.taken.as_deref_mut() else {
                        members.insert("_meta".to_owned(), map.next_value()?);
                        continue;
                    };
                    // Named twice, the last one counts, keys and all.
                    *taken = envelope::Taken::default();
                    metas += 1;
                    let meta = match map.next_value_seed(MetaSeed(&mut taken.keys))? {
                        Some(others) => {
                            taken.meta = true;
                            Value::Object(others)
                        }
                        None => Value::Null,
                    };
                    // A `_meta` of the envelope keys alone is left out, as `Envelope::take`
                    // leaves it (named twice, the last is kept whatever it holds).
                    if !meta.as_object().is_some_and(Map::is_empty) || metas > 1 {
                        members.insert("_meta".to_owned(), meta);
                    }
                    continue;
                }
                // `arguments`, below.
                Named::Known(_) => {}
            }
            let text: &serde_json::value::RawValue = map.next_value()?;
            // Named twice, the last text counts at the first place, as in a parsed map.
            let at = arguments.as_ref().map_or(members.len(), Arguments::at);
            let Some(checked) = Arguments::checked(text.get(), at) else {
                return Err(serde::de::Error::custom("recursion limit exceeded"));
            };
            arguments = Some(checked);
        }
        Ok((Value::Object(members), arguments))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok((Value::Null, None))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok((Value::Null, None))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok((Value::Bool(v), None))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok((Value::from(v), None))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok((Value::from(v), None))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok((Value::from(v), None))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((Value::from(v), None))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok((Value::Array(Vec::new()), None))
    }
}

/// A request's `_meta` read with the client's envelope keys ([`envelope::HOP_KEYS`]) apart:
/// the other members come out, the keys' values go into the slots in `HOP_KEYS` order (the
/// last one counts when a key is named twice, as in a parsed map). Anything but an object is
/// `None`: the envelope check refuses it as a missing `_meta`, whatever it was.
struct MetaSeed<'t>(&'t mut [Option<Value>; 4]);

type MetaRead = Option<Map<String, Value>>;

impl<'de> serde::de::DeserializeSeed<'de> for MetaSeed<'_> {
    type Value = MetaRead;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<MetaRead, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for MetaSeed<'_> {
    type Value = MetaRead;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("_meta")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<MetaRead, A::Error> {
        let mut others = Map::new();
        while let Some(key) = map.next_key_seed(Names(&envelope::HOP_KEYS))? {
            match key {
                // Checked as JSON, not built: nothing reads the client's `clientInfo`.
                Named::Known(envelope::CLIENT_INFO_AT) => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                Named::Known(i) => self.0[i] = Some(map.next_value()?),
                Named::Other(name) => {
                    others.insert(name, map.next_value()?);
                }
            }
        }
        Ok(Some(others))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<MetaRead, E> {
        Ok(None)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<MetaRead, E> {
        Ok(None)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<MetaRead, E> {
        Ok(None)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<MetaRead, E> {
        Ok(None)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<MetaRead, E> {
        Ok(None)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<MetaRead, E> {
        Ok(None)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<MetaRead, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// The members of `params` read apart from the others: the arguments (kept as text) and
/// `_meta` (its envelope keys taken, for a stateless parse).
const PARAMS_READ_APART: [&str; 2] = ["arguments", "_meta"];
/// The index of `_meta` in [`PARAMS_READ_APART`].
const META: usize = 1;

/// A member name: one of a list of names the reader handles apart (by its place in the list,
/// not copied), or another name.
enum Named {
    Known(usize),
    Other(String),
}

/// Reads a member name as [`Named`] against its list.
struct Names(&'static [&'static str]);

impl<'de> serde::de::DeserializeSeed<'de> for Names {
    type Value = Named;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Named, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for Names {
    type Value = Named;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Named, E> {
        Ok(match self.0.iter().position(|k| *k == name) {
            Some(i) => Named::Known(i),
            None => Named::Other(name.to_owned()),
        })
    }
}

/// Why bytes did not yield one message.
#[derive(Debug)]
pub enum ParseError {
    /// A JSON array: a batch (allowed only in 2025-03-26).
    Batch(Vec<Value>),
    /// Not valid JSON, or not a valid message: answer with this error.
    Invalid(ErrorObject),
}

fn request_or_notification(
    method: String,
    id: Option<Value>,
    params: Params,
) -> Result<Message, ErrorObject> {
    match id {
        None => Ok(Message::Notification(Notification {
            method,
            params: params.into_value(),
        })),
        Some(raw) => match Id::from_value(&raw) {
            Some(id) => Ok(Message::Request(Request::with_params(id, method, params))),
            None => Err(ErrorObject::invalid_request(
                "'id' must be a string or an integer",
            )),
        },
    }
}

fn response(
    id: Option<Value>,
    result: Option<Payload>,
    error: Option<Value>,
) -> Result<Message, ErrorObject> {
    let id =
        match id {
            None | Some(Value::Null) => None,
            Some(raw) => Some(Id::from_value(&raw).ok_or_else(|| {
                ErrorObject::invalid_request("'id' must be a string or an integer")
            })?),
        };
    let outcome = match (result, error) {
        (Some(result), None) => Ok(result),
        (None, Some(error)) => Err(serde_json::from_value::<ErrorObject>(error)
            .map_err(|e| ErrorObject::invalid_request(format!("malformed error object: {e}")))?),
        _ => {
            return Err(ErrorObject::invalid_request(
                "message has no 'method' and not exactly one of 'result' or 'error'",
            ));
        }
    };
    if id.is_none() && outcome.is_ok() {
        return Err(ErrorObject::invalid_request(
            "a result must carry the request 'id'",
        ));
    }
    Ok(Message::Response(Response { id, outcome }))
}

impl Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("jsonrpc", "2.0")?;
        match self {
            Message::Request(r) => {
                map.serialize_entry("id", &r.id)?;
                map.serialize_entry("method", &r.method)?;
                if r.hop_meta.is_some() || r.arguments.is_some() {
                    map.serialize_entry("params", &r.full_params())?;
                } else if let Some(p) = &r.params {
                    map.serialize_entry("params", p)?;
                }
            }
            Message::Notification(n) => {
                map.serialize_entry("method", &n.method)?;
                if let Some(p) = &n.params {
                    map.serialize_entry("params", p)?;
                }
            }
            Message::Response(r) => {
                map.serialize_entry("id", &r.id)?;
                match &r.outcome {
                    Ok(result) => map.serialize_entry("result", result)?,
                    Err(e) => map.serialize_entry("error", e)?,
                }
            }
        }
        map.end()
    }
}

fn error_value(e: &ErrorObject) -> Value {
    let mut obj = Map::with_capacity(3);
    obj.insert("code".into(), Value::from(e.code));
    obj.insert("message".into(), Value::from(e.message.clone()));
    if let Some(d) = &e.data {
        obj.insert("data".into(), d.clone());
    }
    Value::Object(obj)
}

/// Whether an error code is one JSON-RPC reserves for malformed messages, which Streamable
/// HTTP answers with status 400 rather than 200.
pub fn is_envelope_error(code: i32) -> bool {
    code == codes::PARSE_ERROR || code == codes::INVALID_REQUEST
}

#[cfg(test)]
mod tests {
    /// A message is parsed from text once it is known to be UTF-8: what it reads as must
    /// not change, and bytes that are not UTF-8 are still a parse error naming the place.
    #[test]
    fn utf8_text_and_other_bytes_parse_as_from_bytes() {
        let text = r#"{"jsonrpc":"2.0","id":"\u00e9","method":"tools/call","params":{"name":"caf\u00e9 😀","arguments":{"a":"\n"},"_meta":{"k":[1,2]}}}"#;
        let Ok(Message::Request(req)) = Message::parse(text.as_bytes()) else {
            panic!("parses");
        };
        let value: Value = serde_json::from_slice(text.as_bytes()).unwrap();
        assert_eq!(req.id, Id::Str("é".into()));
        assert_eq!(req.param("name"), value["params"].get("name"));
        assert_eq!(req.arguments().map(Arguments::text), Some(r#"{"a":"\n"}"#));
        assert_eq!(req.into_params().as_ref(), value.get("params"));

        let mut bytes = br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"name":""#.to_vec();
        bytes.extend_from_slice(b"\xff\"}}");
        match Message::parse(&bytes) {
            Err(ParseError::Invalid(e)) => {
                assert_eq!(e.code, codes::PARSE_ERROR, "{e}");
                assert!(e.message.contains("column"), "{e}");
            }
            other => panic!("not a parse error: {other:?}"),
        }
    }

    /// Found by the `jsonrpc` fuzz target: a long integer literal read as a float came back
    /// as another float (serde_json's default float parsing is not correctly rounded), so a
    /// client's argument could reach the upstream changed.
    #[test]
    fn a_number_passes_through_unchanged() {
        let text = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"id":66666666666666666666666666666666666666666,"x":0.1,"y":1e-7,"z":123456789.12345678}}"#;
        let Ok(Message::Request(first)) = Message::parse(text) else {
            panic!("parses");
        };
        let again = Message::Request(first.clone()).to_json();
        let Ok(Message::Request(second)) = Message::parse(again.as_bytes()) else {
            panic!("re-parses: {again}");
        };
        assert_eq!(first.params, second.params, "{again}");
    }

    /// `to_json` writes by hand what the `Serialize` impl writes through serde_json.
    #[test]
    fn to_json_writes_what_serialize_writes() {
        let params = json!({"name": "a\"b\n", "_meta": {"k": [1, 2.5, null, true]}});
        let data = json!({"why": "\u{1}"});
        let messages = [
            Message::Request(Request::new(
                Id::Num(-7),
                "tools/call",
                Some(params.clone()),
            )),
            Message::Request(Request::new(Id::Str("x\ty".into()), "ping", None)),
            Message::Notification(Notification::new("notifications/progress", Some(params))),
            Message::Notification(Notification::new("notifications/initialized", None)),
            Message::Response(Response::ok(Id::Num(1), json!({"content": []}))),
            Message::Response(Response::err(None, ErrorObject::parse_error("bad"))),
            Message::Response(Response::err(
                Some(Id::Str("7".into())),
                ErrorObject {
                    code: -32602,
                    message: "m".into(),
                    data: Some(data),
                },
            )),
        ];
        for m in messages {
            assert_eq!(m.to_json(), serde_json::to_string(&m).unwrap());
        }
    }

    /// A request with the gateway's hop envelope is written as if the envelope were in
    /// `params._meta`, after the client's own members, whichever way it is written.
    #[test]
    fn the_hop_envelope_is_written_into_meta() {
        let hop = r#""io.modelcontextprotocol/protocolVersion":"2026-07-28","k":{"a":[1]}"#;
        for params in [
            None,
            Some(json!({"name": "t", "arguments": {"x": 1}})),
            Some(json!({"name": "t", "_meta": {"progressToken": 3}, "arguments": {}})),
            Some(json!({"_meta": {}})),
        ] {
            let mut r = Request::new(Id::Num(9), "tools/call", params.clone());
            r.hop_meta = Some(hop.into());
            let full = r.full_params().expect("params");
            let meta = full["_meta"].as_object().expect("a _meta");
            let keys: Vec<&str> = meta.keys().map(String::as_str).collect();
            let mut expected: Vec<&str> = params
                .as_ref()
                .and_then(|p| p.get("_meta"))
                .and_then(Value::as_object)
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            expected.extend(["io.modelcontextprotocol/protocolVersion", "k"]);
            assert_eq!(keys, expected, "{params:?}");
            let m = Message::Request(r);
            let text = m.to_json();
            assert_eq!(text, serde_json::to_string(&m).unwrap(), "{params:?}");
            let Ok(Message::Request(back)) = Message::parse(text.as_bytes()) else {
                panic!("re-parses: {text}");
            };
            assert_eq!(back.full_params(), Some(full), "{text}");
        }
    }

    /// The members of `value`'s objects, in order, all the way down.
    fn order(value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    out.push(k.clone());
                    out.extend(order(v));
                }
            }
            Value::Array(items) => items.iter().for_each(|v| out.extend(order(v))),
            _ => {}
        }
        out
    }

    #[test]
    fn a_tool_calls_arguments_pass_through_as_the_clients_text() {
        // Long enough that the depth check reads the member names on its way.
        let long = format!(
            r#"{{"name":"t","arguments":{{"z":"{}","a\"b":[{{"x":1}}],"z":2,"m":{{}}}}}}"#,
            "y".repeat(300)
        );
        let cases = [
            long.as_str(),
            r#"{"name":"t","arguments":{ "b" : [1, 2.50, "x\u0041"], "a":{} },"_meta":{"progressToken":1}}"#,
            r#"{"arguments":[1,{"z":null}],"name":"t"}"#,
            r#"{"name":"t","_meta":{},"arguments":"text"}"#,
            r#"{"name":"t","arguments":{"a":1},"arguments":{"b":2},"x":3}"#,
            r#"{"name":"t","arguments":null}"#,
        ];
        for params in cases {
            let text =
                format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{params}}}"#);
            let Ok(Message::Request(req)) = Message::parse(text.as_bytes()) else {
                panic!("parses: {text}");
            };
            let raw = req.arguments().expect("kept as text");
            // What a parser that builds values reads, member order included.
            let as_values: Value = serde_json::from_str(&text).unwrap();
            let expected = &as_values["params"];
            assert_eq!(
                req.param("arguments"),
                expected.get("arguments"),
                "{params}"
            );
            assert_eq!(req.full_params().as_ref(), Some(expected), "{params}");
            assert_eq!(
                order(&req.full_params().unwrap()),
                order(expected),
                "{params}"
            );
            assert_eq!(req.param("name"), Some(&json!("t")));
            let names = crate::protocol::arguments::Shape::of(&expected["arguments"]);
            assert_eq!(raw.shape(), names, "{params}");
            // Written back: the client's own bytes for the arguments, in their place.
            let written = Message::Request(req.clone()).to_json();
            assert!(written.contains(raw.text()), "{written}");
            let again: Value = serde_json::from_str(&written).unwrap();
            assert_eq!(&again["params"], expected, "{written}");
            assert_eq!(order(&again["params"]), order(expected), "{written}");
            assert_eq!(
                serde_json::to_value(Message::Request(req.clone())).unwrap(),
                again
            );
            // The same request built from values is equal to it.
            let built = Request::new(Id::Num(7), "tools/call", Some(expected.clone()));
            assert_eq!(req, built);
            assert_eq!(req.clone().into_params(), Some(expected.clone()));
        }
    }

    /// Text that passes through (arguments, results) is written on one line, whatever
    /// line breaks the peer put between its tokens: stdio peers frame messages by lines.
    #[test]
    fn pretty_printed_pass_through_text_is_written_on_one_line() {
        for text in [
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\",\"arguments\":{\r\n  \"a\": [1,\n 2]\n}}}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\n  \"content\": [],\r\n  \"x\": \"a\\nb\"\n}}",
        ] {
            let parsed = Message::parse(text.as_bytes()).expect("parses");
            let written = parsed.to_json();
            assert!(!written.contains(['\n', '\r']), "{written}");
            assert_eq!(
                serde_json::from_str::<Value>(&written).unwrap(),
                serde_json::from_str::<Value>(text).unwrap()
            );
        }
    }

    #[test]
    fn only_a_tool_call_keeps_its_arguments_apart() {
        let text = r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","arguments":{"a":"b"},"x":1}}"#;
        let Ok(Message::Request(req)) = Message::parse(text.as_bytes()) else {
            panic!("parses");
        };
        assert!(req.arguments().is_none());
        assert_eq!(
            req.params_except_arguments(),
            Some(&json!({"name": "p", "arguments": {"a": "b"}, "x": 1}))
        );
        let text =
            r#"{"jsonrpc":"2.0","method":"notifications/x","params":{"arguments":[1],"y":2}}"#;
        let Ok(Message::Notification(n)) = Message::parse(text.as_bytes()) else {
            panic!("parses");
        };
        assert_eq!(n.params, Some(json!({"arguments": [1], "y": 2})));
        assert_eq!(order(n.params.as_ref().unwrap()), ["arguments", "y"]);
    }

    #[test]
    fn changing_the_params_keeps_the_arguments_and_their_place() {
        let text = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"task":{},"name":"t","arguments":{"a":1},"z":0}}"#;
        let Ok(Message::Request(mut req)) = Message::parse(text.as_bytes()) else {
            panic!("parses");
        };
        assert_eq!(req.remove_param("task"), Some(json!({})));
        assert!(
            req.arguments().is_some(),
            "removing another member leaves them as text"
        );
        let full = req.full_params().unwrap();
        assert_eq!(order(&full), ["name", "arguments", "a", "z"]);
        let written: Value =
            serde_json::from_str(&Message::Request(req.clone()).to_json()).unwrap();
        assert_eq!(order(&written["params"]), ["name", "arguments", "a", "z"]);
        req.params_mut().as_mut().unwrap()["arguments"]["b"] = json!(2);
        assert!(req.arguments().is_none(), "changed, they are values");
        assert_eq!(req.param("arguments"), Some(&json!({"a": 1, "b": 2})));
        let mut other = req.params();
        other.object()["extra"] = json!(true);
        assert_eq!(other.get("arguments"), Some(&json!({"a": 1, "b": 2})));
    }

    #[test]
    fn arguments_nested_too_deep_are_refused_as_a_parsed_message_would_be() {
        use crate::protocol::arguments::MAX_DEPTH;
        for depth in [
            1,
            100,
            MAX_DEPTH - 1,
            MAX_DEPTH,
            MAX_DEPTH + 1,
            MAX_DEPTH + 2,
            300,
        ] {
            for args in [
                format!("{}1{}", "[".repeat(depth), "]".repeat(depth)),
                format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth)),
            ] {
                let text = format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{args}}}}}"#
                );
                let as_values = serde_json::from_str::<Value>(&text).is_ok();
                let parsed = Message::parse(text.as_bytes());
                assert_eq!(parsed.is_ok(), as_values, "depth {depth}: {parsed:?}");
                if let Err(ParseError::Invalid(e)) = parsed {
                    assert_eq!(e.code, crate::protocol::codes::PARSE_ERROR);
                }
            }
        }
    }

    #[test]
    fn a_duplicate_envelope_member_is_refused_naming_it() {
        for key in ["jsonrpc", "id", "method", "params", "result", "error"] {
            let text = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{}},"result":{{}},"error":{{}},"{key}":"again"}}"#
            );
            match Message::parse(text.as_bytes()) {
                Err(ParseError::Invalid(e)) => {
                    assert_eq!(e.code, crate::protocol::codes::INVALID_REQUEST, "{key}");
                    assert!(e.message.contains(&format!("'{key}'")), "{}", e.message);
                }
                other => panic!("{key}: {other:?}"),
            }
        }
        // Other members may repeat (last wins, as before); nested objects are the payload's.
        let ok = r#"{"jsonrpc":"2.0","id":1,"method":"m","x":1,"x":2,"params":{"a":1,"a":2}}"#;
        assert!(Message::parse(ok.as_bytes()).is_ok());
    }
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Message, ParseError> {
        Message::parse(v.to_string().as_bytes())
    }

    #[test]
    fn parses_each_kind_and_round_trips() {
        for v in [
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"x"}}),
            json!({"jsonrpc":"2.0","id":"a","method":"ping"}),
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            json!({"jsonrpc":"2.0","id":7,"result":{"tools":[]}}),
            json!({"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"nope","data":{"x":1}}}),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}),
        ] {
            let msg = parse(v.clone()).expect("parses");
            assert_eq!(msg.to_value(), v);
        }
    }

    #[test]
    fn rejects_what_mcp_forbids() {
        for (v, needle) in [
            (json!({"jsonrpc":"1.0","id":1,"method":"x"}), "jsonrpc"),
            (json!({"jsonrpc":"2.0","id":null,"method":"x"}), "'id'"),
            (json!({"jsonrpc":"2.0","id":1.5,"method":"x"}), "'id'"),
            (json!({"jsonrpc":"2.0","id":1,"method":3}), "'method'"),
            (
                json!({"jsonrpc":"2.0","id":1,"method":"x","params":[1]}),
                "'params'",
            ),
            (json!({"jsonrpc":"2.0","id":1}), "result"),
            (json!({"jsonrpc":"2.0","result":{}}), "'id'"),
            (json!("hello"), "object"),
        ] {
            match parse(v.clone()) {
                Err(ParseError::Invalid(e)) => {
                    assert_eq!(e.code, codes::INVALID_REQUEST, "{v}");
                    assert!(e.message.contains(needle), "{v}: {}", e.message);
                }
                other => panic!("{v} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_json_is_a_parse_error_and_arrays_are_batches() {
        match Message::parse(b"{not json") {
            Err(ParseError::Invalid(e)) => assert_eq!(e.code, codes::PARSE_ERROR),
            other => panic!("{other:?}"),
        }
        assert!(matches!(Message::parse(b"[]"), Err(ParseError::Batch(v)) if v.is_empty()));
    }

    #[test]
    fn field_order_of_params_is_preserved() {
        let text =
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"z":1,"a":2,"m":{"y":1,"b":2}}}"#;
        let msg = Message::parse(text.as_bytes()).expect("parses");
        assert_eq!(msg.to_json(), text);
    }

    /// The stateless parse takes the client's envelope out of `_meta` as the parse plus
    /// `Envelope::take` does: the same envelope or the same error, the same params left.
    #[test]
    fn the_stateless_parse_takes_the_envelope_as_envelope_take_does() {
        use super::envelope::{Envelope, Taken};
        let v = r#""io.modelcontextprotocol/protocolVersion":"2026-07-28""#;
        let c = r#""io.modelcontextprotocol/clientCapabilities":{"tasks":{}}"#;
        let i = r#""io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"}"#;
        let l = r#""io.modelcontextprotocol/logLevel":"debug""#;
        let params = [
            format!(r#"{{"name":"t","arguments":{{"a":1}},"_meta":{{{v},{c},{i}}}}}"#),
            format!(r#"{{"_meta":{{{v},{c}}},"name":"t","arguments":{{}}}}"#),
            format!(r#"{{"name":"t","_meta":{{"progressToken":7,{v},{c},{l},"x":[1]}}}}"#),
            format!(r#"{{"name":"t","_meta":{{{v},{c},{v}}}}}"#),
            // An escaped key is the same key.
            r#"{"name":"t","_meta":{"io.modelcontextprotocol\/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}"#.to_owned(),
            // Refused, each with its own message.
            r#"{"name":"t"}"#.to_owned(),
            r#"{"name":"t","_meta":5}"#.to_owned(),
            r#"{"name":"t","_meta":[1,{"a":2}]}"#.to_owned(),
            format!(r#"{{"name":"t","_meta":{{{c}}}}}"#),
            format!(r#"{{"name":"t","_meta":{{"io.modelcontextprotocol/protocolVersion":1,{c}}}}}"#),
            format!(r#"{{"name":"t","_meta":{{{v}}}}}"#),
            format!(r#"{{"name":"t","_meta":{{{v},"io.modelcontextprotocol/clientCapabilities":[]}}}}"#),
        ];
        for method in ["tools/call", "prompts/get"] {
            for p in &params {
                let text =
                    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{p}}}"#);
                let Ok(Message::Request(mut read)) = Message::parse(text.as_bytes()) else {
                    panic!("{text}");
                };
                let (parsed, taken) = Message::parse_stateless(text.as_bytes());
                let Ok(Message::Request(stateless)) = parsed else {
                    panic!("{text}");
                };
                let expected = Envelope::take(read.params_except_arguments_mut());
                assert_eq!(Envelope::from_taken(taken), expected, "{text}");
                if expected.is_ok() {
                    assert_eq!(stateless.full_params(), read.full_params(), "{text}");
                }
            }
        }
        // Nothing to take from a message that is not a request's object.
        for text in ["[1]", "{bad", r#"{"jsonrpc":"2.0","id":1,"result":{}}"#] {
            assert_eq!(
                Message::parse_stateless(text.as_bytes()).1,
                Taken::default()
            );
        }
    }

    /// What the stateless parse leaves of `_meta` keeps the client's order, and the
    /// arguments their place and text.
    #[test]
    fn the_stateless_parse_keeps_the_order_of_what_it_leaves() {
        let text = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"b":1,"io.modelcontextprotocol/protocolVersion":"2026-07-28","a":2},"name":"t","arguments":{ "z" : 1 },"z":0}}"#;
        let (parsed, taken) = Message::parse_stateless(text.as_bytes());
        let Ok(Message::Request(req)) = parsed else {
            panic!("{text}");
        };
        assert!(taken.meta);
        assert_eq!(taken.keys[0], Some(json!("2026-07-28")));
        assert_eq!(
            Message::Request(req).to_json(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"b":1,"a":2},"name":"t","arguments":{ "z" : 1 },"z":0}}"#
        );
        // A `_meta` of envelope keys alone is gone; the arguments stay where they were.
        let text = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"x"},"arguments":{},"name":"t"}}"#;
        let Ok(Message::Request(req)) = Message::parse_stateless(text.as_bytes()).0 else {
            panic!("{text}");
        };
        assert_eq!(
            Message::Request(req).to_json(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{},"name":"t"}}"#
        );
    }
}
