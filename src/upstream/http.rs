//! Streamable HTTP upstreams (2025-03-26 and later): one POST per message, JSON or SSE
//! answers, `Mcp-Session-Id`, `MCP-Protocol-Version`, the GET stream for server-initiated
//! messages, and DELETE when the gateway lets go of the session.
//!
//! A 404 on a request that carried a session id means the upstream forgot the session: the
//! connection is reported closed, and the supervisor initializes a fresh one.
//!
//! A 2026-07-28 upstream has none of that: no session, no GET stream, no DELETE. Each request
//! POST carries its own headers (the revision, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`,
//! identity headers), staged by the peer under the request's id, and a request the gateway
//! abandons is cancelled by closing its POST's stream.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use reqwest::{Client, StatusCode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::h1;
use super::peer::Inbound;
use super::sse_read::{self, SseMessages};
use super::{Connection, INBOUND_QUEUE, OUTBOUND_QUEUE};
use crate::protocol::headers::{self as mcp, Header};
use crate::protocol::{Era, ErrorObject, Id, Message, Request, Response};

pub const SESSION_HEADER: &str = "mcp-session-id";
pub const VERSION_HEADER: &str = "mcp-protocol-version";
const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// Longest wait before reopening a dropped GET stream.
const GET_RETRY_MAX: Duration = Duration::from_secs(30);

/// State shared by the POST tasks, the GET stream and the closer of one upstream session.
pub struct HttpLink {
    upstream: Arc<str>,
    url: reqwest::Url,
    client: Client,
    /// POSTs to a plain `http://` URL, unless a proxy is configured (see [`h1`]).
    lean: Option<h1::Client>,
    headers: HeaderMap,
    session_id: RwLock<Option<String>>,
    protocol_version: RwLock<Option<String>>,
    inbound: mpsc::Sender<Inbound>,
    stop: CancellationToken,
    /// Speaking 2026-07-28: no session, per-request headers, cancel by closing the stream.
    stateless: AtomicBool,
    /// Stateless requests not finished yet, by gateway request id.
    staged: Mutex<HashMap<i64, Staged>>,
    /// Notifications and responses queued or being posted. They go out in order, and a
    /// request may skip the queue (see [`HttpLink::exchange`]) only while none waits.
    ordered: AtomicUsize,
}

/// One stateless request's own headers, in order, each name once: a list, not a map, since
/// the POST's headers are built from them once (see [`HttpLink::post_headers`]).
type Own = Vec<(HeaderName, HeaderValue)>;

/// One stateless request's headers (until its POST takes them) and the token that aborts it.
struct Staged {
    headers: Option<Own>,
    abort: CancellationToken,
}

pub fn connect(
    upstream: &str,
    url: &url::Url,
    headers: &BTreeMap<String, String>,
    client: Client,
) -> Result<Connection, String> {
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let link = Arc::new(HttpLink {
        upstream: upstream.into(),
        url: url.clone(),
        client,
        lean: h1::Client::for_url(url),
        headers: header_map(headers)?,
        session_id: RwLock::new(None),
        protocol_version: RwLock::new(None),
        inbound: in_tx,
        stop: CancellationToken::new(),
        stateless: AtomicBool::new(false),
        staged: Mutex::default(),
        ordered: AtomicUsize::new(0),
    });
    tokio::spawn(post_loop(link.clone(), out_rx));
    Ok(Connection {
        outbound: out_tx,
        inbound: in_rx,
        closer: super::Closer::Http(link.clone()),
        http: Some(link),
    })
}

/// Turns configured headers into a header map, rejecting names or values HTTP cannot carry.
pub fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("invalid header name '{k}'"))?;
        let mut value =
            HeaderValue::from_str(v).map_err(|_| format!("invalid value for header '{k}'"))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

impl HttpLink {
    /// Called once the handshake completed: later requests carry the negotiated version, and
    /// the standalone GET stream opens for server-initiated messages.
    pub fn initialized(self: &Arc<Self>, version: &str) {
        if let Ok(mut v) = self.protocol_version.write() {
            *v = Some(version.to_owned());
        }
        tokio::spawn(get_stream(self.clone()));
    }

    /// Switches between the eras (see the module docs).
    pub fn set_era(&self, era: Era) {
        self.stateless
            .store(era == Era::Stateless, Ordering::Relaxed);
    }

    fn era(&self) -> Era {
        if self.stateless.load(Ordering::Relaxed) {
            Era::Stateless
        } else {
            Era::Handshake
        }
    }

    /// Stages the headers of stateless request `id`, before the request is queued. Headers the
    /// upstream's configuration sets keep their configured value, and a value HTTP cannot
    /// carry is left out (and logged).
    pub fn stage(&self, id: i64, headers: Vec<Header>) {
        let staged = Staged {
            headers: Some(self.request_headers(headers)),
            abort: CancellationToken::new(),
        };
        self.lock_staged().insert(id, staged);
    }

    /// One request's own headers as HTTP can carry them, configured ones winning.
    fn request_headers(&self, headers: Vec<Header>) -> Own {
        let mut own = Own::with_capacity(headers.len());
        for (name, value) in headers {
            // The names every request carries need no parsing; a value keeps its buffer (a
            // fixed one has none).
            let header = match name.as_ref() {
                "Mcp-Method" => Ok(HeaderName::from_static(mcp::METHOD)),
                "Mcp-Name" => Ok(HeaderName::from_static(mcp::NAME)),
                VERSION_HEADER => Ok(HeaderName::from_static(VERSION_HEADER)),
                _ => HeaderName::from_bytes(name.as_bytes()),
            };
            // Checked either way (a bad value is left out below, never a panic), copied
            // neither way.
            let value = HeaderValue::from_maybe_shared(match value {
                Cow::Borrowed(fixed) => Bytes::from_static(fixed.as_bytes()),
                Cow::Owned(own) => Bytes::from(own),
            });
            let (Ok(header), Ok(value)) = (header, value) else {
                tracing::debug!(upstream = %self.upstream, header = %name, "Left out a header HTTP cannot carry");
                continue;
            };
            if self.headers.contains_key(&header) {
                continue;
            }
            // Named twice, the last value counts.
            match own.iter_mut().find(|(name, _)| *name == header) {
                Some((_, earlier)) => *earlier = value,
                None => own.push((header, value)),
            }
        }
        own
    }

    /// Whether a request may be posted from its caller's task now: the link is open and no
    /// notification or response is waiting to go out before it.
    pub fn exchange_ready(&self) -> bool {
        self.ordered.load(Ordering::Acquire) == 0 && !self.stop.is_cancelled()
    }

    /// Counts a notification or response into the ordered queue; [`post_loop`] counts it out
    /// once posted. Call before queueing it.
    pub fn enter_ordered(&self) {
        self.ordered.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts out a message [`HttpLink::enter_ordered`] counted in that was never queued.
    pub fn leave_ordered(&self) {
        self.ordered.fetch_sub(1, Ordering::AcqRel);
    }

    /// Posts request `msg` on the caller's task, with its own `headers` (stateless) and
    /// returns the upstream's response to it when that response was the first message of
    /// the answer: nothing then hops through the transport's tasks. Anything else the answer
    /// carries (and the response, once something came before it, so that progress and logs
    /// keep their place ahead of it) goes through the inbound queue as from a queued POST;
    /// the caller then waits for its response there. Dropping the future drops the POST,
    /// which closes a stateless request's stream.
    pub async fn exchange(
        self: &Arc<Self>,
        msg: Message,
        headers: Vec<Header>,
    ) -> Option<Response> {
        let headers = if headers.is_empty() {
            Own::new()
        } else {
            self.request_headers(headers)
        };
        tokio::select! {
            answer = send_post(self, msg, headers, true) => answer,
            _ = crate::sync::cancelled(&self.stop) => None,
        }
    }

    /// The gateway stopped waiting for stateless request `id`: close its POST's stream (or never
    /// send it), which is how a 2026-07-28 server learns of a cancellation.
    pub fn abandon(&self, id: i64) {
        if let Some(staged) = self.lock_staged().remove(&id) {
            staged.abort.cancel();
        }
    }

    fn lock_staged(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Staged>> {
        self.staged.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the session: stops the GET stream and sends DELETE (best effort). A stateless
    /// link has no session: its requests still in flight are abandoned.
    pub async fn close(&self) {
        self.stop.cancel();
        for (_, staged) in self.lock_staged().drain() {
            staged.abort.cancel();
        }
        let Some(session) = self.session() else {
            return;
        };
        let req = self
            .client
            .delete(self.url.clone())
            .headers(self.headers.clone())
            .header(SESSION_HEADER, session);
        let req = self.with_version(req);
        match tokio::time::timeout(Duration::from_secs(2), req.send()).await {
            Ok(Ok(resp)) => {
                tracing::debug!(upstream = %self.upstream, status = %resp.status(), "Deleted upstream session")
            }
            Ok(Err(e)) => {
                tracing::debug!(upstream = %self.upstream, error = %e, "DELETE of upstream session failed")
            }
            Err(_) => {
                tracing::debug!(upstream = %self.upstream, "DELETE of upstream session timed out")
            }
        }
    }

    fn session(&self) -> Option<String> {
        self.session_id.read().ok().and_then(|s| s.clone())
    }

    fn with_version(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.protocol_version.read().ok().and_then(|v| v.clone()) {
            Some(v) => req.header(VERSION_HEADER, v),
            None => req,
        }
    }

    fn request(&self, method: reqwest::Method, accept: &'static str) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .request(method, self.url.clone())
            .headers(self.headers.clone())
            .header(ACCEPT, accept);
        if self.era() == Era::Stateless {
            // Every stateless request names its revision in its own staged headers.
            return req;
        }
        if let Some(s) = self.session() {
            req = req.header(SESSION_HEADER, s);
        }
        self.with_version(req)
    }

    /// The headers of a POST on the lean path: what [`HttpLink::reqwest_post`] sets on a
    /// reqwest request, with the same replace-or-append semantics (a header of the request's
    /// own replaces a fixed one of that name), and the client's `User-Agent` unless a
    /// configured or own header set one.
    fn post_headers(
        &self,
        lines: &mut h1::Lines<'_>,
        extra: &[(HeaderName, HeaderValue)],
        trace: &Trace,
    ) {
        // `extra` has each name once (see `request_headers`), none of them configured.
        let own = |name: &HeaderName| extra.iter().any(|(n, _)| n == name);
        let mut fixed = |name: &HeaderName, value: &HeaderValue| {
            if !own(name) {
                lines.add(name, value);
            }
        };
        for (name, value) in &self.headers {
            fixed(name, value);
        }
        fixed(&ACCEPT, &HeaderValue::from_static(ACCEPT_BOTH));
        if self.era() == Era::Handshake {
            let session = self.session_id.read().ok();
            if let Some(s) = session.as_ref().and_then(|s| s.as_deref())
                && let Ok(value) = HeaderValue::from_str(s)
            {
                fixed(&HeaderName::from_static(SESSION_HEADER), &value);
            }
            drop(session);
            let version = self.protocol_version.read().ok();
            if let Some(v) = version.as_ref().and_then(|v| v.as_deref())
                && let Ok(value) = HeaderValue::from_str(v)
            {
                fixed(&HeaderName::from_static(VERSION_HEADER), &value);
            }
        }
        fixed(&CONTENT_TYPE, &HeaderValue::from_static("application/json"));
        for (name, value) in extra {
            lines.add(name, value);
        }
        if let Some((parent, state)) = trace {
            lines.add(&HeaderName::from_static("traceparent"), parent);
            if let Some(state) = state {
                lines.add(&HeaderName::from_static("tracestate"), state);
            }
        }
        if !self.headers.contains_key(USER_AGENT) && !own(&USER_AGENT) {
            lines.add(
                &USER_AGENT,
                &HeaderValue::from_static(crate::net::USER_AGENT),
            );
        }
    }

    /// A POST through reqwest, as every POST went before the lean path.
    fn reqwest_post(&self, extra: Own, trace: Trace, body: Bytes) -> reqwest::RequestBuilder {
        let mut req = self
            .request(reqwest::Method::POST, ACCEPT_BOTH)
            .header(CONTENT_TYPE, "application/json")
            .headers(extra.into_iter().collect());
        if let Some((parent, state)) = trace {
            req = req.header("traceparent", parent);
            if let Some(state) = state {
                req = req.header("tracestate", state);
            }
        }
        req.body(body)
    }

    fn remember_session(&self, headers: &HeaderMap) {
        if self.era() == Era::Stateless {
            // 2026-07-28 has no sessions; an id a server sends anyway is not echoed.
            return;
        }
        let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
            return;
        };
        if let Ok(mut slot) = self.session_id.write()
            && slot.is_none()
        {
            *slot = Some(id.to_owned());
        }
    }

    async fn push(&self, msg: Message, related: Option<Id>) {
        let _ = self.inbound.send(Inbound::Message(msg, related)).await;
    }

    async fn fail(&self, id: Option<Id>, error: ErrorObject) {
        if let Some(id) = id {
            self.push(Message::Response(Response::err(Some(id), error)), None)
                .await;
        }
    }

    /// [`HttpLink::fail`] for a POST whose caller may be waiting on its own task.
    async fn fail_to(&self, answer: &mut Answer, error: ErrorObject) -> Option<Response> {
        if answer.inline
            && let Some(id) = &answer.id
        {
            return Some(Response::err(Some(id.clone()), error));
        }
        self.fail(answer.id.clone(), error).await;
        None
    }

    async fn close_connection(&self, reason: String) {
        if !self.stop.is_cancelled() {
            self.stop.cancel();
            let _ = self.inbound.send(Inbound::Closed(reason)).await;
        }
    }
}

async fn post_loop(link: Arc<HttpLink>, mut outbound: mpsc::Receiver<Message>) {
    loop {
        let msg = tokio::select! {
            msg = outbound.recv() => msg,
            _ = link.stop.cancelled() => None,
        };
        let Some(msg) = msg else { break };
        match msg {
            // Each request is its own POST and its answer may stream for a long time, so
            // requests run concurrently; their number is bounded by the callers' own limits.
            Message::Request(_) => {
                tokio::spawn(post(link.clone(), msg));
            }
            // Notifications and responses are sent in order, each before anything queued
            // after it: `notifications/initialized` must reach the server before the first
            // request (servers such as server-everything set up tools only once it has).
            _ => {
                post(link.clone(), msg).await;
                link.leave_ordered();
            }
        }
    }
}

/// Sends one message. A stateless request runs until it is answered or abandoned; abandoning
/// it drops the response, which closes its stream.
async fn post(link: Arc<HttpLink>, msg: Message) {
    let staged = match &msg {
        Message::Request(Request {
            id: Id::Num(id), ..
        }) if link.era() == Era::Stateless => {
            let mut all = link.lock_staged();
            match all.get_mut(id) {
                Some(s) => Some((*id, s.headers.take().unwrap_or_default(), s.abort.clone())),
                // Abandoned before it was sent: the upstream never needs to see it.
                None => return,
            }
        }
        _ => None,
    };
    let Some((id, headers, abort)) = staged else {
        send_post(&link, msg, Own::new(), false).await;
        return;
    };
    tokio::select! {
        _ = send_post(&link, msg, headers, false) => {}
        _ = abort.cancelled() => {
            tracing::debug!(upstream = %link.upstream, id, "Closed the stream of an abandoned request");
        }
    }
    link.lock_staged().remove(&id);
}

/// Where the messages of one POST's answer go: all into the inbound queue, or (`inline`)
/// the response to the request itself back to the caller, while nothing came before it.
struct Answer {
    id: Option<Id>,
    inline: bool,
    queued: bool,
}

impl Answer {
    /// Hands `msg` on; the response to be returned to the caller, if it is that.
    async fn take(&mut self, link: &HttpLink, msg: Message) -> Option<Response> {
        match msg {
            Message::Response(r) if self.inline && !self.queued && r.id == self.id => Some(r),
            msg => {
                self.queued = true;
                // Boxed: the queue's send future would otherwise size the future of every
                // POST, most of which hand their one answer straight back.
                Box::pin(link.push(msg, self.id.clone())).await;
                None
            }
        }
    }
}

/// Posts one message and reads its answer; with `inline`, returns the response to a request
/// when it can go straight back to the caller (see [`HttpLink::exchange`]).
async fn send_post(
    link: &Arc<HttpLink>,
    msg: Message,
    extra: Own,
    inline: bool,
) -> Option<Response> {
    let id = match &msg {
        Message::Request(r) => Some(r.id.clone()),
        _ => None,
    };
    let mut answer = Answer {
        id,
        inline,
        queued: false,
    };
    let had_session = link.session().is_some();
    let trace = trace_headers(&msg);
    let body = Bytes::from(msg.to_json());
    drop(msg);
    let sent = match &link.lean {
        Some(lean) => match lean
            .post(|lines| link.post_headers(lines, &extra, &trace), &body)
            .await
        {
            Ok(resp) if !resp.status().is_redirection() => Ok(Sent::Lean(resp)),
            // reqwest follows redirects (and knows which keep the method and body): the
            // request goes again through it, so the answer is the one it always got.
            Ok(_) => link
                .reqwest_post(extra, trace, body)
                .send()
                .await
                .map(Sent::Reqwest)
                .map_err(Failed::Reqwest),
            Err(e) => Err(Failed::Lean(e)),
        },
        None => link
            .reqwest_post(extra, trace, body)
            .send()
            .await
            .map(Sent::Reqwest)
            .map_err(Failed::Reqwest),
    };
    match sent {
        Ok(Sent::Lean(resp)) => {
            let (head, body) = resp.into_parts();
            on_answer(link, had_session, head.status, &head.headers, body, answer).await
        }
        Ok(Sent::Reqwest(mut resp)) => {
            let headers = std::mem::take(resp.headers_mut());
            let status = resp.status();
            on_answer(
                link,
                had_session,
                status,
                &headers,
                resp.bytes_stream(),
                answer,
            )
            .await
        }
        Err(failed) => {
            let (chain, connect) = match &failed {
                Failed::Lean(e) => (e.to_string(), e.is_connect()),
                Failed::Reqwest(e) => (error_chain(e), e.is_connect()),
            };
            let why = format!("HTTP request failed: {chain}");
            let error = ErrorObject::upstream_unavailable(&link.upstream, &why);
            let answered = Box::pin(link.fail_to(&mut answer, error)).await;
            if connect {
                Box::pin(link.close_connection(why)).await;
            }
            answered
        }
    }
}

/// `traceparent` and `tracestate` values for a POST.
type Trace = Option<(HeaderValue, Option<HeaderValue>)>;

/// The trace context the gateway put in a request's `_meta`, as W3C headers, for servers
/// (and HTTP middleware) that only read those. A value HTTP cannot carry (the client's own,
/// forwarded) is left out, not an error.
fn trace_headers(msg: &Message) -> Trace {
    let Message::Request(r) = msg else {
        return None;
    };
    let (parent, state) = crate::telemetry::spans::meta_trace_context(r.params_except_arguments())?;
    let value = |v: &str| HeaderValue::from_str(v).ok();
    Some((value(parent)?, state.and_then(value)))
}

/// A POST's answer, from whichever client sent it.
enum Sent {
    Lean(http::Response<h1::Body>),
    Reqwest(reqwest::Response),
}

/// Why a POST got no answer.
enum Failed {
    Lean(h1::Error),
    Reqwest(reqwest::Error),
}

/// Handles a POST's answer: remembers the session it names, re-initializes after a 404 on a
/// session, and otherwise reads the messages in its body (JSON or SSE).
async fn on_answer<S, E>(
    link: &HttpLink,
    had_session: bool,
    status: StatusCode,
    headers: &HeaderMap,
    body: S,
    mut answer: Answer,
) -> Option<Response>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display + 'static,
{
    link.remember_session(headers);
    if status == StatusCode::NOT_FOUND && had_session {
        let why = String::from("upstream session expired (HTTP 404); re-initializing");
        let error = ErrorObject::upstream_unavailable(&link.upstream, &why);
        let answered = Box::pin(link.fail_to(&mut answer, super::mark_retryable(error))).await;
        Box::pin(link.close_connection(why)).await;
        return answered;
    }
    if status == StatusCode::ACCEPTED {
        return None;
    }
    // The body: one JSON message (or a batch), or an SSE stream of messages.
    let is_sse = is_event_stream(headers);
    if is_sse && status.is_success() {
        let mut events = SseMessages::new(body);
        let mut answered = false;
        while let Some(item) = events.next().await {
            match item {
                Ok((msg, _event_id)) => {
                    answered |= matches!(&msg, Message::Response(r) if r.id == answer.id);
                    if let Some(own) = answer.take(link, msg).await {
                        return Some(own);
                    }
                }
                Err(e) => {
                    tracing::debug!(upstream = %link.upstream, error = %e, "Upstream SSE answer broke off");
                    break;
                }
            }
            if answered {
                break;
            }
        }
        if answered {
            return None;
        }
        let why = "the response stream ended before the response";
        let error = ErrorObject::upstream_unavailable(&link.upstream, why);
        return Box::pin(link.fail_to(&mut answer, error)).await;
    }
    let body = match sse_read::read_limited(body).await {
        Ok(b) => b,
        Err(e) => {
            let error = ErrorObject::upstream_unavailable(&link.upstream, e);
            return Box::pin(link.fail_to(&mut answer, error)).await;
        }
    };
    let mut delivered = false;
    let mut own = None;
    for msg in sse_read::messages_in_body(&body) {
        delivered |= matches!(&msg, Message::Response(r) if r.id == answer.id);
        if let Some(response) = answer.take(link, msg).await {
            own = Some(response);
        }
    }
    if !delivered {
        let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        let why = format!("HTTP {status}: {snippet}");
        let error = ErrorObject::upstream_unavailable(&link.upstream, why);
        return Box::pin(link.fail_to(&mut answer, error)).await;
    }
    own
}

/// Whether the answer's `Content-Type` is `text/event-stream` (in any case).
fn is_event_stream(headers: &HeaderMap) -> bool {
    const SSE: &[u8] = b"text/event-stream";
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.as_bytes().get(..SSE.len()))
        .is_some_and(|t| t.eq_ignore_ascii_case(SSE))
}

/// Keeps the standalone GET stream open while the session lives, reopening it with capped
/// backoff and `Last-Event-ID` so server-initiated notifications are not lost.
async fn get_stream(link: Arc<HttpLink>) {
    let mut backoff = Duration::from_millis(250);
    let mut last_event_id: Option<String> = None;
    while !link.stop.is_cancelled() {
        let mut req = link.request(reqwest::Method::GET, "text/event-stream");
        if let Some(id) = &last_event_id {
            req = req.header("last-event-id", id);
        }
        let sent = tokio::select! {
            r = req.send() => r,
            _ = link.stop.cancelled() => return,
        };
        match sent {
            Ok(resp) if resp.status() == StatusCode::METHOD_NOT_ALLOWED => {
                tracing::debug!(upstream = %link.upstream, "Upstream offers no GET stream");
                return;
            }
            Ok(resp) if resp.status().is_success() => {
                backoff = Duration::from_millis(250);
                let mut events = SseMessages::new(resp.bytes_stream());
                loop {
                    let item = tokio::select! {
                        i = events.next() => i,
                        _ = link.stop.cancelled() => return,
                    };
                    match item {
                        Some(Ok((msg, event_id))) => {
                            if event_id.is_some() {
                                last_event_id = event_id;
                            }
                            link.push(msg, None).await;
                        }
                        _ => break,
                    }
                }
            }
            Ok(resp) => {
                tracing::debug!(upstream = %link.upstream, status = %resp.status(), "Upstream refused the GET stream")
            }
            Err(e) => tracing::debug!(upstream = %link.upstream, error = %e, "GET stream failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = link.stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(GET_RETRY_MAX);
    }
}

/// The error and its causes, one line: reqwest's top-level message alone says little.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
