//! What other replicas send this one when replicas share sessions (`redis`): messages for
//! the GET streams held here, clients' answers to requests asked here, cancellations,
//! session ends and changes, and resumption of the request streams written here. The
//! protocol of these messages is in `session::shared`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Relay;
use crate::protocol::{Id, Message};
use crate::session::Session;
use crate::session::shared::{Broadcast, Directed, Record, Resumed, Shared, decode};

/// A resumed stream's owner says it is alive this often while nothing else comes.
pub const ALIVE_EVERY: Duration = Duration::from_secs(5);

/// Receives on this replica's channel and the bus until `stop`.
pub async fn run(relay: Arc<Relay>, shared: Arc<Shared>, stop: CancellationToken) {
    let mine = shared.replica_channel(shared.replica);
    let bus = shared.bus_channel();
    let mut rx = shared
        .redis
        .subscribe(vec![mine.clone(), bus.clone()], stop.clone());
    while let Some((channel, payload)) = rx.recv().await {
        if channel == mine {
            if let Some(message) = decode::<Directed>(&payload) {
                directed(&relay, &shared, message, &stop);
            }
        } else if channel == bus
            && let Some(message) = decode::<Broadcast>(&payload)
        {
            // Handling one may wait on upstreams (unsubscribing, replaying a level): never
            // in this loop, which must keep delivering answers and stream messages.
            let (relay, shared) = (relay.clone(), shared.clone());
            tokio::spawn(async move { broadcast(&relay, &shared, message).await });
        }
    }
}

fn directed(relay: &Arc<Relay>, shared: &Arc<Shared>, message: Directed, stop: &CancellationToken) {
    match message {
        Directed::Stream { s, m } => {
            let msg = Message::from_value(m);
            match (relay.sessions.peek(&s), msg) {
                (Some(session), Ok(msg)) => {
                    session.push_local(msg);
                }
                _ => {
                    tracing::debug!(session = %short(&s), "A message for a stream this replica no longer holds")
                }
            }
        }
        Directed::Answer { s, m } => {
            let Ok(Message::Response(response)) = Message::from_value(m) else {
                return;
            };
            let Some(session) = relay.sessions.peek(&s) else {
                return;
            };
            if !super::client_requests::answered(relay, &session, response) {
                tracing::debug!(session = %short(&s), "An answer forwarded here matches no pending request");
            }
        }
        Directed::Resume {
            s,
            stream,
            after,
            from,
            token,
        } => {
            let relay = relay.clone();
            let shared = shared.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                serve_resume(&relay, &shared, &s, stream, after, from, token, stop).await;
            });
        }
        Directed::Continue {
            id,
            answers,
            binding,
            from,
            token,
        } => {
            let shared = shared.clone();
            tokio::spawn(async move {
                let outcome = match shared.continue_held.get() {
                    Some(continue_held) => continue_held(id, answers, binding).await,
                    None => serde_json::json!({ "err": crate::protocol::ErrorObject::internal(
                        "this replica cannot continue held calls"
                    ) }),
                };
                let reply = Directed::Continued { token, outcome };
                if let Err(e) = shared.direct(from, &reply).await {
                    tracing::warn!(error = %e, "Could not return a continued call's outcome");
                }
            });
        }
        Directed::ListenUpdate { key, params } => {
            let targets = std::iter::once(key).collect();
            relay.listeners.resource_updated(&params, &targets);
        }
        Directed::Continued { token, outcome } => {
            if let Some((_, tx)) = shared.continues.remove(&token) {
                let _ = tx.send(outcome);
            }
        }
        Directed::Event {
            token,
            id,
            json,
            end,
            error,
        } => {
            let Some(tx) = shared.resumes.get(&token).map(|t| t.clone()) else {
                return;
            };
            let event = match (end, id, json) {
                (true, _, _) => Resumed::End(error),
                (false, Some(id), Some(json)) => Resumed::Event { id, json },
                _ => Resumed::Alive,
            };
            // A reader that stopped reading loses the rest; it drops its entry itself.
            let _ = tx.try_send(event);
        }
    }
}

/// Sends the events of a request stream written here to the replica resuming it.
#[allow(clippy::too_many_arguments)]
async fn serve_resume(
    relay: &Relay,
    shared: &Shared,
    session: &str,
    stream: u64,
    after: u64,
    to: u32,
    token: String,
    stop: CancellationToken,
) {
    let event = |id: Option<String>, json: Option<String>, end: bool, error: Option<String>| {
        Directed::Event {
            token: token.clone(),
            id,
            json,
            end,
            error,
        }
    };
    let Some(log) = relay.sessions.peek(session).and_then(|s| s.stream(stream)) else {
        let why = "the replica that ran this request no longer keeps its stream".to_owned();
        let _ = shared.direct(to, &event(None, None, true, Some(why))).await;
        return;
    };
    let _ = shared.direct(to, &event(None, None, false, None)).await;
    let mut events = Box::pin(log.follow(after));
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => break,
            next = tokio::time::timeout(ALIVE_EVERY, events.next()) => next,
        };
        let message = match next {
            Err(_) => event(None, None, false, None),
            Ok(None) => break,
            Ok(Some((id, json))) => event(Some(id), Some(json.text().to_string()), false, None),
        };
        match shared.direct(to, &message).await {
            Ok(true) => {}
            // The resuming replica is gone, or Redis is: stop following.
            _ => return,
        }
    }
    let _ = shared.direct(to, &event(None, None, true, None)).await;
}

async fn broadcast(relay: &Relay, shared: &Shared, message: Broadcast) {
    match message {
        Broadcast::Closed { s } => {
            shared.forget(&s);
            if let Some(session) = relay.sessions.remove(&s) {
                tracing::info!(session = %short(&s), "Client session closed on another replica");
                session.close_stream();
                super::session_closed(relay, &s).await;
            }
        }
        Broadcast::Cancel { s, id } => {
            if let (Some(session), Some(id)) = (relay.sessions.peek(&s), Id::from_value(&id)) {
                session.cancel(&id);
            }
        }
        Broadcast::RootsChanged { s, from } => {
            if from != shared.replica && relay.sessions.peek(&s).is_some() {
                for upstream in relay.upstreams.iter() {
                    upstream
                        .notify(crate::protocol::methods::ROOTS_LIST_CHANGED, None)
                        .await;
                }
            }
        }
        Broadcast::Listen { key, uris, from } => {
            if from != shared.replica {
                super::subscriptions::listen_for(relay, &remote_listener(from, &key), &uris).await;
            }
        }
        Broadcast::Unlisten { key, from } => {
            if from != shared.replica {
                super::subscriptions::session_closed(relay, &remote_listener(from, &key)).await;
            }
        }
        Broadcast::Changed { s, from } => {
            if from == shared.replica {
                return;
            }
            let Some(session) = relay.sessions.peek(&s) else {
                return;
            };
            match shared.load(&s).await {
                Ok(Some(record)) => apply(relay, &session, &record).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(session = %short(&s), error = %e, "Could not read a changed session")
                }
            }
        }
    }
}

/// Brings this replica's copy of a session (and the upstream state it carries here) in line
/// with the shared record: its log level, and its subscriptions.
pub async fn apply(relay: &Relay, session: &Arc<Session>, record: &Record) {
    if let Some(level) = record.log_level
        && session.log_level() != Some(level)
    {
        let name = Value::from(crate::protocol::logging::name(level));
        let _ = super::logging::set_level(relay, session, &name).await;
    }
    let held = session.subscriptions();
    for uri in record.subscriptions.iter().filter(|u| !held.contains(u)) {
        if let Err(e) = super::subscriptions::subscribe(relay, session, uri).await {
            tracing::debug!(uri = %uri, error = %e.message, "Could not replay a subscription");
        }
    }
    for uri in held.iter().filter(|u| !record.subscriptions.contains(u)) {
        let _ = super::subscriptions::unsubscribe(relay, session, uri).await;
    }
}

/// A session's log level or subscriptions changed here: save its record and tell the
/// replicas holding copies (nothing when replicas do not share sessions). The client's
/// request fails when the change cannot be shared, so it never believes in a change the
/// other replicas do not know.
pub async fn changed(session: &Session) -> Result<(), crate::protocol::ErrorObject> {
    let Some(shared) = session.shared() else {
        return Ok(());
    };
    let json = session.record().encode().map_err(too_large)?;
    shared
        .changed(&session.id, &json)
        .await
        .map_err(|e| unavailable(&e))
}

/// The error for a session whose record would not fit in Redis.
pub fn too_large(len: usize) -> crate::protocol::ErrorObject {
    crate::protocol::ErrorObject::invalid_params(format!(
        "the session would take {len} bytes to share (client info, capabilities and \
         subscriptions); a session shared by replicas holds at most {}",
        crate::session::shared::MAX_RECORD
    ))
}

/// The error a client gets when the shared session store cannot be reached.
pub fn unavailable(e: &crate::net::redis::RedisFault) -> crate::protocol::ErrorObject {
    crate::protocol::ErrorObject::new(
        crate::protocol::codes::GATEWAY_BUSY,
        format!("the shared session store is unavailable ({e}); retry shortly"),
    )
}

/// A client answered a request another replica sent it (the id names that replica):
/// forward the answer there. False when the id names no other replica.
pub fn forward_answer(
    shared: &Arc<Shared>,
    session: &str,
    response: &crate::protocol::Response,
) -> bool {
    let Some(Id::Str(id)) = &response.id else {
        return false;
    };
    let Some(replica) = super::client_requests::replica_of(id).filter(|r| *r != shared.replica)
    else {
        return false;
    };
    let message = Directed::Answer {
        s: session.to_owned(),
        m: serde_json::to_value(Message::Response(response.clone())).unwrap_or_default(),
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        match shared.direct(replica, &message).await {
            Ok(true) => {}
            Ok(false) => tracing::info!("A client answered a request of a replica that is gone"),
            Err(e) => tracing::warn!(error = %e, "Could not forward a client's answer"),
        }
    });
    true
}

/// Starts following request stream `stream` of `session`, written by replica `owner`:
/// the receiver gets its events, `Alive` while the owner follows it, and `End` when it
/// ends, when the owner cannot resume it, or when the owner stops answering.
pub async fn resume(
    shared: &Arc<Shared>,
    session: &str,
    stream: u64,
    after: u64,
    owner: u32,
) -> Result<(String, mpsc::Receiver<Resumed>), String> {
    let token = reply_token();
    let (tx, rx) = mpsc::channel(256);
    shared.resumes.insert(token.clone(), tx);
    let ask = Directed::Resume {
        s: session.to_owned(),
        stream,
        after,
        from: shared.replica,
        token: token.clone(),
    };
    match shared.direct(owner, &ask).await {
        Ok(true) => Ok((token, rx)),
        Ok(false) => {
            shared.resumes.remove(&token);
            Err("the replica that ran this request is gone; its stream cannot be resumed".into())
        }
        Err(e) => {
            shared.resumes.remove(&token);
            Err(format!(
                "cannot reach the replica that ran this request: {e}"
            ))
        }
    }
}

/// Continues call `id`, held on replica `owner`, with a retry's answers; waits at most
/// `wait` for the outcome (`{"ok": result}` or `{"err": error}`).
pub async fn continue_elsewhere(
    shared: &Arc<Shared>,
    owner: u32,
    id: &str,
    answers: Value,
    binding: Value,
    wait: Duration,
) -> Result<Value, crate::protocol::ErrorObject> {
    use crate::protocol::ErrorObject;
    let token = reply_token();
    let (tx, rx) = tokio::sync::oneshot::channel();
    shared.continues.insert(token.clone(), tx);
    let ask = Directed::Continue {
        id: id.to_owned(),
        answers,
        binding,
        from: shared.replica,
        token: token.clone(),
    };
    let gone = || {
        ErrorObject::invalid_params(
            "requestState names a call held by a replica that is gone; send the request again \
             without requestState",
        )
    };
    let sent = shared.direct(owner, &ask).await;
    let outcome = match sent {
        Ok(true) => tokio::time::timeout(wait, rx).await,
        Ok(false) => {
            shared.continues.remove(&token);
            return Err(gone());
        }
        Err(e) => {
            shared.continues.remove(&token);
            return Err(unavailable(&e));
        }
    };
    shared.continues.remove(&token);
    match outcome {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(_)) | Err(_) => Err(ErrorObject::new(
            crate::protocol::codes::UPSTREAM_TIMEOUT,
            "the replica holding this call did not answer in time; send the request again \
             without requestState",
        )),
    }
}

/// A fresh token under which an answer from another replica comes back here.
fn reply_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// This replica's subscriber key for listen stream `key` of replica `replica`.
pub fn remote_listener(replica: u32, key: &str) -> String {
    let n = key.strip_prefix("listen:").unwrap_or(key);
    format!("listen:r{replica}:{n}")
}

/// The replica and its own key of a remote listen stream's subscriber key.
pub fn remote_listener_of(subscriber: &str) -> Option<(u32, String)> {
    let rest = subscriber.strip_prefix("listen:r")?;
    let (replica, n) = rest.split_once(':')?;
    Some((replica.parse().ok()?, format!("listen:{n}")))
}

/// Sends an update to the replicas whose listen streams (`remote`, subscriber keys from
/// [`remote_listener`]) watch it; a replica that is gone has its watches dropped here.
pub fn forward_listen_update(relay: &Relay, remote: Vec<String>, params: &Value) {
    let Some(shared) = relay.sessions.shared().cloned() else {
        return;
    };
    let relay = relay.arc();
    let params = params.clone();
    tokio::spawn(async move {
        for subscriber in remote {
            let Some((replica, key)) = remote_listener_of(&subscriber) else {
                continue;
            };
            let update = Directed::ListenUpdate {
                key,
                params: params.clone(),
            };
            if let Ok(false) = shared.direct(replica, &update).await {
                super::subscriptions::session_closed(&relay, &subscriber).await;
            }
        }
    });
}

fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}
