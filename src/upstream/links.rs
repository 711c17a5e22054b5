//! Per-client upstream sessions ("links"). An HTTP upstream gets one upstream session per
//! client session, and a stdio upstream configured `session: per_session` one process per
//! client session: the upstream then sees each client separately (its own capabilities, log
//! level, sampling and elicitation), at the cost of a handshake on the client's first
//! request. A link opens lazily, closes (DELETE, or stdin closed) when the client session
//! ends, and is reopened if it died.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use serde_json::json;
use tokio::sync::{OnceCell, mpsc};

use super::connect::{self, Opened};
use super::peer::{NotificationHook, Origin, Peer, PeerEvent};
use super::supervisor::UpstreamEvent;
use super::{Closer, ServerInfo};
use crate::config::{TransportConfig, UpstreamConfig};
use crate::protocol::{Era, ErrorObject, methods};

/// What links need from the gateway, handed over by the supervisor when it starts.
pub struct LinkContext {
    /// The upstream's notification hook (see [`NotificationHook`]).
    pub hook: Option<NotificationHook>,
    pub http: reqwest::Client,
    pub events: mpsc::Sender<UpstreamEvent>,
    pub index: usize,
}

pub struct Link {
    pub peer: Arc<Peer>,
    pub info: ServerInfo,
    closer: std::sync::Mutex<Option<Closer>>,
}

impl Link {
    async fn close(&self) {
        let closer = self.closer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(closer) = closer {
            closer.close().await;
        }
    }
}

type Slot = Arc<OnceCell<Arc<Link>>>;

#[derive(Default)]
pub struct Links {
    context: OnceLock<LinkContext>,
    /// One slot per client session; the cell makes concurrent first requests share one open.
    slots: DashMap<String, Slot>,
}

impl Links {
    pub fn init(&self, context: LinkContext) {
        let _ = self.context.set(context);
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The live link of a client session, opening one if there is none or it died.
    pub async fn get(
        &self,
        config: &UpstreamConfig,
        origin: &Origin,
    ) -> Result<Arc<Link>, ErrorObject> {
        let Some(context) = self.context.get() else {
            return Err(ErrorObject::upstream_unavailable(
                &config.name,
                "still starting",
            ));
        };
        let session = origin.session.as_deref().ok_or_else(|| {
            ErrorObject::internal("a per-session upstream link needs a client session")
        })?;
        loop {
            let slot = self.slots.entry(session.to_owned()).or_default().clone();
            // Opening is boxed: inline, it would size (and cost a copy of) the future of
            // every request through a link (3.5 KB against a few hundred bytes).
            let link = slot
                .get_or_try_init(|| Box::pin(open(config, context, origin)))
                .await
                .map_err(|e| ErrorObject::upstream_unavailable(&config.name, e))?
                .clone();
            if !link.peer.is_closed() {
                return Ok(link);
            }
            // Died since: forget it (unless someone already replaced it) and open a new one.
            self.slots.remove_if(session, |_, s| Arc::ptr_eq(s, &slot));
        }
    }

    /// Drops a dead link so the next request opens a fresh one.
    pub fn forget(&self, session: &str, link: &Arc<Link>) {
        self.slots.remove_if(session, |_, s| {
            s.get().is_some_and(|l| Arc::ptr_eq(l, link))
        });
    }

    /// The client session ended: close its link.
    pub async fn close(&self, session: &str) {
        if let Some((_, slot)) = self.slots.remove(session)
            && let Some(link) = slot.get()
        {
            link.close().await;
        }
    }

    /// Closes every link (gateway shutdown).
    pub async fn close_all(&self) {
        let sessions: Vec<String> = self.slots.iter().map(|e| e.key().clone()).collect();
        for session in sessions {
            self.close(&session).await;
        }
    }
}

async fn open(
    config: &UpstreamConfig,
    context: &LinkContext,
    origin: &Origin,
) -> Result<Arc<Link>, String> {
    let Opened {
        peer,
        events,
        closer,
        info,
        ..
    } = connect::open(
        &with_identity(config, origin),
        &context.http,
        connect::relayable(&origin.capabilities),
        link_hook(context.hook.clone(), origin),
        // Only handshake-era upstreams get per-client sessions.
        connect::Opening::In(Era::Handshake),
    )
    .await?;
    tracing::debug!(upstream = %config.name, session = %short(origin.session.as_deref().unwrap_or_default()), "Opened a per-session upstream link");
    let link = Arc::new(Link {
        peer: peer.clone(),
        info,
        closer: std::sync::Mutex::new(Some(closer)),
    });
    let default = Arc::new(Origin {
        session: origin.session.clone(),
        sink: None,
        capabilities: origin.capabilities.clone(),
        principal: origin.principal.clone(),
        log_level: origin.log_level.clone(),
        inputs: None,
    });
    tokio::spawn(pump(
        peer,
        events,
        context.events.clone(),
        context.index,
        default,
    ));
    Ok(link)
}

/// The upstream's configuration for one client's link: over HTTP, its headers plus the
/// `identity_headers` filled from the client's principal (a configured header of the same
/// name wins). The client's own credential is never among them.
fn with_identity<'a>(config: &'a UpstreamConfig, origin: &Origin) -> Cow<'a, UpstreamConfig> {
    let extra = crate::session::identity::headers(&config.identity_headers, &origin.principal);
    if extra.is_empty() {
        return Cow::Borrowed(config);
    }
    let mut config = config.clone();
    if let TransportConfig::StreamableHttp { headers, .. } | TransportConfig::Sse { headers, .. } =
        &mut config.transport
    {
        merge_identity(headers, extra);
    }
    Cow::Owned(config)
}

/// Adds the identity headers a configured header does not already name. HTTP header names
/// are case-insensitive, so `X-User` configured keeps `x-user` from the identity out.
fn merge_identity(
    headers: &mut std::collections::BTreeMap<String, String>,
    extra: std::collections::BTreeMap<String, String>,
) {
    for (name, value) in extra {
        if !headers.keys().any(|h| h.eq_ignore_ascii_case(&name)) {
            headers.insert(name, value);
        }
    }
}

/// Passes a link's traffic to the relay. Anything not tied to a request belongs to the
/// link's one client; catalog changes are left to the shared session, which sees them too.
async fn pump(
    peer: Arc<Peer>,
    mut events: mpsc::Receiver<PeerEvent>,
    relay: mpsc::Sender<UpstreamEvent>,
    upstream: usize,
    default: Arc<Origin>,
) {
    while let Some(event) = events.recv().await {
        let forwarded = match event {
            // A ping outside any request checks the gateway's link; one during a client's
            // request goes on to that client.
            PeerEvent::Request(req, None) if req.method == methods::PING => {
                peer.respond(req.id, Ok(json!({}))).await;
                continue;
            }
            PeerEvent::Request(request, origin) => {
                let origin = Some(origin.unwrap_or_else(|| default.clone()));
                UpstreamEvent::Request {
                    upstream,
                    peer: peer.clone(),
                    request,
                    origin,
                }
            }
            PeerEvent::Notification(n, _) if n.method.ends_with("/list_changed") => continue,
            PeerEvent::Notification(notification, origin) => {
                let origin = Some(origin.unwrap_or_else(|| default.clone()));
                UpstreamEvent::Notification {
                    upstream,
                    notification,
                    origin,
                }
            }
        };
        if relay.send(forwarded).await.is_err() {
            break;
        }
    }
}

/// The upstream's hook, with this link's one client as the origin of anything that is not
/// tied to a request.
fn link_hook(hook: Option<NotificationHook>, origin: &Origin) -> Option<NotificationHook> {
    let hook = hook?;
    let default = Arc::new(Origin {
        session: origin.session.clone(),
        sink: None,
        capabilities: origin.capabilities.clone(),
        principal: origin.principal.clone(),
        log_level: origin.log_level.clone(),
        inputs: None,
    });
    Some(Arc::new(move |n, o| hook(n, Some(o.unwrap_or(&default)))))
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::merge_identity;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_configured_header_wins_whatever_the_case_of_its_name() {
        let mut headers = map(&[("X-User", "svc"), ("Authorization", "Bearer k")]);
        merge_identity(
            &mut headers,
            map(&[("x-user", "alice"), ("x-email", "al@example.com")]),
        );
        assert_eq!(
            headers,
            map(&[
                ("Authorization", "Bearer k"),
                ("X-User", "svc"),
                ("x-email", "al@example.com"),
            ])
        );
    }
}
