//! HTTP plumbing shared by the HTTP faces: the state every handler gets, who is calling (the
//! credentials checked at the edge), media types, and JSON-RPC bodies with their statuses.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dashmap::DashMap;
use serde_json::Value;

use super::guard::Guard;
use crate::gateway::Gateway;
use crate::pipeline::auth::Rejection;
use crate::pipeline::{Caller, TraceHeaders};
use crate::protocol::jsonrpc::is_envelope_error;
use crate::protocol::{ErrorObject, Message, Response as RpcResponse, codes};
use crate::session::Principal;
use crate::session::events::EventLog;

// Header names as `HeaderName`s: a lookup by one skips parsing (and checking) the name.
pub const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
pub const VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// What every HTTP handler is given.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) guard: Arc<Guard>,
    /// HTTP+SSE streams opened but not initialized yet.
    pub(crate) opening: Opening,
}

/// HTTP+SSE streams opened but not yet initialized, by the session id they will carry, with
/// the principal that opened each: only that principal may initialize on it.
pub(crate) type Opening = Arc<DashMap<String, (Arc<EventLog>, Arc<Principal>)>>;

/// The connection a request came on, put in the request's extensions by the server: the
/// peer's address, and what to do once a request on it has proved credentials (the server
/// stops counting the connection against its source's limit of unauthenticated ones).
#[derive(Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    vouched: Arc<dyn Fn() + Send + Sync>,
}

impl Peer {
    pub fn new(addr: SocketAddr, on_vouched: impl Fn() + Send + Sync + 'static) -> Self {
        Peer {
            addr,
            vouched: Arc::new(on_vouched),
        }
    }
}

/// Who is calling: the principal the request's credentials prove (anonymous when `auth`
/// configures none), where from, and the W3C trace context it carries. A refusal is the
/// finished 401/403.
pub(crate) async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<&Peer>,
    transport: &'static str,
) -> Result<Caller, Box<Response>> {
    let principal = match &state.gateway.auth() {
        None => Principal::anonymous_shared(),
        Some(auth) => match auth.authenticate(headers).await {
            Ok(p) => {
                if let Some(peer) = peer {
                    (peer.vouched)();
                }
                Arc::new(p)
            }
            Err(rejection) => return Err(Box::new(refusal(rejection))),
        },
    };
    let trace_headers = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .map(|traceparent| TraceHeaders {
            traceparent: traceparent.to_owned(),
            tracestate: headers
                .get(TRACESTATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
    Ok(Caller {
        principal,
        trace_headers,
        transport,
        source: peer.map(|p| p.addr.ip()),
    })
}

/// A 401 or 403 with its `WWW-Authenticate` challenge and a JSON-RPC error body.
pub(crate) fn refusal(rejection: Rejection) -> Response {
    tracing::debug!(status = %rejection.status, reason = %rejection.message, "Refused at authentication");
    let mut resp = rpc_error(
        rejection.status,
        ErrorObject::new(codes::UNAUTHORIZED, rejection.message),
    );
    if let Ok(v) = HeaderValue::from_str(&rejection.challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Reads a request body whole: at most `max_body_bytes`, within `connections.body_timeout`
/// of the call. Past either, the finished 413 or 408 (with `Connection: close`: the rest of a
/// stalled body is not waited for).
pub(crate) async fn read_body(state: &AppState, body: Body) -> Result<Bytes, Box<Response>> {
    let config = state.gateway.config();
    let limit = config.max_body_bytes;
    let timeout = config.connections.body_timeout;
    let too_large = || {
        let mut resp = rpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorObject::invalid_request(format!("request body larger than {limit} bytes")),
        );
        // The rest of the body is not read: the connection cannot carry another request.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        Box::new(resp)
    };
    // A declared `Content-Length` over the limit is refused before any of it is waited for.
    if usize::try_from(http_body::Body::size_hint(&body).lower()).unwrap_or(usize::MAX) > limit {
        return Err(too_large());
    }
    let mut reading = std::pin::pin!(collect(body, limit));
    // Most bodies came with their head: read at once, without arming the timer.
    let read = match futures::poll!(reading.as_mut()) {
        std::task::Poll::Ready(read) => Ok(read),
        std::task::Poll::Pending => tokio::time::timeout(timeout, reading).await,
    };
    match read {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(too_large()),
        Err(_) => {
            state.gateway.metrics.connection_closed("body_timeout");
            tracing::debug!(timeout = ?timeout, "Request body not received in time");
            let msg = format!(
                "request body not received within {} s (connections.body_timeout)",
                timeout.as_secs_f64()
            );
            let mut resp = rpc_error(
                StatusCode::REQUEST_TIMEOUT,
                ErrorObject::invalid_request(msg),
            );
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(Box::new(resp))
        }
    }
}

/// The body's bytes, if it ends within `limit` bytes (and without an error). One piece (the
/// usual body, which came with its head) is kept as it is; several are joined, into room
/// made once for the length the request declared (up to `limit`).
async fn collect(mut body: Body, limit: usize) -> Option<Bytes> {
    use http_body::Body as _;
    use http_body_util::BodyExt;
    let declared = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    let mut whole = Bytes::new();
    let mut joined: Option<Vec<u8>> = None;
    while let Some(frame) = body.frame().await {
        // Trailers carry nothing the gateway reads.
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        let have = joined.as_ref().map_or(whole.len(), Vec::len);
        if data.len() > limit - have {
            return None;
        }
        match &mut joined {
            Some(joined) => joined.extend_from_slice(&data),
            None if whole.is_empty() => whole = data,
            None => {
                let room = declared.min(limit).max(whole.len() + data.len());
                let mut both = Vec::with_capacity(room);
                both.extend_from_slice(&whole);
                both.extend_from_slice(&data);
                joined = Some(both);
            }
        }
    }
    Some(joined.map_or(whole, Bytes::from))
}

pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The `charset` a `Content-Type` names when it is not UTF-8 (JSON is UTF-8, RFC 8259): the
/// body would be read as something it is not.
pub(crate) fn foreign_charset(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    value.split(';').skip(1).find_map(|param| {
        let (name, charset) = param.split_once('=')?;
        let charset = charset.trim().trim_matches('"');
        (name.trim().eq_ignore_ascii_case("charset")
            && !charset.eq_ignore_ascii_case("utf-8")
            && !charset.eq_ignore_ascii_case("utf8"))
        .then(|| charset.to_owned())
    })
}

/// Whether `Accept` admits `mime`, wildcards included. No `Accept` header means anything.
pub(crate) fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    accepts_each(headers, [mime])
}

/// Whether `Accept` admits every one of `mimes`: [`accepts`] for each, with the header
/// looked up and split once.
pub(crate) fn accepts_each<const N: usize>(headers: &HeaderMap, mimes: [&str; N]) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let mut admitted = [false; N];
    // Split as bytes: the separators are ASCII, and a `char` search per piece cost more
    // than the comparison.
    for part in accept.as_bytes().split(|&b| b == b',') {
        let range = part
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        for (mime, admitted) in mimes.iter().zip(&mut admitted) {
            *admitted = *admitted || admits(range, mime.as_bytes());
        }
        if admitted.iter().all(|a| *a) {
            return true;
        }
    }
    false
}

/// Whether one media range of `Accept` admits `mime`.
fn admits(range: &[u8], mime: &[u8]) -> bool {
    let kind = mime.split(|&b| b == b'/').next().unwrap_or(mime);
    range.eq_ignore_ascii_case(mime)
        || range == b"*/*"
        || range
            .strip_suffix(b"/*")
            .is_some_and(|k| k.eq_ignore_ascii_case(kind))
}

/// A JSON answer to a request; a refusal by the pipeline (rate limit, authorization) gets its
/// own HTTP status and headers (429 with `Retry-After`, 403 with its challenge) instead of 200.
pub(crate) fn refused_or(response: RpcResponse) -> Response {
    let status = match &response.outcome {
        Err(e) => refusal_status(e),
        Ok(_) => None,
    };
    let retry_after = match &response.outcome {
        Err(e) => e
            .data
            .as_ref()
            .and_then(|d| d.get("retryAfterSeconds"))
            .and_then(Value::as_u64),
        Ok(_) => None,
    };
    let mut resp = rpc_json(
        status.unwrap_or(StatusCode::OK),
        &Message::Response(response),
    );
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// [`refused_or`] for an answer whose listing page may be apart (see [`Answered`]).
pub(crate) fn answered_or_refused(answered: super::exchange::Answered) -> Response {
    if answered.response.outcome.is_err() {
        return refused_or(answered.response);
    }
    json_text(StatusCode::OK, answered.into_json())
}

/// The HTTP status for a pipeline refusal, `None` for any other error (sent with 200).
pub(crate) fn refusal_status(e: &ErrorObject) -> Option<StatusCode> {
    match e.code {
        codes::RATE_LIMITED => Some(StatusCode::TOO_MANY_REQUESTS),
        codes::UNAUTHORIZED => Some(StatusCode::FORBIDDEN),
        _ => None,
    }
}

pub(crate) fn rpc_json(status: StatusCode, msg: &Message) -> Response {
    json_text(status, msg.to_json())
}

/// A JSON body already written.
pub(crate) fn json_text(status: StatusCode, json: String) -> Response {
    let mut resp = (status, json).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// An error about the HTTP exchange itself, as an id-less JSON-RPC error body.
pub(crate) fn rpc_error(status: StatusCode, error: ErrorObject) -> Response {
    debug_assert!(status != StatusCode::OK || !is_envelope_error(error.code));
    rpc_json(status, &Message::Response(RpcResponse::err(None, error)))
}

pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response {
    let body = Message::Response(RpcResponse::err(None, ErrorObject::invalid_request(text)));
    rpc_json(status, &body)
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::{accepts, accepts_each, collect};

    fn with_accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn accept_ranges_match_by_type_wildcard_and_case_with_parameters_ignored() {
        let json = "application/json";
        let sse = "text/event-stream";
        assert!(accepts(&HeaderMap::new(), json), "no Accept: anything");
        assert!(accepts(
            &with_accept("application/json, text/event-stream"),
            sse
        ));
        assert!(accepts(&with_accept(" Application/JSON ;q=0.9"), json));
        assert!(accepts(&with_accept("text/html,*/*;q=0.1"), json));
        assert!(accepts(&with_accept("text/*"), sse));
        assert!(accepts(&with_accept("TEXT/*"), sse));
        assert!(!accepts(&with_accept("text/*"), json));
        assert!(!accepts(&with_accept("application/json"), sse));
        assert!(!accepts(
            &with_accept("application/jsonx, text/event"),
            json
        ));
        assert!(!accepts(&with_accept("application/*x"), json));
        assert!(!accepts(&with_accept(""), json));
        let both = [json, sse];
        assert!(accepts_each(&HeaderMap::new(), both));
        assert!(accepts_each(
            &with_accept("text/event-stream ,application/json"),
            both
        ));
        assert!(accepts_each(&with_accept("*/*"), both));
        assert!(accepts_each(
            &with_accept("application/*, text/*;q=0.5"),
            both
        ));
        assert!(!accepts_each(&with_accept("application/json"), both));
        assert!(!accepts_each(
            &with_accept("text/*, application/jsonx"),
            both
        ));
    }

    fn body(pieces: &[&'static str]) -> axum::body::Body {
        let frames = pieces
            .iter()
            .map(|p| Ok::<_, std::io::Error>(bytes::Bytes::from_static(p.as_bytes())));
        axum::body::Body::from_stream(futures::stream::iter(frames.collect::<Vec<_>>()))
    }

    #[tokio::test]
    async fn a_body_is_read_whole_within_its_limit() {
        let one = "{\"jsonrpc\":\"2.0\"}";
        let read = collect(body(&[one]), one.len()).await.unwrap();
        assert_eq!(read, one);
        assert_eq!(read.as_ptr(), one.as_ptr(), "one piece is kept, not copied");
        let read = collect(body(&["", "ab", "", "cd", "e"]), 5).await.unwrap();
        assert_eq!(read, "abcde");
        assert_eq!(collect(body(&[]), 0).await.unwrap(), "");
        assert!(collect(body(&["ab", "cd", "ef"]), 5).await.is_none());
        assert!(collect(body(&["abcdef"]), 5).await.is_none());
        let broken = futures::stream::iter(vec![
            Ok(bytes::Bytes::from_static(b"ab")),
            Err(std::io::Error::other("reset")),
        ]);
        assert!(
            collect(axum::body::Body::from_stream(broken), 5)
                .await
                .is_none()
        );
    }
}
