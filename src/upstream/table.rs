//! The upstream table: every configured upstream, by index (the order of
//! `config.upstreams`, sorted by name), and the catalog merged from theirs.
//!
//! This is the one handle the layers above take when they need "the upstreams": the stages
//! resolve a request's owner through it, the router forwards through it, the relay finds
//! who sent what. The merged [`Catalog`] is an immutable snapshot swapped in whole by
//! [`Upstreams::rebuild`], so readers never lock and a listing walk sees one state.

use std::ops::Index;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Status, Upstream};
use crate::aggregate::merge::{Catalog, Input, Naming};
use crate::config::UpstreamConfig;

pub struct Upstreams {
    list: Vec<Arc<Upstream>>,
    merged: RwLock<Arc<Catalog>>,
    naming: Naming,
}

impl Upstreams {
    pub fn new(configs: &[UpstreamConfig], naming: Naming) -> Self {
        Upstreams {
            list: configs
                .iter()
                .cloned()
                .map(|u| Arc::new(Upstream::new(u)))
                .collect(),
            merged: RwLock::new(Arc::new(Catalog::default())),
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

    /// The merged catalog as it is now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.merged
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Merges the upstreams' catalogs anew and swaps the result in; returns the catalog
    /// before and after, for the relay to tell clients what changed. Each tool is listed
    /// with what the gateway will do for it as a task.
    pub fn rebuild(&self) -> (Arc<Catalog>, Arc<Catalog>) {
        type Support<'u> = Box<dyn Fn(&Value) -> &'static str + 'u>;
        let supports: Vec<Support<'_>> = self
            .list
            .iter()
            .map(|u| Box::new(move |tool: &Value| u.listed_task_support(tool)) as Support<'_>)
            .collect();
        let inputs: Vec<Input<'_>> = self
            .list
            .iter()
            .enumerate()
            .map(|(index, u)| Input {
                index,
                name: u.name(),
                prefix: &u.config.prefix,
                catalog: u.catalog(),
                task_support: Some(&*supports[index]),
            })
            .collect();
        let next = Arc::new(Catalog::build(&inputs, &self.naming));
        for c in &next.collisions {
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
        let previous = std::mem::replace(&mut *slot, next.clone());
        (previous, next)
    }

    /// The input schema of a tool as the gateway lists it (the upstream's own, untouched).
    pub fn tool_schema(&self, exposed: &str) -> Option<Value> {
        let route = self.catalog().tool(exposed)?.clone();
        let catalog = self.get(route.upstream)?.catalog();
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
            upstreams.insert(u.name().to_owned(), entry);
        }
        // One snapshot for both answers, so they cannot disagree.
        let catalog = self.catalog();
        let collisions: Vec<Value> = catalog
            .collisions
            .iter()
            .map(|c| json!({ "name": c.name, "list": c.kind.method(), "upstreams": c.upstreams, "servedBy": c.served_by }))
            .collect();
        let unresolved = catalog.collisions.iter().any(|c| c.served_by.is_none());
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
