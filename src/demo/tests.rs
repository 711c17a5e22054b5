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
