//! Notifications: upstream list changes (and upstreams dropping and coming back) reach
//! clients as `list_changed` on their GET stream; progress of a call reaches the client that
//! made it, under the client's own token, on the call's own answer stream.

mod support;

use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use rmcp::service::NotificationContext;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use support::{Gateway, Mcp, Reply, WAIT, stdio_fixture, wait_for, within};
use tokio::sync::mpsc;

async fn gateway_with(names: &[&str]) -> (Gateway, Mcp) {
    gateway_with_settings(names, "").await
}

/// [`gateway_with`] plus top-level `settings`.
async fn gateway_with_settings(names: &[&str], settings: &str) -> (Gateway, Mcp) {
    let yaml: String = names.iter().map(|n| stdio_fixture(n, &[])).collect();
    let gw = Gateway::start(&format!("{settings}upstreams:\n{yaml}"));
    gw.wait_ready().await;
    let c = Mcp::connect(&gw.url).await;
    wait_for(WAIT, "every upstream listed", || async {
        let tools = c.list_keys("tools/list", "tools", "name").await;
        names
            .iter()
            .all(|n| tools.contains(&format!("{n}__whoami")))
            .then_some(())
    })
    .await;
    (gw, c)
}

/// An rmcp client handler that reports every list_changed notification.
struct Watcher(mpsc::UnboundedSender<&'static str>);

impl ClientHandler for Watcher {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        let _ = self.0.send("tools");
    }

    async fn on_prompt_list_changed(&self, _: NotificationContext<RoleClient>) {
        let _ = self.0.send("prompts");
    }

    async fn on_resource_list_changed(&self, _: NotificationContext<RoleClient>) {
        let _ = self.0.send("resources");
    }
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().expect("object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmcp_client_hears_of_an_upstream_tool_list_change_and_sees_the_new_tool() {
    support::init_tls();
    let (gw, _) = gateway_with(&["alpha"]).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let transport = StreamableHttpClientTransport::from_uri(gw.url.as_str());
    let client = within(WAIT, "rmcp initialize", Watcher(tx).serve(transport))
        .await
        .expect("rmcp client");

    let add = |name: String| {
        let peer = client.peer().clone();
        async move {
            let call = CallToolRequestParams::new("alpha__add_tool")
                .with_arguments(args(json!({"name": name})));
            within(WAIT, "add_tool", peer.call_tool(call))
                .await
                .expect("alpha__add_tool")
        }
    };

    // The client opens its GET stream in the background after the handshake; until it is
    // open there is nowhere to send notifications. Probe until one arrives.
    let mut probed = false;
    for i in 0..20 {
        add(format!("probe_{i}")).await;
        if tokio::time::timeout(Duration::from_secs(1), rx.recv())
            .await
            .is_ok()
        {
            probed = true;
            break;
        }
    }
    assert!(
        probed,
        "no list_changed ever reached the rmcp client; log:\n{}",
        gw.log()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    while rx.try_recv().is_ok() {}

    let result = add("fresh".to_owned()).await;
    assert_eq!(
        serde_json::to_value(&result.content).expect("content")[0]["text"],
        "added"
    );
    let what = within(Duration::from_secs(10), "tools/list_changed", rx.recv()).await;
    assert_eq!(what, Some("tools"));
    let tools = within(WAIT, "list tools", client.list_all_tools())
        .await
        .expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"alpha__fresh"), "{names:?}");

    let call = CallToolRequestParams::new("alpha__fresh");
    let result = within(WAIT, "call fresh", client.call_tool(call))
        .await
        .expect("alpha__fresh");
    assert_eq!(
        serde_json::to_value(&result.content).expect("content")[0]["text"],
        "alpha:fresh"
    );

    let call = CallToolRequestParams::new("alpha__remove_tool")
        .with_arguments(args(json!({"name": "fresh"})));
    within(WAIT, "remove_tool", client.call_tool(call))
        .await
        .expect("alpha__remove_tool");
    let what = within(Duration::from_secs(10), "tools/list_changed", rx.recv()).await;
    assert_eq!(what, Some("tools"));
    let tools = within(WAIT, "list tools", client.list_all_tools())
        .await
        .expect("tools/list");
    assert!(
        !tools.iter().any(|t| t.name == "alpha__fresh"),
        "fresh is gone"
    );
    let _ = client.cancel().await;
}

fn is_notification(method: &'static str) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["method"] == method
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_get_stream_carries_list_changed_for_changes_drops_and_reconnects() {
    let (gw, c) = gateway_with(&["alpha", "beta"]).await;
    // The stream is registered before its response headers are sent.
    let mut stream = c.open_stream().await.expect("GET stream");

    assert_eq!(
        c.call_text("alpha__add_tool", json!({"name": "fresh"}))
            .await,
        "added"
    );
    let n = stream
        .next_matching(
            Duration::from_secs(10),
            is_notification("notifications/tools/list_changed"),
        )
        .await;
    assert!(
        n.is_some(),
        "no tools/list_changed after alpha added a tool; log:\n{}",
        gw.log()
    );
    let tools = c.list_keys("tools/list", "tools", "name").await;
    assert!(tools.contains(&"alpha__fresh".to_owned()), "{tools:?}");

    // alpha dropping changes the merged lists too.
    let _ = c.call("alpha__crash", json!({})).await;
    let n = stream
        .next_matching(
            Duration::from_secs(10),
            is_notification("notifications/tools/list_changed"),
        )
        .await;
    assert!(n.is_some(), "no tools/list_changed after alpha dropped");
    // ... and so does its return (the restarted fixture starts without `fresh`).
    let tools = wait_for(Duration::from_secs(20), "alpha back", || async {
        let tools = c.list_keys("tools/list", "tools", "name").await;
        tools.contains(&"alpha__whoami".to_owned()).then_some(tools)
    })
    .await;
    assert!(!tools.contains(&"alpha__fresh".to_owned()), "{tools:?}");
    assert!(tools.contains(&"beta__whoami".to_owned()), "{tools:?}");
    let mut changes = Vec::new();
    while let Some(m) = stream.next(Duration::from_millis(500)).await {
        changes.push(m["method"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        changes.contains(&"notifications/tools/list_changed".to_owned()),
        "reconnect announced: {changes:?}"
    );
}

/// The messages of a POST answered as a stream, checked to be well-formed: progress
/// notifications first, the response last.
fn progress_then_response(reply: &Reply, id: u64) -> (Vec<Value>, Value) {
    assert_eq!(reply.status, 200);
    assert!(
        reply.content_type().starts_with("text/event-stream"),
        "content-type {}",
        reply.content_type()
    );
    let mut msgs = reply.messages();
    let response = msgs.pop().expect("messages");
    assert_eq!(
        response["id"],
        json!(id),
        "the response comes last: {response}"
    );
    for m in &msgs {
        assert_eq!(m["method"], "notifications/progress", "{m}");
    }
    let params = msgs.into_iter().map(|m| m["params"].clone()).collect();
    (params, response)
}

async fn slow_with_token(c: &Mcp, ms: u64, token: Value) -> (Vec<Value>, Value) {
    slow_on("alpha__slow", c, ms, token).await
}

async fn slow_on(tool: &str, c: &Mcp, ms: u64, token: Value) -> (Vec<Value>, Value) {
    let id = c.next_id();
    let body = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": {"ms": ms}, "_meta": {"progressToken": token}},
    });
    let reply = c.send(&body).await;
    progress_then_response(&reply, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reaches_the_caller_under_its_own_token_before_the_result() {
    // `auto`: the answer turns into a stream only when progress comes first.
    let (_gw, c) = gateway_with_settings(&["alpha"], "response_mode: auto\n").await;

    let (progress, response) = slow_with_token(&c, 500, json!("tok-1")).await;
    assert_eq!(
        response["result"]["content"][0]["text"],
        "done after 500 ms"
    );
    assert!(
        progress.len() >= 3,
        "progress every 100 ms of 500: {progress:?}"
    );
    let mut last = 0.0;
    for p in &progress {
        assert_eq!(p["progressToken"], "tok-1", "{p}");
        assert_eq!(p["total"], json!(500.0), "{p}");
        let value = p["progress"].as_f64().expect("progress");
        assert!(value > last, "progress increases: {progress:?}");
        last = value;
    }

    // A numeric token stays a number.
    let (progress, _) = slow_with_token(&c, 300, json!(42)).await;
    assert!(!progress.is_empty());
    assert!(
        progress.iter().all(|p| p["progressToken"] == json!(42)),
        "{progress:?}"
    );

    // Without a token the answer is plain JSON.
    let id = c.next_id();
    let reply = c.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "alpha__slow", "arguments": {"ms": 300}}})).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.content_type().starts_with("application/json"),
        "{}",
        reply.content_type()
    );
    assert_eq!(
        reply.json()["result"]["content"][0]["text"],
        "done after 300 ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sharing_a_progress_token_each_get_only_their_own_progress() {
    let (gw, first) = gateway_with(&["alpha"]).await;
    let second = Mcp::connect(&gw.url).await;

    let (a, b) = tokio::join!(
        slow_with_token(&first, 600, json!("same")),
        slow_with_token(&second, 900, json!("same"))
    );
    for ((progress, response), ms) in [(a, 600), (b, 900)] {
        assert_eq!(
            response["result"]["content"][0]["text"],
            format!("done after {ms} ms")
        );
        assert!(progress.len() >= 3, "{ms}: {progress:?}");
        for p in &progress {
            assert_eq!(p["progressToken"], "same", "{p}");
            assert_eq!(
                p["total"],
                json!(ms as f64),
                "only this call's progress: {p}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_upstream_relays_list_changed_and_progress() {
    let gamma = support::HttpFixture::start("gamma", &[]);
    let gw = Gateway::start(&format!(
        "upstreams:\n{}",
        support::http_upstream("gamma", &gamma.url)
    ));
    gw.wait_ready().await;
    let c = Mcp::connect(&gw.url).await;
    wait_for(WAIT, "gamma listed", || async {
        c.list_keys("tools/list", "tools", "name")
            .await
            .contains(&"gamma__add_tool".to_owned())
            .then_some(())
    })
    .await;
    let mut stream = c.open_stream().await.expect("GET stream");

    assert_eq!(
        c.call_text("gamma__add_tool", json!({"name": "fresh"}))
            .await,
        "added"
    );
    let n = stream
        .next_matching(
            Duration::from_secs(10),
            is_notification("notifications/tools/list_changed"),
        )
        .await;
    assert!(
        n.is_some(),
        "no tools/list_changed after the HTTP upstream added a tool; log:\n{}",
        gw.log()
    );
    // A list_changed of an earlier change (the upstream's second era session connecting, on
    // a loaded machine) may arrive first: the new tool is listed by the last one.
    wait_for(WAIT, "gamma__fresh listed", || async {
        c.list_keys("tools/list", "tools", "name")
            .await
            .contains(&"gamma__fresh".to_owned())
            .then_some(())
    })
    .await;
    assert_eq!(c.call_text("gamma__fresh", json!({})).await, "gamma:fresh");

    let (progress, response) = slow_on("gamma__slow", &c, 500, json!("via-http")).await;
    assert_eq!(
        response["result"]["content"][0]["text"],
        "done after 500 ms"
    );
    assert!(progress.len() >= 3, "{progress:?}");
    assert!(
        progress
            .iter()
            .all(|p| p["progressToken"] == "via-http" && p["total"] == json!(500.0)),
        "{progress:?}"
    );
}
