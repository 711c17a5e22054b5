//! Logging: `logging/setLevel` from clients applied to the upstreams, and upstream
//! `notifications/message` delivered to the clients they concern, tagged with the upstream.
//!
//! Upstreams are shared, so each is set to the most verbose level any client asked for and
//! the gateway filters per client. A message that belongs to a client request goes to that
//! client (its level permitting; before any setLevel, everything); other messages go to the
//! clients that asked for logs at or below the message's level.

use serde_json::{Value, json};

use super::Relay;
use super::send;
use crate::protocol::logging::{self, rank};
use crate::protocol::{ErrorObject, Message, Notification, methods};
use crate::session::Session;
use crate::upstream::peer::Origin;

pub async fn set_level(
    relay: &Relay,
    session: &Session,
    level: &Value,
) -> Result<Value, ErrorObject> {
    let Some(level_rank) = level.as_str().and_then(rank) else {
        return Err(ErrorObject::invalid_params(format!(
            "'level' must be one of {}",
            logging::LEVELS.join(", ")
        )));
    };
    session.set_log_level(level_rank);
    for (index, upstream) in relay.upstreams.indexed() {
        if upstream.dedicated() {
            // The client's own upstream session takes the client's own level.
            if upstream.server_info().is_some_and(|i| i.has("logging")) {
                let params = json!({ "level": logging::name(level_rank) });
                let origin = Some(super::origin(session));
                if let Err(e) = upstream
                    .request(origin, methods::LOGGING_SET_LEVEL, Some(params))
                    .await
                {
                    tracing::debug!(upstream = %upstream.name(), error = %e, "logging/setLevel failed");
                }
            }
        } else {
            apply(relay, index).await;
        }
    }
    Ok(json!({}))
}

/// Sets a shared upstream session to the most verbose level any client asked for.
async fn apply(relay: &Relay, index: usize) {
    let Some(level) = relay.sessions.min_log_level() else {
        return;
    };
    let upstream = &relay.upstreams.at(index);
    if upstream.dedicated() || !upstream.server_info().is_some_and(|i| i.has("logging")) {
        return;
    }
    let params = json!({ "level": logging::name(level) });
    if let Err(e) = upstream
        .request(None, methods::LOGGING_SET_LEVEL, Some(params))
        .await
    {
        tracing::debug!(upstream = %upstream.name(), error = %e, "logging/setLevel failed");
    }
}

/// After a reconnect the upstream forgot the level: set it again.
pub async fn replay(relay: &Relay, index: usize) {
    apply(relay, index).await;
}

pub fn deliver(relay: &Relay, upstream: &str, mut params: Value, origin: Option<&Origin>) -> bool {
    let level = params
        .get("level")
        .and_then(Value::as_str)
        .and_then(rank)
        .unwrap_or(0);
    let logger = match params.get("logger").and_then(Value::as_str) {
        Some(inner) => format!("{upstream}/{inner}"),
        None => upstream.to_owned(),
    };
    params["logger"] = Value::from(logger);
    let msg = Message::Notification(Notification::new(methods::LOG_MESSAGE, Some(params)));
    if let Some(origin) = origin
        && origin.session.is_none()
    {
        // A 2026-07-28 client gets messages only for a request that asked for them
        // (`logLevel`), on that request's own stream, and never anywhere else.
        let wanted = origin
            .log_level
            .as_deref()
            .and_then(crate::protocol::logging::rank)
            .is_some_and(|min| level >= min);
        return wanted
            && origin
                .sink
                .as_ref()
                .is_some_and(|sink| sink.try_send(msg).is_ok());
    }
    if let Some(origin) = origin
        && let Some(session) = origin
            .session
            .as_deref()
            .and_then(|id| relay.sessions.peek(id))
    {
        let wanted = session.log_level().is_none_or(|min| level >= min);
        return wanted && send(&session, msg, origin.sink.as_ref());
    }
    relay
        .sessions
        .broadcast_where(&msg, |s| s.log_level().is_some_and(|min| level >= min))
        > 0
}
