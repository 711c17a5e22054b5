//! The merged catalog: every upstream's items under their exposed names, the routing tables
//! that map exposed names and resource URIs back to their owner, and paging over it all.
//!
//! A [`Catalog`] is an immutable snapshot, rebuilt whenever an upstream's catalog changes and
//! swapped in whole, so readers never lock and a listing walk sees one consistent state.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::catalog::{Kind, UpstreamCatalog};
use super::cursor::{ListCursor, ListKind};
use super::names;
use super::uri_template::UriTemplate;
use crate::config::CollisionPolicy;

/// Where an exposed tool or prompt lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub upstream: usize,
    /// The name the upstream knows it by.
    pub name: String,
}

/// Two upstreams offering the same exposed name (or resource URI, or template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub kind: Kind,
    pub name: String,
    /// Upstream names, in precedence order.
    pub upstreams: Vec<String>,
    /// Which one serves it now (`None` under the `error` policy: nobody does).
    pub served_by: Option<String>,
}

/// What the catalog is built from, per upstream, in precedence order.
pub struct Input<'a> {
    pub index: usize,
    pub name: &'a str,
    pub prefix: &'a str,
    pub catalog: Arc<UpstreamCatalog>,
    /// The `execution.taskSupport` to list for each of the upstream's tools (what the
    /// gateway will do for it); `None` lists the upstream's own.
    pub task_support: Option<&'a dyn Fn(&Value) -> &'static str>,
}

/// Naming rules for exposed tools and prompts.
#[derive(Debug, Clone)]
pub struct Naming {
    pub separator: String,
    pub max_len: usize,
    pub collisions: CollisionPolicy,
}

/// One upstream's visible items, ready to send.
#[derive(Debug, Default)]
struct View {
    upstream: usize,
    name: String,
    /// Items per kind (exposed names), in the upstream's order, and a content hash per kind.
    items: [Vec<Value>; 4],
    generation: [u64; 4],
}

#[derive(Debug, Default)]
pub struct Catalog {
    views: Vec<View>,
    tools: HashMap<String, Route>,
    prompts: HashMap<String, Route>,
    resources: HashMap<String, usize>,
    /// Templates with their owner, most specific first.
    templates: Vec<(UriTemplate, usize)>,
    pub collisions: Vec<Collision>,
}

/// A page of a merged listing.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Value>,
    pub next: Option<ListCursor>,
}

/// Why a cursor cannot continue a listing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PageError {
    #[error(
        "stale cursor: the catalog of upstream '{0}' changed since it was issued; list again from the start"
    )]
    Stale(String),
}

fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Tools => 0,
        Kind::Prompts => 1,
        Kind::Resources => 2,
        Kind::ResourceTemplates => 3,
    }
}

pub fn list_kind(kind: Kind) -> ListKind {
    match kind {
        Kind::Tools => ListKind::Tools,
        Kind::Prompts => ListKind::Prompts,
        Kind::Resources => ListKind::Resources,
        Kind::ResourceTemplates => ListKind::ResourceTemplates,
    }
}

impl Catalog {
    /// Merges upstream catalogs. Exposed names come from [`names::expose`]; a name, URI or
    /// template offered by several upstreams is resolved by the collision policy and always
    /// recorded in [`Catalog::collisions`], never silently shadowed.
    pub fn build(inputs: &[Input<'_>], naming: &Naming) -> Catalog {
        let mut claims: HashMap<(Kind, String), Vec<usize>> = HashMap::new();
        let mut staged: Vec<[Vec<Staged>; 4]> = Vec::with_capacity(inputs.len());
        for (pos, input) in inputs.iter().enumerate() {
            let mut per_kind: [Vec<Staged>; 4] = Default::default();
            for kind in Kind::ALL {
                for item in input.catalog.items(kind) {
                    let Some((key, mut exposed)) = expose_item(item, kind, input.prefix, naming)
                    else {
                        continue;
                    };
                    if kind == Kind::Tools
                        && let Some(support) = input.task_support
                    {
                        if !exposed.get("execution").is_some_and(Value::is_object) {
                            exposed["execution"] = Value::Object(Default::default());
                        }
                        exposed["execution"]["taskSupport"] = Value::from(support(item));
                    }
                    let original = item
                        .get(kind.key())
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    claims.entry((kind, key.clone())).or_default().push(pos);
                    per_kind[slot(kind)].push(Staged {
                        key,
                        item: exposed,
                        original,
                    });
                }
            }
            staged.push(per_kind);
        }
        let (winners, collisions) = resolve(&claims, inputs, naming.collisions);
        let mut catalog = Catalog {
            collisions,
            ..Catalog::default()
        };
        for (pos, (input, per_kind)) in inputs.iter().zip(staged).enumerate() {
            let mut view = View {
                upstream: input.index,
                name: input.name.to_owned(),
                ..View::default()
            };
            for kind in Kind::ALL {
                for staged in &per_kind[slot(kind)] {
                    if winners.get(&(kind, staged.key.clone())) != Some(&pos) {
                        continue;
                    }
                    catalog.index(kind, &staged.key, &staged.original, input.index);
                    view.items[slot(kind)].push(staged.item.clone());
                }
                view.generation[slot(kind)] = content_hash(&view.items[slot(kind)]);
            }
            catalog.views.push(view);
        }
        catalog
            .templates
            .sort_by_key(|(t, _)| std::cmp::Reverse(t.specificity()));
        catalog
    }

    fn index(&mut self, kind: Kind, key: &str, original: &str, upstream: usize) {
        match kind {
            Kind::Tools => {
                self.tools.insert(
                    key.to_owned(),
                    Route {
                        upstream,
                        name: original.to_owned(),
                    },
                );
            }
            Kind::Prompts => {
                self.prompts.insert(
                    key.to_owned(),
                    Route {
                        upstream,
                        name: original.to_owned(),
                    },
                );
            }
            Kind::Resources => {
                self.resources.insert(key.to_owned(), upstream);
            }
            Kind::ResourceTemplates => match UriTemplate::parse(key) {
                Ok(t) => self.templates.push((t, upstream)),
                Err(e) => {
                    tracing::warn!(template = %key, error = %e, "Ignored an unparsable resource template")
                }
            },
        }
    }

    pub fn tool(&self, exposed: &str) -> Option<&Route> {
        self.tools.get(exposed)
    }

    pub fn prompt(&self, exposed: &str) -> Option<&Route> {
        self.prompts.get(exposed)
    }

    /// The upstream that owns a resource URI: a listed resource first, then the most
    /// specific matching template.
    pub fn resource_owner(&self, uri: &str) -> Option<usize> {
        self.resources.get(uri).copied().or_else(|| {
            self.templates
                .iter()
                .find(|(t, _)| t.matches(uri))
                .map(|(_, u)| *u)
        })
    }

    /// The upstream that owns a template, by its exact text.
    pub fn template_owner(&self, template: &str) -> Option<usize> {
        self.templates
            .iter()
            .find(|(t, _)| t.as_str() == template)
            .map(|(_, u)| *u)
    }

    /// Whether any upstream offers items of a kind.
    pub fn has(&self, kind: Kind) -> bool {
        self.views.iter().any(|v| !v.items[slot(kind)].is_empty())
    }

    /// Every visible item of a kind, in listing order.
    pub fn all(&self, kind: Kind) -> impl Iterator<Item = (usize, &Value)> {
        self.views
            .iter()
            .flat_map(move |v| v.items[slot(kind)].iter().map(move |i| (v.upstream, i)))
    }

    /// One page of a merged listing, starting where `from` says (or at the beginning).
    pub fn page(
        &self,
        kind: Kind,
        from: Option<&ListCursor>,
        size: usize,
    ) -> Result<Page, PageError> {
        let k = slot(kind);
        let (mut view, mut offset) = match from {
            None => (0, 0),
            Some(c) => {
                let pos = self.views.iter().position(|v| v.name == c.upstream);
                match pos {
                    Some(p)
                        if self.views[p].generation[k] == c.generation
                            && c.offset <= self.views[p].items[k].len() =>
                    {
                        (p, c.offset)
                    }
                    _ => return Err(PageError::Stale(c.upstream.clone())),
                }
            }
        };
        let mut items = Vec::with_capacity(size.min(1024));
        while view < self.views.len() && items.len() < size {
            let list = &self.views[view].items[k];
            let take = (list.len() - offset).min(size - items.len());
            items.extend_from_slice(&list[offset..offset + take]);
            offset += take;
            if offset >= list.len() {
                view += 1;
                offset = 0;
            }
        }
        // Skip exhausted or empty views so the last page has no cursor.
        while view < self.views.len() && offset >= self.views[view].items[k].len() {
            view += 1;
            offset = 0;
        }
        let next = (view < self.views.len()).then(|| ListCursor {
            kind: list_kind(kind),
            upstream: self.views[view].name.clone(),
            offset,
            generation: self.views[view].generation[k],
        });
        Ok(Page { items, next })
    }
}

/// An item on its way into the catalog.
struct Staged {
    /// The routing key: exposed name, URI or template.
    key: String,
    /// The item as clients see it.
    item: Value,
    /// The name or URI the upstream knows it by.
    original: String,
}

/// The routing key and the item as clients see it.
fn expose_item(item: &Value, kind: Kind, prefix: &str, naming: &Naming) -> Option<(String, Value)> {
    let key = item.get(kind.key())?.as_str()?;
    match kind {
        Kind::Tools | Kind::Prompts => {
            let exposed = names::expose(prefix, &naming.separator, key, naming.max_len);
            let mut item = item.clone();
            item["name"] = Value::from(exposed.clone());
            Some((exposed, item))
        }
        Kind::Resources | Kind::ResourceTemplates => Some((key.to_owned(), item.clone())),
    }
}

type Winners = HashMap<(Kind, String), usize>;

fn resolve(
    claims: &HashMap<(Kind, String), Vec<usize>>,
    inputs: &[Input<'_>],
    policy: CollisionPolicy,
) -> (Winners, Vec<Collision>) {
    let mut winners = HashMap::with_capacity(claims.len());
    let mut collisions = Vec::new();
    for ((kind, key), owners) in claims {
        let mut distinct = owners.clone();
        distinct.dedup();
        if distinct.len() == 1 {
            winners.insert((*kind, key.clone()), distinct[0]);
            continue;
        }
        let served_by = match policy {
            CollisionPolicy::FirstWins => {
                winners.insert((*kind, key.clone()), distinct[0]);
                Some(inputs[distinct[0]].name.to_owned())
            }
            CollisionPolicy::Error => None,
        };
        collisions.push(Collision {
            kind: *kind,
            name: key.clone(),
            upstreams: distinct
                .iter()
                .map(|p| inputs[*p].name.to_owned())
                .collect(),
            served_by,
        });
    }
    collisions.sort_by(|a, b| a.name.cmp(&b.name));
    (winners, collisions)
}

/// A content hash: equal lists give equal generations, on every replica and across restarts,
/// so a cursor stays valid exactly as long as the list it walks is unchanged.
fn content_hash(items: &[Value]) -> u64 {
    let mut hasher = Sha256::new();
    for item in items {
        hasher.update(item.to_string().as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}
