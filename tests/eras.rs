//! The upstream face speaks each upstream's own protocol era: a 2026-07-28 upstream (the rmcp
//! fixture, which serves both eras unless told otherwise) is found by `server/discover` and
//! spoken to statelessly, with the gateway's envelope and SEP-2243 headers on every request;
//! a handshake-era upstream is found by the probe failing and gets `initialize` as before.
//! The verdict is remembered across restarts; notifications of a stateless upstream arrive on
//! its `subscriptions/listen` stream and reach handshake-era clients as they always did.

mod support;

use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Value, json};
use support::{
    Gateway, HttpFixture, Mcp, SseStream, WAIT, fixture_bin, http_upstream, stdio_fixture,
    wait_for, within,
};

const STATELESS: &str = "2026-07-28";

/// The fixture held to 2026-07-28: it refuses `initialize`, as a server of that era alone
/// does. (By default it speaks both eras, and the gateway then serves each client in its own;
/// see `tests/dual_era.rs`.)
const STATELESS_ONLY: &[&str] = &["--protocol", "stateless"];

/// Starts a gateway on `upstreams` (YAML entries) and waits until every one is ready.
async fn gateway(settings: &str, upstreams: &[String]) -> (Gateway, Value) {
    let gw = Gateway::start(&format!("{settings}upstreams:\n{}", upstreams.concat()));
    let ready = gw.wait_upstreams_ready().await;
    (gw, ready)
}

/// A tool result as a client compares it: content, structured content, error flag.
fn essence(result: &CallToolResult) -> Value {
    json!({
        "content": serde_json::to_value(&result.content).expect("content"),
        "structuredContent": result.structured_content,
        "isError": result.is_error,
    })
}

fn call(name: &str, args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_owned())
        .with_arguments(args.as_object().cloned().expect("object"))
}

/// The fixture's journal of protocol events, read through the gateway.
async fn journal(c: &Mcp, upstream: &str) -> Vec<String> {
    let result = c
        .call(&format!("{upstream}__journal"), json!({}))
        .await
        .unwrap_or_else(|e| panic!("{upstream}__journal: {e}"));
    serde_json::from_value(result["structuredContent"]["events"].clone()).expect("events")
}

/// Calls the same tools through the gateway (an rmcp client) and on the upstream directly
/// (another rmcp client) and checks the results are the same.
async fn same_results_as_direct(
    gw: &Gateway,
    upstream: &str,
    direct: rmcp::service::RunningService<rmcp::RoleClient, ()>,
) {
    support::init_tls();
    let transport = StreamableHttpClientTransport::from_uri(gw.url.as_str());
    let via = within(WAIT, "rmcp client to the gateway", ().serve(transport))
        .await
        .expect("rmcp client");
    let tools = within(WAIT, "tools/list", via.list_all_tools())
        .await
        .expect("tools/list");
    let listed: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    for own in support::fixture_tools(3) {
        assert!(
            listed.contains(&format!("{upstream}__{own}")),
            "{own} missing from {listed:?}"
        );
    }
    for (tool, args) in [
        ("echo", json!({"text": "hello"})),
        ("tool_1", json!({})),
        ("whoami", json!({})),
    ] {
        let through = within(
            WAIT,
            "call via gateway",
            via.call_tool(call(&format!("{upstream}__{tool}"), args.clone())),
        )
        .await
        .unwrap_or_else(|e| panic!("{tool} via the gateway: {e}"));
        let alone = within(WAIT, "call direct", direct.call_tool(call(tool, args)))
            .await
            .unwrap_or_else(|e| panic!("{tool} direct: {e}"));
        assert_eq!(essence(&through), essence(&alone), "{tool}");
    }
    let _ = via.cancel().await;
    let _ = direct.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_stdio_upstream_is_found_by_discover_and_used_without_a_handshake() {
    let (gw, ready) = gateway("", &[stdio_fixture("alpha", STATELESS_ONLY)]).await;
    assert_eq!(
        ready["upstreams"]["alpha"]["protocolVersion"], STATELESS,
        "{ready}"
    );

    let c = Mcp::connect(&gw.url).await;
    let events = journal(&c, "alpha").await;
    assert_eq!(
        events.first().map(String::as_str),
        Some("discover"),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.starts_with("initialize")),
        "a stateless upstream never sees initialize: {events:?}"
    );

    let mut direct = tokio::process::Command::new(fixture_bin());
    direct.args(["--name", "alpha"]);
    let transport = TokioChildProcess::new(direct).expect("spawn the fixture");
    let direct = within(WAIT, "rmcp client to the fixture", ().serve(transport))
        .await
        .expect("direct rmcp client");
    same_results_as_direct(&gw, "alpha", direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_http_upstream_is_found_by_discover_and_used_without_a_session() {
    let gamma = HttpFixture::start("gamma", STATELESS_ONLY);
    let (gw, ready) = gateway("", &[http_upstream("gamma", &gamma.url)]).await;
    assert_eq!(
        ready["upstreams"]["gamma"]["protocolVersion"], STATELESS,
        "{ready}"
    );

    let c = Mcp::connect(&gw.url).await;
    let events = journal(&c, "gamma").await;
    assert!(events.contains(&"discover".to_owned()), "{events:?}");
    // The one `initialize` a 2026-07-28-only upstream sees is the gateway asking whether it
    // speaks the handshake era too; it refuses, and is spoken to statelessly after.
    let asked = events
        .iter()
        .filter(|e| e.starts_with("initialize"))
        .count();
    assert!(asked <= 1, "{events:?}");
    assert!(
        ready["upstreams"]["gamma"]
            .get("handshakeVersion")
            .is_none(),
        "{ready}"
    );

    // The direct client opens a session, which the 2026-07-28-only fixture refuses: it talks
    // to a twin of it that speaks both eras (same name, same catalog).
    support::init_tls();
    let twin = HttpFixture::start("gamma", &[]);
    let transport = StreamableHttpClientTransport::from_uri(twin.url.as_str());
    let direct = within(WAIT, "rmcp client to the fixture", ().serve(transport))
        .await
        .expect("direct rmcp client");
    same_results_as_direct(&gw, "gamma", direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_http_upstream_gets_the_envelope_and_headers_for_its_own_names() {
    let gamma = HttpFixture::start("gamma", STATELESS_ONLY);
    let upstream = format!(
        "{}    identity_headers: {{x-caller: sub}}\n",
        http_upstream("gamma", &gamma.url)
    );
    let (gw, _) = gateway("", &[upstream]).await;
    let c = Mcp::connect_with(
        &gw.url,
        "2025-11-25",
        json!({"elicitation": {}, "experimental": {"x": {}}}),
    )
    .await;

    // rmcp checks Mcp-Param-* against the arguments it receives (SEP-2243): a wrong or
    // missing header would fail the call with -32020 instead of answering.
    let args = json!({"region": "Zürich", "count": 7});
    let result = c
        .call("gamma__envelope", args)
        .await
        .unwrap_or_else(|e| panic!("gamma__envelope: {e}"));
    let seen = &result["structuredContent"];
    let headers = &seen["headers"];
    assert_eq!(headers["mcp-protocol-version"], STATELESS, "{seen}");
    assert_eq!(headers["mcp-method"], "tools/call", "{seen}");
    assert_eq!(
        headers["mcp-name"], "envelope",
        "the upstream's own name: {seen}"
    );
    assert_eq!(
        headers["mcp-param-region"], "=?base64?WsO8cmljaA==?=",
        "a non-ASCII value travels base64-wrapped: {seen}"
    );
    assert_eq!(headers["mcp-param-count"], "7", "{seen}");
    assert_eq!(
        headers["x-caller"], "anonymous",
        "identity header per request: {seen}"
    );
    assert!(
        headers.get("mcp-session-id").is_none(),
        "no session: {seen}"
    );

    let meta = &seen["meta"];
    assert_eq!(
        meta["io.modelcontextprotocol/protocolVersion"], STATELESS,
        "{seen}"
    );
    assert_eq!(
        meta["io.modelcontextprotocol/clientInfo"]["name"], "manifold",
        "{seen}"
    );
    assert_eq!(
        meta["io.modelcontextprotocol/clientCapabilities"],
        json!({"elicitation": {}}),
        "what the gateway can relay for this client, nothing else: {seen}"
    );

    // A stdio upstream gets the same envelope; headers do not exist there.
    let (gw, _) = gateway("", &[stdio_fixture("alpha", STATELESS_ONLY)]).await;
    let c = Mcp::connect(&gw.url).await;
    let result = c
        .call("alpha__envelope", json!({}))
        .await
        .expect("envelope");
    let seen = &result["structuredContent"];
    assert_eq!(
        seen["meta"]["io.modelcontextprotocol/protocolVersion"], STATELESS,
        "{seen}"
    );
    assert_eq!(
        seen["meta"]["io.modelcontextprotocol/clientCapabilities"],
        json!({})
    );
    assert_eq!(seen["headers"], Value::Null, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_upstream_is_found_by_the_probe_failing_and_initialized() {
    let beta = HttpFixture::start("beta", &["--protocol", "handshake"]);
    let (gw, ready) = gateway(
        "",
        &[
            stdio_fixture("alpha", &["--protocol", "handshake"]),
            http_upstream("beta", &beta.url),
        ],
    )
    .await;
    let c = Mcp::connect(&gw.url).await;
    for name in ["alpha", "beta"] {
        assert_eq!(
            ready["upstreams"][name]["protocolVersion"], "2025-11-25",
            "{ready}"
        );
        assert_eq!(
            c.call_text(&format!("{name}__whoami"), json!({})).await,
            name
        );
        let events = journal(&c, name).await;
        assert!(
            events.iter().any(|e| e.starts_with("initialize")),
            "{name}: {events:?}"
        );
    }
    // A handshake-era session: the session header, no stateless envelope in _meta.
    let result = c.call("beta__envelope", json!({})).await.expect("envelope");
    let seen = &result["structuredContent"];
    assert!(seen["headers"]["mcp-session-id"].is_string(), "{seen}");
    assert!(
        seen["meta"]
            .get("io.modelcontextprotocol/protocolVersion")
            .is_none(),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verdict_is_remembered_when_the_upstream_restarts() {
    let (gw, _) = gateway("", &[stdio_fixture("alpha", STATELESS_ONLY)]).await;
    let c = Mcp::connect(&gw.url).await;
    let probes = |log: &str| log.matches("fixture alpha: discover").count();
    assert_eq!(probes(&gw.log()), 1, "log:\n{}", gw.log());

    // The process exits mid-call; the supervisor starts a new one.
    let _ = c.call("alpha__crash", json!({})).await;
    wait_for(WAIT, "a second alpha process serving", || async {
        let log = gw.log();
        let restarted = log.matches("fixture alpha started").count() >= 2;
        let serving = c.call("alpha__whoami", json!({})).await.is_ok();
        (restarted && serving).then_some(())
    })
    .await;
    let (_, ready) = gw.readyz().await;
    assert_eq!(
        ready["upstreams"]["alpha"]["protocolVersion"], STATELESS,
        "{ready}"
    );
    assert_eq!(probes(&gw.log()), 1, "no second probe; log:\n{}", gw.log());
    let events = journal(&c, "alpha").await;
    assert!(
        !events
            .iter()
            .any(|e| e == "discover" || e.starts_with("initialize")),
        "the new process was spoken to as stateless at once: {events:?}"
    );
}

/// A gateway in front of a stateless stdio upstream (`alpha`) and a stateless HTTP one (`gamma`),
/// a handshake-era client, and its GET stream.
async fn stdio_and_http_stateless() -> (HttpFixture, Gateway, Mcp, SseStream) {
    let gamma = HttpFixture::start("gamma", STATELESS_ONLY);
    let (gw, _) = gateway(
        "",
        &[
            stdio_fixture("alpha", STATELESS_ONLY),
            http_upstream("gamma", &gamma.url),
        ],
    )
    .await;
    let c = Mcp::connect(&gw.url).await;
    let stream = c.open_stream().await.expect("GET stream");
    (gamma, gw, c, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_upstreams_list_change_reaches_a_handshake_client() {
    let (_gamma, gw, c, mut stream) = stdio_and_http_stateless().await;
    for name in ["alpha", "gamma"] {
        wait_for(WAIT, "the upstream's listen", || async {
            let events = journal(&c, name).await;
            events
                .iter()
                .any(|e| e.contains("toolsListChanged"))
                .then_some(())
        })
        .await;
        assert_eq!(
            c.call_text(&format!("{name}__add_tool"), json!({"name": "fresh"}))
                .await,
            "added"
        );
        let changed = stream
            .next_matching(WAIT, |m| m["method"] == "notifications/tools/list_changed")
            .await;
        assert!(
            changed.is_some(),
            "{name}: no list_changed; log:\n{}",
            gw.log()
        );
        let tools = c.list_keys("tools/list", "tools", "name").await;
        assert!(tools.contains(&format!("{name}__fresh")), "{tools:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_update_on_the_listen_stream_reaches_the_subscribed_client() {
    let (_gamma, gw, c, mut stream) = stdio_and_http_stateless().await;
    for name in ["alpha", "gamma"] {
        let uri = format!("fixture://{name}/info");
        c.ok("resources/subscribe", json!({"uri": uri})).await;
        wait_for(WAIT, "a listen for the URI", || async {
            let events = journal(&c, name).await;
            events.iter().any(|e| e.contains(&uri)).then_some(())
        })
        .await;
        assert_eq!(
            c.call_text(&format!("{name}__touch"), json!({"uri": uri}))
                .await,
            "told 1"
        );
        let updated = stream
            .next_matching(WAIT, |m| m["method"] == "notifications/resources/updated")
            .await
            .unwrap_or_else(|| panic!("{name}: no update; log:\n{}", gw.log()));
        assert_eq!(
            updated["params"],
            json!({"uri": uri}),
            "no upstream _meta: {updated}"
        );

        // Unsubscribed: the listen is reissued without the URI, the old one ended.
        c.ok("resources/unsubscribe", json!({"uri": uri})).await;
        wait_for(WAIT, "the old listen to end", || async {
            let events = journal(&c, name).await;
            let last_listen = events.iter().rev().find(|e| e.starts_with("listen {"))?;
            (!last_listen.contains(&uri) && events.contains(&"listen ended".to_owned()))
                .then_some(())
        })
        .await;
        assert_eq!(
            c.call_text(&format!("{name}__touch"), json!({"uri": uri}))
                .await,
            "told 0"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_timeout_closes_the_request_stream_of_a_stateless_http_upstream() {
    let gamma = HttpFixture::start("gamma", STATELESS_ONLY);
    let upstream = format!(
        "{}    tool_timeouts: {{slow: 300ms}}\n",
        http_upstream("gamma", &gamma.url)
    );
    let (gw, _) = gateway("", &[upstream]).await;
    let c = Mcp::connect(&gw.url).await;
    let started = std::time::Instant::now();
    let e = c
        .call("gamma__slow", json!({"ms": 20_000}))
        .await
        .expect_err("the call times out");
    assert_eq!(e["code"], json!(-32011), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    wait_for(WAIT, "the fixture to see the call cancelled", || async {
        let events = journal(&c, "gamma").await;
        events
            .iter()
            .any(|e| e.starts_with("cancelled slow"))
            .then_some(())
    })
    .await;
    drop(gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_era_is_used_without_a_probe() {
    // `handshake` on a dual-era server: straight to initialize.
    let pinned = stdio_fixture("alpha", &[])
        .replace("\n    command:", "\n    protocol: handshake\n    command:");
    // `stateless` on a handshake-era-only server: the upstream stays down, saying why.
    let wrong = stdio_fixture("beta", &["--protocol", "handshake"])
        .replace("\n    command:", "\n    protocol: stateless\n    command:");
    let gw = Gateway::start(&format!("upstreams:\n{pinned}{wrong}"));
    let ready = wait_for(WAIT, "alpha ready and beta down", || async {
        let (_, body) = gw.readyz().await;
        let alpha = body["upstreams"]["alpha"]["status"] == "ready";
        let beta = body["upstreams"]["beta"]["status"] == "down";
        (alpha && beta).then_some(body)
    })
    .await;
    assert_eq!(
        ready["upstreams"]["alpha"]["protocolVersion"], "2025-11-25",
        "{ready}"
    );
    let c = Mcp::connect(&gw.url).await;
    let events = journal(&c, "alpha").await;
    assert!(!events.contains(&"discover".to_owned()), "{events:?}");
    gw.log_with("not a 2026-07-28 server").await;
}
