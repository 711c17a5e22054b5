//! Issue 13: every client served in its own era by upstreams that speak both. The upstream is
//! a server written with the official Python SDK (`tests/interop/python_server.py`, run from
//! the interop venv). Its `test_sampling` asks the client the handshake way (a request on the
//! session) whatever the era, as servers written for 2025-11-25 do; its
//! `test_input_required_result_sampling` asks the way the request's era asks (a request on
//! the session, or an `input_required` result). The same is shown with the built-in demo, a
//! dual-era stdio server written by hand. Before this, the gateway sent a handshake-era
//! client's call to such a server in the stateless era, and the server answered "no
//! back-channel" instead of asking.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use support::{
    Gateway, Mcp, SseStream, Stateless, WAIT, first_text, manifold_bin, read_line_with_timeout,
    wait_for,
};

/// The Python SDK server, from the venv `scripts/interop --install-only` creates.
fn python() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".interop/venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `scripts/interop --install-only` (scripts/test does)",
        python.display()
    );
    (python, root.join("tests/interop/python_server.py"))
}

/// The Python server on Streamable HTTP, stopped when dropped.
struct PythonHttp {
    child: Child,
    url: String,
}

impl PythonHttp {
    fn start() -> PythonHttp {
        let (python, script) = python();
        let mut child = Command::new(python)
            .arg(script)
            .args(["--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the Python server");
        let stdout = child.stdout.take().expect("stdout");
        let line =
            read_line_with_timeout(stdout, "LISTENING ").expect("the Python server's address");
        let url = line.trim()["LISTENING ".len()..].to_owned();
        PythonHttp { child, url }
    }
}

impl Drop for PythonHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python server as a stdio upstream named `py`, with `extra` YAML under it.
fn python_stdio(extra: &str) -> String {
    let (python, script) = python();
    format!(
        "upstreams:\n  py:\n    command: {:?}\n    args: [{:?}, --stdio]\n{extra}",
        python.display().to_string(),
        script.display().to_string()
    )
}

/// Waits until the upstream is served in both eras: its handshake-era session is open.
async fn dual(gw: &Gateway, upstream: &str) -> Value {
    wait_for(
        WAIT,
        "the handshake-era session beside the stateless one",
        || async {
            let (_, body) = gw.readyz().await;
            let entry = body["upstreams"][upstream].clone();
            (entry["protocolVersion"] == "2026-07-28" && entry["handshakeVersion"] == "2025-11-25")
                .then_some(entry)
        },
    )
    .await
}

/// A handshake-era client calls `tool` and answers the sampling request it must receive on
/// the call's stream; returns the call's result.
async fn sample_as_handshake_client(gw: &Gateway, tool: &str) -> Value {
    let c = Mcp::connect_with(&gw.url, "2025-11-25", json!({ "sampling": {} })).await;
    let (id, resp) = c
        .stream_request(
            "tools/call",
            json!({ "name": tool, "arguments": { "prompt": "What is 2+2?" } }),
        )
        .await;
    let mut stream = SseStream::new(resp);
    let first = stream
        .next_matching(WAIT, |m| {
            m["method"] == "sampling/createMessage" || m["id"] == json!(id)
        })
        .await
        .unwrap_or_else(|| panic!("no answer; log:\n{}", gw.log()));
    assert_eq!(
        first["method"], "sampling/createMessage",
        "the server must ask the handshake-era client on its session: {first}"
    );
    let answer = json!({ "jsonrpc": "2.0", "id": first["id"], "result": {
        "role": "assistant",
        "content": { "type": "text", "text": "four" },
        "model": "test-model",
        "stopReason": "endTurn",
    } });
    assert_eq!(c.send(&answer).await.status, 202);
    let done = stream
        .next_matching(WAIT, |m| m["id"] == json!(id))
        .await
        .unwrap_or_else(|| panic!("no result; log:\n{}", gw.log()));
    done["result"].clone()
}

/// A 2026-07-28 client calls `tool`: the server's `input_required` reaches it, and its retry
/// with the answer completes the call.
async fn sample_as_stateless_client(gw: &Gateway, tool: &str) -> Value {
    let c = Stateless::new(&gw.url, json!({ "sampling": {} }));
    let args = json!({});
    let first = c.call(tool, args.clone()).await.expect("round 1");
    assert_eq!(first["resultType"], "input_required", "{first}");
    let (key, request) = first["inputRequests"]
        .as_object()
        .and_then(|r| r.iter().next())
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap_or_else(|| panic!("no input request: {first}"));
    assert_eq!(request["method"], "sampling/createMessage", "{first}");
    let answer = json!({ key: {
        "role": "assistant",
        "content": { "type": "text", "text": "four" },
        "model": "test-model",
        "stopReason": "endTurn",
    } });
    c.ok(
        "tools/call",
        json!({ "name": tool, "arguments": args, "requestState": first["requestState"],
                "inputResponses": answer }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_reaches_a_dual_era_http_server_in_its_own_era() {
    let py = PythonHttp::start();
    let gw = Gateway::start(&format!(
        "upstreams:\n  py:\n    url: {:?}\n    prefix: \"\"\n",
        py.url
    ));
    gw.wait_upstreams_ready().await;
    dual(&gw, "py").await;

    let result = sample_as_handshake_client(&gw, "test_sampling").await;
    assert_eq!(first_text(&result), "LLM response: four", "{result}");
    assert!(result.get("isError").is_none_or(|e| e == false), "{result}");

    let result = sample_as_stateless_client(&gw, "test_input_required_result_sampling").await;
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(first_text(&result), "LLM response: four", "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_era_stdio_server_shared_runs_one_process_per_era() {
    let gw = Gateway::start(&python_stdio(""));
    gw.wait_upstreams_ready().await;
    dual(&gw, "py").await;
    // Two children: the server's stateless process and its handshake-era one.
    let pid = gw.pid().expect("gateway pid");
    wait_for(WAIT, "two server processes", || async {
        (support::children_of(pid).len() == 2).then_some(())
    })
    .await;

    let result = sample_as_handshake_client(&gw, "py__test_sampling").await;
    assert_eq!(first_text(&result), "LLM response: four", "{result}");
    let result = sample_as_stateless_client(&gw, "py__test_input_required_result_sampling").await;
    assert_eq!(first_text(&result), "LLM response: four", "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_per_session_stdio_a_handshake_client_gets_its_own_process_in_its_era() {
    let gw = Gateway::start(&python_stdio("    session: per_session\n"));
    gw.wait_upstreams_ready().await;
    dual(&gw, "py").await;
    let result = sample_as_handshake_client(&gw, "py__test_sampling").await;
    assert_eq!(first_text(&result), "LLM response: four", "{result}");
    // The stateless process, the handshake-era one that reads the catalog, and the client's.
    let pid = gw.pid().expect("gateway pid");
    assert_eq!(support::children_of(pid).len(), 3, "log:\n{}", gw.log());
    let result = sample_as_stateless_client(&gw, "py__test_input_required_result_sampling").await;
    assert_eq!(first_text(&result), "LLM response: four", "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_era_serves_the_other_era_by_translation() {
    // `protocol: stateless` on the same server: one process, in one era. A tool that asks the
    // way its request's era asks still reaches a handshake-era client (its input_required
    // becomes a real request); one that asks only on the session cannot, which is what
    // serving each client in its own era is for.
    let gw = Gateway::start(&python_stdio("    protocol: stateless\n"));
    gw.wait_upstreams_ready().await;
    let (_, body) = gw.readyz().await;
    assert!(
        body["upstreams"]["py"].get("handshakeVersion").is_none(),
        "{body}"
    );
    let result = sample_as_handshake_client(&gw, "py__test_input_required_result_sampling").await;
    assert_eq!(first_text(&result), "LLM response: four", "{result}");
    let c = Mcp::connect_with(&gw.url, "2025-11-25", json!({ "sampling": {} })).await;
    let stranded = c
        .call("py__test_sampling", json!({ "prompt": "What is 2+2?" }))
        .await
        .expect("a tool result");
    assert!(
        first_text(&stranded).contains("no back-channel"),
        "{stranded}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_each_client_in_its_own_era() {
    // The built-in demo speaks both eras on stdio, locking each process's era on its first
    // request: a handshake-era client's `confirm` is asked on a handshake-era process.
    let gw = Gateway::start(&format!(
        "upstreams:\n  demo:\n    command: {:?}\n    args: [demo]\n",
        manifold_bin().display().to_string()
    ));
    gw.wait_upstreams_ready().await;
    dual(&gw, "demo").await;
    let c = Mcp::connect_with(&gw.url, "2025-11-25", json!({ "elicitation": {} })).await;
    let (id, resp) = c
        .stream_request(
            "tools/call",
            json!({ "name": "demo__confirm", "arguments": { "action": "ship it" } }),
        )
        .await;
    let mut stream = SseStream::new(resp);
    let ask = stream
        .next_matching(WAIT, |m| m["method"] == "elicitation/create")
        .await
        .unwrap_or_else(|| panic!("no elicitation; log:\n{}", gw.log()));
    assert_eq!(ask["params"]["message"], "Please confirm: ship it", "{ask}");
    let answer = json!({ "jsonrpc": "2.0", "id": ask["id"],
        "result": { "action": "accept", "content": { "confirmed": true } } });
    assert_eq!(c.send(&answer).await.status, 202);
    let done = stream
        .next_matching(WAIT, |m| m["id"] == json!(id))
        .await
        .expect("the call's response");
    assert!(first_text(&done["result"]).contains("ship it"), "{done}");
}

/// Each client sees the catalog of the era it is served in: the fixture (`--era-tools`) lists
/// `era_handshake` to handshake-era clients and `era_stateless` to 2026-07-28 ones, and the
/// gateway reads each on its own session, over HTTP and over stdio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_sees_the_catalog_of_its_own_era() {
    let http = support::HttpFixture::start("web", &["--era-tools"]);
    let yaml = format!(
        "upstreams:\n{}{}",
        support::http_upstream("web", &http.url),
        support::stdio_fixture("local", &["--era-tools"])
    );
    let gw = Gateway::start(&yaml);
    gw.wait_upstreams_ready().await;
    dual(&gw, "web").await;
    dual(&gw, "local").await;

    let handshake = Mcp::connect(&gw.url).await;
    let names = handshake.list_keys("tools/list", "tools", "name").await;
    for upstream in ["web", "local"] {
        let own = format!("{upstream}__era_handshake");
        let other = format!("{upstream}__era_stateless");
        assert!(names.contains(&own), "{names:?}");
        assert!(!names.contains(&other), "{names:?}");
        assert_eq!(handshake.call_text(&own, json!({})).await, "era_handshake");
    }

    let stateless = Stateless::new(&gw.url, json!({}));
    let listed = stateless.ok("tools/list", json!({})).await;
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for upstream in ["web", "local"] {
        let own = format!("{upstream}__era_stateless");
        assert!(names.contains(&own.as_str()), "{names:?}");
        assert!(
            !names.contains(&format!("{upstream}__era_handshake").as_str()),
            "{names:?}"
        );
        let result = stateless.call(&own, json!({})).await.expect("call");
        assert_eq!(first_text(&result), "era_stateless", "{result}");
        // A name from the other era's catalog is unknown here.
        let refused = stateless
            .call(&format!("{upstream}__era_handshake"), json!({}))
            .await
            .expect_err("unknown in this era");
        assert_eq!(refused["code"], -32602, "{refused}");
    }
}

/// Subscriptions follow the client's era too. With a dual-era stdio server in `shared` mode a
/// handshake-era client's subscription lives on the server's handshake-era process, where its
/// calls run, so a change it makes there reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_clients_subscription_lives_where_its_calls_run() {
    let gw = Gateway::start(&format!(
        "upstreams:\n{}",
        support::stdio_fixture("alpha", &[])
    ));
    gw.wait_upstreams_ready().await;
    dual(&gw, "alpha").await;
    let c = Mcp::connect(&gw.url).await;
    let mut stream = c.open_stream().await.expect("GET stream");
    let uri = "fixture://alpha/info";
    c.ok("resources/subscribe", json!({ "uri": uri })).await;
    assert_eq!(
        c.call_text("alpha__touch", json!({ "uri": uri })).await,
        "told 1",
        "the subscription must be on the process the call ran on"
    );
    let updated = stream
        .next_matching(WAIT, |m| m["method"] == "notifications/resources/updated")
        .await
        .unwrap_or_else(|| panic!("no update; log:\n{}", gw.log()));
    assert_eq!(updated["params"]["uri"], uri, "{updated}");
}

/// Over HTTP each handshake-era client subscribes on its own link; a 2026-07-28 listen stream
/// that asks for the same URI afterwards is still subscribed on the stateless session (it is
/// not "already subscribed" by the client's link), and hears the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_stream_after_a_session_on_the_same_uri_is_still_subscribed() {
    let gamma = support::HttpFixture::start("gamma", &[]);
    let gw = Gateway::start(&format!(
        "upstreams:\n{}",
        support::http_upstream("gamma", &gamma.url)
    ));
    gw.wait_upstreams_ready().await;
    dual(&gw, "gamma").await;
    let uri = "fixture://gamma/info";
    let session = Mcp::connect(&gw.url).await;
    session
        .ok("resources/subscribe", json!({ "uri": uri }))
        .await;

    let listener = Stateless::new(&gw.url, json!({}));
    let mut stream = listener
        .listen(9, json!({ "resourceSubscriptions": [uri] }))
        .await;
    let ack = stream.next(WAIT).await.expect("acknowledgement");
    assert_eq!(
        ack["params"]["notifications"]["resourceSubscriptions"],
        json!([uri]),
        "{ack}"
    );
    // The session's link and the stateless listen: two watchers upstream.
    wait_for(WAIT, "both watchers upstream", || async {
        let told = session
            .call_text("gamma__touch", json!({ "uri": uri }))
            .await;
        (told == "told 2").then_some(())
    })
    .await;
    let updated = stream
        .next_matching(WAIT, |m| m["method"] == "notifications/resources/updated")
        .await
        .unwrap_or_else(|| panic!("no update on the listen stream; log:\n{}", gw.log()));
    assert_eq!(updated["params"]["uri"], uri, "{updated}");
}
