//! Lean HTTP/1 client for `http://` upstreams: the POSTs of a Streamable HTTP link go
//! straight to `hyper::client::conn::http1`, over a small pool of connections per upstream URL.
//!
//! reqwest does the same job with layers the gateway does not need on this path (a redirect
//! policy that re-parses the URL, a retry layer, a pool keyed by hashed scheme and host,
//! copies of the header map), and they cost about a fifth of the CPU of a proxied call. Here
//! the URL is parsed once, when the link connects: the address to dial, the path and query
//! each request names, and the `Host` value it carries.
//!
//! A connection has no task of its own: whoever holds it drives it. The request's future
//! writes the request and reads the answer's head, the answer's [`Body`] reads the rest, and
//! taking an idle connection from the pool reads whatever came while it was idle (a close,
//! typically). So an answer wakes the caller's task straight from the socket, with no
//! connection task woken in between and no hand-over through hyper's channels to another task
//! (a spawned connection task cost two more wake-ups and polls of the whole request per call).
//!
//! What stays as reqwest does it: a 10 s connect timeout, `TCP_NODELAY` and TCP keep-alive
//! (see [`tune`]), idle connections
//! kept for 90 s (checked when one is taken), `Host` unless the caller set one, a request
//! not yet written to a reused connection that turns out closed is sent again on a new one.
//! A connection goes back to the pool only once its answer was read to the end; dropping a
//! request or its answer half-way closes the connection, which is how the upstream learns
//! that a stateless request was abandoned. Redirects, proxies and HTTPS are not handled
//! here: the caller keeps reqwest for those (see [`Client::for_url`]).

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;
use http::header::HOST;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::http::error_chain;

/// Longest wait for a TCP connection, as the reqwest client's `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection may be reused, as reqwest's `pool_idle_timeout`.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle time before TCP keep-alive probes, and between them, as reqwest's defaults.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Most idle connections kept per upstream URL; more are closed when their answer ends.
const MAX_IDLE: usize = 64;

/// Environment variables through which reqwest would send `http://` requests to a proxy.
const PROXY_VARS: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/// A POST-only HTTP/1.1 client for one upstream URL. Cloning shares the pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// The configured URL, for error messages.
    url: String,
    /// `host:port` to dial.
    authority: String,
    /// Path and query, the request target of every request.
    target: Uri,
    host: HeaderValue,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    line: Line,
    since: Instant,
}

type Connection = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// One connection: the handle requests go through, and the connection's own future, polled
/// by whichever task holds the line.
struct Line {
    sender: SendRequest<Full<Bytes>>,
    /// `None` once the connection ended.
    conn: Option<Pin<Box<Connection>>>,
}

impl Line {
    /// Does the connection's pending reads and writes; false once it has ended (closed by
    /// the upstream, or failed), when no answer can come through it any more.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(conn) = &mut self.conn else {
            return false;
        };
        match conn.as_mut().poll(cx) {
            Poll::Pending => true,
            Poll::Ready(ended) => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "Upstream HTTP connection failed");
                }
                self.conn = None;
                false
            }
        }
    }
}

/// Why a request got no answer, worded as reqwest words it (the reqwest path reports the same
/// failures the same way).
#[derive(Debug)]
pub struct Error {
    connect: bool,
    why: String,
}

impl Error {
    /// Whether no connection could be opened: the upstream is down or unreachable (as
    /// `reqwest::Error::is_connect`).
    pub fn is_connect(&self) -> bool {
        self.connect
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.why)
    }
}

impl std::error::Error for Error {}

impl Client {
    /// A client for `url` when this path may carry its POSTs: a plain `http://` URL with a
    /// host, and no proxy reqwest would go through (set in the environment). `None` means
    /// the caller keeps reqwest.
    ///
    /// Every link to one URL shares one pool, as they shared reqwest's: an upstream with a
    /// session per client (or a probe beside its session) needs no idle connection per link.
    pub fn for_url(url: &url::Url) -> Option<Client> {
        if PROXY_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
            return None;
        }
        Self::shared(url)
    }

    /// The client of `url`'s shared pool, made on first use.
    fn shared(url: &url::Url) -> Option<Client> {
        // One entry per configured upstream URL: as many as the configuration (and its
        // reloads) ever named.
        static SHARED: Mutex<Vec<Client>> = Mutex::new(Vec::new());
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = shared.iter().find(|c| c.inner.url == url.as_str()) {
            return Some(client.clone());
        }
        let client = Self::direct(url)?;
        shared.push(client.clone());
        Some(client)
    }

    /// [`Client::for_url`] without looking at the environment.
    pub fn direct(url: &url::Url) -> Option<Client> {
        // reqwest turns credentials in the URL into a Basic `Authorization` header.
        if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        // `url` leaves out the scheme's default port, as the Host header does.
        let host_value = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let target: Uri = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
        .parse()
        .ok()?;
        Some(Client {
            inner: Arc::new(Inner {
                url: url.as_str().to_owned(),
                authority: format!("{host}:{port}"),
                target,
                host: HeaderValue::from_str(&host_value).ok()?,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// POSTs `body` with `headers` (plus `Host` unless they have one, and `Content-Length`)
    /// and returns the answer's head as soon as it came; the body streams from the connection.
    pub async fn post(&self, mut headers: HeaderMap, body: Bytes) -> Result<Response<Body>, Error> {
        headers
            .entry(HOST)
            .or_insert_with(|| self.inner.host.clone());
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.inner.target.clone();
        *req.headers_mut() = headers;
        loop {
            let (mut line, reused) = match self.inner.take().await {
                Some(line) => (line, true),
                None => (self.inner.dial().await?, false),
            };
            let mut answer = std::pin::pin!(line.sender.try_send_request(req));
            // When the connection ends, the answer's future ends too, with the reason.
            let answered = std::future::poll_fn(|cx| {
                line.drive(cx);
                answer.as_mut().poll(cx)
            })
            .await;
            match answered {
                Ok(resp) => {
                    let (head, body) = resp.into_parts();
                    let body = Body {
                        inner: body,
                        back: Some((line, self.inner.clone())),
                    };
                    return Ok(Response::from_parts(head, body));
                }
                Err(mut e) => match e.take_message() {
                    // The reused connection was closed before the request went out: the
                    // upstream never saw it, so it may go on another connection.
                    Some(unsent) if reused => req = unsent,
                    _ => {
                        return Err(self.inner.failed(
                            false,
                            "SendRequest",
                            &error_chain(&e.into_error()),
                        ));
                    }
                },
            }
        }
    }

    /// Idle connections in the pool (for tests).
    pub fn idle(&self) -> usize {
        self.inner.lock().len()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used idle connection that is still open and ready.
    async fn take(&self) -> Option<Line> {
        loop {
            let mut line = {
                let mut idle = self.lock();
                let last = idle.pop()?;
                if last.since.elapsed() > IDLE_TIMEOUT {
                    // The pool is in the order connections came back: all others are older.
                    idle.clear();
                    return None;
                }
                last.line
            };
            if line.sender.is_closed() {
                continue;
            }
            // Nobody drove the connection while it was idle: it reads now what came meanwhile
            // (an upstream that closed it), and is ready once it finished with the answer it
            // came back from.
            let ready = std::future::poll_fn(|cx| {
                if !line.drive(cx) {
                    return Poll::Ready(false);
                }
                line.sender.poll_ready(cx).map(|r| r.is_ok())
            })
            .await;
            if ready {
                return Some(line);
            }
        }
    }

    fn give_back(&self, line: Line) {
        if line.conn.is_none() || line.sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.lock();
        // Oldest first: those idle too long are closed here rather than when the pool runs dry
        // (nothing drives an idle connection, so one the upstream closed waits until then).
        let expired = idle
            .iter()
            .take_while(|i| now.duration_since(i.since) > IDLE_TIMEOUT)
            .count();
        idle.drain(..expired);
        if idle.len() < MAX_IDLE {
            idle.push(Idle { line, since: now });
        }
    }

    /// Opens a connection (reported in reqwest's words, as the reqwest path reports it).
    async fn dial(&self) -> Result<Line, Error> {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, self.connect()).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(why)) => return Err(self.failed(true, "Connect", &why)),
            Err(_) => return Err(self.failed(true, "Connect", &"operation timed out")),
        };
        tune(&stream);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.failed(false, "SendRequest", &error_chain(&e)))?;
        Ok(Line {
            sender,
            conn: Some(Box::pin(conn)),
        })
    }

    fn failed(&self, connect: bool, kind: &str, why: &dyn fmt::Display) -> Error {
        Error {
            connect,
            why: format!(
                "error sending request for url ({}): client error ({kind}): {why}",
                self.url
            ),
        }
    }

    /// A TCP connection to the first address of the host that accepts one.
    async fn connect(&self) -> Result<TcpStream, String> {
        let addrs = tokio::net::lookup_host(self.authority.as_str())
            .await
            .map_err(|e| format!("dns error: {e}"))?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => format!("tcp connect error: {e}"),
            None => String::from("dns error: no addresses to connect to"),
        })
    }
}

/// The socket options reqwest's connector sets: `TCP_NODELAY`, keep-alive probes after 15 s
/// idle (every 15 s, 3 of them) and, on Linux, a 30 s `TCP_USER_TIMEOUT`, so a long SSE
/// answer from an upstream that vanished is noticed.
fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let keepalive = keepalive.with_interval(KEEPALIVE).with_retries(3);
    let _ = socket.set_tcp_keepalive(&keepalive);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = socket.set_tcp_user_timeout(Some(Duration::from_secs(30)));
}

/// An answer's body, chunk by chunk, read from the connection as it is polled. Read to the
/// end (or already complete when dropped), its connection goes back to the pool; dropped
/// earlier, the connection closes.
pub struct Body {
    inner: Incoming,
    back: Option<(Line, Arc<Inner>)>,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body").finish_non_exhaustive()
    }
}

impl Body {
    fn finished(&mut self) {
        if let Some((line, pool)) = self.back.take() {
            pool.give_back(line);
        }
    }
}

impl Stream for Body {
    type Item = Result<Bytes, hyper::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some((line, _)) = &mut this.back {
                line.drive(cx);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers carry nothing the gateway reads.
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.back = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.finished();
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if self.back.is_some() && self.inner.is_end_stream() {
            self.finished();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::StreamExt;
    use http::{HeaderName, StatusCode};
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    use super::*;
    use crate::protocol::{Id, Message, Request as RpcRequest};
    use crate::upstream::peer::Inbound;

    const WAIT: Duration = Duration::from_secs(5);

    /// A hyper server on 127.0.0.1: what it answers, how many connections it accepted, and
    /// each request's target and headers.
    struct Server {
        url: url::Url,
        accepted: Arc<AtomicUsize>,
        seen: Arc<Mutex<Vec<(String, HeaderMap)>>>,
    }

    fn json(body: &'static str) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        resp
    }

    async fn server(answer: fn(&str) -> Response<Full<Bytes>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen: Arc<Mutex<Vec<(String, HeaderMap)>>> = Arc::default();
        let (count, log) = (accepted.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let log = log.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let target = req.uri().to_string();
                        log.lock()
                            .unwrap()
                            .push((target.clone(), req.headers().clone()));
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(answer(&target))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Server {
            url: format!("http://{addr}/mcp?x=1").parse().unwrap(),
            accepted,
            seen,
        }
    }

    /// A server for one connection that writes `answer` once the request's head came, then
    /// reports when the client closes the connection.
    async fn raw_server(answer: &'static [u8]) -> (url::Url, oneshot::Receiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (closed_tx, closed) = oneshot::channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before the request's head");
                head.extend_from_slice(&buf[..n]);
            }
            stream.write_all(answer).await.unwrap();
            while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            let _ = closed_tx.send(());
        });
        (format!("http://{addr}/mcp").parse().unwrap(), closed)
    }

    async fn read_all(body: Body) -> Vec<u8> {
        let mut out = Vec::new();
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[test]
    fn only_plain_http_urls_take_the_lean_path() {
        let lean = |u: &str| Client::direct(&u.parse().unwrap()).is_some();
        assert!(lean("http://127.0.0.1:9000/mcp"));
        assert!(lean("http://example.com/mcp"));
        assert!(!lean("https://example.com/mcp"));
        assert!(!lean("http://user:secret@example.com/mcp"));
        assert!(!lean("http://user@example.com/mcp"));
        let c = Client::direct(&"http://example.com/a/b?q=1&r".parse().unwrap()).unwrap();
        assert_eq!(c.inner.authority, "example.com:80");
        assert_eq!(c.inner.host, "example.com");
        assert_eq!(c.inner.target, "/a/b?q=1&r");
        let c = Client::direct(&"http://[::1]:8080".parse().unwrap()).unwrap();
        assert_eq!(c.inner.authority, "[::1]:8080");
        assert_eq!(c.inner.host, "[::1]:8080");
        assert_eq!(c.inner.target, "/");
    }

    #[tokio::test]
    async fn links_to_one_url_share_one_pool_and_other_urls_have_their_own() {
        let server = server(|_| json(r#"{"ok":true}"#)).await;
        let first = Client::shared(&server.url).unwrap();
        let second = Client::shared(&server.url).unwrap();
        let resp = first
            .post(HeaderMap::new(), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(read_all(resp.into_body()).await, br#"{"ok":true}"#);
        assert_eq!(
            second.idle(),
            1,
            "the connection first used is second's too"
        );
        let resp = second
            .post(HeaderMap::new(), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(read_all(resp.into_body()).await, br#"{"ok":true}"#);
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        let other = server.url.join("/other").unwrap();
        assert_eq!(Client::shared(&other).unwrap().idle(), 0);
    }

    #[tokio::test]
    async fn a_connection_read_to_the_end_is_reused() {
        let server = server(|_| json(r#"{"ok":true}"#)).await;
        let client = Client::direct(&server.url).unwrap();
        for _ in 0..3 {
            let resp = client
                .post(HeaderMap::new(), Bytes::from_static(b"{}"))
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(read_all(resp.into_body()).await, br#"{"ok":true}"#);
            assert_eq!(client.idle(), 1);
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        let seen = server.seen.lock().unwrap();
        let (target, headers) = &seen[0];
        assert_eq!(target, "/mcp?x=1");
        let port = server.url.port().unwrap();
        assert_eq!(headers["host"], format!("127.0.0.1:{port}").as_str());
        assert_eq!(headers["content-length"], "2");
    }

    #[tokio::test]
    async fn an_answer_without_a_body_returns_its_connection_unread() {
        let server = server(|_| {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::ACCEPTED;
            resp
        })
        .await;
        let client = Client::direct(&server.url).unwrap();
        for _ in 0..2 {
            let resp = client.post(HeaderMap::new(), Bytes::new()).await.unwrap();
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
            drop(resp);
            assert_eq!(client.idle(), 1);
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_caller_host_header_is_kept() {
        let server = server(|_| json("{}")).await;
        let client = Client::direct(&server.url).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("elsewhere"));
        headers.insert(
            HeaderName::from_static("x-extra"),
            HeaderValue::from_static("1"),
        );
        let resp = client.post(headers, Bytes::new()).await.unwrap();
        read_all(resp.into_body()).await;
        let seen = server.seen.lock().unwrap();
        assert_eq!(seen[0].1["host"], "elsewhere");
        assert_eq!(seen[0].1["x-extra"], "1");
    }

    #[tokio::test]
    async fn dropping_an_answer_half_read_closes_its_connection() {
        let (url, closed) = raw_server(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
              transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
        )
        .await;
        let client = Client::direct(&url).unwrap();
        let resp = client.post(HeaderMap::new(), Bytes::new()).await.unwrap();
        let mut body = resp.into_body();
        assert_eq!(body.next().await.unwrap().unwrap(), "hello");
        drop(body);
        tokio::time::timeout(WAIT, closed)
            .await
            .expect("the connection stayed open")
            .unwrap();
        assert_eq!(client.idle(), 0);
    }

    #[tokio::test]
    async fn dropping_a_request_before_its_answer_closes_its_connection() {
        let (url, closed) = raw_server(b"").await;
        let client = Client::direct(&url).unwrap();
        let post = client.post(HeaderMap::new(), Bytes::from_static(b"{}"));
        assert!(
            tokio::time::timeout(Duration::from_millis(200), post)
                .await
                .is_err()
        );
        tokio::time::timeout(WAIT, closed)
            .await
            .expect("the connection stayed open")
            .unwrap();
        assert_eq!(client.idle(), 0);
    }

    /// A blocking server on its own thread (so it adds no task to the test's runtime): each
    /// connection gets `{"ok":true}` for every request on it, and with `close_after_one` the
    /// server closes the connection after its first answer. Counts the connections.
    fn thread_server(close_after_one: bool) -> (url::Url, Arc<AtomicUsize>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut seen = Vec::new();
                    loop {
                        // Requests here carry an empty body: a head is a whole request.
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                           content-length: 11\r\n\r\n{\"ok\":true}";
                            if stream.write_all(answer).is_err() || close_after_one {
                                return;
                            }
                        }
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                });
            }
        });
        (url.parse().unwrap(), accepted)
    }

    #[tokio::test]
    async fn no_task_drives_a_connection_but_its_caller() {
        let (url, accepted) = thread_server(false);
        let client = Client::direct(&url).unwrap();
        let tasks = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let before = tasks();
        for _ in 0..3 {
            let resp = client.post(HeaderMap::new(), Bytes::new()).await.unwrap();
            assert_eq!(tasks(), before, "a task was spawned for the connection");
            assert_eq!(read_all(resp.into_body()).await, br#"{"ok":true}"#);
            assert_eq!(client.idle(), 1);
        }
        assert_eq!(tasks(), before);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_not_used_again() {
        let (url, accepted) = thread_server(true);
        let client = Client::direct(&url).unwrap();
        for round in 1..=3 {
            let resp = client.post(HeaderMap::new(), Bytes::new()).await.unwrap();
            assert_eq!(read_all(resp.into_body()).await, br#"{"ok":true}"#);
            // The upstream's close reaches the idle connection while nobody drives it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(accepted.load(Ordering::SeqCst), round);
        }
    }

    /// A port nothing listens on.
    async fn closed_port() -> url::Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}/mcp").parse().unwrap()
    }

    #[tokio::test]
    async fn a_failed_connect_is_reported_as_reqwest_reports_it() {
        let url = closed_port().await;
        let client = Client::direct(&url).unwrap();
        let e = client
            .post(HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        assert!(e.is_connect());
        let prefix = format!(
            "error sending request for url ({url}): client error (Connect): tcp connect error: "
        );
        assert!(e.to_string().starts_with(&prefix), "{e}");
    }

    fn reqwest_client() -> reqwest::Client {
        crate::net::client("test", |builder| builder)
    }

    fn call(id: i64) -> Message {
        Message::Request(RpcRequest::new(Id::Num(id), "tools/list", None))
    }

    #[tokio::test]
    async fn a_link_reports_a_failed_connect_and_closes() {
        let url = closed_port().await;
        let link =
            super::super::http::connect("up", &url, &Default::default(), reqwest_client()).unwrap();
        let http = link.http.clone().unwrap();
        let answer = http.exchange(call(1), Vec::new()).await.unwrap();
        let error = answer.outcome.unwrap_err();
        assert!(
            error.message.starts_with(&format!(
                "Upstream 'up' unavailable: HTTP request failed: error sending request for url ({url}): client error (Connect): tcp connect error: "
            )),
            "{}",
            error.message
        );
        let mut inbound = link.inbound;
        match tokio::time::timeout(WAIT, inbound.recv()).await.unwrap() {
            Some(Inbound::Closed(why)) => {
                assert!(why.starts_with("HTTP request failed: "), "{why}")
            }
            _ => panic!("the link did not close"),
        }
    }

    #[tokio::test]
    async fn a_redirect_is_followed_through_reqwest() {
        let server = server(|target| {
            if target.starts_with("/mcp") {
                let mut resp = Response::new(Full::new(Bytes::new()));
                *resp.status_mut() = StatusCode::TEMPORARY_REDIRECT;
                resp.headers_mut()
                    .insert("location", HeaderValue::from_static("/moved"));
                resp
            } else {
                json(r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[]}}"#)
            }
        })
        .await;
        let link =
            super::super::http::connect("up", &server.url, &Default::default(), reqwest_client())
                .unwrap();
        let http = link.http.clone().unwrap();
        let answer = http.exchange(call(7), Vec::new()).await.unwrap();
        assert_eq!(answer.id, Some(Id::Num(7)));
        assert!(answer.outcome.is_ok(), "{answer:?}");
        let seen = server.seen.lock().unwrap();
        let targets: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
        // Once on the lean path, again through reqwest, which followed the redirect.
        assert_eq!(targets, ["/mcp?x=1", "/mcp?x=1", "/moved"]);
    }
}
