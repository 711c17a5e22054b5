//! A 2026-07-28 client spoken with raw HTTP: no session; every request carries the
//! envelope in `params._meta` and the SEP-2243 headers, as the Python SDK sends them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::{ACCEPT_BOTH, Reply, SseStream, http_client, streaming_client};

pub const STATELESS: &str = "2026-07-28";

pub struct Stateless {
    pub http: reqwest::Client,
    pub url: String,
    /// The ClientCapabilities every request declares.
    pub capabilities: Value,
    next_id: AtomicU64,
}

impl Stateless {
    pub fn new(url: &str, capabilities: Value) -> Stateless {
        Stateless {
            http: http_client(),
            url: url.to_owned(),
            capabilities,
            next_id: AtomicU64::new(1),
        }
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The request `_meta` envelope.
    pub fn envelope(&self) -> Value {
        json!({
            "io.modelcontextprotocol/protocolVersion": STATELESS,
            "io.modelcontextprotocol/clientCapabilities": self.capabilities,
            "io.modelcontextprotocol/clientInfo": { "name": "manifold-tests", "version": "0" },
        })
    }

    /// A request body with the envelope merged into `params._meta`.
    pub fn body(&self, id: u64, method: &str, mut params: Value) -> Value {
        let meta = params
            .as_object_mut()
            .expect("params object")
            .entry("_meta")
            .or_insert_with(|| json!({}));
        for (k, v) in self.envelope().as_object().expect("object") {
            meta.as_object_mut()
                .expect("_meta object")
                .entry(k.clone())
                .or_insert(v.clone());
        }
        json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
    }

    /// The headers a correct client sends for `body`.
    pub fn headers_for(body: &Value) -> Vec<(String, String)> {
        let method = body["method"].as_str().unwrap_or_default();
        let mut headers = vec![
            ("MCP-Protocol-Version".to_owned(), STATELESS.to_owned()),
            ("Mcp-Method".to_owned(), method.to_owned()),
        ];
        let name = match method {
            "tools/call" | "prompts/get" => body["params"]["name"].as_str(),
            "resources/read" => body["params"]["uri"].as_str(),
            "tasks/get" | "tasks/update" | "tasks/cancel" => body["params"]["taskId"].as_str(),
            _ => None,
        };
        if let Some(name) = name {
            headers.push(("Mcp-Name".to_owned(), name.to_owned()));
        }
        headers
    }

    /// POSTs `body` with exactly `headers` (besides content type and accept).
    pub async fn post_raw(&self, body: &Value, headers: &[(String, String)]) -> Reply {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.json(body).send().await.expect("POST");
        Reply::read(resp).await
    }

    /// Sends a well-formed request; the reply and its response message.
    pub async fn exchange(&self, method: &str, params: Value) -> (Reply, Value) {
        let id = self.next_id();
        let body = self.body(id, method, params);
        let reply = self.post_raw(&body, &Self::headers_for(&body)).await;
        let response = reply
            .messages()
            .into_iter()
            .find(|m| m["id"] == json!(id) && m.get("method").is_none())
            .unwrap_or_else(|| panic!("no response to {method}: {}", reply.body));
        (reply, response)
    }

    /// `Ok(result)` or `Err(error)` of a well-formed request.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, Value> {
        let (_, response) = self.exchange(method, params).await;
        match response.get("result") {
            Some(r) => Ok(r.clone()),
            None => Err(response["error"].clone()),
        }
    }

    /// A request that must succeed.
    pub async fn ok(&self, method: &str, params: Value) -> Value {
        self.request(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// A request that must fail; returns the error object.
    pub async fn err(&self, method: &str, params: Value) -> Value {
        match self.request(method, params).await {
            Ok(r) => panic!("{method} should have failed, got {r}"),
            Err(e) => e,
        }
    }

    pub async fn call(&self, tool: &str, arguments: Value) -> Result<Value, Value> {
        self.request(
            "tools/call",
            json!({ "name": tool, "arguments": arguments }),
        )
        .await
    }

    /// Opens a `subscriptions/listen` stream with request id `id` and the given filter.
    pub async fn listen(&self, id: u64, notifications: Value) -> SseStream {
        let body = self.body(
            id,
            "subscriptions/listen",
            json!({ "notifications": notifications }),
        );
        let mut req = streaming_client()
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH);
        for (k, v) in Self::headers_for(&body) {
            req = req.header(k, v);
        }
        let resp = req.json(&body).send().await.expect("listen");
        assert_eq!(resp.status(), 200, "listen refused");
        SseStream::new(resp)
    }
}
