//! Input requests translated between eras through the real gateway, with 2026-07-28
//! upstreams: the built-in demo (stdio) and the conformance fixture (HTTP). Both speak both
//! eras, so the gateway would serve each client in its own era; the demo is pinned to the
//! stateless era here (`protocol: stateless`), as an upstream that speaks only 2026-07-28
//! is, to show the translation. A handshake-era client gets a stateless upstream's questions
//! as real requests; a stateless client gets them
//! passed through with the state wrapped; and a second replica sharing the seal key
//! continues a round the first one began.

mod support;

use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use support::{
    Gateway, Mcp, SseStream, Stateless, WAIT, example_bin, first_text, manifold_bin,
    read_line_with_timeout, wait_for,
};

fn demo_upstream() -> String {
    format!(
        "upstreams:\n  demo:\n    command: {:?}\n    args: [demo]\n    protocol: stateless\n",
        manifold_bin().display().to_string()
    )
}

/// Waits until every upstream speaks 2026-07-28 (the gateway probed them).
async fn stateless_upstreams(gw: &Gateway) {
    wait_for(WAIT, "upstreams probed as 2026-07-28", || async {
        let (_, body) = gw.readyz().await;
        let upstreams = body["upstreams"].as_object()?.clone();
        upstreams
            .values()
            .all(|u| u["protocolVersion"] == "2026-07-28")
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_client_answers_a_stateless_upstreams_question_as_a_real_request() {
    let gw = Gateway::start(&demo_upstream());
    gw.wait_upstreams_ready().await;
    stateless_upstreams(&gw).await;
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
        .unwrap_or_else(|| {
            panic!(
                "no elicitation/create reached the client; log:\n{}",
                gw.log()
            )
        });
    assert_eq!(ask["params"]["message"], "Please confirm: ship it", "{ask}");
    let answer = json!({ "jsonrpc": "2.0", "id": ask["id"],
        "result": { "action": "accept", "content": { "confirmed": true, "note": "go" } } });
    assert_eq!(c.send(&answer).await.status, 202);
    let done = stream
        .next_matching(WAIT, |m| m["id"] == json!(id))
        .await
        .expect("the call's response");
    let result = &done["result"];
    assert_eq!(
        first_text(result),
        "The user confirmed: ship it (note: go)",
        "{done}"
    );
    assert!(
        result.get("resultType").is_none(),
        "handshake clients get no resultType: {done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_gets_a_stateless_upstreams_question_with_the_state_wrapped() {
    let gw = Gateway::start(&demo_upstream());
    gw.wait_upstreams_ready().await;
    stateless_upstreams(&gw).await;
    let c = Stateless::new(&gw.url, json!({ "elicitation": { "form": {} } }));
    let args = json!({ "action": "ship it" });
    let first = c
        .call("demo__confirm", args.clone())
        .await
        .expect("round 1");
    assert_eq!(first["resultType"], "input_required", "{first}");
    // The upstream's own key passes through untouched.
    assert_eq!(
        first["inputRequests"]["confirm"]["method"], "elicitation/create",
        "{first}"
    );
    let state = first["requestState"].as_str().expect("state").to_owned();
    let retry = |state: &str, answers: Value| {
        json!({ "name": "demo__confirm", "arguments": args, "requestState": state,
                "inputResponses": answers })
    };
    let answer = json!({ "confirm": { "action": "decline" } });
    // The state is the gateway's: altered, it is refused before reaching the upstream.
    let mut forged = state.clone();
    forged.push('A');
    let refused = c
        .request("tools/call", retry(&forged, answer.clone()))
        .await
        .expect_err("forged");
    assert_eq!(refused["code"], -32602, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("requestState"),
        "{refused}"
    );
    let done = c
        .request("tools/call", retry(&state, answer))
        .await
        .expect("round 2");
    assert_eq!(done["resultType"], "complete", "{done}");
    assert_eq!(
        first_text(&done),
        "The user declined to answer whether to ship it"
    );
}

/// The conformance fixture over HTTP: one upstream process both replicas share.
struct HttpConformance {
    child: Child,
    url: String,
}

impl Drop for HttpConformance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_conformance() -> HttpConformance {
    let mut child = Command::new(example_bin("conformance_server"))
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn conformance_server");
    let stdout = child.stdout.take().expect("stdout");
    let line = read_line_with_timeout(stdout, "LISTENING ").expect("fixture announces its URL");
    HttpConformance {
        child,
        url: line.trim_start_matches("LISTENING ").trim().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_with_the_same_key_continues_an_input_round() {
    let fixture = http_conformance();
    let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let yaml = format!(
        "seal_key: \"{key}\"\nupstreams:\n  conformance:\n    url: {:?}\n    prefix: \"\"\n",
        fixture.url
    );
    let a = Gateway::start(&yaml);
    let b = Gateway::start(&yaml);
    for gw in [&a, &b] {
        gw.wait_upstreams_ready().await;
        stateless_upstreams(gw).await;
    }
    let caps = json!({ "elicitation": { "form": {} } });
    let on_a = Stateless::new(&a.url, caps.clone());
    let on_b = Stateless::new(&b.url, caps);
    let tool = "test_input_required_result_elicitation";
    let first = on_a.call(tool, json!({})).await.expect("round 1 on a");
    assert_eq!(first["resultType"], "input_required", "{first}");
    let state = first["requestState"].as_str().expect("state");
    let answers = json!({ "user_name": { "action": "accept", "content": { "name": "Ada" } } });
    let done = on_b
        .request(
            "tools/call",
            json!({ "name": tool, "arguments": {}, "requestState": state,
                    "inputResponses": answers }),
        )
        .await
        .expect("b continues a's round");
    assert_eq!(first_text(&done), "Hello, Ada!", "{done}");

    // A replica with another key cannot read it.
    let other = Gateway::start(&yaml.replace(key, &"e".repeat(64)));
    other.wait_upstreams_ready().await;
    let stranger = Stateless::new(&other.url, json!({ "elicitation": { "form": {} } }));
    let refused = stranger
        .request(
            "tools/call",
            json!({ "name": tool, "arguments": {}, "requestState": state,
                    "inputResponses": answers }),
        )
        .await
        .expect_err("foreign state");
    assert_eq!(refused["code"], -32602, "{refused}");
}
