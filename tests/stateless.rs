//! 2026-07-28 clients of the real gateway: served per request without a session, their
//! envelopes and headers checked, `server/discover` and `subscriptions/listen`, input
//! requests of a handshake-era upstream turned into input-required results, the stdio
//! era lock, and a second replica continuing what the first issued.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{
    Gateway, Mcp, Reply, STATELESS, Stateless, StdioClient, WAIT, example_bin, first_text,
    stdio_fixture,
};

async fn gateway(yaml: &str) -> (Gateway, Stateless) {
    let gw = Gateway::start(yaml);
    gw.wait_upstreams_ready().await;
    let client = Stateless::new(&gw.url, json!({ "elicitation": {}, "sampling": {} }));
    (gw, client)
}

fn alpha() -> String {
    format!("upstreams:\n{}", stdio_fixture("alpha", &[]))
}

/// The conformance fixture held to the handshake era, where its tools ask the client for
/// input with real requests.
fn conformance() -> String {
    format!(
        "upstreams:\n  conformance:\n    command: {:?}\n    args: [--transport, stdio]\n    prefix: \"\"\n    protocol: handshake\n",
        example_bin("conformance_server").display().to_string()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_discovers_lists_and_calls_without_a_session() {
    let (gw, c) = gateway(&alpha()).await;
    let (reply, response) = c.exchange("server/discover", json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.header("mcp-session-id").is_none());
    let found = &response["result"];
    assert_eq!(found["resultType"], "complete");
    let versions = found["supportedVersions"].as_array().expect("versions");
    assert!(versions.contains(&json!(STATELESS)), "{versions:?}");
    assert!(versions.contains(&json!("2025-11-25")), "{versions:?}");
    assert_eq!(found["capabilities"]["tools"]["listChanged"], true);
    assert_eq!(
        found["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "manifold"
    );
    assert!(
        found["ttlMs"].is_u64() && found["cacheScope"].is_string(),
        "{found}"
    );

    let list = c
        .request("tools/list", json!({}))
        .await
        .expect("tools/list");
    assert_eq!(list["resultType"], "complete");
    assert!(list["ttlMs"].as_u64().is_some(), "{list}");
    // The fixture (rmcp) marks its own listings private; the merge keeps the stricter.
    assert_eq!(list["cacheScope"], "private", "{list}");
    let names: Vec<&str> = list["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"alpha__echo"), "{names:?}");

    // The same call as a handshake-era client makes, answered alike plus resultType.
    let stateless = c
        .call("alpha__echo", json!({ "text": "hi" }))
        .await
        .expect("call");
    let handshake = Mcp::connect(&gw.url).await;
    let old = handshake
        .call("alpha__echo", json!({ "text": "hi" }))
        .await
        .expect("handshake call");
    assert_eq!(stateless["resultType"], "complete");
    assert!(old.get("resultType").is_none(), "{old}");
    assert_eq!(stateless["content"], old["content"]);
    assert_eq!(stateless["structuredContent"], old["structuredContent"]);
}

/// The headers of `good` with `name` replaced by `value` (removed when `value` is empty).
fn with(good: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut headers: Vec<_> = good
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    if !value.is_empty() {
        headers.push((name.to_owned(), value.to_owned()));
    }
    headers
}

fn expect_error(reply: &Reply, status: u16, code: i64) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], code, "{}", reply.body);
    assert_eq!(
        reply.json()["id"],
        1,
        "errors carry the request id: {}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_and_headers_are_checked_in_order_with_their_own_codes_and_statuses() {
    let (_gw, c) = gateway(&alpha()).await;
    let call = c.body(
        1,
        "tools/call",
        json!({ "name": "alpha__echo", "arguments": { "text": "x" } }),
    );
    let good = Stateless::headers_for(&call);

    // 1. Envelope keys.
    let mut bare = call.clone();
    bare["params"]["_meta"]
        .as_object_mut()
        .expect("meta")
        .remove("io.modelcontextprotocol/clientCapabilities");
    expect_error(&c.post_raw(&bare, &good).await, 400, -32602);
    // 2. Headers against the body, before the revision.
    let cases = [
        ("Mcp-Method", "tools/list"),
        ("Mcp-Name", ""),
        ("Mcp-Name", "alpha__whoami"),
        ("Mcp-Name", "=?base64?YWxwaGFfX2VjaG8?="),
        ("MCP-Protocol-Version", ""),
    ];
    for (name, value) in cases {
        let reply = c.post_raw(&call, &with(&good, name, value)).await;
        expect_error(&reply, 400, -32020);
    }
    let ok = c
        .post_raw(
            &call,
            &with(&good, "Mcp-Name", "=?base64?YWxwaGFfX2VjaG8=?="),
        )
        .await;
    assert_eq!(
        ok.status, 200,
        "the base64 form of the name is accepted: {}",
        ok.body
    );
    // 3. The revision, with what is supported.
    let mut old = call.clone();
    old["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let reply = c
        .post_raw(&old, &with(&good, "MCP-Protocol-Version", "2099-01-01"))
        .await;
    expect_error(&reply, 400, -32022);
    let data = &reply.json()["error"]["data"];
    assert_eq!(data["requested"], "2099-01-01");
    assert!(
        data["supported"]
            .as_array()
            .expect("list")
            .contains(&json!(STATELESS))
    );
    // 4. Methods of the handshake era are unknown here.
    for method in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
    ] {
        let body = c.body(1, method, json!({}));
        let reply = c.post_raw(&body, &Stateless::headers_for(&body)).await;
        expect_error(&reply, 404, -32601);
    }
    // No sessions: nothing to GET or DELETE.
    let get = c
        .http
        .get(&c.url)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", STATELESS)
        .send()
        .await
        .expect("GET");
    assert_eq!(get.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_stream_is_acknowledged_then_hears_only_what_it_asked_for() {
    let (gw, c) = gateway(&alpha()).await;
    let id = 41;
    let mut stream = c
        .listen(
            id,
            json!({ "toolsListChanged": true, "promptsListChanged": false }),
        )
        .await;
    let ack = stream.next(WAIT).await.expect("acknowledgement");
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        id
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({ "toolsListChanged": true })
    );

    c.call("alpha__add_tool", json!({ "name": "fresh" }))
        .await
        .expect("add_tool");
    let changed = stream
        .next(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("no list_changed on the listen stream; log:\n{}", gw.log()));
    assert_eq!(
        changed["method"], "notifications/tools/list_changed",
        "{changed}"
    );
    assert_eq!(
        changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        id
    );
    // Nothing it did not ask for (progress of other requests, say) follows.
    c.call("alpha__slow", json!({ "ms": 300 }))
        .await
        .expect("slow");
    assert!(stream.next(Duration::from_millis(800)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_upstreams_elicitation_reaches_a_stateless_client_as_input_required() {
    let (_gw, c) = gateway(&conformance()).await;
    let args = json!({ "message": "Who are you?" });
    let first = c
        .call("test_elicitation", args.clone())
        .await
        .expect("first round");
    assert_eq!(first["resultType"], "input_required", "{first}");
    let requests = first["inputRequests"].as_object().expect("inputRequests");
    assert_eq!(requests.len(), 1, "{first}");
    let (key, request) = requests.iter().next().expect("one");
    assert_eq!(request["method"], "elicitation/create");
    assert_eq!(request["params"]["message"], "Who are you?");
    let state = first["requestState"]
        .as_str()
        .expect("requestState")
        .to_owned();
    assert!(
        first.get("ttlMs").is_none(),
        "interim results carry no cache hints"
    );

    // A forged state, or one bound to other arguments, is refused and loses nothing.
    let mut forged = state.clone();
    let swap = if &state[10..11] == "A" { "B" } else { "A" };
    forged.replace_range(10..11, swap);
    let retry = |state: &str, arguments: serde_json::Value, answers: serde_json::Value| {
        json!({ "name": "test_elicitation", "arguments": arguments,
                "requestState": state, "inputResponses": answers })
    };
    let refused = c
        .request("tools/call", retry(&forged, args.clone(), json!({})))
        .await
        .expect_err("forged state");
    assert_eq!(refused["code"], -32602, "{refused}");
    let refused = c
        .request(
            "tools/call",
            retry(&state, json!({ "message": "other" }), json!({})),
        )
        .await
        .expect_err("state of another request");
    assert_eq!(refused["code"], -32602, "{refused}");

    let answer = json!({ key: { "action": "accept",
        "content": { "username": "ann", "email": "ann@example.com" } } });
    let done = c
        .request("tools/call", retry(&state, args.clone(), answer.clone()))
        .await
        .expect("retry");
    assert_eq!(done["resultType"], "complete", "{done}");
    let text = first_text(&done);
    assert!(
        text.contains("accept") && text.contains("ann@example.com"),
        "{text}"
    );

    // The held call was consumed: the same state cannot be replayed.
    let replay = c
        .request("tools/call", retry(&state, args, answer))
        .await
        .expect_err("replay");
    assert_eq!(replay["code"], -32602, "{replay}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_locks_its_era_on_the_first_request() {
    let yaml = alpha();
    let mut stateless = StdioClient::spawn(&yaml);
    let envelope = Stateless::new("stdio", json!({})).envelope();
    let mut listed = false;
    for _ in 0..300 {
        let list = stateless
            .request("tools/list", json!({ "_meta": envelope }))
            .await
            .expect("tools/list over stateless stdio");
        assert_eq!(list["resultType"], "complete");
        listed = list["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "alpha__echo"));
        if listed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listed, "alpha never listed over stateless stdio");
    let init = json!({ "protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": { "name": "t", "version": "0" } });
    let e = stateless
        .request("initialize", init)
        .await
        .expect_err("locked stateless");
    assert_eq!(e["code"], -32022, "{e}");
    let e = stateless
        .request(
            "tools/list",
            json!({ "_meta": { "io.modelcontextprotocol/protocolVersion": STATELESS } }),
        )
        .await
        .expect_err("envelope without capabilities");
    assert_eq!(e["code"], -32602, "{e}");

    // A listen stream over stdio ends when the client cancels it.
    stateless
        .write(
            &json!({ "jsonrpc": "2.0", "id": "l1", "method": "subscriptions/listen",
                        "params": { "_meta": envelope,
                                    "notifications": { "toolsListChanged": true } } }),
        )
        .await;
    let ack = stateless.next_message(WAIT).await.expect("ack");
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "l1"
    );
    stateless
        .write(
            &json!({ "jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": { "requestId": "l1" } }),
        )
        .await;
    // Nothing more is sent for a cancelled request; the connection goes on serving.
    let after = stateless.next_message(Duration::from_millis(500)).await;
    assert!(after.is_none(), "sent after cancellation: {after:?}");
    let list = stateless
        .request("tools/list", json!({ "_meta": envelope }))
        .await
        .expect("served after the listen ended");
    assert_eq!(list["resultType"], "complete");

    let mut handshake = StdioClient::start(&yaml).await;
    let e = handshake
        .request("tools/list", json!({ "_meta": envelope }))
        .await
        .expect_err("locked handshake");
    assert_eq!(e["code"], -32600, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_with_the_same_key_continues_a_listing() {
    let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let yaml = format!(
        "seal_key: \"{key}\"\npage_size: 3\nupstreams:\n{}",
        stdio_fixture("alpha", &["--tools", "5"])
    );
    let (_a, ca) = gateway(&yaml).await;
    let (_b, cb) = gateway(&yaml).await;
    let first = ca
        .request("tools/list", json!({}))
        .await
        .expect("page 1 on a");
    let cursor = first["nextCursor"].as_str().expect("a cursor").to_owned();
    let second = cb
        .request("tools/list", json!({ "cursor": cursor }))
        .await
        .expect("b continues a's listing");
    let on_a = ca
        .request("tools/list", json!({ "cursor": cursor }))
        .await
        .expect("a continues its own listing");
    assert_eq!(second["tools"], on_a["tools"]);
    assert_ne!(second["tools"], first["tools"]);

    // A replica with another key refuses it, with the reason.
    let other = yaml.replace(key, &"f".repeat(64));
    let (_c, cc) = gateway(&other).await;
    let e = cc
        .request("tools/list", json!({ "cursor": cursor }))
        .await
        .expect_err("foreign cursor");
    assert_eq!(e["code"], -32602, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_the_client_did_not_declare_fails_its_request_with_32021() {
    let (gw, _) = gateway(&conformance()).await;
    let bare = Stateless::new(&gw.url, json!({}));
    let (reply, response) = bare
        .exchange(
            "tools/call",
            json!({ "name": "test_elicitation", "arguments": { "message": "Who?" } }),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let error = &response["error"];
    assert_eq!(error["code"], -32021, "{error}");
    assert!(
        error["data"]["requiredCapabilities"]["elicitation"].is_object(),
        "{error}"
    );
    // The gateway is unharmed: a client that declares it gets the round trip.
    let able = Stateless::new(&gw.url, json!({ "elicitation": {} }));
    let first = able
        .call("test_elicitation", json!({ "message": "Who?" }))
        .await
        .expect("declared");
    assert_eq!(first["resultType"], "input_required", "{first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstreams_announced_change_reaches_listeners_even_when_the_list_reads_the_same() {
    // The dual-era fixture only announces; its tool list stays as it was.
    let yaml = conformance().replace("    protocol: handshake\n", "");
    let (gw, c) = gateway(&yaml).await;
    let mut stream = c.listen(7, json!({ "toolsListChanged": true })).await;
    let ack = stream.next(WAIT).await.expect("acknowledgement");
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    let before = c.request("tools/list", json!({})).await.expect("list");
    c.call("test_trigger_tool_change", json!({}))
        .await
        .expect("trigger");
    let changed = stream
        .next(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("the announced change was swallowed; log:\n{}", gw.log()));
    assert_eq!(changed["method"], "notifications/tools/list_changed");
    let after = c.request("tools/list", json!({})).await.expect("list");
    assert_eq!(before["tools"], after["tools"]);
}
