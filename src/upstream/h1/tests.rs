//! The lean client against real sockets: hyper servers, raw ones that write chosen bytes,
//! and blocking ones on threads of their own.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use http::header::HOST;
use http::{HeaderMap, HeaderName, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
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
    let resp = first.post(|_| {}, b"{}").await.unwrap();
    assert_eq!(read_all(resp.into_body()).await, br#"{"ok":true}"#);
    assert_eq!(
        second.idle(),
        1,
        "the connection first used is second's too"
    );
    let resp = second.post(|_| {}, b"{}").await.unwrap();
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
        let resp = client.post(|_| {}, b"{}").await.unwrap();
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

/// A checksum that the order of the bytes matters to.
fn checksum(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0u64, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)))
}

/// A long body leaves from where it is, after the head, and arrives whole; the buffer the
/// connection keeps for its next request holds only a head.
#[tokio::test]
async fn a_long_body_arrives_whole_and_is_not_kept_with_its_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url: url::Url = format!("http://{}/mcp", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = service_fn(|req: Request<Incoming>| async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let text = format!("{} {}", body.len(), checksum(&body));
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await
            .unwrap();
    });
    let client = Client::direct(&url).unwrap();
    for len in [wire::INLINE_BODY + 1, 1 << 20, 10] {
        let body: Vec<u8> = (0..len).map(|i| b'a' + (i % 23) as u8).collect();
        let sum = checksum(&body);
        let post = async { read_all(client.post(|_| {}, &body).await.unwrap().into_body()).await };
        let answer = tokio::time::timeout(WAIT, post).await.expect("an answer");
        assert_eq!(String::from_utf8(answer).unwrap(), format!("{len} {sum}"));
        let idle = client.inner.lock();
        assert_eq!(idle.len(), 1, "the connection is kept");
        let kept = idle[0].line.write.capacity();
        assert!(
            kept < wire::INLINE_BODY + 1024,
            "{kept} bytes kept after {len}"
        );
    }
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
        let resp = client.post(|_| {}, b"").await.unwrap();
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
    let resp = client.post(|l| l.extend(&headers), b"").await.unwrap();
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
    let resp = client.post(|_| {}, b"").await.unwrap();
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
    let post = client.post(|_| {}, b"{}");
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

/// `{"ok":true}` as one piece.
const OK: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}",
];

/// A blocking server on its own thread (so it adds no task to the test's runtime): each
/// connection gets `answer` for every request on it, its pieces written a few milliseconds
/// apart (so they come in reads of their own), and with `close_after_one` the server closes
/// the connection after its first answer. Counts the connections, and those it closed.
fn thread_server(
    answer: &'static [&'static [u8]],
    close_after_one: bool,
) -> (url::Url, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (count, ended) = (accepted.clone(), closed.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let ended = ended.clone();
            std::thread::spawn(move || {
                serve(stream, answer, close_after_one);
                // `serve` dropped the stream: the client's side has its close.
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (url.parse().unwrap(), accepted, closed)
}

/// Answers each request on `stream` with the pieces of `answer`, 5 ms apart; with
/// `close_after_one`, closes after the first.
fn serve(mut stream: std::net::TcpStream, answer: &[&[u8]], close_after_one: bool) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    loop {
        // Requests here carry an empty body: a head is a whole request.
        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            seen.drain(..end + 4);
            for (i, piece) in answer.iter().enumerate() {
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if stream.write_all(piece).is_err() {
                    return;
                }
            }
            if close_after_one {
                return;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// Three POSTs of an empty body to `url` with one client: each answer's status and body,
/// and the client's idle connections after each.
async fn three_posts(url: &url::Url) -> Vec<(StatusCode, Vec<u8>, usize)> {
    let client = Client::direct(url).unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let resp = client.post(|_| {}, b"").await.unwrap();
        let status = resp.status();
        let body = read_all(resp.into_body()).await;
        seen.push((status, body, client.idle()));
    }
    seen
}

#[tokio::test]
async fn answers_in_pieces_are_read_whole_and_their_connection_reused() {
    let chunked: &[&[u8]] = &[
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2",
        b"00 OK\r\ncontent-type: text/event-stream\r\ntransfer-",
        b"encoding: chunked\r\n\r\n",
        b"9\r\ndata: 1\n\n\r",
        b"\n9\r\ndata: 2\n\n\r\n0\r\n",
        b"\r\n",
    ];
    let (url, accepted, _) = thread_server(chunked, false);
    for (status, body, idle) in three_posts(&url).await {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"data: 1\n\ndata: 2\n\n");
        assert_eq!(idle, 1);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let length: &[&[u8]] = &[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhe", b"llo"];
    let (url, accepted, _) = thread_server(length, false);
    for (_, body, idle) in three_posts(&url).await {
        assert_eq!((body.as_slice(), idle), (&b"hello"[..], 1));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_answer_that_ends_its_connection_is_not_reused() {
    // Said with `Connection: close`, framed by the close, or followed by bytes nobody asked
    // for: each answer is read whole, and each request takes a new connection.
    let answers: [&'static [&'static [u8]]; 3] = [
        &[b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"],
        &[b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"],
        &[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA"],
    ];
    for answer in answers {
        let (url, accepted, _) = thread_server(answer, false);
        for (status, body, idle) in three_posts(&url).await {
            assert_eq!(
                (status, body.as_slice(), idle),
                (StatusCode::OK, &b"ok"[..], 0)
            );
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            3,
            "{:?}",
            String::from_utf8_lossy(answer[0])
        );
    }
    let (url, accepted, _) = thread_server(&[b"HTTP/1.1 200 OK\r\n\r\nuntil the close"], true);
    for (_, body, idle) in three_posts(&url).await {
        assert_eq!((body.as_slice(), idle), (&b"until the close"[..], 0));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_body_dropped_with_only_its_framing_unread_returns_its_connection() {
    // The caller stops after the data it wanted (an SSE reader after the response): the
    // last chunk, already read, needs nobody to ask for it.
    let sse: &[&[u8]] =
        &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"];
    let (url, accepted, _) = thread_server(sse, false);
    let client = Client::direct(&url).unwrap();
    for _ in 0..2 {
        let resp = client.post(|_| {}, b"").await.unwrap();
        let mut body = resp.into_body();
        assert_eq!(body.next().await.unwrap().unwrap(), "hello");
        drop(body);
        assert_eq!(client.idle(), 1);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_broken_answer_is_an_error_that_names_it() {
    let client = |answer| {
        let (url, _, _) = thread_server(answer, true);
        Client::direct(&url).unwrap()
    };
    let broken: [(&'static [&'static [u8]], &str); 2] = [
        (
            &[b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"],
            "client error (SendRequest): invalid content-length",
        ),
        (
            &[b"HTTP/1.1 200 OK\r\ncontent-le"],
            "connection closed before message completed",
        ),
    ];
    for (answer, why) in broken {
        let e = client(answer).post(|_| {}, b"").await.unwrap_err();
        assert!(e.to_string().ends_with(why), "{e}");
    }
    let lean = client(&[b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nhalf"]);
    let resp = lean.post(|_| {}, b"").await.unwrap();
    let mut body = resp.into_body();
    assert_eq!(body.next().await.unwrap().unwrap(), "half");
    let e = body.next().await.unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "connection closed before the answer's body ended"
    );
    assert!(body.next().await.is_none());
    assert_eq!(lean.idle(), 0);
}

#[tokio::test]
async fn no_task_drives_a_connection_but_its_caller() {
    let (url, accepted, _) = thread_server(OK, false);
    let client = Client::direct(&url).unwrap();
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before = tasks();
    for _ in 0..3 {
        let resp = client.post(|_| {}, b"").await.unwrap();
        assert_eq!(tasks(), before, "a task was spawned for the connection");
        assert_eq!(read_all(resp.into_body()).await, br#"{"ok":true}"#);
        assert_eq!(client.idle(), 1);
    }
    assert_eq!(tasks(), before);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_idle_connection_the_upstream_closed_is_not_used_again() {
    let (url, accepted, closed) = thread_server(OK, true);
    let client = Client::direct(&url).unwrap();
    for round in 1..=3 {
        let resp = client.post(|_| {}, b"").await.unwrap();
        assert_eq!(read_all(resp.into_body()).await, br#"{"ok":true}"#);
        // The upstream's close reaches the idle connection while nobody drives it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while closed.load(Ordering::SeqCst) < round && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(closed.load(Ordering::SeqCst), round, "the server closed");
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
    let e = client.post(|_| {}, b"").await.unwrap_err();
    assert!(e.is_connect());
    let prefix = format!(
        "error sending request for url ({url}): client error (Connect): tcp connect error: "
    );
    assert!(e.to_string().starts_with(&prefix), "{e}");
}

fn reqwest_client() -> reqwest::Client {
    crate::net::upstream_client()
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

#[tokio::test]
async fn the_lean_path_sends_the_headers_reqwest_sends() {
    // Each round: a call whose answer names a session, then a call the lean path sends and
    // reqwest sends again after a redirect: the two must carry the same headers.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let configured = [
        vec![("X-Configured", "1")],
        vec![("User-Agent", "mine"), ("Accept", "application/json")],
    ];
    for configured in configured {
        CALLS.store(0, Ordering::SeqCst);
        let server = server(|target| {
            if target.starts_with("/moved") {
                return json(r#"{"jsonrpc":"2.0","id":2,"result":{}}"#);
            }
            if CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
                let mut resp = json(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
                resp.headers_mut()
                    .insert("mcp-session-id", HeaderValue::from_static("s-1"));
                return resp;
            }
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            resp.headers_mut()
                .insert("location", HeaderValue::from_static("/moved"));
            resp
        })
        .await;
        let headers = configured
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let link =
            super::super::http::connect("up", &server.url, &headers, reqwest_client()).unwrap();
        let http = link.http.clone().unwrap();
        let answer = http.exchange(call(1), Vec::new()).await.unwrap();
        assert!(answer.outcome.is_ok(), "{answer:?}");
        let traced = serde_json::json!({"name": "x", "_meta": {
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "tracestate": "k=v",
        }});
        let msg = Message::Request(RpcRequest::new(Id::Num(2), "tools/call", Some(traced)));
        let own = vec![
            ("Mcp-Method".into(), "tools/call".into()),
            ("Mcp-Name".into(), "x".into()),
        ];
        let answer = http.exchange(msg, own).await.unwrap();
        assert!(answer.outcome.is_ok(), "{answer:?}");
        let seen = server.seen.lock().unwrap();
        let lines = |i: usize| {
            let mut lines: Vec<(String, String)> = seen[i]
                .1
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
                .collect();
            lines.sort();
            lines
        };
        let (lean, reqwest) = (lines(1), lines(2));
        assert_eq!(lean, reqwest);
        for expected in [
            ("mcp-session-id", "s-1"),
            ("mcp-name", "x"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("tracestate", "k=v"),
            ("content-type", "application/json"),
        ] {
            let line = (expected.0.to_owned(), expected.1.to_owned());
            assert!(lean.contains(&line), "{expected:?} missing from {lean:?}");
        }
        for (k, v) in &configured {
            let line = (k.to_ascii_lowercase(), v.to_string());
            assert!(lean.contains(&line), "{line:?} missing from {lean:?}");
        }
    }
}
