//! Streamable HTTP for 2026-07-28 clients: one POST per message, no session, no GET stream.
//!
//! A POST is stateless when its `MCP-Protocol-Version` header names a revision that is not a
//! handshake-era one, or, without that header, when its body carries the stateless envelope
//! and no session id (it then fails the header check, with a message that says so). The
//! request is checked in the order the reference SDK uses: envelope keys (-32602), headers
//! against the body (-32020), the revision (-32022), the method (404 + -32601). Then it runs
//! through the same pipeline as every other request.
//!
//! The answer is plain JSON when the result comes first, and an SSE stream as soon as a
//! message for the request (progress, a log line, a listen notification) comes before it,
//! or after [`COMMIT_AFTER`] without either, so keep-alives flow on long calls. Closing the
//! stream cancels the request, upstream included: there is no resumption in this era.

use std::sync::Arc;
use std::time::Duration;

use axum::http::header::AsHeaderName;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::answer::{JustPolled, sse_event, sse_response};
use super::exchange;
use super::web::{AppState, SESSION_HEADER, VERSION_HEADER, json_text, refusal_status};
use crate::gateway::Gateway;
use crate::pipeline::Caller;
use crate::protocol::envelope::{self, Envelope};
use crate::protocol::jsonrpc::ParseError;
use crate::protocol::{
    Era, ErrorObject, Message, Request, Response as RpcResponse, codes, headers as mcp_headers,
    methods,
};
use crate::upstream::Upstreams;

/// How long a stateless answer may stay silent before it becomes an SSE stream (which then
/// carries keep-alive comments until the result).
pub const COMMIT_AFTER: Duration = Duration::from_secs(10);
/// Messages queued on one request's stream before further ones are dropped.
const STREAM_QUEUE: usize = 64;

const METHOD_HEADER: HeaderName = HeaderName::from_static(mcp_headers::METHOD);
const NAME_HEADER: HeaderName = HeaderName::from_static(mcp_headers::NAME);

/// Whether a POST's `MCP-Protocol-Version` header puts it in the stateless era, before its
/// body is read: it is then parsed with [`Message::parse_stateless`].
pub fn header_says_stateless(headers: &HeaderMap) -> bool {
    headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !Era::Handshake.speaks(v))
}

/// Whether a POST belongs to the stateless era (see the module docs).
pub fn is_stateless_post(headers: &HeaderMap, parsed: &Result<Message, ParseError>) -> bool {
    match headers.get(VERSION_HEADER).and_then(|v| v.to_str().ok()) {
        Some(v) => !Era::Handshake.speaks(v),
        None => {
            !headers.contains_key(SESSION_HEADER)
                && matches!(parsed, Ok(Message::Request(r))
                    if r.method != methods::INITIALIZE
                        && envelope::declares_version(r.params_except_arguments()))
        }
    }
}

/// Answers one stateless POST; `taken`: the client's envelope keys, when the parse took them
/// ([`Message::parse_stateless`]).
pub(crate) async fn post(
    state: &AppState,
    headers: &HeaderMap,
    parsed: Result<Message, ParseError>,
    taken: Option<envelope::Taken>,
    caller: Caller,
) -> Response {
    let mut req = match parsed {
        Ok(Message::Request(req)) => req,
        Ok(Message::Notification(_)) => {
            // None is defined for clients over HTTP in this revision (cancellation is
            // closing the stream); accepted and dropped, as the reference SDK does.
            return StatusCode::ACCEPTED.into_response();
        }
        Ok(Message::Response(_)) => {
            let e = ErrorObject::invalid_request(
                "2026-07-28 clients send no responses: the server sends no requests",
            );
            return error_response(None, e);
        }
        Err(ParseError::Invalid(e)) => return error_response(None, e),
        Err(ParseError::Batch(_)) => {
            let e = ErrorObject::invalid_request("2026-07-28 allows one JSON-RPC message per POST");
            return error_response(None, e);
        }
    };
    let envelope = match check(&state.gateway.upstreams, headers, &mut req, taken) {
        Ok(envelope) => envelope,
        Err(e) => return error_response(Some(req.id), e),
    };
    answer(state.gateway.clone(), req, envelope, caller).await
}

/// Validates a stateless request: envelope, headers against the body, revision, method.
/// `taken`: the envelope's keys, when the parse already took them out of `_meta`.
pub fn check(
    upstreams: &Upstreams,
    headers: &HeaderMap,
    req: &mut Request,
    taken: Option<envelope::Taken>,
) -> Result<Envelope, ErrorObject> {
    // The envelope's keys leave `_meta` here (or left it in the parse): the gateway sends its
    // own upstream.
    let envelope = match taken {
        Some(taken) => Envelope::from_taken(taken)?,
        None => Envelope::take(req.params_except_arguments_mut())?,
    };
    check_headers(upstreams, headers, req, &envelope)?;
    envelope.check_version()?;
    methods::check_stateless_client_request(&req.method)?;
    Ok(envelope)
}

/// SEP-2243: `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*` must be
/// present where required, appear once, and equal the body.
fn check_headers(
    upstreams: &Upstreams,
    headers: &HeaderMap,
    req: &Request,
    envelope: &Envelope,
) -> Result<(), ErrorObject> {
    let version = single(headers, &VERSION_HEADER)?
        .ok_or_else(|| ErrorObject::header_mismatch("missing MCP-Protocol-Version header"))?;
    if version != envelope.version {
        return Err(ErrorObject::header_mismatch(format!(
            "MCP-Protocol-Version {version:?} differs from _meta protocolVersion {:?}",
            envelope.version
        )));
    }
    let method = single(headers, &METHOD_HEADER)?
        .ok_or_else(|| ErrorObject::header_mismatch("missing Mcp-Method header"))?;
    if method != req.method {
        return Err(ErrorObject::header_mismatch(format!(
            "Mcp-Method {method:?} differs from method {:?}",
            req.method
        )));
    }
    let name = single(headers, &NAME_HEADER)?;
    if mcp_headers::needs_name(&req.method) {
        let Some(body) = mcp_headers::name_of(&req.method, req.params_except_arguments()) else {
            // The body itself is incomplete: the handler reports the missing field.
            return Ok(());
        };
        let header = name.ok_or_else(|| ErrorObject::header_mismatch("missing Mcp-Name header"))?;
        let decoded = mcp_headers::decode(header).map_err(ErrorObject::header_mismatch)?;
        if decoded != body {
            return Err(ErrorObject::header_mismatch(format!(
                "Mcp-Name {decoded:?} differs from {body:?} in the body"
            )));
        }
    }
    if req.method == methods::TOOLS_CALL {
        check_param_headers(upstreams, headers, req)?;
    }
    Ok(())
}

/// `Mcp-Param-*` against the arguments, for the tool's `x-mcp-header` annotations as the
/// gateway lists them (the upstream's schema, untouched).
fn check_param_headers(
    upstreams: &Upstreams,
    headers: &HeaderMap,
    req: &Request,
) -> Result<(), ErrorObject> {
    let Some(schema) = req
        .param("name")
        .and_then(Value::as_str)
        .and_then(|name| upstreams.tool_schema(Era::Stateless, name))
    else {
        return Ok(());
    };
    let arguments = req.param("arguments");
    for annotation in mcp_headers::param_headers(&schema) {
        let header_name = format!("{}{}", mcp_headers::PARAM_PREFIX, annotation.name);
        let header = single(headers, header_name.as_str())?;
        let expected = mcp_headers::param_value(arguments, &annotation.path);
        match (header, expected) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(ErrorObject::header_mismatch(format!(
                    "Mcp-Param-{} sent but argument {} is absent",
                    annotation.name,
                    annotation.path.join(".")
                )));
            }
            (None, Some(_)) => {
                return Err(ErrorObject::header_mismatch(format!(
                    "missing Mcp-Param-{} header for argument {}",
                    annotation.name,
                    annotation.path.join(".")
                )));
            }
            (Some(header), Some(expected)) => {
                let decoded = mcp_headers::decode(header).map_err(ErrorObject::header_mismatch)?;
                if !mcp_headers::param_matches(&decoded, &expected) {
                    return Err(ErrorObject::header_mismatch(format!(
                        "Mcp-Param-{} {decoded:?} differs from argument {expected:?}",
                        annotation.name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A header that may appear at most once; a value that is not text is a mismatch.
fn single<K>(headers: &HeaderMap, name: K) -> Result<Option<&str>, ErrorObject>
where
    K: AsHeaderName + std::fmt::Display + Copy,
{
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ErrorObject::header_mismatch(format!(
            "{name} sent more than once"
        )));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| ErrorObject::header_mismatch(format!("{name} is not visible ASCII")))
}

/// Runs the request and answers it as JSON or as an SSE stream (see the module docs).
async fn answer(
    gateway: Arc<Gateway>,
    req: Request,
    envelope: Envelope,
    caller: Caller,
) -> Response {
    let (tx, mut rx) = mpsc::channel(STREAM_QUEUE);
    let (admit_tx, admit_rx) = oneshot::channel();
    let id = req.id.clone();
    // Dropping the request cancels it, upstream included: no token needed.
    let run = exchange::Stateless {
        envelope,
        sink: Some(tx),
        caller,
        admitted: Some(admit_tx),
        cancel: None,
    };
    let worker = gateway.clone();
    let mut work = Box::pin(async move { run.answer(&worker.pipeline(), req).await });
    // A refusal by an admission stage keeps its own status (429, 403).
    let early = tokio::select! {
        biased;
        response = &mut work => Some(response),
        _ = admit_rx => None,
    };
    if let Some(answered) = early {
        return json_answer(answered);
    }
    let first = tokio::select! {
        biased;
        answered = JustPolled::new(&mut work) => return json_answer(answered),
        Some(first) = rx.recv() => Some(first),
        _ = tokio::time::sleep(COMMIT_AFTER) => None,
    };
    tracing::trace!(id = %id, "Stateless answer streams");
    // The stream drives the request: dropping it (the client closed the connection) drops
    // the request, which cancels it upstream.
    let (out_tx, out_rx) = mpsc::channel::<Message>(STREAM_QUEUE);
    let driver = tokio::spawn(async move {
        if let Some(first) = first
            && out_tx.send(first).await.is_err()
        {
            return;
        }
        let response = loop {
            tokio::select! {
                biased;
                Some(msg) = rx.recv() => {
                    if out_tx.send(msg).await.is_err() {
                        return;
                    }
                }
                answered = &mut work => break answered.into_response(),
            }
        };
        while let Ok(msg) = rx.try_recv() {
            let _ = out_tx.send(msg).await;
        }
        let _ = out_tx.send(Message::Response(response)).await;
    });
    let guard = AbortOnDrop(driver);
    let shutdown = gateway.shutdown.clone().cancelled_owned();
    let events = tokio_stream_of(out_rx).map(move |msg| {
        let _hold = &guard;
        sse_event(&msg)
    });
    sse_response(events.take_until(shutdown))
}

/// Aborts the request's task when the response stream goes away: the request is dropped
/// with it, which cancels it upstream.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn tokio_stream_of(rx: mpsc::Receiver<Message>) -> impl futures::Stream<Item = Message> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
}

/// A JSON answer with the status the error code calls for in this era.
fn json_answer(answered: exchange::Answered) -> Response {
    let outcome = &answered.response.outcome;
    let retry_after = outcome
        .as_ref()
        .err()
        .and_then(|e| e.data.as_ref()?.get("retryAfterSeconds")?.as_u64());
    let status = match outcome {
        Ok(_) => StatusCode::OK,
        Err(e) => status_for(e),
    };
    let mut resp = json_text(status, answered.into_json());
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
    }
    resp
}

fn error_response(id: Option<crate::protocol::Id>, e: ErrorObject) -> Response {
    json_answer(RpcResponse::err(id, e).into())
}

/// The HTTP status of a stateless error: 400 for malformed requests, envelopes and headers,
/// 404 for unknown methods, the pipeline's refusals their own; 200 otherwise (the body
/// carries the error).
pub fn status_for(e: &ErrorObject) -> StatusCode {
    match e.code {
        codes::PARSE_ERROR
        | codes::INVALID_REQUEST
        | codes::INVALID_PARAMS
        | codes::HEADER_MISMATCH
        | codes::MISSING_CLIENT_CAPABILITY
        | codes::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        codes::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => refusal_status(e).unwrap_or(StatusCode::OK),
    }
}
