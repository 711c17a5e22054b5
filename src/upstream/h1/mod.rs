//! Lean HTTP/1 client for `http://` upstreams: the POSTs of a Streamable HTTP link, written
//! and read by the caller's own task over a small pool of connections per upstream URL.
//!
//! reqwest does the same job with layers the gateway does not need on this path (a redirect
//! policy that re-parses the URL, a retry layer, a pool keyed by hashed scheme and host,
//! copies of the header map), and they cost about a fifth of the CPU of a proxied call; a
//! hyper client connection driven by the caller still cost about 14k instructions a call in
//! its dispatch (a request channel, callbacks, buffers queued for `writev`, the head encoded
//! through `fmt`). Here the URL is parsed once, when the link connects: the address to dial,
//! the path and query each request names, and the `Host` value it carries; a request is one
//! buffer and one write, and its answer's head is parsed with `httparse` from the bytes the
//! first read brought (see [`wire`] for the framing rules, RFC 9112 §6).
//!
//! A connection has no task of its own: whoever holds it drives it. The request's future
//! writes the request and reads the answer's head, the answer's [`Body`] reads the rest, and
//! taking an idle connection from the pool first looks at whatever came while it was idle (a
//! close, typically), without a system call unless the socket became readable.
//!
//! What stays as reqwest does it: a 10 s connect timeout, `TCP_NODELAY` and TCP keep-alive
//! (see [`tune`]), idle connections kept for 90 s (checked when one is taken), `Host` unless
//! the caller set one, a request that could not be written to a reused connection (which the
//! upstream had closed) is sent again on a new one. A connection goes back to the pool only
//! once its answer was read to the end, and only when the answer allows it (HTTP/1.1 without
//! `Connection: close`, a body framed by a length or chunks); dropping a request or its answer
//! half-way closes the connection, which is how the upstream learns that a stateless request
//! was abandoned. Redirects, proxies and HTTPS are not handled here: the caller keeps reqwest
//! for those (see [`Client::for_url`]).

mod wire;

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use http::{HeaderValue, Response};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub use wire::Lines;
use wire::{Decoder, Head, Step};

/// Longest wait for a TCP connection, as the reqwest client's `connect_timeout`.
const CONNECT_TIMEOUT: Duration = crate::net::UPSTREAM_CONNECT_TIMEOUT;
/// How long an idle connection may be reused, as reqwest's `pool_idle_timeout`.
const IDLE_TIMEOUT: Duration = crate::net::UPSTREAM_IDLE_TIMEOUT;
/// Idle time before TCP keep-alive probes, and between them, as reqwest's defaults.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Most idle connections kept per upstream URL; more are closed when their answer ends.
const MAX_IDLE: usize = 64;
/// Room made in a connection's read buffer before each read: most answers come whole in one.
const READ_SIZE: usize = 8 * 1024;

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
    target: String,
    host: HeaderValue,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    line: Line,
    since: Instant,
}

/// One connection, and the bytes read from it that nothing has taken yet.
struct Line {
    io: TcpStream,
    read: BytesMut,
    /// The request being written (kept, so its room is reused).
    write: Vec<u8>,
}

impl Line {
    fn new(io: TcpStream) -> Line {
        Line {
            io,
            read: BytesMut::with_capacity(READ_SIZE),
            write: Vec::new(),
        }
    }

    /// Reads what the socket has into the read buffer: 0 once the upstream closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        self.read.reserve(READ_SIZE);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read)
    }

    /// Whether an idle connection can no longer carry a request: the upstream closed it, or
    /// sent bytes nobody asked for. A socket that did not become readable is not read.
    fn spoiled(&self) -> bool {
        if !self.read.is_empty() {
            return true;
        }
        let mut probe = [0u8; 1];
        !matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
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
        // `url` has percent-encoded anything a request line cannot carry.
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
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

    /// POSTs `body` with the headers `headers` adds (plus `Host` unless it adds one, and
    /// `Content-Length`) and returns the answer's head as soon as it came; the body streams
    /// from the connection.
    pub async fn post(
        &self,
        headers: impl FnOnce(&mut Lines<'_>),
        body: &[u8],
    ) -> Result<Response<Body>, Error> {
        let inner = &self.inner;
        let mut request = Vec::new();
        let mut rest: &[u8] = &[];
        let mut headers = Some(headers);
        let mut line = loop {
            let (mut line, reused) = match inner.take() {
                Some(line) => (line, true),
                None => (inner.dial().await?, false),
            };
            // Written once, into the room of the first connection's last request.
            if let Some(headers) = headers.take() {
                request = std::mem::take(&mut line.write);
                rest = wire::write_post(&mut request, &inner.target, &inner.host, headers, body);
            }
            match write_request(&mut line.io, &request, rest).await {
                Ok(()) => {
                    line.write = request;
                    break line;
                }
                // The upstream closed the reused connection before the request went out
                // whole, so it did not take it: it may go on another connection.
                Err(_) if reused => continue,
                Err(e) => return Err(inner.failed(false, "SendRequest", &e)),
            }
        };
        let head = loop {
            match wire::parse_head(&mut line.read) {
                Ok(Head::Final(head)) => break head,
                Ok(Head::Interim) => {}
                Ok(Head::Partial) => match std::future::poll_fn(|cx| line.poll_fill(cx)).await {
                    Ok(0) => {
                        let why = "connection closed before message completed";
                        return Err(inner.failed(false, "SendRequest", &why));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(inner.failed(false, "SendRequest", &e)),
                },
                Err(why) => return Err(inner.failed(false, "SendRequest", &why)),
            }
        };
        let mut resp = Response::new(Body {
            decoder: Decoder::new(head.framing),
            line: Some(line),
            back: head.reuse.then(|| inner.clone()),
        });
        *resp.status_mut() = head.status;
        *resp.version_mut() = head.version;
        *resp.headers_mut() = head.headers;
        resp.body_mut().settle();
        Ok(resp)
    }

    /// Idle connections in the pool (for tests).
    pub fn idle(&self) -> usize {
        self.inner.lock().len()
    }
}

/// Writes `head`, then `body` from where it is: `writev`s of both while the socket takes
/// them (tokio's `write_all_buf` writes a chained buffer vectored), or one plain write of
/// the head when the body is in it.
async fn write_request(io: &mut TcpStream, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    if body.is_empty() {
        return io.write_all(head).await;
    }
    io.write_all_buf(&mut bytes::Buf::chain(head, body)).await
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used idle connection that is still open and unspoiled.
    fn take(&self) -> Option<Line> {
        loop {
            let line = {
                let mut idle = self.lock();
                let last = idle.pop()?;
                if last.since.elapsed() > IDLE_TIMEOUT {
                    // The pool is in the order connections came back: all others are older.
                    idle.clear();
                    return None;
                }
                last.line
            };
            if !line.spoiled() {
                return Some(line);
            }
        }
    }

    fn give_back(&self, line: Line) {
        let now = Instant::now();
        let mut idle = self.lock();
        // Oldest first: those idle too long are closed here rather than when the pool runs dry
        // (nothing reads an idle connection, so one the upstream closed waits until then).
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
        Ok(Line::new(stream))
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

/// Why an answer's body broke off.
#[derive(Debug)]
pub struct BodyError(String);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BodyError {}

/// An answer's body, piece by piece, read from the connection as it is polled. Read to the
/// end (or with nothing left to read when dropped), its connection goes back to the pool if
/// the answer allows; dropped earlier, the connection closes.
pub struct Body {
    decoder: Decoder,
    /// `None` once the body ended or broke off.
    line: Option<Line>,
    /// The pool the connection goes back to, when it may carry another request.
    back: Option<Arc<Inner>>,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body").finish_non_exhaustive()
    }
}

impl Body {
    /// Once the body is complete, hands the connection back, unless bytes nobody asked for
    /// came after it.
    fn finished(&mut self) {
        if let (Some(line), Some(pool)) = (self.line.take(), self.back.take())
            && line.read.is_empty()
        {
            pool.give_back(line);
        }
    }

    /// An answer without a body (`Content-Length: 0`, 204) hands its connection back at
    /// once: nobody needs to read it.
    fn settle(&mut self) {
        if self.decoder.is_done() {
            self.finished();
        }
    }
}

impl Stream for Body {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let Some(line) = &mut this.line else {
                return Poll::Ready(None);
            };
            let broke = match this.decoder.decode(&mut line.read) {
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(data))),
                Ok(Step::End) => {
                    this.finished();
                    return Poll::Ready(None);
                }
                Ok(Step::More) => match ready!(line.poll_fill(cx)) {
                    Ok(0) => match this.decoder.closed() {
                        Ok(()) => {
                            this.line = None;
                            return Poll::Ready(None);
                        }
                        Err(why) => why,
                    },
                    Ok(_) => continue,
                    Err(e) => e.to_string(),
                },
                Err(why) => why,
            };
            this.line = None;
            return Poll::Ready(Some(Err(BodyError(broke))));
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(line) = &mut self.line
            && matches!(self.decoder.decode(&mut line.read), Ok(Step::End))
        {
            self.finished();
        }
    }
}

#[cfg(test)]
mod tests;
