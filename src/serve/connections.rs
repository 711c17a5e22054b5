//! The HTTP server's accept loop, with the bounds of the `connections` section: at most
//! `max` connections open at once and `per_source` from one IP address that has not proved
//! credentials (one more is answered 503 and closed at once, so the kernel's backlog never
//! fills with clients nobody will serve), request headers within `header_timeout`, and
//! connections with no request in flight closed after `idle_timeout`.
//!
//! Each connection is served by hyper (HTTP/1.1 or HTTP/2, told apart by the preface) with
//! the axum application as its service. Every request carries the connection's [`Peer`], so
//! the faces know where it came from; once a request proves credentials the connection stops
//! counting against its source. The limit is per connection because that is what is known at
//! accept time: who is calling is only known per request, after the headers are read.
//!
//! Timeouts, by when they apply:
//!
//! - before the first request's headers are complete: `header_timeout` (hyper's for
//!   HTTP/1.1 from the first byte; the loop's own for a connection that sends too little to
//!   tell its protocol, or an HTTP/2 connection that opens no stream);
//! - between requests: an HTTP/1.1 connection waiting for its next request's headers is
//!   closed after `header_timeout` (hyper times the wait for a request head from the end of
//!   the previous answer); an HTTP/2 connection with no stream open after `idle_timeout`;
//! - a request body: `body_timeout`, from the handler (see `downstream::web::read_body`).
//!
//! Shutdown: when `close` is cancelled the loop stops accepting and asks every connection to
//! finish (HTTP/1.1: after its answer in progress; HTTP/2: GOAWAY); the caller bounds the wait.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use dashmap::DashMap;
use futures::FutureExt as _;
use futures::task::AtomicWaker;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::config::limits::ConnectionsConfig;
use crate::downstream::App;
use crate::downstream::web::Peer;
use crate::pipeline::metrics::Metrics;

use super::in_flight::InFlight;

/// How long a connection asked to close (idle, or at shutdown) may take to finish what it
/// is writing before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// HTTP/2: a ping this often on a connection, and the connection closed when its answer
/// takes longer than [`H2_PING_TIMEOUT`] (a peer that vanished without closing).
const H2_PING_EVERY: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// HTTP/2: most streams (requests) open at once on one connection.
pub const H2_MAX_STREAMS: u32 = 100;

/// Serves `app` on `listener` until `close` is cancelled, then lets the connections finish.
pub async fn serve(
    listener: TcpListener,
    app: App,
    limits: ConnectionsConfig,
    metrics: Arc<Metrics>,
    in_flight: InFlight,
    close: CancellationToken,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_EVERY)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .max_concurrent_streams(H2_MAX_STREAMS);
    let shared = Arc::new(Shared {
        builder,
        app,
        limits,
        metrics,
        in_flight,
        close: close.clone(),
    });
    let slots = Arc::new(Semaphore::new(shared.limits.max));
    let sources = Arc::new(Sources::default());
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = close.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (tcp, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!(error = %e, "Could not accept a connection");
                tokio::select! {
                    _ = close.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        // Without TCP_NODELAY, an SSE answer (headers, event, end of stream written
        // separately) waits on Nagle's algorithm and the client's delayed ACK: ~40 ms each.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "Could not set TCP_NODELAY");
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(&shared, tcp, addr, "max");
            continue;
        };
        let Some(source) = sources.enter(addr.ip(), shared.limits.per_source) else {
            refuse(&shared, tcp, addr, "source");
            continue;
        };
        let shared = shared.clone();
        let source = Arc::new(source);
        connections.spawn(async move {
            connection(&shared, tcp, addr, source.clone()).await;
            // Requests' copies of the peer may outlive the connection by a moment.
            source.release();
            drop(slot);
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

struct Shared {
    builder: Builder<TokioExecutor>,
    app: App,
    limits: ConnectionsConfig,
    metrics: Arc<Metrics>,
    in_flight: InFlight,
    close: CancellationToken,
}

/// A connection over a limit: a 503 written if the socket takes it at once (a fresh socket's
/// buffer does), then closed. Nothing here waits on the client.
fn refuse(shared: &Shared, tcp: TcpStream, addr: SocketAddr, limit: &'static str) {
    shared.metrics.connection_refused(limit);
    let (what, cap) = match limit {
        "source" => ("connections from this address", shared.limits.per_source),
        _ => ("connections", shared.limits.max),
    };
    tracing::debug!(peer = %addr, limit, cap, "Refused a connection over the limit");
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":-32012,"message":"too many {what} (at most {cap}); retry later"}}}}"#
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.try_write(answer.as_bytes());
}

/// Serves one connection until it ends, goes idle, or the server closes.
///
/// The connection's task polls only the connection. What may close it (the server closing,
/// the idle and header timeouts) is watched by a task of its own, which asks the connection
/// to finish ([`Stop`]) and, [`CLOSE_GRACE`] later, to stop. Raced against the connection in
/// one `select!`, the close signal and the idle timer were polled again on every wake of the
/// connection, three or four per request.
async fn connection(
    shared: &Arc<Shared>,
    tcp: TcpStream,
    addr: SocketAddr,
    source: Arc<SourceSlot>,
) {
    let activity = Arc::new(Activity::new());
    let vouched = source;
    let service = ConnectionService {
        app: shared.app.clone(),
        in_flight: shared.in_flight.clone(),
        peer: Peer::new(addr, move || vouched.release()),
        activity: activity.clone(),
    };
    let stop = Arc::new(Stop::default());
    let _watch = AbortOnDropHandle::new(tokio::spawn(watch(
        shared.clone(),
        activity,
        stop.clone(),
        addr,
    )));
    let conn = shared.builder.serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    let mut asked = false;
    let ended = std::future::poll_fn(|cx| {
        // Registered before the flags are read: a flag raised after this wakes the task.
        stop.waker.register(cx.waker());
        if stop.now.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        if !asked && stop.asked.load(Ordering::Acquire) {
            asked = true;
            conn.as_mut().graceful_shutdown();
        }
        conn.as_mut().poll(cx).map(Some)
    })
    .await;
    let Some(Err(e)) = ended else {
        return;
    };
    let timed_out = e
        .downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout);
    if timed_out {
        shared.metrics.connection_closed("header_timeout");
        tracing::debug!(peer = %addr, "Closed a connection: request headers not received in time");
    } else {
        tracing::debug!(peer = %addr, error = %e, "Connection ended with an error");
    }
}

/// Waits for a reason to close the connection (the server closing, or the connection idle
/// for its allowed time), asks it to finish, and stops it if it has not within
/// [`CLOSE_GRACE`].
async fn watch(shared: Arc<Shared>, activity: Arc<Activity>, stop: Arc<Stop>, addr: SocketAddr) {
    tokio::select! {
        _ = shared.close.cancelled() => {}
        reason = activity.idle(&shared.limits) => {
            shared.metrics.connection_closed(reason);
            tracing::debug!(peer = %addr, reason, "Closed a connection with no request in flight");
        }
    }
    stop.raise(&stop.asked);
    tokio::time::sleep(CLOSE_GRACE).await;
    stop.raise(&stop.now);
}

/// What the watcher tells a connection: finish what is in flight (`asked`), or stop now.
#[derive(Default)]
struct Stop {
    asked: AtomicBool,
    now: AtomicBool,
    /// The connection's task, woken when a flag is raised.
    waker: AtomicWaker,
}

impl Stop {
    fn raise(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// The axum application as one connection's hyper service: each request gets the
/// connection's [`Peer`] and counts as activity until its answer's body is done.
#[derive(Clone)]
struct ConnectionService {
    app: App,
    in_flight: InFlight,
    peer: Peer,
    activity: Arc<Activity>,
}

impl hyper::service::Service<http::Request<Incoming>> for ConnectionService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: http::Request<Incoming>) -> Self::Future {
        // Counted from arrival until the answer's body is done, for the drain and for this
        // connection's idle timeout.
        let counted = (self.in_flight.enter(), self.activity.enter());
        if let Some(refused) = crate::downstream::admit(&mut req) {
            return Box::pin(std::future::ready(Ok(refused)));
        }
        // The application's future boxed as it is, with the body's guard added by a `map`
        // rather than by an async block around it (which would be one more copy of it).
        let answer = self.app.clone().serve(req, self.peer.clone());
        Box::pin(
            answer.map(|resp| Ok(resp.map(|body| super::in_flight::Guarded::body(body, counted)))),
        )
    }
}

/// Requests in flight on one connection, and when the last one ended.
///
/// Starting and ending a request wakes nobody: the idle timer sleeps to its deadline and
/// then looks at what changed meanwhile. Only when it finds requests in flight does it ask
/// to be woken, by the end of the last of them. (Waking it on every start and end cost two
/// extra polls of the connection, and of the request in flight in it, per request.)
struct Activity {
    busy: AtomicUsize,
    /// Whether any request ever started here (until then `header_timeout` applies).
    served: AtomicBool,
    opened: Instant,
    /// When the last request ended (or the connection opened), as time since `opened`.
    since: AtomicU64,
    /// Set while the idle timer waits for the requests in flight to end.
    waiting: AtomicBool,
    ended: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            busy: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            opened: Instant::now(),
            since: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            ended: Notify::new(),
        }
    }

    fn enter(self: &Arc<Self>) -> Busy {
        self.served.store(true, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    fn leave(&self) {
        let since = u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.since.store(since, Ordering::Relaxed);
        // SeqCst on both sides: either the timer sees no request in flight, or this sees
        // the timer waiting (see `idle`).
        if self.busy.fetch_sub(1, Ordering::SeqCst) == 1 && self.waiting.load(Ordering::SeqCst) {
            self.ended.notify_one();
        }
    }

    /// Resolves once the connection has had no request in flight for its allowed time:
    /// `header_timeout` before its first request, `idle_timeout` after. Returns the reason.
    async fn idle(&self, limits: &ConnectionsConfig) -> &'static str {
        loop {
            if self.busy.load(Ordering::SeqCst) > 0 {
                let ended = self.ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                self.waiting.store(true, Ordering::SeqCst);
                if self.busy.load(Ordering::SeqCst) > 0 {
                    ended.await;
                }
                self.waiting.store(false, Ordering::SeqCst);
                continue;
            }
            let (allowed, reason) = if self.served.load(Ordering::Relaxed) {
                (limits.idle_timeout, "idle")
            } else {
                (limits.header_timeout, "header_timeout")
            };
            let since = Duration::from_nanos(self.since.load(Ordering::Relaxed));
            let deadline = self.opened + since + allowed;
            if Instant::now() < deadline {
                // A request may start and end while this sleeps: the next round sees it.
                tokio::time::sleep_until(deadline).await;
                continue;
            }
            return reason;
        }
    }
}

/// One request in flight on a connection, until its answer's body is done or dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// Connections open per source address that have not proved credentials.
#[derive(Default)]
struct Sources(Arc<DashMap<IpAddr, usize>>);

impl Sources {
    /// Counts a connection from `ip`; `None` when `ip` already has `cap` (0: no cap).
    fn enter(&self, ip: IpAddr, cap: usize) -> Option<SourceSlot> {
        if cap == 0 {
            return Some(SourceSlot {
                sources: None,
                ip,
                released: AtomicBool::new(true),
            });
        }
        let mut count = self.0.entry(ip).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            sources: Some(self.0.clone()),
            ip,
            released: AtomicBool::new(false),
        })
    }
}

/// A connection counted against its source, until released (credentials proved) or closed.
struct SourceSlot {
    sources: Option<Arc<DashMap<IpAddr, usize>>>,
    ip: IpAddr,
    released: AtomicBool,
}

impl SourceSlot {
    fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(sources) = &self.sources {
            sources.remove_if_mut(&self.ip, |_, count| {
                *count = count.saturating_sub(1);
                *count == 0
            });
        }
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionsConfig {
        ConnectionsConfig {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            ..ConnectionsConfig::default()
        }
    }

    /// Nothing wakes the idle timer when a request starts or ends while it sleeps; it must
    /// still find out, and count from the end of the last request.
    #[tokio::test(start_paused = true)]
    async fn the_idle_timer_counts_from_the_end_of_the_last_request() {
        let limits = limits();
        let activity = Arc::new(Activity::new());
        let opened = Instant::now();
        assert_eq!(activity.idle(&limits).await, "header_timeout");
        assert_eq!(opened.elapsed(), limits.header_timeout);

        // A request that starts and ends while the timer sleeps moves the deadline.
        drop(activity.enter());
        let idle = activity.idle(&limits);
        tokio::pin!(idle);
        let wait = tokio::time::timeout(Duration::from_secs(100), idle.as_mut()).await;
        assert!(
            wait.is_err(),
            "idle 100 s after a request, of 120 s allowed"
        );
        let last = Instant::now();
        drop(activity.enter());
        assert_eq!(idle.as_mut().await, "idle");
        assert_eq!(last.elapsed(), limits.idle_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_timer_waits_for_the_last_request_in_flight_to_end() {
        let limits = limits();
        let activity = Arc::new(Activity::new());
        let first = activity.enter();
        let second = activity.enter();
        let idle = activity.idle(&limits);
        tokio::pin!(idle);
        let wait = tokio::time::timeout(Duration::from_secs(600), idle.as_mut()).await;
        assert!(wait.is_err(), "not idle with requests in flight");
        drop(first);
        let wait = tokio::time::timeout(Duration::from_secs(600), idle.as_mut()).await;
        assert!(wait.is_err(), "not idle with one request still in flight");
        let ended = Instant::now();
        drop(second);
        let reason = tokio::time::timeout(Duration::from_secs(3600), idle.as_mut()).await;
        assert_eq!(reason, Ok("idle"), "woken by the end of the last request");
        assert_eq!(ended.elapsed(), limits.idle_timeout);
    }

    #[test]
    fn a_source_is_capped_until_its_connections_close_or_prove_credentials() {
        let sources = Sources::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let a = sources.enter(ip, 2).expect("first");
        let b = sources.enter(ip, 2).expect("second");
        assert!(sources.enter(ip, 2).is_none());
        assert!(sources.enter([10, 0, 0, 2].into(), 2).is_some());
        a.release();
        a.release();
        let c = sources
            .enter(ip, 2)
            .expect("room after a proved credentials");
        assert!(sources.enter(ip, 2).is_none());
        drop((a, b, c));
        assert!(sources.0.is_empty(), "nothing left for a source gone");
        for _ in 0..5 {
            std::mem::forget(sources.enter(ip, 0).expect("no cap"));
        }
        assert!(sources.0.is_empty());
    }
}
