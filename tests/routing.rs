//! Merged listings and routing: several upstreams (stdio fixtures, a Streamable HTTP
//! fixture, the built-in demo) behind one gateway; every item namespaced, every request
//! reaching the upstream that owns it, results passed through untouched, filters and
//! collision policies applied.

mod support;

use std::collections::BTreeSet;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};
use support::{
    Gateway, HttpFixture, Mcp, WAIT, demo_upstream, first_text, fixture_tools, http_upstream,
    stdio_fixture, wait_for,
};

fn prefixed(prefix: &str, names: &[String]) -> Vec<String> {
    names.iter().map(|n| format!("{prefix}__{n}")).collect()
}

/// alpha, beta (stdio fixtures), demo (`manifold demo`), gamma (Streamable HTTP fixture).
fn four_upstreams(gamma: &HttpFixture) -> String {
    format!(
        "upstreams:\n{}{}{}{}",
        stdio_fixture("alpha", &[]),
        stdio_fixture("beta", &[]),
        demo_upstream("demo"),
        http_upstream("gamma", &gamma.url)
    )
}

/// Connects once every upstream is ready and the merged catalog holds `expected_tool`.
async fn connect_when_listed(gw: &Gateway, expected_tools: &[&str]) -> Mcp {
    gw.wait_ready().await;
    let client = Mcp::connect(&gw.url).await;
    wait_for(WAIT, "the merged tool list", || async {
        let names = client.list_keys("tools/list", "tools", "name").await;
        expected_tools
            .iter()
            .all(|t| names.iter().any(|n| n == t))
            .then_some(())
    })
    .await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_listings_hold_every_upstream_namespaced_in_upstream_order() {
    let gamma = HttpFixture::start("gamma", &[]);
    let gw = Gateway::start(&four_upstreams(&gamma));
    let c = connect_when_listed(
        &gw,
        &[
            "alpha__whoami",
            "beta__whoami",
            "demo__add",
            "gamma__whoami",
        ],
    )
    .await;

    let tools = c.list_keys("tools/list", "tools", "name").await;
    let fixture = fixture_tools(3);
    let n = fixture.len();
    assert_eq!(
        tools[..n],
        prefixed("alpha", &fixture)[..],
        "alpha's tools first, in its order: {tools:?}"
    );
    assert_eq!(
        tools[n..2 * n],
        prefixed("beta", &fixture)[..],
        "then beta's: {tools:?}"
    );
    // The demo lists `confirm` because the gateway's session declares elicitation.
    let demo: BTreeSet<&str> = tools[2 * n..2 * n + 5].iter().map(String::as_str).collect();
    assert_eq!(
        demo,
        BTreeSet::from([
            "demo__add",
            "demo__confirm",
            "demo__echo",
            "demo__now",
            "demo__word_count"
        ]),
        "{tools:?}"
    );
    assert_eq!(
        tools[2 * n + 5..],
        prefixed("gamma", &fixture)[..],
        "gamma last: {tools:?}"
    );

    let prompts = c.list_keys("prompts/list", "prompts", "name").await;
    let demo_prompts: BTreeSet<&str> = prompts[4..6].iter().map(String::as_str).collect();
    assert_eq!(
        prompts[..4],
        ["alpha__greet", "alpha__about", "beta__greet", "beta__about"]
    );
    assert_eq!(
        demo_prompts,
        BTreeSet::from(["demo__greet", "demo__summarize"])
    );
    assert_eq!(prompts[6..], ["gamma__greet", "gamma__about"]);

    let resources = c.list_keys("resources/list", "resources", "uri").await;
    let mut expected = Vec::new();
    for name in ["alpha", "beta"] {
        expected.push(format!("fixture://{name}/info"));
        expected.extend((0..3).map(|i| format!("fixture://{name}/item/{i}")));
    }
    expected.extend(["demo://readme".to_owned(), "demo://config.json".to_owned()]);
    expected.push("fixture://gamma/info".to_owned());
    expected.extend((0..3).map(|i| format!("fixture://gamma/item/{i}")));
    assert_eq!(
        resources, expected,
        "resources keep their URIs, upstreams in name order"
    );

    let templates = c
        .list_keys(
            "resources/templates/list",
            "resourceTemplates",
            "uriTemplate",
        )
        .await;
    assert_eq!(
        templates,
        [
            "fixture://alpha/tpl/{id}",
            "fixture://beta/tpl/{id}",
            "demo://notes/{topic}",
            "fixture://gamma/tpl/{id}"
        ]
    );

    // The gateway advertises what it can route.
    let caps = &c.init["capabilities"];
    assert_eq!(caps["tools"]["listChanged"], json!(true), "{caps}");
    assert!(
        caps.get("prompts").is_some()
            && caps.get("resources").is_some()
            && caps.get("completions").is_some(),
        "{caps}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reads_prompts_and_completions_reach_their_owner() {
    let gamma = HttpFixture::start("gamma", &[]);
    let gw = Gateway::start(&four_upstreams(&gamma));
    let c = connect_when_listed(
        &gw,
        &[
            "alpha__whoami",
            "beta__whoami",
            "demo__add",
            "gamma__whoami",
        ],
    )
    .await;

    // tools/call: the upstream's own name goes upstream, the answer names the server.
    for name in ["alpha", "beta", "gamma"] {
        assert_eq!(
            c.call_text(&format!("{name}__whoami"), json!({})).await,
            name
        );
    }
    assert_eq!(c.call_text("beta__tool_2", json!({})).await, "beta:tool_2");
    assert_eq!(
        c.call_text("gamma__tool_0", json!({})).await,
        "gamma:tool_0"
    );
    let sum = c
        .call("demo__add", json!({"a": 2, "b": 40}))
        .await
        .expect("demo__add");
    assert_eq!(sum["structuredContent"], json!({"sum": 42}));
    assert_eq!(first_text(&sum), "42");

    // resources/read: listed URIs and template URIs go to their owner.
    let read = |uri: &'static str| {
        let c = &c;
        async move { first_text(&c.ok("resources/read", json!({"uri": uri})).await) }
    };
    assert_eq!(read("fixture://beta/info").await, "I am beta");
    assert_eq!(read("fixture://gamma/item/2").await, "gamma item 2");
    assert_eq!(
        read("fixture://alpha/tpl/xyz").await,
        "alpha template id=xyz"
    );
    assert_eq!(read("fixture://gamma/tpl/7").await, "gamma template id=7");
    assert!(
        read("demo://readme")
            .await
            .starts_with("# Manifold demo server")
    );
    assert!(read("demo://notes/rust").await.starts_with("# Note: rust"));

    // prompts/get with the namespaced name.
    let greet = c
        .ok(
            "prompts/get",
            json!({"name": "gamma__greet", "arguments": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(first_text(&greet), "Hello Ada from gamma");
    assert_eq!(greet["description"], "Greeting from gamma");
    let about = c.ok("prompts/get", json!({"name": "alpha__about"})).await;
    assert_eq!(first_text(&about), "This is fixture server alpha.");

    // completion/complete: ref/prompt with the namespaced name, ref/resource with a template.
    let complete = |reference: Value, arg: &'static str, value: &'static str| {
        let c = &c;
        async move {
            let r = c
                .ok(
                    "completion/complete",
                    json!({"ref": reference, "argument": {"name": arg, "value": value}}),
                )
                .await;
            r["completion"]["values"].clone()
        }
    };
    assert_eq!(
        complete(
            json!({"type": "ref/prompt", "name": "alpha__greet"}),
            "name",
            "c"
        )
        .await,
        json!(["carol"])
    );
    assert_eq!(
        complete(
            json!({"type": "ref/prompt", "name": "gamma__greet"}),
            "name",
            ""
        )
        .await,
        json!(["alice", "bob", "carol"])
    );
    // Each fixture completes only its own template, so values prove the routing.
    assert_eq!(
        complete(
            json!({"type": "ref/resource", "uri": "fixture://beta/tpl/{id}"}),
            "id",
            "2"
        )
        .await,
        json!(["2"])
    );
    assert_eq!(
        complete(
            json!({"type": "ref/resource", "uri": "fixture://gamma/tpl/{id}"}),
            "id",
            ""
        )
        .await,
        json!(["1", "2", "3"])
    );
    assert_eq!(
        complete(
            json!({"type": "ref/resource", "uri": "demo://notes/{topic}"}),
            "topic",
            "to"
        )
        .await,
        json!(["tokio", "tools"])
    );
    assert_eq!(
        complete(
            json!({"type": "ref/prompt", "name": "demo__summarize"}),
            "style",
            "d"
        )
        .await,
        json!(["detailed"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_and_results_pass_through_unchanged() {
    // The reference: the same fixtures spoken to directly. alpha runs as a stdio upstream of
    // the gateway and, separately, over HTTP for comparison; gamma is the gateway's HTTP
    // upstream itself.
    let alpha_ref = HttpFixture::start("alpha", &[]);
    let gamma = HttpFixture::start("gamma", &[]);
    let yaml = format!(
        "upstreams:\n{}{}",
        stdio_fixture("alpha", &[]),
        http_upstream("gamma", &gamma.url)
    );
    let gw = Gateway::start(&yaml);
    let c = connect_when_listed(&gw, &["alpha__echo", "gamma__echo"]).await;

    for (name, reference) in [("alpha", &alpha_ref.url), ("gamma", &gamma.url)] {
        let direct = Mcp::connect(reference).await;

        // Tool definitions: identical but for the name, and the task support the gateway
        // lists (what it will do: by default, run any tool as a task on request).
        let via_gateway = c.list_all("tools/list", "tools").await;
        let own = direct.list_all("tools/list", "tools").await;
        assert_eq!(own.len(), fixture_tools(3).len());
        for tool in &own {
            let exposed = format!("{name}__{}", tool["name"].as_str().expect("name"));
            let seen = via_gateway
                .iter()
                .find(|t| t["name"] == exposed.as_str())
                .unwrap_or_else(|| panic!("{exposed} missing"));
            let mut expected = tool.clone();
            expected["name"] = json!(exposed);
            expected["execution"]["taskSupport"] = json!("optional");
            assert_eq!(seen, &expected, "tool definition changed on the way");
        }
        // Make sure the comparison covered the optional fields.
        let echo = via_gateway
            .iter()
            .find(|t| t["name"] == format!("{name}__echo"))
            .expect("echo");
        assert_eq!(echo["title"], format!("Echo ({name})"));
        assert_eq!(echo["_meta"], json!({"fixture/server": name}));
        assert_eq!(echo["annotations"]["readOnlyHint"], json!(true));
        assert_eq!(echo["outputSchema"]["required"], json!(["text"]));
        assert_eq!(echo["icons"][0]["mimeType"], "image/png");

        // Prompt definitions: identical but for the name (greet has a title).
        let prompts = c.list_all("prompts/list", "prompts").await;
        for prompt in direct.list_all("prompts/list", "prompts").await {
            let exposed = format!("{name}__{}", prompt["name"].as_str().expect("name"));
            let mut expected = prompt.clone();
            expected["name"] = json!(exposed);
            assert!(
                prompts.contains(&expected),
                "{expected} not listed as is in {prompts:?}"
            );
        }
        let greet = prompts
            .iter()
            .find(|p| p["name"] == format!("{name}__greet"))
            .expect("greet");
        assert_eq!(greet["title"], "Greeting");

        // Resources and templates: identical.
        let resources = c.list_all("resources/list", "resources").await;
        for r in direct.list_all("resources/list", "resources").await {
            assert!(resources.contains(&r), "{r} not listed as is");
        }
        let templates = c
            .list_all("resources/templates/list", "resourceTemplates")
            .await;
        for t in direct
            .list_all("resources/templates/list", "resourceTemplates")
            .await
        {
            assert!(templates.contains(&t), "{t} not listed as is");
        }

        // Results: identical, _meta, annotations, image and structuredContent included.
        let args = json!({"text": "héllo \"world\""});
        let through = c
            .call(&format!("{name}__echo"), args.clone())
            .await
            .expect("echo via gateway");
        let own = direct.call("echo", args).await.expect("echo direct");
        assert_eq!(through, own);
        assert_eq!(
            through["content"][0]["_meta"],
            json!({"fixture/echo": true})
        );
        assert_eq!(
            through["content"][0]["annotations"],
            json!({"audience": ["user"], "priority": 0.5})
        );
        assert_eq!(through["content"][1]["type"], "image");
        assert_eq!(through["content"][1]["mimeType"], "image/png");
        assert_eq!(
            through["structuredContent"],
            json!({"text": "héllo \"world\""})
        );

        let uri = format!("fixture://{name}/tpl/a%20b");
        let through = c.ok("resources/read", json!({"uri": uri})).await;
        assert_eq!(
            without_cache_hints(through),
            direct.ok("resources/read", json!({"uri": uri})).await
        );
        let through = c
            .ok(
                "prompts/get",
                json!({"name": format!("{name}__greet"), "arguments": {"name": "Zoë"}}),
            )
            .await;
        assert_eq!(
            through,
            direct
                .ok(
                    "prompts/get",
                    json!({"name": "greet", "arguments": {"name": "Zoë"}})
                )
                .await
        );

        // Errors an upstream returns pass through unchanged.
        let through = c
            .call(&format!("{name}__fail"), json!({}))
            .await
            .expect_err("fail via gateway");
        let own = direct
            .call("fail", json!({}))
            .await
            .expect_err("fail direct");
        assert_eq!(through, own);
        assert_eq!(through["code"], json!(-32603));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_and_uris_are_refused_with_the_right_codes() {
    let yaml = format!("upstreams:\n{}", stdio_fixture("alpha", &[]));
    let gw = Gateway::start(&yaml);
    let c = connect_when_listed(&gw, &["alpha__whoami"]).await;

    for tool in ["alpha__nope", "nobody__whoami", "whoami"] {
        let e = c.call(tool, json!({})).await.expect_err("unknown tool");
        assert_eq!(e["code"], json!(-32602), "{tool}: {e}");
        assert!(
            e["message"].as_str().unwrap_or_default().contains(tool),
            "{tool}: message must name it: {e}"
        );
    }
    let e = c.err("prompts/get", json!({"name": "alpha__nope"})).await;
    assert_eq!(e["code"], json!(-32602), "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("alpha__nope"),
        "{e}"
    );

    for uri in ["fixture://nobody/info", "file:///etc/passwd"] {
        let e = c.err("resources/read", json!({"uri": uri})).await;
        assert_eq!(e["code"], json!(-32002), "{uri}: {e}");
    }
    // An unknown method is not a tool call.
    let e = c.err("tools/frobnicate", json!({})).await;
    assert_eq!(e["code"], json!(-32601), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_prefix_and_filters_shape_what_clients_see() {
    let yaml = format!(
        "upstreams:\n{}    prefix: \"\"\n{}{}",
        stdio_fixture("alpha", &[]),
        stdio_fixture("beta", &["--tools", "4"]),
        "    tools: {allow: [\"tool_*\", \"whoami\"], deny: [\"tool_1\"]}\n    \
         prompts: {deny: [\"about\"]}\n    \
         resources: {deny: [\"fixture://beta/item/*\"]}\n"
    );
    let gw = Gateway::start(&yaml);
    let c = connect_when_listed(&gw, &["whoami", "beta__whoami"]).await;

    let tools = c.list_keys("tools/list", "tools", "name").await;
    let mut expected = fixture_tools(3);
    expected.extend(
        [
            "beta__tool_0",
            "beta__tool_2",
            "beta__tool_3",
            "beta__whoami",
        ]
        .map(String::from),
    );
    assert_eq!(
        tools, expected,
        "alpha unprefixed; beta filtered by allow and deny"
    );

    assert_eq!(c.call_text("whoami", json!({})).await, "alpha");
    assert_eq!(c.call_text("tool_1", json!({})).await, "alpha:tool_1");
    assert_eq!(c.call_text("beta__tool_3", json!({})).await, "beta:tool_3");
    for hidden in ["beta__tool_1", "beta__echo", "beta__crash"] {
        let e = c
            .call(hidden, json!({}))
            .await
            .expect_err("filtered tools cannot be called");
        assert_eq!(e["code"], json!(-32602), "{hidden}: {e}");
    }

    let prompts = c.list_keys("prompts/list", "prompts", "name").await;
    assert_eq!(prompts, ["greet", "about", "beta__greet"]);
    let e = c.err("prompts/get", json!({"name": "beta__about"})).await;
    assert_eq!(e["code"], json!(-32602), "{e}");
    let greet = c
        .ok(
            "prompts/get",
            json!({"name": "greet", "arguments": {"name": "Bo"}}),
        )
        .await;
    assert_eq!(first_text(&greet), "Hello Bo from alpha");

    let resources = c.list_keys("resources/list", "resources", "uri").await;
    assert!(
        resources.contains(&"fixture://beta/info".to_owned()),
        "{resources:?}"
    );
    assert!(
        !resources
            .iter()
            .any(|r| r.starts_with("fixture://beta/item/")),
        "{resources:?}"
    );
    let e = c
        .err("resources/read", json!({"uri": "fixture://beta/item/0"}))
        .await;
    assert_eq!(
        e["code"],
        json!(-32002),
        "a denied resource cannot be read: {e}"
    );
    assert_eq!(
        first_text(
            &c.ok("resources/read", json!({"uri": "fixture://beta/info"}))
                .await
        ),
        "I am beta"
    );
}

/// Two unprefixed upstreams sharing every fixture tool name; `right` has two extra tools.
fn colliding(policy: &str) -> String {
    format!(
        "collisions: {policy}\nupstreams:\n{}    prefix: \"\"\n{}    prefix: \"\"\n",
        stdio_fixture("left", &[]),
        stdio_fixture("right", &["--tools", "5"])
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collisions_error_withholds_the_name_and_fails_readiness() {
    let gw = Gateway::start(&colliding("error"));
    gw.wait_upstreams_ready().await;
    let c = Mcp::connect(&gw.url).await;
    // Both catalogs merged: each upstream's own resources are listed.
    wait_for(WAIT, "both upstreams' resources", || async {
        let uris = c.list_keys("resources/list", "resources", "uri").await;
        (uris.contains(&"fixture://left/info".to_owned())
            && uris.contains(&"fixture://right/info".to_owned()))
        .then_some(())
    })
    .await;

    let tools = c.list_keys("tools/list", "tools", "name").await;
    assert_eq!(
        tools,
        ["tool_3", "tool_4"],
        "every shared name is withheld, the rest served"
    );
    let e = c.call("whoami", json!({})).await.expect_err("withheld");
    assert_eq!(e["code"], json!(-32602), "{e}");
    assert_eq!(c.call_text("tool_4", json!({})).await, "right:tool_4");

    let (status, body) = gw.readyz().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], json!(false));
    let collisions = body["collisions"].as_array().expect("collisions list");
    let whoami = collisions
        .iter()
        .find(|c| c["name"] == "whoami")
        .unwrap_or_else(|| panic!("whoami not named: {body}"));
    assert_eq!(whoami["upstreams"], json!(["left", "right"]));
    assert_eq!(whoami["servedBy"], Value::Null);
    assert!(
        collisions.iter().any(|c| c["name"] == "greet"),
        "prompts collide too: {body}"
    );
    // The collision is logged.
    gw.log_with("collision").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collisions_first_wins_serves_the_upstream_first_by_name() {
    let gw = Gateway::start(&colliding("first_wins"));
    gw.wait_ready().await;
    let c = connect_when_listed(&gw, &["tool_4"]).await;

    let tools = c.list_keys("tools/list", "tools", "name").await;
    let mut expected = fixture_tools(3);
    expected.extend(["tool_3", "tool_4"].map(String::from));
    assert_eq!(tools, expected, "each shared name once, from left");
    assert_eq!(c.call_text("whoami", json!({})).await, "left");
    assert_eq!(c.call_text("tool_0", json!({})).await, "left:tool_0");
    assert_eq!(c.call_text("tool_3", json!({})).await, "right:tool_3");
    let greet = c
        .ok(
            "prompts/get",
            json!({"name": "greet", "arguments": {"name": "X"}}),
        )
        .await;
    assert_eq!(first_text(&greet), "Hello X from left");

    let (status, body) = gw.readyz().await;
    assert_eq!(
        status, 200,
        "resolved collisions do not fail readiness: {body}"
    );
    let whoami = body["collisions"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == "whoami").cloned());
    let whoami = whoami.unwrap_or_else(|| panic!("resolved collisions are still reported: {body}"));
    assert_eq!(whoami["servedBy"], "left");
    assert_eq!(whoami["upstreams"], json!(["left", "right"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmcp_client_uses_the_merged_server() {
    support::init_tls();
    let gamma = HttpFixture::start("gamma", &[]);
    let yaml = format!(
        "upstreams:\n{}{}",
        stdio_fixture("alpha", &[]),
        http_upstream("gamma", &gamma.url)
    );
    let gw = Gateway::start(&yaml);
    connect_when_listed(&gw, &["alpha__whoami", "gamma__whoami"]).await;

    let client = support::within(
        WAIT,
        "rmcp initialize",
        ().serve(StreamableHttpClientTransport::from_uri(gw.url.as_str())),
    )
    .await
    .expect("rmcp client connects");
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("manifold")
    );

    let tools = support::within(WAIT, "list tools", client.list_all_tools())
        .await
        .expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(
        names.contains(&"alpha__echo") && names.contains(&"gamma__slow"),
        "{names:?}"
    );

    let call = CallToolRequestParams::new("gamma__whoami");
    let result = support::within(WAIT, "call", client.call_tool(call))
        .await
        .expect("tools/call");
    let text = serde_json::to_value(&result.content).expect("content");
    assert_eq!(text[0]["text"], "gamma");

    let read = support::within(
        WAIT,
        "read",
        client.read_resource(ReadResourceRequestParams::new("fixture://alpha/info")),
    )
    .await
    .expect("resources/read");
    assert_eq!(
        serde_json::to_value(&read.contents).expect("contents")[0]["text"],
        "I am alpha"
    );

    let mut args = serde_json::Map::new();
    args.insert("name".into(), json!("Kim"));
    let prompt = GetPromptRequestParams::new("alpha__greet").with_arguments(args);
    let prompt = support::within(WAIT, "prompt", client.get_prompt(prompt))
        .await
        .expect("prompts/get");
    assert_eq!(
        serde_json::to_value(&prompt.messages).expect("messages")[0]["content"]["text"],
        "Hello Kim from alpha"
    );

    let values = support::within(
        WAIT,
        "complete",
        client.complete_resource_simple("fixture://gamma/tpl/{id}", "id", "3"),
    )
    .await
    .expect("completion/complete");
    assert_eq!(values, ["3"]);

    let _ = client.cancel().await;
}

/// The upstream name a generic fixture tool describes: "Generic tool NAME of fixture server S".
fn described_name(tool: &Value) -> Option<String> {
    let d = tool["description"].as_str()?;
    let rest = d.strip_prefix("Generic tool ")?;
    Some(rest[..rest.rfind(" of fixture server ")?].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_and_long_upstream_names_are_exposed_uniquely_and_still_route() {
    let gw = Gateway::start(&format!("upstreams:\n{}", stdio_fixture("alpha", &[])));
    let c = connect_when_listed(&gw, &["alpha__whoami"]).await;

    let long_a = format!("{}_a", "very_long_tool_name_".repeat(5));
    let long_b = format!("{}_b", "very_long_tool_name_".repeat(5));
    let added = [
        "dotted.name",
        "ünïcode",
        "has space",
        "has_space",
        long_a.as_str(),
        long_b.as_str(),
    ];
    for name in added {
        assert_eq!(
            c.call_text("alpha__add_tool", json!({"name": name})).await,
            "added",
            "{name}"
        );
    }
    let tools = wait_for(WAIT, "the added tools to be merged", || async {
        let tools = c.list_all("tools/list", "tools").await;
        let described: Vec<String> = tools.iter().filter_map(described_name).collect();
        described.contains(&long_b).then_some(tools)
    })
    .await;

    let names: Vec<&str> = tools
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "every exposed tool name is unique: {names:?}"
    );
    for name in &names {
        let valid = name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'));
        assert!(
            valid && !name.is_empty() && name.len() <= 64,
            "{name:?} breaks the name rule or max_name_length"
        );
    }
    // Every listed tool, called by its listed name, runs the tool its listing describes.
    let mut reached = Vec::new();
    for tool in &tools {
        let Some(original) = described_name(tool) else {
            continue;
        };
        let exposed = tool["name"].as_str().expect("name");
        assert_eq!(
            c.call_text(exposed, json!({})).await,
            format!("alpha:{original}"),
            "{exposed} runs {original}"
        );
        reached.push(original);
    }
    for name in ["dotted.name", "ünïcode", long_a.as_str(), long_b.as_str()] {
        assert!(
            reached.iter().any(|r| r == name),
            "{name} is listed and reachable: {names:?}"
        );
    }
    // Two upstream names that sanitise alike are either both served under distinct names or
    // reported as a collision: never one silently hidden behind the other.
    let spaced = ["has space", "has_space"]
        .iter()
        .filter(|n| reached.iter().any(|r| r == *n))
        .count();
    if spaced < 2 {
        let (_, body) = gw.readyz().await;
        let reported = body["collisions"]
            .as_array()
            .is_some_and(|l| l.iter().any(|c| c["name"] == "alpha__has_space"));
        assert!(
            reported,
            "has space / has_space: {spaced} reachable and no collision reported: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_each_get_their_own_answer() {
    let gamma = HttpFixture::start("gamma", &[]);
    let yaml = format!(
        "upstreams:\n{}{}",
        stdio_fixture("alpha", &[]),
        http_upstream("gamma", &gamma.url)
    );
    let gw = Gateway::start(&yaml);
    let c = connect_when_listed(&gw, &["alpha__echo", "gamma__echo"]).await;
    let other = Mcp::connect(&gw.url).await;

    let calls = (0..40).map(|i| {
        let (client, upstream) = if i % 2 == 0 {
            (&c, "alpha")
        } else {
            (&other, "gamma")
        };
        async move {
            let text = format!("message {i} via {upstream}");
            let result = client
                .call(&format!("{upstream}__echo"), json!({"text": text}))
                .await
                .expect("echo");
            assert_eq!(
                result["structuredContent"]["text"],
                text.as_str(),
                "call {i} got another call's answer"
            );
        }
    });
    support::within(
        WAIT,
        "40 concurrent calls",
        futures::future::join_all(calls),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_results_pass_through_intact() {
    let gamma = HttpFixture::start("gamma", &[]);
    let yaml = format!(
        "upstreams:\n{}{}",
        stdio_fixture("alpha", &[]),
        http_upstream("gamma", &gamma.url)
    );
    let gw = Gateway::start(&yaml);
    let c = connect_when_listed(&gw, &["alpha__echo", "gamma__echo"]).await;

    // ~1.5 MB of text with every kind of character JSON must escape, on one stdio line.
    let unit = "line \"quoted\"\n\ttab \\ back ünïcödé 🚀 <>&\u{0001}";
    let text = unit.repeat(1_500_000 / unit.len());
    for upstream in ["alpha", "gamma"] {
        let result = c
            .call(&format!("{upstream}__echo"), json!({"text": text}))
            .await
            .expect("echo");
        assert_eq!(
            result["content"][0]["text"].as_str().map(str::len),
            Some(text.len()),
            "{upstream}"
        );
        assert!(
            result["content"][0]["text"] == text.as_str(),
            "{upstream}: text changed on the way"
        );
        assert!(
            result["structuredContent"]["text"] == text.as_str(),
            "{upstream}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_instructions_are_merged_under_their_names() {
    let yaml = format!(
        "upstreams:\n{}{}    prefix: \"\"\n",
        stdio_fixture("alpha", &[]),
        stdio_fixture("beta", &[])
    );
    let gw = Gateway::start(&yaml);
    let c = connect_when_listed(&gw, &["alpha__whoami", "whoami"]).await;
    let instructions = c.init["instructions"]
        .as_str()
        .unwrap_or_else(|| panic!("no instructions: {}", c.init));
    assert!(
        instructions.contains("## alpha (tools and prompts prefixed 'alpha__')"),
        "{instructions}"
    );
    assert!(
        instructions.contains("Test fixture server alpha"),
        "{instructions}"
    );
    assert!(
        instructions.contains("## beta\n"),
        "an unprefixed upstream: {instructions}"
    );
    assert!(
        instructions.contains("Test fixture server beta"),
        "{instructions}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_separator_and_name_length_are_configurable() {
    let yaml = format!(
        "path: /gateway/v1\nseparator: \".\"\nmax_name_length: 16\nupstreams:\n{}",
        stdio_fixture("alpha", &[])
    );
    let gw = Gateway::start(&yaml);
    assert!(gw.url.ends_with("/gateway/v1"), "{}", gw.url);
    let c = connect_when_listed(&gw, &["alpha.whoami"]).await;

    let names = c.list_keys("tools/list", "tools", "name").await;
    assert_eq!(
        names[..5],
        [
            "alpha.tool_0",
            "alpha.tool_1",
            "alpha.tool_2",
            "alpha.whoami",
            "alpha.echo"
        ]
    );
    assert!(names.iter().all(|n| n.len() <= 16), "{names:?}");
    // alpha.remove_tool is 17 characters: shortened with a hash, and still routed.
    let short = names
        .iter()
        .find(|n| !n.starts_with("alpha.") || n.contains('-'))
        .cloned();
    let short = short.unwrap_or_else(|| panic!("no shortened name in {names:?}"));
    assert_eq!(short.len(), 16, "{short}");
    assert!(!names.contains(&"alpha.remove_tool".to_owned()));
    let result = c
        .call(&short, json!({"name": "nope"}))
        .await
        .expect("remove_tool");
    assert_eq!(
        first_text(&result),
        "tool `nope` does not exist",
        "{short} reaches remove_tool"
    );
    assert_eq!(c.call_text("alpha.whoami", json!({})).await, "alpha");
    let prompt = c.ok("prompts/get", json!({"name": "alpha.about"})).await;
    assert_eq!(first_text(&prompt), "This is fixture server alpha.");

    // The default path is not served.
    let resp = support::http_client()
        .post(format!("{}/mcp", gw.base))
        .header("content-type", "application/json")
        .header("accept", support::ACCEPT_BOTH)
        .body(support::initialize_body(1, "2025-11-25").to_string())
        .send()
        .await
        .expect("POST /mcp");
    assert_eq!(resp.status().as_u16(), 404);
}

/// A result without the 2026-07-28 cache hints: the fixture upstream speaks that era to the
/// gateway and adds them, while the direct client here is a handshake-era session, which
/// rmcp answers without them. Shaping results per client era is the router's job.
fn without_cache_hints(mut result: Value) -> Value {
    if let Some(obj) = result.as_object_mut() {
        obj.remove("ttlMs");
        obj.remove("cacheScope");
    }
    result
}
