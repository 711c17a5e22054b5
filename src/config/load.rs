//! Reads a config file and merges the layers: defaults → file → `MANIFOLD_*` → CLI overrides.
//!
//! The only file that touches figment. `${VAR}` references are expanded in the file layer
//! before merging; values from the environment layer and the CLI are taken literally.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use figment::providers::{Serialized, YamlExtended};
use figment::value::{Dict, Value as FigmentValue};
use figment::{Figment, error::Actual, error::Kind};
use serde_json::Value;

use super::error::{ConfigError, ConfigErrors, KeyPath};
use super::expand::expand_tree;
use super::mcp_servers::{self, Renames};
use super::model::Config;
use super::raw::{RawConfig, RawUpstream, TOP_LEVEL_KEYS};
use super::validate::validate;

/// Prefix of environment variables that override settings; `__` separates nesting levels
/// (`MANIFOLD_SECURITY__DNS_REBINDING_PROTECTION=off`).
const ENV_PREFIX: &str = "MANIFOLD_";
const ENV_NESTING: &str = "__";

/// Settings given on the command line; they beat every other layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`: replaces `listen`.
    pub listen: Option<String>,
}

/// A snapshot of environment variables: the source of `${VAR}` values and of the
/// `MANIFOLD_*` layer. Tests build one from pairs instead of touching the process environment.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// The process environment; variables whose name or value is not UTF-8 are skipped.
    /// This is the only place the configuration module reads the process environment.
    pub fn from_process() -> Self {
        let vars = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        Environment {
            vars: vars.collect(),
        }
    }

    /// An environment holding exactly `pairs`.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()));
        Environment {
            vars: vars.collect(),
        }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

impl fmt::Debug for Environment {
    // Names only: values are often secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

/// Loads `path` with the process environment. A `.json` file, or any file with a top-level
/// `mcpServers` key, is read as a desktop-client server list.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    load_with_env(path, overrides, &Environment::from_process())
}

/// Like [`load`], with an explicit environment.
pub fn load_with_env(
    path: &Path,
    overrides: &Overrides,
    env: &Environment,
) -> Result<Config, ConfigErrors> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::new(&source, format!("cannot read config file: {error}")))?;
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    let lookup = |name: &str| env.get(name).map(str::to_owned);
    let (file, renames, expansion) = file_layer(&text, is_json, &source, &lookup)?;
    let figment = merge_overrides(merge_env(defaults_and_file(file), env), overrides);
    with_expansion_errors(build(&figment, &renames), expansion)
}

/// Reports `${VAR}` problems together with every other problem, so one run of
/// `manifold check` lists everything. A value that could not be expanded is not judged
/// again (its literal `${VAR}` would only add a confusing second error at the same path).
fn with_expansion_errors(
    built: Result<Config, ConfigErrors>,
    expansion: Vec<ConfigError>,
) -> Result<Config, ConfigErrors> {
    if expansion.is_empty() {
        return built;
    }
    let mut errors = expansion;
    if let Err(ConfigErrors(others)) = built {
        let unexpanded: Vec<String> = errors.iter().map(|e| e.path.clone()).collect();
        errors.extend(others.into_iter().filter(|e| !unexpanded.contains(&e.path)));
    }
    Err(ConfigErrors(errors))
}

/// Parses gateway.yaml (or desktop-client) text with `${VAR}` values from `env`; no
/// environment layer and no overrides. Meant for tests and `manifold check`-style tooling.
pub fn from_yaml_str(
    yaml: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let (file, renames, expansion) = file_layer(yaml, false, "", env)?;
    with_expansion_errors(build(&defaults_and_file(file), &renames), expansion)
}

/// The two lowest layers: built-in defaults, then the file.
fn defaults_and_file(file: Value) -> Figment {
    Figment::new()
        .merge(Serialized::defaults(RawConfig::<FigmentValue>::default()))
        .merge(Serialized::defaults(file))
}

/// The file as a gateway-shaped tree with `${VAR}` expanded, plus the desktop-format renames.
fn file_layer(
    text: &str,
    is_json: bool,
    source: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(Value, Renames, Vec<ConfigError>), ConfigErrors> {
    let document = parse_document(text, is_json, source)?;
    let (mut tree, renames) = if mcp_servers::is_desktop(is_json, &document) {
        mcp_servers::convert(&document).map_err(ConfigErrors)?
    } else {
        (document, Renames::default())
    };
    let mut errors = Vec::new();
    expand_tree(&mut tree, &KeyPath::default(), lookup, &mut errors);
    let errors = errors
        .into_iter()
        .map(|error| renames.restore(error))
        .collect();
    Ok((tree, renames, errors))
}

/// Parses JSON or YAML (with merge keys) into a mapping; an empty document is an empty mapping.
fn parse_document(text: &str, is_json: bool, source: &str) -> Result<Value, ConfigError> {
    let parsed = if is_json {
        serde_json::from_str(text).map_err(|error| format!("invalid JSON: {error}"))
    } else {
        YamlExtended::from_str(text).map_err(|error| format!("invalid YAML: {error}"))
    };
    match parsed.map_err(|message| ConfigError::new(source, message))? {
        Value::Null => Ok(Value::Object(serde_json::Map::new())),
        document @ Value::Object(_) => Ok(document),
        _ => Err(ConfigError::new(source, "the top level must be a mapping")),
    }
}

/// Adds one layer per `MANIFOLD_*` variable naming a known setting, in name order. Others
/// (say `MANIFOLD_LOG`, read by other parts of the gateway) are not configuration.
fn merge_env(mut figment: Figment, env: &Environment) -> Figment {
    for (name, value) in &env.vars {
        let Some(key) = env_key(name) else {
            continue;
        };
        let top = key.split('.').next().unwrap_or_default();
        if !TOP_LEVEL_KEYS.contains(&top) {
            tracing::debug!(variable = %name, "Ignoring environment variable that names no setting");
            continue;
        }
        figment = figment.merge(Serialized::default(&key, env_value(value)));
    }
    figment
}

/// Lists and maps (`[a, b]`, `{k: v}`) are parsed with figment's syntax; anything else stays
/// text, because guessing types would mangle a hex seal key made of digits or a numeric token.
/// Every scalar setting accepts text.
fn env_value(value: &str) -> FigmentValue {
    if value.trim_start().starts_with(['[', '{']) {
        let Ok(parsed) = value.parse::<FigmentValue>();
        parsed
    } else {
        FigmentValue::from(value)
    }
}

/// `MANIFOLD_SECURITY__DNS_REBINDING_PROTECTION` → `security.dns_rebinding_protection`.
fn env_key(name: &str) -> Option<String> {
    let prefix = name.get(..ENV_PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(ENV_PREFIX) {
        return None;
    }
    let segments: Vec<String> = name[ENV_PREFIX.len()..]
        .split(ENV_NESTING)
        .map(str::to_ascii_lowercase)
        .collect();
    // Dots would be read as nesting by figment; empty segments name nothing.
    let valid = segments.iter().all(|s| !s.is_empty() && !s.contains('.'));
    valid.then(|| segments.join("."))
}

fn merge_overrides(figment: Figment, overrides: &Overrides) -> Figment {
    match &overrides.listen {
        Some(listen) => figment.merge(Serialized::default("listen", listen)),
        None => figment,
    }
}

/// Deserialises the merged layers and validates them, paths restored to what the user wrote.
fn build(figment: &Figment, renames: &Renames) -> Result<Config, ConfigErrors> {
    let restore = |errors: Vec<ConfigError>| {
        ConfigErrors(errors.into_iter().map(|e| renames.restore(e)).collect())
    };
    let (raw, mut errors) = deserialize(figment);
    // Upstreams whose shape is wrong are left out, and everything else is still validated,
    // so one run reports every problem of every kind.
    if let Some(raw) = raw {
        match validate(raw) {
            Ok(config) if errors.is_empty() => return Ok(config),
            Ok(_) => {}
            Err(more) => errors.extend(more.0),
        }
    }
    Err(restore(errors))
}

/// Deserialises the top level, then each upstream on its own so that shape errors in every
/// upstream are reported together.
fn deserialize(figment: &Figment) -> (Option<RawConfig>, Vec<ConfigError>) {
    let root = KeyPath::default();
    let merged: Dict = match figment.extract() {
        Ok(m) => m,
        Err(error) => return (None, figment_errors(error, &root)),
    };
    let (top, mut errors) = match figment.extract::<RawConfig<FigmentValue>>() {
        Ok(top) => (Some(top), Vec::new()),
        // Serde stops at the first problem: look at each key alone to find all of them.
        Err(_) => (None, top_level_errors(&merged)),
    };
    let values = merged.get("upstreams").and_then(FigmentValue::as_dict);
    let mut upstreams = BTreeMap::new();
    for (name, value) in values.into_iter().flatten() {
        match value.deserialize::<RawUpstream>() {
            Ok(upstream) => {
                upstreams.insert(name.clone(), upstream);
            }
            Err(error) => {
                errors.extend(figment_errors(error, &KeyPath::root("upstreams").key(name)))
            }
        }
    }
    (top.map(|t| t.with_upstreams(upstreams)), errors)
}

/// The shape errors of each top-level key, found by deserialising it on its own.
fn top_level_errors(merged: &Dict) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (key, value) in merged {
        let alone = FigmentValue::from(Dict::from([(key.clone(), value.clone())]));
        if let Err(error) = alone.deserialize::<RawConfig<FigmentValue>>() {
            errors.extend(figment_errors(error, &KeyPath::default()));
        }
    }
    errors
}

/// Every error figment chained together, each with its full path.
fn figment_errors(error: figment::Error, base: &KeyPath) -> Vec<ConfigError> {
    error
        .into_iter()
        .map(|error| figment_error(&error, base))
        .collect()
}

fn figment_error(error: &figment::Error, base: &KeyPath) -> ConfigError {
    let mut path = base.clone();
    for segment in &error.path {
        // Figment names list positions by number; map keys are rarely all digits.
        path = match segment.parse::<usize>() {
            Ok(index) => path.index(index),
            Err(_) => path.key(segment),
        };
    }
    path.error(figment_message(&error.kind))
}

/// Figment's own wording, minus the offending values: they may have come from a secret.
fn figment_message(kind: &Kind) -> String {
    match kind {
        Kind::UnknownField(_, []) => "unknown field".to_owned(),
        Kind::UnknownField(_, expected) => {
            format!("unknown field, expected one of {}", expected.join(", "))
        }
        Kind::InvalidType(actual, expected) => format!(
            "invalid type: found {}, expected {expected}",
            describe(actual)
        ),
        Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value: found {}, expected {expected}",
                describe(actual)
            )
        }
        Kind::UnknownVariant(found, expected) => {
            format!(
                "unknown value {found:?}, expected one of {}",
                expected.join(", ")
            )
        }
        Kind::MissingField(field) => format!("missing field {field}"),
        other => other.to_string(),
    }
}

fn describe(actual: &Actual) -> &'static str {
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a number with a fraction",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit | Actual::Option => "nothing",
        Actual::Seq => "a list",
        Actual::Map => "a mapping",
        _ => "a value of another kind",
    }
}
