//! The upstream table: every configured upstream, by index (the order of
//! `config.upstreams`, sorted by name), and the catalog merged from theirs.
//!
//! This is the one handle the layers above take when they need "the upstreams": the stages
//! resolve a request's owner through it, the router forwards through it, the relay finds
//! who sent what. The merged [`Catalog`] is an immutable snapshot swapped in whole by
//! [`Upstreams::rebuild`], so readers never lock and a listing walk sees one state.
//!
//! There is one merged catalog per era: a server that speaks both eras may list different
//! tools, prompts or resources in each, and each client sees the catalog of the era it is
//! served in. Where no upstream is dual-era the two are one and the same snapshot.

use std::ops::Index;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Status, Upstream};
use crate::aggregate::merge::{Catalog, Input, Naming};
use crate::config::UpstreamConfig;
use crate::protocol::Era;

pub struct Upstreams {
    list: Vec<Arc<Upstream>>,
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
            list: configs
                .iter()
                .cloned()
                .map(|u| Arc::new(Upstream::new(u)))
                .collect(),
            merged: RwLock::new(Merged::default()),
            naming,
        }
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Arc<Upstream>> {
        self.list.iter()
    }

    pub fn get(&self, index: usize) -> Option<&Arc<Upstream>> {
        self.list.get(index)
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
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
        let handshake = if self.list.iter().any(|u| u.dual()) {
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
    fn merge(&self, era: Era) -> Arc<Catalog> {
        type Support<'u> = Box<dyn Fn(&Value) -> &'static str + 'u>;
        let supports: Vec<Support<'_>> = self
            .list
            .iter()
            .map(|u| Box::new(move |tool: &Value| u.listed_task_support(era, tool)) as Support<'_>)
            .collect();
        let inputs: Vec<Input<'_>> = self
            .list
            .iter()
            .enumerate()
            .map(|(index, u)| Input {
                index,
                name: u.name(),
                prefix: &u.config.prefix,
                catalog: u.catalog_for(era),
                task_support: Some(&*supports[index]),
            })
            .collect();
        Arc::new(Catalog::build(&inputs, &self.naming))
    }

    /// The input schema of a tool as the gateway lists it to clients of `era` (the upstream's
    /// own, untouched).
    pub fn tool_schema(&self, era: Era, exposed: &str) -> Option<Value> {
        let route = self.catalog(era).tool(exposed)?.clone();
        let catalog = self.get(route.upstream)?.catalog_for(era);
        catalog
            .tools
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(route.name.as_str()))
            .and_then(|t| t.get("inputSchema"))
            .cloned()
    }

    /// What the gateway can serve as tasks, for its capabilities (see
    /// [`super::tasks::servable`]).
    pub fn task_servable(&self) -> (bool, bool, bool) {
        super::tasks::servable(&self.list)
    }

    /// Whether every upstream is ready and no name collides, and the details `/readyz`
    /// shows: each upstream's status and the collisions.
    pub fn readiness(&self) -> (bool, Value) {
        let mut all_ready = true;
        let mut upstreams = Map::new();
        for u in &self.list {
            let status = u.status();
            all_ready &= matches!(status, Status::Ready { .. });
            let mut entry =
                json!({ "status": status.label(), "transport": u.config.transport.kind() });
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
            let settled = self
                .list
                .iter()
                .all(|u| !matches!(u.status(), Status::Starting));
            if settled {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Index<usize> for Upstreams {
    type Output = Arc<Upstream>;

    fn index(&self, index: usize) -> &Arc<Upstream> {
        &self.list[index]
    }
}

impl<'a> IntoIterator for &'a Upstreams {
    type Item = &'a Arc<Upstream>;
    type IntoIter = std::slice::Iter<'a, Arc<Upstream>>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}
