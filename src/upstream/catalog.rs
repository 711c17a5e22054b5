//! An upstream's catalog: its tools, prompts, resources and templates, fetched page by page
//! and filtered by the upstream's allow/deny globs. The gateway serves listings from these
//! snapshots and refreshes one kind when the upstream says it changed.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use super::ServerInfo;
use super::peer::Peer;
use crate::config::{NameFilter, UpstreamConfig};
use crate::protocol::{ErrorObject, methods};

/// Most pages read from one upstream listing: a server that keeps answering `nextCursor`
/// forever must not keep the gateway paging forever.
pub const MAX_LIST_PAGES: usize = 1000;

/// Source of catalog generations. Global and monotonic, so a generation never repeats, even
/// across restarts of an upstream, and a cursor minted before a change is always detectable.
static GENERATION: AtomicU64 = AtomicU64::new(1);

pub fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// The four listable kinds, with their wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Tools,
        Kind::Prompts,
        Kind::Resources,
        Kind::ResourceTemplates,
    ];

    pub fn method(self) -> &'static str {
        match self {
            Kind::Tools => methods::TOOLS_LIST,
            Kind::Prompts => methods::PROMPTS_LIST,
            Kind::Resources => methods::RESOURCES_LIST,
            Kind::ResourceTemplates => methods::RESOURCES_TEMPLATES_LIST,
        }
    }

    /// The result field holding the items.
    pub fn field(self) -> &'static str {
        match self {
            Kind::Tools => "tools",
            Kind::Prompts => "prompts",
            Kind::Resources => "resources",
            Kind::ResourceTemplates => "resourceTemplates",
        }
    }

    /// The item field that identifies it (and that the filters match).
    pub fn key(self) -> &'static str {
        match self {
            Kind::Tools | Kind::Prompts => "name",
            Kind::Resources => "uri",
            Kind::ResourceTemplates => "uriTemplate",
        }
    }

    /// The server capability that says the kind is served.
    pub fn capability(self) -> &'static str {
        match self {
            Kind::Tools => "tools",
            Kind::Prompts => "prompts",
            Kind::Resources | Kind::ResourceTemplates => "resources",
        }
    }

    /// The notification an upstream sends when the kind changed, and the gateway sends on.
    pub fn list_changed(self) -> &'static str {
        match self {
            Kind::Tools => methods::TOOLS_LIST_CHANGED,
            Kind::Prompts => methods::PROMPTS_LIST_CHANGED,
            Kind::Resources | Kind::ResourceTemplates => methods::RESOURCES_LIST_CHANGED,
        }
    }
}

/// One upstream's items, as the server listed them (upstream names), after filtering.
#[derive(Debug, Clone, Default)]
pub struct UpstreamCatalog {
    /// Changes whenever any list changes; cursors carry it to detect staleness.
    pub generation: u64,
    pub tools: Vec<Value>,
    pub prompts: Vec<Value>,
    pub resources: Vec<Value>,
    pub templates: Vec<Value>,
}

impl UpstreamCatalog {
    pub fn empty() -> Self {
        Self {
            generation: next_generation(),
            ..Self::default()
        }
    }

    pub fn items(&self, kind: Kind) -> &[Value] {
        match kind {
            Kind::Tools => &self.tools,
            Kind::Prompts => &self.prompts,
            Kind::Resources => &self.resources,
            Kind::ResourceTemplates => &self.templates,
        }
    }

    fn items_mut(&mut self, kind: Kind) -> &mut Vec<Value> {
        match kind {
            Kind::Tools => &mut self.tools,
            Kind::Prompts => &mut self.prompts,
            Kind::Resources => &mut self.resources,
            Kind::ResourceTemplates => &mut self.templates,
        }
    }

    /// How long the upstream said its listing of `kind` may be cached: nothing from a
    /// handshake-era upstream.
    pub fn hint(&self, kind: Kind) -> crate::protocol::envelope::CacheHint {
        let _ = kind;
        crate::protocol::envelope::CacheHint::NONE
    }

    /// A copy with `kind` replaced and a new generation.
    pub fn with(&self, kind: Kind, items: Vec<Value>) -> Self {
        let mut next = self.clone();
        *next.items_mut(kind) = items;
        next.generation = next_generation();
        next
    }
}

/// Fetches every kind the server declared; a kind whose listing fails is logged and left
/// empty, so one broken listing does not take the upstream's other features down.
pub async fn fetch_all(peer: &Peer, info: &ServerInfo, config: &UpstreamConfig) -> UpstreamCatalog {
    let mut catalog = UpstreamCatalog::empty();
    for kind in Kind::ALL {
        if !info.has(kind.capability()) {
            continue;
        }
        match fetch(peer, config, kind).await {
            Ok(items) => *catalog.items_mut(kind) = items,
            Err(e) => {
                tracing::warn!(upstream = %config.name, list = kind.method(), error = %e, "Listing failed")
            }
        }
    }
    catalog
}

/// Fetches every page of one listing and keeps the items the filters allow.
pub async fn fetch(
    peer: &Peer,
    config: &UpstreamConfig,
    kind: Kind,
) -> Result<Vec<Value>, ErrorObject> {
    let filter = filter_for(config, kind);
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..MAX_LIST_PAGES {
        let params = cursor.as_ref().map(|c| json!({ "cursor": c }));
        let page = peer.request(kind.method(), params, config.timeout).await?;
        let Some(Value::Array(batch)) = page.get(kind.field()) else {
            return Err(ErrorObject::internal(format!(
                "{} result has no '{}' array",
                kind.method(),
                kind.field()
            )));
        };
        items.extend(
            batch
                .iter()
                .filter(|item| allowed(item, kind, filter))
                .cloned(),
        );
        match page.get("nextCursor") {
            Some(Value::String(next)) if seen.insert(next.clone()) => cursor = Some(next.clone()),
            Some(Value::String(next)) => {
                return Err(ErrorObject::internal(format!(
                    "{} repeated cursor {next:?}",
                    kind.method()
                )));
            }
            _ => return Ok(items),
        }
    }
    Err(ErrorObject::internal(format!(
        "{} returned more than {MAX_LIST_PAGES} pages",
        kind.method()
    )))
}

fn filter_for(config: &UpstreamConfig, kind: Kind) -> &NameFilter {
    match kind {
        Kind::Tools => &config.tools,
        Kind::Prompts => &config.prompts,
        Kind::Resources | Kind::ResourceTemplates => &config.resources,
    }
}

fn allowed(item: &Value, kind: Kind, filter: &NameFilter) -> bool {
    match item.get(kind.key()).and_then(Value::as_str) {
        Some(key) => filter.allows(key),
        None => {
            tracing::warn!(
                list = kind.method(),
                "Dropped a listed item without '{}'",
                kind.key()
            );
            false
        }
    }
}
