//! The merged catalog: every upstream's items under their exposed names, the routing tables
//! that map exposed names and resource URIs back to their owner, and paging over it all.
//!
//! A [`Catalog`] is an immutable snapshot, rebuilt whenever an upstream's catalog changes and
//! swapped in whole, so readers never lock and a listing walk sees one consistent state.
//!
//! Two things keep that cheap with many upstreams and large lists:
//!
//! - **Exposure is done once per upstream catalog.** Renaming an upstream's items, hashing
//!   them for cursor generations and parsing its templates depends only on that upstream's
//!   catalog (and prefix, naming, index and `stamp`), so [`Catalog::build`] takes the
//!   previous snapshot and reuses the exposure of every upstream whose catalog is the same
//!   `Arc` as before. A rebuild after one upstream changed re-exposes that one upstream; the
//!   others cost a routing-table insert per item.
//! - **Pages are serialised once per snapshot.** [`Catalog::shared_page`] keeps each page it
//!   cut (per list, start, size and caller filter) as JSON text, so a repeated listing is a
//!   lookup and a copy; the cache dies with the snapshot, so a changed list is never served
//!   from it.

// Keyed by names and URIs the upstreams gave, looked up on every call: foldhash, not SipHash.
use hashbrown::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::catalog::{Kind, UpstreamCatalog};
use super::cursor::{ListCursor, ListKind};
use super::names;
use super::uri_template::UriTemplate;
use crate::config::CollisionPolicy;

/// Bytes of serialised pages one catalog snapshot keeps; past it pages are cut and
/// serialised per request (and not kept).
pub const PAGE_CACHE_BYTES: usize = 16 << 20;
/// Pages one catalog snapshot keeps, whatever their size.
pub const PAGE_CACHE_ENTRIES: usize = 4096;

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
    /// Everything else the exposure depends on (what `task_support` answers, besides the
    /// tool itself): an input whose catalog (the same `Arc`), index, prefix and stamp equal
    /// those of an upstream in the previous snapshot reuses its exposure.
    pub stamp: u64,
}

/// Naming rules for exposed tools and prompts.
#[derive(Debug, Clone)]
pub struct Naming {
    pub separator: String,
    pub max_len: usize,
    pub collisions: CollisionPolicy,
}

/// Which listed items a caller may see (the policy's decision for one principal). Listings
/// are cut first and filtered after, so a filtered page may be shorter than the page size.
pub trait ItemFilter: Send + Sync {
    /// Identifies what the filter lets through: filters with equal keys must show the same
    /// items, since cached pages are shared between them.
    fn key(&self) -> &[u64];
    /// Whether an item is shown: its kind, its upstream's name, and the upstream's own name
    /// for it (tools, prompts) or its URI or URI template (resources, templates).
    fn shows(&self, kind: Kind, upstream: &str, name: &str) -> bool;
}

/// One kind of items of one upstream, as clients see them.
#[derive(Debug, Default)]
struct Items {
    /// Under their exposed names, in the upstream's order.
    items: Vec<Value>,
    /// The routing key of each item: exposed name, URI or template.
    keys: Vec<String>,
    /// The upstream's own name of each tool or prompt (empty for resources and templates,
    /// whose key is their own name).
    originals: Vec<String>,
    /// Content hash of `items`: cursors carry it to detect a changed list.
    generation: u64,
}

impl Items {
    fn original(&self, i: usize) -> &str {
        self.originals.get(i).unwrap_or(&self.keys[i])
    }
}

/// One upstream catalog exposed: built once per catalog and reused by later snapshots.
#[derive(Debug)]
struct Exposed {
    source: Arc<UpstreamCatalog>,
    index: usize,
    prefix: String,
    separator: String,
    max_len: usize,
    stamp: u64,
    kinds: [Arc<Items>; 4],
    /// The parsed form of each resource template (aligned with `kinds[3]`; `None`: unparsable).
    templates: Vec<Option<UriTemplate>>,
}

/// One upstream's visible items, ready to send.
#[derive(Debug)]
struct View {
    upstream: usize,
    name: String,
    exposed: Arc<Exposed>,
    /// Per kind: the exposed items, or those left after collisions withheld some.
    kinds: [Arc<Items>; 4],
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
    pages: Mutex<PageCache>,
}

/// A page of a merged listing.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Value>,
    pub next: Option<ListCursor>,
}

/// A page of a merged listing with its items serialised, shared by every request for the
/// same page of the same snapshot (and the same filter).
#[derive(Debug)]
pub struct SharedPage {
    /// The items as a JSON array.
    pub items: Box<str>,
    /// How many items the array holds.
    pub count: usize,
    pub next: Option<ListCursor>,
}

impl AsRef<str> for SharedPage {
    fn as_ref(&self) -> &str {
        &self.items
    }
}

/// Which page: list, start (view, offset), size, and the caller's filter key.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PageKey {
    slot: usize,
    view: usize,
    offset: usize,
    size: usize,
    filter: Option<Box<[u64]>>,
}

#[derive(Debug, Default)]
struct PageCache {
    pages: HashMap<PageKey, Arc<SharedPage>>,
    bytes: usize,
}

/// The pieces of the views a page is cut from, and where the next page starts.
struct Cut {
    /// (view, first item, end) in listing order.
    runs: Vec<(usize, usize, usize)>,
    next: Option<ListCursor>,
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

/// Who serves a contested key: the winning input's position, or `None` (withheld).
type Contested<'a> = HashMap<(Kind, &'a str), Option<usize>>;

impl Catalog {
    /// Merges upstream catalogs. Exposed names come from [`names::expose`]; a name, URI or
    /// template offered by several upstreams is resolved by the collision policy and always
    /// recorded in [`Catalog::collisions`], never silently shadowed. The exposure of every
    /// input whose catalog `previous` already exposed the same way is reused.
    pub fn build(inputs: &[Input<'_>], naming: &Naming, previous: Option<&Catalog>) -> Catalog {
        let exposed: Vec<Arc<Exposed>> = inputs
            .iter()
            .map(|input| {
                previous
                    .and_then(|p| p.reusable(input, naming))
                    .unwrap_or_else(|| Arc::new(expose(input, naming)))
            })
            .collect();
        let (contested, collisions) = resolve(&exposed, inputs, naming.collisions);
        let mut catalog = Catalog {
            collisions,
            ..Catalog::default()
        };
        for (pos, (input, exposed)) in inputs.iter().zip(&exposed).enumerate() {
            let wins = |kind: Kind, key: &str| {
                contested
                    .get(&(kind, key))
                    .is_none_or(|winner| *winner == Some(pos))
            };
            let kinds = Kind::ALL.map(|kind| {
                let all = &exposed.kinds[slot(kind)];
                if contested.is_empty() || all.keys.iter().all(|k| wins(kind, k)) {
                    return all.clone();
                }
                let mut kept = Items::default();
                for (i, key) in all.keys.iter().enumerate() {
                    if wins(kind, key) {
                        kept.items.push(all.items[i].clone());
                        kept.keys.push(key.clone());
                        if let Some(original) = all.originals.get(i) {
                            kept.originals.push(original.clone());
                        }
                    }
                }
                kept.generation = content_hash(&kept.items);
                Arc::new(kept)
            });
            for kind in Kind::ALL {
                let all = &exposed.kinds[slot(kind)];
                for (i, key) in all.keys.iter().enumerate() {
                    if !wins(kind, key) {
                        continue;
                    }
                    match kind {
                        Kind::ResourceTemplates => {
                            if let Some(template) = &exposed.templates[i] {
                                catalog.templates.push((template.clone(), input.index));
                            }
                        }
                        _ => catalog.index(kind, key, all.original(i), input.index),
                    }
                }
            }
            catalog.views.push(View {
                upstream: input.index,
                name: input.name.to_owned(),
                exposed: exposed.clone(),
                kinds,
            });
        }
        catalog
            .templates
            .sort_by_key(|(t, _)| std::cmp::Reverse(t.specificity()));
        catalog
    }

    /// The exposure of `input` in this snapshot, if it was made from the same catalog in the
    /// same way.
    fn reusable(&self, input: &Input<'_>, naming: &Naming) -> Option<Arc<Exposed>> {
        self.views
            .iter()
            .map(|v| &v.exposed)
            .find(|e| {
                Arc::ptr_eq(&e.source, &input.catalog)
                    && e.index == input.index
                    && e.prefix == input.prefix
                    && e.stamp == input.stamp
                    && e.separator == naming.separator
                    && e.max_len == naming.max_len
            })
            .cloned()
    }

    fn index(&mut self, kind: Kind, key: &str, original: &str, upstream: usize) {
        let route = || Route {
            upstream,
            name: original.to_owned(),
        };
        match kind {
            Kind::Tools => {
                self.tools.insert(key.to_owned(), route());
            }
            Kind::Prompts => {
                self.prompts.insert(key.to_owned(), route());
            }
            Kind::Resources => {
                self.resources.insert(key.to_owned(), upstream);
            }
            Kind::ResourceTemplates => {}
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
        self.views
            .iter()
            .any(|v| !v.kinds[slot(kind)].items.is_empty())
    }

    /// Every visible item of a kind, in listing order.
    pub fn all(&self, kind: Kind) -> impl Iterator<Item = (usize, &Value)> {
        self.views.iter().flat_map(move |v| {
            v.kinds[slot(kind)]
                .items
                .iter()
                .map(move |i| (v.upstream, i))
        })
    }

    /// Whether two snapshots list the same items of a kind, in the same order (what clients
    /// would see change). Upstreams whose items are shared between the snapshots are not
    /// compared item by item.
    pub fn lists_alike(&self, other: &Catalog, kind: Kind) -> bool {
        let k = slot(kind);
        let shared = self.views.len() == other.views.len()
            && self
                .views
                .iter()
                .zip(&other.views)
                .all(|(a, b)| Arc::ptr_eq(&a.kinds[k], &b.kinds[k]));
        shared
            || self
                .all(kind)
                .map(|(_, v)| v)
                .eq(other.all(kind).map(|(_, v)| v))
    }

    /// Where a page starting at `from` (or at the beginning) ends, and the pieces it has.
    fn cut(&self, kind: Kind, from: Option<&ListCursor>, size: usize) -> Result<Cut, PageError> {
        let k = slot(kind);
        let (mut view, mut offset) = match from {
            None => (0, 0),
            Some(c) => {
                let pos = self.views.iter().position(|v| v.name == c.upstream);
                match pos {
                    Some(p)
                        if self.views[p].kinds[k].generation == c.generation
                            && c.offset <= self.views[p].kinds[k].items.len() =>
                    {
                        (p, c.offset)
                    }
                    _ => return Err(PageError::Stale(c.upstream.clone())),
                }
            }
        };
        let mut runs = Vec::new();
        let mut taken = 0;
        while view < self.views.len() && taken < size {
            let len = self.views[view].kinds[k].items.len();
            let take = (len - offset).min(size - taken);
            if take > 0 {
                runs.push((view, offset, offset + take));
            }
            taken += take;
            offset += take;
            if offset >= len {
                view += 1;
                offset = 0;
            }
        }
        // Skip exhausted or empty views so the last page has no cursor.
        while view < self.views.len() && offset >= self.views[view].kinds[k].items.len() {
            view += 1;
            offset = 0;
        }
        let next = (view < self.views.len()).then(|| ListCursor {
            kind: list_kind(kind),
            upstream: self.views[view].name.clone(),
            offset,
            generation: self.views[view].kinds[k].generation,
        });
        Ok(Cut { runs, next })
    }

    /// The items of a cut page that `filter` shows, in order.
    fn visible<'c>(
        &'c self,
        kind: Kind,
        cut: &'c Cut,
        filter: Option<&'c dyn ItemFilter>,
    ) -> impl Iterator<Item = &'c Value> + 'c {
        let k = slot(kind);
        cut.runs.iter().flat_map(move |&(view, start, end)| {
            let v = &self.views[view];
            let items = &v.kinds[k];
            (start..end)
                .filter(move |&i| filter.is_none_or(|f| f.shows(kind, &v.name, items.original(i))))
                .map(move |i| &items.items[i])
        })
    }

    /// One page of a merged listing, starting where `from` says (or at the beginning): up to
    /// `size` items, of which those `filter` shows.
    pub fn page(
        &self,
        kind: Kind,
        from: Option<&ListCursor>,
        size: usize,
        filter: Option<&dyn ItemFilter>,
    ) -> Result<Page, PageError> {
        let cut = self.cut(kind, from, size)?;
        let items = self.visible(kind, &cut, filter).cloned().collect();
        Ok(Page {
            items,
            next: cut.next,
        })
    }

    /// [`Catalog::page`] with the items serialised, from the snapshot's page cache: the
    /// first request for a page (list, start, size, filter key) cuts and serialises it, the
    /// next ones share it.
    pub fn shared_page(
        &self,
        kind: Kind,
        from: Option<&ListCursor>,
        size: usize,
        filter: Option<&dyn ItemFilter>,
    ) -> Result<Arc<SharedPage>, PageError> {
        let cut = self.cut(kind, from, size)?;
        let (view, offset) = cut
            .runs
            .first()
            .map_or((self.views.len(), 0), |&(v, start, _)| (v, start));
        let key = PageKey {
            slot: slot(kind),
            view,
            offset,
            size,
            filter: filter.map(|f| f.key().into()),
        };
        if let Some(page) = self.cache().pages.get(&key) {
            return Ok(page.clone());
        }
        let mut json = Vec::with_capacity(64);
        json.push(b'[');
        let mut count = 0;
        for item in self.visible(kind, &cut, filter) {
            if count > 0 {
                json.push(b',');
            }
            // Writing a `Value` into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut json, item);
            count += 1;
        }
        json.push(b']');
        let items = String::from_utf8(json)
            .expect("serde_json writes UTF-8")
            .into_boxed_str();
        let page = Arc::new(SharedPage {
            items,
            count,
            next: cut.next,
        });
        let mut cache = self.cache();
        let bytes = page.items.len();
        if cache.pages.len() < PAGE_CACHE_ENTRIES && cache.bytes + bytes <= PAGE_CACHE_BYTES {
            cache.bytes += bytes;
            cache.pages.insert(key, page.clone());
        }
        Ok(page)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, PageCache> {
        self.pages.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Exposes one upstream's catalog: items renamed, keys and original names recorded, each
/// kind hashed, templates parsed.
fn expose(input: &Input<'_>, naming: &Naming) -> Exposed {
    let kinds = Kind::ALL.map(|kind| {
        let mut out = Items::default();
        for item in input.catalog.items(kind) {
            let Some((key, mut exposed)) = expose_item(item, kind, input.prefix, naming) else {
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
            if matches!(kind, Kind::Tools | Kind::Prompts) {
                let original = item.get(kind.key()).and_then(Value::as_str);
                out.originals.push(original.unwrap_or_default().to_owned());
            }
            out.keys.push(key);
            out.items.push(exposed);
        }
        out.generation = content_hash(&out.items);
        Arc::new(out)
    });
    let templates = kinds[slot(Kind::ResourceTemplates)]
        .keys
        .iter()
        .map(|key| match UriTemplate::parse(key) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(template = %key, error = %e, "Ignored an unparsable resource template");
                None
            }
        })
        .collect();
    Exposed {
        source: input.catalog.clone(),
        index: input.index,
        prefix: input.prefix.to_owned(),
        separator: naming.separator.clone(),
        max_len: naming.max_len,
        stamp: input.stamp,
        kinds,
        templates,
    }
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

/// The keys more than one upstream offers, with who serves each, and the collisions to report.
fn resolve<'e>(
    exposed: &'e [Arc<Exposed>],
    inputs: &[Input<'_>],
    policy: CollisionPolicy,
) -> (Contested<'e>, Vec<Collision>) {
    let mut claims: HashMap<(Kind, &str), Vec<usize>> = HashMap::new();
    for (pos, e) in exposed.iter().enumerate() {
        for kind in Kind::ALL {
            for key in &e.kinds[slot(kind)].keys {
                let owners = claims.entry((kind, key.as_str())).or_default();
                // The same upstream listing a key twice is not a collision.
                if owners.last() != Some(&pos) {
                    owners.push(pos);
                }
            }
        }
    }
    let mut contested = HashMap::new();
    let mut collisions = Vec::new();
    for ((kind, key), owners) in claims {
        if owners.len() == 1 {
            continue;
        }
        let winner = match policy {
            CollisionPolicy::FirstWins => Some(owners[0]),
            CollisionPolicy::Error => None,
        };
        contested.insert((kind, key), winner);
        collisions.push(Collision {
            kind,
            name: key.to_owned(),
            upstreams: owners.iter().map(|p| inputs[*p].name.to_owned()).collect(),
            served_by: winner.map(|p| inputs[p].name.to_owned()),
        });
    }
    collisions.sort_by(|a, b| (&a.name, slot(a.kind)).cmp(&(&b.name, slot(b.kind))));
    (contested, collisions)
}

/// A content hash: equal lists give equal generations, on every replica and across restarts,
/// so a cursor stays valid exactly as long as the list it walks is unchanged.
fn content_hash(items: &[Value]) -> u64 {
    /// Feeds serialised JSON straight into the hash, without an intermediate string.
    struct Feed<'a>(&'a mut Sha256);
    impl std::io::Write for Feed<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hasher = Sha256::new();
    for item in items {
        // Hashing cannot fail, and serialising a `Value` neither.
        let _ = serde_json::to_writer(Feed(&mut hasher), item);
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests;
