//! The `policy` section against the real binary. Two principals without any authentication
//! configured: HTTP clients are `anonymous`, the stdio face's client is `local`. A rule about
//! `anonymous` therefore hides items from HTTP clients and not from the stdio client, on
//! listings and on calls alike.

mod support;

use serde_json::{Value, json};
use support::{Gateway, Mcp, StdioClient, hermetic, manifold_bin, stdio_fixture};

/// Hides some of each kind from `anonymous`; pages of 3 so filtering meets paging.
fn config(extra: &str) -> String {
    format!(
        "page_size: 3\nupstreams:\n{}policy:\n{extra}  rules:\n    - who: {{subjects: [anonymous]}}\n      effect: deny\n      tools: [slow, crash, \"tool_*\"]\n      prompts: [about]\n      resources: [\"fixture://alpha/item/*\", \"fixture://alpha/tpl/*\"]\n",
        stdio_fixture("alpha", &[])
    )
}

fn prefixed(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("alpha__{n}")).collect()
}

/// An error object as text with `name` replaced by `X`, to compare two refusals' shapes.
fn shape(error: &Value, name: &str) -> String {
    error.to_string().replace(name, "X")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_hides_items_from_one_principal_and_not_from_another() {
    let yaml = config("");
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let http = Mcp::connect(&gw.url).await;
    let mut stdio = StdioClient::start(&yaml).await;

    // Listings: HTTP (anonymous) sees only what it may use, across pages.
    let tools = http.list_keys("tools/list", "tools", "name").await;
    assert_eq!(
        tools,
        prefixed(&[
            "whoami",
            "echo",
            "add_tool",
            "remove_tool",
            "fail",
            "envelope",
            "journal",
            "touch"
        ])
    );
    let prompts = http.list_keys("prompts/list", "prompts", "name").await;
    assert_eq!(prompts, prefixed(&["greet"]));
    let resources = http.list_keys("resources/list", "resources", "uri").await;
    assert_eq!(resources, ["fixture://alpha/info"]);
    let templates = http
        .list_keys(
            "resources/templates/list",
            "resourceTemplates",
            "uriTemplate",
        )
        .await;
    assert!(templates.is_empty(), "{templates:?}");

    // The stdio client (local) sees everything.
    let all_tools: Vec<String> = support::fixture_tools(3)
        .iter()
        .map(|n| format!("alpha__{n}"))
        .collect();
    assert_eq!(
        stdio.list_keys("tools/list", "tools", "name").await,
        all_tools
    );
    assert_eq!(
        stdio.list_keys("prompts/list", "prompts", "name").await,
        prefixed(&["greet", "about"])
    );
    assert_eq!(
        stdio
            .list_keys("resources/list", "resources", "uri")
            .await
            .len(),
        4
    );
    assert_eq!(
        stdio
            .list_keys(
                "resources/templates/list",
                "resourceTemplates",
                "uriTemplate"
            )
            .await,
        ["fixture://alpha/tpl/{id}"]
    );

    // Calls: a hidden tool reads exactly like one that does not exist.
    let denied = http
        .call("alpha__slow", json!({"ms": 1}))
        .await
        .unwrap_err();
    let missing = http.call("alpha__nope", json!({})).await.unwrap_err();
    assert_eq!(denied["code"], -32602, "{denied}");
    assert_eq!(
        denied["message"],
        "Invalid params: Unknown tool: alpha__slow"
    );
    assert_eq!(
        shape(&denied, "alpha__slow"),
        shape(&missing, "alpha__nope")
    );
    assert_eq!(
        http.call_text("alpha__echo", json!({"text": "hi"})).await,
        "hi"
    );
    let result = stdio
        .request(
            "tools/call",
            json!({"name": "alpha__slow", "arguments": {"ms": 1}}),
        )
        .await
        .unwrap_or_else(|e| panic!("stdio slow: {e}"));
    assert_ne!(result["isError"], json!(true), "{result}");

    // Prompts, directly and through completion.
    let denied = http
        .err("prompts/get", json!({"name": "alpha__about"}))
        .await;
    let missing = http
        .err("prompts/get", json!({"name": "alpha__nope"}))
        .await;
    assert_eq!(
        shape(&denied, "alpha__about"),
        shape(&missing, "alpha__nope")
    );
    let complete = |name: &str| json!({"ref": {"type": "ref/prompt", "name": name}, "argument": {"name": "x", "value": ""}});
    let denied = http
        .err("completion/complete", complete("alpha__about"))
        .await;
    let missing = http
        .err("completion/complete", complete("alpha__nope"))
        .await;
    assert_eq!(
        shape(&denied, "alpha__about"),
        shape(&missing, "alpha__nope")
    );
    assert!(
        stdio
            .request("prompts/get", json!({"name": "alpha__about"}))
            .await
            .is_ok()
    );

    // Resources: listed, templated, and subscriptions.
    for uri in ["fixture://alpha/item/0", "fixture://alpha/tpl/7"] {
        let denied = http.err("resources/read", json!({"uri": uri})).await;
        let missing = http
            .err("resources/read", json!({"uri": "fixture://nowhere/x"}))
            .await;
        assert_eq!(denied["code"], -32002, "{denied}");
        assert_eq!(shape(&denied, uri), shape(&missing, "fixture://nowhere/x"));
        let denied = http.err("resources/subscribe", json!({"uri": uri})).await;
        assert_eq!(denied["code"], -32002, "{denied}");
        assert!(
            stdio
                .request("resources/read", json!({"uri": uri}))
                .await
                .is_ok(),
            "stdio read {uri}"
        );
    }
    http.ok("resources/read", json!({"uri": "fixture://alpha/info"}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_as_forbidden_answers_403_with_the_unauthorized_code() {
    let gw = Gateway::start(&config("  denied_as: forbidden\n"));
    gw.wait_ready().await;
    let http = Mcp::connect(&gw.url).await;
    let reply = http
        .send(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "alpha__slow", "arguments": {"ms": 1}}}))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["id"], 7);
    assert_eq!(body["error"]["code"], -32014, "{body}");
    assert_eq!(
        body["error"]["data"],
        json!({"kind": "tool", "name": "alpha__slow"})
    );
    // Listings are still filtered; allowed calls still served.
    let tools = http.list_keys("tools/list", "tools", "name").await;
    assert!(!tools.contains(&"alpha__slow".to_owned()), "{tools:?}");
    assert_eq!(
        http.call_text("alpha__echo", json!({"text": "ok"})).await,
        "ok"
    );
}

#[test]
fn check_reports_bad_rules_with_their_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gateway.yaml");
    let yaml = "upstreams:\n  alpha:\n    command: x\npolicy:\n  rules:\n    - effect: deny\n      upstreams: [alpha, beta]\n    - effect: allow\n      tools: [\"[\"]\nrate_limits:\n  per_upstream: {beta: {rate: 1/s}}\n";
    std::fs::write(&file, yaml).expect("write config");
    let out = hermetic(manifold_bin())
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .expect("run manifold check");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A section with a shape error (the bad glob) stands in as its defaults, so the rules'
    // own checks run once the glob is fixed.
    assert!(
        stderr.contains("policy.rules[1].tools[0]: invalid glob \"[\""),
        "{stderr}"
    );
    let fixed = yaml.replace("[\"[\"]", "[\"x\"]");
    std::fs::write(&file, fixed).expect("write config");
    let out = hermetic(manifold_bin())
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .expect("run manifold check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "policy.rules[0]: names no tools, prompts or resources",
        "policy.rules[0].upstreams[1]: unknown upstream \"beta\"",
        "rate_limits.per_upstream.beta: unknown upstream \"beta\"",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_spends_no_rate_limit_budget() {
    // The policy stage comes before the rate limits: refusals by policy cost nothing.
    let yaml = format!(
        "{}rate_limits:\n  per_principal: {{rate: 1/h, burst: 3}}\n",
        config("")
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let http = Mcp::connect(&gw.url).await; // 1 of 3
    for _ in 0..10 {
        let denied = http
            .call("alpha__slow", json!({"ms": 1}))
            .await
            .unwrap_err();
        assert_eq!(denied["code"], -32602, "{denied}");
    }
    assert_eq!(
        http.call_text("alpha__echo", json!({"text": "a"})).await,
        "a"
    ); // 2
    assert_eq!(
        http.call_text("alpha__echo", json!({"text": "b"})).await,
        "b"
    ); // 3
    let reply = http
        .send(&json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {"name": "alpha__echo", "arguments": {"text": "c"}}}))
        .await;
    assert_eq!(reply.status, 429, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_resource_stays_denied_however_its_uri_is_spelled() {
    // The template fixture://alpha/tpl/{id} routes any spelling of an id; an upstream that
    // decodes it would serve the denied resource.
    let yaml = format!(
        "upstreams:\n{}policy:\n  rules:\n    - who: {{auth: [anonymous]}}\n      effect: deny\n      resources: [\"fixture://alpha/tpl/7\", \"fixture://alpha/item/*\"]\n",
        stdio_fixture("alpha", &[])
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let http = Mcp::connect(&gw.url).await;
    for uri in [
        "fixture://alpha/tpl/7",
        "fixture://alpha/tpl/%37",
        "fixture://alpha/tpl/..%2Fitem%2F0",
    ] {
        for method in ["resources/read", "resources/subscribe"] {
            let denied = http.err(method, json!({"uri": uri})).await;
            assert_eq!(denied["code"], -32002, "{method} {uri}: {denied}");
        }
    }
    http.ok("resources/read", json!({"uri": "fixture://alpha/tpl/8"}))
        .await;
    http.ok("resources/read", json!({"uri": "fixture://alpha/tpl/%38"}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_gets_the_same_filtered_view_and_cannot_listen_to_a_denied_resource() {
    let gw = Gateway::start(&config(""));
    gw.wait_ready().await;
    let stateless = support::Stateless::new(&gw.url, json!({}));
    let handshake = Mcp::connect(&gw.url).await;
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let params = cursor.map_or_else(|| json!({}), |c| json!({ "cursor": c }));
        let page = stateless
            .request("tools/list", params)
            .await
            .expect("tools/list");
        assert_eq!(
            page["cacheScope"], "private",
            "a filtered listing is private: {page}"
        );
        names.extend(
            page["tools"]
                .as_array()
                .expect("tools")
                .iter()
                .map(|t| t["name"].as_str().expect("name").to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        names,
        handshake.list_keys("tools/list", "tools", "name").await
    );

    let denied = stateless
        .request(
            "subscriptions/listen",
            json!({ "notifications": { "resourceSubscriptions": ["fixture://alpha/item/0"] } }),
        )
        .await
        .expect_err("listening to a denied resource");
    assert_eq!(denied["code"], -32602, "not found, in this era: {denied}");
    let denied = stateless
        .call("alpha__slow", json!({ "ms": 1 }))
        .await
        .expect_err("denied tool");
    assert_eq!(denied["code"], -32602, "{denied}");
}

/// Principals the same gateway serves under different rules never share a filtered page:
/// each walk shows what its own rules allow, whoever walked the catalog first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principals_under_different_rules_walk_their_own_pages_of_one_catalog() {
    let yaml = format!(
        "page_size: 3\nauth:\n  api_keys:\n    - {{name: alice, env: POLICY_TEST_ALICE}}\n    - {{name: bob, env: POLICY_TEST_BOB}}\n    - {{name: carol, env: POLICY_TEST_CAROL}}\nupstreams:\n{}policy:\n  rules:\n    - who: {{subjects: [alice]}}\n      effect: deny\n      tools: [\"tool_*\"]\n    - who: {{subjects: [bob]}}\n      effect: deny\n      tools: [echo, slow]\n",
        stdio_fixture("alpha", &[])
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let keys = [
        ("POLICY_TEST_ALICE", "alice-key-0123456789abcdef"),
        ("POLICY_TEST_BOB", "bob-key-0123456789abcdefgh"),
        ("POLICY_TEST_CAROL", "carol-key-0123456789abcdef"),
    ];
    let gw = Gateway::start_with(dir, &config, &keys);
    gw.wait_ready().await;
    let session = |key: &'static str| {
        let url = gw.url.clone();
        async move {
            support::init_tls();
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert("x-api-key", key.parse().expect("header"));
            let http = reqwest::Client::builder()
                .no_proxy()
                .default_headers(headers)
                .build()
                .expect("client");
            Mcp::connect_using(http, &url, "2025-11-25", json!({})).await
        }
    };
    let (alice, bob, carol) = (
        session(keys[0].1).await,
        session(keys[1].1).await,
        session(keys[2].1).await,
    );
    let all: Vec<String> = prefixed(
        &support::fixture_tools(3)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let without = |hidden: &dyn Fn(&str) -> bool| -> Vec<String> {
        all.iter()
            .filter(|t| !hidden(&t["alpha__".len()..]))
            .cloned()
            .collect()
    };
    for _ in 0..2 {
        assert_eq!(carol.list_keys("tools/list", "tools", "name").await, all);
        assert_eq!(
            alice.list_keys("tools/list", "tools", "name").await,
            without(&|t| t.starts_with("tool_"))
        );
        assert_eq!(
            bob.list_keys("tools/list", "tools", "name").await,
            without(&|t| t == "echo" || t == "slow")
        );
    }
}
