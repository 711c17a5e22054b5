//! 2026-07-28 Streamable HTTP headers that mirror the body (SEP-2243): `Mcp-Method`,
//! `Mcp-Name`, and `Mcp-Param-<Name>` for tool arguments whose schema property carries
//! `x-mcp-header`.
//!
//! Values that are not safe plain ASCII travel as `=?base64?<standard padded base64>?=`;
//! the markers are lowercase and case-sensitive, and a value missing either marker is a
//! literal. The gateway checks these against the body on the way in (a mismatch is -32020,
//! HTTP 400) and writes them afresh, for the upstream's own names, on the way out.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::arguments::Params;
use super::methods;

pub const METHOD: &str = "mcp-method";
pub const NAME: &str = "mcp-name";
pub const PARAM_PREFIX: &str = "mcp-param-";
pub const SCHEMA_KEY: &str = "x-mcp-header";

const OPEN: &str = "=?base64?";
const CLOSE: &str = "?=";

/// The body field a request's `Mcp-Name` mirrors, if its method has one.
pub fn name_of<'a>(method: &str, params: Option<&'a Value>) -> Option<&'a str> {
    let key = match method {
        methods::TOOLS_CALL | methods::PROMPTS_GET => "name",
        methods::RESOURCES_READ => "uri",
        // SEP-2663: `Mcp-Name: <taskId>`, so a load balancer can route by task.
        methods::TASKS_GET | methods::TASKS_UPDATE | methods::TASKS_CANCEL => "taskId",
        _ => return None,
    };
    super::field::of(params?, key)?.as_str()
}

/// Whether a method requires `Mcp-Name`.
pub fn needs_name(method: &str) -> bool {
    matches!(
        method,
        methods::TOOLS_CALL
            | methods::PROMPTS_GET
            | methods::RESOURCES_READ
            | methods::TASKS_GET
            | methods::TASKS_UPDATE
            | methods::TASKS_CANCEL
    )
}

/// The header form of a value: as is when it is safe plain ASCII, else base64-wrapped.
pub fn encode(value: &str) -> String {
    if is_plain(value) {
        value.to_owned()
    } else {
        format!("{OPEN}{}{CLOSE}", STANDARD.encode(value.as_bytes()))
    }
}

/// Safe to send as is: visible ASCII and interior spaces, no leading or trailing
/// whitespace, and not something that would read as a wrapped value.
fn is_plain(value: &str) -> bool {
    let bytes = value.as_bytes();
    let visible = bytes.iter().all(|b| (0x20..0x7f).contains(b));
    let trimmed = !value.starts_with(' ') && !value.ends_with(' ');
    visible && trimmed && !(value.starts_with(OPEN) && value.ends_with(CLOSE))
}

/// The value a header carries: a wrapped value decoded (it must be valid padded base64 of
/// UTF-8), anything else literally.
pub fn decode(header: &str) -> Result<String, String> {
    let Some(inner) = header
        .strip_prefix(OPEN)
        .and_then(|rest| rest.strip_suffix(CLOSE))
    else {
        return Ok(header.to_owned());
    };
    let bytes = STANDARD
        .decode(inner)
        .map_err(|e| format!("invalid base64 in {header:?}: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("base64 value {header:?} is not UTF-8"))
}

/// One `x-mcp-header` annotation of a tool's input schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The header name after `Mcp-Param-`, as the schema spells it.
    pub name: String,
    /// The chain of `properties` keys leading to the argument.
    pub path: Vec<String>,
}

/// The `x-mcp-header` annotations of an input schema, reached through chains of
/// `properties` only (the places the spec allows).
pub fn param_headers(schema: &Value) -> Vec<ParamHeader> {
    let mut found = Vec::new();
    collect(schema, &mut Vec::new(), &mut found);
    found
}

/// Whether a schema has any `x-mcp-header` annotation [`param_headers`] would find, without
/// collecting them: most tools have none, and their schema need not be copied per call.
pub fn has_param_headers(schema: &Value) -> bool {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|props| {
            props.values().any(|prop| {
                prop.get(SCHEMA_KEY).is_some_and(Value::is_string) || has_param_headers(prop)
            })
        })
}

fn collect(schema: &Value, path: &mut Vec<String>, found: &mut Vec<ParamHeader>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, prop) in props {
        path.push(key.clone());
        if let Some(name) = prop.get(SCHEMA_KEY).and_then(Value::as_str) {
            found.push(ParamHeader {
                name: name.to_owned(),
                path: path.clone(),
            });
        }
        collect(prop, path, found);
        path.pop();
    }
}

/// The header value for an argument: strings as they are, integers in decimal, booleans
/// as `true`/`false`; `None` for a null or absent argument (the header is then omitted).
pub fn param_value(arguments: Option<&Value>, path: &[String]) -> Option<String> {
    let mut value = arguments?;
    for key in path {
        value = value.get(key)?;
    }
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0)
            .map(|f| format!("{}", f as i64)),
        _ => None,
    }
}

/// Whether a header value (decoded) matches the argument value, comparing numbers
/// numerically (`42.0` matches `42`).
pub fn param_matches(header: &str, expected: &str) -> bool {
    if header == expected {
        return true;
    }
    match (header.parse::<f64>(), expected.parse::<f64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// An HTTP header of one request, name and value; the fixed ones are not copied.
pub type Header = (Cow<'static, str>, Cow<'static, str>);

/// The headers an HTTP request for `method` must carry beside `MCP-Protocol-Version`:
/// `Mcp-Method`, `Mcp-Name` where the method has one, and `Mcp-Param-*` for a tool call
/// whose (upstream's own) schema asks for them.
pub fn for_request(method: &str, params: &Params, tool_schema: Option<&Value>) -> Vec<Header> {
    let mut headers = Vec::with_capacity(2);
    headers.push((Cow::Borrowed("Mcp-Method"), Cow::Owned(method.to_owned())));
    if let Some(name) = name_of(method, params.value.as_ref()) {
        headers.push((Cow::Borrowed("Mcp-Name"), Cow::Owned(encode(name))));
    }
    if method == methods::TOOLS_CALL
        && let Some(schema) = tool_schema
    {
        // Parsed only here, for a tool whose schema asks for headers.
        let arguments = params.get("arguments");
        for header in param_headers(schema) {
            if let Some(value) = param_value(arguments, &header.path) {
                let name = format!("Mcp-Param-{}", header.name);
                headers.push((Cow::Owned(name), Cow::Owned(encode(&value))));
            }
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_values_pass_and_others_are_wrapped_both_ways() {
        assert_eq!(encode("us-west 1"), "us-west 1");
        for tricky in [" lead", "trail ", "héllo", "tab\there", "=?base64?abc?="] {
            let wire = encode(tricky);
            assert!(wire.starts_with(OPEN), "{tricky:?} → {wire}");
            assert_eq!(decode(&wire).as_deref(), Ok(tricky));
        }
        assert_eq!(decode("=?base64?SGVsbG8=?=").as_deref(), Ok("Hello"));
        assert!(decode("=?base64?SGVsbG8?=").is_err(), "missing padding");
        assert!(decode("=?base64?SGVs!!!bG8=?=").is_err(), "bad characters");
        assert_eq!(
            decode("=?base64?SGVsbG8=").as_deref(),
            Ok("=?base64?SGVsbG8=")
        );
        assert_eq!(
            decode("=?BASE64?SGVsbG8=?=").as_deref(),
            Ok("=?BASE64?SGVsbG8=?=")
        );
    }

    #[test]
    fn annotations_are_found_through_properties_and_rendered_from_arguments() {
        let schema = json!({
            "type": "object",
            "properties": {
                "region": { "type": "string", "x-mcp-header": "Region" },
                "opts": { "type": "object", "properties": {
                    "dry": { "type": "boolean", "x-mcp-header": "Dry" },
                    "n": { "type": "integer", "x-mcp-header": "N" },
                }},
                "list": { "type": "array", "items": { "x-mcp-header": "Nope" } },
            }
        });
        let params = json!({ "name": "t", "arguments": {
            "region": "eu", "opts": { "dry": true, "n": 42 }, "list": [] } });
        let headers = for_request(methods::TOOLS_CALL, &params.clone().into(), Some(&schema));
        let headers: Vec<(String, String)> = headers
            .into_iter()
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            headers,
            vec![
                ("Mcp-Method".to_owned(), "tools/call".to_owned()),
                ("Mcp-Name".to_owned(), "t".to_owned()),
                ("Mcp-Param-Region".to_owned(), "eu".to_owned()),
                ("Mcp-Param-Dry".to_owned(), "true".to_owned()),
                ("Mcp-Param-N".to_owned(), "42".to_owned()),
            ]
        );
        assert!(param_matches("42.0", "42"));
        assert!(!param_matches("43", "42"));
        let absent = json!({ "name": "t", "arguments": { "region": null } });
        assert_eq!(
            for_request(methods::TOOLS_CALL, &absent.clone().into(), Some(&schema)).len(),
            2
        );
    }
}
