//! What operators see: `/metrics` after known traffic, one audit line per call with its
//! arguments redacted, and per-tool timeouts that cancel the upstream request.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Gateway, Mcp, WAIT, Wiretap, fixture_bin, stdio_fixture, wait_for};

async fn scrape(gw: &Gateway) -> String {
    let resp = support::http_client()
        .get(format!("{}/metrics", gw.base))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    resp.text().await.expect("metrics body")
}

/// The value of the sample `name{labels}` (labels exactly as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_traffic_with_bounded_labels() {
    // `echo` is hidden from HTTP clients (anonymous) by policy.
    let policy =
        "policy:\n  rules:\n    - {who: {subjects: [anonymous]}, effect: deny, tools: [echo]}\n";
    let gw = Gateway::start(&format!(
        "{policy}upstreams:\n{}",
        stdio_fixture("alpha", &[])
    ));
    gw.wait_upstreams_ready().await;
    let c = Mcp::connect(&gw.url).await;
    c.err(
        "tools/call",
        json!({"name": "alpha__echo", "arguments": {"text": "x"}}),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(c.call_text("alpha__whoami", json!({})).await, "alpha");
    }
    c.err(
        "tools/call",
        json!({"name": "nope__nothing-here-1", "arguments": {}}),
    )
    .await;
    c.err(
        "tools/call",
        json!({"name": "nope__nothing-here-2", "arguments": {}}),
    )
    .await;
    c.ok("tools/list", json!({})).await;
    c.err("made/up", json!({})).await;

    let text = scrape(&gw).await;
    let at = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} in\n{text}"));
    assert_eq!(
        at(r#"manifold_requests_total{method="tools/call",upstream="alpha",outcome="ok"}"#),
        3.0
    );
    assert_eq!(
        at(r#"manifold_tool_calls_total{tool="alpha__whoami",upstream="alpha",outcome="ok"}"#),
        3.0
    );
    // Names a client made up share one label value: the label set stays bounded. A hidden
    // tool counts the same, so /metrics does not reveal that it exists.
    assert_eq!(
        at(r#"manifold_tool_calls_total{tool="unknown",upstream="unknown",outcome="invalid"}"#),
        3.0
    );
    assert!(!text.contains("nothing-here"), "{text}");
    assert!(!text.contains("alpha__echo"), "{text}");
    assert_eq!(
        at(r#"manifold_requests_total{method="tools/list",upstream="",outcome="ok"}"#),
        1.0
    );
    assert_eq!(
        at(r#"manifold_requests_total{method="other",upstream="",outcome="invalid"}"#),
        1.0
    );
    assert_eq!(
        at(r#"manifold_request_duration_seconds_count{method="tools/call",upstream="alpha"}"#),
        3.0
    );
    assert_eq!(at("manifold_sessions_active"), 1.0);
    assert_eq!(at(r#"manifold_upstream_up{upstream="alpha"}"#), 1.0);
    assert_eq!(
        at(r#"manifold_upstream_restarts_total{upstream="alpha"}"#),
        0.0
    );
    assert!(!text.contains(&c.session), "no session ids in labels");
    // A page on a rebinding DNS name cannot read it.
    let rebound = support::http_client()
        .get(format!("{}/metrics", gw.base))
        .header("host", "attacker.example:8080")
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(rebound.status().as_u16(), 421);

    // A crash shows as a restart, and the upstream is back up afterwards.
    let _ = c.call("alpha__crash", json!({})).await;
    wait_for(WAIT, "the restart counted and alpha up again", || async {
        let text = scrape(&gw).await;
        let restarts = sample(
            &text,
            r#"manifold_upstream_restarts_total{upstream="alpha"}"#,
        );
        let up = sample(&text, r#"manifold_upstream_up{upstream="alpha"}"#);
        (restarts == Some(1.0) && up == Some(1.0)).then_some(())
    })
    .await;
}

/// A gateway in front of the stdio fixture `alpha`, logging JSON lines.
async fn json_logging_alpha() -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!("upstreams:\n{}", stdio_fixture("alpha", &[])),
    )
    .unwrap();
    let gw = Gateway::start_with(dir, &config, &[("MANIFOLD_LOG_FORMAT", "json")]);
    gw.wait_upstreams_ready().await;
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_leaves_one_audit_line_with_arguments_redacted() {
    let gw = json_logging_alpha().await;
    let c = Mcp::connect(&gw.url).await;
    let echoed = c
        .call_text("alpha__echo", json!({"text": "hunter2-secret"}))
        .await;
    assert!(echoed.contains("hunter2-secret"), "{echoed}");
    c.err(
        "tools/call",
        json!({"name": "alpha__missing", "arguments": {}}),
    )
    .await;
    c.ok("tools/list", json!({})).await;

    let audits = wait_for(WAIT, "two audit lines", || async {
        let lines: Vec<Value> = gw
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "manifold::audit")
            .collect();
        (lines.len() >= 2).then_some(lines)
    })
    .await;
    assert_eq!(
        audits.len(),
        2,
        "one line per call, none for listings: {audits:?}"
    );
    // Told apart by target: each runtime thread writes its lines when it goes idle, so two
    // calls' lines can land in either order.
    let of = |target: &str| {
        audits
            .iter()
            .map(|a| &a["fields"])
            .find(|f| f["target"] == target)
            .unwrap_or_else(|| panic!("no audit line for {target}: {audits:?}"))
    };
    let ok = of("alpha__echo");
    assert_eq!(ok["principal"], "anonymous", "{ok}");
    assert_eq!(ok["method"], "tools/call");
    assert_eq!(ok["target"], "alpha__echo");
    assert_eq!(ok["upstream"], "alpha");
    assert_eq!(ok["outcome"], "ok");
    assert_eq!(ok["arguments"], "{text}");
    assert!(ok["duration_ms"].as_f64().is_some(), "{ok}");
    let failed = of("alpha__missing");
    assert_eq!(failed["outcome"], "invalid");
    assert_eq!(failed["error_code"], -32602);
    assert!(
        !gw.log().contains("hunter2-secret"),
        "argument values never reach the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_tool_timeout_fails_the_call_and_cancels_it_upstream() {
    let tap = Wiretap::new();
    let upstream = tap.upstream_yaml("alpha", &fixture_bin(), &["--name", "alpha"]);
    // The tool-specific timeout applies to `slow` only; `whoami` keeps the upstream's 60 s.
    let yaml = format!("upstreams:\n{upstream}    tool_timeouts:\n      \"sl*\": 300ms\n");
    let gw = Gateway::start(&yaml);
    gw.wait_upstreams_ready().await;
    let c = Mcp::connect(&gw.url).await;

    let started = std::time::Instant::now();
    let err = c
        .call("alpha__slow", json!({"ms": 20_000}))
        .await
        .expect_err("the call times out");
    assert_eq!(err["code"], -32011, "{err}");
    assert!(
        err["message"].as_str().unwrap_or("").contains("300ms"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "not the 20 s call"
    );
    let upstream_id = wait_for(WAIT, "the call at the upstream", || async {
        tap.sent()
            .into_iter()
            .find(|m| m["method"] == "tools/call" && m["params"]["name"] == "slow")
            .map(|m| m["id"].clone())
    })
    .await;
    wait_for(WAIT, "notifications/cancelled at the upstream", || async {
        tap.sent()
            .into_iter()
            .any(|m| {
                m["method"] == "notifications/cancelled" && m["params"]["requestId"] == upstream_id
            })
            .then_some(())
    })
    .await;
    assert_eq!(c.call_text("alpha__whoami", json!({})).await, "alpha");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_is_audited_and_counted_as_cancelled() {
    let gw = json_logging_alpha().await;
    let c = Mcp::connect(&gw.url).await;
    let params = json!({"name": "alpha__slow", "arguments": {"ms": 20_000},
                        "_meta": {"progressToken": "p"}});
    let (id, resp) = c.stream_request("tools/call", params).await;
    let mut stream = support::SseStream::new(resp);
    let first = stream.next(WAIT).await.expect("a progress event");
    assert_eq!(first["method"], "notifications/progress", "{first}");
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": id}});
    assert_eq!(c.send(&cancel).await.status, 202);

    let line = wait_for(WAIT, "the audit line of the cancelled call", || async {
        gw.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["target"] == "manifold::audit")
    })
    .await;
    assert_eq!(line["fields"]["outcome"], "cancelled", "{line}");
    assert_eq!(line["fields"]["error_code"], -32013, "{line}");
    let text = scrape(&gw).await;
    assert_eq!(
        sample(
            &text,
            r#"manifold_requests_total{method="tools/call",upstream="alpha",outcome="cancelled"}"#
        ),
        Some(1.0),
        "{text}"
    );
}
