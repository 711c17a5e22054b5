//! Namespacing of tool and prompt names: `<prefix><sep><name>`.
//!
//! The MCP 2025-11-25 specification requires tool names to be 1–128
//! characters from `[A-Za-z0-9._-]` (case-sensitive). The gateway exposes each
//! upstream item as `<prefix><sep><name>`, where the upstream's prefix is
//! `[a-z0-9-]*` and the separator is 1–8 characters from the same alphabet
//! (default `__`).
//!
//! [`encode`] and [`decode`] are exact inverses for prefixes accepted by
//! [`is_unambiguous_prefix`]. [`expose`] is the lossy, always-valid form that
//! clients actually see; the gateway keeps its own map back to the original.

use sha2::{Digest, Sha256};

/// Longest tool name allowed by the MCP specification.
pub const MAX_NAME_LEN: usize = 128;

/// Smallest `max_len` that [`expose`] honours: a shortened name is a head plus
/// `-` plus 8 hex characters, and a head shorter than 7 characters would keep
/// too little of the name to be recognisable. Smaller values are clamped up.
pub const MIN_EXPOSED_LEN: usize = 16;

/// Default separator between prefix and name.
pub const DEFAULT_SEPARATOR: &str = "__";

/// Hex characters of the SHA-256 digest appended to shortened names.
const HASH_HEX_LEN: usize = 8;

/// Whether `c` is allowed in an MCP tool name (`[A-Za-z0-9._-]`).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Whether `s` is a valid MCP tool name: 1–128 characters of `[A-Za-z0-9._-]`.
pub fn is_valid_name(s: &str) -> bool {
    // All allowed characters are ASCII, so byte length equals character count.
    !s.is_empty() && s.len() <= MAX_NAME_LEN && s.chars().all(is_name_char)
}

/// Whether `sep` is a valid separator: 1–8 characters of `[A-Za-z0-9._-]`.
pub fn is_valid_separator(sep: &str) -> bool {
    (1..=8).contains(&sep.len()) && sep.chars().all(is_name_char)
}

/// Whether [`decode`] recovers `prefix` from every name encoded with it.
///
/// "The prefix does not contain the separator" is necessary but not
/// sufficient: the separator may also straddle the end of the prefix, e.g.
/// prefix `a-` with separator `--` encodes to `a---x`, whose first `--` starts
/// inside the prefix. The first occurrence of `sep` in `prefix + sep` depends
/// only on those characters, so checking it once covers every name. An empty
/// prefix means "no prefix" and is always accepted; an empty separator never.
pub fn is_unambiguous_prefix(prefix: &str, sep: &str) -> bool {
    if sep.is_empty() {
        return false;
    }
    prefix.is_empty() || format!("{prefix}{sep}").find(sep) == Some(prefix.len())
}

/// Joins `prefix`, `sep` and `name`; an empty prefix leaves `name` unchanged.
///
/// `name` is taken verbatim (it may contain the separator, be empty, or be
/// non-ASCII): this is the reversible form, see [`expose`] for the valid one.
pub fn encode(prefix: &str, sep: &str, name: &str) -> String {
    if prefix.is_empty() {
        return name.to_owned();
    }
    let mut out = String::with_capacity(prefix.len() + sep.len() + name.len());
    out.push_str(prefix);
    out.push_str(sep);
    out.push_str(name);
    out
}

/// Splits an encoded name into `(prefix, name)` at the FIRST `sep`.
///
/// Splitting at the first occurrence is correct because prefixes never
/// contain the separator (see [`is_unambiguous_prefix`]), while names may:
/// `a__b__c` decodes to `("a", "b__c")`. Returns `None` when `sep` is absent
/// or empty.
pub fn decode<'a>(exposed: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    if sep.is_empty() {
        return None;
    }
    let at = exposed.find(sep)?;
    // `find` returns a char boundary and `sep` is a whole string, so both
    // slices are on char boundaries.
    Some((&exposed[..at], &exposed[at + sep.len()..]))
}

/// The name clients see for upstream item `name` of the upstream with `prefix`.
///
/// Steps (each needed for the MCP name rule, which upstreams may violate):
/// 1. An empty `name` is replaced by `_` (a name of nothing is not valid, and
///    `prefix__` alone would look truncated).
/// 2. The encoded name has every character outside `[A-Za-z0-9._-]` replaced
///    by `_`.
/// 3. If longer than `max_len` it keeps a head and appends `-` and 8 lowercase
///    hex characters of SHA-256 of the full *unsanitised* encoded name, for a
///    total of exactly `max_len`. The head starts with prefix and separator
///    whenever they fit, and the digest keeps names that differ only past the
///    cut (or only in replaced characters there) apart.
///
/// `max_len` is clamped to [`MIN_EXPOSED_LEN`]`..=`[`MAX_NAME_LEN`]. The result
/// always satisfies [`is_valid_name`] and is deterministic. It is not
/// reversible: distinct names that differ only in replaced characters and fit
/// unshortened (`a b` and `a_b`) collide, so the caller must detect collisions
/// in its exposed-name map.
pub fn expose(prefix: &str, sep: &str, name: &str, max_len: usize) -> String {
    let max_len = max_len.clamp(MIN_EXPOSED_LEN, MAX_NAME_LEN);
    let name_part = if name.is_empty() { "_" } else { name };
    let full = encode(prefix, sep, name_part);
    let mut out: String = full
        .chars()
        .map(|c| if is_name_char(c) { c } else { '_' })
        .collect();
    // Sanitising is lossy ("a b" and "a_b" would meet), so a name that needed it carries a
    // hash of the original, as a shortened one does: exposed names stay distinct.
    let altered = out != full || name.is_empty();
    if altered || out.len() > max_len {
        let keep = (max_len - HASH_HEX_LEN - 1).min(out.len());
        // Sanitised text is pure ASCII, so truncating at a byte index is safe.
        out.truncate(keep);
        out.push('-');
        let digest = Sha256::digest(encode(prefix, sep, name).as_bytes());
        for byte in digest.iter().take(HASH_HEX_LEN / 2) {
            out.push_str(&format!("{byte:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
