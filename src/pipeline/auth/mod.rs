//! Authentication. Credentials are verified at the HTTP edge (`Authenticator`), since the
//! answer to a bad one is an HTTP 401 and GET streams and DELETE need it as much as POSTs; the
//! `auth` stage in the chain then binds the resulting principal to the session.
//!
//! STUB: filled in by the authentication work (API keys, JWT/JWKS, OAuth resource metadata).

use serde::Deserialize;
use serde_json::Value;

use super::{Next, Outcome, RequestContext, Stage};
use crate::config::ConfigError;
use crate::gateway::Gateway;
use crate::protocol::Request;

/// The `auth` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {}

impl AuthConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        crate::config::section::section("auth", raw, errors)
    }
}

/// Verifies credentials at the HTTP edge. `None` from [`Authenticator::new`] means the
/// configuration asks for no authentication: every caller is anonymous.
pub struct Authenticator {}

/// Why a request was refused at the edge: the HTTP status (401 or 403) and the
/// `WWW-Authenticate` challenge to send with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: http::StatusCode,
    pub challenge: String,
    /// What went wrong, for the JSON-RPC error body and the debug log; never the token.
    pub message: String,
}

impl Authenticator {
    pub fn new(_config: &AuthConfig) -> Option<std::sync::Arc<Authenticator>> {
        None
    }

    /// The principal the request's credentials prove, or why they do not.
    pub async fn authenticate(
        &self,
        _headers: &http::HeaderMap,
    ) -> Result<crate::pipeline::Principal, Rejection> {
        Ok(crate::pipeline::Principal::anonymous())
    }
}

pub fn stage(_config: &AuthConfig) -> Option<std::sync::Arc<dyn Stage>> {
    Some(std::sync::Arc::new(Binding))
}

/// Binds the session to the principal that opened it.
struct Binding;

impl Stage for Binding {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn handle<'a>(
        &'a self,
        gateway: &'a Gateway,
        ctx: &'a mut RequestContext,
        req: &'a Request,
        next: Next<'a>,
    ) -> futures::future::BoxFuture<'a, Outcome> {
        // The transports already refuse a session used by another principal; this holds the
        // line for every face, whatever the transport checked.
        if let Some(session) = &ctx.session
            && !session.belongs_to(ctx.principal())
        {
            let e = crate::protocol::ErrorObject::invalid_request(
                "this session belongs to another principal",
            );
            return Box::pin(std::future::ready(Err(e)));
        }
        Box::pin(next.run(gateway, ctx, req))
    }
}
