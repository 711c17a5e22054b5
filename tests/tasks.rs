//! Tasks through the real gateway: calls of an upstream without task support run as tasks
//! the gateway wraps (2025-11-25 clients by asking, 2026-07-28 clients by declaring the
//! extension), with results equal to the direct call's; cancellation reaching the
//! upstream; expiry; binding to the creator; the configured modes; and passthrough of a
//! task-capable upstream (`@modelcontextprotocol/server-everything`).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{
    Gateway, Mcp, Stateless, WAIT, everything_upstream, first_text, stdio_fixture, wait_for,
};

const EXTENSION: &str = "io.modelcontextprotocol/tasks";
const RELATED: &str = "io.modelcontextprotocol/related-task";

/// A gateway in front of one stdio fixture (`alpha`, which knows nothing of tasks), with
/// extra YAML appended at the top level and under the upstream.
async fn gateway(top: &str, upstream_extra: &str) -> Gateway {
    let yaml = format!(
        "{top}upstreams:\n{}{upstream_extra}",
        stdio_fixture("alpha", &[])
    );
    let gw = Gateway::start(&yaml);
    gw.wait_upstreams_ready().await;
    gw
}

/// Waits (at most [`WAIT`]) for the `alpha` fixture's journal to record `event`.
async fn journaled(client: &Mcp, event: &str) {
    wait_for(WAIT, &format!("{event:?} in alpha's journal"), || async {
        let journal = client.call_text("alpha__journal", json!({})).await;
        journal.contains(event).then_some(())
    })
    .await;
}

fn stateless_with_tasks(gw: &Gateway) -> Stateless {
    Stateless::new(&gw.url, json!({ "extensions": { EXTENSION: {} } }))
}

/// Polls `tasks/get` until the task has ended; returns the last answer.
async fn until_terminal(get: impl Fn() -> futures::future::BoxFuture<'static, Value>) -> Value {
    wait_for(WAIT, "the task to end", || {
        let fut = get();
        async move {
            let task = fut.await;
            let status = task["status"].as_str().unwrap_or_default().to_owned();
            matches!(status.as_str(), "completed" | "failed" | "cancelled").then_some(task)
        }
    })
    .await
}

/// Polls a 2026-07-28 task until it waits for input; returns that `tasks/get` answer.
async fn until_input_required(client: &std::sync::Arc<Stateless>, id: &str) -> Value {
    wait_for(WAIT, "the task to ask for input", || {
        let get = stateless_get(client, id);
        async move {
            let task = get.await;
            (task["status"] == "input_required").then_some(task)
        }
    })
    .await
}

fn handshake_get(
    client: &std::sync::Arc<Mcp>,
    id: &str,
) -> futures::future::BoxFuture<'static, Value> {
    let client = client.clone();
    let id = id.to_owned();
    Box::pin(async move { client.ok("tasks/get", json!({ "taskId": id })).await })
}

fn stateless_get(
    client: &std::sync::Arc<Stateless>,
    id: &str,
) -> futures::future::BoxFuture<'static, Value> {
    let client = client.clone();
    let id = id.to_owned();
    Box::pin(async move { client.ok("tasks/get", json!({ "taskId": id })).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2025_11_25_client_runs_a_slow_tool_as_a_task() {
    let gw = gateway("", "").await;
    let client = std::sync::Arc::new(Mcp::connect(&gw.url).await);

    // Advertised first-class, with what can be served; the tool says it may be a task.
    let caps = &client.init["capabilities"];
    assert_eq!(
        caps["tasks"]["requests"]["tools"]["call"],
        json!({}),
        "{caps}"
    );
    assert!(caps["tasks"]["list"].is_object() && caps["tasks"]["cancel"].is_object());
    assert!(
        caps.get("experimental")
            .is_none_or(|e| e.get("tasks").is_none())
    );
    let tools = client.list_all("tools/list", "tools").await;
    let slow = tools
        .iter()
        .find(|t| t["name"] == "alpha__slow")
        .expect("slow");
    assert_eq!(slow["execution"]["taskSupport"], "optional");

    let direct = client
        .ok(
            "tools/call",
            json!({ "name": "alpha__slow", "arguments": { "ms": 300 } }),
        )
        .await;

    let created = client
        .ok(
            "tools/call",
            json!({ "name": "alpha__slow", "arguments": { "ms": 300 }, "task": { "ttl": 60000 } }),
        )
        .await;
    let task = &created["task"];
    let id = task["taskId"].as_str().expect("taskId").to_owned();
    assert_eq!(task["status"], "working");
    assert_eq!(task["ttl"], 60000);
    assert!(task["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(id.len() >= 32, "task ids are unguessable: {id}");

    // tasks/result blocks until the end, then answers what the call answers.
    let mut result = client.ok("tasks/result", json!({ "taskId": id })).await;
    assert_eq!(result["_meta"][RELATED]["taskId"], id.as_str());
    result.as_object_mut().unwrap().remove("_meta");
    let mut expected = direct.clone();
    expected.as_object_mut().unwrap().remove("_meta");
    assert_eq!(result, expected);

    let done = client.ok("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(done["status"], "completed");
    let listed = client.ok("tasks/list", json!({})).await;
    assert!(
        listed["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["taskId"] == id.as_str())
    );

    // A protocol error fails the task; tasks/result answers the same error.
    let direct_error = client
        .err(
            "tools/call",
            json!({ "name": "alpha__fail", "arguments": {} }),
        )
        .await;
    let failing = client
        .ok(
            "tools/call",
            json!({ "name": "alpha__fail", "arguments": {}, "task": {} }),
        )
        .await;
    let failing_id = failing["task"]["taskId"].as_str().unwrap().to_owned();
    let error = client
        .err("tasks/result", json!({ "taskId": failing_id }))
        .await;
    assert_eq!(error["code"], direct_error["code"]);
    assert_eq!(error["message"], direct_error["message"]);
    let ended = until_terminal(|| handshake_get(&client, &failing_id)).await;
    assert_eq!(ended["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_07_28_client_gets_a_task_when_a_call_outlasts_the_threshold() {
    let gw = gateway("tasks:\n  threshold: 400ms\n", "").await;
    let client = std::sync::Arc::new(stateless_with_tasks(&gw));
    let discover = client.ok("server/discover", json!({})).await;
    assert_eq!(discover["capabilities"]["extensions"][EXTENSION], json!({}));
    assert!(discover["capabilities"].get("tasks").is_none());

    // Quick: answered as usual.
    let quick = client
        .call("alpha__slow", json!({ "ms": 50 }))
        .await
        .unwrap();
    assert_eq!(quick["resultType"], "complete");

    // Slow: a task, flat, in the extension's shape.
    let created = client
        .call("alpha__slow", json!({ "ms": 1500 }))
        .await
        .unwrap();
    assert_eq!(created["resultType"], "task", "{created}");
    assert!(created.get("task").is_none() && created.get("ttl").is_none());
    assert!(created["ttlMs"].as_u64().is_some() && created["pollIntervalMs"].as_u64().is_some());
    let id = created["taskId"].as_str().unwrap().to_owned();
    let working = client.ok("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(working["status"], "working");
    assert!(working.get("result").is_none());
    let done = until_terminal(|| stateless_get(&client, &id)).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["resultType"], "complete");

    // The same result the call gives a client that waits for it.
    let plain = Stateless::new(&gw.url, json!({}));
    let direct = plain
        .call("alpha__slow", json!({ "ms": 1500 }))
        .await
        .unwrap();
    assert_eq!(
        direct["resultType"], "complete",
        "no extension, no task: {direct}"
    );
    assert_eq!(done["result"]["content"], direct["content"]);

    // The extension's methods: the v1-only ones are unknown; undeclared clients get -32021.
    let e = client.err("tasks/result", json!({ "taskId": id })).await;
    assert_eq!(e["code"], -32601);
    let e = plain.err("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(e["code"], -32021);
    assert!(
        e["data"]["requiredCapabilities"]["extensions"][EXTENSION].is_object(),
        "{e}"
    );
    // Mcp-Name must carry the task id.
    let body = client.body(client.next_id(), "tasks/get", json!({ "taskId": id }));
    let mut headers = Stateless::headers_for(&body);
    for (name, value) in &mut headers {
        if name.eq_ignore_ascii_case("mcp-name") {
            *value = "someone-else".into();
        }
    }
    let reply = client.post_raw(&body, &headers).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], -32020);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_task_cancels_its_upstream_call() {
    let gw = gateway("", "    tool_tasks:\n      slow: always\n").await;

    // 2025-11-25: tasks/cancel answers the cancelled task; the upstream call stops.
    let client = std::sync::Arc::new(Mcp::connect(&gw.url).await);
    let created = client
        .ok(
            "tools/call",
            json!({ "name": "alpha__slow", "arguments": { "ms": 20000 }, "task": {} }),
        )
        .await;
    let id = created["task"]["taskId"].as_str().unwrap().to_owned();
    // Cancelled once the call runs upstream (cancelled before, it never gets there).
    journaled(&client, "slow 20000 ms started").await;
    let cancelled = client.ok("tasks/cancel", json!({ "taskId": id })).await;
    assert_eq!(cancelled["status"], "cancelled");
    let again = client.err("tasks/cancel", json!({ "taskId": id })).await;
    assert_eq!(
        again["code"], -32602,
        "a finished task cannot be cancelled: {again}"
    );
    journaled(&client, "cancelled slow").await;
    assert_eq!(
        client.ok("tasks/get", json!({ "taskId": id })).await["status"],
        "cancelled"
    );

    // 2026-07-28 (`always`: a task at once): an empty ack, then `cancelled`.
    let stateless = std::sync::Arc::new(stateless_with_tasks(&gw));
    let created = stateless
        .call("alpha__slow", json!({ "ms": 20000 }))
        .await
        .unwrap();
    assert_eq!(created["resultType"], "task");
    let id = created["taskId"].as_str().unwrap().to_owned();
    let ack = stateless.ok("tasks/cancel", json!({ "taskId": id })).await;
    assert!(
        ack.get("taskId").is_none() && ack.get("status").is_none(),
        "{ack}"
    );
    let ended = until_terminal(|| stateless_get(&stateless, &id)).await;
    assert_eq!(ended["status"], "cancelled");
    let ack = stateless.ok("tasks/cancel", json!({ "taskId": id })).await;
    assert!(
        ack.get("status").is_none(),
        "idempotent on an ended task: {ack}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_forgotten_after_its_ttl() {
    let gw = gateway("", "").await;
    let client = Mcp::connect(&gw.url).await;
    let created = client
        .ok(
            "tools/call",
            json!({ "name": "alpha__slow", "arguments": { "ms": 10 }, "task": { "ttl": 700 } }),
        )
        .await;
    let id = created["task"]["taskId"].as_str().unwrap().to_owned();
    assert_eq!(created["task"]["ttl"], 700);
    let result = client.ok("tasks/result", json!({ "taskId": id })).await;
    assert_eq!(result["content"][0]["text"], "done after 10 ms");
    tokio::time::sleep(Duration::from_millis(900)).await;
    let gone = client.err("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(gone["code"], -32602);
    assert!(
        gone["message"].as_str().unwrap().contains("Unknown task"),
        "{gone}"
    );

    // A task still running when its TTL passes is stopped upstream.
    let created = client
        .ok(
            "tools/call",
            json!({ "name": "alpha__slow", "arguments": { "ms": 20000 }, "task": { "ttl": 500 } }),
        )
        .await;
    let id = created["task"]["taskId"].as_str().unwrap().to_owned();
    // The expired task's call was cancelled.
    journaled(&client, "cancelled slow").await;
    assert_eq!(
        client.err("tasks/get", json!({ "taskId": id })).await["code"],
        -32602
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_creator_sees_a_task() {
    let gw = gateway("", "").await;
    let owner = Mcp::connect(&gw.url).await;
    let other = Mcp::connect(&gw.url).await;
    let created = owner
        .ok(
            "tools/call",
            json!({ "name": "alpha__slow", "arguments": { "ms": 5000 }, "task": {} }),
        )
        .await;
    let id = created["task"]["taskId"].as_str().unwrap().to_owned();

    // Another session: the same error as for a task that never existed, for every method.
    let unknown = other
        .err("tasks/get", json!({ "taskId": "task-0000" }))
        .await;
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let e = other.err(method, json!({ "taskId": id })).await;
        assert_eq!(e["code"], unknown["code"], "{method}: {e}");
        assert_eq!(
            e["message"].as_str().unwrap().replace(&id, "ID"),
            unknown["message"]
                .as_str()
                .unwrap()
                .replace("task-0000", "ID"),
        );
    }
    let listed = other.ok("tasks/list", json!({})).await;
    assert_eq!(listed["tasks"], json!([]));
    // Nor does a 2026-07-28 client of the same principal (it has no session).
    let stateless = stateless_with_tasks(&gw);
    assert_eq!(
        stateless.err("tasks/get", json!({ "taskId": id })).await["code"],
        -32602
    );
    // The owner still can, and its cancellation is untouched by the others' attempts.
    assert_eq!(
        owner.ok("tasks/get", json!({ "taskId": id })).await["status"],
        "working"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_decide_what_is_listed_and_allowed() {
    let gw = gateway(
        "",
        "    tasks: on_request\n    tool_tasks:\n      slow: always\n      echo: never\n",
    )
    .await;
    let client = Mcp::connect(&gw.url).await;
    let tools = client.list_all("tools/list", "tools").await;
    let support = |name: &str| {
        tools.iter().find(|t| t["name"] == name).unwrap()["execution"]["taskSupport"].clone()
    };
    assert_eq!(support("alpha__slow"), "required");
    assert_eq!(support("alpha__echo"), "forbidden");
    assert_eq!(support("alpha__whoami"), "optional");

    // 2025-11-25: a required tool without `task`, a forbidden one with it: -32601.
    let e = client
        .err(
            "tools/call",
            json!({ "name": "alpha__slow", "arguments": { "ms": 1 } }),
        )
        .await;
    assert_eq!(e["code"], -32601, "{e}");
    let e = client
        .err(
            "tools/call",
            json!({ "name": "alpha__echo", "arguments": { "message": "x" }, "task": {} }),
        )
        .await;
    assert_eq!(e["code"], -32601, "{e}");

    // 2026-07-28 without the extension: -32021 for a required tool; others run as usual,
    // a stray v1 `task` param changing nothing.
    let plain = Stateless::new(&gw.url, json!({}));
    let e = plain
        .call("alpha__slow", json!({ "ms": 1 }))
        .await
        .unwrap_err();
    assert_eq!(e["code"], -32021, "{e}");
    assert!(e["data"]["requiredCapabilities"]["extensions"][EXTENSION].is_object());
    let r = plain
        .request(
            "tools/call",
            json!({ "name": "alpha__echo", "arguments": { "message": "x" }, "task": { "ttl": 5 } }),
        )
        .await
        .unwrap();
    assert_eq!(r["resultType"], "complete");

    // Prompts and reads run as tasks on request too (2025-11-25), like FastMCP allows.
    let prompts = client.list_all("prompts/list", "prompts").await;
    let prompt = prompts[0]["name"].as_str().unwrap().to_owned();
    let direct = client
        .ok(
            "prompts/get",
            json!({ "name": prompt, "arguments": { "name": "x" } }),
        )
        .await;
    let created = client
        .ok(
            "prompts/get",
            json!({ "name": prompt, "arguments": { "name": "x" }, "task": {} }),
        )
        .await;
    let id = created["task"]["taskId"].as_str().unwrap().to_owned();
    let mut result = client.ok("tasks/result", json!({ "taskId": id })).await;
    result.as_object_mut().unwrap().remove("_meta");
    let mut direct = direct;
    direct.as_object_mut().unwrap().remove("_meta");
    assert_eq!(result, direct);
    let caps = &client.init["capabilities"]["tasks"]["requests"];
    assert_eq!(caps["prompts"]["get"], json!({}));
    assert_eq!(caps["resources"]["read"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_per_principal_are_limited() {
    let gw = gateway("tasks:\n  max_per_principal: 2\n", "").await;
    let client = Mcp::connect(&gw.url).await;
    for _ in 0..2 {
        client
            .ok(
                "tools/call",
                json!({ "name": "alpha__slow", "arguments": { "ms": 5000 }, "task": {} }),
            )
            .await;
    }
    let e = client
        .err(
            "tools/call",
            json!({ "name": "alpha__slow", "arguments": { "ms": 5000 }, "task": {} }),
        )
        .await;
    assert!(e["message"].as_str().unwrap().contains("at most 2"), "{e}");
    // Without a task the call is still served.
    let r = client
        .ok(
            "tools/call",
            json!({ "name": "alpha__slow", "arguments": { "ms": 1 } }),
        )
        .await;
    assert_eq!(r["content"][0]["text"], "done after 1 ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_runs_tasks_runs_them_behind_gateway_ids() {
    let gw = Gateway::start(&format!("upstreams:\n{}", everything_upstream()));
    gw.wait_upstreams_ready().await;
    let client = std::sync::Arc::new(
        Mcp::connect_with(&gw.url, "2025-11-25", json!({ "elicitation": {} })).await,
    );
    let tool = "everything__simulate-research-query";
    let tools = wait_for(WAIT, "the research tool", || async {
        let tools = client.list_all("tools/list", "tools").await;
        tools.iter().any(|t| t["name"] == tool).then_some(tools)
    })
    .await;
    let listed = tools.iter().find(|t| t["name"] == tool).unwrap();
    assert_eq!(listed["execution"]["taskSupport"], "required");

    // The upstream creates the task; the client sees the gateway's id.
    let created = client
        .ok(
            "tools/call",
            json!({ "name": tool, "arguments": { "topic": "rust" }, "task": { "ttl": 60000 } }),
        )
        .await;
    let id = created["task"]["taskId"]
        .as_str()
        .expect("taskId")
        .to_owned();
    assert!(
        id.starts_with("task-") && id.len() == 37,
        "a gateway id: {id}"
    );
    assert_eq!(
        created["task"]["pollInterval"], 1000,
        "the upstream's own fields pass: {created}"
    );
    let got = client.ok("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(got["taskId"], id.as_str());
    assert!(
        matches!(got["status"].as_str(), Some("working" | "completed")),
        "{got}"
    );
    let listed = client.ok("tasks/list", json!({})).await;
    assert!(
        listed["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["taskId"] == id.as_str())
    );

    // Another session cannot reach it.
    let other = Mcp::connect(&gw.url).await;
    assert_eq!(
        other.err("tasks/get", json!({ "taskId": id })).await["code"],
        -32602
    );

    // tasks/result blocks until the upstream's task ends and carries the gateway's id.
    let result = client.ok("tasks/result", json!({ "taskId": id })).await;
    assert!(
        first_text(&result).contains("Research Report: rust"),
        "{result}"
    );
    assert_eq!(result["_meta"][RELATED]["taskId"], id.as_str());
    let done = client.ok("tasks/get", json!({ "taskId": id })).await;
    assert_eq!(done["status"], "completed");

    // An ambiguous query asks the client through tasks/result: the elicitation reaches this
    // client, tagged with the gateway's task id, and the answer reaches the upstream.
    let created = client
        .ok(
            "tools/call",
            json!({ "name": tool, "arguments": { "topic": "python", "ambiguous": true }, "task": {} }),
        )
        .await;
    let id = created["task"]["taskId"].as_str().unwrap().to_owned();
    let (request_id, resp) = client
        .stream_request("tasks/result", json!({ "taskId": id }))
        .await;
    let mut stream = support::SseStream::new(resp);
    let ask = stream
        .next_matching(WAIT, |m| m["method"] == "elicitation/create")
        .await
        .expect("the elicitation of the task");
    assert_eq!(
        ask["params"]["_meta"][RELATED]["taskId"],
        id.as_str(),
        "{ask}"
    );
    let answer = json!({
        "jsonrpc": "2.0",
        "id": ask["id"],
        "result": { "action": "accept", "content": { "interpretation": "snake" } },
    });
    let reply = client.send(&answer).await;
    assert!(reply.status == 202 || reply.status == 200, "{}", reply.body);
    let response = stream
        .next_matching(WAIT, |m| m["id"] == json!(request_id))
        .await
        .expect("the task's result");
    let text = first_text(&response["result"]);
    assert!(
        text.contains("snake"),
        "the answer reached the upstream: {text}"
    );

    // Cancelling goes to the upstream too.
    let created = client
        .ok(
            "tools/call",
            json!({ "name": tool, "arguments": { "topic": "go" }, "task": {} }),
        )
        .await;
    let id = created["task"]["taskId"].as_str().unwrap().to_owned();
    let cancelled = client.ok("tasks/cancel", json!({ "taskId": id })).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["taskId"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapped_task_asks_its_client_for_input_and_resumes() {
    // The conformance fixture held to the handshake era: its confirm_delete asks the client
    // with a real elicitation/create, and it knows nothing of tasks.
    let yaml = format!(
        "upstreams:\n  conformance:\n    command: {:?}\n    args: [--transport, stdio]\n    prefix: \"\"\n    protocol: handshake\n    tool_tasks:\n      confirm_delete: always\n",
        support::example_bin("conformance_server")
            .display()
            .to_string()
    );
    let gw = Gateway::start(&yaml);
    gw.wait_upstreams_ready().await;
    let client = std::sync::Arc::new(Stateless::new(
        &gw.url,
        json!({ "elicitation": {}, "extensions": { EXTENSION: {} } }),
    ));
    let created = client
        .call("confirm_delete", json!({ "filename": "notes.txt" }))
        .await
        .unwrap();
    assert_eq!(created["resultType"], "task", "{created}");
    let id = created["taskId"].as_str().unwrap().to_owned();

    // The upstream's question shows on the task.
    let waiting = until_input_required(&client, &id).await;
    let requests = waiting["inputRequests"].as_object().expect("inputRequests");
    assert_eq!(requests.len(), 1, "{waiting}");
    let (key, request) = requests.iter().next().unwrap();
    assert_eq!(request["method"], "elicitation/create");
    assert!(
        request["params"]["message"]
            .as_str()
            .unwrap()
            .contains("notes.txt")
    );

    // An unknown key changes nothing; the right one resumes the call.
    let ack = client
        .ok(
            "tasks/update",
            json!({ "taskId": id, "inputResponses": { "nope": {} } }),
        )
        .await;
    assert!(ack.get("status").is_none(), "{ack}");
    assert_eq!(
        stateless_get(&client, &id).await["status"],
        "input_required"
    );
    client
        .ok(
            "tasks/update",
            json!({ "taskId": id, "inputResponses": { key: { "action": "accept", "content": { "confirm": true } } } }),
        )
        .await;
    let done = until_terminal(|| stateless_get(&client, &id)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        first_text(&done["result"]),
        "Deleted notes.txt (nothing was really deleted)."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_07_28_client_runs_a_2025_11_25_upstream_task() {
    let gw = Gateway::start(&format!("upstreams:\n{}", everything_upstream()));
    gw.wait_upstreams_ready().await;
    let tool = "everything__simulate-research-query";
    let client = std::sync::Arc::new(Stateless::new(
        &gw.url,
        json!({ "elicitation": {}, "extensions": { EXTENSION: {} } }),
    ));
    wait_for(WAIT, "the research tool", || async {
        let tools = client.ok("tools/list", json!({})).await;
        tools["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == tool))
            .then_some(())
    })
    .await;

    // server-everything asks its client for roots 350 ms after the handshake; let that pass,
    // or it lands in the first call (this client declares no roots, so it would fail it).
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // The upstream requires a task: a client without the extension is told so.
    let plain = Stateless::new(&gw.url, json!({}));
    let e = plain
        .call(tool, json!({ "topic": "rust" }))
        .await
        .unwrap_err();
    assert_eq!(e["code"], -32021, "{e}");

    // With it: a 2026-07-28 task, driven by the upstream's own 2025-11-25 task.
    let created = client.call(tool, json!({ "topic": "rust" })).await.unwrap();
    assert_eq!(created["resultType"], "task", "{created}");
    let id = created["taskId"].as_str().unwrap().to_owned();
    let done = until_terminal(|| stateless_get(&client, &id)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(first_text(&done["result"]).contains("Research Report: rust"));
    assert!(
        done["result"]
            .get("_meta")
            .is_none_or(|m| m.get(RELATED).is_none())
    );

    // Its question (sent through tasks/result upstream) becomes the task's input request.
    let created = client
        .call(tool, json!({ "topic": "python", "ambiguous": true }))
        .await
        .unwrap();
    let id = created["taskId"].as_str().unwrap().to_owned();
    let waiting = until_input_required(&client, &id).await;
    let requests = waiting["inputRequests"].as_object().expect("inputRequests");
    let (key, request) = requests.iter().next().expect("one request");
    assert_eq!(request["method"], "elicitation/create", "{waiting}");
    client
        .ok(
            "tasks/update",
            json!({ "taskId": id, "inputResponses": { key: { "action": "accept", "content": { "interpretation": "snake" } } } }),
        )
        .await;
    let done = until_terminal(|| stateless_get(&client, &id)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(first_text(&done["result"]).contains("snake"), "{done}");
}

/// Issue 13: what the gateway declares does not depend on when the client connected. A
/// client that initializes while its one upstream is still starting gets the same `tasks`
/// capability as one that comes later, and learns of the tools by `list_changed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_initialized_before_its_upstream_was_ready_gets_the_tasks_capability() {
    // The upstream takes two seconds to start.
    let fixture = support::fixture_bin().display().to_string();
    let yaml = format!(
        "upstreams:\n  late:\n    command: sh\n    args: [\"-c\", {:?}]\n",
        format!("sleep 2; exec {fixture:?} --name late")
    );
    let gw = Gateway::start(&yaml);
    let early = Mcp::connect(&gw.url).await;
    let (_, health) = gw.readyz().await;
    assert_eq!(
        health["upstreams"]["late"]["status"], "starting",
        "the test needs the client to initialize first: {health}"
    );
    let mut stream = early.open_stream().await.expect("GET stream");
    let caps = &early.init["capabilities"];
    assert_eq!(
        caps["tasks"]["requests"]["tools"]["call"],
        json!({}),
        "{caps}"
    );
    assert_eq!(caps["tools"]["listChanged"], true, "{caps}");

    let changed = stream
        .next_matching(WAIT, |m| m["method"] == "notifications/tools/list_changed")
        .await;
    assert!(changed.is_some(), "no list_changed; log:\n{}", gw.log());
    let tools = early.list_keys("tools/list", "tools", "name").await;
    assert!(tools.contains(&"late__slow".to_owned()), "{tools:?}");

    // A client that comes after the upstream is up is told exactly the same.
    gw.wait_upstreams_ready().await;
    let later = Mcp::connect(&gw.url).await;
    assert_eq!(later.init["capabilities"], early.init["capabilities"]);
}
