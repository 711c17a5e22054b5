//! Configuration errors: every problem carries the dotted path of the setting it is about.

use std::fmt;

/// One problem with the configuration, e.g. `upstreams.github.url: relative URL without a base`.
///
/// Messages never contain values that came from the environment: those may be secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.path, .message))]
pub struct ConfigError {
    /// Dotted path of the setting (`upstreams.demo.tools.allow[0]`), or the file for file-level
    /// problems. Empty only when the problem is about the document as a whole.
    pub path: String,
    /// What is wrong, in lower case, without a trailing full stop.
    pub message: String,
}

/// Every problem found in one configuration, in document order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_all(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// A dotted path under construction: `upstreams` → `upstreams.demo` → `upstreams.demo.args[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(String);

impl ConfigError {
    /// Builds an error for `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl ConfigErrors {
    /// The individual problems.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false for errors returned by the loader; present for API completeness.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Turns a collected list into `Ok(value)` when it is empty.
    pub(crate) fn check<T>(errors: Vec<ConfigError>, value: T) -> Result<T, ConfigErrors> {
        if errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl KeyPath {
    /// The path of a top-level key.
    pub(crate) fn root(key: &str) -> Self {
        KeyPath(key.to_owned())
    }

    /// `self.key`, or just `key` at the root.
    pub(crate) fn key(&self, key: &str) -> Self {
        if self.0.is_empty() {
            KeyPath(key.to_owned())
        } else {
            KeyPath(format!("{}.{key}", self.0))
        }
    }

    /// `self[index]`: list positions are shown in brackets so they read apart from map keys.
    pub(crate) fn index(&self, index: usize) -> Self {
        KeyPath(format!("{}[{index}]", self.0))
    }

    /// An error about the setting at this path.
    pub(crate) fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.0.clone(), message)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn render(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

fn render_all(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}
