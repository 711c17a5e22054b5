//! Reading what upstream HTTP servers send: SSE streams of JSON-RPC messages and bounded
//! JSON bodies.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};

use super::MAX_MESSAGE_BYTES;
use crate::protocol::Message;
use crate::protocol::jsonrpc::ParseError;

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;

/// Raw SSE events from a response body (reqwest's or the lean client's, see [`super::h1`]).
pub fn events<S, E>(body: S) -> EventStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: fmt::Display + 'static,
{
    Box::pin(body.eventsource().map(|r| r.map_err(|e| e.to_string())))
}

/// JSON-RPC messages carried by an SSE stream, with each event's id (for `Last-Event-ID`).
/// Events with empty data (priming events, keep-alives) and non-`message` event types are
/// skipped; an event whose data is not a message is logged and skipped.
pub struct SseMessages {
    inner: EventStream,
}

impl SseMessages {
    pub fn new<S, E>(body: S) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        Self {
            inner: events(body),
        }
    }

    pub fn from_events(inner: EventStream) -> Self {
        Self { inner }
    }
}

impl Stream for SseMessages {
    type Item = Result<(Message, Option<String>), String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let event = match self.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(ev))) => ev,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            if event.data.is_empty() || !(event.event.is_empty() || event.event == "message") {
                continue;
            }
            if event.data.len() > MAX_MESSAGE_BYTES {
                tracing::warn!(
                    bytes = event.data.len(),
                    "Skipped an over-long SSE message from an upstream"
                );
                continue;
            }
            let id = (!event.id.is_empty()).then(|| event.id.clone());
            match Message::parse(event.data.as_bytes()) {
                Ok(msg) => return Poll::Ready(Some(Ok((msg, id)))),
                Err(e) => {
                    tracing::warn!(error = ?e, "Upstream SSE event is not a JSON-RPC message")
                }
            }
        }
    }
}

/// Reads a whole response body, refusing more than [`MAX_MESSAGE_BYTES`].
pub async fn read_limited<S, E>(chunks: S) -> Result<Vec<u8>, String>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: fmt::Display,
{
    let mut body = Vec::new();
    let mut chunks = std::pin::pin!(chunks);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| format!("reading the response failed: {e}"))?;
        if body.len() + chunk.len() > MAX_MESSAGE_BYTES {
            return Err(format!("response larger than {MAX_MESSAGE_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The messages in a JSON body: one message, or the elements of a batch.
pub fn messages_in_body(body: &[u8]) -> Vec<Message> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Vec::new();
    }
    match Message::parse(body) {
        Ok(msg) => vec![msg],
        Err(ParseError::Batch(items)) => items
            .into_iter()
            .filter_map(|v| Message::from_value(v).ok())
            .collect(),
        Err(ParseError::Invalid(_)) => Vec::new(),
    }
}
