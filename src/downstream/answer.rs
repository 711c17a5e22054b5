//! How a Streamable HTTP request is answered: plain JSON, or a resumable SSE stream fed by
//! the request's own task (see `response_mode` and `resume_window`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::future::BoxFuture;

use super::exchange::{self, Answered};
use crate::config::ResponseMode;
use crate::gateway::Gateway;
use crate::pipeline::Caller;
use crate::protocol::{Message, Request};
use crate::session::Session;
use crate::session::events::EventLog;

/// Messages queued on one request's response stream before further ones are dropped.
const REQUEST_STREAM_QUEUE: usize = 64;
/// Tells proxies such as nginx to pass events through as they come.
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// Runs a request and answers it. In `stream` mode (the default) the answer is an SSE
/// stream, whose head goes out with its first message (or, with none, after
/// `first_event_wait`, so keep-alives flow on a long call); in `auto` mode it is plain JSON when
/// the result comes first, and a stream as soon as a message for this request (progress, a
/// server→client request) arrives before it. A stream carries those messages in order and
/// ends with the response.
///
/// Until the answer's head is out, a client that goes away drops the request (and the
/// upstream request is cancelled). Once it is a stream, the request runs in its own task into
/// the stream's replay buffer, so a client whose connection dropped can resume it with
/// `Last-Event-ID`; if no reader comes back within `resume_window` it is cancelled upstream.
/// It also stops when the client cancels it or the session ends.
pub(crate) async fn answer(
    gateway: Arc<Gateway>,
    session: Arc<Session>,
    req: Request,
    caller: Caller,
) -> Response {
    let config = gateway.config();
    let (mode, window, hold) = (
        config.response_mode,
        config.resume_window,
        config.first_event_wait,
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(REQUEST_STREAM_QUEUE);
    let (admit_tx, admit_rx) = tokio::sync::oneshot::channel();
    let runner = session.clone();
    let id = req.id.clone();
    let mut work: BoxFuture<'static, Answered> = Box::pin(async move {
        exchange::request_admitted(
            &gateway.pipeline(),
            &runner,
            req,
            Some(tx),
            caller,
            Some(admit_tx),
        )
        .await
    });
    // Nothing is committed until the pipeline admits the request: a refusal (429, 403) is
    // answered with its own status code, never inside a 200 stream.
    let early = tokio::select! {
        biased;
        response = &mut work => Some(response),
        _ = admit_rx => None,
    };
    if let Some(answered) = early {
        let refused = answered
            .response
            .outcome
            .as_ref()
            .err()
            .and_then(super::web::refusal_status)
            .is_some();
        if refused || mode == ResponseMode::Auto {
            return super::web::answered_or_refused(answered);
        }
        return streamed_whole(&session, &id, rx, answered);
    }
    // The stream's head waits for its first message, so that a quick answer leaves in one
    // write with it (and its end) rather than in two. Until then the request runs in this
    // task, and a client that goes away cancels it: with no event id yet there is nothing it
    // could resume.
    let first = tokio::select! {
        biased;
        answered = JustPolled::new(&mut work) => {
            return match mode {
                ResponseMode::Auto => super::web::answered_or_refused(answered),
                ResponseMode::Stream => streamed_whole(&session, &id, rx, answered),
            };
        }
        Some(first) = rx.recv() => Some(first),
        _ = tokio::time::sleep(hold), if mode == ResponseMode::Stream => None,
    };
    let log = session.new_request_stream(&id);
    if let Some(first) = first {
        log.push(first);
    }
    let events = log
        .follow(0)
        .map(|(id, json)| sse_json(&json.text()).map(|e| e.id(id)));
    tokio::spawn(run_into(work, rx, log, window));
    sse_response(events)
}

/// The stream of a request whose answer is already there: what came before it, then it.
fn streamed_whole(
    session: &Session,
    id: &crate::protocol::Id,
    mut rx: tokio::sync::mpsc::Receiver<Message>,
    answered: Answered,
) -> Response {
    let log = session.new_request_stream(id);
    while let Ok(msg) = rx.try_recv() {
        log.push(msg);
    }
    log.push_text(answered.into_text());
    log.close();
    // The events as a follower would read them, in one body: no stream to poll, no
    // keep-alive timer, and the answer leaves with its head in one write.
    let mut body = String::new();
    log.each_now(|id, json| sse_text(&mut body, id, &json.text()));
    sse_whole(body)
}

/// An SSE answer of events all written already: the headers of [`sse_response`], one body.
fn sse_whole(body: String) -> Response {
    let mut resp = Response::new(body.into());
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    resp
}

/// Appends one SSE event as [`sse_json`] and its id write it: `event`, a `data` line per
/// line of the message (it has one), `id`, and the blank line that ends it.
fn sse_text(out: &mut String, id: &str, json: &str) {
    out.reserve(json.len() + id.len() + 32);
    out.push_str("event: message\n");
    for line in json.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("id: ");
    out.push_str(id);
    out.push_str("\n\n");
}

/// Drives a streamed request to its end, writing its messages and response into `log`.
/// Gives up (dropping the request, which cancels it upstream) once the log has had no
/// reader for `window`.
async fn run_into(
    mut work: BoxFuture<'static, Answered>,
    mut rx: tokio::sync::mpsc::Receiver<Message>,
    log: Arc<EventLog>,
    window: std::time::Duration,
) {
    let period = (window / 2).clamp(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_secs(1),
    );
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut unread_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            biased;
            Some(msg) = rx.recv() => {
                log.push(msg);
            }
            answered = &mut work => {
                while let Ok(msg) = rx.try_recv() {
                    log.push(msg);
                }
                log.push_text(answered.into_text());
                log.close();
                return;
            }
            now = tick.tick() => {
                if log.readers() > 0 {
                    unread_since = None;
                } else if now.duration_since(*unread_since.get_or_insert(now)) >= window {
                    tracing::debug!(stream = log.stream, window = ?window, "Nobody resumed the stream; cancelling its request");
                    log.close();
                    return;
                }
            }
        }
    }
}

/// A future this task polled a moment ago, as a `select!` branch that skips its first turn.
///
/// An answer waits for admission first (`select!` of the work and the admission signal),
/// then for the result or a message (another `select!`). Admission comes while the work
/// is polled, so the second `select!` would poll the whole request again at once, for
/// nothing: it is waiting on what it registered in that poll, with this task's waker.
/// Skipping that one turn is safe only there: the work was polled, in this task, with no
/// `.await` in between (a wake that came meanwhile polls the task again).
pub(crate) struct JustPolled<'a, F> {
    work: &'a mut F,
    skip: bool,
}

impl<'a, F> JustPolled<'a, F> {
    pub(crate) fn new(work: &'a mut F) -> Self {
        JustPolled { work, skip: true }
    }
}

impl<F: Future + Unpin> Future for JustPolled<'_, F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        if std::mem::take(&mut self.skip) {
            return std::task::Poll::Pending;
        }
        std::pin::Pin::new(&mut *self.work).poll(cx)
    }
}

pub(crate) fn sse_event(msg: &Message) -> Result<Event, Infallible> {
    Ok(Event::default().event("message").data(msg.to_json()))
}

/// An event carrying a message already serialised (by the event log).
pub(crate) fn sse_json(json: &str) -> Result<Event, Infallible> {
    Ok(Event::default().event("message").data(json))
}

pub(crate) fn sse_response(
    events: impl futures::Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    let mut resp = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Proxies such as nginx must pass events through as they come.
    resp.headers_mut()
        .insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    resp
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::JustPolled;

    /// Counts its polls; ready at the second.
    struct Counted(usize);

    impl Future for Counted {
        type Output = usize;

        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<usize> {
            self.0 += 1;
            if self.0 == 2 {
                Poll::Ready(self.0)
            } else {
                Poll::Pending
            }
        }
    }

    /// An answer already whole is written as one body; it reads byte for byte as the
    /// stream of its log would, events dropped from the log (and the notice) included.
    #[tokio::test]
    async fn a_whole_answer_reads_as_its_stream_would() {
        use futures::StreamExt;
        use http_body_util::BodyExt;

        use crate::protocol::{Id, Message, Notification};
        use crate::session::events::{EventLog, REPLAY_EVENTS};

        for count in [0, 1, 3, REPLAY_EVENTS + 5] {
            let log = EventLog::for_request(7, Id::Num(1));
            for i in 0..count {
                let progress = serde_json::json!({ "progress": i });
                log.push(Message::Notification(Notification::new(
                    "notifications/progress",
                    Some(progress),
                )));
            }
            log.push_json("{\"jsonrpc\":\"2.0\",\n\"id\":1,\"result\":{}}".to_owned());
            log.close();
            let streamed = super::sse_response(
                log.follow(0)
                    .map(|(id, json)| super::sse_json(&json.text()).map(|e| e.id(id))),
            );
            let mut whole = String::new();
            log.each_now(|id, json| super::sse_text(&mut whole, id, &json.text()));
            assert!(!whole.is_empty());
            let whole = super::sse_whole(whole);
            assert_eq!(whole.headers(), streamed.headers());
            let streamed = streamed.into_body().collect().await.unwrap().to_bytes();
            let whole = whole.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(
                String::from_utf8_lossy(&whole),
                String::from_utf8_lossy(&streamed),
                "{count} events"
            );
        }
    }

    #[test]
    fn a_just_polled_future_is_skipped_once_then_polled() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut work = Counted(0);
        assert!(Pin::new(&mut work).poll(&mut cx).is_pending());
        let mut again = JustPolled::new(&mut work);
        assert!(Pin::new(&mut again).poll(&mut cx).is_pending());
        assert_eq!(again.work.0, 1, "the first turn does not poll the work");
        assert_eq!(Pin::new(&mut again).poll(&mut cx), Poll::Ready(2));
    }
}
