//! Unit tests for the demo server's protocol core ([`handle`] and friends).

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use super::tools::{civil_from_days, rfc3339_utc};
use super::{DemoState, handle, handle_line};

/// Sends a request and returns the whole reply.
fn request(state: &mut DemoState, id: i64, method: &str, params: Value) -> Value {
    let reply = handle(
        state,
        json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }),
    );
    let Some(reply) = reply else {
        panic!("no reply to {method}");
    };
    assert_eq!(reply["jsonrpc"], "2.0");
    assert_eq!(reply["id"], id);
    reply
}

/// Sends a request that must succeed and returns its `result`.
fn ok(state: &mut DemoState, method: &str, params: Value) -> Value {
    let reply = request(state, 7, method, params);
    assert!(reply.get("error").is_none(), "{method} failed: {reply}");
    reply["result"].clone()
}

/// Sends a request that must fail and returns its `error`.
fn err(state: &mut DemoState, method: &str, params: Value) -> Value {
    let reply = request(state, 7, method, params);
    assert!(reply.get("result").is_none(), "{method} succeeded: {reply}");
    reply["error"].clone()
}

fn initialized() -> DemoState {
    let mut state = DemoState::new();
    ok(
        &mut state,
        "initialize",
        json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": { "name": "test", "version": "0" },
        }),
    );
    assert_eq!(
        handle(
            &mut state,
            json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })
        ),
        None
    );
    state
}

fn call_tool(state: &mut DemoState, name: &str, arguments: Value) -> Value {
    ok(
        state,
        "tools/call",
        json!({ "name": name, "arguments": arguments }),
    )
}

fn first_text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

#[test]
fn initialize_echoes_supported_versions() {
    for version in super::SUPPORTED_PROTOCOL_VERSIONS {
        let mut state = DemoState::new();
        let result = ok(
            &mut state,
            "initialize",
            json!({ "protocolVersion": version, "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } }),
        );
        assert_eq!(result["protocolVersion"], version);
        assert_eq!(state.protocol_version.as_deref(), Some(version));
    }
}

#[test]
fn initialize_offers_latest_for_unknown_version() {
    let mut state = DemoState::new();
    let result = ok(
        &mut state,
        "initialize",
        json!({ "protocolVersion": "1999-01-01" }),
    );
    assert_eq!(result["protocolVersion"], "2025-11-25");
}

#[test]
fn initialize_reports_identity_and_capabilities() {
    let mut state = DemoState::new();
    let result = ok(
        &mut state,
        "initialize",
        json!({ "protocolVersion": "2025-06-18" }),
    );
    assert_eq!(result["serverInfo"]["name"], "manifold-demo");
    assert_eq!(result["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
    let caps = &result["capabilities"];
    for capability in ["tools", "resources", "prompts", "completions"] {
        assert!(caps[capability].is_object(), "missing {capability}");
    }
    assert_eq!(caps["resources"]["subscribe"], false);
    assert!(result["instructions"].is_string());
}

#[test]
fn initialize_rejects_bad_params_and_repeats() {
    let mut state = DemoState::new();
    assert_eq!(err(&mut state, "initialize", json!({}))["code"], -32602);
    assert_eq!(state.protocol_version.as_deref(), None);
    let mut state = initialized();
    let error = err(
        &mut state,
        "initialize",
        json!({ "protocolVersion": "2025-11-25" }),
    );
    assert_eq!(error["code"], -32600);
}

#[test]
fn requests_before_initialize_are_refused_except_ping() {
    let mut state = DemoState::new();
    assert_eq!(ok(&mut state, "ping", json!({})), json!({}));
    let error = err(&mut state, "tools/list", json!({}));
    assert_eq!(error["code"], -32602);
    assert_eq!(error["message"], "not initialized");
}

#[test]
fn ping_after_initialize_and_without_params() {
    let mut state = initialized();
    let reply = handle(
        &mut state,
        json!({ "jsonrpc": "2.0", "id": "p", "method": "ping" }),
    );
    assert_eq!(
        reply,
        Some(json!({ "jsonrpc": "2.0", "id": "p", "result": {} }))
    );
}

#[test]
fn unknown_method_is_method_not_found() {
    let mut state = initialized();
    let error = err(&mut state, "tools/frobnicate", json!({}));
    assert_eq!(error["code"], -32601);
    assert_eq!(error["data"]["method"], "tools/frobnicate");
}

#[test]
fn notifications_get_no_reply() {
    let mut state = initialized();
    for method in [
        "notifications/initialized",
        "notifications/cancelled",
        "whatever/unknown",
    ] {
        let msg = json!({ "jsonrpc": "2.0", "method": method, "params": { "requestId": 1 } });
        assert_eq!(handle(&mut state, msg), None, "{method}");
    }
    // Even a notification before `initialize` or with a broken body is silent.
    let mut fresh = DemoState::new();
    assert_eq!(
        handle(
            &mut fresh,
            json!({ "jsonrpc": "2.0", "method": "tools/list" })
        ),
        None
    );
    assert_eq!(
        handle(&mut fresh, json!({ "jsonrpc": "1.0", "method": "x" })),
        None
    );
}

#[test]
fn responses_from_the_client_are_ignored() {
    let mut state = initialized();
    assert_eq!(
        handle(
            &mut state,
            json!({ "jsonrpc": "2.0", "id": 1, "result": {} })
        ),
        None
    );
}

#[test]
fn malformed_json_is_a_parse_error_with_null_id() {
    let mut state = DemoState::new();
    for line in [&b"{not json"[..], b"{\"jsonrpc\":\"2.0\",", b"\xff\xfe{}"] {
        let Some(reply) = handle_line(&mut state, line) else {
            panic!("no reply");
        };
        assert_eq!(reply["error"]["code"], -32700);
        assert_eq!(reply["id"], Value::Null);
    }
    assert_eq!(handle_line(&mut state, b"  \r\n"), None);
}

#[test]
fn handle_line_accepts_a_trailing_newline() {
    let mut state = DemoState::new();
    let reply = handle_line(
        &mut state,
        b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}\n",
    );
    assert_eq!(
        reply,
        Some(json!({ "jsonrpc": "2.0", "id": 3, "result": {} }))
    );
}

#[test]
fn invalid_requests() {
    let mut state = initialized();
    for msg in [json!([1, 2]), json!(42), json!("ping"), json!(null)] {
        let Some(reply) = handle(&mut state, msg) else {
            panic!("no reply");
        };
        assert_eq!(reply["error"]["code"], -32600);
        assert_eq!(reply["id"], Value::Null);
    }
    // Missing method keeps a usable id.
    let reply = handle(&mut state, json!({ "jsonrpc": "2.0", "id": 9 }));
    assert_eq!(
        reply.as_ref().map(|r| r["error"]["code"].clone()),
        Some(json!(-32600))
    );
    assert_eq!(reply.map(|r| r["id"].clone()), Some(json!(9)));
    // Wrong jsonrpc version, unusable ids, non-object params.
    let bad = [
        json!({ "jsonrpc": "1.0", "id": 1, "method": "ping" }),
        json!({ "id": 1, "method": "ping" }),
        json!({ "jsonrpc": "2.0", "id": null, "method": "ping" }),
        json!({ "jsonrpc": "2.0", "id": [1], "method": "ping" }),
    ];
    for msg in bad {
        let reply = handle(&mut state, msg.clone());
        assert_eq!(
            reply.map(|r| r["error"]["code"].clone()),
            Some(json!(-32600)),
            "{msg}"
        );
    }
    let reply = handle(
        &mut state,
        json!({ "jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1] }),
    );
    assert_eq!(
        reply.map(|r| r["error"]["code"].clone()),
        Some(json!(-32602))
    );
}

#[test]
fn tools_list_describes_every_tool() {
    let mut state = initialized();
    let result = ok(&mut state, "tools/list", json!({}));
    assert!(result.get("nextCursor").is_none());
    let tools = result["tools"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["add", "echo", "word_count", "now"]);
    for tool in &tools {
        assert!(tool["title"].is_string());
        assert!(tool["description"].is_string());
        assert_eq!(tool["inputSchema"]["type"], "object");
    }
    assert_eq!(
        tools[0]["outputSchema"]["properties"]["sum"]["type"],
        "number"
    );
    assert_eq!(tools[0]["annotations"]["readOnlyHint"], true);
    assert_eq!(
        tools[3]["inputSchema"],
        json!({ "type": "object", "additionalProperties": false })
    );
}

#[test]
fn list_methods_reject_cursors() {
    let mut state = initialized();
    for method in [
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "prompts/list",
    ] {
        assert_eq!(
            err(&mut state, method, json!({ "cursor": "abc" }))["code"],
            -32602
        );
    }
}

#[test]
fn add_returns_text_and_structured_content() {
    let mut state = initialized();
    let result = call_tool(&mut state, "add", json!({ "a": 2, "b": 3 }));
    assert_eq!(result["content"], json!([{ "type": "text", "text": "5" }]));
    assert_eq!(result["structuredContent"], json!({ "sum": 5 }));
    assert!(result.get("isError").is_none());

    let result = call_tool(&mut state, "add", json!({ "a": 1.5, "b": 0.25 }));
    assert_eq!(first_text(&result), "1.75");
    let result = call_tool(&mut state, "add", json!({ "a": 2.5, "b": 2.5 }));
    assert_eq!(first_text(&result), "5");
    let result = call_tool(&mut state, "add", json!({ "a": i64::MAX, "b": 1 }));
    assert_eq!(result.get("isError"), None);
    let result = call_tool(&mut state, "add", json!({ "a": 1e308, "b": 1e308 }));
    assert_eq!(result["isError"], true);
}

#[test]
fn invalid_tool_arguments_are_tool_errors() {
    let mut state = initialized();
    let cases = [
        ("add", json!({ "a": 1 }), "missing required argument `b`"),
        (
            "add",
            json!({ "a": "1", "b": 2 }),
            "must be of type number, got string",
        ),
        (
            "add",
            json!({ "a": 1, "b": 2, "c": 3 }),
            "unexpected argument `c`",
        ),
        ("echo", json!({}), "missing required argument `message`"),
        ("now", json!({ "tz": "UTC" }), "unexpected argument `tz`"),
    ];
    for (tool, args, expected) in cases {
        let result = call_tool(&mut state, tool, args);
        assert_eq!(result["isError"], true, "{tool}");
        assert!(first_text(&result).contains(expected), "{tool}: {result}");
    }
}

#[test]
fn tools_call_protocol_errors() {
    let mut state = initialized();
    let error = err(&mut state, "tools/call", json!({ "name": "nope" }));
    assert_eq!(error["code"], -32602);
    assert_eq!(error["data"]["name"], "nope");
    assert_eq!(err(&mut state, "tools/call", json!({}))["code"], -32602);
    let error = err(
        &mut state,
        "tools/call",
        json!({ "name": "echo", "arguments": [1] }),
    );
    assert_eq!(error["code"], -32602);
}

#[test]
fn echo_word_count_and_now() {
    let mut state = initialized();
    let result = call_tool(&mut state, "echo", json!({ "message": "héllo\nworld" }));
    assert_eq!(first_text(&result), "héllo\nworld");

    let result = call_tool(
        &mut state,
        "word_count",
        json!({ "text": "  héllo  big\tworld " }),
    );
    assert_eq!(
        result["structuredContent"],
        json!({ "words": 3, "characters": 19 })
    );
    let mirrored: Value = serde_json::from_str(first_text(&result)).unwrap_or_default();
    assert_eq!(mirrored, result["structuredContent"]);

    // No arguments at all is the same as `{}`.
    let result = ok(&mut state, "tools/call", json!({ "name": "now" }));
    let text = first_text(&result);
    assert_eq!(text.len(), "2025-01-01T00:00:00Z".len(), "{text}");
    assert!(text.ends_with('Z') && text.as_bytes()[10] == b'T', "{text}");
    assert!(text >= "2025", "{text}");
}

#[test]
fn rfc3339_formatting() {
    let at = |secs: u64| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(at(0), "1970-01-01T00:00:00Z");
    assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
    let before = rfc3339_utc(UNIX_EPOCH - Duration::from_millis(500));
    assert_eq!(before, "1969-12-31T23:59:59Z");
    assert_eq!(civil_from_days(-719_468), (0, 3, 1));
}

#[test]
fn resources_list_and_read() {
    let mut state = initialized();
    let result = ok(&mut state, "resources/list", json!({}));
    let uris: Vec<&str> = result["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uri"].as_str())
        .collect();
    assert_eq!(uris, ["demo://readme", "demo://config.json"]);

    let result = ok(
        &mut state,
        "resources/read",
        json!({ "uri": "demo://readme" }),
    );
    let content = &result["contents"][0];
    assert_eq!(content["uri"], "demo://readme");
    assert_eq!(content["mimeType"], "text/markdown");
    assert!(
        content["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("# Manifold demo")
    );

    let result = ok(
        &mut state,
        "resources/read",
        json!({ "uri": "demo://config.json" }),
    );
    assert_eq!(result["contents"][0]["mimeType"], "application/json");
    let config: Value =
        serde_json::from_str(result["contents"][0]["text"].as_str().unwrap_or_default())
            .unwrap_or_default();
    assert_eq!(config["server"], "manifold-demo");
}

#[test]
fn resource_templates_and_notes() {
    let mut state = initialized();
    let result = ok(&mut state, "resources/templates/list", json!({}));
    assert_eq!(
        result["resourceTemplates"][0]["uriTemplate"],
        "demo://notes/{topic}"
    );

    let result = ok(
        &mut state,
        "resources/read",
        json!({ "uri": "demo://notes/rust%20async" }),
    );
    let content = &result["contents"][0];
    assert_eq!(content["uri"], "demo://notes/rust%20async");
    assert!(
        content["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("# Note: rust async")
    );
}

#[test]
fn unknown_resources_are_not_found() {
    let mut state = initialized();
    for uri in [
        "demo://nope",
        "demo://notes/",
        "demo://notes/a/b",
        "demo://notes/%zz",
        "file:///etc",
    ] {
        let error = err(&mut state, "resources/read", json!({ "uri": uri }));
        assert_eq!(error["code"], -32002, "{uri}");
        assert_eq!(error["data"]["uri"], uri);
    }
    assert_eq!(err(&mut state, "resources/read", json!({}))["code"], -32602);
}

#[test]
fn prompts_list_and_get() {
    let mut state = initialized();
    let result = ok(&mut state, "prompts/list", json!({}));
    let prompts = &result["prompts"];
    assert_eq!(prompts[0]["name"], "summarize");
    assert_eq!(
        prompts[0]["arguments"][0],
        json!({ "name": "text", "description": "The text to summarize", "required": true })
    );
    assert_eq!(prompts[0]["arguments"][1]["required"], false);
    assert_eq!(prompts[1]["name"], "greet");

    let result = ok(
        &mut state,
        "prompts/get",
        json!({ "name": "summarize", "arguments": { "text": "Long story.", "style": "detailed" } }),
    );
    let message = &result["messages"][0];
    assert_eq!(message["role"], "user");
    assert_eq!(message["content"]["type"], "text");
    let text = message["content"]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("few paragraphs") && text.ends_with("Long story."),
        "{text}"
    );
    assert!(result["description"].is_string());

    let result = ok(
        &mut state,
        "prompts/get",
        json!({ "name": "greet", "arguments": { "name": "Ada" } }),
    );
    let text = result["messages"][0]["content"]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("Ada"));
}

#[test]
fn prompt_errors() {
    let mut state = initialized();
    let cases = [
        json!({ "name": "greet" }),
        json!({ "name": "greet", "arguments": {} }),
        json!({ "name": "greet", "arguments": { "name": 5 } }),
        json!({ "name": "summarize", "arguments": { "style": "brief" } }),
        json!({ "name": "summarize", "arguments": { "text": "x", "style": "epic" } }),
        json!({ "name": "nope" }),
        json!({}),
    ];
    for params in cases {
        assert_eq!(
            err(&mut state, "prompts/get", params.clone())["code"],
            -32602,
            "{params}"
        );
    }
}

#[test]
fn completions() {
    let mut state = initialized();
    let complete = |state: &mut DemoState, reference: Value, name: &str, value: &str| {
        let result = ok(
            state,
            "completion/complete",
            json!({ "ref": reference, "argument": { "name": name, "value": value } }),
        );
        assert_eq!(result["completion"]["hasMore"], false);
        result["completion"]["values"].clone()
    };
    let summarize = json!({ "type": "ref/prompt", "name": "summarize" });
    assert_eq!(
        complete(&mut state, summarize.clone(), "style", ""),
        json!(["brief", "detailed"])
    );
    assert_eq!(
        complete(&mut state, summarize.clone(), "style", "De"),
        json!(["detailed"])
    );
    assert_eq!(complete(&mut state, summarize, "text", "x"), json!([]));
    let notes = json!({ "type": "ref/resource", "uri": "demo://notes/{topic}" });
    assert_eq!(
        complete(&mut state, notes.clone(), "topic", "r"),
        json!(["resources", "rust"])
    );
    assert_eq!(complete(&mut state, notes, "topic", "zzz"), json!([]));

    let bad = [
        json!({ "ref": { "type": "ref/prompt", "name": "nope" }, "argument": { "name": "x", "value": "" } }),
        json!({ "ref": { "type": "ref/resource", "uri": "demo://x/{y}" }, "argument": { "name": "y", "value": "" } }),
        json!({ "ref": { "type": "ref/other" }, "argument": { "name": "x", "value": "" } }),
        json!({ "ref": { "type": "ref/prompt", "name": "greet" } }),
    ];
    for params in bad {
        assert_eq!(
            err(&mut state, "completion/complete", params.clone())["code"],
            -32602,
            "{params}"
        );
    }
}

// ---------------------------------------------------------------------------
// Both eras on one stdio connection: the era lock, and the 2026-07-28 era.
// ---------------------------------------------------------------------------

const STATELESS: &str = "2026-07-28";
const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const CAPS_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";
const SUBSCRIPTION_KEY: &str = "io.modelcontextprotocol/subscriptionId";

/// `params` with the 2026-07-28 envelope declaring `caps`.
fn enveloped(params: Value, caps: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        VERSION_KEY: STATELESS,
        CAPS_KEY: caps,
        "io.modelcontextprotocol/clientInfo": { "name": "test", "version": "0" },
    });
    params
}

/// Sends a request with a given id and returns whatever the server writes.
fn send(state: &mut DemoState, id: Value, method: &str, params: Value) -> Option<Value> {
    handle(
        state,
        json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }),
    )
}

/// A connection locked to the stateless era by a `server/discover`.
fn stateless() -> DemoState {
    let mut state = DemoState::new();
    let reply = send(
        &mut state,
        json!(0),
        "server/discover",
        enveloped(json!({}), json!({})),
    );
    assert!(
        reply.as_ref().is_some_and(|r| r.get("result").is_some()),
        "{reply:?}"
    );
    state
}

/// A stateless request (envelope with `caps`) that must succeed; its `result`.
fn stateless_ok_with(state: &mut DemoState, method: &str, params: Value, caps: Value) -> Value {
    let reply = request(state, 7, method, enveloped(params, caps));
    assert!(reply.get("error").is_none(), "{method} failed: {reply}");
    reply["result"].clone()
}

fn stateless_ok(state: &mut DemoState, method: &str, params: Value) -> Value {
    stateless_ok_with(state, method, params, json!({}))
}

/// A stateless request (envelope with `caps`) that must fail; its `error`.
fn stateless_err_with(state: &mut DemoState, method: &str, params: Value, caps: Value) -> Value {
    err(state, method, enveloped(params, caps))
}

fn stateless_err(state: &mut DemoState, method: &str, params: Value) -> Value {
    stateless_err_with(state, method, params, json!({}))
}

fn elicit_caps() -> Value {
    json!({ "elicitation": { "form": {} } })
}

#[test]
fn an_enveloped_first_request_locks_the_stateless_era() {
    let mut state = stateless();
    // Requests need no `initialize` now…
    let result = stateless_ok(&mut state, "tools/list", json!({}));
    assert_eq!(result["resultType"], "complete");
    // …and one is refused with the revisions this connection speaks.
    let error = err(
        &mut state,
        "initialize",
        json!({ "protocolVersion": "2025-11-25", "capabilities": {} }),
    );
    assert_eq!(error["code"], -32022);
    assert_eq!(
        error["data"],
        json!({ "supported": [STATELESS], "requested": "2025-11-25" })
    );
    // Still stateless afterwards: `initialize` did not switch the era.
    assert_eq!(state.protocol_version, None);
    assert_eq!(
        stateless_ok(&mut state, "prompts/list", json!({}))["resultType"],
        "complete"
    );
}

#[test]
fn a_plain_first_request_locks_the_handshake_era() {
    // `ping` first, then the handshake: an enveloped request is -32600 from then on.
    let mut state = DemoState::new();
    assert_eq!(ok(&mut state, "ping", json!({})), json!({}));
    let error = stateless_err(&mut state, "tools/list", json!({}));
    assert_eq!(error["code"], -32600);
    let mut state = initialized();
    let error = stateless_err(&mut state, "server/discover", json!({}));
    assert_eq!(error["code"], -32600);
    // Plain requests keep working, with handshake-era results.
    let result = ok(&mut state, "tools/list", json!({}));
    assert!(result.get("resultType").is_none(), "{result}");

    // Only the version key marks a stateless request: a `_meta` with just a progress token
    // does not, and neither does an `initialize` carrying the key.
    let mut state = DemoState::new();
    let error = err(
        &mut state,
        "tools/list",
        json!({ "_meta": { "progressToken": 1 } }),
    );
    assert_eq!(error["message"], "not initialized");
    let mut state = DemoState::new();
    let result = ok(
        &mut state,
        "initialize",
        json!({ "protocolVersion": "2025-11-25", "_meta": { VERSION_KEY: STATELESS } }),
    );
    assert_eq!(result["protocolVersion"], "2025-11-25");
}

#[test]
fn invalid_messages_do_not_lock_the_era() {
    let mut state = DemoState::new();
    let reply = handle(
        &mut state,
        json!({ "jsonrpc": "1.0", "id": 1, "method": "ping" }),
    );
    assert_eq!(
        reply.map(|r| r["error"]["code"].clone()),
        Some(json!(-32600))
    );
    assert_eq!(
        handle(
            &mut state,
            json!({ "jsonrpc": "2.0", "method": "notifications/x" })
        ),
        None
    );
    // The first real request still decides.
    assert_eq!(
        stateless_ok(&mut state, "tools/list", json!({}))["resultType"],
        "complete"
    );
}

#[test]
fn discover_describes_the_server_for_both_eras() {
    let mut state = DemoState::new();
    let result = stateless_ok(&mut state, "server/discover", json!({}));
    assert_eq!(result["resultType"], "complete");
    assert_eq!(
        result["supportedVersions"],
        json!([
            "2024-11-05",
            "2025-03-26",
            "2025-06-18",
            "2025-11-25",
            STATELESS
        ])
    );
    let caps = &result["capabilities"];
    for capability in ["tools", "prompts", "resources", "completions"] {
        assert_eq!(caps[capability], json!({}), "{capability}: {caps}");
    }
    // Nothing is promised on subscriptions/listen, since nothing here ever changes.
    let text = caps.to_string();
    assert!(
        !text.contains("listChanged") && !text.contains("subscribe"),
        "{text}"
    );
    assert!(
        result["instructions"]
            .as_str()
            .is_some_and(|s| s.contains("confirm"))
    );
    assert_eq!(result["ttlMs"], super::CATALOG_TTL_MS);
    assert!(result["ttlMs"].as_u64().is_some_and(|ttl| ttl > 0));
    assert_eq!(result["cacheScope"], "public");
    assert_eq!(result["_meta"][SERVER_INFO_KEY]["name"], "manifold-demo");
    assert_eq!(
        result["_meta"][SERVER_INFO_KEY]["version"],
        env!("CARGO_PKG_VERSION")
    );
    assert!(result.get("serverInfo").is_none() && result.get("protocolVersion").is_none());
}

#[test]
fn stateless_requests_without_the_envelope_keys_are_invalid_params() {
    let mut state = stateless();
    let cases = [
        json!({}),
        json!({ "_meta": {} }),
        json!({ "_meta": { VERSION_KEY: STATELESS } }),
        json!({ "_meta": { CAPS_KEY: {} } }),
        json!({ "_meta": { VERSION_KEY: 20260728, CAPS_KEY: {} } }),
        json!({ "_meta": { VERSION_KEY: STATELESS, CAPS_KEY: "all" } }),
    ];
    for params in cases {
        assert_eq!(
            err(&mut state, "tools/list", params.clone())["code"],
            -32602,
            "{params}"
        );
    }
    // No params at all is the same as no envelope.
    let reply = handle(
        &mut state,
        json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/list" }),
    );
    assert_eq!(
        reply.map(|r| r["error"]["code"].clone()),
        Some(json!(-32602))
    );
}

#[test]
fn unsupported_versions_are_32022_naming_the_supported_ones() {
    let mut state = stateless();
    for version in ["2025-11-25", "2099-01-01", ""] {
        let params = json!({ "_meta": { VERSION_KEY: version, CAPS_KEY: {} } });
        let error = err(&mut state, "tools/list", params);
        assert_eq!(error["code"], -32022, "{version}");
        assert_eq!(
            error["data"],
            json!({ "supported": [STATELESS], "requested": version })
        );
    }
}

#[test]
fn methods_outside_the_stateless_client_requests_are_not_found() {
    let mut state = stateless();
    for method in [
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "tasks/get",
        "tools/frobnicate",
    ] {
        let error = stateless_err(
            &mut state,
            method,
            json!({ "level": "info", "uri": "demo://readme" }),
        );
        assert_eq!(error["code"], -32601, "{method}");
    }
    // `initialize` is a version question, not a missing method.
    assert_eq!(
        err(
            &mut state,
            "initialize",
            json!({ "protocolVersion": "2025-06-18" })
        )["code"],
        -32022
    );
}

#[test]
fn every_stateless_result_is_typed_and_signed() {
    let mut state = stateless();
    let calls = [
        ("tools/list", json!({})),
        (
            "tools/call",
            json!({ "name": "echo", "arguments": { "message": "hi" } }),
        ),
        ("resources/list", json!({})),
        ("resources/templates/list", json!({})),
        ("resources/read", json!({ "uri": "demo://readme" })),
        ("prompts/list", json!({})),
        (
            "prompts/get",
            json!({ "name": "greet", "arguments": { "name": "Ada" } }),
        ),
        (
            "completion/complete",
            json!({ "ref": { "type": "ref/prompt", "name": "summarize" }, "argument": { "name": "style", "value": "" } }),
        ),
    ];
    for (method, params) in calls {
        let result = stateless_ok(&mut state, method, params);
        assert_eq!(result["resultType"], "complete", "{method}");
        assert_eq!(
            result["_meta"][SERVER_INFO_KEY]["name"], "manifold-demo",
            "{method}"
        );
    }
}

#[test]
fn listings_and_reads_carry_cache_hints_and_nothing_else_does() {
    let mut state = stateless();
    for (method, params) in [
        ("tools/list", json!({})),
        ("resources/list", json!({})),
        ("resources/templates/list", json!({})),
        ("prompts/list", json!({})),
        ("resources/read", json!({ "uri": "demo://notes/rust" })),
        ("resources/read", json!({ "uri": "demo://config.json" })),
    ] {
        let result = stateless_ok(&mut state, method, params);
        assert_eq!(result["ttlMs"], super::CATALOG_TTL_MS, "{method}");
        assert_eq!(result["cacheScope"], "public", "{method}");
    }
    for (method, params) in [
        ("tools/call", json!({ "name": "now" })),
        (
            "prompts/get",
            json!({ "name": "greet", "arguments": { "name": "Ada" } }),
        ),
        (
            "completion/complete",
            json!({ "ref": { "type": "ref/prompt", "name": "summarize" }, "argument": { "name": "style", "value": "b" } }),
        ),
    ] {
        let result = stateless_ok(&mut state, method, params);
        assert!(
            result.get("ttlMs").is_none() && result.get("cacheScope").is_none(),
            "{method}: {result}"
        );
    }
}

#[test]
fn stateless_listings_are_the_same_for_every_client() {
    let mut state = stateless();
    let names = |result: &Value| -> Vec<String> {
        result["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect()
    };
    let plain = stateless_ok_with(&mut state, "tools/list", json!({}), json!({}));
    let eliciting = stateless_ok_with(&mut state, "tools/list", json!({}), elicit_caps());
    assert_eq!(
        names(&plain),
        ["add", "echo", "word_count", "now", "confirm"]
    );
    assert_eq!(plain, eliciting);
    // Cursors are still refused.
    assert_eq!(
        stateless_err(&mut state, "prompts/list", json!({ "cursor": "x" }))["code"],
        -32602
    );
}

#[test]
fn a_missing_resource_is_invalid_params_in_the_stateless_era() {
    let mut state = stateless();
    let error = stateless_err(
        &mut state,
        "resources/read",
        json!({ "uri": "demo://nope" }),
    );
    assert_eq!(error["code"], -32602);
    assert_eq!(error["data"]["uri"], "demo://nope");
    // Other handler errors keep their codes.
    let error = stateless_err(&mut state, "tools/call", json!({ "name": "nope" }));
    assert_eq!(error["code"], -32602);
}

#[test]
fn listen_is_acknowledged_honouring_nothing_and_stays_open() {
    let mut state = stateless();
    let ack = send(
        &mut state,
        json!("l1"),
        "subscriptions/listen",
        enveloped(
            json!({ "notifications": { "toolsListChanged": true, "resourceSubscriptions": ["demo://readme"] } }),
            json!({}),
        ),
    )
    .expect("an acknowledgement");
    assert_eq!(
        ack,
        json!({
            "jsonrpc": "2.0",
            "method": "notifications/subscriptions/acknowledged",
            "params": { "_meta": { SUBSCRIPTION_KEY: "l1" }, "notifications": {} },
        })
    );
    // A second stream, with a numeric id.
    let ack = send(
        &mut state,
        json!(5),
        "subscriptions/listen",
        enveloped(json!({ "notifications": {} }), json!({})),
    )
    .expect("an acknowledgement");
    assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_KEY], 5);
    // An id already naming an open stream cannot open another.
    let reply = send(
        &mut state,
        json!("l1"),
        "subscriptions/listen",
        enveloped(json!({ "notifications": {} }), json!({})),
    );
    assert_eq!(
        reply.map(|r| r["error"]["code"].clone()),
        Some(json!(-32600))
    );
    // Nor can any other request while the stream is open.
    let reply = send(
        &mut state,
        json!(5),
        "tools/list",
        enveloped(json!({}), json!({})),
    );
    assert_eq!(
        reply.map(|r| r["error"]["code"].clone()),
        Some(json!(-32600))
    );
    // A listen needs a filter.
    assert_eq!(
        stateless_err(&mut state, "subscriptions/listen", json!({}))["code"],
        -32602
    );
    // Other requests are served meanwhile.
    assert_eq!(
        stateless_ok(&mut state, "tools/list", json!({}))["resultType"],
        "complete"
    );

    // The client cancels "l1": it ends without another message (stdio: nothing more may be
    // sent for a cancelled request), and its id is free again.
    let cancel = json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": "l1" } });
    assert_eq!(handle(&mut state, cancel), None);
    let reply = send(
        &mut state,
        json!("l1"),
        "subscriptions/listen",
        enveloped(json!({ "notifications": {} }), json!({})),
    );
    assert_eq!(
        reply.map(|r| r["method"].clone()),
        Some(json!("notifications/subscriptions/acknowledged"))
    );
    let cancel = json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": "l1" } });
    assert_eq!(handle(&mut state, cancel), None);

    // When input ends, the streams still open get their closing result.
    let closing = super::end_of_input(&mut state);
    assert_eq!(closing.len(), 1, "{closing:?}");
    assert_eq!(closing[0]["id"], 5);
    assert_eq!(closing[0]["result"]["resultType"], "complete");
    assert_eq!(closing[0]["result"]["_meta"][SUBSCRIPTION_KEY], 5);
    assert!(super::end_of_input(&mut state).is_empty());
}

// --- confirm, 2026-07-28: multi round-trip requests -------------------------

fn confirm_params(action: &str) -> Value {
    json!({ "name": "confirm", "arguments": { "action": action } })
}

/// The first round of `confirm`: returns the `input_required` result.
fn ask(state: &mut DemoState, action: &str) -> Value {
    let result = stateless_ok_with(state, "tools/call", confirm_params(action), elicit_caps());
    assert_eq!(result["resultType"], "input_required", "{result}");
    result
}

/// A retry of `confirm` with `extra` params (answers, state) added.
fn retry(state: &mut DemoState, id: i64, action: &str, extra: Value) -> Value {
    let mut params = confirm_params(action);
    if let (Value::Object(params), Value::Object(extra)) = (&mut params, extra) {
        params.extend(extra);
    }
    request(state, id, "tools/call", enveloped(params, elicit_caps()))
}

#[test]
fn confirm_asks_through_an_input_request() {
    let mut state = stateless();
    let result = ask(&mut state, "delete the draft");
    let question = &result["inputRequests"]["confirm"];
    assert_eq!(question["method"], "elicitation/create");
    assert_eq!(question["params"]["mode"], "form");
    assert_eq!(
        question["params"]["message"],
        "Please confirm: delete the draft"
    );
    let schema = &question["params"]["requestedSchema"];
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["confirmed"]["type"], "boolean");
    assert_eq!(schema["required"], json!(["confirmed"]));
    assert!(
        result["requestState"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    // An interim result is not cacheable.
    assert!(result.get("ttlMs").is_none());
    assert_eq!(result["_meta"][SERVER_INFO_KEY]["name"], "manifold-demo");
    // An empty `elicitation` capability means form mode too.
    let result = stateless_ok_with(
        &mut state,
        "tools/call",
        confirm_params("x"),
        json!({ "elicitation": {} }),
    );
    assert_eq!(result["resultType"], "input_required");
}

#[test]
fn confirm_completes_with_the_answer_on_the_retry() {
    let cases = [
        (
            json!({ "action": "accept", "content": { "confirmed": true, "note": "go" } }),
            "The user confirmed: ship it (note: go)",
            json!({ "response": "accept", "confirmed": true, "note": "go" }),
        ),
        (
            json!({ "action": "accept", "content": { "confirmed": false } }),
            "The user did not confirm: ship it",
            json!({ "response": "accept", "confirmed": false }),
        ),
        (
            json!({ "action": "decline" }),
            "The user declined to answer whether to ship it",
            json!({ "response": "decline", "confirmed": false }),
        ),
        (
            json!({ "action": "cancel" }),
            "The user dismissed the question whether to ship it",
            json!({ "response": "cancel", "confirmed": false }),
        ),
    ];
    for (answer, text, structured) in cases {
        let mut state = stateless();
        let asked = ask(&mut state, "ship it");
        let reply = retry(
            &mut state,
            8,
            "ship it",
            json!({ "inputResponses": { "confirm": answer }, "requestState": asked["requestState"] }),
        );
        let result = &reply["result"];
        assert_eq!(result["resultType"], "complete", "{reply}");
        assert_eq!(first_text(result), text);
        assert_eq!(result["structuredContent"], structured);
        assert!(result.get("isError").is_none());
    }
}

#[test]
fn confirm_needs_form_elicitation_declared_on_the_request() {
    let mut state = stateless();
    for caps in [
        json!({}),
        json!({ "sampling": {} }),
        json!({ "elicitation": { "url": {} } }),
    ] {
        let error = stateless_err_with(&mut state, "tools/call", confirm_params("x"), caps.clone());
        assert_eq!(error["code"], -32021, "{caps}");
        assert_eq!(
            error["data"]["requiredCapabilities"],
            json!({ "elicitation": { "form": {} } })
        );
    }
    // Declaring it once does not carry over to the next request.
    ask(&mut state, "x");
    let error = stateless_err(&mut state, "tools/call", confirm_params("x"));
    assert_eq!(error["code"], -32021);
}

#[test]
fn confirm_rejects_a_state_that_was_tampered_with_or_is_foreign() {
    let mut state = stateless();
    let asked = ask(&mut state, "pay 10 EUR");
    let good = asked["requestState"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let answer = json!({ "confirm": { "action": "accept", "content": { "confirmed": true } } });

    // One character of the tag changed.
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap_or('A');
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    // The expiry pushed out.
    let parts: Vec<&str> = good.split('.').collect();
    let later = format!("{}.{}.{}", parts[0], u64::MAX, parts[2]);
    // A state issued by another process (another key) for the very same call.
    let mut other = stateless();
    let foreign = ask(&mut other, "pay 10 EUR")["requestState"].clone();

    for bad in [
        json!(tampered),
        json!(later),
        foreign,
        json!("v1.1.AAAA"),
        json!(""),
        json!(42),
    ] {
        let reply = retry(
            &mut state,
            9,
            "pay 10 EUR",
            json!({ "inputResponses": answer, "requestState": bad }),
        );
        assert_eq!(reply["error"]["code"], -32602, "{bad}: {reply}");
    }
    // The genuine state for other arguments is refused too.
    let reply = retry(
        &mut state,
        9,
        "pay 10000 EUR",
        json!({ "inputResponses": answer, "requestState": good }),
    );
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    // Answers without the state that came with the question.
    let reply = retry(
        &mut state,
        9,
        "pay 10 EUR",
        json!({ "inputResponses": answer }),
    );
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    // And the genuine state with the original arguments works.
    let reply = retry(
        &mut state,
        9,
        "pay 10 EUR",
        json!({ "inputResponses": answer, "requestState": good }),
    );
    assert_eq!(
        reply["result"]["structuredContent"]["confirmed"], true,
        "{reply}"
    );
}

#[test]
fn confirm_asks_again_when_the_answer_is_missing() {
    let mut state = stateless();
    let asked = ask(&mut state, "restart");
    for responses in [json!({}), json!({ "other": { "action": "accept" } })] {
        let reply = retry(
            &mut state,
            10,
            "restart",
            json!({ "inputResponses": responses, "requestState": asked["requestState"] }),
        );
        assert_eq!(reply["result"]["resultType"], "input_required", "{reply}");
        assert!(reply["result"]["inputRequests"]["confirm"].is_object());
    }
    // A state alone (no answers yet) is also just asked again.
    let reply = retry(
        &mut state,
        11,
        "restart",
        json!({ "requestState": asked["requestState"] }),
    );
    assert_eq!(reply["result"]["resultType"], "input_required", "{reply}");
}

#[test]
fn confirm_refuses_malformed_answers_and_arguments() {
    let mut state = stateless();
    let asked = ask(&mut state, "restart");
    for answer in [
        json!({ "action": "maybe" }),
        json!({ "action": "accept" }),
        json!({ "action": "accept", "content": { "confirmed": "yes" } }),
        json!({ "action": "accept", "content": { "confirmed": true, "note": 3 } }),
        json!("accept"),
    ] {
        let reply = retry(
            &mut state,
            12,
            "restart",
            json!({ "inputResponses": { "confirm": answer }, "requestState": asked["requestState"] }),
        );
        assert_eq!(reply["error"]["code"], -32602, "{answer}: {reply}");
    }
    let reply = retry(&mut state, 12, "restart", json!({ "inputResponses": [1] }));
    assert_eq!(reply["error"]["code"], -32602);
    // Bad arguments are a tool error before anything is asked.
    let result = stateless_ok_with(
        &mut state,
        "tools/call",
        json!({ "name": "confirm", "arguments": {} }),
        elicit_caps(),
    );
    assert_eq!(result["isError"], true);
    assert_eq!(result["resultType"], "complete");
}

#[test]
fn request_states_bind_arguments_as_json_and_expire() {
    let key = super::confirm::StateKey::random();
    let args = |v: Value| v.as_object().cloned().unwrap_or_default();
    let sealed = key.seal(
        "tools/call",
        "confirm",
        &args(json!({ "a": 1, "b": { "x": [1, 2], "y": "z" } })),
        100,
    );
    // The same arguments written in another order still match.
    let reordered = args(json!({ "b": { "y": "z", "x": [1, 2] }, "a": 1 }));
    assert_eq!(
        key.open("tools/call", "confirm", &reordered, &sealed, 100),
        Ok(())
    );
    // Anything else bound into the state does not.
    assert!(
        key.open("tools/call", "echo", &reordered, &sealed, 100)
            .is_err()
    );
    assert!(
        key.open("prompts/get", "confirm", &reordered, &sealed, 100)
            .is_err()
    );
    let changed = args(json!({ "b": { "y": "z", "x": [2, 1] }, "a": 1 }));
    assert!(
        key.open("tools/call", "confirm", &changed, &sealed, 100)
            .is_err()
    );
    let other = super::confirm::StateKey::random();
    assert!(
        other
            .open("tools/call", "confirm", &reordered, &sealed, 100)
            .is_err()
    );
    // Expired after its time.
    let expired = key.open("tools/call", "confirm", &reordered, &sealed, 101);
    assert!(expired.is_err_and(|why| why.contains("expired")));
}

#[test]
fn processes_given_the_same_secret_accept_each_others_states() {
    let args = json!({ "action": "deploy" }).as_object().cloned().unwrap();
    let one = super::confirm::StateKey::derived("shared secret");
    let sealed = one.seal("tools/call", "confirm", &args, 100);
    let two = super::confirm::StateKey::derived("shared secret");
    assert_eq!(
        two.open("tools/call", "confirm", &args, &sealed, 100),
        Ok(())
    );
    let other = super::confirm::StateKey::derived("another secret");
    assert!(
        other
            .open("tools/call", "confirm", &args, &sealed, 100)
            .is_err()
    );
}

// --- confirm, handshake era: a real elicitation/create request ---------------

fn initialized_with(version: &str, capabilities: Value) -> DemoState {
    let mut state = DemoState::new();
    ok(
        &mut state,
        "initialize",
        json!({ "protocolVersion": version, "capabilities": capabilities }),
    );
    state
}

/// Calls `confirm` with id `id` and returns the elicitation request the server sends.
fn handshake_ask(state: &mut DemoState, id: i64, action: &str) -> Value {
    let msg = send(state, json!(id), "tools/call", confirm_params(action)).expect("a message");
    assert_eq!(msg["method"], "elicitation/create", "{msg}");
    assert!(msg["id"].is_string(), "{msg}");
    msg
}

#[test]
fn handshake_sessions_see_confirm_only_if_they_can_be_asked() {
    let tool_names = |state: &mut DemoState| -> Vec<String> {
        ok(state, "tools/list", json!({}))["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect()
    };
    let mut state = initialized_with("2025-11-25", json!({ "elicitation": {} }));
    assert!(tool_names(&mut state).contains(&"confirm".to_owned()));
    let mut state = initialized_with("2025-06-18", json!({ "elicitation": {} }));
    assert!(tool_names(&mut state).contains(&"confirm".to_owned()));
    for (version, caps) in [
        ("2025-11-25", json!({})),
        ("2025-11-25", json!({ "elicitation": { "url": {} } })),
        // Elicitation did not exist before 2025-06-18.
        ("2025-03-26", json!({ "elicitation": {} })),
    ] {
        let mut state = initialized_with(version, caps.clone());
        assert!(
            !tool_names(&mut state).contains(&"confirm".to_owned()),
            "{version} {caps}"
        );
        // Called anyway, it explains instead of asking.
        let result = call_tool(&mut state, "confirm", json!({ "action": "x" }));
        assert_eq!(result["isError"], true);
        assert!(first_text(&result).contains("elicitation"), "{result}");
    }
}

#[test]
fn handshake_confirm_sends_an_elicitation_request_and_answers_with_the_reply() {
    let mut state = initialized_with("2025-11-25", json!({ "elicitation": { "form": {} } }));
    let asked = handshake_ask(&mut state, 21, "archive the logs");
    assert_eq!(asked["jsonrpc"], "2.0");
    assert_eq!(asked["params"]["mode"], "form");
    assert_eq!(
        asked["params"]["message"],
        "Please confirm: archive the logs"
    );
    // Other requests are served while the question is out.
    assert_eq!(
        first_text(&call_tool(
            &mut state,
            "echo",
            json!({ "message": "still here" })
        )),
        "still here"
    );
    let reply = handle(
        &mut state,
        json!({ "jsonrpc": "2.0", "id": asked["id"], "result": { "action": "accept", "content": { "confirmed": true } } }),
    )
    .expect("the tools/call reply");
    assert_eq!(reply["id"], 21);
    assert_eq!(
        first_text(&reply["result"]),
        "The user confirmed: archive the logs"
    );
    assert_eq!(reply["result"]["structuredContent"]["response"], "accept");
    // Handshake-era results stay as they were: no stateless fields.
    assert!(reply["result"].get("resultType").is_none(), "{reply}");
    // The same response again matches nothing.
    let again = json!({ "jsonrpc": "2.0", "id": asked["id"], "result": { "action": "decline" } });
    assert_eq!(handle(&mut state, again), None);

    // 2025-06-18 elicitation requests have no `mode`.
    let mut state = initialized_with("2025-06-18", json!({ "elicitation": {} }));
    let asked = handshake_ask(&mut state, 22, "x");
    assert!(asked["params"].get("mode").is_none(), "{asked}");
    assert_eq!(asked["params"]["requestedSchema"]["type"], "object");
}

#[test]
fn handshake_confirm_reports_declines_errors_and_bad_answers() {
    let mut state = initialized_with("2025-11-25", json!({ "elicitation": {} }));
    let asked = handshake_ask(&mut state, 30, "x");
    let reply = handle(
        &mut state,
        json!({ "jsonrpc": "2.0", "id": asked["id"], "result": { "action": "decline" } }),
    )
    .expect("reply");
    assert_eq!(
        first_text(&reply["result"]),
        "The user declined to answer whether to x"
    );

    let asked = handshake_ask(&mut state, 31, "x");
    let reply = handle(
        &mut state,
        json!({ "jsonrpc": "2.0", "id": asked["id"], "error": { "code": -32600, "message": "no UI" } }),
    )
    .expect("reply");
    assert_eq!(reply["id"], 31);
    assert_eq!(reply["result"]["isError"], true);
    assert!(first_text(&reply["result"]).contains("no UI"));

    let asked = handshake_ask(&mut state, 32, "x");
    let reply = handle(
        &mut state,
        json!({ "jsonrpc": "2.0", "id": asked["id"], "result": { "action": "perhaps" } }),
    )
    .expect("reply");
    assert_eq!(reply["result"]["isError"], true);

    // Bad arguments never reach the user.
    let result = call_tool(&mut state, "confirm", json!({ "action": 1 }));
    assert_eq!(result["isError"], true);
}

#[test]
fn handshake_confirm_can_be_cancelled_and_is_bounded() {
    let mut state = initialized_with("2025-11-25", json!({ "elicitation": {} }));
    let asked = handshake_ask(&mut state, 40, "x");
    let cancel = json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": 40 } });
    let told = handle(&mut state, cancel.clone()).expect("the question is withdrawn");
    assert_eq!(told["method"], "notifications/cancelled");
    assert_eq!(told["params"]["requestId"], asked["id"]);
    assert!(told.get("id").is_none());
    // The late answer is ignored, and a second cancel has nothing to cancel.
    let late = json!({ "jsonrpc": "2.0", "id": asked["id"], "result": { "action": "cancel" } });
    assert_eq!(handle(&mut state, late), None);
    assert_eq!(handle(&mut state, cancel), None);

    let mut ids = std::collections::BTreeSet::new();
    for n in 0..16 {
        let asked = handshake_ask(&mut state, 100 + n, "x");
        assert!(
            ids.insert(asked["id"].to_string()),
            "request ids are unique"
        );
    }
    let result = call_tool(&mut state, "confirm", json!({ "action": "x" }));
    assert_eq!(result["isError"], true);
    assert!(first_text(&result).contains("Too many"), "{result}");
}

#[test]
fn stateless_connections_ignore_responses() {
    let mut state = stateless();
    ask(&mut state, "x");
    let response =
        json!({ "jsonrpc": "2.0", "id": "manifold-demo-1", "result": { "action": "accept" } });
    assert_eq!(handle(&mut state, response), None);
}

// --- the 2026-07-28 JSON schema ----------------------------------------------

/// The 2026-07-28 schema, copied from the specification into the repository.
const SCHEMA_2026_07_28: &str = include_str!("../../tests/schema/2026-07-28.json");

/// Checks `instance` against the schema's definition `def`; the problems found, if any.
fn schema_problems(def: &str, instance: &Value) -> Vec<String> {
    let mut schema: Value = serde_json::from_str(SCHEMA_2026_07_28).unwrap_or_default();
    schema["$ref"] = json!(format!("#/$defs/{def}"));
    let validator = match jsonschema::validator_for(&schema) {
        Ok(validator) => validator,
        Err(error) => return vec![format!("the schema does not compile: {error}")],
    };
    validator
        .iter_errors(instance)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect()
}

#[track_caller]
fn assert_schema(def: &str, instance: &Value) {
    let problems = schema_problems(def, instance);
    assert!(problems.is_empty(), "not a {def}: {problems:?}\n{instance}");
}

#[test]
fn the_schema_check_can_fail() {
    let mut state = stateless();
    let mut result = stateless_ok(&mut state, "server/discover", json!({}));
    assert_schema("DiscoverResult", &result);
    if let Value::Object(obj) = &mut result {
        obj.remove("ttlMs");
    }
    assert!(!schema_problems("DiscoverResult", &result).is_empty());
    assert!(!schema_problems("ReadResourceResult", &json!({ "resultType": "complete", "contents": [], "ttlMs": 1, "cacheScope": "everyone" })).is_empty());
    assert!(!schema_problems("CallToolResult", &json!({ "content": [] })).is_empty());
}

#[test]
fn every_stateless_message_matches_the_2026_07_28_schema() {
    let mut state = stateless();
    let mut id = 100;
    let mut exchange = |state: &mut DemoState, method: &str, params: Value, caps: Value| {
        id += 1;
        send(state, json!(id), method, enveloped(params, caps)).expect("a message")
    };
    let none = || json!({});

    // Each success, as a whole response and as its specific result type.
    let results = [
        ("server/discover", json!({}), "DiscoverResult"),
        ("tools/list", json!({}), "ListToolsResult"),
        ("resources/list", json!({}), "ListResourcesResult"),
        (
            "resources/templates/list",
            json!({}),
            "ListResourceTemplatesResult",
        ),
        (
            "resources/read",
            json!({ "uri": "demo://readme" }),
            "ReadResourceResult",
        ),
        (
            "resources/read",
            json!({ "uri": "demo://config.json" }),
            "ReadResourceResult",
        ),
        (
            "resources/read",
            json!({ "uri": "demo://notes/tokio" }),
            "ReadResourceResult",
        ),
        ("prompts/list", json!({}), "ListPromptsResult"),
        (
            "prompts/get",
            json!({ "name": "summarize", "arguments": { "text": "t", "style": "brief" } }),
            "GetPromptResult",
        ),
        (
            "prompts/get",
            json!({ "name": "greet", "arguments": { "name": "Ada" } }),
            "GetPromptResult",
        ),
        (
            "completion/complete",
            json!({ "ref": { "type": "ref/resource", "uri": "demo://notes/{topic}" }, "argument": { "name": "topic", "value": "r" } }),
            "CompleteResult",
        ),
        (
            "tools/call",
            json!({ "name": "add", "arguments": { "a": 1, "b": 2 } }),
            "CallToolResult",
        ),
        (
            "tools/call",
            json!({ "name": "echo", "arguments": { "message": "m" } }),
            "CallToolResult",
        ),
        (
            "tools/call",
            json!({ "name": "word_count", "arguments": { "text": "a b" } }),
            "CallToolResult",
        ),
        ("tools/call", json!({ "name": "now" }), "CallToolResult"),
        (
            "tools/call",
            json!({ "name": "add", "arguments": {} }),
            "CallToolResult",
        ),
    ];
    for (method, params, def) in results {
        let msg = exchange(&mut state, method, params, none());
        assert_schema(&format!("{def}Response"), &msg);
        assert_schema(def, &msg["result"]);
    }

    // confirm: the question, then the answer.
    let asked = exchange(
        &mut state,
        "tools/call",
        confirm_params("go"),
        elicit_caps(),
    );
    assert_schema("CallToolResultResponse", &asked);
    assert_schema("InputRequiredResult", &asked["result"]);
    assert_schema(
        "ElicitRequest",
        &asked["result"]["inputRequests"]["confirm"],
    );
    assert_schema(
        "ElicitRequestFormParams",
        &asked["result"]["inputRequests"]["confirm"]["params"],
    );
    let answer =
        json!({ "confirm": { "action": "accept", "content": { "confirmed": true, "note": "n" } } });
    assert_schema("InputResponses", &answer);
    let mut params = confirm_params("go");
    params["inputResponses"] = answer;
    params["requestState"] = asked["result"]["requestState"].clone();
    let done = exchange(&mut state, "tools/call", params.clone(), elicit_caps());
    assert_schema("CallToolResultResponse", &done);
    assert_schema("CallToolResult", &done["result"]);
    assert_schema("CallToolRequestParams", &enveloped(params, elicit_caps()));

    // A listen: the acknowledgement, and the result that closes it.
    let ack = exchange(
        &mut state,
        "subscriptions/listen",
        json!({ "notifications": { "promptsListChanged": true } }),
        none(),
    );
    assert_schema("SubscriptionsAcknowledgedNotification", &ack);
    assert_schema("ServerNotification", &ack);
    for closed in super::end_of_input(&mut state) {
        assert_schema("SubscriptionsListenResultResponse", &closed);
    }

    // Errors.
    let msg = send(
        &mut state,
        json!(1),
        "tools/list",
        json!({ "_meta": { VERSION_KEY: "2024-01-01", CAPS_KEY: {} } }),
    )
    .expect("an error");
    assert_schema("UnsupportedProtocolVersionError", &msg);
    let msg = send(
        &mut state,
        json!(2),
        "initialize",
        json!({ "protocolVersion": "2025-11-25" }),
    )
    .expect("an error");
    assert_schema("UnsupportedProtocolVersionError", &msg);
    let msg = exchange(&mut state, "tools/call", confirm_params("go"), none());
    assert_schema("MissingRequiredClientCapabilityError", &msg);
    let msg = exchange(&mut state, "ping", json!({}), none());
    assert_schema("JSONRPCErrorResponse", &msg);
    assert_schema("MethodNotFoundError", &msg["error"]);
    for (method, params) in [
        ("resources/read", json!({ "uri": "demo://missing" })),
        ("tools/call", json!({ "name": "missing" })),
    ] {
        let msg = exchange(&mut state, method, params, none());
        assert_schema("JSONRPCErrorResponse", &msg);
        assert_schema("InvalidParamsError", &msg["error"]);
    }
    let msg = send(&mut state, json!(3), "tools/list", json!({})).expect("an error");
    assert_schema("InvalidParamsError", &msg["error"]);
}
