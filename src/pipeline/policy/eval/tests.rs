//! Unit tests of `eval.rs`.

use super::*;
use crate::config::auth::AuthMethod;
use serde_json::json;

fn policy(yaml: &str) -> PolicyConfig {
    let upstreams = "upstreams: {github: {command: x}, files: {command: y}}\n";
    crate::config::from_yaml_str(&format!("{upstreams}policy:\n{yaml}"), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"))
        .policy
}

fn principal(subject: &str, scopes: &[&str], claims: serde_json::Value) -> Principal {
    Principal {
        subject: subject.to_owned(),
        method: AuthMethod::Jwt,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        claims: claims.as_object().cloned().unwrap_or_default(),
    }
}

const RULES: &str = r#"
  rules:
    - who: {claims: {groups: admins}}
      effect: allow
      tools: ["*"]
    - who: {subjects: ["svc-*"], scopes: [write]}
      effect: allow
      upstreams: [github]
      tools: ["create_*"]
    - effect: deny
      upstreams: [github]
      tools: ["delete_*", "create_*"]
      prompts: ["secret"]
    - effect: deny
      resources: ["file:///secret/*"]
"#;

#[test]
fn first_rule_about_the_principal_and_the_item_decides() {
    let p = policy(RULES);
    let nobody = principal("alice", &[], json!({}));
    let d = p.decider(&nobody);
    assert!(!d.allows(ItemKind::Tool, "github", "delete_repo"));
    assert!(!d.allows(ItemKind::Tool, "github", "create_issue"));
    assert!(d.allows(ItemKind::Tool, "github", "list_repos"));
    // Limited to github: the same name elsewhere is not covered.
    assert!(d.allows(ItemKind::Tool, "files", "delete_file"));
    assert!(!d.allows(ItemKind::Prompt, "github", "secret"));
    assert!(d.allows(ItemKind::Prompt, "files", "secret"));
    assert!(!d.allows(ItemKind::Resource, "files", "file:///secret/a/b.txt"));
    assert!(d.allows(ItemKind::Resource, "files", "file:///public/a.txt"));

    let admin = principal("bob", &[], json!({"groups": ["eng", "admins"]}));
    assert!(
        p.decider(&admin)
            .allows(ItemKind::Tool, "github", "delete_repo")
    );
    // The admin rule names tools only: resources still fall to the deny rule.
    assert!(
        !p.decider(&admin)
            .allows(ItemKind::Resource, "files", "file:///secret/x")
    );
}

#[test]
fn every_condition_of_who_must_hold() {
    let p = policy(RULES);
    let svc = principal("svc-ci", &["write"], json!({}));
    assert!(
        p.decider(&svc)
            .allows(ItemKind::Tool, "github", "create_issue")
    );
    assert!(
        !p.decider(&svc)
            .allows(ItemKind::Tool, "github", "delete_repo")
    );
    let no_scope = principal("svc-ci", &["read"], json!({}));
    assert!(
        !p.decider(&no_scope)
            .allows(ItemKind::Tool, "github", "create_issue")
    );
    let wrong_subject = principal("alice", &["write"], json!({}));
    assert!(
        !p.decider(&wrong_subject)
            .allows(ItemKind::Tool, "github", "create_issue")
    );
}

#[test]
fn default_deny_allows_only_what_a_rule_allows() {
    let p = policy(
        "  default: deny\n  rules:\n    - who: {subjects: [local]}\n      effect: allow\n      tools: [\"*\"]\n      resources: [\"fixture://*\"]\n",
    );
    let local = p.decider(&Principal::local());
    assert!(local.allows(ItemKind::Tool, "files", "anything"));
    assert!(local.allows(ItemKind::Resource, "files", "fixture://a/tpl/{id}"));
    assert!(!local.allows(ItemKind::Prompt, "files", "greet"));
    assert!(!local.allows_all(ItemKind::Tool));
    let anon = p.decider(&Principal::anonymous());
    assert!(!anon.allows(ItemKind::Tool, "files", "anything"));
}

#[test]
fn who_auth_tells_principals_of_the_same_subject_apart() {
    let p = policy(
        "  default: deny\n  rules:\n    - who: {subjects: [ci], auth: [api_key]}\n      effect: allow\n      tools: [\"*\"]\n    - who: {auth: [local]}\n      effect: allow\n      prompts: [\"*\"]\n",
    );
    let key = Principal {
        method: AuthMethod::ApiKey,
        ..principal("ci", &[], json!({}))
    };
    assert!(p.decider(&key).allows(ItemKind::Tool, "files", "t"));
    let jwt = principal("ci", &[], json!({}));
    assert!(!p.decider(&jwt).allows(ItemKind::Tool, "files", "t"));
    assert!(
        p.decider(&Principal::local())
            .allows(ItemKind::Prompt, "files", "p")
    );
    let named_local = principal("local", &[], json!({}));
    assert!(
        !p.decider(&named_local)
            .allows(ItemKind::Prompt, "files", "p")
    );
}

#[test]
fn a_resource_is_checked_as_sent_and_in_its_normal_form() {
    let p = policy(RULES);
    let d = p.decider(&principal("alice", &[], json!({})));
    for uri in [
        "file:///secret/key",
        "file:///%73ecret/key",
        "file:///public/../secret/key",
        "FILE:///secret/key",
    ] {
        assert!(!d.allows_uri("files", uri), "{uri}");
    }
    assert!(d.allows_uri("files", "file:///public/key"));
    // Either form denied is enough: the text as sent is under file:///secret/.
    assert!(!d.allows_uri("files", "file:///secret/../public/key"));

    // An allow-list: both forms must be on it.
    let p = policy(
        "  default: deny\n  rules:\n    - effect: allow\n      resources: [\"file:///public/*\"]\n",
    );
    let d = p.decider(&Principal::anonymous());
    assert!(d.allows_uri("files", "file:///public/a"));
    assert!(d.allows_uri("files", "file:///public/%61"));
    assert!(!d.allows_uri("files", "file:///public/../secret/key"));
    assert!(!d.allows_uri("files", "file:///public/%2e%2e/secret/key"));
}

#[test]
fn listings_are_untouched_when_no_rule_concerns_the_kind() {
    let p = policy(RULES);
    let d = p.decider(&principal("alice", &[], json!({})));
    assert!(!d.allows_all(ItemKind::Tool));
    let p = policy("  rules:\n    - {effect: deny, tools: [x]}\n");
    let d = p.decider(&Principal::anonymous());
    assert!(d.allows_all(ItemKind::Prompt) && d.allows_all(ItemKind::Resource));
    assert!(!d.allows_all(ItemKind::Tool));
}

#[test]
fn claim_values_may_be_numbers_booleans_or_lists() {
    let p = policy(
        "  rules:\n    - who: {claims: {tier: 3, beta: true, team: [a, b]}}\n      effect: deny\n      tools: [\"*\"]\n",
    );
    let yes = principal("x", &[], json!({"tier": 3, "beta": true, "team": "b"}));
    let no = principal("x", &[], json!({"tier": 3, "beta": false, "team": "b"}));
    assert!(!p.decider(&yes).allows(ItemKind::Tool, "files", "t"));
    assert!(p.decider(&no).allows(ItemKind::Tool, "files", "t"));
}
