//! `manifold stdio`: the gateway as a stdio MCP server, so a desktop client can launch it
//! like any local server. One client, one session; newline-delimited JSON-RPC on
//! stdin/stdout; logs on stderr. Requests run concurrently; everything the gateway sends
//! (responses, progress, server→client requests, list_changed) is written by one task so
//! lines never interleave.

use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};

use super::{Session, exchange};
use crate::gateway::Gateway;
use crate::pipeline::Caller;
use crate::protocol::jsonrpc::ParseError;
use crate::protocol::{ErrorObject, Message, Request, Response, methods};

/// Messages queued for stdout before writers wait.
const OUT_QUEUE: usize = 256;

/// Serves one client on `input`/`output` until the input ends.
pub async fn serve<R, W>(gateway: Arc<Gateway>, input: R, output: W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
    let (raw_tx, raw_rx) = mpsc::channel(OUT_QUEUE);
    let writer = tokio::spawn(write_loop(output, out_rx, raw_rx));
    let mut lines = FramedRead::new(
        input,
        LinesCodec::new_with_max_length(gateway.config.max_body_bytes),
    );
    let mut state = Connection {
        gateway: gateway.clone(),
        out: out_tx,
        raw: raw_tx,
        session: None,
        _reader: None,
    };
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                state
                    .write(Message::Response(Response::err(
                        None,
                        ErrorObject::invalid_request(format!("unreadable line: {e}")),
                    )))
                    .await;
                continue;
            }
        };
        if !line.trim().is_empty() {
            state.on_line(&line).await;
        }
    }
    if let Some(session) = state.session.take() {
        gateway.sessions.remove(&session.id);
        exchange::close(&gateway, &session).await;
    }
    drop(state);
    let _ = writer.await;
    Ok(())
}

struct Connection {
    gateway: Arc<Gateway>,
    out: mpsc::Sender<Message>,
    /// Pre-serialised lines (a batch's array of responses).
    raw: mpsc::Sender<String>,
    session: Option<Arc<Session>>,
    /// Holds the session's stream so it never counts as idle while stdin is open.
    _reader: Option<super::session::GetReader>,
}

impl Connection {
    async fn write(&self, msg: Message) {
        let _ = self.out.send(msg).await;
    }

    async fn on_line(&mut self, line: &str) {
        match Message::parse(line.as_bytes()) {
            Ok(Message::Request(req)) if req.method == methods::INITIALIZE => {
                self.initialize(req).await
            }
            Ok(msg) => match self.session.clone() {
                Some(session) => self.in_session(session, msg).await,
                None => self.before_initialize(msg).await,
            },
            Err(ParseError::Invalid(e)) => {
                self.write(Message::Response(Response::err(None, e))).await
            }
            Err(ParseError::Batch(items)) => self.batch(items).await,
        }
    }

    async fn initialize(&mut self, req: Request) {
        if self.session.is_some() {
            let e = ErrorObject::invalid_request("already initialized");
            return self
                .write(Message::Response(Response::err(Some(req.id), e)))
                .await;
        }
        let outcome =
            match exchange::initialize(&self.gateway, &req, Caller::local(), Session::new).await {
                Ok((result, session)) => {
                    self._reader = session.open_stream();
                    let (log, start, _) = session.get_stream();
                    let out = self.out.clone();
                    tokio::spawn(async move {
                        let mut events = Box::pin(log.follow(start));
                        while let Some((_, msg)) = events.next().await {
                            if out.send(msg).await.is_err() {
                                break;
                            }
                        }
                    });
                    self.session = Some(session);
                    Ok(result)
                }
                Err(e) => Err(e),
            };
        self.write(Message::Response(Response {
            id: Some(req.id),
            outcome,
        }))
        .await;
    }

    async fn before_initialize(&self, msg: Message) {
        match msg {
            Message::Request(req) if req.method == methods::PING => {
                self.write(Message::Response(Response::ok(req.id, json!({}))))
                    .await
            }
            Message::Request(req) => {
                let e = ErrorObject::invalid_request("send initialize first");
                self.write(Message::Response(Response::err(Some(req.id), e)))
                    .await
            }
            _ => {}
        }
    }

    async fn in_session(&self, session: Arc<Session>, msg: Message) {
        match msg {
            Message::Request(req) => {
                let (gateway, out) = (self.gateway.clone(), self.out.clone());
                tokio::spawn(async move {
                    let response = exchange::request(
                        &gateway,
                        &session,
                        req,
                        Some(out.clone()),
                        Caller::local(),
                    )
                    .await;
                    let _ = out.send(Message::Response(response)).await;
                });
            }
            Message::Notification(n) => exchange::notification(&self.gateway, &session, n).await,
            Message::Response(r) => exchange::response(&self.gateway, &session, r),
        }
    }

    async fn batch(&self, items: Vec<Value>) {
        let Some(session) = self
            .session
            .clone()
            .filter(|s| s.protocol_version == "2025-03-26")
        else {
            let e = ErrorObject::invalid_request(
                "JSON-RPC batches are only part of protocol revision 2025-03-26",
            );
            return self.write(Message::Response(Response::err(None, e))).await;
        };
        let (gateway, raw, out) = (self.gateway.clone(), self.raw.clone(), self.out.clone());
        tokio::spawn(async move {
            let line = match exchange::batch(&gateway, &session, items, Some(out), &Caller::local())
                .await
            {
                Ok(responses) if responses.is_empty() => return,
                Ok(responses) => Value::Array(
                    responses
                        .into_iter()
                        .map(|r| Message::Response(r).to_value())
                        .collect(),
                )
                .to_string(),
                Err(e) => Message::Response(Response::err(None, e)).to_json(),
            };
            let _ = raw.send(line).await;
        });
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut output: W,
    mut rx: mpsc::Receiver<Message>,
    mut raw: mpsc::Receiver<String>,
) {
    loop {
        let mut line = tokio::select! {
            Some(msg) = rx.recv() => msg.to_json(),
            Some(text) = raw.recv() => text,
            else => break,
        };
        line.push('\n');
        if output.write_all(line.as_bytes()).await.is_err() || output.flush().await.is_err() {
            break;
        }
    }
}
