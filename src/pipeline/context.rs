//! What travels with one client request through the pipeline, besides the message itself.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::aggregate::merge::{ItemFilter, SharedPage};
use crate::protocol::{Era, Message};
use crate::session::Principal;
use crate::session::Session;
use crate::upstream::peer::Origin;

/// Who sent a message and on what: built by the transport before the pipeline runs.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated caller (`anonymous` when the face has no authentication).
    pub principal: Arc<Principal>,
    /// W3C trace context the client sent as HTTP headers (`traceparent`, `tracestate`).
    /// `_meta.traceparent` in the message itself is read by the tracing stage.
    pub trace_headers: Option<TraceHeaders>,
    /// Which face the message came in on: `http`, `sse` or `stdio`.
    pub transport: &'static str,
    /// The IP address the request came from (HTTP faces), for per-source session limits.
    pub source: Option<std::net::IpAddr>,
}

/// The W3C trace-context headers of an incoming HTTP request, as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

impl Caller {
    /// A caller with no credentials and no trace context (tests, internal use).
    pub fn anonymous(transport: &'static str) -> Self {
        Caller {
            principal: Principal::anonymous_shared(),
            trace_headers: None,
            transport,
            source: None,
        }
    }

    /// The stdio face's caller: the local user, trusted.
    pub fn local() -> Self {
        Caller {
            principal: Arc::new(Principal::local()),
            trace_headers: None,
            transport: "stdio",
            source: None,
        }
    }
}

/// The per-request state the stages read and refine on the way in.
pub struct RequestContext {
    /// The client's session; `None` only while `initialize` is creating it.
    pub session: Option<Arc<Session>>,
    /// Where notifications that belong to this request (progress) go: the request's own
    /// response stream. `None` when the transport cannot stream a response.
    pub notify: Option<mpsc::Sender<Message>>,
    /// Who is asking.
    pub caller: Caller,
    /// How long the upstream may take, when a stage set it (the timeout stage); otherwise the
    /// upstream's own `timeout`.
    pub deadline: Option<Duration>,
    /// Fired when the request has passed every admission stage and reaches the router. The
    /// HTTP face waits for it before committing to a streamed answer, so a refusal
    /// (401/403/429) can still be sent with its own status code.
    pub admitted: Option<oneshot::Sender<()>>,
    /// Cancelled when the client cancels the request (`notifications/cancelled`) or its
    /// session ends; the router then answers -32013 and drops the upstream request.
    pub cancel: Option<CancellationToken>,
    /// What a 2026-07-28 client declared on this request (checked by the transport before
    /// the pipeline runs); `None` for a handshake-era client, whose session says it.
    pub envelope: Option<Arc<crate::protocol::envelope::Envelope>>,
    /// Set only on a request the gateway makes itself of one upstream (the tasks runner
    /// waiting on an upstream's own task): the router forwards it there as it is, instead of
    /// resolving an owner.
    pub route_to: Option<usize>,
    /// Which listed items the caller may see, when not all (the policy stage's decision):
    /// the router cuts listings with it.
    pub list_filter: Option<Arc<dyn ItemFilter>>,
    /// Set by a face that writes listing pages itself from the catalog's shared, serialised
    /// pages: the router then leaves a listing's items out of its result and hands the page
    /// over in [`RequestContext::listed`]. Nothing between the router and such a face may
    /// read or change a listing result's items.
    pub shared_listings: bool,
    /// The page whose items belong first in this request's listing result (see
    /// [`RequestContext::shared_listings`]).
    pub listed: OnceLock<Listed>,
}

/// A listing page the router answered with, for the face to write: the items go first in
/// the result, under `field`, the rest of the result after them.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The result member that holds the items (`tools`, `prompts`, …).
    pub field: &'static str,
    pub page: Arc<SharedPage>,
}

impl RequestContext {
    pub fn new(
        session: Option<Arc<Session>>,
        notify: Option<mpsc::Sender<Message>>,
        caller: Caller,
    ) -> Self {
        RequestContext {
            session,
            notify,
            caller,
            deadline: None,
            admitted: None,
            cancel: None,
            envelope: None,
            route_to: None,
            list_filter: None,
            shared_listings: false,
            listed: OnceLock::new(),
        }
    }

    /// The era the client speaks: a request with an envelope is a stateless-era one.
    pub fn era(&self) -> Era {
        if self.envelope.is_some() {
            Era::Stateless
        } else {
            Era::Handshake
        }
    }

    pub fn principal(&self) -> &Principal {
        &self.caller.principal
    }

    /// Who an upstream request made for this request serves: the client's session
    /// (handshake era) or the request's own envelope (2026-07-28), with the request's stream
    /// for related traffic.
    pub fn origin(&self) -> Option<Arc<Origin>> {
        if let Some(envelope) = &self.envelope {
            return Some(Arc::new(Origin {
                session: None,
                sink: self.notify.clone(),
                capabilities: envelope.client_capabilities.clone(),
                principal: self.caller.principal.clone(),
                log_level: envelope.log_level.clone(),
                inputs: None,
            }));
        }
        self.session.as_ref().map(|s| {
            Arc::new(Origin {
                session: Some(s.id.clone()),
                sink: self.notify.clone(),
                capabilities: s.client_capabilities.clone(),
                principal: self.caller.principal.clone(),
                log_level: s
                    .log_level()
                    .map(|r| crate::protocol::logging::name(r).to_owned()),
                inputs: None,
            })
        })
    }

    /// Marks the request as admitted (see [`RequestContext::admitted`]).
    pub fn admit(&mut self) {
        if let Some(tx) = self.admitted.take() {
            let _ = tx.send(());
        }
    }
}
