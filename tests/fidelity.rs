//! Protocol fidelity through the gateway: request ids and progress tokens stay each client's
//! own at a shared upstream, cancellation (explicit, or by a client going away) reaches the
//! upstream under its own id, answer streams resume after a dropped connection, 2025-03-26
//! batches, server→client requests, logging and resource subscriptions.
//!
//! Stdio upstreams here often run behind a [`Wiretap`], so a test can read exactly what the
//! gateway wrote to the upstream (its ids, its tokens, `notifications/cancelled`) and what the
//! upstream wrote back (whether its work went on).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{
    ACCEPT_BOTH, Gateway, Mcp, RawSse, SseStream, VERSION, WAIT, Wiretap, conformance_upstream,
    content_type, first_text, fixture_bin, stdio_fixture, streaming_client, wait_for,
};

/// Starts a gateway whose one upstream, `alpha`, is the rmcp fixture behind a wiretap.
async fn tapped_alpha() -> (Gateway, Wiretap) {
    tapped_alpha_with("").await
}

/// [`tapped_alpha`] with extra top-level settings.
async fn tapped_alpha_with(settings: &str) -> (Gateway, Wiretap) {
    let tap = Wiretap::new();
    let yaml = format!(
        "{settings}upstreams:\n{}",
        tap.upstream_yaml("alpha", &fixture_bin(), &["--name", "alpha"])
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    (gw, tap)
}

/// A POST carrying `c`'s session headers whose answer is read as it arrives.
async fn post_streaming(c: &Mcp, body: &Value) -> reqwest::Response {
    streaming_client()
        .post(&c.url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .header("mcp-session-id", &c.session)
        .header("mcp-protocol-version", &c.version)
        .json(body)
        .send()
        .await
        .expect("POST")
}

fn slow_call(id: Value, ms: u64, token: Option<&str>) -> Value {
    let mut params = json!({"name": "alpha__slow", "arguments": {"ms": ms}});
    if let Some(token) = token {
        params["_meta"] = json!({"progressToken": token});
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
}

fn is_response_to(id: Value) -> impl Fn(&Value) -> bool {
    move |m: &Value| {
        m.get("id") == Some(&id) && (m.get("result").is_some() || m.get("error").is_some())
    }
}

fn is_method(method: &'static str) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["method"] == method
}

/// The `tools/call` of `slow` for `ms` milliseconds as the upstream received it, once it has.
async fn upstream_slow_call(tap: &Wiretap, ms: u64) -> Value {
    tap.first_sent("the call to reach the upstream", |m| {
        m["method"] == "tools/call" && m["params"]["arguments"]["ms"] == json!(ms)
    })
    .await
}

/// Whether the gateway sent the upstream `notifications/cancelled` for `id`.
fn cancelled_upstream(tap: &Wiretap, id: &Value) -> bool {
    tap.sent()
        .iter()
        .any(|m| m["method"] == "notifications/cancelled" && m["params"]["requestId"] == *id)
}

/// How many progress notifications the upstream wrote for `token`.
fn upstream_progress(tap: &Wiretap, token: &Value) -> usize {
    tap.answered()
        .iter()
        .filter(|m| {
            m["method"] == "notifications/progress" && m["params"]["progressToken"] == *token
        })
        .count()
}

/// Reads `stream` until a message satisfies `pred`; returns the messages before it.
async fn read_until(
    stream: &mut SseStream,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut before = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = stream
            .next(left)
            .await
            .unwrap_or_else(|| panic!("no {what} on the stream; got {before:?}"));
        if pred(&msg) {
            return before;
        }
        before.push(msg);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reusing_one_request_id_and_progress_token_stay_apart_at_a_shared_upstream() {
    let (gw, tap) = tapped_alpha().await;
    let first = Mcp::connect(&gw.url).await;
    let second = Mcp::connect(&gw.url).await;

    let (call_a, call_b) = (
        slow_call(json!(7), 600, Some("same")),
        slow_call(json!(7), 900, Some("same")),
    );
    let (a, b) = tokio::join!(first.send(&call_a), second.send(&call_b));
    for (reply, ms) in [(a, 600u64), (b, 900u64)] {
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            reply.content_type().starts_with("text/event-stream"),
            "progress makes the answer a stream: {}",
            reply.content_type()
        );
        let mut msgs = reply.messages();
        let response = msgs.pop().expect("a response");
        assert_eq!(response["id"], json!(7), "the client's own id: {response}");
        assert_eq!(
            response["result"]["content"][0]["text"],
            format!("done after {ms} ms"),
            "this client's own result: {response}"
        );
        let mut last = 0.0;
        for m in &msgs {
            assert_eq!(m["method"], "notifications/progress", "{m}");
            let p = &m["params"];
            assert_eq!(p["progressToken"], "same", "the client's own token: {p}");
            assert_eq!(
                p["total"],
                json!(ms as f64),
                "only this call's progress: {p}"
            );
            let value = p["progress"].as_f64().expect("progress value");
            assert!(value > last && value <= ms as f64, "{ms}: {msgs:?}");
            last = value;
        }
        assert!(
            msgs.len() as u64 >= ms / 200,
            "{ms}: most of the progress every 100 ms arrives: {msgs:?}"
        );
    }

    // The upstream saw two distinct gateway-minted ids and tokens, neither the clients'.
    let one = upstream_slow_call(&tap, 600).await;
    let two = upstream_slow_call(&tap, 900).await;
    assert_ne!(one["id"], two["id"], "{one} / {two}");
    let (t1, t2) = (
        &one["params"]["_meta"]["progressToken"],
        &two["params"]["_meta"]["progressToken"],
    );
    assert!(t1.is_string() && t2.is_string(), "{t1} / {t2}");
    assert_ne!(t1, t2);
    assert_ne!(*t1, json!("same"));
    assert_ne!(*t2, json!("same"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_ends_with_32013_and_the_upstream_stops_its_work() {
    let (gw, tap) = tapped_alpha().await;
    let c = Mcp::connect(&gw.url).await;

    let id = json!(c.next_id());
    let resp = post_streaming(&c, &slow_call(id.clone(), 20_000, Some("cancel-me"))).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(content_type(&resp).starts_with("text/event-stream"));
    let mut answer = RawSse::new(resp);
    let first = answer
        .next(WAIT)
        .await
        .expect("a first progress event")
        .json();
    assert_eq!(first["method"], "notifications/progress", "{first}");
    let upstream = upstream_slow_call(&tap, 20_000).await;
    let upstream_id = upstream["id"].clone();
    let upstream_token = upstream["params"]["_meta"]["progressToken"].clone();

    let cancel = json!({
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": id, "reason": "the test changed its mind"},
    });
    let reply = c.send(&cancel).await;
    assert_eq!(reply.status, 202, "{}", reply.body);

    let (event, before) = answer
        .until(Duration::from_secs(5), is_response_to(id.clone()))
        .await
        .expect("the cancelled call is answered within seconds, not after its 20 s");
    let response = event.json();
    assert_eq!(response["error"]["code"], json!(-32013), "{response}");
    assert!(
        before.iter().all(is_method("notifications/progress")),
        "{before:?}"
    );
    assert!(
        answer.next(WAIT).await.is_none() && answer.ended(),
        "the answer stream ends after the response"
    );

    // The upstream was told, under its own id, and its progress stopped.
    wait_for(WAIT, "notifications/cancelled at the upstream", || async {
        cancelled_upstream(&tap, &upstream_id).then_some(())
    })
    .await;
    // The fixture stopped the call (its journal says so), and the journal's own answer is in
    // the tap: every progress line the call wrote before it stopped came out ahead of it.
    wait_for(WAIT, "the upstream to stop the call", || async {
        let journal = c.call_text("alpha__journal", json!({})).await;
        journal.contains("cancelled slow").then_some(())
    })
    .await;
    wait_for(WAIT, "the journal's answer in the tap", || async {
        tap.answered()
            .iter()
            .any(|m| m["result"].to_string().contains("cancelled slow"))
            .then_some(())
    })
    .await;
    let settled = upstream_progress(&tap, &upstream_token);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        upstream_progress(&tap, &upstream_token),
        settled,
        "the upstream kept working (progress every 100 ms) after the cancellation"
    );
    // The session goes on.
    assert_eq!(c.call_text("alpha__whoami", json!({})).await, "alpha");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_stops_only_the_senders_request_of_that_id() {
    let (gw, tap) = tapped_alpha().await;
    let keeper = Mcp::connect(&gw.url).await;
    let canceller = Mcp::connect(&gw.url).await;

    let kept = post_streaming(&keeper, &slow_call(json!(7), 20_000, Some("t"))).await;
    let dropped = post_streaming(&canceller, &slow_call(json!(7), 19_000, Some("t"))).await;
    let (mut kept, mut dropped) = (RawSse::new(kept), RawSse::new(dropped));
    for answer in [&mut kept, &mut dropped] {
        let first = answer
            .next(WAIT)
            .await
            .expect("a first progress event")
            .json();
        assert_eq!(first["method"], "notifications/progress", "{first}");
    }
    let kept_upstream = upstream_slow_call(&tap, 20_000).await;
    let dropped_upstream = upstream_slow_call(&tap, 19_000).await;

    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": 7}});
    assert_eq!(canceller.send(&cancel).await.status, 202);
    let (event, _) = dropped
        .until(WAIT, is_response_to(json!(7)))
        .await
        .expect("the canceller's call ends");
    assert_eq!(event.json()["error"]["code"], json!(-32013));
    wait_for(WAIT, "notifications/cancelled at the upstream", || async {
        cancelled_upstream(&tap, &dropped_upstream["id"]).then_some(())
    })
    .await;

    // The other client's request 7 runs on: more progress, no response, not cancelled.
    let mut more = Vec::new();
    while more.len() < 5 {
        let msg = kept
            .next(WAIT)
            .await
            .expect("the other call goes on")
            .json();
        assert_eq!(msg["method"], "notifications/progress", "{msg}");
        more.push(msg);
    }
    assert!(!cancelled_upstream(&tap, &kept_upstream["id"]));
    assert_eq!(keeper.send(&cancel).await.status, 202);
    let (event, _) = kept
        .until(WAIT, is_response_to(json!(7)))
        .await
        .expect("the keeper's call ends once it cancels it too");
    assert_eq!(event.json()["error"]["code"], json!(-32013));
}

/// A client that goes away before its answer has a head cancels the call upstream at once:
/// in `auto` mode the answer would be plain JSON, and in `stream` mode a stream's head waits
/// for its first event (so a quick answer leaves in one write; here up to 60 s, so the test
/// does not race the default 1 s), so there is no event id to resume from, and the 120 s
/// `resume_window` does not apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_going_away_before_any_event_cancels_its_call_upstream() {
    for settings in [
        "response_mode: auto\n",
        "first_event_wait: 60s\nresume_window: 120s\n",
    ] {
        let (gw, tap) = tapped_alpha_with(settings).await;
        let c = Mcp::connect(&gw.url).await;

        // No progress token: nothing for the request comes before its result.
        let body = slow_call(json!(c.next_id()), 20_000, None);
        let (url, session, version) = (c.url.clone(), c.session.clone(), c.version.clone());
        let call = tokio::spawn(async move {
            streaming_client()
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", ACCEPT_BOTH)
                .header("mcp-session-id", &session)
                .header("mcp-protocol-version", &version)
                .json(&body)
                .send()
                .await
                .map(|r| r.status())
        });
        let upstream = abandon(&tap, call).await;
        assert!(
            upstream["params"]["_meta"]["progressToken"].is_null(),
            "{upstream}"
        );
        assert_eq!(c.call_text("alpha__whoami", json!({})).await, "alpha");
    }
}

/// Drops `call` (a POST still waiting for its answer) once its 20 s slow call has reached
/// the upstream, and waits (at most WAIT, 30 s) for the gateway to cancel it there.
async fn abandon<T>(tap: &Wiretap, call: tokio::task::JoinHandle<T>) -> Value {
    let upstream = upstream_slow_call(tap, 20_000).await;
    call.abort();
    assert!(call.await.is_err(), "the call was still waiting");
    wait_for(WAIT, "notifications/cancelled at the upstream", || async {
        cancelled_upstream(tap, &upstream["id"]).then_some(())
    })
    .await;
    upstream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_call_outlives_its_connection_until_the_session_ends() {
    let (gw, tap) = tapped_alpha().await;
    let c = Mcp::connect(&gw.url).await;

    let id = json!(c.next_id());
    let resp = post_streaming(&c, &slow_call(id, 20_000, Some("keep"))).await;
    assert!(content_type(&resp).starts_with("text/event-stream"));
    let mut answer = RawSse::new(resp);
    answer.next(WAIT).await.expect("a first progress event");
    let upstream = upstream_slow_call(&tap, 20_000).await;
    let token = upstream["params"]["_meta"]["progressToken"].clone();
    drop(answer);

    // Once the answer is a stream, a dropped connection does not stop the request (so it can
    // be resumed): the upstream goes on reporting progress, uncancelled.
    let seen = upstream_progress(&tap, &token);
    wait_for(WAIT, "the upstream to go on working", || async {
        (upstream_progress(&tap, &token) >= seen + 5).then_some(())
    })
    .await;
    assert!(
        !cancelled_upstream(&tap, &upstream["id"]),
        "cancelled although the request should run on for resumption"
    );

    // Ending the session stops it.
    let resp = c
        .http
        .delete(&c.url)
        .header("mcp-session-id", &c.session)
        .send()
        .await
        .expect("DELETE");
    assert!(resp.status().is_success(), "{}", resp.status());
    wait_for(WAIT, "notifications/cancelled at the upstream", || async {
        cancelled_upstream(&tap, &upstream["id"]).then_some(())
    })
    .await;
}

/// A 2026-07-28 client cancels by going away: its call, still waiting for a result the
/// upstream has not sent, is cancelled upstream at once, and the gateway serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_that_goes_away_cancels_its_call_upstream() {
    let (gw, tap) = tapped_alpha().await;
    let client = std::sync::Arc::new(support::Stateless::new(&gw.url, json!({})));

    let body = client.body(
        client.next_id(),
        "tools/call",
        json!({"name": "alpha__slow", "arguments": {"ms": 20_000}}),
    );
    let pending = {
        let client = client.clone();
        tokio::spawn(async move {
            let headers = support::Stateless::headers_for(&body);
            client.post_raw(&body, &headers).await
        })
    };
    abandon(&tap, pending).await;
    let answer = client
        .ok(
            "tools/call",
            json!({"name": "alpha__whoami", "arguments": {}}),
        )
        .await;
    assert_eq!(answer["content"][0]["text"], "alpha", "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_every_answer_is_a_stream_and_an_unresumed_one_is_cancelled_after_the_window() {
    let (gw, tap) = tapped_alpha_with("resume_window: 1s\n").await;
    let c = Mcp::connect(&gw.url).await;

    // `stream` mode: even a quick call without progress is answered as an SSE stream whose
    // events carry ids, so any answer can be resumed.
    let id = c.next_id();
    let reply = c
        .send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": "alpha__whoami", "arguments": {}}}))
        .await;
    assert!(
        reply.content_type().starts_with("text/event-stream"),
        "{}",
        reply.content_type()
    );
    assert!(
        reply.body.contains("\nid: ") || reply.body.starts_with("id: "),
        "{}",
        reply.body
    );
    assert_eq!(reply.json()["result"]["content"][0]["text"], "alpha");

    // A client that drops the stream and never comes back: after `resume_window` the
    // request is cancelled upstream, so abandoned work does not run to its end. (Its
    // progress puts the stream's head out at once.)
    let resp = post_streaming(&c, &slow_call(json!(c.next_id()), 20_000, Some("gone"))).await;
    assert!(content_type(&resp).starts_with("text/event-stream"));
    let mut answer = RawSse::new(resp);
    answer.next(WAIT).await.expect("a first progress event");
    let upstream = upstream_slow_call(&tap, 20_000).await;
    drop(answer);
    wait_for(WAIT, "notifications/cancelled at the upstream", || async {
        cancelled_upstream(&tap, &upstream["id"]).then_some(())
    })
    .await;
    assert_eq!(c.call_text("alpha__whoami", json!({})).await, "alpha");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_answer_stream_resumes_with_last_event_id_without_gaps_or_repeats() {
    let gw = Gateway::start(&format!("upstreams:\n{}", stdio_fixture("alpha", &[])));
    gw.wait_ready().await;
    let c = Mcp::connect(&gw.url).await;

    let id = json!(c.next_id());
    let resp = post_streaming(&c, &slow_call(id.clone(), 1500, Some("resume"))).await;
    assert!(content_type(&resp).starts_with("text/event-stream"));
    let mut answer = RawSse::new(resp);
    let mut events = Vec::new();
    for _ in 0..2 {
        events.push(answer.next(WAIT).await.expect("an event before the drop"));
    }
    drop(answer);
    // Let the call run on while nobody listens.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let last = events[1].id.clone().expect("events carry ids");
    let resp = streaming_client()
        .get(&c.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &c.session)
        .header("mcp-protocol-version", &c.version)
        .header("last-event-id", &last)
        .send()
        .await
        .expect("GET with Last-Event-ID");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(content_type(&resp).starts_with("text/event-stream"));
    let mut resumed = RawSse::new(resp);
    loop {
        let event = resumed
            .next(WAIT)
            .await
            .unwrap_or_else(|| panic!("the resumed stream ended early: {events:?}"));
        let done = is_response_to(id.clone())(&event.json());
        events.push(event);
        if done {
            break;
        }
    }
    assert!(
        resumed.next(WAIT).await.is_none() && resumed.ended(),
        "the resumed stream ends after the response"
    );

    // Event ids: one stream, consecutive sequence numbers across the reconnection.
    let ids: Vec<(String, u64)> = events
        .iter()
        .map(|e| {
            let id = e.id.as_deref().expect("every event has an id");
            let (stream, seq) = id.split_once('-').expect("<stream>-<seq>");
            (stream.to_owned(), seq.parse().expect("numeric sequence"))
        })
        .collect();
    for pair in ids.windows(2) {
        assert_eq!(pair[0].0, pair[1].0, "one stream: {ids:?}");
        assert_eq!(pair[0].1 + 1, pair[1].1, "no gap, no repeat: {ids:?}");
    }
    // Progress values: 100, 200, … without gap or repeat, then the result.
    let msgs: Vec<Value> = events.iter().map(|e| e.json()).collect();
    let (response, progress) = msgs.split_last().expect("messages");
    assert_eq!(
        response["result"]["content"][0]["text"], "done after 1500 ms",
        "{response}"
    );
    let values: Vec<f64> = progress
        .iter()
        .map(|m| {
            assert_eq!(m["method"], "notifications/progress", "{m}");
            assert_eq!(m["params"]["progressToken"], "resume", "{m}");
            m["params"]["progress"].as_f64().expect("progress value")
        })
        .collect();
    let expected: Vec<f64> = (1..=values.len()).map(|i| i as f64 * 100.0).collect();
    assert_eq!(values, expected, "progress strictly continues");
    assert!(
        values.len() >= 13,
        "more than the two events before the drop were replayed: {values:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_served_to_2025_03_26_sessions_only() {
    let gw = Gateway::start(&format!("upstreams:\n{}", stdio_fixture("alpha", &[])));
    gw.wait_ready().await;
    let old = Mcp::connect_version(&gw.url, "2025-03-26").await;
    assert_eq!(old.version, "2025-03-26");

    let batch = json!([
        {"jsonrpc": "2.0", "id": "call", "method": "tools/call",
         "params": {"name": "alpha__whoami", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 99, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]);
    let reply = old.send(&batch).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.content_type().starts_with("application/json"));
    let answers = reply.json();
    let answers = answers.as_array().expect("an array of responses");
    assert_eq!(answers.len(), 2, "one response per request: {answers:?}");
    let by_id = |id: Value| {
        answers
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no response with id {id}: {answers:?}"))
    };
    assert_eq!(first_text(&by_id(json!("call"))["result"]), "alpha");
    assert_eq!(by_id(json!(99))["result"], json!({}));

    // Notifications only: nothing to answer.
    let notes = json!([
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 12345}},
    ]);
    let reply = old.send(&notes).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert!(reply.body.trim().is_empty(), "{}", reply.body);

    // initialize may not ride in a batch; the rest of the batch is still served.
    let mut init = support::initialize_body(5, "2025-03-26");
    init["id"] = json!("init");
    let reply = old
        .send(&json!([init, {"jsonrpc": "2.0", "id": "p", "method": "ping"}]))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answers = reply.json();
    let answers = answers.as_array().expect("an array");
    assert_eq!(answers.len(), 2, "{answers:?}");
    let init_answer = answers.iter().find(|a| a["id"] == "init").expect("init");
    assert_eq!(init_answer["error"]["code"], json!(-32600), "{init_answer}");
    assert!(init_answer.get("result").is_none());
    let ping = answers.iter().find(|a| a["id"] == "p").expect("ping");
    assert_eq!(ping["result"], json!({}));

    // Later revisions removed batches: 400 with -32600.
    for version in ["2025-06-18", "2025-11-25"] {
        let new = Mcp::connect_version(&gw.url, version).await;
        let reply = new.send(&batch).await;
        assert_eq!(reply.status, 400, "{version}: {}", reply.body);
        assert_eq!(reply.json()["error"]["code"], json!(-32600), "{version}");
    }
}

/// A gateway in front of the conformance fixture (stdio, no prefix), plus `extra` YAML.
async fn conformance_gateway(extra: &str) -> Gateway {
    let yaml = format!("upstreams:\n{}{extra}", conformance_upstream("conf", ""));
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    gw
}

/// Calls a tool with an answer read as it arrives; returns the call's id and the stream.
async fn call_streaming(c: &Mcp, tool: &str, args: Value) -> (Value, RawSse) {
    let id = json!(c.next_id());
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": tool, "arguments": args}});
    let resp = post_streaming(c, &body).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        content_type(&resp).starts_with("text/event-stream"),
        "{tool}: a request to the client makes the answer a stream, got {}",
        content_type(&resp)
    );
    (id, RawSse::new(resp))
}

/// Reads the server→client request `method` from an answer stream and checks its id.
async fn client_request(answer: &mut RawSse, method: &'static str) -> Value {
    let (event, before) = answer
        .until(WAIT, is_method(method))
        .await
        .unwrap_or_else(|| panic!("no {method} on the answer stream"));
    assert!(before.is_empty(), "{before:?}");
    let request = event.json();
    let id = request["id"].as_str().unwrap_or_default();
    assert!(
        id.starts_with("manifold-s2c-"),
        "gateway-minted id: {request}"
    );
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_reaches_the_calling_client_and_its_answer_the_tool() {
    let gw = conformance_gateway("").await;
    let c = Mcp::connect_with(&gw.url, VERSION, json!({"sampling": {}})).await;

    let (id, mut answer) =
        call_streaming(&c, "test_sampling", json!({"prompt": "What is 2+2?"})).await;
    let request = client_request(&mut answer, "sampling/createMessage").await;
    assert_eq!(
        request["params"]["messages"][0]["content"]["text"], "What is 2+2?",
        "{request}"
    );
    let reply = c
        .send(&json!({"jsonrpc": "2.0", "id": request["id"], "result": {
            "role": "assistant",
            "content": {"type": "text", "text": "Four, said the test"},
            "model": "test",
        }}))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let (event, _) = answer
        .until(WAIT, is_response_to(id))
        .await
        .expect("the tool's result");
    let result = &event.json()["result"];
    assert_ne!(result["isError"], json!(true), "{result}");
    assert_eq!(first_text(result), "LLM response: Four, said the test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_during_a_call_reaches_the_calling_client_and_its_answer_the_upstream() {
    let gw = conformance_gateway("").await;
    let c = Mcp::connect(&gw.url).await;

    let (id, mut answer) = call_streaming(&c, "test_ping_client", json!({})).await;
    let ping = client_request(&mut answer, "ping").await;
    let reply = c
        .send(&json!({"jsonrpc": "2.0", "id": ping["id"], "result": {}}))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let (event, _) = answer
        .until(WAIT, is_response_to(id))
        .await
        .expect("the tool's result");
    let result = &event.json()["result"];
    assert_eq!(first_text(result), "The client answered ping.", "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elicitation_reaches_the_calling_client_and_its_answer_the_tool() {
    let gw = conformance_gateway("").await;
    let c = Mcp::connect_with(&gw.url, VERSION, json!({"elicitation": {}})).await;

    let (id, mut answer) =
        call_streaming(&c, "test_elicitation", json!({"message": "Who are you?"})).await;
    let request = client_request(&mut answer, "elicitation/create").await;
    assert_eq!(request["params"]["message"], "Who are you?", "{request}");
    assert!(
        request["params"]["requestedSchema"]["properties"]["email"].is_object(),
        "{request}"
    );
    let reply = c
        .send(&json!({"jsonrpc": "2.0", "id": request["id"], "result": {
            "action": "accept",
            "content": {"username": "ada", "email": "ada@example.com"},
        }}))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let (event, _) = answer
        .until(WAIT, is_response_to(id))
        .await
        .expect("the tool's result");
    let text = first_text(&event.json()["result"]);
    assert!(
        text.contains("action=accept") && text.contains("ada@example.com"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_capability_is_not_asked_and_the_tool_hears_why() {
    let gw = conformance_gateway("response_mode: auto\n").await;
    // Declares elicitation but not sampling.
    let c = Mcp::connect_with(&gw.url, VERSION, json!({"elicitation": {}})).await;

    // Nothing reaches the client first, so the answer is plain JSON: the tool's error.
    let reply = c
        .send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "test_sampling", "arguments": {"prompt": "hi"}}}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.content_type().starts_with("application/json"),
        "no request may reach the client: {}",
        reply.body
    );
    let result = &reply.json()["result"];
    assert_eq!(result["isError"], json!(true), "{result}");
    let text = first_text(result);
    assert!(
        text.contains("sampling/createMessage failed") && text.contains("'sampling' capability"),
        "the gateway refused at the upstream, naming the capability: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_log_messages_reach_the_caller_tagged_and_filtered_by_its_level() {
    let gw = conformance_gateway("").await;
    let quiet = Mcp::connect(&gw.url).await;
    let verbose = Mcp::connect(&gw.url).await;
    quiet
        .ok("logging/setLevel", json!({"level": "error"}))
        .await;
    verbose
        .ok("logging/setLevel", json!({"level": "debug"}))
        .await;

    let (notes, response) = verbose
        .exchange(
            "tools/call",
            json!({"name": "test_tool_with_logging", "arguments": {}}),
        )
        .await;
    assert_eq!(
        first_text(&response["result"]),
        "Logged three messages at info level."
    );
    let logs: Vec<&Value> = notes
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .collect();
    assert_eq!(logs.len(), 3, "{notes:?}");
    for log in &logs {
        let logger = log["params"]["logger"].as_str().unwrap_or_default();
        assert!(
            logger.starts_with("conf"),
            "tagged with the upstream: {log}"
        );
        assert_eq!(log["params"]["level"], "info", "{log}");
    }
    assert_eq!(logs[0]["params"]["data"], "Tool execution started");

    // Info messages are below what the quiet client asked for.
    let (notes, response) = quiet
        .exchange(
            "tools/call",
            json!({"name": "test_tool_with_logging", "arguments": {}}),
        )
        .await;
    assert!(response.get("result").is_some(), "{response}");
    assert!(
        notes.iter().all(|m| m["method"] != "notifications/message"),
        "{notes:?}"
    );
}

const WATCHED: &str = "test://watched-resource";

fn is_update(m: &Value) -> bool {
    m["method"] == "notifications/resources/updated" && m["params"]["uri"] == WATCHED
}

/// Makes the gateway send `tools/list_changed` to every session (a fixture upstream adds a
/// tool), and reads `streams` up to it: returns what each held before it.
async fn up_to_a_sentinel(c: &Mcp, tool: &str, streams: &mut [&mut SseStream]) -> Vec<Vec<Value>> {
    assert_eq!(
        c.call_text("beta__add_tool", json!({"name": tool})).await,
        "added"
    );
    let mut out = Vec::new();
    for s in streams.iter_mut() {
        out.push(
            read_until(
                s,
                "the sentinel",
                is_method("notifications/tools/list_changed"),
            )
            .await,
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_updates_reach_exactly_the_subscribed_sessions() {
    let gw = conformance_gateway(&stdio_fixture("beta", &[])).await;
    let a = Mcp::connect(&gw.url).await;
    let b = Mcp::connect(&gw.url).await;
    let mut ga = a.open_stream().await.expect("a's GET stream");
    let mut gb = b.open_stream().await.expect("b's GET stream");

    // The fixture changes the resource right after a subscription.
    assert_eq!(
        a.ok("resources/subscribe", json!({"uri": WATCHED})).await,
        json!({})
    );
    read_until(&mut ga, "the update after subscribing", is_update).await;

    // A change made through b's call reaches a, not b.
    let text = b.call_text("test_update_watched_resource", json!({})).await;
    assert!(text.contains(WATCHED), "{text}");
    read_until(&mut ga, "the update of b's change", is_update).await;
    let before = up_to_a_sentinel(&b, "sentinel_1", &mut [&mut ga, &mut gb]).await;
    assert!(
        !before[0].iter().any(is_update),
        "one update per change: {:?}",
        before[0]
    );
    assert!(
        !before[1].iter().any(is_update),
        "b did not subscribe: {:?}",
        before[1]
    );

    // Both subscribed: each hears of a change once.
    b.ok("resources/subscribe", json!({"uri": WATCHED})).await;
    a.call_text("test_update_watched_resource", json!({})).await;
    let before = up_to_a_sentinel(&a, "sentinel_2", &mut [&mut ga, &mut gb]).await;
    for (name, msgs) in ["a", "b"].iter().zip(&before) {
        assert_eq!(
            msgs.iter().filter(|m| is_update(m)).count(),
            1,
            "{name} subscribed, hears of the change once: {msgs:?}"
        );
    }

    // a unsubscribes: only b hears of the next change.
    a.ok("resources/unsubscribe", json!({"uri": WATCHED})).await;
    b.call_text("test_update_watched_resource", json!({})).await;
    let before = up_to_a_sentinel(&b, "sentinel_3", &mut [&mut ga, &mut gb]).await;
    assert!(
        !before[0].iter().any(is_update),
        "a unsubscribed: {:?}",
        before[0]
    );
    assert_eq!(
        before[1].iter().filter(|m| is_update(m)).count(),
        1,
        "{:?}",
        before[1]
    );
}

/// A listing answer kept for resumption (its page is shared with the gateway's catalog, not
/// copied) replays with `Last-Event-ID` byte for byte as it was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_answer_replays_with_last_event_id_as_it_was_sent() {
    let gw = Gateway::start(&format!(
        "page_size: 4\nupstreams:\n{}",
        stdio_fixture("alpha", &[])
    ));
    gw.wait_ready().await;
    let c = Mcp::connect(&gw.url).await;
    let id = json!(c.next_id());
    let list = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
    let mut answer = RawSse::new(post_streaming(&c, &list).await);
    let sent = answer.next(WAIT).await.expect("the listing");
    let result = &sent.json()["result"];
    assert_eq!(
        result["tools"].as_array().map(Vec::len),
        Some(4),
        "{result}"
    );
    assert!(result["nextCursor"].is_string(), "{result}");
    let event = sent.id.clone().expect("events carry ids");
    let (stream, _) = event.split_once('-').expect("<stream>-<seq>");
    let resp = streaming_client()
        .get(&c.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &c.session)
        .header("mcp-protocol-version", &c.version)
        .header("last-event-id", format!("{stream}-0"))
        .send()
        .await
        .expect("GET with Last-Event-ID");
    assert_eq!(resp.status().as_u16(), 200);
    let again = RawSse::new(resp)
        .next(WAIT)
        .await
        .expect("the listing again");
    assert_eq!((again.id, again.data), (sent.id, sent.data));
}
