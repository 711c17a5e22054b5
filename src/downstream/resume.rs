//! Streams when replicas share sessions: holding a session's GET stream (so the others know
//! where to send what is for its client), and resuming, with `Last-Event-ID`, a request
//! stream another replica wrote (its events are relayed here through Redis while that
//! replica lives; if it is gone the client is told so at once, and if it stops answering
//! the stream ends with an error rather than hanging).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt;

use super::answer::{sse_json, sse_response};
use super::web::{plain, rpc_error};
use crate::relay::bus::ALIVE_EVERY;
use crate::session::Session;
use crate::session::shared::{Resumed, Shared};

/// A resumed stream whose owner sent nothing, not even "alive", for this long is given up.
const SILENT_FOR: Duration = Duration::from_secs(3 * ALIVE_EVERY.as_secs());

/// This replica holds a session's GET stream until dropped.
pub struct Held {
    shared: Arc<Shared>,
    session: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        let shared = self.shared.clone();
        let session = std::mem::take(&mut self.session);
        tokio::spawn(async move {
            if let Err(e) = shared.release_stream(&session).await {
                tracing::debug!(error = %e, "Could not release a GET stream in Redis");
            }
        });
    }
}

/// Tells the other replicas that this one holds the session's GET stream (nothing when
/// sessions are not shared). Without Redis the stream still works here; messages from other
/// replicas then stay where they were made until it answers again.
pub async fn hold(session: &Session) -> Option<Held> {
    let shared = session.shared()?;
    if let Err(e) = shared.hold_stream(&session.id).await {
        tracing::warn!(error = %e, "Could not record the GET stream in Redis");
    }
    Some(Held {
        shared: shared.clone(),
        session: session.id.clone(),
    })
}

/// Resumes request stream `stream` (written by replica `owner`) after event `seq`.
pub async fn elsewhere(
    shared: &Arc<Shared>,
    session: &str,
    stream: u64,
    seq: u64,
    owner: u32,
    shutdown: tokio_util::sync::WaitForCancellationFutureOwned,
) -> Response {
    let (token, mut rx) = match crate::relay::bus::resume(shared, session, stream, seq, owner).await
    {
        Ok(resumed) => resumed,
        Err(why) => return gone(why),
    };
    let guard = Unregister {
        shared: shared.clone(),
        token,
    };
    // The owner's first word (alive, or why it cannot resume) decides the status.
    match tokio::time::timeout(SILENT_FOR, rx.recv()).await {
        Ok(Some(Resumed::Alive)) => {}
        Ok(Some(Resumed::End(Some(why)))) => return gone(why),
        Ok(Some(_)) | Ok(None) | Err(_) => {
            return plain(
                StatusCode::GATEWAY_TIMEOUT,
                "the replica that ran this request did not answer; its stream cannot be resumed",
            );
        }
    }
    let events = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        loop {
            match tokio::time::timeout(SILENT_FOR, rx.recv()).await {
                Ok(Some(Resumed::Event { id, json })) => {
                    let event = sse_json(&json).map(|e| e.id(id));
                    return Some((event, (rx, guard)));
                }
                Ok(Some(Resumed::Alive)) => continue,
                Ok(Some(Resumed::End(None))) | Ok(None) => return None,
                // The owner could not go on, or went silent (it died): the stream ends, and
                // the client's next resumption is told the replica is gone.
                Ok(Some(Resumed::End(Some(_)))) | Err(_) => {
                    tracing::info!("A resumed stream's replica stopped answering; ended it");
                    return None;
                }
            }
        }
    });
    sse_response(events.take_until(shutdown))
}

/// 410 with why the stream cannot be resumed: the client should send the request again. Not
/// 404, which tells a client to drop its session, and the session is still valid.
fn gone(why: String) -> Response {
    rpc_error(
        StatusCode::GONE,
        crate::protocol::ErrorObject::invalid_request(why),
    )
}

/// Forgets a resumed stream's token when its reader goes.
struct Unregister {
    shared: Arc<Shared>,
    token: String,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        self.shared.resumes.remove(&self.token);
    }
}
