//! `manifold stdio`: the gateway as a stdio MCP server, so a desktop client can launch it
//! like any local server. One client, one session; newline-delimited JSON-RPC on
//! stdin/stdout; logs on stderr. Requests run concurrently; everything the gateway sends
//! (responses, progress, server→client requests, list_changed) is written by one task so
//! lines never interleave.
//!
//! The connection speaks one era, chosen by the client's first request (as the reference
//! SDK does): 2026-07-28 when that request is not `initialize` and its `_meta` names a
//! protocol version, the handshake era otherwise. Afterwards `initialize` on a stateless
//! connection is -32022 and an enveloped request on a handshake-era one is -32600. A stateless
//! request is cancelled by `notifications/cancelled` naming it (a listen stream too), and
//! then gets no answer.

use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use super::exchange;
use crate::gateway::Gateway;
use crate::pipeline::Caller;
use crate::protocol::envelope::{self, Envelope};
use crate::protocol::jsonrpc::ParseError;
use crate::protocol::{Era, ErrorObject, Message, Request, Response, methods};
use crate::session::Session;

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
        LinesCodec::new_with_max_length(gateway.config().max_body_bytes),
    );
    let mut state = Connection {
        gateway: gateway.clone(),
        out: out_tx,
        raw: raw_tx,
        session: None,
        _reader: None,
        era: None,
        inflight: Arc::default(),
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
    // Stateless requests (listen streams above all) end with the connection.
    for token in state.inflight.iter() {
        token.cancel();
    }
    if let Some(session) = state.session.take() {
        gateway.sessions.remove(&session.id);
        exchange::close(&gateway.relay, &session).await;
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
    _reader: Option<crate::session::client::GetReader>,
    /// The era the first request chose.
    era: Option<Era>,
    /// Stateless requests in flight, by id, so `notifications/cancelled` can stop them.
    inflight: Arc<dashmap::DashMap<crate::protocol::Id, CancellationToken>>,
}

impl Connection {
    async fn write(&self, msg: Message) {
        let _ = self.out.send(msg).await;
    }

    async fn on_line(&mut self, line: &str) {
        let parsed = Message::parse(line.as_bytes());
        if let Ok(Message::Request(req)) = &parsed
            && self.era.is_none()
        {
            let stateless = req.method != methods::INITIALIZE
                && envelope::declares_version(req.params_except_arguments());
            self.era = Some(if stateless {
                Era::Stateless
            } else {
                Era::Handshake
            });
        }
        if self.era == Some(Era::Stateless) {
            return self.stateless(parsed).await;
        }
        if let Ok(Message::Request(req)) = &parsed
            && req.method != methods::INITIALIZE
            && envelope::declares_version(req.params_except_arguments())
        {
            let e = ErrorObject::invalid_request(
                "this connection speaks the handshake era (it began with initialize); \
                 2026-07-28 requests need a connection of their own",
            );
            return self
                .write(Message::Response(Response::err(Some(req.id.clone()), e)))
                .await;
        }
        match parsed {
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

    /// A message on a connection locked to 2026-07-28.
    async fn stateless(&self, parsed: Result<Message, ParseError>) {
        let mut req = match parsed {
            Ok(Message::Request(req)) => req,
            Ok(Message::Notification(n)) if n.method == methods::CANCELLED => {
                let id = n
                    .params
                    .as_ref()
                    .and_then(|p| p.get("requestId"))
                    .and_then(crate::protocol::Id::from_value);
                if let Some(token) = id.and_then(|id| self.inflight.get(&id).map(|t| t.clone())) {
                    token.cancel();
                }
                return;
            }
            Ok(Message::Notification(_) | Message::Response(_)) => return,
            Err(ParseError::Invalid(e)) => {
                return self.write(Message::Response(Response::err(None, e))).await;
            }
            Err(ParseError::Batch(_)) => {
                let e = ErrorObject::invalid_request("2026-07-28 has no JSON-RPC batches");
                return self.write(Message::Response(Response::err(None, e))).await;
            }
        };
        let checked = if req.method == methods::INITIALIZE {
            let requested = req
                .param("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Err(ErrorObject::unsupported_version(requested))
        } else {
            Envelope::take(req.params_except_arguments_mut()).and_then(|envelope| {
                envelope.check_version()?;
                methods::check_stateless_client_request(&req.method)?;
                Ok(envelope)
            })
        };
        let envelope = match checked {
            Ok(envelope) => envelope,
            Err(e) => {
                return self
                    .write(Message::Response(Response::err(Some(req.id), e)))
                    .await;
            }
        };
        let cancel = CancellationToken::new();
        self.inflight.insert(req.id.clone(), cancel.clone());
        let run_cancel = cancel.clone();
        let (gateway, out, inflight) = (
            self.gateway.clone(),
            self.out.clone(),
            self.inflight.clone(),
        );
        tokio::spawn(async move {
            let id = req.id.clone();
            let run = exchange::Stateless {
                envelope,
                sink: Some(out.clone()),
                caller: Caller::local(),
                admitted: None,
                cancel: Some(run_cancel),
            };
            let response = run.request(&gateway.pipeline(), req).await;
            // After the client cancels a request, nothing more is sent for it (stdio
            // transport rules); a listen stream it cancels just ends.
            if let Some((_, token)) = inflight.remove(&id)
                && token.is_cancelled()
            {
                return;
            }
            let _ = out.send(Message::Response(response)).await;
        });
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
                    let out = self.raw.clone();
                    tokio::spawn(async move {
                        let mut events = Box::pin(log.follow(start));
                        while let Some((_, json)) = events.next().await {
                            if out.send(json.text().into_owned()).await.is_err() {
                                break;
                            }
                        }
                    });
                    self.session = Some(session);
                    Ok(result.into())
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
                        &gateway.pipeline(),
                        &session,
                        req,
                        Some(out.clone()),
                        Caller::local(),
                    )
                    .await;
                    let _ = out.send(Message::Response(response)).await;
                });
            }
            Message::Notification(n) => {
                exchange::notification(&self.gateway.upstreams, &session, n).await
            }
            Message::Response(r) => exchange::response(&self.gateway.relay, &session, r),
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
