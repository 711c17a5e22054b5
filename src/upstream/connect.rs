//! Opening a connection to an upstream and performing the MCP handshake as a client: shared
//! by the supervisor (the upstream's shared session) and per-client links.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::peer::{NotificationHook, Peer, PeerEvent};
use super::{Closer, Connection, ServerInfo};
use crate::config::{TransportConfig, UpstreamConfig};
use crate::protocol::{methods, version};

/// Client capabilities the gateway declares on an upstream's shared session: everything it
/// can relay. Servers decide what they offer by them (server-everything lists its sampling
/// and elicitation tools only to clients that declared those), and the shared session is
/// where the catalog comes from. When a request on it needs a capability its client did not
/// declare, the upstream gets an error naming it; a `roots/list` outside any client request
/// gets an empty list.
pub fn gateway_capabilities() -> Value {
    json!({ "sampling": {}, "elicitation": { "form": {}, "url": {} }, "roots": { "listChanged": true } })
}

/// The subset of a client's capabilities that the gateway can relay, declared on a link that
/// serves only that client (so the upstream asks only for what the client can do).
pub fn relayable(client: &Value) -> Value {
    let mut caps = serde_json::Map::new();
    for key in ["sampling", "elicitation", "roots"] {
        if let Some(v) = client.get(key) {
            caps.insert(key.into(), v.clone());
        }
    }
    Value::Object(caps)
}

/// A connected, initialized upstream session.
pub struct Opened {
    pub peer: Arc<Peer>,
    pub events: mpsc::Receiver<PeerEvent>,
    pub closer: Closer,
    pub info: ServerInfo,
}

/// Opens the transport and initializes, declaring `capabilities`.
pub async fn open(
    config: &UpstreamConfig,
    http: &reqwest::Client,
    capabilities: Value,
    hook: Option<NotificationHook>,
) -> Result<Opened, String> {
    let Connection {
        outbound,
        inbound,
        closer,
        http: link,
    } = transport(config, http).await?;
    let (peer, events) = Peer::start(&config.name, outbound, inbound, hook);
    let info = match handshake(&peer, config.timeout, capabilities).await {
        Ok(info) => info,
        Err(e) => {
            closer.close().await;
            return Err(e);
        }
    };
    if let Some(link) = &link {
        link.initialized(&info.protocol_version);
    }
    Ok(Opened {
        peer,
        events,
        closer,
        info,
    })
}

async fn transport(config: &UpstreamConfig, http: &reqwest::Client) -> Result<Connection, String> {
    let name = &config.name;
    match &config.transport {
        TransportConfig::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            let command = resolve_command(command);
            let spec = super::stdio::StdioSpec {
                upstream: name,
                command: &command,
                args,
                env,
                cwd: cwd.as_ref(),
            };
            super::stdio::spawn(spec).map_err(|e| e.to_string())
        }
        TransportConfig::StreamableHttp { url, headers } => {
            super::http::connect(name, url, headers, http.clone())
        }
        TransportConfig::Sse { url, headers } => {
            super::sse::connect(name, url, headers, http.clone()).await
        }
    }
}

/// `initialize` then `notifications/initialized`, as a client.
async fn handshake(
    peer: &Peer,
    timeout: Duration,
    capabilities: Value,
) -> Result<ServerInfo, String> {
    let params = json!({
        "protocolVersion": version::LATEST,
        "capabilities": capabilities,
        "clientInfo": { "name": "manifold", "version": env!("CARGO_PKG_VERSION") },
    });
    let result = peer
        .request(methods::INITIALIZE, Some(params), timeout)
        .await
        .map_err(|e| format!("initialize failed: {}", e.message))?;
    let version = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !version::is_supported(version) {
        return Err(format!(
            "server answered unsupported protocol version {version:?}"
        ));
    }
    peer.notify(methods::INITIALIZED, None)
        .await
        .map_err(|e| e.message)?;
    Ok(ServerInfo {
        protocol_version: version.to_owned(),
        capabilities: result
            .get("capabilities")
            .cloned()
            .unwrap_or_else(|| json!({})),
        server_info: result.get("serverInfo").cloned().unwrap_or(Value::Null),
        instructions: result
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// `manifold` as a command means this very binary (so the default config can run the
/// built-in demo server on a machine where `manifold` is not on the PATH).
fn resolve_command(command: &str) -> String {
    if command == "manifold"
        && let Ok(exe) = std::env::current_exe()
    {
        return exe.to_string_lossy().into_owned();
    }
    command.to_owned()
}
