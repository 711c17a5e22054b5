//! JWT bearer tokens: signature by one of the issuer's keys (by `kid`), then `iss`, `aud`,
//! `exp` and `nbf` with the configured leeway; the principal is the subject claim with the
//! token's scopes and claims.

use std::collections::BTreeSet;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde_json::{Map, Value};

use super::jwks::{Jwks, KeyError};
use crate::config::auth::AuthMethod;
use crate::config::auth::JwtConfig;
use crate::session::Principal;

/// Longest token looked at; real ones are a few kilobytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was not accepted, in words fit for `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The token is not acceptable (401 `invalid_token`).
    Invalid(String),
    /// The keys to check it could not be obtained (the gateway's problem, 503).
    KeysUnavailable,
}

pub struct JwtVerifier {
    config: JwtConfig,
    /// One validation per accepted algorithm: jsonwebtoken refuses a validation that lists
    /// algorithms of another family than the key's, so RS256 and ES256 cannot share one.
    validations: Vec<(Algorithm, Validation)>,
    jwks: Arc<Jwks>,
}

impl JwtVerifier {
    pub fn new(config: JwtConfig, http: reqwest::Client) -> Self {
        let validations = config
            .algorithms
            .iter()
            .map(|alg| {
                let mut validation = Validation::new(*alg);
                validation.set_issuer(&[&config.issuer]);
                validation.set_audience(&config.audience);
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
                validation.leeway = config.leeway.as_secs();
                validation.validate_nbf = true;
                (*alg, validation)
            })
            .collect();
        let jwks = Arc::new(Jwks::new(
            config.jwks.clone(),
            http,
            config.jwks_cache,
            config.jwks_cooldown,
        ));
        JwtVerifier {
            config,
            validations,
            jwks,
        }
    }

    /// The principal `token` proves.
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let invalid = |why: &str| TokenError::Invalid(why.to_owned());
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("token too long"));
        }
        let header = decode_header(token).map_err(|_| invalid("malformed token"))?;
        let Some((_, validation)) = self.validations.iter().find(|(a, _)| *a == header.alg) else {
            return Err(invalid("token algorithm not accepted"));
        };
        let keys = match self.jwks.keys_for(header.kid.as_deref(), header.alg).await {
            Ok(keys) => keys,
            Err(KeyError::UnknownKid) => return Err(invalid("token signed by an unknown key")),
            Err(KeyError::NoSuitableKey) => {
                return Err(invalid("no key of the issuer fits the token's algorithm"));
            }
            Err(KeyError::Unavailable) => return Err(TokenError::KeysUnavailable),
        };
        let mut last = invalid("token signature does not verify");
        for key in keys {
            match decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => return self.principal(data.claims),
                // Several keys may share no kid: try the next one.
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {}
                Err(e) => {
                    last = TokenError::Invalid(describe(e.kind()));
                    break;
                }
            }
        }
        Err(last)
    }

    fn principal(&self, claims: Map<String, Value>) -> Result<Principal, TokenError> {
        let subject = match claims.get(&self.config.subject_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                let why = format!("token has no '{}' claim", self.config.subject_claim);
                return Err(TokenError::Invalid(why));
            }
        };
        // `local` and `anonymous` name the gateway's own principals; a token claiming one
        // would pass for the stdio user (or everyone) in policy and rate limits.
        if crate::config::auth::is_reserved_subject(&subject) {
            return Err(TokenError::Invalid("reserved subject".into()));
        }
        Ok(Principal {
            subject,
            method: AuthMethod::Jwt,
            scopes: scopes(&claims, &self.config.scope_claim),
            claims,
        })
    }
}

/// The token's scopes: the configured claim, else `scp`; a space-separated string (RFC 8693
/// `scope`) or an array of strings (common `scp`).
pub fn scopes(claims: &Map<String, Value>, claim: &str) -> BTreeSet<String> {
    let value = claims.get(claim).or_else(|| claims.get("scp"));
    match value {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(str::split_whitespace)
            .map(str::to_owned)
            .collect(),
        _ => BTreeSet::new(),
    }
}

fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "token expired".into(),
        ErrorKind::ImmatureSignature => "token not yet valid".into(),
        ErrorKind::InvalidAudience => "token audience not accepted".into(),
        ErrorKind::InvalidIssuer => "token issuer not accepted".into(),
        ErrorKind::InvalidAlgorithm => "token algorithm not accepted".into(),
        ErrorKind::InvalidSignature => "token signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("token has no '{c}' claim"),
        ErrorKind::InvalidClaimFormat(c) => format!("token claim '{c}' is malformed"),
        _ => "malformed token".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scopes_come_from_a_string_or_an_array() {
        assert_eq!(
            scopes(&claims(json!({"scope": "mcp  tools:read"})), "scope"),
            set(&["mcp", "tools:read"])
        );
        assert_eq!(
            scopes(&claims(json!({"scp": ["mcp", "admin"]})), "scope"),
            set(&["mcp", "admin"])
        );
        assert_eq!(
            scopes(&claims(json!({"perms": ["a"], "scope": "b"})), "perms"),
            set(&["a"])
        );
        assert!(scopes(&claims(json!({"scope": 3})), "scope").is_empty());
        assert!(scopes(&claims(json!({})), "scope").is_empty());
    }
}
