//! Who is calling: the identity the transport established, carried with every request.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

pub use crate::config::auth::{AuthMethod, RESERVED_SUBJECTS, is_reserved_subject};

/// The authenticated caller: subject, scopes and (for JWTs) every claim.
///
/// Holds no credential: the token that proved the identity stays at the edge and is never
/// forwarded upstream.
#[derive(Clone, PartialEq)]
pub struct Principal {
    /// Stable identifier: the JWT `sub`, the API key's configured name, `local` or `anonymous`.
    pub subject: String,
    pub method: AuthMethod,
    /// Granted scopes (JWT `scope`/`scp`, or the key's configured scopes).
    pub scopes: BTreeSet<String>,
    /// The token's claims (JWT), empty otherwise.
    pub claims: Map<String, Value>,
}

impl Principal {
    /// The caller when the face has no authentication configured.
    pub fn anonymous() -> Self {
        Self::bare("anonymous", AuthMethod::Anonymous)
    }

    /// [`Principal::anonymous`], one shared value: every anonymous request and session
    /// holds the same one instead of a copy each.
    pub fn anonymous_shared() -> std::sync::Arc<Principal> {
        static ANONYMOUS: std::sync::OnceLock<std::sync::Arc<Principal>> =
            std::sync::OnceLock::new();
        ANONYMOUS
            .get_or_init(|| std::sync::Arc::new(Principal::anonymous()))
            .clone()
    }

    /// The local user on the stdio face.
    pub fn local() -> Self {
        Self::bare("local", AuthMethod::Local)
    }

    fn bare(subject: &str, method: AuthMethod) -> Self {
        Principal {
            subject: subject.to_owned(),
            method,
            scopes: BTreeSet::new(),
            claims: Map::new(),
        }
    }

    /// Whether the principal holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// A claim as text: strings as they are, numbers and booleans printed, arrays joined by
    /// commas (for identity headers and policy matching). `sub` falls back to the subject.
    pub fn claim_text(&self, name: &str) -> Option<String> {
        match self.claims.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Some(Value::Null) | Some(Value::Object(_)) => None,
            Some(other) => Some(other.to_string()),
            None if name == "sub" => Some(self.subject.clone()),
            None => None,
        }
    }

    /// Whether the claim `name` equals `value`, or (for an array claim) contains it.
    pub fn claim_matches(&self, name: &str, value: &str) -> bool {
        match self.claims.get(name) {
            Some(Value::Array(items)) => items.iter().any(|v| scalar_eq(v, value)),
            Some(v) => scalar_eq(v, value),
            None => name == "sub" && self.subject == value,
        }
    }
}

fn scalar_eq(v: &Value, text: &str) -> bool {
    match v {
        Value::String(s) => s == text,
        Value::Number(n) => text.parse::<serde_json::Number>().is_ok_and(|t| &t == n),
        Value::Bool(b) => text.parse::<bool>() == Ok(*b),
        _ => false,
    }
}

impl fmt::Debug for Principal {
    // Claims may hold personal data; logs get the subject, method and scopes only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.subject)
            .field("method", &self.method)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_claims(claims: Value) -> Principal {
        Principal {
            claims: claims.as_object().unwrap().clone(),
            ..Principal::bare("alice", AuthMethod::Jwt)
        }
    }

    #[test]
    fn claims_match_scalars_and_array_members() {
        let p = with_claims(json!({"groups": ["eng", "ops"], "tier": 3, "admin": false}));
        assert!(p.claim_matches("groups", "ops"));
        assert!(!p.claim_matches("groups", "sales"));
        assert!(p.claim_matches("tier", "3"));
        assert!(p.claim_matches("admin", "false"));
        assert!(p.claim_matches("sub", "alice"));
        assert!(!p.claim_matches("missing", "x"));
        assert_eq!(p.claim_text("groups").as_deref(), Some("eng,ops"));
        assert_eq!(p.claim_text("sub").as_deref(), Some("alice"));
    }

    #[test]
    fn methods_deserialize_from_their_labels() {
        for method in [
            AuthMethod::Anonymous,
            AuthMethod::Local,
            AuthMethod::ApiKey,
            AuthMethod::Jwt,
        ] {
            let parsed: AuthMethod = serde_json::from_value(json!(method.as_str())).unwrap();
            assert_eq!(parsed, method);
        }
        assert!(serde_json::from_value::<AuthMethod>(json!("ApiKey")).is_err());
    }

    #[test]
    fn the_built_in_subjects_are_reserved() {
        assert!(is_reserved_subject(&Principal::local().subject));
        assert!(is_reserved_subject(&Principal::anonymous().subject));
        assert!(!is_reserved_subject("Local"));
    }

    #[test]
    fn debug_output_leaves_claims_out() {
        let p = with_claims(json!({"email": "alice@example.com"}));
        assert!(!format!("{p:?}").contains("example.com"));
    }
}
