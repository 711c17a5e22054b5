//! The normal form of a resource URI that the policy checks besides the URI as sent.
//!
//! Template routing accepts a URI however it is spelled, and an upstream may well decode
//! `%73ecret` to `secret` or resolve `public/../secret` before it opens anything. A deny glob
//! over the raw text alone would miss both, so the policy also asks about this form.

use std::borrow::Cow;

/// `uri` with its scheme lowercased, percent-escapes decoded (once; a `%` not followed by
/// two hex digits is kept) and `.` / `..` path segments resolved (RFC 3986 §5.2.4, never
/// above the root). Borrowed when nothing changes.
pub fn normalize(uri: &str) -> Cow<'_, str> {
    let (scheme, rest) = match uri.split_once(':') {
        Some((scheme, rest)) if is_scheme(scheme) => (Some(scheme), rest),
        _ => (None, uri),
    };
    let decoded = percent_decode(rest);
    // After `//` comes the authority, up to the path; the path ends at a query or fragment.
    let path_start = match decoded.strip_prefix("//") {
        Some(after) => 2 + after.find(['/', '?', '#']).unwrap_or(after.len()),
        None => 0,
    };
    let path_end = decoded[path_start..]
        .find(['?', '#'])
        .map_or(decoded.len(), |i| path_start + i);
    let path = remove_dot_segments(&decoded[path_start..path_end]);
    let mut out = String::with_capacity(uri.len());
    if let Some(scheme) = scheme {
        out.push_str(&scheme.to_ascii_lowercase());
        out.push(':');
    }
    out.push_str(&decoded[..path_start]);
    out.push_str(&path);
    out.push_str(&decoded[path_end..]);
    if out == uri {
        Cow::Borrowed(uri)
    } else {
        Cow::Owned(out)
    }
}

/// RFC 3986 `scheme`: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // Bytes that are not UTF-8 cannot spell a glob's text anyway.
    String::from_utf8_lossy(&out).into_owned()
}

fn remove_dot_segments(path: &str) -> String {
    let absolute = path.starts_with('/');
    let segments: Vec<&str> = path.split('/').skip(usize::from(absolute)).collect();
    let last = segments.len().saturating_sub(1);
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.into_iter().enumerate() {
        match segment {
            "." | ".." => {
                if segment == ".." {
                    out.pop();
                }
                // `a/b/..` is the directory `a/`: keep the trailing slash.
                if i == last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_dot_segments_and_the_scheme_case_are_normalized() {
        let cases = [
            ("file:///%73ecret/key", "file:///secret/key"),
            ("file:///public/../secret/key", "file:///secret/key"),
            ("file:///public/%2e%2e/secret/key", "file:///secret/key"),
            ("file:///public/..%2Fsecret/key", "file:///secret/key"),
            ("file:///./secret/./key", "file:///secret/key"),
            ("FILE:///secret/key", "file:///secret/key"),
            ("File:///a/b/..", "file:///a/"),
            ("file:///../../secret", "file:///secret"),
            ("fixture://alpha/tpl/%37", "fixture://alpha/tpl/7"),
            (
                "fixture://alpha/x/../tpl/7?q=a/../b#f",
                "fixture://alpha/tpl/7?q=a/../b#f",
            ),
            ("mem:notes/../secret", "mem:secret"),
            ("file:///50%/x%zz%4", "file:///50%/x%zz%4"),
            ("no-scheme/../x", "x"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), want, "{raw}");
        }
    }

    #[test]
    fn a_normal_uri_is_borrowed_as_it_is() {
        for uri in [
            "file:///secret/key",
            "fixture://alpha/tpl/7",
            "urn:isbn:123",
            "",
        ] {
            assert!(
                matches!(normalize(uri), Cow::Borrowed(u) if u == uri),
                "{uri}"
            );
        }
    }
}
