//! HTTP+SSE upstreams (2024-11-05): a long GET on the SSE URL whose first event,
//! `endpoint`, names where to POST; every server message arrives on that GET stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use reqwest::{Client, Url};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::peer::Inbound;
use super::sse_read::{self, SseMessages};
use super::{Connection, INBOUND_QUEUE, OUTBOUND_QUEUE};
use crate::protocol::{ErrorObject, Id, Message, Response};

/// How long the server gets to name its POST endpoint.
const ENDPOINT_WAIT: Duration = Duration::from_secs(10);

pub struct SseCloser {
    stop: CancellationToken,
}

impl SseCloser {
    pub async fn close(self) {
        self.stop.cancel();
    }
}

pub async fn connect(
    upstream: &str,
    url: &url::Url,
    headers: &BTreeMap<String, String>,
    client: Client,
) -> Result<Connection, String> {
    let headers = super::http::header_map(headers)?;
    let resp = client
        .get(url.clone())
        .headers(headers.clone())
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| format!("GET {url} failed: {}", super::http::error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("GET {url} answered HTTP {}", resp.status()));
    }
    let mut events = sse_read::events(resp.bytes_stream());
    let endpoint = tokio::time::timeout(ENDPOINT_WAIT, async {
        while let Some(ev) = events.next().await {
            let ev = ev?;
            if ev.event == "endpoint" {
                return Ok(ev.data);
            }
        }
        Err(String::from("stream ended before the endpoint event"))
    })
    .await
    .map_err(|_| String::from("no endpoint event within 10s"))??;
    let post_url = endpoint_url(url, endpoint.trim())?;

    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let stop = CancellationToken::new();
    let name: Arc<str> = upstream.into();
    tokio::spawn(read_loop(
        name.clone(),
        SseMessages::from_events(events),
        in_tx.clone(),
        stop.clone(),
    ));
    tokio::spawn(post_loop(
        name,
        client,
        post_url,
        headers,
        out_rx,
        in_tx,
        stop.clone(),
    ));
    Ok(Connection {
        outbound: out_tx,
        inbound: in_rx,
        closer: super::Closer::Sse(SseCloser { stop }),
        http: None,
    })
}

/// Resolves the endpoint against the SSE URL and insists on the same origin: a server must
/// not be able to make the gateway POST client messages (and configured credentials) elsewhere.
pub(super) fn endpoint_url(base: &Url, endpoint: &str) -> Result<Url, String> {
    let url = base
        .join(endpoint)
        .map_err(|e| format!("bad endpoint '{endpoint}': {e}"))?;
    if url.origin() != base.origin() {
        return Err(format!("endpoint '{url}' is not on the origin of {base}"));
    }
    Ok(url)
}

async fn read_loop(
    name: Arc<str>,
    mut messages: SseMessages,
    inbound: mpsc::Sender<Inbound>,
    stop: CancellationToken,
) {
    let reason = loop {
        let item = tokio::select! {
            i = messages.next() => i,
            _ = stop.cancelled() => return,
        };
        match item {
            Some(Ok((msg, _))) => {
                if inbound.send(Inbound::Message(msg, None)).await.is_err() {
                    return;
                }
            }
            Some(Err(e)) => break format!("SSE stream broke: {e}"),
            None => break String::from("SSE stream ended"),
        }
    };
    tracing::info!(upstream = %name, reason = %reason, "Upstream SSE stream closed");
    stop.cancel();
    let _ = inbound.send(Inbound::Closed(reason)).await;
}

async fn post_loop(
    name: Arc<str>,
    client: Client,
    url: Url,
    headers: HeaderMap,
    mut outbound: mpsc::Receiver<Message>,
    inbound: mpsc::Sender<Inbound>,
    stop: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            m = outbound.recv() => m,
            _ = stop.cancelled() => None,
        };
        let Some(msg) = msg else { break };
        let id: Option<Id> = match &msg {
            Message::Request(r) => Some(r.id.clone()),
            _ => None,
        };
        let sent = client
            .post(url.clone())
            .headers(headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(msg.to_json())
            .send()
            .await;
        let failure = match sent {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("POST answered HTTP {}", r.status())),
            Err(e) => Some(format!("POST failed: {}", super::http::error_chain(&e))),
        };
        if let (Some(why), Some(id)) = (failure, id) {
            let err = ErrorObject::upstream_unavailable(&name, why);
            let _ = inbound
                .send(Inbound::Message(
                    Message::Response(Response::err(Some(id), err)),
                    None,
                ))
                .await;
        }
    }
}
