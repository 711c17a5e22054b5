//! The downstream transports besides Streamable HTTP — `manifold stdio` and the handshake
//! HTTP+SSE transport — and upstream sessions over HTTP, one per client session.

mod support;

use serde_json::{Value, json};
use support::{
    ConformanceHttp, Gateway, Mcp, RawSse, VERSION, WAIT, children_of, first_text, http_client,
    http_upstream, initialize_body, is_running, spawn_stdio, stdio_fixture, streaming_client,
    wait_for, within,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// `manifold stdio` as a child process, spoken to line by line.
struct StdioGateway {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    dir: tempfile::TempDir,
}

impl StdioGateway {
    fn start(yaml: &str) -> StdioGateway {
        let (mut child, dir) = spawn_stdio(yaml);
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        StdioGateway {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    async fn send(&mut self, msg: &Value) {
        let mut line = msg.to_string();
        line.push('\n');
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).await.expect("write");
        stdin.flush().await.expect("flush");
    }

    /// The next line, as JSON.
    async fn recv(&mut self) -> Value {
        let line = within(WAIT, "a line from manifold stdio", self.lines.next_line())
            .await
            .expect("read stdout")
            .unwrap_or_else(|| panic!("stdout closed; stderr:\n{}", self.log()));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Reads lines until one satisfies `pred`; returns it and the lines before it.
    async fn recv_until(&mut self, pred: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let msg = self.recv().await;
            if pred(&msg) {
                return (msg, before);
            }
            before.push(msg);
        }
    }

    /// Sends a request and waits for its response.
    async fn request(&mut self, id: u64, method: &str, params: Value) -> (Value, Vec<Value>) {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        self.recv_until(|m| m.get("id") == Some(&json!(id)) && m.get("method").is_none())
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifold_stdio_serves_one_client_on_stdin_and_stdout() {
    let mut gw = StdioGateway::start(&format!("upstreams:\n{}", stdio_fixture("alpha", &[])));

    let (init, _) = gw
        .request(
            1,
            "initialize",
            initialize_body(1, "2025-03-26")["params"].clone(),
        )
        .await;
    assert_eq!(init["result"]["protocolVersion"], "2025-03-26", "{init}");
    gw.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;

    let (list, _) = gw.request(2, "tools/list", json!({})).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert!(names.contains(&"alpha__whoami"), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("alpha__")), "{names:?}");

    let (call, _) = gw
        .request(
            3,
            "tools/call",
            json!({"name": "alpha__whoami", "arguments": {}}),
        )
        .await;
    assert_eq!(first_text(&call["result"]), "alpha");

    // Progress comes as lines before the response, under the client's token.
    let (done, before) = gw
        .request(
            4,
            "tools/call",
            json!({"name": "alpha__slow", "arguments": {"ms": 500}, "_meta": {"progressToken": "p"}}),
        )
        .await;
    assert_eq!(first_text(&done["result"]), "done after 500 ms");
    let progress: Vec<&Value> = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert!(progress.len() >= 3, "{before:?}");
    assert!(
        progress.iter().all(|m| m["params"]["progressToken"] == "p"),
        "{progress:?}"
    );

    // A 2025-03-26 batch is answered with one line holding the array of responses.
    gw.send(&json!([
        {"jsonrpc": "2.0", "id": 10, "method": "tools/call",
         "params": {"name": "alpha__echo", "arguments": {"text": "hi"}}},
        {"jsonrpc": "2.0", "id": 11, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]))
    .await;
    let (array, _) = gw.recv_until(Value::is_array).await;
    let array = array.as_array().expect("array");
    assert_eq!(array.len(), 2, "{array:?}");
    let echo = array.iter().find(|r| r["id"] == 10).expect("id 10");
    assert_eq!(first_text(&echo["result"]), "hi");
    let ping = array.iter().find(|r| r["id"] == 11).expect("id 11");
    assert_eq!(ping["result"], json!({}));

    // Closing stdin ends the gateway, cleanly, and its upstream with it.
    let pid = gw.child.id().expect("pid");
    let upstreams = children_of(pid);
    // The fixture speaks both eras: one process per era.
    assert_eq!(upstreams.len(), 2, "two upstream children: {upstreams:?}");
    drop(gw.stdin.take());
    let status = within(WAIT, "manifold stdio to exit", gw.child.wait())
        .await
        .expect("wait");
    assert!(status.success(), "{status:?}; stderr:\n{}", gw.log());
    wait_for(WAIT, "the upstream child to exit", || async {
        (!is_running(upstreams[0])).then_some(())
    })
    .await;
}

/// An HTTP+SSE client: the stream, and the URL its `endpoint` event named.
async fn open_handshake(gw: &Gateway) -> (RawSse, String) {
    let resp = streaming_client()
        .get(format!("{}/sse", gw.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET /sse");
    assert_eq!(resp.status().as_u16(), 200);
    let mut sse = RawSse::new(resp);
    let endpoint = sse.next(WAIT).await.expect("the endpoint event");
    assert_eq!(endpoint.event.as_deref(), Some("endpoint"), "{endpoint:?}");
    assert!(
        endpoint.data.starts_with("/message?session_id="),
        "{endpoint:?}"
    );
    (sse, format!("{}{}", gw.base, endpoint.data))
}

async fn post_to(url: &str, msg: &Value) -> u16 {
    http_client()
        .post(url)
        .header("content-type", "application/json")
        .json(msg)
        .send()
        .await
        .expect("POST")
        .status()
        .as_u16()
}

/// The next message on the stream that answers request `id`.
async fn answer_to(sse: &mut RawSse, id: u64) -> Value {
    let (event, _) = sse
        .until(WAIT, |m| {
            m.get("id") == Some(&json!(id)) && m.get("method").is_none()
        })
        .await
        .unwrap_or_else(|| panic!("no answer to {id} on the SSE stream"));
    event.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_http_sse_clients_post_messages_and_read_every_answer_from_the_stream() {
    let gw = Gateway::start(&format!("upstreams:\n{}", stdio_fixture("alpha", &[])));
    gw.wait_ready().await;
    let (mut sse, endpoint) = open_handshake(&gw).await;

    // Before initialize nothing else is accepted.
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_eq!(post_to(&endpoint, &ping).await, 400);

    assert_eq!(
        post_to(&endpoint, &initialize_body(1, "2024-11-05")).await,
        202
    );
    let init = answer_to(&mut sse, 1).await;
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05", "{init}");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post_to(&endpoint, &initialized).await, 202);

    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "alpha__whoami", "arguments": {}}});
    assert_eq!(post_to(&endpoint, &call).await, 202);
    assert_eq!(first_text(&answer_to(&mut sse, 2).await["result"]), "alpha");

    // Errors travel the same way.
    let unknown = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                         "params": {"name": "nobody__nothing", "arguments": {}}});
    assert_eq!(post_to(&endpoint, &unknown).await, 202);
    assert_eq!(answer_to(&mut sse, 3).await["error"]["code"], json!(-32602));

    let bogus = format!("{}/message?session_id=not-a-session", gw.base);
    assert_eq!(post_to(&bogus, &ping).await, 404);

    // Closing the stream ends the session.
    drop(sse);
    wait_for(WAIT, "the session to end with its stream", || async {
        (post_to(
            &endpoint,
            &json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}),
        )
        .await
            == 404)
            .then_some(())
    })
    .await;
}

/// Calls `test_sampling` and returns the first message of its answer: the gateway's
/// `sampling/createMessage` when the client's upstream session may ask it, else the result.
async fn start_sampling(c: &Mcp, id: u64) -> (RawSse, Value) {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": "test_sampling", "arguments": {"prompt": "2+2?"}}});
    let resp = streaming_client()
        .post(&c.url)
        .header("content-type", "application/json")
        .header("accept", support::ACCEPT_BOTH)
        .header("mcp-session-id", &c.session)
        .header("mcp-protocol-version", &c.version)
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200);
    let mut sse = RawSse::new(resp);
    let first = within(WAIT, "the first message", sse.next(WAIT))
        .await
        .map(|e| e.json())
        .expect("a message");
    (sse, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_upstream_sees_each_client_in_its_own_session() {
    // The conformance fixture asks for sampling only from a session whose client declared it
    // in `initialize`: its answer tells which upstream session served a call.
    // Held to the handshake era: a 2026-07-28 upstream has no sessions (its clients'
    // capabilities travel per request instead; see tests/eras.rs).
    let upstream = ConformanceHttp::start();
    let yaml = format!(
        "upstreams:\n{}    prefix: \"\"\n    protocol: handshake\n",
        http_upstream("conf", &upstream.url)
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let asker = Mcp::connect_with(&gw.url, VERSION, json!({"sampling": {}})).await;
    let plain = Mcp::connect(&gw.url).await;

    // The sampling client's call waits upstream for its answer…
    let (mut asking, request) = start_sampling(&asker, 1).await;
    assert_eq!(request["method"], "sampling/createMessage", "{request}");

    // …while the other client's call, on its own upstream session that declared no
    // sampling, is refused by the upstream itself.
    let reply = plain
        .send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "test_sampling", "arguments": {"prompt": "2+2?"}}}))
        .await;
    let result = &reply.json()["result"];
    assert_eq!(result["isError"], json!(true), "{result}");
    assert_eq!(
        first_text(result),
        "the client did not declare the sampling capability, so test_sampling cannot ask it",
        "the upstream session of a client without sampling declared none"
    );

    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {
        "role": "assistant", "content": {"type": "text", "text": "4"}, "model": "test"}});
    assert_eq!(asker.send(&answer).await.status, 202);
    let (event, _) = asking
        .until(WAIT, |m| m.get("id") == Some(&json!(1)))
        .await
        .expect("the sampling call's result");
    assert_eq!(first_text(&event.json()["result"]), "LLM response: 4");

    // The same client again: its session is reused and still asks it.
    let (_again, request) = start_sampling(&asker, 2).await;
    assert_eq!(request["method"], "sampling/createMessage", "{request}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_http_sse_clients_get_progress_and_server_requests_on_their_stream() {
    let yaml = format!(
        "upstreams:\n{}{}",
        stdio_fixture("alpha", &[]),
        support::conformance_upstream("conf", "")
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let (mut sse, endpoint) = open_handshake(&gw).await;
    let mut init = initialize_body(1, "2024-11-05");
    init["params"]["capabilities"] = json!({"sampling": {}});
    assert_eq!(post_to(&endpoint, &init).await, 202);
    answer_to(&mut sse, 1).await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post_to(&endpoint, &initialized).await, 202);

    // A server→client request arrives on the stream; its answer is POSTed like any message.
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "test_sampling", "arguments": {"prompt": "2+2?"}}});
    assert_eq!(post_to(&endpoint, &call).await, 202);
    let (event, _) = sse
        .until(WAIT, |m| m["method"] == "sampling/createMessage")
        .await
        .expect("sampling/createMessage on the SSE stream");
    let request = event.json();
    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {
        "role": "assistant", "content": {"type": "text", "text": "4"}, "model": "test"}});
    assert_eq!(post_to(&endpoint, &answer).await, 202);
    assert_eq!(
        first_text(&answer_to(&mut sse, 2).await["result"]),
        "LLM response: 4"
    );

    // Progress the client asked for travels the same stream, before the result.
    let slow = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": "alpha__slow", "arguments": {"ms": 500},
                                 "_meta": {"progressToken": "handshake"}}});
    assert_eq!(post_to(&endpoint, &slow).await, 202);
    let (event, before) = sse
        .until(WAIT, |m| m.get("id") == Some(&json!(3)))
        .await
        .expect("the slow call's result");
    assert_eq!(first_text(&event.json()["result"]), "done after 500 ms");
    let progress: Vec<&Value> = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert!(
        progress.len() >= 3,
        "progress every 100 ms of 500 under the client's token: {before:?}"
    );
    assert!(
        progress
            .iter()
            .all(|m| m["params"]["progressToken"] == "handshake"),
        "{progress:?}"
    );
}

/// The fixture processes the gateway runs for upstream `alpha`.
fn alpha_processes(gw: &Gateway) -> Vec<u32> {
    let pid = gw.pid().expect("gateway running");
    children_of(pid)
        .into_iter()
        .filter(|&p| support::cmdline(p).contains("--name alpha"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_session_stdio_upstream_runs_one_process_per_client_and_stops_it_with_the_session() {
    // Per-client sessions are a handshake-era notion: a 2026-07-28 server is stateless and
    // always shared, so the dual-era fixture is spoken to as a handshake-era one here.
    let upstream = stdio_fixture("alpha", &[]).replace(
        "\n    command:",
        "\n    session: per_session\n    protocol: handshake\n    command:",
    );
    let gw = Gateway::start(&format!("upstreams:\n{upstream}"));
    gw.wait_ready().await;
    // The shared process serves the catalog.
    assert_eq!(alpha_processes(&gw).len(), 1);

    let a = Mcp::connect(&gw.url).await;
    let b = Mcp::connect(&gw.url).await;
    assert_eq!(a.call_text("alpha__whoami", json!({})).await, "alpha");
    assert_eq!(b.call_text("alpha__whoami", json!({})).await, "alpha");
    // One more process per client session, each opened on the client's first call.
    assert_eq!(alpha_processes(&gw).len(), 3);
    assert_eq!(a.call_text("alpha__whoami", json!({})).await, "alpha");
    assert_eq!(
        alpha_processes(&gw).len(),
        3,
        "a session reuses its process"
    );

    // Ending a session stops its process, and only its.
    let resp = a
        .http
        .delete(&a.url)
        .header("mcp-session-id", &a.session)
        .send()
        .await
        .expect("DELETE");
    assert!(resp.status().is_success());
    wait_for(WAIT, "the session's process to stop", || async {
        (alpha_processes(&gw).len() == 2).then_some(())
    })
    .await;
    assert_eq!(b.call_text("alpha__whoami", json!({})).await, "alpha");
}
