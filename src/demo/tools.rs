//! The demo server's tools: their definitions, argument checking and bodies.
//!
//! Arguments are validated against each tool's own `inputSchema` (the small
//! subset of JSON Schema the definitions below use), so the advertised schema
//! and the enforced rules cannot drift apart. Per MCP 2025-11-25, arguments
//! that fail validation produce a tool result with `isError: true` that the
//! model can read and act on; only an unknown tool or a malformed request is
//! a JSON-RPC error.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Number, Value, json};

use super::{MethodResult, RpcError, confirm, required_str};

/// Every tool definition, as a 2026-07-28 `tools/list` reports them. (A handshake-era
/// session sees `confirm` only if it can answer elicitation requests; see
/// [`super::handshake_tools`].)
pub(super) fn list() -> Vec<Value> {
    vec![
        json!({
            "name": "add",
            "title": "Add two numbers",
            "description": "Adds two numbers and returns their sum, both as text and as structured content.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "a": { "type": "number", "description": "The first addend" },
                    "b": { "type": "number", "description": "The second addend" },
                },
                "required": ["a", "b"],
                "additionalProperties": false,
            },
            "outputSchema": {
                "type": "object",
                "properties": { "sum": { "type": "number", "description": "a + b" } },
                "required": ["sum"],
            },
            "annotations": {
                "readOnlyHint": true,
                "destructiveHint": false,
                "idempotentHint": true,
                "openWorldHint": false,
            },
        }),
        json!({
            "name": "echo",
            "title": "Echo a message",
            "description": "Returns the given message unchanged. Handy for checking that calls get through.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "message": { "type": "string", "description": "The text to send back" },
                },
                "required": ["message"],
                "additionalProperties": false,
            },
            "annotations": {
                "readOnlyHint": true,
                "idempotentHint": true,
                "openWorldHint": false,
            },
        }),
        json!({
            "name": "word_count",
            "title": "Count words and characters",
            "description": "Counts the whitespace-separated words and the Unicode characters in a text.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "text": { "type": "string", "description": "The text to measure" },
                },
                "required": ["text"],
                "additionalProperties": false,
            },
            "outputSchema": {
                "type": "object",
                "properties": {
                    "words": { "type": "integer", "minimum": 0 },
                    "characters": { "type": "integer", "minimum": 0 },
                },
                "required": ["words", "characters"],
            },
            "annotations": {
                "readOnlyHint": true,
                "idempotentHint": true,
                "openWorldHint": false,
            },
        }),
        json!({
            "name": "now",
            "title": "Current time",
            "description": "Returns the current UTC time in RFC 3339 format, to the second.",
            "inputSchema": { "type": "object", "additionalProperties": false },
            "annotations": {
                "readOnlyHint": true,
                "idempotentHint": false,
                "openWorldHint": false,
            },
        }),
        confirm::definition(),
    ]
}

/// A `tools/call` request checked against the tool's definition.
pub(super) enum Checked {
    /// A known tool, with arguments that fit its `inputSchema`.
    Valid {
        name: String,
        args: Map<String, Value>,
    },
    /// Arguments that do not fit the schema: the tool-error result that says why.
    Invalid(Value),
}

/// Reads and checks the tool name and arguments of a `tools/call`. An unknown tool or a
/// malformed request is a JSON-RPC error; arguments that break the tool's schema are a
/// tool error the model can act on.
pub(super) fn check(params: &Map<String, Value>) -> Result<Checked, RpcError> {
    let name = required_str(params, "name")?;
    let args = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(args)) => args.clone(),
        Some(_) => return Err(RpcError::invalid_params("`arguments` must be an object")),
    };
    let Some(def) = list().into_iter().find(|def| def["name"] == name) else {
        return Err(RpcError::invalid_params(format!("Unknown tool: {name}"))
            .with_data(json!({ "name": name })));
    };
    Ok(match validate(&def["inputSchema"], &args) {
        Ok(()) => Checked::Valid {
            name: name.to_owned(),
            args,
        },
        Err(problem) => Checked::Invalid(tool_error(format!(
            "Invalid arguments for `{name}`: {problem}"
        ))),
    })
}

/// Handles `tools/call` for every tool that needs nothing but its arguments (all but
/// `confirm`, which the era-specific code serves).
pub(super) fn call(params: &Map<String, Value>) -> MethodResult {
    let (name, args) = match check(params)? {
        Checked::Valid { name, args } => (name, args),
        Checked::Invalid(result) => return Ok(result),
    };
    let name = name.as_str();
    // Validation guarantees the fields read below exist with the right type;
    // the fallbacks only keep the code panic-free.
    let str_arg = |field: &str| args.get(field).and_then(Value::as_str).unwrap_or_default();
    Ok(match name {
        "add" => match (args.get("a"), args.get("b")) {
            (Some(Value::Number(a)), Some(Value::Number(b))) => match add(a, b) {
                Some(sum) => json!({
                    "content": [text(sum.to_string())],
                    "structuredContent": { "sum": sum },
                }),
                None => tool_error("The sum is too large to represent."),
            },
            _ => tool_error("Both `a` and `b` must be numbers."),
        },
        "echo" => json!({ "content": [text(str_arg("message"))] }),
        "word_count" => {
            let input = str_arg("text");
            let counts = json!({
                "words": input.split_whitespace().count(),
                "characters": input.chars().count(),
            });
            // The spec asks tools with structured output to mirror it as
            // serialized JSON text for clients that ignore structuredContent.
            json!({ "content": [text(counts.to_string())], "structuredContent": counts })
        }
        "now" => json!({ "content": [text(rfc3339_utc(SystemTime::now()))] }),
        _ => tool_error(format!("Tool `{name}` is listed but not implemented.")),
    })
}

pub(super) fn text(text: impl Into<String>) -> Value {
    json!({ "type": "text", "text": text.into() })
}

pub(super) fn tool_error(message: impl Into<String>) -> Value {
    json!({ "content": [text(message)], "isError": true })
}

/// Adds two JSON numbers, keeping integers exact and reporting integral
/// float sums as integers so `2 + 3` reads "5" rather than "5.0".
/// Returns `None` when the sum is not finite (JSON cannot carry it).
fn add(a: &Number, b: &Number) -> Option<Number> {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64())
        && let Some(sum) = a.checked_add(b)
    {
        return Some(sum.into());
    }
    let sum = a.as_f64()? + b.as_f64()?;
    // Below 2^53 every integral f64 converts to i64 exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if sum.fract() == 0.0 && sum.abs() < EXACT {
        return Some(Number::from(sum as i64));
    }
    Number::from_f64(sum)
}

/// Checks `args` against an object schema: `required`, `additionalProperties:
/// false`, and per-property `type` (and `enum`, if given).
fn validate(schema: &Value, args: &Map<String, Value>) -> Result<(), String> {
    let empty = Map::new();
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required = schema.get("required").and_then(Value::as_array);
    for field in required.into_iter().flatten().filter_map(Value::as_str) {
        if !args.contains_key(field) {
            return Err(format!("missing required argument `{field}`"));
        }
    }
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    for (field, value) in args {
        let Some(prop) = props.get(field) else {
            if closed {
                return Err(format!("unexpected argument `{field}`"));
            }
            continue;
        };
        if let Some(expected) = prop.get("type").and_then(Value::as_str)
            && !has_type(value, expected)
        {
            return Err(format!(
                "argument `{field}` must be of type {expected}, got {}",
                type_name(value)
            ));
        }
        if let Some(allowed) = prop.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            return Err(format!(
                "argument `{field}` must be one of {}",
                Value::from(allowed.clone())
            ));
        }
    }
    Ok(())
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "integer" => value.is_i64() || value.is_u64(),
        // Every JSON number is a "number", integral or not.
        other => type_name(value) == other,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Formats a time as RFC 3339 in UTC with whole seconds, e.g.
/// `2025-06-18T09:30:00Z`, without pulling in a date-time crate.
pub(super) fn rfc3339_utc(time: SystemTime) -> String {
    let secs: i64 = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            // Round towards the past so the time of day stays in 0..86400.
            let d = before.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -whole - i64::from(d.subsec_nanos() > 0)
        }
    };
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let second_of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Converts days since 1970-01-01 into a proleptic Gregorian (year, month,
/// day), using the era-based method (400-year cycles of 146 097 days) so that
/// leap years need no table.
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so the leap day falls at the end of a
    // "year" that runs March to February.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Month and day are in 1..=12 and 1..=31 by construction.
    let small = |value: i64| u32::try_from(value).unwrap_or_default();
    (year, small(month), small(day))
}
