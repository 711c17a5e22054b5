//! Tasks in a shared Redis (`tasks.redis`): two real gateway processes in front of one
//! fixture upstream, one real `redis-server`, 2026-07-28 clients (no session, so any replica
//! may serve them). A task created through one replica is read, awaited and cancelled
//! through the other; another principal cannot see it; a replica whose Redis is unreachable
//! answers task requests with an error at once.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::test_redis::{RedisServer, free_port};
use support::{Gateway, HttpFixture, Stateless, WAIT, http_upstream, sha256_hex, wait_for};

const SEAL_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const ALICE: &str = "alice-key-0123456789abcdef";
const BOB: &str = "bob-key-0123456789abcdef01";

/// A gateway config: two API-key principals, the fixture as `fx` with `slow` always a task,
/// tasks in the Redis at `redis`.
fn config(redis: &str, fixture: &HttpFixture) -> String {
    format!(
        "seal_key: \"{SEAL_KEY}\"\n\
         auth:\n  api_keys:\n    - {{name: alice, sha256: \"{alice}\"}}\n    - {{name: bob, sha256: \"{bob}\"}}\n\
         tasks:\n  redis: {redis:?}\n  poll_interval: 200ms\n\
         upstreams:\n{upstream}    tool_tasks: {{slow: always}}\n",
        alice = sha256_hex(ALICE),
        bob = sha256_hex(BOB),
        upstream = http_upstream("fx", &fixture.url),
    )
}

async fn ready(gw: &Gateway) {
    gw.wait_upstreams_ready().await;
    wait_for(WAIT, "fx probed as 2026-07-28", || async {
        let (_, body) = gw.readyz().await;
        (body["upstreams"]["fx"]["protocolVersion"] == "2026-07-28").then_some(())
    })
    .await;
}

/// A 2026-07-28 client that declares the tasks extension and authenticates with an API key.
struct Client {
    stateless: Stateless,
    key: &'static str,
}

impl Client {
    fn new(gw: &Gateway, key: &'static str) -> Client {
        let capabilities = json!({ "extensions": { "io.modelcontextprotocol/tasks": {} } });
        Client {
            stateless: Stateless::new(&gw.url, capabilities),
            key,
        }
    }

    async fn request(&self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.stateless.next_id();
        let body = self.stateless.body(id, method, params);
        let mut headers = Stateless::headers_for(&body);
        headers.push(("x-api-key".to_owned(), self.key.to_owned()));
        let reply = self.stateless.post_raw(&body, &headers).await;
        let response = reply
            .messages()
            .into_iter()
            .find(|m| m["id"] == json!(id) && m.get("method").is_none())
            .unwrap_or_else(|| panic!("no response to {method}: {} {}", reply.status, reply.body));
        match response.get("result") {
            Some(result) => Ok(result.clone()),
            None => Err(response["error"].clone()),
        }
    }

    /// Calls `fx__slow`, which the gateway makes a task at once; the task's id.
    async fn start_slow(&self, ms: u64) -> String {
        let created = self
            .request(
                "tools/call",
                json!({ "name": "fx__slow", "arguments": { "ms": ms } }),
            )
            .await
            .expect("the call is accepted");
        assert_eq!(created["resultType"], "task", "{created}");
        assert_eq!(created["status"], "working", "{created}");
        created["taskId"].as_str().expect("taskId").to_owned()
    }

    async fn get(&self, task: &str) -> Result<Value, Value> {
        self.request("tasks/get", json!({ "taskId": task })).await
    }
}

/// The fixture's journal of protocol events (it records the calls it saw cancelled).
async fn journal(fixture: &HttpFixture) -> Vec<String> {
    let direct = Stateless::new(&fixture.url, json!({}));
    let result = direct.call("journal", json!({})).await.expect("journal");
    serde_json::from_value(result["structuredContent"]["events"].clone()).expect("events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_redis_answer_for_each_others_tasks() {
    let redis = RedisServer::start();
    let fixture = HttpFixture::start("fx", &[]);
    let yaml = config(&redis.url(), &fixture);
    let a = Gateway::start(&yaml);
    let b = Gateway::start(&yaml);
    ready(&a).await;
    ready(&b).await;
    let on_a = Client::new(&a, ALICE);
    let on_b = Client::new(&b, ALICE);

    // Created on A; B sees it working, then completed with what the tool answers when
    // called directly (without a gateway or a task).
    let direct = Stateless::new(&fixture.url, json!({}));
    let ((task, seen), direct) = tokio::join!(
        async {
            let task = on_a.start_slow(2500).await;
            let seen = on_b.get(&task).await.expect("B knows A's task");
            (task, seen)
        },
        direct.call("slow", json!({ "ms": 2500 }))
    );
    let direct = direct.expect("direct call");
    assert_eq!(seen["taskId"], task.as_str());
    assert_eq!(seen["status"], "working", "{seen}");
    let done = wait_for(WAIT, "the task to complete, seen on B", || async {
        let seen = on_b.get(&task).await.expect("tasks/get on B");
        (seen["status"] != "working").then_some(seen)
    })
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["content"], direct["content"], "{done}");
    assert_eq!(done["result"]["content"][0]["text"], "done after 2500 ms");

    // Another principal is told the task does not exist, on either replica, and cannot
    // cancel it.
    let other = on_a.start_slow(20_000).await;
    for gw in [&a, &b] {
        let bob = Client::new(gw, BOB);
        let refused = bob.get(&task).await.expect_err("not bob's task");
        assert_eq!(refused["code"], -32602, "{refused}");
        let refused = bob
            .request("tasks/cancel", json!({ "taskId": other }))
            .await
            .expect_err("not bob's task");
        assert_eq!(refused["code"], -32602, "{refused}");
    }
    assert_eq!(on_a.get(&other).await.unwrap()["status"], "working");

    // Cancelled through B: A sees it cancelled, and A's runner stops the upstream call.
    let cancelled = on_b
        .request("tasks/cancel", json!({ "taskId": other }))
        .await
        .expect("cancel on B");
    // An empty acknowledgement (plus the envelope every 2026-07-28 result carries).
    assert_eq!(cancelled["resultType"], "complete", "{cancelled}");
    assert!(cancelled.get("status").is_none(), "{cancelled}");
    let seen = on_a.get(&other).await.expect("tasks/get on A");
    assert_eq!(seen["status"], "cancelled", "{seen}");
    let event = wait_for(WAIT, "the fixture to see the call cancelled", || async {
        journal(&fixture)
            .await
            .into_iter()
            .find(|e| e.starts_with("cancelled slow"))
    })
    .await;
    let after: u64 = event
        .trim_start_matches("cancelled slow after ")
        .trim_end_matches(" ms")
        .parse()
        .expect("elapsed ms");
    assert!(after < 20_000, "{event}");
    // A ran the task and stopped it (logged after the upstream saw the cancel).
    a.log_with("Task cancelled; its call was cancelled upstream")
        .await;
    // Still cancelled afterwards: the runner's own ending does not overwrite it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(on_b.get(&other).await.unwrap()["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_redis_is_unreachable_answers_with_an_error_at_once() {
    let fixture = HttpFixture::start("fx", &[]);
    let url = format!("redis://:hunter2-secret@127.0.0.1:{}", free_port());
    let gw = Gateway::start(&config(&url, &fixture));
    ready(&gw).await;
    let client = Client::new(&gw, ALICE);
    for _ in 0..2 {
        let started = Instant::now();
        let error = client
            .request(
                "tools/call",
                json!({ "name": "fx__slow", "arguments": { "ms": 10 } }),
            )
            .await
            .expect_err("no task without its store");
        assert!(started.elapsed() < Duration::from_secs(10), "{error}");
        assert_eq!(error["code"], -32603, "{error}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains("task store unavailable"), "{error}");
        assert!(
            !message.contains("hunter2") && !message.contains("127.0.0.1"),
            "{error}"
        );
        let error = client
            .get("task-00000000000000000000000000000000")
            .await
            .expect_err("no store");
        assert_eq!(error["code"], -32603, "{error}");
    }
    // Calls that are not tasks are served as usual.
    let echoed = client
        .request(
            "tools/call",
            json!({ "name": "fx__echo", "arguments": { "text": "hi" } }),
        )
        .await
        .expect("a plain call");
    assert!(echoed.to_string().contains("hi"), "{echoed}");
    assert!(!gw.log().contains("hunter2"), "{}", gw.log());
}
