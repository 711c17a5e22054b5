//! What upstreams write cannot forge or flood the gateway's log: control characters in an
//! upstream's error text are escaped in the log, in `/readyz` and in -32010 errors, and a
//! stdio upstream's stderr is logged at a bounded rate, the rest counted.

mod support;

use std::time::Instant;

use serde_json::json;
use support::{Gateway, Mcp, WAIT, fixture_bin, http_upstream, wait_for};

/// The answer of the hostile upstream to every request: a newline and a line that looks like
/// the gateway's own audit log, a NUL, a raw 0xFF byte.
const FORGED: &[u8] = b"oops\n2031-01-01T00:00:00.000000Z  INFO manifold::audit: audit principal=admin tool=forged\0\xff end";

/// A Streamable HTTP "server" on loopback that answers everything with HTTP 500 and [`FORGED`].
async fn hostile_upstream() -> String {
    let app = axum::Router::new()
        .fallback(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, FORGED.to_vec()) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/mcp")
}

fn no_controls(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_error_cannot_forge_a_log_line() {
    let url = hostile_upstream().await;
    let gw = Gateway::start(&format!("upstreams:\n{}", http_upstream("evil", &url)));
    let error = wait_for(WAIT, "evil to be reported down", || async {
        let (_, body) = gw.readyz().await;
        (body["upstreams"]["evil"]["status"] == "down")
            .then(|| {
                body["upstreams"]["evil"]["error"]
                    .as_str()
                    .map(str::to_owned)
            })
            .flatten()
    })
    .await;
    assert!(error.contains("oops\\n2031-01-01"), "/readyz: {error}");
    assert!(error.contains("forged\\0"), "/readyz: {error}");
    assert!(no_controls(&error), "/readyz: {error:?}");

    let client = Mcp::connect(&gw.url).await;
    let refused = client
        .call("evil__anything", json!({}))
        .await
        .expect_err("evil is down");
    assert_eq!(refused["code"], json!(-32010), "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("oops\\n2031-01-01"), "{message}");
    assert!(no_controls(message), "{message:?}");

    // The error is logged (read as text only once it is there).
    gw.log_with("oops\\n2031-01-01").await;
    let log = std::fs::read(gw.dir.path().join("gateway.log")).expect("log");
    assert!(!log.contains(&0), "a NUL reached the log");
    let log = String::from_utf8_lossy(&log);
    assert!(
        !log.lines().any(|l| l.starts_with("2031-01-01")),
        "a forged line:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_stderr_is_cut_and_counted() {
    const LINES: u64 = 200_000;
    let script = format!(
        "seq 1 {LINES} >&2; exec {} --protocol handshake --name noisy",
        fixture_bin().display()
    );
    let started = Instant::now();
    let mut gw = Gateway::start(&format!(
        "upstreams:\n  noisy:\n    command: \"sh\"\n    args: [\"-c\", {script:?}]\n"
    ));
    gw.wait_ready().await;
    // Stopping the upstream ends its stderr: the last count is logged then.
    gw.stop();
    let elapsed = started.elapsed().as_secs();
    let log = gw.log();
    let mut numbers = 0u64;
    let mut dropped = 0u64;
    for line in log.lines() {
        let Some((_, rest)) = line.split_once("manifold::upstream::stderr: ") else {
            continue;
        };
        if let Some(message) = rest.strip_suffix(" upstream=noisy")
            && message.parse::<u64>().is_ok()
        {
            numbers += 1;
        }
        if let Some((_, count)) = rest.split_once("dropped=") {
            dropped += count.trim().parse::<u64>().expect("a count");
        }
    }
    // manifold::upstream::stdio: a burst of 200, then 50 lines a second.
    let allowed = 200 + 50 * (elapsed + 1);
    assert!(
        numbers <= allowed,
        "{numbers} stderr lines logged in {elapsed} s (at most {allowed})"
    );
    assert!(numbers > 0, "stderr is still logged:\n{log}");
    // Every line is either logged or counted (the fixture's own few lines may be counted too).
    assert!(
        numbers + dropped >= LINES && numbers + dropped <= LINES + 20,
        "{numbers} logged + {dropped} dropped"
    );
}
