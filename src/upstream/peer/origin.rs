//! Whom an upstream request serves: the origin the peer keeps with each pending request so
//! that what the upstream sends while serving it reaches the right client.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::protocol::{ErrorObject, Message};

/// The downstream request an upstream request serves: who to route the upstream's
/// related traffic (server→client requests, logs, progress) to.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The client's session id; `None` for a 2026-07-28 client, which has no session.
    pub session: Option<String>,
    /// The response stream of the client's request, while it is open.
    pub sink: Option<mpsc::Sender<Message>>,
    /// The client's declared capabilities (what a per-client upstream session may ask of it).
    pub capabilities: Value,
    /// Who the client is: a per-client upstream session sends the claims its upstream's
    /// `identity_headers` select (never the client's credential).
    pub principal: Arc<crate::session::Principal>,
    /// The log level the client asked for (`logging/setLevel` on its session, or the
    /// request's `logLevel`): what a 2026-07-28 upstream is asked for per request.
    pub log_level: Option<String>,
    /// For a 2026-07-28 client: where server→client requests of a handshake-era upstream go
    /// instead of to the client, which cannot receive requests. The router answers the
    /// client with an input-required result and feeds the client's retry back (MRTR).
    pub inputs: Option<mpsc::Sender<InputNeeded>>,
}

/// A server→client request an upstream made while serving a 2026-07-28 client, held for
/// the router to turn into an `inputRequests` entry. `reply` takes the client's answer.
#[derive(Debug)]
pub struct InputNeeded {
    pub method: String,
    pub params: Option<Value>,
    pub reply: oneshot::Sender<Result<Value, ErrorObject>>,
}

impl Origin {
    /// The origin of gateway-initiated traffic for a handshake-era session.
    pub fn for_session(
        session: String,
        capabilities: Value,
        principal: Arc<crate::session::Principal>,
    ) -> Origin {
        Origin {
            session: Some(session),
            sink: None,
            capabilities,
            principal,
            log_level: None,
            inputs: None,
        }
    }
}
