//! An upstream that keeps failing is cut off (its circuit opens: calls fail fast with the
//! reason, nothing is sent) and probed again after a cooldown; `/readyz` and `/metrics`
//! show the circuit.

mod support;

use serde_json::json;
use support::{Gateway, HttpFixture, Mcp, WAIT, wait_for};

fn config(url: &str) -> String {
    format!(
        "upstreams:\n  flaky:\n    url: {url:?}\n    timeout: 5s\n    circuit:\n      failures: 3\n      cooldown: 2s\n"
    )
}

/// server-everything (the TypeScript reference server) over Streamable HTTP on `port`,
/// from `.interop/`; killed when dropped.
struct Everything(std::process::Child);

impl Everything {
    fn start(port: u16) -> Everything {
        let child = std::process::Command::new("node")
            .arg(support::everything_script())
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn node");
        Everything(child)
    }
}

impl Drop for Everything {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One upstream's whole cycle: served, then down (the circuit opens after three connection
/// failures: calls fail at once naming it, `/readyz` and `/metrics` show it), then back on
/// the same port (after the cooldown a probe goes through and closes it). `up` is the
/// running server, `restart` starts it again; `echo` is a tool and the argument that makes
/// it answer with text containing what it was sent.
async fn opens_and_probes_back<U, R>(
    url: &str,
    up: U,
    restart: impl FnOnce() -> R,
    echo: (&str, &str),
) {
    let (tool, key) = echo;
    let gw = Gateway::start(&config(url));
    gw.wait_upstreams_ready().await;
    let body = gw.wait_ready().await;
    assert_eq!(body["upstreams"]["flaky"]["circuit"], "closed", "{body}");
    let c = Mcp::connect(&gw.url).await;
    let said = c.call_text(tool, json!({ key: "hi" })).await;
    assert!(said.contains("hi"), "{said}");

    drop(up);
    // Connection failures in a row; the circuit opens after three of them.
    let error = wait_for(WAIT, "the circuit to open", || async {
        match c.call(tool, json!({ key: "hi" })).await {
            Err(e) if e["message"].as_str()?.contains("circuit open") => Some(e),
            Err(e) => {
                assert_eq!(e["code"], -32010, "a connection failure: {e}");
                None
            }
            Ok(r) => panic!("answered while down: {r}"),
        }
    })
    .await;
    assert_eq!(error["code"], -32010, "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("flaky") && message.contains("3 failures in a row"),
        "the refusal names the upstream and why: {message}"
    );
    let (_, ready) = gw.readyz().await;
    assert!(
        ["open", "half_open"].contains(
            &ready["upstreams"]["flaky"]["circuit"]
                .as_str()
                .unwrap_or("")
        ),
        "{ready}"
    );
    let text = gw.metrics().await;
    assert!(
        text.contains("manifold_upstream_circuit_trips_total{upstream=\"flaky\"} 1"),
        "{text}"
    );

    // Back on the same port: after the cooldown a probe goes through and closes it.
    let _back = restart();
    wait_for(WAIT, "a probe to close the circuit", || async {
        c.call(tool, json!({ key: "back" }))
            .await
            .ok()
            .filter(|r| support::first_text(r).contains("back"))
    })
    .await;
    let (_, ready) = gw.readyz().await;
    assert_eq!(ready["upstreams"]["flaky"]["circuit"], "closed", "{ready}");
    let text = gw.metrics().await;
    assert!(
        text.contains("manifold_upstream_circuit_open{upstream=\"flaky\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn an_upstream_that_keeps_failing_is_cut_off_then_probed_back() {
    let fixture = HttpFixture::start("flaky", &[]);
    let port = fixture.port();
    let url = fixture.url.clone();
    let restart = move || HttpFixture::start_on("flaky", port, &[]);
    opens_and_probes_back(&url, fixture, restart, ("flaky__echo", "text")).await;
}

#[tokio::test]
async fn server_everything_that_keeps_failing_is_cut_off_then_probed_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let server = Everything::start(port);
    let url = format!("http://127.0.0.1:{port}/mcp");
    // Wait (bounded) for node to listen before the gateway connects.
    wait_for(WAIT, "server-everything to listen", || async {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    })
    .await;
    // The gateway probes after its cooldown, whenever node is up by then.
    let restart = move || Everything::start(port);
    opens_and_probes_back(&url, server, restart, ("flaky__echo", "message")).await;
}

#[tokio::test]
async fn tool_errors_do_not_open_the_circuit() {
    let fixture = HttpFixture::start("flaky", &[]);
    let gw = Gateway::start(&config(&fixture.url));
    gw.wait_upstreams_ready().await;
    let c = Mcp::connect(&gw.url).await;
    for _ in 0..6 {
        // A tool error (`isError`) is an answer, not a failure to reach the upstream.
        let r = c.call("flaky__echo", json!({})).await.expect("an answer");
        assert_eq!(r["isError"], true, "{r}");
    }
    let (_, ready) = gw.readyz().await;
    assert_eq!(ready["upstreams"]["flaky"]["circuit"], "closed", "{ready}");
    assert_eq!(
        c.call_text("flaky__echo", json!({"text": "ok"})).await,
        "ok"
    );
}

/// A proxy in front of `upstream` that closes, without answering, the first connection on
/// which a `tools/list` request is sent: the request reached nobody. Returns its port.
async fn drop_first_listing(upstream: u16) -> u16 {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let port = listener.local_addr().expect("proxy address").port();
    let dropped = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let dropped = dropped.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let answers = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match from_client.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let listing = buf[..n].windows(10).any(|w| w == b"tools/list");
                    if listing && !dropped.swap(true, Ordering::SeqCst) {
                        // Gone before the server saw a byte of it.
                        answers.abort();
                        return;
                    }
                    if to_server.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                answers.abort();
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_loses_its_connection_is_sent_again_not_the_whole_upstream() {
    let fixture = HttpFixture::start("lister", &[]);
    let proxy = drop_first_listing(fixture.port()).await;
    let url = fixture
        .url
        .replace(&format!(":{}/", fixture.port()), &format!(":{proxy}/"));
    let gw = Gateway::start(&format!("upstreams:\n  lister:\n    url: {url:?}\n"));
    gw.wait_upstreams_ready().await;
    let c = Mcp::connect(&gw.url).await;
    let tools = c.list_keys("tools/list", "tools", "name").await;
    assert!(tools.contains(&"lister__whoami".to_owned()), "{tools:?}");
    let log = gw.log();
    // The listing was sent again on a new connection; the upstream was never given up on.
    assert!(
        log.contains("Listing failed to reach the upstream; sending it again"),
        "{log}"
    );
    assert!(!log.contains("Upstream unavailable"), "{log}");
}
