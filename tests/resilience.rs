//! Failures stay prompt and contained: a crashing upstream fails the calls in flight to it at
//! once and is restarted, an upstream that cannot start is reported while the others serve,
//! upstream stderr reaches the gateway log, and SIGTERM drains requests and stops children.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{
    Gateway, Mcp, SseStream, WAIT, children_of, cmdline, demo_upstream, everything_upstream,
    is_running, stdio_fixture, stdio_fixture_as, wait_for, within,
};

/// Starts `alpha__slow` with a progress token and returns its answer stream once the first
/// progress notification arrived, i.e. once the call is certainly running upstream.
async fn slow_call_in_flight(c: &Mcp, ms: u64, token: &str) -> (u64, SseStream) {
    let params =
        json!({"name": "alpha__slow", "arguments": {"ms": ms}, "_meta": {"progressToken": token}});
    let (id, resp) = c.stream_request("tools/call", params).await;
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        ct.starts_with("text/event-stream"),
        "progress makes the answer a stream, got {ct}"
    );
    let mut stream = SseStream::new(resp);
    let first = stream
        .next(WAIT)
        .await
        .expect("a first message on the answer stream");
    assert_eq!(first["method"], "notifications/progress", "{first}");
    (id, stream)
}

fn is_response(id: u64) -> impl Fn(&Value) -> bool {
    move |m: &Value| {
        m.get("id") == Some(&json!(id)) && (m.get("result").is_some() || m.get("error").is_some())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_fails_calls_in_flight_at_once_and_the_upstream_is_restarted() {
    let yaml = format!(
        "upstreams:\n{}{}",
        stdio_fixture("alpha", &[]),
        stdio_fixture("beta", &[])
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let slow_client = Mcp::connect(&gw.url).await;
    let other = Mcp::connect(&gw.url).await;
    wait_for(WAIT, "alpha and beta listed", || async {
        let names = other.list_keys("tools/list", "tools", "name").await;
        (names.contains(&"alpha__crash".to_owned()) && names.contains(&"beta__whoami".to_owned()))
            .then_some(())
    })
    .await;

    let (id, mut slow) = slow_call_in_flight(&slow_client, 10_000, "slow-1").await;

    // From a second client: make alpha exit without answering.
    let crash = other
        .call("alpha__crash", json!({}))
        .await
        .expect_err("the crash call gets no answer");
    assert_eq!(crash["code"], json!(-32010), "{crash}");

    // The slow call fails promptly (well before its 10 s) with -32010 naming alpha.
    let answer = slow
        .next_matching(Duration::from_secs(5), is_response(id))
        .await;
    let answer = answer
        .unwrap_or_else(|| panic!("the slow call did not fail within 5 s; log:\n{}", gw.log()));
    let error = &answer["error"];
    assert_eq!(error["code"], json!(-32010), "{answer}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("alpha"),
        "the error names the upstream: {message}"
    );
    assert!(
        message.contains("exit") && message.contains('3'),
        "the error names the exit status: {message}"
    );
    assert_eq!(error["data"]["upstream"], "alpha", "{answer}");
    assert_eq!(error["data"]["source"], "gateway", "{answer}");

    // beta is untouched.
    assert_eq!(other.call_text("beta__whoami", json!({})).await, "beta");

    // The supervisor restarts alpha.
    let back = wait_for(Duration::from_secs(20), "alpha to be restarted", || async {
        match other.call("alpha__whoami", json!({})).await {
            Ok(r) if r["isError"] != json!(true) => Some(support::first_text(&r)),
            _ => None,
        }
    })
    .await;
    assert_eq!(back, "alpha");
    assert_eq!(
        slow_client.call_text("beta__whoami", json!({})).await,
        "beta"
    );
    assert_eq!(
        slow_client.call_text("alpha__tool_0", json!({})).await,
        "alpha:tool_0"
    );
    let (status, body) = gw.readyz().await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_cannot_start_is_reported_while_the_others_serve() {
    let missing = "/nonexistent/manifold-tests/no-such-server";
    let yaml = format!(
        "upstreams:\n{}  broken:\n    command: {missing:?}\n",
        stdio_fixture("alpha", &[])
    );
    let gw = Gateway::start(&yaml);
    let body = wait_for(WAIT, "alpha ready and broken down", || async {
        let (status, body) = gw.readyz().await;
        let up = &body["upstreams"];
        (status == 503 && up["alpha"]["status"] == "ready" && up["broken"]["status"] == "down")
            .then_some(body)
    })
    .await;
    assert_eq!(body["ready"], json!(false));
    let error = body["upstreams"]["broken"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains(missing),
        "/readyz says why broken is down: {body}"
    );

    let c = Mcp::connect(&gw.url).await;
    let listed = wait_for(WAIT, "alpha listed", || async {
        let names = c.list_keys("tools/list", "tools", "name").await;
        names.contains(&"alpha__whoami".to_owned()).then_some(names)
    })
    .await;
    assert!(
        listed.iter().all(|n| n.starts_with("alpha__")),
        "{listed:?}"
    );
    assert_eq!(c.call_text("alpha__whoami", json!({})).await, "alpha");

    // A request addressed to the broken upstream says it is unavailable.
    let e = c
        .call("broken__whoami", json!({}))
        .await
        .expect_err("broken is down");
    assert_eq!(
        e["code"],
        json!(-32010),
        "a request to a down upstream is -32010, not an unknown tool: {e}"
    );
    assert!(
        e["message"].as_str().unwrap_or_default().contains("broken"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_stderr_reaches_the_log_tagged_with_the_upstream_name() {
    // The upstream is called gamma, the fixture inside calls itself zeta: the tag must come
    // from the gateway, not from the text.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!("upstreams:\n{}", stdio_fixture_as("gamma", "zeta", &[])),
    )
    .expect("config");
    let gw = Gateway::start_with(dir, &config, &[("MANIFOLD_LOG_FORMAT", "json")]);
    gw.wait_ready().await;

    let line = wait_for(WAIT, "the fixture's stderr line in the log", || async {
        gw.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("fixture zeta started"))
            })
    })
    .await;
    assert_eq!(line["fields"]["upstream"], "gamma", "{line}");
}

/// SIGTERM drains: `/readyz` turns 503 at once while the listener still answers, a new
/// session is refused with 503, the GET stream ends, the call in flight (`tool`, with a
/// progress token so its answer is a stream) is answered, and the exit status is 0.
async fn sigterm_drains(upstreams: &str, tool: &str, arguments: Value, done: &str) {
    let yaml = format!("shutdown_grace: 20s\nupstreams:\n{upstreams}");
    let mut gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let c = Mcp::connect(&gw.url).await;
    let mut get_stream = c.open_stream().await.expect("GET stream");

    let params = json!({"name": tool, "arguments": arguments, "_meta": {"progressToken": "drain"}});
    let (id, resp) = c.stream_request("tools/call", params).await;
    assert_eq!(resp.status().as_u16(), 200);
    let mut slow = SseStream::new(resp);
    let first = slow.next(WAIT).await.expect("a first progress message");
    assert_eq!(first["method"], "notifications/progress", "{first}");
    support::signal(gw.pid().expect("pid"), "TERM");

    let (status, body) = wait_for(WAIT, "/readyz to turn 503", || async {
        let (status, body) = gw.readyz().await;
        (status == 503).then_some((status, body))
    })
    .await;
    assert_eq!((status, &body["draining"]), (503, &json!(true)), "{body}");
    let refused = support::http_client()
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&support::initialize_body(1, "2025-11-25"))
        .send()
        .await
        .expect("POST initialize while draining");
    assert_eq!(refused.status().as_u16(), 503);
    let text = refused.text().await.unwrap_or_default();
    assert!(text.contains("shutting down"), "{text}");

    let answer = slow
        .next_matching(WAIT, is_response(id))
        .await
        .expect("the call in flight is answered");
    let answered = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(answered.contains(done), "{answer}");
    // The GET stream ends rather than holding the gateway open.
    within(WAIT, "GET stream end", async {
        while get_stream.next(WAIT).await.is_some() {}
    })
    .await;

    let status = gw.stop().expect("gateway exit status");
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        gw.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero_in_front_of_the_fixture() {
    sigterm_drains(
        &stdio_fixture("alpha", &[]),
        "alpha__slow",
        json!({"ms": 1500}),
        "done after 1500 ms",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero_in_front_of_server_everything() {
    sigterm_drains(
        &everything_upstream(),
        "everything__trigger-long-running-operation",
        json!({"duration": 2, "steps": 4}),
        "Long running operation completed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_every_stdio_child_before_the_gateway_exits() {
    let yaml = format!(
        "upstreams:\n{}{}{}",
        stdio_fixture("alpha", &[]),
        stdio_fixture("beta", &[]),
        demo_upstream("demo")
    );
    let mut gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let pid = gw.pid().expect("pid");
    let children = children_of(pid);
    let upstreams: Vec<u32> = children
        .iter()
        .copied()
        .filter(|&c| {
            let cmd = cmdline(c);
            cmd.contains("fixture_server") || cmd.ends_with(" demo")
        })
        .collect();
    // Each of the three speaks both eras, so each runs as two processes (one per era).
    assert_eq!(
        upstreams.len(),
        6,
        "six stdio children: {:?}",
        children.iter().map(|&c| cmdline(c)).collect::<Vec<_>>()
    );

    let status = gw.stop().expect("gateway exit status");
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        gw.log()
    );
    for child in upstreams {
        wait_for(Duration::from_secs(10), "the child to be gone", || async {
            (!is_running(child)).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outliving_the_upstream_timeout_fails_with_32011() {
    let yaml = format!(
        "upstreams:\n{}    timeout: 1s\n",
        stdio_fixture("alpha", &[])
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let c = Mcp::connect(&gw.url).await;
    wait_for(WAIT, "alpha listed", || async {
        c.list_keys("tools/list", "tools", "name")
            .await
            .contains(&"alpha__slow".to_owned())
            .then_some(())
    })
    .await;

    let e = within(
        WAIT,
        "the timed-out call",
        c.call("alpha__slow", json!({"ms": 20_000})),
    )
    .await
    .expect_err("timeout");
    assert_eq!(e["code"], json!(-32011), "{e}");
    assert!(
        e["message"].as_str().unwrap_or_default().contains("alpha"),
        "{e}"
    );
    assert_eq!(e["data"]["upstream"], "alpha");
    assert_eq!(e["data"]["source"], "gateway");
    // The upstream itself is fine and keeps serving.
    assert_eq!(c.call_text("alpha__whoami", json!({})).await, "alpha");
    assert_eq!(
        c.call_text("alpha__slow", json!({"ms": 100})).await,
        "done after 100 ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_upstream_that_restarts_is_connected_again() {
    let gamma = support::HttpFixture::start("gamma", &[]);
    let port = gamma.port();
    let yaml = format!(
        "upstreams:\n{}{}",
        stdio_fixture("alpha", &[]),
        support::http_upstream("gamma", &gamma.url)
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let c = Mcp::connect(&gw.url).await;
    wait_for(WAIT, "gamma listed", || async {
        c.list_keys("tools/list", "tools", "name")
            .await
            .contains(&"gamma__whoami".to_owned())
            .then_some(())
    })
    .await;
    assert_eq!(c.call_text("gamma__whoami", json!({})).await, "gamma");

    // A new process on the same port knows nothing of the gateway's session.
    drop(gamma);
    let _gamma = support::HttpFixture::start_on("gamma", port, &[]);
    let back = wait_for(Duration::from_secs(25), "gamma to answer again", || async {
        match c.call("gamma__whoami", json!({})).await {
            Ok(r) if r["isError"] != json!(true) => Some(support::first_text(&r)),
            _ => None,
        }
    })
    .await;
    assert_eq!(back, "gamma");
    assert_eq!(c.call_text("alpha__whoami", json!({})).await, "alpha");
    let body = gw.wait_ready().await;
    assert_eq!(body["upstreams"]["gamma"]["status"], "ready");
}
