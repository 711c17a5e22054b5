//! Allow/deny glob filters over upstream-side tool and prompt names and resource URIs.

use std::fmt;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// Which names of one kind (tools, prompts or resources) an upstream exposes.
///
/// A name passes when the allow list is absent or matches it, and the deny list does not.
/// `*` matches any run of characters, `/` included, because resource URIs are paths.
#[derive(Clone)]
pub struct NameFilter {
    /// `None` allows everything; `Some` of an empty set allows nothing.
    allow: Option<GlobSet>,
    deny: Option<GlobSet>,
    /// The source patterns, kept for display and comparison.
    allow_patterns: Option<Vec<String>>,
    deny_patterns: Vec<String>,
}

/// A glob pattern that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob {pattern:?}: {reason}")]
pub struct PatternError {
    /// `allow` or `deny`.
    pub list: &'static str,
    /// Position in that list.
    pub index: usize,
    pub pattern: String,
    pub reason: String,
}

impl NameFilter {
    /// A filter that lets every name through: the default.
    pub fn allow_all() -> Self {
        NameFilter {
            allow: None,
            deny: None,
            allow_patterns: None,
            deny_patterns: Vec::new(),
        }
    }

    /// Compiles the patterns, reporting every bad one.
    pub fn new(allow: Option<Vec<String>>, deny: Vec<String>) -> Result<Self, Vec<PatternError>> {
        let mut errors = Vec::new();
        let allow_set = allow
            .as_deref()
            .map(|patterns| compile("allow", patterns, &mut errors));
        // An empty deny list is stored as `None` so `allows` skips it.
        let deny_set = (!deny.is_empty()).then(|| compile("deny", &deny, &mut errors));
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NameFilter {
            allow: allow_set,
            deny: deny_set,
            allow_patterns: allow,
            deny_patterns: deny,
        })
    }

    /// Whether `name` (a tool or prompt name, or a resource URI) is exposed.
    pub fn allows(&self, name: &str) -> bool {
        let allowed = self.allow.as_ref().is_none_or(|set| set.is_match(name));
        let denied = self.deny.as_ref().is_some_and(|set| set.is_match(name));
        allowed && !denied
    }

    /// The allow patterns, or `None` when everything is allowed.
    pub fn allow_patterns(&self) -> Option<&[String]> {
        self.allow_patterns.as_deref()
    }

    /// The deny patterns (empty when nothing is denied).
    pub fn deny_patterns(&self) -> &[String] {
        &self.deny_patterns
    }

    /// True when the filter lets every name through.
    pub fn is_allow_all(&self) -> bool {
        self.allow.is_none() && self.deny.is_none()
    }
}

impl Default for NameFilter {
    fn default() -> Self {
        NameFilter::allow_all()
    }
}

impl PartialEq for NameFilter {
    // Two filters built from the same patterns behave the same.
    fn eq(&self, other: &Self) -> bool {
        self.allow_patterns == other.allow_patterns && self.deny_patterns == other.deny_patterns
    }
}

impl Eq for NameFilter {}

impl fmt::Debug for NameFilter {
    // The compiled sets print as regex internals; the patterns are what a reader wants.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NameFilter")
            .field("allow", &self.allow_patterns)
            .field("deny", &self.deny_patterns)
            .finish()
    }
}

/// Builds one set; bad patterns are recorded and left out.
fn compile(list: &'static str, patterns: &[String], errors: &mut Vec<PatternError>) -> GlobSet {
    let mut builder = GlobSetBuilder::new();
    for (index, pattern) in patterns.iter().enumerate() {
        match glob(pattern) {
            Ok(glob) => {
                builder.add(glob);
            }
            Err(error) => errors.push(PatternError {
                list,
                index,
                pattern: pattern.clone(),
                reason: error.kind().to_string(),
            }),
        }
    }
    // Building only fails on patterns that already failed above; an empty set is the safe
    // stand-in, and the caller sees the recorded errors anyway.
    builder.build().unwrap_or_else(|_| GlobSet::empty())
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        // `*` must cross `/`: resource URIs like `file:///a/b` are filtered with `file:///*`.
        .literal_separator(false)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn allow_all_lets_everything_through() {
        let filter = NameFilter::allow_all();
        assert!(filter.allows("anything"));
        assert!(filter.is_allow_all());
    }

    #[test]
    fn deny_wins_over_allow() {
        let filter = NameFilter::new(Some(strings(&["*"])), strings(&["danger_*"])).unwrap();
        assert!(filter.allows("safe"));
        assert!(!filter.allows("danger_zone"));
    }

    #[test]
    fn star_crosses_slashes() {
        let filter = NameFilter::new(Some(strings(&["file:///docs/*"])), Vec::new()).unwrap();
        assert!(filter.allows("file:///docs/a/b/c.md"));
        assert!(!filter.allows("file:///etc/passwd"));
    }

    #[test]
    fn empty_allow_list_allows_nothing() {
        let filter = NameFilter::new(Some(Vec::new()), Vec::new()).unwrap();
        assert!(!filter.allows("x"));
    }

    #[test]
    fn every_bad_pattern_is_reported() {
        let errors = NameFilter::new(Some(strings(&["[", "ok"])), strings(&["{a"])).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!((errors[0].list, errors[0].index), ("allow", 0));
        assert_eq!((errors[1].list, errors[1].index), ("deny", 0));
    }
}

/// One glob pattern, compiled once, compared and shown by its source text. Deserialises from
/// a string, so stage sections can hold patterns and report bad ones at load time.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    matcher: globset::GlobMatcher,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Self, String> {
        let matcher = glob(source)
            .map_err(|e| format!("invalid glob {source:?}: {}", e.kind()))?
            .compile_matcher();
        Ok(Pattern {
            source: source.to_owned(),
            matcher,
        })
    }

    pub fn matches(&self, text: &str) -> bool {
        self.matcher.is_match(text)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.source, f)
    }
}

impl<'de> serde::Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Pattern::new(&source).map_err(serde::de::Error::custom)
    }
}
