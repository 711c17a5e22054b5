//! Unit tests of `rate_limit`.

use super::*;

fn limits(yaml: &str) -> (RateLimits<FakeRelativeClock>, FakeRelativeClock) {
    let yaml = format!("upstreams: {{github: {{command: x}}, files: {{command: y}}}}\n{yaml}");
    let config = crate::config::from_yaml_str(&yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let clock = FakeRelativeClock::default();
    (RateLimits::new(&config, clock.clone()), clock)
}

fn jwt(subject: &str) -> (AuthMethod, &str) {
    (AuthMethod::Jwt, subject)
}

fn call<'a>(name: &'a str, tool: Option<&'a str>) -> Routed<'a> {
    Routed {
        upstream_name: name,
        tool,
        original: None,
    }
}

#[test]
fn a_principal_bucket_is_reached_and_recovers_per_subject() {
    let (limits, clock) = limits("rate_limits:\n  per_principal: {rate: 1/m, burst: 2}\n");
    assert!(limits.check(jwt("alice"), None).is_ok());
    assert!(limits.check(jwt("alice"), None).is_ok());
    let refusal = limits.check(jwt("alice"), None).unwrap_err();
    assert_eq!(
        (refusal.limit, refusal.label),
        ("per_principal", "principal")
    );
    assert_eq!(refusal.wait, Duration::from_secs(60));
    // Someone else has their own bucket.
    assert!(limits.check(jwt("bob"), None).is_ok());
    clock.advance(Duration::from_secs(59));
    assert_eq!(
        limits.check(jwt("alice"), None).unwrap_err().wait,
        Duration::from_secs(1)
    );
    clock.advance(Duration::from_secs(1));
    assert!(limits.check(jwt("alice"), None).is_ok());
    assert!(limits.check(jwt("alice"), None).is_err());
}

#[test]
fn principals_of_the_same_subject_but_another_method_have_their_own_buckets() {
    let (limits, _clock) = limits("rate_limits:\n  per_principal: {rate: 1/h, burst: 1}\n");
    assert!(limits.check((AuthMethod::ApiKey, "ci"), None).is_ok());
    assert!(limits.check((AuthMethod::ApiKey, "ci"), None).is_err());
    // A JWT user whose subject is `ci` is someone else: not refused, and not draining.
    assert!(limits.check((AuthMethod::Jwt, "ci"), None).is_ok());
    assert!(limits.check((AuthMethod::Local, "ci"), None).is_ok());
}

#[test]
fn tool_and_upstream_buckets_count_only_routed_calls() {
    // Upstreams are sorted by name: files is 0, github 1.
    let (limits, clock) = limits(
        "rate_limits:\n  per_upstream: {github: {rate: 1/s, burst: 3}}\n  per_tool: {\"github__create_*\": {rate: 1/h, burst: 1}}\n",
    );
    // Unrouted requests (listings, initialize) never touch them.
    for _ in 0..10 {
        assert!(limits.check(jwt("a"), None).is_ok());
    }
    let create = call("github", Some("github__create_issue"));
    let other_create = call("github", Some("github__create_repo"));
    let list = call("github", Some("github__list"));
    assert!(limits.check(jwt("a"), Some(&create)).is_ok());
    let refusal = limits.check(jwt("a"), Some(&create)).unwrap_err();
    assert_eq!(
        (refusal.limit, refusal.scope.as_deref()),
        ("per_tool", Some("github__create_issue"))
    );
    // One bucket per tool, not per glob.
    assert!(limits.check(jwt("a"), Some(&other_create)).is_ok());
    // The tool's refusal came first and spent no upstream token: this is the third.
    assert!(limits.check(jwt("a"), Some(&list)).is_ok());
    let refusal = limits.check(jwt("a"), Some(&list)).unwrap_err();
    assert_eq!((refusal.limit, refusal.label), ("per_upstream", "upstream"));
    // Another upstream has no bucket.
    assert!(
        limits
            .check(jwt("a"), Some(&call("files", Some("files__x"))))
            .is_ok()
    );
    clock.advance(Duration::from_secs(1));
    assert!(limits.check(jwt("a"), Some(&list)).is_ok());
}

#[test]
fn a_refusal_by_the_principal_spends_nothing_of_the_global_bucket() {
    let (limits, _clock) = limits(
        "rate_limits:\n  global: {rate: 1/h, burst: 2}\n  per_principal: {rate: 1/h, burst: 1}\n",
    );
    assert!(limits.check(jwt("a"), None).is_ok());
    for _ in 0..5 {
        assert_eq!(
            limits.check(jwt("a"), None).unwrap_err().limit,
            "per_principal"
        );
    }
    assert!(limits.check(jwt("b"), None).is_ok());
    assert_eq!(limits.check(jwt("c"), None).unwrap_err().limit, "global");
}

#[test]
fn the_error_carries_whole_seconds_rounded_up_and_milliseconds() {
    let refusal = Refusal {
        limit: "global",
        label: "global",
        scope: None,
        wait: Duration::from_millis(1500),
    };
    let e = rate_limited(&refusal);
    assert_eq!(e.code, codes::RATE_LIMITED);
    let data = e.data.unwrap();
    assert_eq!(
        data,
        json!({"limit": "global", "retryAfterSeconds": 2, "retryAfterMs": 1500})
    );
    let tiny = Refusal {
        wait: Duration::from_micros(10),
        ..refusal
    };
    let data = rate_limited(&tiny).data.unwrap();
    assert_eq!(
        (
            data["retryAfterSeconds"].as_u64(),
            data["retryAfterMs"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

#[test]
fn idle_principals_are_pruned() {
    let (limits, clock) = limits("rate_limits:\n  per_principal: {rate: 1/s, burst: 1}\n");
    for i in 0..100 {
        let _ = limits.check(jwt(&format!("subject-{i}")), None);
    }
    let keyed = limits.per_principal.as_ref().unwrap();
    assert_eq!(keyed.len(), 100);
    clock.advance(Duration::from_secs(2));
    for _ in 0..PRUNE_EVERY {
        limits.prune();
    }
    assert_eq!(keyed.len(), 0);
}
