//! Ambiguous client input is refused, not guessed at: a JSON-RPC message naming an envelope
//! member twice, a body declared in a charset other than UTF-8. Other clients keep working.

mod support;

use serde_json::json;
use support::{Gateway, Mcp, stdio_fixture};

/// A POST in `client`'s session with the given `Content-Type`.
fn post_as(client: &Mcp, content_type: &str) -> reqwest::RequestBuilder {
    support::http_client()
        .post(&client.url)
        .header("content-type", content_type)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &client.session)
        .header("mcp-protocol-version", &client.version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_method_and_a_foreign_charset_are_refused() {
    let gw = Gateway::start(&format!("upstreams:\n{}", stdio_fixture("alpha", &[])));
    gw.wait_ready().await;
    let client = Mcp::connect(&gw.url).await;

    // Which `method` wins depends on the parser; the gateway does not pick one.
    let twice = r#"{"jsonrpc":"2.0","id":7,"method":"ping","method":"tools/list"}"#;
    let resp = client.post().body(twice).send().await.expect("POST");
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], json!(-32600), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("'method'"), "{message}");

    let resp = post_as(&client, "application/json; charset=utf-16")
        .body(json!({"jsonrpc": "2.0", "id": 8, "method": "ping"}).to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 415);
    let body: serde_json::Value = resp.json().await.expect("JSON");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("utf-16"), "{message}");

    // UTF-8 named explicitly is fine, and the client is still served.
    let resp = post_as(&client, "application/json; charset=UTF-8")
        .body(json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}).to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(client.call_text("alpha__whoami", json!({})).await, "alpha");
}
