//! Keeps one upstream connected: connect, initialize, fetch the catalog, serve, and on loss
//! reconnect with capped exponential backoff. Tells the gateway when the catalog changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::catalog::{self, Kind};
use super::peer::{Origin, Peer, PeerEvent};
use super::{Closer, Live, Status, Upstream};
use crate::protocol::{Notification, Request, methods};

/// First wait before reconnecting; doubles per failure.
const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest wait between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that lived this long resets the backoff: it was healthy, not flapping.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// What an upstream tells the rest of the gateway.
#[derive(Debug)]
pub enum UpstreamEvent {
    /// The upstream's catalog was replaced (refresh, connect, or disconnect). `announced`:
    /// the upstream itself said these lists changed (`list_changed`), so clients are told
    /// even when the gateway sees no difference (the upstream knows what it changed).
    CatalogChanged {
        upstream: usize,
        kinds: Vec<Kind>,
        announced: bool,
    },
    /// The upstream (re)connected: per-upstream state such as subscriptions and log levels
    /// must be replayed on the new session.
    Connected { upstream: usize },
    /// A notification the gateway does not consume itself.
    Notification {
        upstream: usize,
        notification: Notification,
        origin: Option<Arc<Origin>>,
    },
    /// A server→client request (sampling, elicitation, roots) to route to a client; the
    /// answer goes back through `peer`.
    Request {
        upstream: usize,
        peer: Arc<Peer>,
        request: Request,
        origin: Option<Arc<Origin>>,
    },
}

pub struct Supervisor {
    pub upstream: Arc<Upstream>,
    pub index: usize,
    pub events: mpsc::Sender<UpstreamEvent>,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
}

impl Supervisor {
    pub async fn run(self) {
        self.upstream.links.init(super::links::LinkContext {
            hook: self.upstream.hook(),
            http: self.http.clone(),
            events: self.events.clone(),
            index: self.index,
        });
        let name = self.upstream.name().to_owned();
        let mut backoff = BACKOFF_START;
        let mut failures = 0u32;
        while !self.shutdown.is_cancelled() {
            let started = Instant::now();
            let error = match self.connect().await {
                Ok(session) => {
                    failures = 0;
                    self.serve(session).await
                }
                Err(e) => e,
            };
            if self.shutdown.is_cancelled() {
                break;
            }
            if started.elapsed() >= HEALTHY_AFTER {
                backoff = BACKOFF_START;
            }
            failures += 1;
            // Shown in /readyz and in -32010 errors; it may quote the upstream.
            let error = crate::protocol::text::printable(&error).into_owned();
            tracing::warn!(upstream = %name, error = %error, retry_in = ?backoff, "Upstream unavailable");
            self.upstream.set_status(Status::Down {
                error,
                since: Instant::now(),
                failures,
            });
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.shutdown.cancelled() => break,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        self.upstream.set_status(Status::Stopped);
    }

    async fn connect(&self) -> Result<Session, String> {
        let opened = match self.open(self.upstream.opening()).await {
            Ok(opened) => opened,
            // An era remembered from an earlier connection may no longer hold (the server
            // was upgraded or replaced): forget it and probe again at once.
            Err(e) if self.upstream.remembers() => {
                tracing::info!(upstream = %self.upstream.name(), error = %e, "Opening in the remembered era failed; probing again");
                self.upstream.remember(None);
                self.open(self.upstream.opening()).await?
            }
            Err(e) => return Err(e),
        };
        let super::connect::Opened {
            peer,
            events,
            closer,
            info,
            era,
        } = opened;
        tracing::info!(upstream = %self.upstream.name(), version = %info.protocol_version, server = %info.server_info, "Upstream initialized");
        let catalog = match catalog::fetch_all(&peer, &info, &self.upstream.config).await {
            Ok(catalog) => catalog,
            Err(e) => {
                // The server refuses the era it was opened in (the remembered verdict no
                // longer holds): the next attempt probes afresh.
                self.upstream.remember(None);
                closer.close().await;
                return Err(e);
            }
        };
        let discovered = (era == super::Era::Stateless).then(|| info.clone());
        self.upstream.remember(Some((era, discovered)));
        let side = match self.wants_side(era) {
            true => self.open_side(&info).await,
            false => None,
        };
        self.upstream
            .set_handshake_catalog(side.as_ref().map(|s| s.catalog.clone()));
        self.upstream.set_catalog(catalog);
        let listening = CancellationToken::new();
        if era == super::Era::Stateless {
            tokio::spawn(super::listen::run(
                self.upstream.clone(),
                peer.clone(),
                info.clone(),
                listening.clone(),
            ));
        }
        self.upstream.set_live(Some(Arc::new(Live {
            peer: peer.clone(),
            info,
            handshake: side.as_ref().map(|s| super::Side {
                peer: s.peer.clone(),
                info: s.info.clone(),
            }),
        })));
        // The merged catalog is rebuilt first (the relay takes the events in order), so
        // `/readyz` does not say ready long before clients can see what the upstream lists.
        self.catalog_changed(Kind::ALL.to_vec(), false).await;
        self.upstream.set_status(Status::Ready {
            since: Instant::now(),
        });
        let _ = self
            .events
            .send(UpstreamEvent::Connected {
                upstream: self.index,
            })
            .await;
        Ok(Session {
            peer,
            events,
            closer,
            side,
            _listening: listening.drop_guard(),
        })
    }

    /// Whether to try a handshake-era session beside the stateless one: the probe found a
    /// 2026-07-28 server and the configuration leaves the era to the probe. Whether the server
    /// also speaks the handshake era is found by asking (`initialize` on a session of its
    /// own), on every connection: `supportedVersions` does not tell, since a dual-era server
    /// may list only the revisions `server/discover` belongs to (the Python SDK's does), and a
    /// refusal is cheap and rare (once per connection of a 2026-07-28-only server).
    fn wants_side(&self, era: super::Era) -> bool {
        era == super::Era::Stateless
            && self.upstream.config.protocol == crate::config::ProtocolMode::Auto
    }

    /// Opens the handshake-era session of a dual-era server and reads its catalog there. A
    /// server that refuses it speaks 2026-07-28 only: it is served in that era alone
    /// (handshake-era clients are then translated).
    async fn open_side(&self, info: &super::ServerInfo) -> Option<SideSession> {
        // Asked as briefly as the probe: a 2026-07-28-only server that never answers
        // `initialize` must not hold the upstream back for its whole request timeout.
        let mut config = self.upstream.config.clone();
        config.timeout = config.timeout.min(super::connect::PROBE_TIMEOUT);
        let opened = super::connect::open(
            &config,
            &self.http,
            super::connect::gateway_capabilities(),
            self.upstream.hook(),
            super::connect::Opening::In(super::Era::Handshake),
        )
        .await;
        let opened = match opened {
            Ok(opened) => opened,
            Err(e) if info.speaks(super::Era::Handshake) => {
                tracing::warn!(upstream = %self.upstream.name(), error = %e, "The server lists handshake-era revisions but its initialize failed; serving it in the stateless era only");
                return None;
            }
            Err(e) => {
                tracing::debug!(upstream = %self.upstream.name(), error = %e, "A 2026-07-28-only server: no handshake-era session");
                return None;
            }
        };
        let catalog = match catalog::fetch_all(&opened.peer, &opened.info, &self.upstream.config)
            .await
        {
            Ok(catalog) => catalog,
            Err(e) => {
                tracing::warn!(upstream = %self.upstream.name(), error = %e, "Handshake-era catalog unreadable; serving the server in the stateless era only");
                opened.closer.close().await;
                return None;
            }
        };
        tracing::info!(upstream = %self.upstream.name(), version = %opened.info.protocol_version, "Dual-era upstream: handshake-era session open beside the stateless one");
        Some(SideSession {
            peer: opened.peer,
            events: opened.events,
            closer: opened.closer,
            info: opened.info,
            catalog,
        })
    }

    async fn open(
        &self,
        opening: super::connect::Opening,
    ) -> Result<super::connect::Opened, String> {
        super::connect::open(
            &self.upstream.config,
            &self.http,
            super::connect::gateway_capabilities(),
            self.upstream.hook(),
            opening,
        )
        .await
    }

    /// Serves a live session (and a dual-era server's handshake-era session beside it) until
    /// either closes or the gateway shuts down; returns why it ended. Losing either session
    /// reconnects both, so the two eras never drift apart.
    async fn serve(&self, mut session: Session) -> String {
        let reason = loop {
            let side_peer = session.side.as_ref().map(|s| s.peer.clone());
            let side_closed = async {
                match &side_peer {
                    Some(peer) => peer.closed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => break String::from("gateway shutting down"),
                _ = session.peer.closed() => break session.peer.close_reason().unwrap_or_else(|| "connection closed".into()),
                ev = session.events.recv() => match ev {
                    Some(ev) => self.on_event(&session.peer, Catalog::Own, ev).await,
                    None => break String::from("connection closed"),
                },
                _ = side_closed => break String::from("the handshake-era session closed"),
                ev = next_side_event(session.side.as_mut()) => match ev {
                    Some((peer, ev)) => self.on_event(&peer, Catalog::Handshake, ev).await,
                    None => break String::from("the handshake-era session closed"),
                },
            }
        };
        self.upstream.set_live(None);
        self.upstream.set_catalog(catalog::UpstreamCatalog::empty());
        self.upstream.set_handshake_catalog(None);
        self.catalog_changed(Kind::ALL.to_vec(), false).await;
        session.closer.close().await;
        if let Some(side) = session.side {
            side.closer.close().await;
        }
        reason
    }

    async fn on_event(&self, peer: &Arc<Peer>, catalog: Catalog, event: PeerEvent) {
        match event {
            // A ping outside any client request checks the gateway, which answers it; one
            // that belongs to a client's request goes on to that client.
            PeerEvent::Request(req, None) if req.method == methods::PING => {
                peer.respond(req.id, Ok(json!({}))).await
            }
            PeerEvent::Request(request, origin) => {
                let event = UpstreamEvent::Request {
                    upstream: self.index,
                    peer: peer.clone(),
                    request,
                    origin,
                };
                if let Err(mpsc::error::TrySendError::Full(UpstreamEvent::Request {
                    peer,
                    request,
                    ..
                })) = self.events.try_send(event)
                {
                    let busy = crate::protocol::ErrorObject::new(
                        crate::protocol::codes::GATEWAY_BUSY,
                        "gateway busy",
                    );
                    peer.respond(request.id, Err(busy)).await;
                }
            }
            PeerEvent::Notification(n, origin) => match changed_kinds(&n.method) {
                Some(kinds) => self.refresh(peer, catalog, kinds).await,
                None => {
                    let event = UpstreamEvent::Notification {
                        upstream: self.index,
                        notification: n,
                        origin,
                    };
                    if self.events.try_send(event).is_err() {
                        tracing::warn!(upstream = %self.upstream.name(), "Dropped an upstream notification: gateway busy");
                    }
                }
            },
        }
    }

    /// Re-reads the listings that changed, in the catalog of the session that said so, and
    /// tells the gateway.
    async fn refresh(&self, peer: &Peer, which: Catalog, kinds: Vec<Kind>) {
        let mut catalog = match which {
            Catalog::Own => (*self.upstream.catalog()).clone(),
            Catalog::Handshake => (*self.upstream.catalog_for(super::Era::Handshake)).clone(),
        };
        for kind in &kinds {
            match catalog::fetch(peer, &self.upstream.config, *kind).await {
                Ok(listing) => catalog = catalog.with(*kind, listing),
                Err(e) => {
                    tracing::warn!(upstream = %self.upstream.name(), list = kind.method(), error = %e, "Refresh failed")
                }
            }
        }
        match which {
            Catalog::Own => self.upstream.set_catalog(catalog),
            Catalog::Handshake => self.upstream.set_handshake_catalog(Some(catalog)),
        }
        self.catalog_changed(kinds, true).await;
    }

    async fn catalog_changed(&self, kinds: Vec<Kind>, announced: bool) {
        let _ = self
            .events
            .send(UpstreamEvent::CatalogChanged {
                upstream: self.index,
                kinds,
                announced,
            })
            .await;
    }
}

/// Which of an upstream's catalogs a session's `list_changed` is about.
#[derive(Debug, Clone, Copy)]
enum Catalog {
    /// The catalog of the era the upstream was opened in.
    Own,
    /// A dual-era server's handshake-era catalog.
    Handshake,
}

struct Session {
    peer: Arc<Peer>,
    events: mpsc::Receiver<PeerEvent>,
    closer: Closer,
    /// A dual-era server's handshake-era session.
    side: Option<SideSession>,
    /// Ends the session's `subscriptions/listen` (stateless upstreams) when the session ends.
    _listening: tokio_util::sync::DropGuard,
}

/// The handshake-era session of a dual-era server, while the supervisor serves it.
struct SideSession {
    peer: Arc<Peer>,
    events: mpsc::Receiver<PeerEvent>,
    closer: Closer,
    info: super::ServerInfo,
    catalog: catalog::UpstreamCatalog,
}

/// The next event of the handshake-era session, if there is one; pending for ever if not.
async fn next_side_event(side: Option<&mut SideSession>) -> Option<(Arc<Peer>, PeerEvent)> {
    match side {
        Some(side) => {
            let event = side.events.recv().await?;
            Some((side.peer.clone(), event))
        }
        None => std::future::pending().await,
    }
}

fn changed_kinds(method: &str) -> Option<Vec<Kind>> {
    match method {
        methods::TOOLS_LIST_CHANGED => Some(vec![Kind::Tools]),
        methods::PROMPTS_LIST_CHANGED => Some(vec![Kind::Prompts]),
        methods::RESOURCES_LIST_CHANGED => Some(vec![Kind::Resources, Kind::ResourceTemplates]),
        _ => None,
    }
}
