//! Memory a client can make the gateway hold is bounded in bytes (`buffers`): answers kept
//! for resumption, and answers waiting on a stream nobody reads. Large echo answers from the
//! demo server; the bound is read from `/metrics` (`manifold_buffered_bytes`) and from the
//! gateway's resident memory in `/proc`.

mod support;

use serde_json::{Value, json};
use support::{
    Gateway, Mcp, RawSse, WAIT, demo_upstream, http_client, initialize_body, streaming_client,
};

const MIB: usize = 1024 * 1024;

fn config(session_bytes: usize, total_bytes: usize) -> String {
    format!(
        "buffers:\n  session_bytes: {session_bytes}\n  total_bytes: {total_bytes}\nupstreams:\n{}",
        demo_upstream("demo")
    )
}

/// The value of an unlabelled metric in `/metrics`.
async fn metric(gw: &Gateway, name: &str) -> f64 {
    gw.metric(&format!("{name} "))
        .await
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn big(bytes: usize) -> String {
    "x".repeat(bytes)
}

/// The SSE event ids of an answer, in order.
fn event_ids(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|id| id.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn answers_kept_for_resumption_stay_within_the_session_budget() {
    let gw = Gateway::start(&config(2 * MIB, 4 * MIB));
    gw.wait_upstreams_ready().await;
    let mcp = Mcp::connect(&gw.url).await;
    let message = big(512 * 1024);
    let mut first = None;
    for n in 0..20 {
        let id = mcp.next_id();
        let reply = mcp
            .send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "demo__echo", "arguments": {"message": message}}}))
            .await;
        assert_eq!(reply.status, 200, "call {n}: {}", &reply.body[..200]);
        let answer = reply.json();
        assert_eq!(
            answer["result"]["content"][0]["text"]
                .as_str()
                .map(str::len),
            Some(message.len()),
            "call {n} answered in full while it was read"
        );
        if n == 0 {
            first = Some((id, event_ids(&reply.body)));
        }
    }
    // Twenty answers of half a MiB were kept for resumption; the session holds at most its
    // budget of them (plus the newest one, which always stays for its reader).
    let held = metric(&gw, "manifold_buffered_bytes").await;
    assert!(
        held <= (2 * MIB + 600 * 1024) as f64,
        "the session holds {held} bytes, over its 2 MiB budget"
    );
    assert!(held > 0.0, "the newest answers are still kept: {held}");

    // Resuming the first answer, long dropped, says so instead of a silent gap.
    let (first_id, ids) = first.expect("first call");
    let last_seen = ids.first().expect("the first answer had an event id");
    let (stream, _) = last_seen.split_once('-').expect("stream-seq");
    let resp = streaming_client()
        .get(&gw.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &mcp.session)
        .header("mcp-protocol-version", &mcp.version)
        .header("last-event-id", format!("{stream}-0"))
        .timeout(WAIT)
        .send()
        .await
        .expect("GET with Last-Event-ID");
    assert_eq!(resp.status().as_u16(), 200);
    let mut sse = RawSse::new(resp);
    let event = sse
        .next(WAIT)
        .await
        .expect("an answer on the resumed stream");
    let answer: Value = serde_json::from_str(&event.data).expect("JSON");
    assert_eq!(answer["id"], json!(first_id), "{answer}");
    let error = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        error.contains("dropped to bound the gateway's memory")
            && error.contains("buffers.session_bytes"),
        "the resumed stream names why its answer is gone: {answer}"
    );
    assert!(
        sse.next(WAIT).await.is_none(),
        "the resumed stream ends after saying so"
    );

    // Another client is served as before, and so is the same session.
    let other = Mcp::connect(&gw.url).await;
    assert_eq!(
        other
            .call_text("demo__echo", json!({"message": "hi"}))
            .await,
        "hi"
    );
    assert_eq!(
        mcp.call_text("demo__echo", json!({"message": "again"}))
            .await,
        "again"
    );
}

/// Opens `GET /sse` and returns the stream (left unread) and the message URL.
async fn open_legacy(gw: &Gateway) -> (RawSse, String) {
    let resp = streaming_client()
        .get(format!("{}/sse", gw.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET /sse");
    assert_eq!(resp.status().as_u16(), 200);
    let mut sse = RawSse::new(resp);
    let endpoint = sse.next(WAIT).await.expect("the endpoint event");
    (sse, format!("{}{}", gw.base, endpoint.data))
}

async fn post_legacy(url: &str, msg: &Value) -> (u16, String) {
    let resp = http_client()
        .post(url)
        .header("content-type", "application/json")
        .json(msg)
        .send()
        .await
        .expect("POST /message");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn an_unread_legacy_stream_gets_no_more_requests_past_its_budget() {
    let gw = Gateway::start(&config(4 * MIB, 16 * MIB));
    gw.wait_upstreams_ready().await;
    let pid = gw.pid().expect("gateway pid");
    let (mut sse, url) = open_legacy(&gw).await;
    let (status, _) = post_legacy(&url, &initialize_body(1, "2024-11-05")).await;
    assert_eq!(status, 202);
    sse.next(WAIT).await.expect("the initialize answer");
    let (status, _) = post_legacy(
        &url,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202);
    let before = rss(pid);

    // From now on the stream is never read. Forty echo calls of 2 MiB each: 80 MiB of
    // answers if all were queued.
    let message = big(2 * MIB);
    let (mut accepted, mut refused, mut refusal) = (0, 0, String::new());
    for n in 0..40u64 {
        let call = json!({"jsonrpc": "2.0", "id": 10 + n, "method": "tools/call",
            "params": {"name": "demo__echo", "arguments": {"message": message}}});
        match post_legacy(&url, &call).await {
            (202, _) => accepted += 1,
            (503, body) => {
                refused += 1;
                refusal = body;
            }
            (status, body) => panic!("POST {n}: {status} {body}"),
        }
    }
    assert!(refused > 0, "every one of 40 calls was queued ({accepted})");
    assert!(
        accepted <= 8,
        "{accepted} calls of 2 MiB queued on a 4 MiB budget"
    );
    assert!(
        refusal.contains("unread") && refusal.contains("buffers.session_bytes"),
        "the refusal says why: {refusal}"
    );
    let held = metric(&gw, "manifold_buffered_bytes").await;
    assert!(held <= (4 * MIB + 3 * MIB) as f64, "held {held} bytes");
    let grown = rss(pid).saturating_sub(before);
    assert!(
        grown < 48 * MIB,
        "the gateway grew by {} MiB for an unread stream",
        grown / MIB
    );

    // Another client is served meanwhile.
    let other = Mcp::connect(&gw.url).await;
    assert_eq!(
        other
            .call_text("demo__echo", json!({"message": "hi"}))
            .await,
        "hi"
    );
    drop(sse);
}
