//! One upstream's catalog as data: the four listable kinds, and the items and cache hints an
//! upstream listed for each (fetching them is the upstream layer's job).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::protocol::envelope::CacheHint;
use crate::protocol::{headers, methods};

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
    /// Cache hint of each kind's listing, as the upstream gave it (absent: none).
    hints: std::collections::HashMap<Kind, CacheHint>,
    /// The tools whose input schema has `x-mcp-header` annotations, by name: a 2026-07-28
    /// call needs that schema, and looks here instead of through every tool. Most upstreams
    /// have none.
    header_schemas: Vec<(String, Value)>,
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

    /// How long the upstream said its listing of `kind` may be cached, and by whom (all its
    /// pages merged). [`CacheHint::NONE`] for a handshake-era upstream or a kind not listed.
    pub fn hint(&self, kind: Kind) -> CacheHint {
        self.hints.get(&kind).copied().unwrap_or(CacheHint::NONE)
    }

    /// A copy with `kind` replaced and a new generation.
    pub fn with(&self, kind: Kind, listing: Listing) -> Self {
        let mut next = self.clone();
        next.set(kind, listing);
        next.generation = next_generation();
        next
    }

    pub fn set(&mut self, kind: Kind, listing: Listing) {
        *self.items_mut(kind) = listing.items;
        self.hints.insert(kind, listing.hint);
        if kind == Kind::Tools {
            self.header_schemas = self
                .tools
                .iter()
                .filter_map(|tool| {
                    let name = tool.get("name")?.as_str()?;
                    let schema = tool.get("inputSchema")?;
                    headers::has_param_headers(schema).then(|| (name.to_owned(), schema.clone()))
                })
                .collect();
        }
    }

    /// The input schema of tool `name` (upstream name) when it has `x-mcp-header`
    /// annotations; `None` for every other tool.
    pub fn header_schema(&self, name: &str) -> Option<&Value> {
        self.header_schemas
            .iter()
            .find_map(|(tool, schema)| (tool == name).then_some(schema))
    }
}

/// One listing, every page read: the items the filters allow and the merged cache hint.
#[derive(Debug, Clone)]
pub struct Listing {
    pub items: Vec<Value>,
    pub hint: CacheHint,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Kind, Listing, UpstreamCatalog};
    use crate::protocol::envelope::CacheHint;

    #[test]
    fn only_tools_with_header_annotations_have_a_header_schema_and_a_new_listing_replaces_them() {
        let annotated = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"}
        }});
        let mut catalog = UpstreamCatalog::empty();
        catalog.set(
            Kind::Tools,
            Listing {
                items: vec![
                    json!({"name": "plain", "inputSchema": {"type": "object", "properties": {"a": {"type": "string"}}}}),
                    json!({"name": "routed", "inputSchema": annotated}),
                ],
                hint: CacheHint::NONE,
            },
        );
        assert_eq!(catalog.header_schema("routed"), Some(&annotated));
        assert_eq!(catalog.header_schema("plain"), None);
        assert_eq!(catalog.header_schema("absent"), None);
        let next = catalog.with(
            Kind::Tools,
            Listing {
                items: vec![json!({"name": "plain", "inputSchema": {"type": "object"}})],
                hint: CacheHint::NONE,
            },
        );
        assert_eq!(next.header_schema("routed"), None);
        assert_eq!(catalog.header_schema("routed"), Some(&annotated));
    }
}
