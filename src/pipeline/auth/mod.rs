//! Authentication. Credentials are verified at the HTTP edge (`Authenticator`), since the
//! answer to a bad one is an HTTP 401 and GET streams and DELETE need it as much as POSTs; the
//! `auth` stage in the chain then binds the resulting principal to the session.
//!
//! * API keys (`api_keys`): `Authorization: Bearer <key>` or `X-API-Key: <key>`, compared by
//!   SHA-256 digest in constant time ([`api_keys`]).
//! * JWTs (`jwt`): verified against the issuer's JWK set, fetched and cached ([`jwt`],
//!   [`jwks`]).
//! * The OAuth 2.1 resource-server role: a 401 carries `WWW-Authenticate: Bearer
//!   resource_metadata="..."` naming the RFC 9728 document served by [`metadata`]; a valid
//!   credential without the `required_scopes` gets 403 `insufficient_scope`.
//!
//! The credential itself never leaves this module: the principal carries the subject, scopes
//! and claims, and upstreams get only what `identity_headers` selects ([`identity`]).

pub mod api_keys;
pub mod jwks;
pub mod jwt;
pub mod metadata;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode, header};

pub use crate::config::auth::{ApiKey, AuthConfig, JwksSource, JwtConfig};

use super::{DynStage, Next, Outcome, RequestContext, Stage};
use crate::protocol::Request;
use crate::session::Principal;
use api_keys::ApiKeys;
use jwt::{JwtVerifier, TokenError};
use metadata::{Resource, challenge};

/// Verifies credentials at the HTTP edge. `None` from [`Authenticator::new`] means the
/// configuration asks for no authentication: every caller is anonymous.
pub struct Authenticator {
    api_keys: ApiKeys,
    jwt: Option<JwtVerifier>,
    required_scopes: Vec<String>,
    pub resource: Resource,
}

/// Why a request was refused at the edge: the HTTP status (401 or 403) and the
/// `WWW-Authenticate` challenge to send with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: http::StatusCode,
    pub challenge: String,
    /// What went wrong, for the JSON-RPC error body and the debug log; never the token.
    pub message: String,
}

/// A credential as presented, before it is checked.
enum Presented<'a> {
    None,
    Bearer(&'a str),
    ApiKey(&'a str),
    /// An `Authorization` header with another scheme, or unreadable.
    Unsupported,
}

impl Authenticator {
    /// The authenticator for `config`, serving the MCP endpoint at `endpoint_path`; `None`
    /// when no API keys and no JWT issuer are configured.
    pub fn new(config: &AuthConfig, endpoint_path: &str) -> Option<Arc<Authenticator>> {
        if !config.is_enabled() {
            return None;
        }
        let jwt = config
            .jwt
            .clone()
            .map(|j| JwtVerifier::new(j, jwks_client()));
        tracing::info!(
            api_keys = config.api_keys.len(),
            jwt_issuer = config.jwt.as_ref().map(|j| j.issuer.as_str()),
            required_scopes = ?config.required_scopes,
            "Authentication required on the HTTP faces"
        );
        Some(Arc::new(Authenticator {
            api_keys: ApiKeys::new(config.api_keys.clone()),
            jwt,
            required_scopes: config.required_scopes.clone(),
            resource: Resource {
                configured: config.resource.clone(),
                endpoint_path: endpoint_path.to_owned(),
                authorization_servers: config.authorization_servers.clone(),
                scopes_supported: config.scopes_supported.clone(),
            },
        }))
    }

    /// The principal the request's credentials prove, or why they do not.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Rejection> {
        let principal = match presented(headers) {
            Presented::None => return Err(self.unauthenticated(headers, None)),
            Presented::Unsupported => {
                let why = "unsupported Authorization scheme: send a Bearer token";
                return Err(self.unauthenticated(headers, Some(why)));
            }
            Presented::ApiKey(key) => match self.api_keys.lookup(key) {
                Some(p) => p,
                None => return Err(self.invalid(headers, "unknown API key")),
            },
            Presented::Bearer(token) => self.bearer(headers, token).await?,
        };
        self.check_scopes(headers, &principal)?;
        Ok(principal)
    }

    async fn bearer(&self, headers: &HeaderMap, token: &str) -> Result<Principal, Rejection> {
        if let Some(p) = self.api_keys.lookup(token) {
            return Ok(p);
        }
        let Some(jwt) = self.jwt.as_ref().filter(|_| looks_like_jwt(token)) else {
            let why = if self.api_keys.is_empty() {
                "malformed token"
            } else {
                "unknown API key or token"
            };
            return Err(self.invalid(headers, why));
        };
        match jwt.verify(token).await {
            Ok(p) => Ok(p),
            Err(TokenError::Invalid(why)) => Err(self.invalid(headers, &why)),
            Err(TokenError::KeysUnavailable) => {
                let why = "the issuer's signing keys could not be fetched; try again later";
                Err(Rejection {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    challenge: self.challenge(headers, &[]),
                    message: why.into(),
                })
            }
        }
    }

    fn check_scopes(&self, headers: &HeaderMap, principal: &Principal) -> Result<(), Rejection> {
        let missing: Vec<&str> = self
            .required_scopes
            .iter()
            .filter(|s| !principal.has_scope(s))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let message = format!("insufficient scope: missing {}", missing.join(" "));
        let needed = self.required_scopes.join(" ");
        let params = [
            ("error", "insufficient_scope"),
            ("scope", needed.as_str()),
            ("error_description", message.as_str()),
        ];
        Err(Rejection {
            status: StatusCode::FORBIDDEN,
            challenge: self.challenge(headers, &params),
            message,
        })
    }

    /// 401 for a request without a usable credential: the challenge names the metadata and
    /// the scopes to ask for.
    fn unauthenticated(&self, headers: &HeaderMap, why: Option<&str>) -> Rejection {
        let scope = self.required_scopes.join(" ");
        let mut params = Vec::new();
        if !scope.is_empty() {
            params.push(("scope", scope.as_str()));
        }
        if let Some(why) = why {
            params.push(("error", "invalid_request"));
            params.push(("error_description", why));
        }
        Rejection {
            status: StatusCode::UNAUTHORIZED,
            challenge: self.challenge(headers, &params),
            message: why.unwrap_or("authentication required").to_owned(),
        }
    }

    /// 401 `invalid_token` for a credential that was presented and refused.
    fn invalid(&self, headers: &HeaderMap, why: &str) -> Rejection {
        let params = [("error", "invalid_token"), ("error_description", why)];
        Rejection {
            status: StatusCode::UNAUTHORIZED,
            challenge: self.challenge(headers, &params),
            message: format!("invalid credentials: {why}"),
        }
    }

    /// `Bearer resource_metadata="<url>"` followed by `params`.
    fn challenge(&self, headers: &HeaderMap, params: &[(&str, &str)]) -> String {
        let url = self.resource.metadata_url(headers);
        let mut all = vec![("resource_metadata", url.as_str())];
        all.extend_from_slice(params);
        challenge(&all)
    }
}

/// The credential in the request: `Authorization: Bearer`, else `X-API-Key`.
fn presented(headers: &HeaderMap) -> Presented<'_> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Ok(value) = value.to_str() else {
            return Presented::Unsupported;
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        let token = rest.trim();
        return if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
            Presented::Bearer(token)
        } else {
            Presented::Unsupported
        };
    }
    match headers.get("x-api-key").map(|v| v.to_str()) {
        Some(Ok(key)) if !key.trim().is_empty() => Presented::ApiKey(key.trim()),
        Some(_) => Presented::Unsupported,
        None => Presented::None,
    }
}

/// Three base64url segments: worth handing to the JWT verifier.
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

/// The client that fetches key sets: bounded in time, and never sending credentials.
fn jwks_client() -> reqwest::Client {
    crate::net::client("key sets", |builder| {
        builder
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("manifold/", env!("CARGO_PKG_VERSION")))
    })
}

/// Present only when authentication is configured: without it every session belongs to
/// `anonymous` and there is nothing to bind.
pub fn stage(config: &AuthConfig) -> Option<Arc<dyn DynStage>> {
    config
        .is_enabled()
        .then(|| Arc::new(Binding) as Arc<dyn DynStage>)
}

/// Binds the session to the principal that opened it.
struct Binding;

impl Stage for Binding {
    fn name(&self) -> &'static str {
        "auth"
    }

    async fn handle(&self, ctx: &mut RequestContext, req: &Request, next: Next<'_>) -> Outcome {
        // The transports already refuse a session used by another principal; this holds the
        // line for every face, whatever the transport checked.
        if let Some(session) = &ctx.session
            && !session.belongs_to(ctx.principal())
        {
            let e = crate::protocol::ErrorObject::invalid_request(
                "this session belongs to another principal",
            );
            return Err(e);
        }
        next.run(ctx, req).await
    }
}

#[cfg(test)]
mod tests;
