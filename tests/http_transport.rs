//! The Streamable HTTP endpoint seen with raw HTTP: sessions and version negotiation, the
//! status codes of every refusal, DNS-rebinding protection, one GET stream per session, the
//! health endpoints and idle expiry.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{
    ACCEPT_BOTH, Gateway, Mcp, Reply, http_client, initialize_body, stdio_fixture, wait_for,
};

const NO_UPSTREAMS: &str = "upstreams: {}\n";

async fn post(url: &str, headers: &[(&str, &str)], body: impl Into<reqwest::Body>) -> Reply {
    let mut req = http_client().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Reply::read(req.body(body).send().await.expect("POST")).await
}

async fn post_json(url: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    post(url, headers, body.to_string()).await
}

const JSON_HEADERS: [(&str, &str); 2] = [
    ("content-type", "application/json"),
    ("accept", ACCEPT_BOTH),
];

fn ping(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
}

fn error_code(reply: &Reply) -> Value {
    reply.json()["error"]["code"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_opens_a_session_and_negotiates_the_revision() {
    let gw = Gateway::start(NO_UPSTREAMS);
    let mut ids = Vec::new();
    for (asked, answered) in [
        ("2024-11-05", "2024-11-05"),
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
        ("2026-07-28", "2025-11-25"),
    ] {
        let reply = post_json(&gw.url, &JSON_HEADERS, &initialize_body(1, asked)).await;
        assert_eq!(reply.status, 200, "{asked}: {}", reply.body);
        assert!(
            reply.content_type().starts_with("application/json"),
            "{}",
            reply.content_type()
        );
        let id = reply
            .header("mcp-session-id")
            .unwrap_or_else(|| panic!("{asked}: no Mcp-Session-Id"))
            .to_owned();
        assert!(id.len() >= 32, "session id too short: {id}");
        assert!(
            id.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "session id is visible ASCII: {id}"
        );
        let msg = reply.json();
        assert_eq!(msg["id"], json!(1));
        assert_eq!(msg["result"]["protocolVersion"], answered, "asked {asked}");
        assert_eq!(msg["result"]["serverInfo"]["name"], "manifold");
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "every initialize opens its own session");

    // The negotiated revision is the one the session later insists on.
    let old = Mcp::connect_version(&gw.url, "2025-03-26").await;
    assert_eq!(old.version, "2025-03-26");
    assert_eq!(old.ok("ping", json!({})).await, json!({}));

    // initialize inside a session is refused.
    let session = [
        JSON_HEADERS[0],
        JSON_HEADERS[1],
        ("mcp-session-id", old.session.as_str()),
    ];
    let reply = post_json(&gw.url, &session, &initialize_body(9, "2025-11-25")).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_and_responses_are_accepted_with_202() {
    let gw = Gateway::start(NO_UPSTREAMS);
    let c = Mcp::connect(&gw.url).await;
    let reply = c
        .send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    assert_eq!(reply.status, 202);
    assert!(reply.body.is_empty(), "202 has no body: {}", reply.body);
    let reply = c.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}})).await;
    assert_eq!(reply.status, 202);
    let reply = c
        .send(&json!({"jsonrpc": "2.0", "id": 5, "result": {}}))
        .await;
    assert_eq!(reply.status, 202, "a client's response is accepted too");
    assert_eq!(c.ok("ping", json!({})).await, json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_must_be_named_known_and_alive() {
    let gw = Gateway::start(NO_UPSTREAMS);
    let c = Mcp::connect(&gw.url).await;

    let reply = post_json(&gw.url, &JSON_HEADERS, &ping(1)).await;
    assert_eq!(reply.status, 400, "missing session id: {}", reply.body);

    let unknown = [
        JSON_HEADERS[0],
        JSON_HEADERS[1],
        (
            "mcp-session-id",
            "no-such-session-0123456789abcdefghijklmnop",
        ),
    ];
    let reply = post_json(&gw.url, &unknown, &ping(1)).await;
    assert_eq!(reply.status, 404, "unknown session: {}", reply.body);

    let get = http_client()
        .get(&gw.url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET");
    assert_eq!(get.status().as_u16(), 400, "GET without a session");
    let get = http_client()
        .get(&gw.url)
        .header("accept", "text/event-stream")
        .header(
            "mcp-session-id",
            "no-such-session-0123456789abcdefghijklmnop",
        )
        .send()
        .await
        .expect("GET");
    assert_eq!(get.status().as_u16(), 404, "GET on an unknown session");

    assert_eq!(c.send(&ping(2)).await.status, 200);
    let delete = http_client()
        .delete(&gw.url)
        .header("mcp-session-id", &c.session)
        .send()
        .await
        .expect("DELETE");
    assert!(
        delete.status().is_success(),
        "DELETE ends the session: {}",
        delete.status()
    );
    let reply = c.send(&ping(3)).await;
    assert_eq!(reply.status, 404, "after DELETE: {}", reply.body);
    let delete = http_client()
        .delete(&gw.url)
        .header("mcp-session-id", &c.session)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(delete.status().as_u16(), 404, "a second DELETE");
}

/// The edge sends `POST` on the MCP path straight to its handler, past the router: only
/// that exact path (any query) goes there; a path beside it is still not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_mcp_path_takes_posts() {
    let gw = Gateway::start(NO_UPSTREAMS);
    let with_query = format!("{}?from=test", gw.url);
    let reply = post_json(
        &with_query,
        &JSON_HEADERS,
        &initialize_body(1, "2025-11-25"),
    )
    .await;
    assert_eq!(
        reply.status, 200,
        "the MCP path with a query: {}",
        reply.body
    );
    for beside in ["/", "x", "/x"] {
        let url = format!("{}{beside}", gw.url);
        let reply = post_json(&url, &JSON_HEADERS, &initialize_body(1, "2025-11-25")).await;
        assert_eq!(reply.status, 404, "POST {url}: {}", reply.body);
    }
    let upper = gw.url.replace("/mcp", "/MCP");
    let reply = post_json(&upper, &JSON_HEADERS, &initialize_body(1, "2025-11-25")).await;
    assert_eq!(reply.status, 404, "POST {upper}: {}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_the_right_status_codes() {
    let gw = Gateway::start(&format!("max_body_bytes: 2048\n{NO_UPSTREAMS}"));
    let c = Mcp::connect(&gw.url).await;
    let in_session = [
        JSON_HEADERS[0],
        JSON_HEADERS[1],
        ("mcp-session-id", c.session.as_str()),
    ];

    for method in [reqwest::Method::PUT, reqwest::Method::PATCH] {
        let resp = http_client()
            .request(method.clone(), &gw.url)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 405, "{method}");
        let allow = resp
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        for m in ["GET", "POST", "DELETE"] {
            assert!(
                allow.contains(m),
                "{method}: Allow header {allow:?} lacks {m}"
            );
        }
    }

    let html = [
        JSON_HEADERS[0],
        ("accept", "text/html"),
        ("mcp-session-id", c.session.as_str()),
    ];
    assert_eq!(
        post_json(&gw.url, &html, &ping(1)).await.status,
        406,
        "Accept without JSON or SSE"
    );
    let json_only = [
        JSON_HEADERS[0],
        ("accept", "application/json"),
        ("mcp-session-id", c.session.as_str()),
    ];
    assert_eq!(
        post_json(&gw.url, &json_only, &ping(1)).await.status,
        406,
        "Accept without SSE"
    );
    let get = http_client()
        .get(&gw.url)
        .header("accept", "application/json")
        .header("mcp-session-id", &c.session)
        .send()
        .await
        .expect("GET");
    assert_eq!(get.status().as_u16(), 406, "GET without text/event-stream");

    let text = [
        ("content-type", "text/plain"),
        JSON_HEADERS[1],
        ("mcp-session-id", c.session.as_str()),
    ];
    assert_eq!(
        post_json(&gw.url, &text, &ping(1)).await.status,
        415,
        "Content-Type text/plain"
    );

    let big =
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x".repeat(4096)}});
    assert_eq!(
        post_json(&gw.url, &in_session, &big).await.status,
        413,
        "body over max_body_bytes"
    );
    let small =
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x".repeat(1024)}});
    assert_eq!(
        post_json(&gw.url, &in_session, &small).await.status,
        200,
        "body under max_body_bytes"
    );

    let reply = post(&gw.url, &in_session, "{not json").await;
    assert_eq!(reply.status, 400);
    assert_eq!(error_code(&reply), json!(-32700), "{}", reply.body);

    let reply = post_json(&gw.url, &in_session, &json!([ping(1), ping(2)])).await;
    assert_eq!(reply.status, 400);
    assert_eq!(error_code(&reply), json!(-32600), "{}", reply.body);

    // An unknown revision is refused; a supported one other than the negotiated one is
    // accepted (the spec asks for 400 only for invalid or unsupported values, and the
    // conformance suite sends 2025-03-26 on 2025-11-25 sessions).
    for (version, status) in [
        ("1999-01-01", 400),
        ("not-a-version", 400),
        ("2025-03-26", 200),
    ] {
        let headers = [
            in_session[0],
            in_session[1],
            in_session[2],
            ("mcp-protocol-version", version),
        ];
        let reply = post_json(&gw.url, &headers, &ping(1)).await;
        assert_eq!(
            reply.status, status,
            "MCP-Protocol-Version {version} on a 2025-11-25 session: {}",
            reply.body
        );
    }
    let headers = [
        in_session[0],
        in_session[1],
        in_session[2],
        ("mcp-protocol-version", "2025-11-25"),
    ];
    assert_eq!(post_json(&gw.url, &headers, &ping(1)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_protection_checks_host_and_origin() {
    let gw = Gateway::start(&format!(
        "security:\n  allowed_hosts: [\"mcp.internal\"]\n{NO_UPSTREAMS}"
    ));
    let init = initialize_body(1, "2025-11-25");

    let evil_host = [JSON_HEADERS[0], JSON_HEADERS[1], ("host", "evil.example")];
    let reply = post_json(&gw.url, &evil_host, &init).await;
    assert_eq!(reply.status, 421, "{}", reply.body);
    assert!(reply.header("mcp-session-id").is_none());
    let reply = post_json(
        &gw.url,
        &[
            JSON_HEADERS[0],
            JSON_HEADERS[1],
            ("host", "evil.example:8080"),
        ],
        &init,
    )
    .await;
    assert_eq!(reply.status, 421);

    let evil_origin = [
        JSON_HEADERS[0],
        JSON_HEADERS[1],
        ("origin", "http://evil.example"),
    ];
    let reply = post_json(&gw.url, &evil_origin, &init).await;
    assert_eq!(reply.status, 403, "{}", reply.body);

    let local_origin = [
        JSON_HEADERS[0],
        JSON_HEADERS[1],
        ("origin", "http://localhost:3000"),
    ];
    assert_eq!(post_json(&gw.url, &local_origin, &init).await.status, 200);
    let allowed_host = [
        JSON_HEADERS[0],
        JSON_HEADERS[1],
        ("host", "mcp.internal:1234"),
    ];
    assert_eq!(
        post_json(&gw.url, &allowed_host, &init).await.status,
        200,
        "a configured extra host"
    );

    // GET and DELETE are guarded too.
    let c = Mcp::connect(&gw.url).await;
    let get = http_client()
        .get(&gw.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &c.session)
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("GET");
    assert_eq!(get.status().as_u16(), 403);
    let delete = http_client()
        .delete(&gw.url)
        .header("mcp-session-id", &c.session)
        .header("host", "evil.example")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(delete.status().as_u16(), 421);
    assert_eq!(
        c.ok("ping", json!({})).await,
        json!({}),
        "the refused DELETE left the session alone"
    );

    let open = Gateway::start(&format!(
        "security: {{dns_rebinding_protection: off}}\n{NO_UPSTREAMS}"
    ));
    let reply = post_json(&open.url, &evil_host, &init).await;
    assert_eq!(reply.status, 200, "protection off: {}", reply.body);
    assert_eq!(post_json(&open.url, &evil_origin, &init).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_get_stream_per_session() {
    let gw = Gateway::start(NO_UPSTREAMS);
    let c = Mcp::connect(&gw.url).await;
    let first = c.open_stream().await.expect("first GET stream");
    assert_eq!(
        c.open_stream().await.err(),
        Some(409),
        "a second GET stream on the same session"
    );

    let other = Mcp::connect(&gw.url).await;
    let _other_stream = other
        .open_stream()
        .await
        .expect("another session has its own stream");

    drop(first);
    wait_for(
        Duration::from_secs(20),
        "the stream to be reopenable after the first closed",
        || async { c.open_stream().await.ok() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_report_liveness_and_readiness() {
    let gw = Gateway::start(&format!("upstreams:\n{}", stdio_fixture("alpha", &[])));
    let health = http_client()
        .get(format!("{}/healthz", gw.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);

    let body = gw.wait_ready().await;
    assert_eq!(body["ready"], json!(true));
    assert_eq!(body["upstreams"]["alpha"]["status"], "ready");
    assert_eq!(body["upstreams"]["alpha"]["serverInfo"]["name"], "alpha");
    assert_eq!(body["collisions"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_expire_and_busy_ones_do_not() {
    let gw = Gateway::start(&format!("session_idle_timeout: 1s\n{NO_UPSTREAMS}"));
    let idle = Mcp::connect(&gw.url).await;
    let busy = Mcp::connect(&gw.url).await;

    // Keep `busy` active for 2.5 s while `idle` says nothing.
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    while tokio::time::Instant::now() < until {
        assert_eq!(
            busy.send(&ping(busy.next_id())).await.status,
            200,
            "an active session stays"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let reply = idle.send(&ping(1)).await;
    assert_eq!(
        reply.status, 404,
        "idle past session_idle_timeout: {}",
        reply.body
    );
    assert_eq!(busy.send(&ping(busy.next_id())).await.status, 200);

    // The client re-initializes and carries on.
    let again = Mcp::connect(&gw.url).await;
    assert_eq!(again.ok("ping", json!({})).await, json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_ends_the_sessions_get_stream() {
    let gw = Gateway::start(NO_UPSTREAMS);
    let c = Mcp::connect(&gw.url).await;
    let mut stream = c.open_stream().await.expect("GET stream");
    let delete = http_client()
        .delete(&gw.url)
        .header("mcp-session-id", &c.session)
        .send()
        .await
        .expect("DELETE");
    assert!(delete.status().is_success(), "{}", delete.status());
    support::within(
        Duration::from_secs(10),
        "the GET stream to end after DELETE",
        async { while stream.next(Duration::from_secs(10)).await.is_some() {} },
    )
    .await;
    assert_eq!(c.open_stream().await.err(), Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_exactly() {
    let gw = Gateway::start(NO_UPSTREAMS);
    let c = Mcp::connect(&gw.url).await;
    for id in [
        json!("abc-1"),
        json!(""),
        json!(0),
        json!(-7),
        json!(9_007_199_254_740_993_u64),
    ] {
        let reply = c
            .send(&json!({"jsonrpc": "2.0", "id": id, "method": "ping"}))
            .await;
        assert_eq!(reply.status, 200, "{id}: {}", reply.body);
        let msg = reply.json();
        assert_eq!(msg["id"], id, "{}", reply.body);
        assert_eq!(msg["result"], json!({}));
    }
    // The id also survives an error answer.
    let reply = c
        .send(&json!({"jsonrpc": "2.0", "id": "err-id", "method": "no/such/method"}))
        .await;
    assert_eq!(reply.json()["id"], "err-id");
    assert_eq!(reply.json()["error"]["code"], json!(-32601));
}
