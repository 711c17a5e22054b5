//! The upstream table: every configured upstream, by index (the order of
//! `config.upstreams`, sorted by name), and the catalog merged from theirs.
//!
//! The table only grows. A configuration reload appends the upstreams it adds (and a new
//! incarnation of each one it changes) and retires the ones it removes: a retired upstream
//! keeps its index, so an index held anywhere (a sealed cursor, a task, a subscription)
//! never comes to mean another upstream, but it is left out of the catalog, `/readyz` and
//! every walk over the live upstreams, and its requests fail with the reason.
//!
//! This is the one handle the layers above take when they need "the upstreams": the stages
//! resolve a request's owner through it, the router forwards through it, the relay finds
//! who sent what. The merged [`Catalog`] is an immutable snapshot swapped in whole by
//! [`Upstreams::rebuild`], so readers never lock and a listing walk sees one state.
//!
//! There is one merged catalog per era: a server that speaks both eras may list different
//! tools, prompts or resources in each, and each client sees the catalog of the era it is
//! served in. Where no upstream is dual-era the two are one and the same snapshot.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::{Map, Value, json};

use super::{Status, Upstream};
use crate::aggregate::merge::{Catalog, Input, Naming};
use crate::config::UpstreamConfig;
use crate::protocol::Era;

pub struct Upstreams {
    /// Every upstream ever configured, retired ones included: read without locking.
    list: ArcSwap<Vec<Arc<Upstream>>>,
    /// Serializes the writers of `list` (reloads).
    growing: Mutex<()>,
    merged: RwLock<Merged>,
    naming: Naming,
}

/// The merged catalogs, one per era.
#[derive(Clone, Default)]
struct Merged {
    handshake: Arc<Catalog>,
    stateless: Arc<Catalog>,
}

/// One era's merged catalog before and after a rebuild.
pub struct Rebuilt {
    pub era: Era,
    pub before: Arc<Catalog>,
    pub after: Arc<Catalog>,
}

impl Upstreams {
    pub fn new(configs: &[UpstreamConfig], naming: Naming) -> Self {
        Upstreams {
            list: ArcSwap::from_pointee(
                configs
                    .iter()
                    .cloned()
                    .map(|u| Arc::new(Upstream::new(u)))
                    .collect(),
            ),
            growing: Mutex::new(()),
            merged: RwLock::new(Merged::default()),
            naming,
        }
    }

    /// The live upstreams (retired ones left out), as they are now.
    pub fn iter(&self) -> std::vec::IntoIter<Arc<Upstream>> {
        self.live().into_iter()
    }

    /// The live upstreams with their indexes.
    pub fn indexed(&self) -> Vec<(usize, Arc<Upstream>)> {
        self.list
            .load()
            .iter()
            .enumerate()
            .filter(|(_, u)| !u.retired())
            .map(|(i, u)| (i, u.clone()))
            .collect()
    }

    fn live(&self) -> Vec<Arc<Upstream>> {
        self.list
            .load()
            .iter()
            .filter(|u| !u.retired())
            .cloned()
            .collect()
    }

    /// The upstream at `index`, retired or not.
    pub fn get(&self, index: usize) -> Option<Arc<Upstream>> {
        self.list.load().get(index).cloned()
    }

    /// The upstream at `index`. Indexes come from the catalog or from the table itself and
    /// are never removed, so one out of range is a bug.
    pub fn at(&self, index: usize) -> Arc<Upstream> {
        self.list.load()[index].clone()
    }

    /// The live upstreams that serve clients, with their indexes: one per name. While a
    /// reload replaces an upstream, its new incarnation serves once it is ready and the old
    /// one until then (neither is retired yet, so both are live).
    pub fn serving(&self) -> Vec<(usize, Arc<Upstream>)> {
        let live = self.indexed();
        let ready = |u: &Upstream| matches!(u.status(), Status::Ready { .. });
        live.iter()
            .filter(|(i, u)| {
                !live.iter().any(|(j, v)| {
                    v.name() == u.name() && ((j > i && ready(v)) || (j < i && !ready(u)))
                })
            })
            .cloned()
            .collect()
    }

    /// How many indexes are taken, retired upstreams included.
    pub fn len(&self) -> usize {
        self.list.load().len()
    }

    /// Whether no upstream is live.
    pub fn is_empty(&self) -> bool {
        self.list.load().iter().all(|u| u.retired())
    }

    /// Appends an upstream for `config` and returns its index. It is not started here, and
    /// not in the catalog until it has one and the catalog is rebuilt.
    pub fn add(&self, config: UpstreamConfig) -> (usize, Arc<Upstream>) {
        let _writer = self.growing.lock().unwrap_or_else(|p| p.into_inner());
        let upstream = Arc::new(Upstream::new(config));
        let mut list = Vec::clone(&self.list.load());
        list.push(upstream.clone());
        let index = list.len() - 1;
        self.list.store(Arc::new(list));
        (index, upstream)
    }

    /// The separator between an upstream's prefix and an item's own name.
    pub fn separator(&self) -> &str {
        &self.naming.separator
    }

    /// The merged catalog clients of `era` see, as it is now.
    pub fn catalog(&self, era: Era) -> Arc<Catalog> {
        let merged = self.merged.read().unwrap_or_else(|p| p.into_inner());
        match era {
            Era::Handshake => merged.handshake.clone(),
            Era::Stateless => merged.stateless.clone(),
        }
    }

    /// Merges the upstreams' catalogs anew, for each era, and swaps the results in; returns
    /// each era's catalog before and after, for the relay to tell clients what changed.
    pub fn rebuild(&self) -> [Rebuilt; 2] {
        let stateless = self.merge(Era::Stateless);
        let handshake = if self.iter().any(|u| u.dual()) {
            self.merge(Era::Handshake)
        } else {
            stateless.clone()
        };
        // Each collision once, whichever era's catalog (or both) it is in.
        let only_handshake = handshake
            .collisions
            .iter()
            .filter(|c| !stateless.collisions.contains(c));
        for c in stateless.collisions.iter().chain(only_handshake) {
            match &c.served_by {
                Some(winner) => {
                    tracing::warn!(name = %c.name, upstreams = ?c.upstreams, served_by = %winner, "Name collision resolved by first_wins")
                }
                None => {
                    tracing::error!(name = %c.name, upstreams = ?c.upstreams, "Name collision: withheld from every upstream (collisions: error)")
                }
            }
        }
        let mut slot = self.merged.write().unwrap_or_else(|p| p.into_inner());
        let previous = std::mem::replace(
            &mut *slot,
            Merged {
                handshake: handshake.clone(),
                stateless: stateless.clone(),
            },
        );
        [
            Rebuilt {
                era: Era::Handshake,
                before: previous.handshake,
                after: handshake,
            },
            Rebuilt {
                era: Era::Stateless,
                before: previous.stateless,
                after: stateless,
            },
        ]
    }

    /// The catalog of `era` merged from the upstreams' catalogs of that era. Each tool is
    /// listed with what the gateway will do for it as a task.
    /// The previous catalog of the era lends the exposure of every upstream whose catalog
    /// did not change (see [`Catalog::build`]).
    fn merge(&self, era: Era) -> Arc<Catalog> {
        type Support<'u> = Box<dyn Fn(&Value) -> &'static str + 'u>;
        let live = self.serving();
        // The era each upstream serves this era's clients in, read once: the task support
        // listed for its tools depends on it, and it keys the reuse of its exposure.
        let served: Vec<Era> = live.iter().map(|(_, u)| u.served_in(era)).collect();
        let supports: Vec<Support<'_>> = live
            .iter()
            .zip(&served)
            .map(|((_, u), served)| {
                Box::new(move |tool: &Value| u.listed_task_support_served(*served, tool))
                    as Support<'_>
            })
            .collect();
        let inputs: Vec<Input<'_>> = live
            .iter()
            .zip(&supports)
            .zip(&served)
            .map(|(((index, u), support), served)| Input {
                index: *index,
                name: u.name(),
                prefix: &u.config.prefix,
                catalog: u.catalog_for(era),
                task_support: Some(&**support),
                stamp: match served {
                    Era::Handshake => 0,
                    Era::Stateless => 1,
                },
            })
            .collect();
        let previous = self.catalog(era);
        Arc::new(Catalog::build(&inputs, &self.naming, Some(&previous)))
    }

    /// The input schema of a tool as the gateway lists it to clients of `era` (the upstream's
    /// own, untouched), when it has `x-mcp-header` annotations: `None` when it has none.
    pub fn tool_schema(&self, era: Era, exposed: &str) -> Option<Value> {
        let merged = self.catalog(era);
        let route = merged.tool(exposed)?;
        let catalog = self.get(route.upstream)?.catalog_for(era);
        catalog.header_schema(&route.name).cloned()
    }

    /// What the gateway can serve as tasks, for its capabilities (see
    /// [`super::tasks::servable`]).
    pub fn task_servable(&self) -> (bool, bool, bool) {
        super::tasks::servable(&self.live())
    }

    /// Whether every upstream is ready and no name collides, and the details `/readyz`
    /// shows: each upstream's status and the collisions.
    pub fn readiness(&self) -> (bool, Value) {
        let mut all_ready = true;
        let mut upstreams = Map::new();
        for (_, u) in self.serving() {
            let status = u.status();
            all_ready &= matches!(status, Status::Ready { .. });
            let mut entry = json!({
                "status": status.label(),
                "transport": u.config.transport.kind(),
                "circuit": u.circuit.state().label(),
            });
            if let Status::Down {
                error, failures, ..
            } = &status
            {
                entry["error"] = json!(error);
                entry["failures"] = json!(failures);
            }
            if let Some(info) = u.server_info() {
                entry["protocolVersion"] = json!(info.protocol_version);
                entry["serverInfo"] = info.server_info;
            }
            // A dual-era server: each era's clients are served in their own era.
            if let Some(version) = u.handshake_version() {
                entry["handshakeVersion"] = json!(version);
            }
            upstreams.insert(u.name().to_owned(), entry);
        }
        // One snapshot for both answers, so they cannot disagree; a collision in either era's
        // catalog counts (the same one in both is shown once).
        let merged = self
            .merged
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut all: Vec<&crate::aggregate::merge::Collision> =
            merged.stateless.collisions.iter().collect();
        for c in &merged.handshake.collisions {
            if !all.contains(&c) {
                all.push(c);
            }
        }
        let collisions: Vec<Value> = all
            .iter()
            .map(|c| json!({ "name": c.name, "list": c.kind.method(), "upstreams": c.upstreams, "servedBy": c.served_by }))
            .collect();
        let unresolved = all.iter().any(|c| c.served_by.is_none());
        let ready = all_ready && !unresolved;
        (
            ready,
            json!({ "ready": ready, "upstreams": upstreams, "collisions": collisions }),
        )
    }

    /// Waits until every upstream has either become ready or failed at least once, at most
    /// `limit`: used by `manifold tools` and `manifold stdio`.
    pub async fn settle(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            let settled = self.iter().all(|u| !matches!(u.status(), Status::Starting));
            if settled {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
