//! Server→client requests: `sampling/createMessage`, `elicitation/create`, `roots/list` and
//! `ping` from an upstream, sent to the client whose request the upstream is serving, under a
//! gateway-minted id; the client's answer goes back to the upstream under the upstream's id.
//!
//! Ids are minted per gateway (`manifold-s2c-N`), so requests from different upstreams, whose
//! own ids collide freely, never collide at a client. Only kinds the client declared in its
//! capabilities are forwarded; the others are answered with an error naming what is missing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use dashmap::DashMap;
use serde_json::{Value, json};

use super::Relay;
use super::send;
use crate::protocol::{
    ErrorObject, Id, Message, Notification, Payload, Request, Response, codes, methods,
};
use crate::session::Session;
use crate::upstream::peer::{InputNeeded, Origin, Peer};
use tokio::sync::oneshot;

/// Most server→client requests awaiting clients' answers; past it upstreams get "busy".
const MAX_PENDING: usize = 10_000;

struct Pending {
    answer: Answer,
    session: String,
}

/// Where a client's answer goes.
enum Answer {
    /// Back to the upstream that asked, under its own id.
    Upstream {
        peer: Arc<Peer>,
        upstream: usize,
        upstream_id: Id,
    },
    /// To the gateway itself: a 2026-07-28 upstream's input request, asked of a
    /// handshake-era client for it (see [`ask`]).
    Gateway(oneshot::Sender<Result<Value, ErrorObject>>),
}

impl Answer {
    async fn deliver(self, outcome: Result<Value, ErrorObject>) {
        match self {
            Answer::Upstream {
                peer, upstream_id, ..
            } => peer.respond(upstream_id, outcome).await,
            Answer::Gateway(tx) => {
                let _ = tx.send(outcome);
            }
        }
    }
}

#[derive(Default)]
pub struct ClientRequests {
    pending: DashMap<String, Pending>,
    next: AtomicU64,
    /// This replica's number when replicas share sessions (0: they do not); it goes into
    /// the ids, so an answer arriving at another replica finds its way here.
    replica: AtomicU32,
}

/// The replica a gateway id was minted by (`manifold-s2c-R-N`), if it names one.
pub fn replica_of(id: &str) -> Option<u32> {
    let (replica, _) = id.strip_prefix("manifold-s2c-")?.split_once('-')?;
    replica.parse().ok()
}

impl ClientRequests {
    /// Mint ids naming replica `replica` (replicas sharing sessions).
    pub fn set_replica(&self, replica: u32) {
        self.replica.store(replica, Ordering::Relaxed);
    }

    /// A fresh gateway id for a request to a client, or "busy" when too many await answers.
    fn mint(&self) -> Result<String, ErrorObject> {
        if self.pending.len() >= MAX_PENDING {
            return Err(ErrorObject::new(
                codes::GATEWAY_BUSY,
                "gateway busy: too many requests awaiting clients",
            ));
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Ok(match self.replica.load(Ordering::Relaxed) {
            0 => format!("manifold-s2c-{n}"),
            replica => format!("manifold-s2c-{replica}-{n}"),
        })
    }
}

/// Forwards one upstream request to its client, or answers the upstream with why not.
pub async fn forward(
    relay: &Relay,
    upstream: usize,
    peer: Arc<Peer>,
    mut request: Request,
    mut origin: Option<Arc<Origin>>,
) {
    // A request an upstream ties to one of its tasks names the gateway's task id, and goes
    // to the task's session even when the upstream sent it outside any request.
    if let Some(params) = request.params_mut().as_mut()
        && let Some(task) = super::tasks::map_related(relay, upstream, params).await
        && origin.is_none()
        && let Some(session) = task
            .owner
            .session
            .as_deref()
            .and_then(|s| relay.sessions.peek(s))
    {
        origin = Some(super::origin(&session));
    }
    let name = relay
        .upstreams
        .get(upstream)
        .map(|u| u.name().to_owned())
        .unwrap_or_default();
    let session = origin
        .as_deref()
        .and_then(|o| relay.sessions.peek(o.session.as_deref()?));
    if let Some(inputs) = origin.as_ref().and_then(|o| o.inputs.clone()) {
        return to_exchange(inputs, peer, request).await;
    }
    let Some((session, origin)) = session.zip(origin) else {
        // Roots belong to a client; with no client request in flight there are none to give.
        let outcome = if request.method == methods::ROOTS_LIST {
            Ok(json!({ "roots": [] }))
        } else if request.method == methods::PING {
            Ok(json!({}))
        } else {
            let why = format!(
                "{} must relate to a client request in flight; none is",
                request.method
            );
            Err(ErrorObject::new(codes::INVALID_REQUEST, why))
        };
        return peer.respond(request.id, outcome).await;
    };
    if let Err(e) = permitted(&session.client_capabilities, &request) {
        tracing::debug!(upstream = %name, method = %request.method, error = %e.message, "Refused a server→client request");
        return peer.respond(request.id, Err(e)).await;
    }
    let table = &relay.client_requests;
    let id = match table.mint() {
        Ok(id) => id,
        Err(busy) => return peer.respond(request.id, Err(busy)).await,
    };
    let entry = Pending {
        answer: Answer::Upstream {
            peer: peer.clone(),
            upstream,
            upstream_id: request.id.clone(),
        },
        session: session.id.clone(),
    };
    table.pending.insert(id.clone(), entry);
    let method = request.method.clone();
    let msg = Message::Request(Request::new(
        Id::Str(id.clone()),
        method,
        request.params_mut().take(),
    ));
    if !send(&session, msg, origin.sink.as_ref()) {
        table.pending.remove(&id);
        let e = ErrorObject::upstream_unavailable(
            &name,
            "the client has no open stream to receive the request",
        );
        peer.respond(request.id, Err(e)).await;
    }
}

/// A client's answer to a forwarded request. False when the id is not one the gateway sent
/// to this session (a stale or foreign answer, which is ignored).
pub fn answered(relay: &Relay, session: &Session, response: Response) -> bool {
    let Some(Id::Str(id)) = &response.id else {
        return false;
    };
    let table = &relay.client_requests;
    let Some((_, pending)) = table.pending.remove_if(id, |_, p| p.session == session.id) else {
        // Asked by another replica: the answer goes there.
        return session
            .shared()
            .is_some_and(|shared| super::bus::forward_answer(shared, &session.id, &response));
    };
    tokio::spawn(
        pending
            .answer
            .deliver(response.outcome.map(Payload::into_value)),
    );
    true
}

/// Asks a handshake-era client something on the gateway's own behalf (a 2026-07-28
/// upstream's input request) and waits for the answer; the request goes on the stream of
/// the client request it belongs to (`sink`) while that is open. Dropping the future
/// forgets the question.
pub async fn ask(
    relay: &Relay,
    session: &Session,
    sink: Option<&tokio::sync::mpsc::Sender<Message>>,
    method: &str,
    params: Option<Value>,
) -> Result<Value, ErrorObject> {
    let mut request = Request::new(Id::Num(0), method, params);
    permitted(&session.client_capabilities, &request)?;
    let table = &relay.client_requests;
    let id = table.mint()?;
    let (tx, rx) = oneshot::channel();
    table.pending.insert(
        id.clone(),
        Pending {
            answer: Answer::Gateway(tx),
            session: session.id.clone(),
        },
    );
    let _forget = Forget { table, id: &id };
    let msg = Message::Request(Request::new(
        Id::Str(id.clone()),
        method,
        request.params_mut().take(),
    ));
    if !send(session, msg, sink) {
        return Err(ErrorObject::internal(
            "the client has no open stream to receive the request",
        ));
    }
    rx.await.unwrap_or_else(|_| {
        Err(ErrorObject::internal(
            "the client session closed before answering",
        ))
    })
}

/// Removes a question nobody waits for any more.
struct Forget<'a> {
    table: &'a ClientRequests,
    id: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.table.pending.remove(self.id);
    }
}

/// A server→client request made while serving a 2026-07-28 client, which cannot receive
/// requests: handed to the router's exchange, which asks the client with an input-required
/// result and answers the upstream with what the client's retry brings.
async fn to_exchange(
    inputs: tokio::sync::mpsc::Sender<InputNeeded>,
    peer: Arc<Peer>,
    mut request: Request,
) {
    if request.method == methods::PING {
        return peer.respond(request.id, Ok(json!({}))).await;
    }
    let (tx, rx) = oneshot::channel();
    let needed = InputNeeded {
        method: request.method.clone(),
        params: request.params_mut().take(),
        reply: tx,
    };
    if inputs.send(needed).await.is_err() {
        let e = ErrorObject::internal("the client request this belongs to has ended");
        return peer.respond(request.id, Err(e)).await;
    }
    tokio::spawn(async move {
        let outcome = rx.await.unwrap_or_else(|_| {
            Err(ErrorObject::internal(
                "the client did not answer: its request ended or expired",
            ))
        });
        peer.respond(request.id, outcome).await;
    });
}

/// The upstream gave up on a request it sent; tell the client, under the gateway's id.
pub fn cancelled_by_upstream(relay: &Relay, upstream: usize, mut params: Value) -> bool {
    let Some(upstream_id) = params.get("requestId").and_then(Id::from_value) else {
        return false;
    };
    let table = &relay.client_requests;
    let found = table
        .pending
        .iter()
        .find(|p| matches!(&p.answer, Answer::Upstream { upstream: u, upstream_id: id, .. } if *u == upstream && *id == upstream_id))
        .map(|p| (p.key().clone(), p.session.clone()));
    let Some((id, session)) = found else {
        return false;
    };
    table.pending.remove(&id);
    params["requestId"] = Value::from(id);
    let Some(session) = relay.sessions.peek(&session) else {
        return false;
    };
    session.send(Message::Notification(Notification::new(
        methods::CANCELLED,
        Some(params),
    )))
}

/// A session ended: its unanswered requests fail at their upstreams.
pub async fn session_closed(relay: &Relay, session: &str) {
    let table = &relay.client_requests;
    let ids: Vec<String> = table
        .pending
        .iter()
        .filter(|p| p.session == session)
        .map(|p| p.key().clone())
        .collect();
    for id in ids {
        if let Some((_, p)) = table.pending.remove(&id) {
            let e = ErrorObject::new(
                codes::INTERNAL_ERROR,
                "the client session closed before answering",
            );
            p.answer.deliver(Err(e)).await;
        }
    }
}

/// Whether the client declared the capability the request needs.
pub fn permitted(caps: &Value, request: &Request) -> Result<(), ErrorObject> {
    let missing = |cap: &str| {
        ErrorObject::new(
            codes::METHOD_NOT_FOUND,
            format!("the client did not declare the '{cap}' capability"),
        )
    };
    match request.method.as_str() {
        methods::SAMPLING_CREATE_MESSAGE if caps.get("sampling").is_none() => {
            Err(missing("sampling"))
        }
        methods::ROOTS_LIST if caps.get("roots").is_none() => Err(missing("roots")),
        methods::ELICITATION_CREATE => {
            let Some(elicitation) = caps.get("elicitation") else {
                return Err(missing("elicitation"));
            };
            let mode = request
                .param("mode")
                .and_then(Value::as_str)
                .unwrap_or("form");
            // An empty elicitation object means form mode only (2025-11-25 client capabilities).
            let empty = elicitation.as_object().is_none_or(|o| o.is_empty());
            let supported = elicitation.get(mode).is_some() || (mode == "form" && empty);
            if supported {
                Ok(())
            } else {
                Err(ErrorObject::invalid_params(format!(
                    "the client does not support elicitation mode '{mode}'"
                ))
                .with_data(json!({ "mode": mode })))
            }
        }
        methods::SAMPLING_CREATE_MESSAGE | methods::ROOTS_LIST | methods::PING => Ok(()),
        other => Err(ErrorObject::method_not_found(other)),
    }
}
