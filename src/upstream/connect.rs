//! Opening a connection to an upstream as a client, in the upstream's own protocol era:
//! shared by the supervisor (the upstream's shared session) and per-client links.
//!
//! A handshake-era server is opened with `initialize` + `notifications/initialized`. A
//! 2026-07-28 server has no handshake: `server/discover` (carrying the gateway's envelope)
//! tells what it offers, and every later request carries the envelope again. In `auto` the
//! discover doubles as the era probe (MCP versioning, "telling the eras apart"): a
//! `DiscoverResult` naming 2026-07-28, or a -32022 whose `supported` names it, means stateless;
//! anything else (another error, an HTTP error status, silence) means handshake, and the same
//! connection goes on with `initialize`. The fallback keys on no particular error code, since
//! older servers answer an unknown first request in many ways.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::peer::{NotificationHook, Peer, PeerEvent};
use super::{Closer, Connection, ServerInfo};
use crate::config::{TransportConfig, UpstreamConfig};
use crate::protocol::{Era, ErrorObject, codes, envelope, field, methods};

/// Longest wait for the answer to the era probe before taking the server for a handshake-era one
/// (some never answer a request that precedes `initialize`). Short, since it delays every
/// connection to such a server; bounded by the upstream's own timeout.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How to open a connection.
#[derive(Debug, Clone)]
pub enum Opening {
    /// Probe with `server/discover`, fall back to `initialize`.
    Probe,
    /// In this era, no probe (configured, or remembered from an earlier probe); a stateless
    /// server is still asked `server/discover` for what it offers.
    In(Era),
    /// A stateless server whose `server/discover` answer is known from an earlier connection:
    /// no request at all before the first real one.
    Resume(Box<ServerInfo>),
}

/// Client capabilities the gateway declares on an upstream's shared session: everything it
/// can relay. Servers decide what they offer by them (server-everything lists its sampling
/// and elicitation tools only to clients that declared those), and the shared session is
/// where the catalog comes from. When a request on it needs a capability its client did not
/// declare, the upstream gets an error naming it; a `roots/list` outside any client request
/// gets an empty list.
pub fn gateway_capabilities() -> Value {
    static CAPABILITIES: std::sync::LazyLock<Value> = std::sync::LazyLock::new(
        || json!({ "sampling": {}, "elicitation": { "form": {}, "url": {} }, "roots": { "listChanged": true } }),
    );
    CAPABILITIES.clone()
}

/// The subset of a client's capabilities that the gateway can relay, declared on a link that
/// serves only that client (so the upstream asks only for what the client can do). Of the
/// extensions, only the tasks extension: the gateway maps the tasks an upstream creates
/// (the tasks stage removes it first when the gateway runs the task itself).
pub fn relayable(client: &Value) -> Value {
    let mut caps = serde_json::Map::new();
    for key in ["sampling", "elicitation", "roots"] {
        if let Some(v) = field::of(client, key) {
            caps.insert(key.into(), v.clone());
        }
    }
    let extensions = field::of(client, "extensions");
    if let Some(tasks) = extensions.and_then(|e| field::of(e, crate::protocol::extensions::TASKS)) {
        caps.insert(
            "extensions".into(),
            serde_json::json!({ crate::protocol::extensions::TASKS: tasks }),
        );
    }
    Value::Object(caps)
}

/// A connected, initialized upstream session.
pub struct Opened {
    pub peer: Arc<Peer>,
    pub events: mpsc::Receiver<PeerEvent>,
    pub closer: Closer,
    pub info: ServerInfo,
    pub era: Era,
}

/// Opens the transport and starts the conversation the way `opening` says; a handshake-era
/// handshake declares `capabilities`. The HTTP+SSE transport exists only in 2024-11-05, so
/// it is never probed.
pub async fn open(
    config: &UpstreamConfig,
    http: &reqwest::Client,
    capabilities: Value,
    hook: Option<NotificationHook>,
    opening: Opening,
) -> Result<Opened, String> {
    let opening = match config.transport {
        TransportConfig::Sse { .. } => Opening::In(Era::Handshake),
        _ => opening,
    };
    let Connection {
        outbound,
        inbound,
        closer,
        http: link,
    } = transport(config, http).await?;
    let (peer, events) = Peer::start(&config.name, outbound, inbound, hook, link.clone());
    let opened = match opening {
        Opening::Resume(info) => {
            peer.set_era(Era::Stateless);
            Ok(*info)
        }
        Opening::In(Era::Handshake) => handshake(&peer, config.timeout, capabilities).await,
        Opening::In(Era::Stateless) => match discover(&peer, config.timeout).await {
            Probe::Stateless(info) => Ok(info),
            Probe::Handshake(why) => Err(format!("not a 2026-07-28 server: {why}")),
        },
        Opening::Probe => {
            let limit = PROBE_TIMEOUT.min(config.timeout);
            match discover(&peer, limit).await {
                Probe::Stateless(info) => Ok(info),
                Probe::Handshake(why) => {
                    tracing::debug!(upstream = %config.name, reason = %why, "Era probe: handshake server");
                    handshake(&peer, config.timeout, capabilities).await
                }
            }
        }
    };
    let info = match opened {
        Ok(info) => info,
        Err(e) => {
            closer.close().await;
            return Err(e);
        }
    };
    let era = if peer.era() == Era::Stateless {
        Era::Stateless
    } else {
        Era::Handshake
    };
    if let Some(link) = link.as_ref().filter(|_| era == Era::Handshake) {
        link.initialized(&info.protocol_version);
    }
    Ok(Opened {
        peer,
        events,
        closer,
        info,
        era,
    })
}

/// What the era probe concluded.
enum Probe {
    Stateless(ServerInfo),
    Handshake(String),
}

/// `server/discover` at 2026-07-28 with the gateway's envelope. The peer is stateless while it
/// runs and stays so only if the server turns out to be.
async fn discover(peer: &Peer, timeout: Duration) -> Probe {
    peer.set_era(Era::Stateless);
    let mut reprobed = false;
    loop {
        let outcome = peer.request(methods::SERVER_DISCOVER, None, timeout).await;
        match verdict(&outcome) {
            Verdict::Stateless => {
                if let Ok(result) = outcome {
                    return Probe::Stateless(discovered(&result));
                }
            }
            // The server rejected the version yet lists it: ask once more, in case the
            // answer was about something transient, then take it as handshake.
            Verdict::Reprobe if !reprobed => {
                reprobed = true;
                continue;
            }
            Verdict::Reprobe => {}
            Verdict::Handshake => {}
        }
        peer.set_era(Era::Handshake);
        let why = match outcome {
            Ok(_) => "server/discover names no 2026-07-28 version".to_owned(),
            Err(e) => e.message,
        };
        return Probe::Handshake(why);
    }
}

/// The probe's reading of an answer to `server/discover`.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Stateless,
    /// -32022 naming 2026-07-28 among the versions the server supports.
    Reprobe,
    Handshake,
}

/// Reads the answer to the era probe. Only a positive stateless signal counts: every other
/// error, whatever its code (handshake servers answer -32601, -32602, -32600 or an HTTP status),
/// and a timeout mean a handshake-era server.
pub fn verdict(outcome: &Result<Value, ErrorObject>) -> Verdict {
    let names_stateless = |list: Option<&Value>| {
        list.and_then(Value::as_array).is_some_and(|l| {
            l.iter()
                .any(|v| v.as_str() == Some(Era::Stateless.latest()))
        })
    };
    match outcome {
        Ok(result) if names_stateless(result.get("supportedVersions")) => Verdict::Stateless,
        Ok(_) => Verdict::Handshake,
        Err(e)
            if e.code == codes::UNSUPPORTED_PROTOCOL_VERSION
                && names_stateless(e.data.as_ref().and_then(|d| d.get("supported"))) =>
        {
            Verdict::Reprobe
        }
        Err(_) => Verdict::Handshake,
    }
}

/// What a `DiscoverResult` says, in the shape the handshake's answer has.
fn discovered(result: &Value) -> ServerInfo {
    ServerInfo {
        protocol_version: Era::Stateless.latest().to_owned(),
        capabilities: result
            .get("capabilities")
            .cloned()
            .unwrap_or_else(|| json!({})),
        server_info: result
            .pointer(&format!(
                "/_meta/{}",
                envelope::SERVER_INFO.replace('/', "~1")
            ))
            .cloned()
            .unwrap_or(Value::Null),
        instructions: result
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_owned),
        revisions: result
            .get("supportedVersions")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_else(|| vec![Era::Stateless.latest().to_owned()]),
    }
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
            crate::net::check_url(url.as_str())?;
            super::http::connect(name, url, headers, http.clone())
        }
        TransportConfig::Sse { url, headers } => {
            crate::net::check_url(url.as_str())?;
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
        "protocolVersion": Era::Handshake.latest(),
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
    if !Era::Handshake.speaks(version) {
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
        revisions: vec![version.to_owned()],
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

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: i32, data: Option<Value>) -> Result<Value, ErrorObject> {
        let mut e = ErrorObject::new(code, "no");
        e.data = data;
        Err(e)
    }

    #[test]
    fn only_a_stateless_answer_makes_a_stateless_verdict() {
        let discover =
            json!({ "supportedVersions": ["2025-11-25", "2026-07-28"], "capabilities": {} });
        assert_eq!(verdict(&Ok(discover)), Verdict::Stateless);
        let old_only = json!({ "supportedVersions": ["2025-11-25"] });
        assert_eq!(verdict(&Ok(old_only)), Verdict::Handshake);
        let stateless_listed = json!({ "supported": ["2026-07-28"], "requested": "2027-01-01" });
        assert_eq!(
            verdict(&error(-32022, Some(stateless_listed))),
            Verdict::Reprobe
        );
    }

    #[test]
    fn every_other_error_falls_back_to_handshake_whatever_its_code() {
        let handshake_listed =
            json!({ "supported": ["2024-11-05", "2025-11-25"], "requested": "2026-07-28" });
        assert_eq!(
            verdict(&error(-32022, Some(handshake_listed))),
            Verdict::Handshake
        );
        for code in [-32601, -32602, -32600, -32603, -32000, 42] {
            assert_eq!(
                verdict(&error(code, None)),
                Verdict::Handshake,
                "code {code}"
            );
        }
        let timeout = Err(ErrorObject::upstream_timeout(
            "u",
            "server/discover",
            PROBE_TIMEOUT,
        ));
        assert_eq!(verdict(&timeout), Verdict::Handshake);
        let http = Err(ErrorObject::upstream_unavailable(
            "u",
            "HTTP 405 Method Not Allowed: ",
        ));
        assert_eq!(verdict(&http), Verdict::Handshake);
    }

    #[test]
    fn a_discover_result_reads_like_a_handshake() {
        let info = discovered(&json!({
            "resultType": "complete",
            "supportedVersions": ["2026-07-28"],
            "capabilities": { "tools": { "listChanged": true } },
            "instructions": "be nice",
            "_meta": { "io.modelcontextprotocol/serverInfo": { "name": "up", "version": "1" } },
        }));
        assert_eq!(info.protocol_version, "2026-07-28");
        assert!(info.has("tools"));
        assert_eq!(info.server_info["name"], "up");
        assert_eq!(info.instructions.as_deref(), Some("be nice"));
    }
}
