//! `${VAR}` expansion of string values from the environment, done before deserialisation.
//!
//! Syntax: `${NAME}` is the variable's value (an error when unset), `${NAME:-default}` falls
//! back to `default` when it is unset or empty, and `$${` is a literal `${`. A `$` anywhere
//! else is kept as is. Values are never echoed in errors: they are often tokens.

use serde_json::Value;

use super::error::{ConfigError, KeyPath};

/// Why one `${...}` reference could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("environment variable {0} is not set")]
    Missing(String),
    #[error("\"${{\" without a closing \"}}\" (write \"$${{\" for a literal \"${{\")")]
    Unterminated,
    #[error(
        "invalid variable reference: names are letters, digits and '_', not starting with a digit"
    )]
    BadName,
}

/// Expands every string value under `value` in place; map keys are left alone. Problems are
/// pushed to `errors` with the path of the value they were found in.
pub(crate) fn expand_tree(
    value: &mut Value,
    path: &KeyPath,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    match value {
        Value::String(text) => match expand_str(text, lookup) {
            Ok(expanded) => *text = expanded,
            Err(problems) => errors.extend(problems.iter().map(|p| path.error(p.to_string()))),
        },
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                expand_tree(item, &path.index(index), lookup, errors);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                expand_tree(item, &path.key(key), lookup, errors);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Expands one string, reporting every bad reference in it.
pub fn expand_str(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<ExpandError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let Some(close) = after.find('}') else {
                errors.push(ExpandError::Unterminated);
                rest = "";
                break;
            };
            match resolve(&after[..close], lookup) {
                Ok(value) => out.push_str(&value),
                Err(error) => errors.push(error),
            }
            rest = &after[close + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The value of the reference `NAME` or `NAME:-default` (the text between the braces).
fn resolve(
    reference: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let (name, default) = match reference.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (reference, None),
    };
    if !is_variable_name(name) {
        return Err(ExpandError::BadName);
    }
    match (lookup(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_owned()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(ExpandError::Missing(name.to_owned())),
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cr3t".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn expand(text: &str) -> Result<String, Vec<ExpandError>> {
        expand_str(text, &env)
    }

    #[test]
    fn references_defaults_and_escapes() {
        assert_eq!(expand("Bearer ${TOKEN}").unwrap(), "Bearer s3cr3t");
        assert_eq!(expand("${UNSET:-fallback}").unwrap(), "fallback");
        assert_eq!(expand("${EMPTY:-fallback}").unwrap(), "fallback");
        assert_eq!(expand("${EMPTY}").unwrap(), "");
        assert_eq!(expand("$${TOKEN}").unwrap(), "${TOKEN}");
        assert_eq!(expand("cost: $5 $$x $").unwrap(), "cost: $5 $$x $");
    }

    #[test]
    fn every_bad_reference_is_reported() {
        let errors = expand("${A} ${TOKEN} ${1X} ${B}").unwrap_err();
        assert_eq!(
            errors,
            vec![
                ExpandError::Missing("A".into()),
                ExpandError::BadName,
                ExpandError::Missing("B".into()),
            ]
        );
        assert_eq!(
            expand("${TOKEN").unwrap_err(),
            vec![ExpandError::Unterminated]
        );
    }

    #[test]
    fn tree_errors_carry_paths_and_no_values() {
        let mut value =
            serde_json::json!({"h": {"Authorization": "Bearer ${NOPE} ${TOKEN}"}, "a": ["${X}"]});
        let mut errors = Vec::new();
        expand_tree(&mut value, &KeyPath::default(), &env, &mut errors);
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "h.Authorization: environment variable NOPE is not set",
                "a[0]: environment variable X is not set",
            ]
        );
        assert!(!lines.concat().contains("s3cr3t"));
    }
}
