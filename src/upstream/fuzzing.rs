//! Thin entry points for the fuzz targets in `fuzz/` (see `docs/testing.md`, "Fuzzing"): the
//! upstream readers are private to their transports, so these drive the same code over bytes
//! held in memory. Not part of the gateway's API.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, ReadBuf};

use super::sse_read::SseMessages;
use super::{sse, stdio};
use crate::protocol::Message;

/// Hands out its bytes `chunk` at a time, as a pipe does when a child writes in pieces.
struct Chunked<'a> {
    rest: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.chunk.max(1).min(self.rest.len()).min(buf.remaining());
        let (now, later) = self.rest.split_at(n);
        buf.put_slice(now);
        self.rest = later;
        Poll::Ready(Ok(()))
    }
}

/// What the stdio reader makes of a child's stdout `bytes`, read `chunk` bytes at a time with
/// lines bounded to `max_line` bytes: the messages in order, `Err` for a line that is not a
/// message, and a final `Err` when the framing fails (the reader closes the connection there).
pub fn stdio_stdout(bytes: &[u8], chunk: usize, max_line: usize) -> Vec<Result<Message, String>> {
    let reader = Chunked { rest: bytes, chunk };
    let mut lines = stdio::stdout_lines(reader, max_line);
    futures::executor::block_on(async {
        let mut out = Vec::new();
        while let Some(line) = lines.next().await {
            match line {
                Ok(line) => match stdio::line_message(&line) {
                    None => {}
                    Some(parsed) => out.push(parsed.map_err(|e| format!("{e:?}"))),
                },
                Err(e) => {
                    out.push(Err(format!("framing: {e}")));
                    break;
                }
            }
        }
        out
    })
}

/// What the SSE reader of HTTP upstreams makes of a response body arriving in `chunks`: each
/// message with its event id, and the errors the stream reports.
pub fn sse_messages(chunks: Vec<Vec<u8>>) -> Vec<Result<(Message, Option<String>), String>> {
    let body = futures::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<Bytes, reqwest::Error>(Bytes::from(c))),
    );
    let mut messages = SseMessages::new(body);
    futures::executor::block_on(async {
        let mut out = Vec::new();
        while let Some(item) = messages.next().await {
            out.push(item);
        }
        out
    })
}

/// The POST URL an HTTP+SSE upstream's `endpoint` event names, resolved against the SSE URL
/// `base` and refused unless it is on the same origin.
pub fn sse_endpoint(base: &str, endpoint: &str) -> Result<String, String> {
    let base = reqwest::Url::parse(base).map_err(|e| e.to_string())?;
    sse::endpoint_url(&base, endpoint).map(String::from)
}
