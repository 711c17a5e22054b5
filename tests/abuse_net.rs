//! The HTTP face under abuse, with the real binary: connections over `connections.max` or a
//! source's share refused at once, idle and slow connections closed after their timeouts, a
//! body that never comes answered 408, HTTP/2's `:authority` checked like `Host`; and the
//! session table under a flood of anonymous `initialize`s: unused sessions expire fast, the
//! least recently used idle one makes room, real clients keep being served.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use support::{
    ACCEPT_BOTH, Gateway, Mcp, Reply, WAIT, http_client, initialize_body, wait_for, within,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn addr(gw: &Gateway) -> SocketAddr {
    gw.base
        .trim_start_matches("http://")
        .parse()
        .expect("host:port")
}

/// A TCP connection to the gateway from `from` (a loopback address: all of 127/8 is local).
async fn connect_from(gw: &Gateway, from: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback source");
    within(WAIT, "connect", socket.connect(addr(gw)))
        .await
        .expect("connect")
}

/// Reads until the gateway closes the connection, at most `limit`: what it sent, or `None`
/// if the connection is still open at the end.
async fn read_until_closed(tcp: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(String::from_utf8_lossy(&seen).into_owned())
}

/// Reads the answer on `tcp` until the gateway closes it, checks that its status line starts
/// with `status` and that it says `says`; then checks that another client is still served.
async fn refused_and_others_served(gw: &Gateway, tcp: &mut TcpStream, status: &str, says: &str) {
    let answer = read_until_closed(tcp, WAIT)
        .await
        .unwrap_or_else(|| panic!("no {status} answer and close within {WAIT:?}"));
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status}")),
        "{answer}"
    );
    assert!(answer.contains(says), "{answer}");
    let c = Mcp::connect(&gw.url).await;
    assert_eq!(c.ok("ping", json!({})).await, json!({}));
}

async fn metric(gw: &Gateway, series: &str) -> f64 {
    gw.metric(series).await.unwrap_or(0.0)
}

async fn initialize(url: &str) -> Reply {
    let resp = http_client()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .json(&initialize_body(1, "2025-11-25"))
        .send()
        .await
        .expect("POST initialize");
    Reply::read(resp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_max_are_refused_and_silent_ones_closed() {
    let gw = Gateway::start(
        "upstreams: {}\nconnections: {max: 8, per_source: 0, header_timeout: 1s, idle_timeout: 1s}\n",
    );
    // Silent connections take every slot...
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(connect_from(&gw, [127, 0, 0, 1]).await);
    }
    // ...so one more is answered 503 and closed at once, instead of waiting in the backlog.
    let mut extra = connect_from(&gw, [127, 0, 0, 1]).await;
    let answer = read_until_closed(&mut extra, WAIT)
        .await
        .expect("the connection over the max is closed");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        answer.contains("too many connections (at most 8)"),
        "{answer}"
    );
    // The silent ones are closed after the header timeout...
    for tcp in &mut silent {
        assert!(
            read_until_closed(tcp, WAIT).await.is_some(),
            "a connection that never sent a request is closed"
        );
    }
    // ...and a real client is served again.
    wait_for(
        WAIT,
        "a client served after the silent ones closed",
        || async {
            let reply = initialize(&gw.url).await;
            (reply.status == 200).then_some(())
        },
    )
    .await;
    let c = Mcp::connect(&gw.url).await;
    assert_eq!(c.ok("ping", json!({})).await, json!({}));
    assert!(metric(&gw, "manifold_connections_refused_total{limit=\"max\"}").await >= 1.0);
    assert!(
        metric(
            &gw,
            "manifold_connections_closed_total{reason=\"header_timeout\"}"
        )
        .await
            >= 8.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_cannot_take_every_connection() {
    let gw = Gateway::start(
        "upstreams: {}\nconnections: {per_source: 3, header_timeout: 30s, idle_timeout: 30s}\n",
    );
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(&gw, [127, 0, 0, 2]).await);
    }
    let mut extra = connect_from(&gw, [127, 0, 0, 2]).await;
    let answer = read_until_closed(&mut extra, WAIT)
        .await
        .expect("the fourth connection from one source is closed");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        answer.contains("too many connections from this address (at most 3)"),
        "{answer}"
    );
    // Another source is served at once, while the three are still held open.
    let c = Mcp::connect(&gw.url).await;
    assert_eq!(c.ok("ping", json!({})).await, json!({}));
    assert!(metric(&gw, "manifold_connections_refused_total{limit=\"source\"}").await >= 1.0);
    // A source's share comes back when its connections close.
    drop(held);
    let mut again = wait_for(WAIT, "the source's share back", || async {
        let mut tcp = connect_from(&gw, [127, 0, 0, 2]).await;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 12];
        tokio::time::timeout(WAIT, tcp.read_exact(&mut buf))
            .await
            .ok()?
            .ok()?;
        (&buf == b"HTTP/1.1 200").then_some(tcp)
    })
    .await;
    again.shutdown().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_after_the_header_timeout() {
    let gw =
        Gateway::start("upstreams: {}\nconnections: {header_timeout: 1s, idle_timeout: 30s}\n");
    // Slowloris: a header line every 200 ms, never the blank line that ends them.
    let mut tcp = connect_from(&gw, [127, 0, 0, 1]).await;
    tcp.write_all(b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .await
        .expect("request line");
    let drip = async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if tcp
                .write_all(format!("x-drip-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return i;
            }
            if i > 150 {
                return i;
            }
        }
        unreachable!()
    };
    let lines = within(WAIT, "the dripping connection closed", drip).await;
    assert!(lines <= 150, "still open after {lines} header lines (30 s)");
    assert!(
        read_until_closed(&mut tcp, WAIT).await.is_some(),
        "the connection is closed"
    );
    // Served on a keep-alive connection, then silent: closed too.
    let mut tcp = connect_from(&gw, [127, 0, 0, 1]).await;
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .expect("request");
    let answer = read_until_closed(&mut tcp, WAIT)
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_comes_is_answered_408_within_the_body_timeout() {
    let gw = Gateway::start(
        "upstreams: {}\nconnections: {body_timeout: 1s, header_timeout: 30s, idle_timeout: 30s}\n",
    );
    let mut tcp = connect_from(&gw, [127, 0, 0, 1]).await;
    tcp.write_all(
        format!(
            "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
             accept: {ACCEPT_BOTH}\r\ncontent-length: 100000\r\n\r\n{{\"jsonrpc\""
        )
        .as_bytes(),
    )
    .await
    .expect("headers");
    // Every other client is served meanwhile and after.
    refused_and_others_served(&gw, &mut tcp, "408", "connections.body_timeout").await;
    assert!(
        metric(
            &gw,
            "manifold_connections_closed_total{reason=\"body_timeout\"}"
        )
        .await
            >= 1.0
    );
}

/// A declared length over `max_body_bytes` is refused at once: nothing of it is waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_100_mb_body_is_refused_at_once_with_413() {
    // The body timeout is far longer than the test's bound: only an early refusal passes.
    let gw = Gateway::start(
        "upstreams: {}\nconnections: {body_timeout: 120s, header_timeout: 120s, idle_timeout: 120s}\n",
    );
    let mut tcp = connect_from(&gw, [127, 0, 0, 1]).await;
    tcp.write_all(
        format!(
            "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
             accept: {ACCEPT_BOTH}\r\ncontent-length: 104857600\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("headers");
    refused_and_others_served(&gw, &mut tcp, "413", "larger than").await;
}

/// A body sent in chunks, with no length declared, is read in its pieces and refused once
/// they pass `max_body_bytes`; within the limit, the pieces make one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_is_joined_and_refused_past_the_limit() {
    let gw = Gateway::start("upstreams: {}\nmax_body_bytes: 1000\n");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         accept: {ACCEPT_BOTH}\r\nmcp-protocol-version: 2026-07-28\r\nmcp-method: server/discover\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    let discover = r#"{"jsonrpc":"2.0","id":7,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"0"}}}}"#;
    let (first, second) = discover.split_at(20);
    let mut tcp = connect_from(&gw, [127, 0, 0, 1]).await;
    tcp.write_all(head.as_bytes()).await.expect("head");
    for piece in [first, second] {
        tcp.write_all(format!("{:x}\r\n{piece}\r\n", piece.len()).as_bytes())
            .await
            .expect("chunk");
        tcp.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tcp.write_all(b"0\r\n\r\n").await.expect("last chunk");
    let answer = read_until_closed(&mut tcp, WAIT).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(r#""id":7,"result":{"supportedVersions""#),
        "{answer}"
    );
    let mut tcp = connect_from(&gw, [127, 0, 0, 1]).await;
    tcp.write_all(head.as_bytes()).await.expect("head");
    let piece = "x".repeat(600);
    for _ in 0..2 {
        tcp.write_all(format!("{:x}\r\n{piece}\r\n", piece.len()).as_bytes())
            .await
            .expect("chunk");
    }
    refused_and_others_served(&gw, &mut tcp, "413", "larger than 1000 bytes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_authority_is_checked_like_host() {
    support::init_tls();
    let gw = Gateway::start("upstreams: {}\n");
    let port = addr(&gw).port();
    let h2 = |resolve: Option<&str>| {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .timeout(WAIT)
            .http2_prior_knowledge();
        if let Some(name) = resolve {
            b = b.resolve(name, addr(&gw));
        }
        b.build().expect("client")
    };
    let send = |client: reqwest::Client, url: String| async move {
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .json(&initialize_body(1, "2025-11-25"))
            .send()
            .await
            .expect("POST over HTTP/2");
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        Reply::read(resp).await
    };
    let ok = send(h2(None), gw.url.clone()).await;
    assert_eq!(ok.status, 200, "loopback authority: {}", ok.body);
    assert!(ok.header("mcp-session-id").is_some());
    let local = send(
        h2(Some("localhost")),
        format!("http://localhost:{port}/mcp"),
    )
    .await;
    assert_eq!(local.status, 200, "localhost: {}", local.body);
    let evil = send(
        h2(Some("evil.example")),
        format!("http://evil.example:{port}/mcp"),
    )
    .await;
    assert_eq!(evil.status, 421, "{}", evil.body);
    assert!(evil.body.contains("evil.example"), "{}", evil.body);
}

/// Before the limits, 10 000 anonymous `initialize`s (about 4 s) filled the table and every
/// new client got 503 for 30 minutes. Now each source's unused sessions make room for its
/// new ones, and a client that used its session keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initialize_flood_fills_no_table() {
    const FLOOD: usize = 10_000;
    let gw = Gateway::start("upstreams: {}\n");
    let early = Mcp::connect(&gw.url).await;
    assert_eq!(early.ok("ping", json!({})).await, json!({}));
    let client = http_client();
    let flood = futures::stream::iter(0..FLOOD)
        .map(|_| {
            let client = client.clone();
            let url = gw.url.clone();
            async move {
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", ACCEPT_BOTH)
                    .json(&initialize_body(1, "2025-11-25"))
                    .send()
                    .await
                    .expect("POST initialize");
                resp.status().as_u16()
            }
        })
        .buffer_unordered(16);
    use futures::StreamExt;
    let statuses: Vec<u16> = within(Duration::from_secs(120), "the flood", flood.collect()).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every initialize served"
    );
    let late = Mcp::connect(&gw.url).await;
    assert_eq!(late.ok("ping", json!({})).await, json!({}));
    assert_eq!(
        early.ok("ping", json!({})).await,
        json!({}),
        "a session in use outlives the flood"
    );
    let evicted = metric(&gw, "manifold_sessions_evicted_total{limit=\"source\"}").await;
    assert!(evicted >= (FLOOD - 100) as f64, "evicted {evicted}");
    let (_, ready) = gw.readyz().await;
    assert!(
        ready["sessions"].as_u64().expect("sessions") <= 100,
        "{ready}"
    );
    assert!(gw.log().contains("to make room for a new one"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_never_used_expire_fast_and_used_ones_stay() {
    let gw = Gateway::start("upstreams: {}\nsessions: {unused_timeout: 1s}\n");
    let unused = Mcp::connect(&gw.url).await;
    let used = Mcp::connect(&gw.url).await;
    assert_eq!(used.ok("ping", json!({})).await, json!({}));
    wait_for(WAIT, "the unused session reaped", || async {
        let (ready_status, ready) = gw.readyz().await;
        assert_eq!(ready_status, 200);
        (ready["sessions"] == json!(1)).then_some(())
    })
    .await;
    let reply = unused
        .send(&json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}))
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(used.ok("ping", json!({})).await, json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_full_of_busy_sessions_is_refused_others_are_served() {
    let hex = support::sha256_hex;
    let (alice, bob) = ("alice-key-0123456789", "bob-key-0123456789ab");
    let gw = Gateway::start(&format!(
        "upstreams: {{}}\nauth:\n  api_keys:\n    - {{name: alice, sha256: \"{}\"}}\n    - {{name: bob, sha256: \"{}\"}}\nsessions: {{per_principal: 2}}\n",
        hex(alice),
        hex(bob)
    ));
    let as_key = |key: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-api-key", key.parse().expect("header"));
        support::init_tls();
        reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .build()
            .expect("client")
    };
    let connect = |key: &str| {
        let client = as_key(key);
        let url = gw.url.clone();
        async move { Mcp::connect_using(client, &url, "2025-11-25", json!({})).await }
    };
    // Two sessions, each reading its GET stream: busy, so neither may be evicted.
    let a1 = connect(alice).await;
    let a2 = connect(alice).await;
    let mut streams = Vec::new();
    for session in [&a1, &a2] {
        let stream = as_key(alice)
            .get(&gw.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session.session)
            .send()
            .await
            .expect("GET stream");
        assert_eq!(stream.status(), 200);
        streams.push(stream);
    }
    let resp = as_key(alice)
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .json(&initialize_body(1, "2025-11-25"))
        .send()
        .await
        .expect("POST");
    let reply = Reply::read(resp).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let body: Value = reply.json();
    assert_eq!(body["error"]["code"], json!(-32012));
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("too many sessions for this principal (at most 2"),
        "{msg}"
    );
    let b = connect(bob).await;
    assert_eq!(b.ok("ping", json!({})).await, json!({}));
    assert!(metric(&gw, "manifold_sessions_refused_total{limit=\"principal\"}").await >= 1.0);
}
