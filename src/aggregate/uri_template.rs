//! RFC 6570 URI templates used as matchers, to route `resources/read` (and
//! subscriptions) to the upstream whose resource template fits the URI.
//!
//! This is a matcher, not an expander. Each template compiles to an anchored
//! regular expression (the `regex` crate runs in linear time, so no input can
//! cause catastrophic backtracking): literals match exactly, and each
//! expression matches what its operator could expand to, somewhat leniently
//! (values are not required to be percent-encoded, since clients often send
//! raw characters). Per operator (RFC 6570 §3.2):
//!
//! | expression | matches |
//! | --- | --- |
//! | `{var}`, `{a,b}` | one or more characters other than `/ ? # &` |
//! | `{+var}` | one or more of any character (reserved expansion keeps `/`) |
//! | `{#var}` | optionally `#` then anything |
//! | `{.var}` | optionally `.` then a label (no `/ ? #`) |
//! | `{/var}` | zero or more `/segment` |
//! | `{;var}` | optionally `;` then path parameters (no `/ ? #`) |
//! | `{?a,b}`, `{&a}` | optionally `?`/`&` then a query (no `#`) |
//!
//! A variable matches nothing only where RFC 6570 lets an undefined variable
//! expand to the empty string without a trace, i.e. for operators that add a
//! prefix character; `{var}` and `{+var}` need at least one character. Prefix
//! modifiers (`:N`) and explode (`*`) are validated and accepted but do not
//! change what matches (a percent-encoded value may be longer than `N`).

use std::fmt;

use regex::{Regex, RegexBuilder};

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 1024;
/// Longest URI [`UriTemplate::matches`] considers; longer URIs never match.
pub const MAX_URI_LEN: usize = 8192;

/// Cap on the compiled program; templates within [`MAX_TEMPLATE_LEN`] stay far
/// below it, so hitting it means something pathological.
const REGEX_SIZE_LIMIT: usize = 4 << 20;

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Longer than [`MAX_TEMPLATE_LEN`].
    #[error("URI template is {len} bytes, over the {max}-byte limit")]
    TooLong {
        /// Template length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A `{` without its `}`.
    #[error("URI template has an unclosed '{{' at byte {at}")]
    Unclosed {
        /// Byte offset of the `{`.
        at: usize,
    },
    /// A `}` outside any expression.
    #[error("URI template has an unmatched '}}' at byte {at}")]
    UnmatchedClose {
        /// Byte offset of the `}`.
        at: usize,
    },
    /// An expression that is not valid RFC 6570 (level 4) syntax.
    #[error("URI template expression at byte {at} is invalid: {reason}")]
    InvalidExpression {
        /// Byte offset of the expression's `{`.
        at: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The compiled matcher exceeded its size limit.
    #[error("URI template is too complex to match")]
    TooComplex,
}

/// A parsed RFC 6570 template, compiled into a matcher.
#[derive(Debug, Clone)]
pub struct UriTemplate {
    source: String,
    matcher: Regex,
    literal_chars: usize,
}

impl UriTemplate {
    /// Parses and compiles `template`.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        if template.len() > MAX_TEMPLATE_LEN {
            return Err(TemplateError::TooLong {
                len: template.len(),
                max: MAX_TEMPLATE_LEN,
            });
        }
        // `(?s)` lets `.` in `{+var}`/`{#var}` span any character; `\A`/`\z`
        // anchor the whole URI.
        let mut pattern = String::from(r"(?s)\A");
        let mut literal_chars = 0;
        let mut rest = template;
        let mut at = 0;
        while !rest.is_empty() {
            let next = rest.find(['{', '}']).unwrap_or(rest.len());
            let (literal, tail) = rest.split_at(next);
            pattern.push_str(&regex::escape(literal));
            literal_chars += literal.chars().count();
            at += next;
            rest = tail;
            if rest.starts_with('}') {
                return Err(TemplateError::UnmatchedClose { at });
            }
            if rest.is_empty() {
                break;
            }
            let close = rest.find('}').ok_or(TemplateError::Unclosed { at })?;
            let body = &rest[1..close];
            pattern.push_str(
                expression_pattern(body)
                    .map_err(|reason| TemplateError::InvalidExpression { at, reason })?,
            );
            at += close + 1;
            rest = &rest[close + 1..];
        }
        pattern.push_str(r"\z");
        let matcher = RegexBuilder::new(&pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|_| TemplateError::TooComplex)?;
        Ok(Self {
            source: template.to_owned(),
            matcher,
            literal_chars,
        })
    }

    /// Whether `uri` is one this template could produce (see module docs).
    pub fn matches(&self, uri: &str) -> bool {
        uri.len() <= MAX_URI_LEN && self.matcher.is_match(uri)
    }

    /// The template text as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Number of literal characters, so the caller can prefer the most
    /// specific of several matching templates.
    pub fn specificity(&self) -> usize {
        self.literal_chars
    }
}

impl PartialEq for UriTemplate {
    // The matcher is a pure function of the source text.
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for UriTemplate {}

impl fmt::Display for UriTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Regex fragment for one expression body (the text between `{` and `}`).
fn expression_pattern(body: &str) -> Result<&'static str, &'static str> {
    let (operator, vars) = match body.chars().next() {
        None => return Err("empty expression"),
        Some(c @ ('+' | '#' | '.' | '/' | ';' | '?' | '&')) => (Some(c), &body[1..]),
        // RFC 6570 §2.2 reserves these for future extensions.
        Some('=' | ',' | '!' | '@' | '|') => return Err("reserved operator"),
        Some(_) => (None, body),
    };
    for spec in vars.split(',') {
        check_varspec(spec)?;
    }
    Ok(match operator {
        None => "[^/?#&]+",
        Some('+') => ".+",
        Some('#') => "(?:#.*)?",
        Some('.') => r"(?:\.[^/?#]*)?",
        Some('/') => "(?:/[^/?#]*)*",
        Some(';') => "(?:;[^/?#]*)?",
        Some('?') => r"(?:\?[^#]*)?",
        _ => "(?:&[^#]*)?",
    })
}

/// Validates `varname [ ":" max-length | "*" ]` (RFC 6570 §2.3–2.4).
fn check_varspec(spec: &str) -> Result<(), &'static str> {
    let (name, modifier) = match spec.find([':', '*']) {
        Some(i) => spec.split_at(i),
        None => (spec, ""),
    };
    check_varname(name)?;
    match modifier.strip_prefix(':') {
        None if modifier.is_empty() || modifier == "*" => Ok(()),
        None => Err("invalid explode modifier"),
        // max-length = %x31-39 0*3DIGIT: 1 to 9999 without leading zeros.
        Some(n)
            if (1..=4).contains(&n.len())
                && n.bytes().all(|b| b.is_ascii_digit())
                && !n.starts_with('0') =>
        {
            Ok(())
        }
        Some(_) => Err("invalid prefix modifier"),
    }
}

/// Validates `varchar *( ["."] varchar )` where varchar is ALPHA, DIGIT, `_`
/// or a percent-encoded octet.
fn check_varname(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err("empty variable name");
    }
    let mut i = 0;
    let mut after_dot = true;
    while i < bytes.len() {
        match bytes[i] {
            b'.' if !after_dot => {
                after_dot = true;
                i += 1;
                continue;
            }
            b'%' if bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'_' => i += 1,
            _ => return Err("invalid variable name"),
        }
        after_dot = false;
    }
    if after_dot {
        return Err("variable name ends with '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
