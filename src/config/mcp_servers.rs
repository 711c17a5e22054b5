//! The desktop-client format (`{"mcpServers": {...}}`), mapped onto gateway.yaml's `upstreams`.
//!
//! Lets an existing Claude Desktop, Cursor or VS Code server list be served as is. The result
//! goes through the same deserialisation and validation as gateway.yaml; [`Renames`] maps the
//! error paths back to the names the user wrote.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::{ConfigError, KeyPath};

/// The key that marks a desktop-client file.
pub(crate) const MCP_SERVERS: &str = "mcpServers";

/// Entry keys copied unchanged: they mean the same in both formats.
const COPIED: &[&str] = &["command", "args", "env", "cwd", "url", "headers"];
/// Entry keys other clients use that change nothing about how the server is reached.
const IGNORED: &[&str] = &["autoApprove", "alwaysAllow", "timeout", "description"];
const EXPECTED: &str = "command, args, env, cwd, url, headers, type, disabled";

/// Normalised upstream name → the entry name as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Renames(BTreeMap<String, String>);

/// Whether a document is in the desktop-client format.
pub(crate) fn is_desktop(file_is_json: bool, root: &Value) -> bool {
    file_is_json || root.get(MCP_SERVERS).is_some()
}

/// Converts a desktop-client document into `{"upstreams": {...}}`.
pub(crate) fn convert(root: &Value) -> Result<(Value, Renames), Vec<ConfigError>> {
    let path = KeyPath::root(MCP_SERVERS);
    let servers = match root.get(MCP_SERVERS) {
        Some(Value::Object(servers)) => servers,
        Some(_) => {
            return Err(vec![
                path.error("must be a mapping of server names to servers"),
            ]);
        }
        None => {
            return Err(vec![
                path.error("missing: a .json config is read as a desktop-client file"),
            ]);
        }
    };
    log_other_keys(root);
    let mut errors = Vec::new();
    let mut upstreams = Map::new();
    let mut renames = Renames::default();
    for (original, entry) in servers {
        let entry_path = path.key(original);
        let Some(converted) = convert_entry(original, entry, &entry_path, &mut errors) else {
            continue;
        };
        let name = normalise(original);
        if let Some(first) = renames.0.get(&name) {
            let message = format!("normalises to {name:?}, like {MCP_SERVERS}.{first}");
            errors.push(entry_path.error(message));
            continue;
        }
        renames.0.insert(name.clone(), original.clone());
        upstreams.insert(name, Value::Object(converted));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut gateway = Map::new();
    gateway.insert("upstreams".to_owned(), Value::Object(upstreams));
    Ok((Value::Object(gateway), renames))
}

/// Lower case, with `_`, spaces and dots turned into `-`; the result is validated like any name.
pub(crate) fn normalise(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '_' | ' ' | '.' => '-',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

impl Renames {
    /// Rewrites `upstreams.<normalised>…` in an error path back to `mcpServers.<original>…`.
    pub(crate) fn restore(&self, mut error: ConfigError) -> ConfigError {
        for (name, original) in &self.0 {
            let head = format!("upstreams.{name}");
            let Some(rest) = error.path.strip_prefix(&head) else {
                continue;
            };
            if rest.is_empty() || rest.starts_with(['.', '[']) {
                error.path = format!("{MCP_SERVERS}.{original}{rest}");
                break;
            }
        }
        error
    }
}

/// One server entry in the gateway shape, or `None` when it is disabled or broken.
fn convert_entry(
    original: &str,
    entry: &Value,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
) -> Option<Map<String, Value>> {
    let Value::Object(fields) = entry else {
        errors.push(path.error("must be a mapping"));
        return None;
    };
    if disabled(fields, path, errors)? {
        tracing::info!(server = original, "Skipping disabled server");
        return None;
    }
    let before = errors.len();
    let mut converted = Map::new();
    for (key, value) in fields {
        if COPIED.contains(&key.as_str()) {
            converted.insert(key.clone(), value.clone());
        } else if key == "type" {
            transport(value, fields, &path.key(key), &mut converted, errors);
        } else if IGNORED.contains(&key.as_str()) {
            tracing::warn!(server = original, setting = %key, "Ignoring unsupported mcpServers setting");
        } else if key != "disabled" {
            errors.push(
                path.key(key)
                    .error(format!("unknown field, expected one of {EXPECTED}")),
            );
        }
    }
    (errors.len() == before).then_some(converted)
}

/// `Some(true)` to skip the entry; `None` when `disabled` is not a boolean.
fn disabled(
    fields: &Map<String, Value>,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
) -> Option<bool> {
    match fields.get("disabled") {
        None | Some(Value::Bool(false)) => Some(false),
        Some(Value::Bool(true)) => Some(true),
        Some(_) => {
            errors.push(path.key("disabled").error("must be true or false"));
            None
        }
    }
}

/// Maps `type` onto `transport`; `stdio` needs `command` and the HTTP kinds need `url`.
fn transport(
    value: &Value,
    fields: &Map<String, Value>,
    path: &KeyPath,
    converted: &mut Map<String, Value>,
    errors: &mut Vec<ConfigError>,
) {
    let kind = match value.as_str() {
        Some("stdio") => None,
        Some("sse") => Some("sse"),
        Some("http" | "streamable-http" | "streamableHttp" | "streamable_http") => {
            Some("streamable_http")
        }
        _ => {
            let expected = "stdio, sse, http, streamable-http or streamableHttp";
            errors.push(path.error(format!("unknown value {value}, expected {expected}")));
            return;
        }
    };
    let needed = if kind.is_some() { "url" } else { "command" };
    if !fields.contains_key(needed) {
        errors.push(path.error(format!("{value} requires {needed}")));
    } else if let Some(kind) = kind {
        converted.insert("transport".to_owned(), Value::from(kind));
    }
}

/// Desktop files hold other settings of their client; those are not ours to judge.
fn log_other_keys(root: &Value) {
    let others = root.as_object().into_iter().flat_map(Map::keys);
    for key in others.filter(|key| *key != MCP_SERVERS) {
        tracing::debug!(key = %key, "Ignoring top-level key of a desktop-client config");
    }
}
