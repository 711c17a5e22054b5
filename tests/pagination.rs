//! Paging merged listings: upstreams that paginate themselves, a gateway page size that cuts
//! across upstream boundaries, sealed cursors that cannot be tampered with, reused on another
//! listing, or followed after the list they point into changed.

mod support;

use std::collections::HashSet;

use serde_json::{Value, json};
use support::{
    Gateway, HttpFixture, Mcp, WAIT, fixture_tools, http_upstream, stdio_fixture, wait_for,
};

const PAGE: usize = 7;

/// alpha: 23 tools in pages of 4; beta: 11 in pages of 3; gamma (HTTP): 5 in pages of 2.
fn config(gamma: &HttpFixture, extra: &str) -> String {
    format!(
        "page_size: {PAGE}\n{extra}upstreams:\n{}{}{}",
        stdio_fixture("alpha", &["--tools", "23", "--page-size", "4"]),
        stdio_fixture("beta", &["--tools", "11", "--page-size", "3"]),
        http_upstream("gamma", &gamma.url)
    )
}

fn expected_tools() -> Vec<String> {
    let mut all = Vec::new();
    for (name, n) in [("alpha", 23), ("beta", 11), ("gamma", 5)] {
        all.extend(fixture_tools(n).iter().map(|t| format!("{name}__{t}")));
    }
    all
}

fn expected_resources() -> Vec<String> {
    let mut all = Vec::new();
    for (name, n) in [("alpha", 23), ("beta", 11), ("gamma", 5)] {
        all.push(format!("fixture://{name}/info"));
        all.extend((0..n).map(|i| format!("fixture://{name}/item/{i}")));
    }
    all
}

async fn start(gamma: &HttpFixture, extra: &str) -> (Gateway, Mcp) {
    let gw = Gateway::start(&config(gamma, extra));
    gw.wait_ready().await;
    let c = Mcp::connect(&gw.url).await;
    let total = expected_tools().len();
    wait_for(WAIT, "all upstream catalogs merged", || async {
        // Upstreams connecting mid-walk make a cursor stale: then try again.
        let tools = c.try_list_all("tools/list", "tools").await.ok()?;
        (tools.len() == total).then_some(())
    })
    .await;
    (gw, c)
}

/// Walks a listing page by page, checking every page but the last is full.
async fn walk(c: &Mcp, method: &str, field: &str, key: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let params = cursor
            .as_ref()
            .map_or_else(|| json!({}), |c| json!({"cursor": c}));
        let page = c.ok(method, params).await;
        let items = page[field]
            .as_array()
            .unwrap_or_else(|| panic!("{method}: {page}"));
        keys.extend(
            items
                .iter()
                .map(|i| i[key].as_str().expect("key").to_owned()),
        );
        pages += 1;
        assert!(pages < 100, "{method}: runaway paging");
        match page.get("nextCursor") {
            Some(Value::String(next)) => {
                assert_eq!(
                    items.len(),
                    PAGE,
                    "{method}: a page before the last is full"
                );
                cursor = Some(next.clone());
            }
            None => {
                assert!(
                    !items.is_empty() && items.len() <= PAGE,
                    "{method}: last page has 1..={PAGE} items"
                );
                return keys;
            }
            Some(other) => panic!("{method}: nextCursor must be a string, got {other}"),
        }
    }
}

fn assert_unique(keys: &[String]) {
    let set: HashSet<&String> = keys.iter().collect();
    assert_eq!(set.len(), keys.len(), "an item appears twice: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_next_cursor_yields_every_item_once_in_a_stable_order() {
    let gamma = HttpFixture::start("gamma", &["--tools", "5", "--page-size", "2"]);
    let (_gw, c) = start(&gamma, "").await;

    let first = walk(&c, "tools/list", "tools", "name").await;
    let second = walk(&c, "tools/list", "tools", "name").await;
    assert_unique(&first);
    assert_eq!(
        first,
        expected_tools(),
        "alpha's tools, then beta's, then gamma's, each in upstream order"
    );
    assert_eq!(first, second, "two walks agree");

    let resources = walk(&c, "resources/list", "resources", "uri").await;
    assert_unique(&resources);
    assert_eq!(resources, expected_resources());
    assert_eq!(
        resources,
        walk(&c, "resources/list", "resources", "uri").await
    );

    let prompts = c.list_keys("prompts/list", "prompts", "name").await;
    assert_eq!(
        prompts,
        [
            "alpha__greet",
            "alpha__about",
            "beta__greet",
            "beta__about",
            "gamma__greet",
            "gamma__about"
        ]
    );
    let templates = c
        .list_keys(
            "resources/templates/list",
            "resourceTemplates",
            "uriTemplate",
        )
        .await;
    assert_eq!(
        templates,
        [
            "fixture://alpha/tpl/{id}",
            "fixture://beta/tpl/{id}",
            "fixture://gamma/tpl/{id}"
        ]
    );

    // A second client walks the same listing.
    let other = Mcp::connect(&c.url).await;
    assert_eq!(walk(&other, "tools/list", "tools", "name").await, first);
}

fn flip_one_char(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_foreign_and_malformed_cursors_are_invalid_params() {
    let gamma = HttpFixture::start("gamma", &["--tools", "5", "--page-size", "2"]);
    let (_gw, c) = start(&gamma, "").await;

    let page = c.ok("tools/list", json!({})).await;
    let cursor = page["nextCursor"]
        .as_str()
        .expect("first page has a cursor")
        .to_owned();
    // The genuine cursor works.
    let second = c.ok("tools/list", json!({"cursor": cursor})).await;
    assert_eq!(second["tools"][0]["name"], "alpha__tool_7");

    let tampered = flip_one_char(&cursor);
    assert_ne!(tampered, cursor);
    let e = c.err("tools/list", json!({"cursor": tampered})).await;
    assert_eq!(e["code"], json!(-32602), "tampered: {e}");

    let e = c.err("prompts/list", json!({"cursor": cursor})).await;
    assert_eq!(
        e["code"],
        json!(-32602),
        "a tools cursor on prompts/list: {e}"
    );
    let e = c.err("resources/list", json!({"cursor": cursor})).await;
    assert_eq!(
        e["code"],
        json!(-32602),
        "a tools cursor on resources/list: {e}"
    );

    let res_cursor = c.ok("resources/list", json!({})).await["nextCursor"]
        .as_str()
        .expect("resources cursor")
        .to_owned();
    let e = c.err("tools/list", json!({"cursor": res_cursor})).await;
    assert_eq!(
        e["code"],
        json!(-32602),
        "a resources cursor on tools/list: {e}"
    );

    for bad in [
        json!("not-a-cursor"),
        json!(""),
        json!(5),
        json!({"offset": 7}),
    ] {
        let e = c.err("tools/list", json!({"cursor": bad})).await;
        assert_eq!(e["code"], json!(-32602), "cursor {bad}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_into_an_upstream_whose_list_changed_is_stale() {
    let gamma = HttpFixture::start("gamma", &["--tools", "5", "--page-size", "2"]);
    let (_gw, c) = start(&gamma, "").await;

    // Page 1 ends inside alpha (33 tools); pages 1-5 end inside beta (35 = 33 + 2).
    let page1 = c.ok("tools/list", json!({})).await;
    let into_alpha = page1["nextCursor"].as_str().expect("cursor").to_owned();
    let mut into_beta = into_alpha.clone();
    for _ in 0..4 {
        let page = c.ok("tools/list", json!({"cursor": into_beta})).await;
        into_beta = page["nextCursor"].as_str().expect("cursor").to_owned();
    }

    assert_eq!(
        c.call_text("alpha__add_tool", json!({"name": "fresh"}))
            .await,
        "added"
    );
    wait_for(WAIT, "alpha__fresh to be listed", || async {
        // The walk may straddle the change and meet a stale cursor: then try again.
        let tools = c.try_list_all("tools/list", "tools").await.ok()?;
        tools
            .iter()
            .any(|t| t["name"] == "alpha__fresh")
            .then_some(())
    })
    .await;

    let e = c.err("tools/list", json!({"cursor": into_alpha})).await;
    assert_eq!(
        e["code"],
        json!(-32602),
        "a cursor into alpha is stale after alpha changed: {e}"
    );
    assert!(
        e["message"].as_str().unwrap_or_default().contains("alpha"),
        "the message names the upstream: {e}"
    );

    // A cursor into beta, whose list did not change, still continues the listing.
    let page = c.ok("tools/list", json!({"cursor": into_beta})).await;
    let names: Vec<&str> = page["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    // Five pages in, minus alpha's tools (as they were when the cursor was made).
    let offset = 5 * PAGE - fixture_tools(23).len();
    let expected: Vec<String> = fixture_tools(11)[offset..offset + PAGE]
        .iter()
        .map(|t| format!("beta__{t}"))
        .collect();
    assert_eq!(names, expected);

    // Listing again from the start sees the new tool, right after alpha's others.
    let all = c.list_keys("tools/list", "tools", "name").await;
    assert_unique(&all);
    let fresh = all
        .iter()
        .position(|n| n == "alpha__fresh")
        .expect("fresh listed");
    let last_of_alpha = fixture_tools(23).last().cloned().expect("tools");
    assert_eq!(all[fresh - 1], format!("alpha__{last_of_alpha}"));
    assert_eq!(all[fresh + 1], "beta__tool_0");
    assert_eq!(all.len(), expected_tools().len() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_seal_key_continue_each_others_cursors() {
    let key = "seal_key: \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n";
    let gamma = HttpFixture::start("gamma", &["--tools", "5", "--page-size", "2"]);
    let (_one, a) = start(&gamma, key).await;
    let (_two, b) = start(&gamma, key).await;
    let (_other, stranger) = start(&gamma, "").await;

    let page1 = a.ok("tools/list", json!({})).await;
    let cursor = page1["nextCursor"].as_str().expect("cursor").to_owned();
    let from_a = a.ok("tools/list", json!({"cursor": cursor})).await;
    let from_b = b.ok("tools/list", json!({"cursor": cursor})).await;
    assert_eq!(
        from_a["tools"], from_b["tools"],
        "the same page from either replica"
    );
    assert_eq!(from_b["tools"][0]["name"], "alpha__tool_7");

    let e = stranger.err("tools/list", json!({"cursor": cursor})).await;
    assert_eq!(
        e["code"],
        json!(-32602),
        "a gateway with another key refuses it: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_overrides_the_files_page_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.yaml");
    let yaml = format!(
        "page_size: 50\nupstreams:\n{}",
        stdio_fixture("alpha", &["--tools", "23", "--page-size", "4"])
    );
    std::fs::write(&config, yaml).expect("config");
    let gw = Gateway::start_with(dir, &config, &[("MANIFOLD_PAGE_SIZE", "4")]);
    gw.wait_ready().await;
    let c = Mcp::connect(&gw.url).await;
    let all = wait_for(WAIT, "alpha merged", || async {
        let tools = c.try_list_all("tools/list", "tools").await.ok()?;
        (tools.len() == fixture_tools(23).len()).then_some(tools)
    })
    .await;
    let first = c.ok("tools/list", json!({})).await;
    assert_eq!(
        first["tools"].as_array().map(Vec::len),
        Some(4),
        "MANIFOLD_PAGE_SIZE wins over the file"
    );
    assert_eq!(first["tools"][0], all[0]);
}
