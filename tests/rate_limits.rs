//! The `rate_limits` section and `max_concurrency`: limits reached (JSON-RPC -32015, HTTP 429
//! with `Retry-After`) against the real binary, and reached-then-recovered in-process with a
//! clock the test advances, so no test sleeps its way past a refill.

mod support;

use std::time::Duration;

use manifold::pipeline::Hooks;
use manifold::pipeline::rate_limit::FakeRelativeClock;
use serde_json::{Value, json};
use support::{
    Gateway, Mcp, Reply, StdioClient, WAIT, http_client, initialize_body, stdio_fixture,
};

fn call_body(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

/// Calls `tool` with raw HTTP so the status and headers can be looked at.
async fn raw_call(http: &Mcp, tool: &str, args: Value) -> Reply {
    http.send(&call_body(http.next_id(), tool, args)).await
}

/// A 429 whose `Retry-After` agrees with the error's `retryAfterSeconds`; returns the error.
fn assert_limited(reply: &Reply, limit: &str) -> Value {
    assert_eq!(reply.status, 429, "{}", reply.body);
    let error = reply.json()["error"].clone();
    assert_eq!(error["code"], -32015, "{error}");
    assert_eq!(error["data"]["limit"], limit, "{error}");
    let seconds = error["data"]["retryAfterSeconds"]
        .as_u64()
        .expect("retryAfterSeconds");
    assert!(seconds > 0, "{error}");
    assert!(
        error["data"]["retryAfterMs"]
            .as_u64()
            .is_some_and(|ms| ms > 0),
        "{error}"
    );
    let header: u64 = reply
        .header("retry-after")
        .expect("Retry-After header")
        .parse()
        .expect("Retry-After in seconds");
    assert_eq!(header, seconds);
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_limit_answers_429_with_retry_after_and_leaves_other_tools_alone() {
    let gw = Gateway::start(&format!(
        "upstreams:\n{}rate_limits:\n  per_tool: {{\"alpha__echo\": {{rate: 1/h, burst: 2}}}}\n",
        stdio_fixture("alpha", &[])
    ));
    gw.wait_ready().await;
    let http = Mcp::connect(&gw.url).await;
    for _ in 0..2 {
        assert_eq!(
            http.call_text("alpha__echo", json!({"text": "x"})).await,
            "x"
        );
    }
    let reply = raw_call(&http, "alpha__echo", json!({"text": "x"})).await;
    let error = assert_limited(&reply, "per_tool");
    // The burst is spent and one call comes back per hour: about an hour to wait.
    let seconds = error["data"]["retryAfterSeconds"].as_u64().unwrap();
    assert!((3000..=3600).contains(&seconds), "{error}");
    // Other tools are not limited by echo's bucket. It is per tool, not per session: a
    // second session is refused echo too.
    assert_eq!(http.call_text("alpha__whoami", json!({})).await, "alpha");
    let other = Mcp::connect(&gw.url).await;
    assert_limited(
        &raw_call(&other, "alpha__echo", json!({"text": "x"})).await,
        "per_tool",
    );
    assert_eq!(other.call_text("alpha__whoami", json!({})).await, "alpha");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_limit_refuses_one_principal_and_serves_another() {
    let yaml = format!(
        "upstreams:\n{}rate_limits:\n  per_principal: {{rate: 1/h, burst: 4}}\n",
        stdio_fixture("alpha", &[])
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    // anonymous: initialize (1), tools/list (2), two calls (3, 4), then refused.
    let http = Mcp::connect(&gw.url).await;
    http.ok("tools/list", json!({})).await;
    for _ in 0..2 {
        assert_eq!(
            http.call_text("alpha__echo", json!({"text": "x"})).await,
            "x"
        );
    }
    let error = assert_limited(
        &raw_call(&http, "alpha__whoami", json!({})).await,
        "per_principal",
    );
    assert!(
        error["message"].as_str().unwrap().contains("anonymous"),
        "{error}"
    );
    // Every request counts, so the same principal cannot even open a new session.
    let reply = Reply::read(
        http_client()
            .post(&gw.url)
            .header("content-type", "application/json")
            .header("accept", support::ACCEPT_BOTH)
            .json(&initialize_body(1, support::VERSION))
            .send()
            .await
            .expect("POST initialize"),
    )
    .await;
    assert_limited(&reply, "per_principal");
    // The stdio face's principal (local) has its own bucket.
    let mut stdio = StdioClient::start(&yaml).await;
    stdio
        .request("tools/list", json!({}))
        .await
        .expect("tools/list");
    let result = stdio
        .request(
            "tools/call",
            json!({"name": "alpha__whoami", "arguments": {}}),
        )
        .await
        .expect("whoami over stdio");
    assert_eq!(support::first_text(&result), "alpha");
}

/// The gateway in this process, on a loopback port, with a rate-limit clock the test holds.
struct InProcess {
    url: String,
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    async fn start(yaml: &str, clock: &FakeRelativeClock) -> InProcess {
        let config = manifold::config::from_yaml_str(yaml, &|_| None).expect("config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let hooks = Hooks {
            rate_limit_clock: Some(clock.clone()),
        };
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(manifold::serve_with(config, listener, shutdown, hooks));
        let gw = InProcess {
            url: format!("{base}/mcp"),
            base,
            stop: Some(stop),
            task,
        };
        support::wait_for(WAIT, "the in-process gateway to be ready", || async {
            let resp = http_client()
                .get(format!("{}/readyz", gw.base))
                .send()
                .await
                .ok()?;
            (resp.status() == 200).then_some(())
        })
        .await;
        gw
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        support::within(WAIT, "the in-process gateway to stop", self.task)
            .await
            .expect("serve task")
            .expect("serve");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_reached_and_recover_as_the_clock_advances() {
    let clock = FakeRelativeClock::default();
    let yaml = format!(
        "upstreams:\n{}rate_limits:\n  per_tool: {{\"alpha__echo\": {{rate: 1/m, burst: 2}}}}\n  per_upstream: {{alpha: {{rate: 10/s, burst: 5}}}}\n",
        stdio_fixture("alpha", &[])
    );
    let gw = InProcess::start(&yaml, &clock).await;
    let http = Mcp::connect(&gw.url).await;

    // The tool's burst of two, then a refusal: one call per minute comes back.
    for _ in 0..2 {
        assert_eq!(
            http.call_text("alpha__echo", json!({"text": "x"})).await,
            "x"
        );
    }
    let error = assert_limited(
        &raw_call(&http, "alpha__echo", json!({"text": "x"})).await,
        "per_tool",
    );
    assert_eq!(error["data"]["retryAfterSeconds"], 60, "{error}");
    assert_eq!(error["data"]["retryAfterMs"], 60_000, "{error}");

    // Not yet: one second short, and the answer says so.
    clock.advance(Duration::from_secs(59));
    let error = assert_limited(
        &raw_call(&http, "alpha__echo", json!({"text": "x"})).await,
        "per_tool",
    );
    assert_eq!(error["data"]["retryAfterMs"], 1_000, "{error}");

    // Recovered: one call, then limited again.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        http.call_text("alpha__echo", json!({"text": "y"})).await,
        "y"
    );
    assert_limited(
        &raw_call(&http, "alpha__echo", json!({"text": "x"})).await,
        "per_tool",
    );

    // The upstream's bucket, full again after that minute: one echo went through and the
    // refused one spent nothing of it (the tool is checked first), so 4 of 5 remain.
    for _ in 0..4 {
        assert_eq!(http.call_text("alpha__whoami", json!({})).await, "alpha");
    }
    assert_limited(
        &raw_call(&http, "alpha__whoami", json!({})).await,
        "per_upstream",
    );
    clock.advance(Duration::from_millis(100));
    assert_eq!(http.call_text("alpha__whoami", json!({})).await, "alpha");
    // Listings are not routed calls: never limited by per-tool or per-upstream buckets.
    http.ok("tools/list", json!({})).await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_upstream_makes_new_calls_wait_then_fail_without_dropping_the_admitted_one() {
    let gw = Gateway::start(&format!(
        "upstreams:\n{}    max_concurrency: 1\n    timeout: 1s\n    tool_timeouts: {{slow: 60s}}\n",
        stdio_fixture("alpha", &[])
    ));
    gw.wait_ready().await;
    let http = Mcp::connect(&gw.url).await;
    // The first call takes the only slot at once; its stream opens a second later
    // (`first_event_wait`: it has no event before its result).
    let (id, slow) = http
        .stream_request(
            "tools/call",
            json!({"name": "alpha__slow", "arguments": {"ms": 6000}}),
        )
        .await;
    assert_eq!(slow.status(), 200);
    // A second call waits for a slot as long as its timeout (1 s), then gives up.
    let busy = http
        .call("alpha__echo", json!({"text": "x"}))
        .await
        .unwrap_err();
    assert_eq!(busy["code"], -32012, "{busy}");
    assert_eq!(busy["data"]["limit"], "concurrency", "{busy}");
    assert_eq!(busy["data"]["upstream"], "alpha", "{busy}");
    // The admitted call was not dropped: it finishes with its result.
    let reply = Reply::read(slow).await;
    let response = reply
        .messages()
        .into_iter()
        .find(|m| m["id"] == json!(id))
        .unwrap_or_else(|| panic!("no response in {}", reply.body));
    assert!(response.get("result").is_some(), "{response}");
    assert_ne!(response["result"]["isError"], json!(true), "{response}");
    // And the slot is free again.
    assert_eq!(
        http.call_text("alpha__echo", json!({"text": "z"})).await,
        "z"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_a_slot_already_has_its_stream_open() {
    let gw = Gateway::start(&format!(
        "upstreams:\n{}    max_concurrency: 1\n    tool_timeouts: {{slow: 120s}}\n",
        stdio_fixture("alpha", &[])
    ));
    gw.wait_ready().await;
    let http = Mcp::connect(&gw.url).await;
    let (_, first) = http
        .stream_request(
            "tools/call",
            json!({"name": "alpha__slow", "arguments": {"ms": 60_000}}),
        )
        .await;
    assert_eq!(first.status(), 200);
    // The second call may wait up to 120 s for the slot; its answer (an SSE stream, with
    // keep-alives) starts at once rather than after the first call, so proxies and client
    // timeouts do not cut it off while it queues.
    let (_, second) = support::within(
        Duration::from_secs(15),
        "the queued call's response headers (not after the first call's 60 s)",
        http.stream_request(
            "tools/call",
            json!({"name": "alpha__slow", "arguments": {"ms": 10}}),
        ),
    )
    .await;
    assert_eq!(second.status(), 200);
    let ct = second
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(ct.starts_with("text/event-stream"), "{ct}");
}
