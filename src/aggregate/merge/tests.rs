use super::*;
use crate::aggregate::catalog::Listing;
use crate::protocol::envelope::CacheHint;
use serde_json::json;

fn naming(collisions: CollisionPolicy) -> Naming {
    Naming {
        separator: "__".into(),
        max_len: 64,
        collisions,
    }
}

/// An upstream catalog with `tools` and one template named for them (`x://<tools>/{id}`).
fn upstream(tools: &[&str]) -> Arc<UpstreamCatalog> {
    upstream_with(tools, &tools.join("-"))
}

fn upstream_with(tools: &[&str], template: &str) -> Arc<UpstreamCatalog> {
    let mut catalog = UpstreamCatalog::empty();
    let items = tools
        .iter()
        .map(|t| json!({ "name": t, "inputSchema": { "type": "object" } }))
        .collect();
    catalog.set(
        Kind::Tools,
        Listing {
            items,
            hint: CacheHint::NONE,
        },
    );
    let templates = vec![json!({ "uriTemplate": format!("x://{template}/{{id}}"), "name": "t" })];
    catalog.set(
        Kind::ResourceTemplates,
        Listing {
            items: templates,
            hint: CacheHint::NONE,
        },
    );
    Arc::new(catalog)
}

fn inputs<'a>(catalogs: &[(&'a str, Arc<UpstreamCatalog>)]) -> Vec<Input<'a>> {
    catalogs
        .iter()
        .enumerate()
        .map(|(index, (name, catalog))| Input {
            index,
            name,
            prefix: name,
            catalog: catalog.clone(),
            task_support: None,
            stamp: 0,
        })
        .collect()
}

fn names(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["name"].as_str().unwrap()).collect()
}

/// Shows every tool but those whose own name is `hidden`.
struct Hide(&'static str, [u64; 1]);

impl ItemFilter for Hide {
    fn key(&self) -> &[u64] {
        &self.1
    }
    fn shows(&self, _kind: Kind, _upstream: &str, name: &str) -> bool {
        name != self.0
    }
}

#[test]
fn a_rebuild_reuses_the_exposure_of_unchanged_upstreams() {
    let naming = naming(CollisionPolicy::Error);
    let (a, b) = (upstream(&["x", "y"]), upstream(&["z"]));
    let first = Catalog::build(
        &inputs(&[("a", a.clone()), ("b", b.clone())]),
        &naming,
        None,
    );
    let b2 = upstream(&["z", "w"]);
    let second = Catalog::build(&inputs(&[("a", a), ("b", b2)]), &naming, Some(&first));
    assert!(Arc::ptr_eq(
        &first.views[0].exposed,
        &second.views[0].exposed
    ));
    assert!(!Arc::ptr_eq(
        &first.views[1].exposed,
        &second.views[1].exposed
    ));
    assert_eq!(
        names(&second.page(Kind::Tools, None, 10, None).unwrap().items),
        ["a__x", "a__y", "b__z", "b__w"]
    );
    assert_eq!(second.tool("b__w").map(|r| r.name.as_str()), Some("w"));
    assert_eq!(second.template_owner("x://z/{id}"), None);
    assert_eq!(second.template_owner("x://z-w/{id}"), Some(1));
    assert_eq!(second.resource_owner("x://x-y/7"), Some(0));
    assert!(first.lists_alike(&second, Kind::Prompts));
    assert!(!first.lists_alike(&second, Kind::Tools));
    // Another stamp (the task support it lists changed) is exposed anew.
    let mut again = inputs(&[("a", first.views[0].exposed.source.clone())]);
    again[0].stamp = 1;
    let third = Catalog::build(&again, &naming, Some(&second));
    assert!(!Arc::ptr_eq(
        &second.views[0].exposed,
        &third.views[0].exposed
    ));
}

#[test]
fn equal_lists_are_alike_without_shared_items() {
    let naming = naming(CollisionPolicy::Error);
    let one = Catalog::build(&inputs(&[("a", upstream(&["x"]))]), &naming, None);
    let two = Catalog::build(&inputs(&[("a", upstream(&["x"]))]), &naming, None);
    assert!(one.lists_alike(&two, Kind::Tools));
    assert_eq!(
        one.views[0].kinds[0].generation,
        two.views[0].kinds[0].generation
    );
}

#[test]
fn collisions_withhold_or_pick_the_first_and_keep_the_others_shared() {
    let (a, b, c) = (
        upstream_with(&["x"], "a"),
        upstream_with(&["x"], "b"),
        upstream(&["y"]),
    );
    let list = [("a", a), ("b", b), ("c", c)];
    let inputs: Vec<Input<'_>> = list
        .iter()
        .enumerate()
        .map(|(index, (name, catalog))| Input {
            index,
            name,
            prefix: "p",
            catalog: catalog.clone(),
            task_support: None,
            stamp: 0,
        })
        .collect();
    let error = Catalog::build(&inputs, &naming(CollisionPolicy::Error), None);
    assert_eq!(
        names(&error.page(Kind::Tools, None, 10, None).unwrap().items),
        ["p__y"]
    );
    assert_eq!(error.collisions.len(), 1);
    assert_eq!(error.collisions[0].upstreams, ["a", "b"]);
    assert_eq!(error.collisions[0].served_by, None);
    assert!(Arc::ptr_eq(
        &error.views[2].kinds[0],
        &error.views[2].exposed.kinds[0]
    ));
    let first = Catalog::build(&inputs, &naming(CollisionPolicy::FirstWins), None);
    assert_eq!(
        names(&first.page(Kind::Tools, None, 10, None).unwrap().items),
        ["p__x", "p__y"]
    );
    assert_eq!(first.tool("p__x").map(|r| r.upstream), Some(0));
    assert_eq!(first.collisions[0].served_by.as_deref(), Some("a"));
}

#[test]
fn shared_pages_match_the_pages_they_cache_and_are_shared() {
    let naming = naming(CollisionPolicy::Error);
    let catalog = Catalog::build(
        &inputs(&[("a", upstream(&["x", "y", "z"])), ("b", upstream(&["w"]))]),
        &naming,
        None,
    );
    let mut from = None;
    loop {
        let page = catalog.page(Kind::Tools, from.as_ref(), 2, None).unwrap();
        let shared = catalog
            .shared_page(Kind::Tools, from.as_ref(), 2, None)
            .unwrap();
        assert_eq!(&*shared.items, Value::Array(page.items.clone()).to_string());
        assert_eq!(shared.count, page.items.len());
        assert_eq!(shared.next, page.next);
        let again = catalog
            .shared_page(Kind::Tools, from.as_ref(), 2, None)
            .unwrap();
        assert!(Arc::ptr_eq(&shared, &again));
        match page.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    // A filter gets pages of its own, cut at the same places (so shorter), cursors kept.
    let hide = Hide("y", [7]);
    let filtered = catalog
        .shared_page(Kind::Tools, None, 2, Some(&hide))
        .unwrap();
    assert_eq!(filtered.count, 1);
    let plain = catalog.shared_page(Kind::Tools, None, 2, None).unwrap();
    assert_eq!(filtered.next, plain.next);
    assert_eq!(plain.count, 2);
    let page = catalog.page(Kind::Tools, None, 2, Some(&hide)).unwrap();
    assert_eq!(names(&page.items), ["a__x"]);
}

#[test]
fn a_cursor_from_a_changed_list_is_stale() {
    let naming = naming(CollisionPolicy::Error);
    let before = Catalog::build(&inputs(&[("a", upstream(&["x", "y"]))]), &naming, None);
    let next = before
        .page(Kind::Tools, None, 1, None)
        .unwrap()
        .next
        .unwrap();
    let after = Catalog::build(
        &inputs(&[("a", upstream(&["x", "v"]))]),
        &naming,
        Some(&before),
    );
    assert_eq!(
        after
            .shared_page(Kind::Tools, Some(&next), 1, None)
            .unwrap_err(),
        PageError::Stale("a".into())
    );
    assert!(
        before
            .shared_page(Kind::Tools, Some(&next), 1, None)
            .is_ok()
    );
}

#[test]
fn generations_hash_the_items_as_serialised_text() {
    let items = vec![json!({ "name": "a", "n": 1.5 }), json!({ "name": "b" })];
    let mut hasher = Sha256::new();
    for item in &items {
        hasher.update(item.to_string().as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    assert_eq!(
        content_hash(&items),
        u64::from_be_bytes(digest[..8].try_into().unwrap())
    );
}
