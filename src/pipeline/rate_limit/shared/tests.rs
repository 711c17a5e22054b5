//! Unit tests of the shared buckets, against a real throwaway `redis-server`.

use super::*;
use crate::session::tasks::store::test_redis::RedisServer;

const ALICE: (AuthMethod, &str) = (AuthMethod::Jwt, "alice@example.com");
const BOB: (AuthMethod, &str) = (AuthMethod::Jwt, "bob@example.com");

/// The shared buckets of `yaml` (a `rate_limits` section) in the Redis at `url`, keys under
/// `t:`, with a short `redis.timeout`.
fn shared(url: &str, yaml: &str) -> Shared {
    let yaml = format!(
        "upstreams: {{github: {{command: x}}}}\nredis: {{url: {url:?}, prefix: t, timeout: 300ms}}\n{yaml}"
    );
    let config = crate::config::from_yaml_str(&yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let redis = Redis::new(config.redis.as_ref().expect("redis"));
    Shared::new(&config, redis)
}

fn tool<'a>(name: &'a str) -> Routed<'a> {
    Routed {
        upstream_name: "github",
        tool: Some(name),
        original: None,
    }
}

async fn check(
    s: &Shared,
    who: (AuthMethod, &str),
    routed: Option<&Routed<'_>>,
) -> Result<(), Refusal> {
    match s.check(who, routed, &Metrics::default()).await {
        Ok(()) => Ok(()),
        Err(Denial::Limit(refusal)) => Err(refusal),
        Err(Denial::StoreUnavailable) => panic!("the store is up"),
    }
}

async fn get(s: &Shared, key: &str) -> Option<String> {
    s.redis.run(redis::cmd("GET").arg(key)).await.expect("GET")
}

async fn pttl(s: &Shared, key: &str) -> i64 {
    s.redis
        .run(redis::cmd("PTTL").arg(key))
        .await
        .expect("PTTL")
}

#[tokio::test]
async fn a_bucket_admits_its_burst_then_refuses_with_the_wait() {
    let server = RedisServer::start();
    let s = shared(
        &server.url(),
        "rate_limits: {global: {rate: 1/h, burst: 3}}",
    );
    for _ in 0..3 {
        check(&s, ALICE, None).await.expect("within the burst");
    }
    let refusal = check(&s, BOB, None).await.expect_err("burst spent");
    assert_eq!(
        (refusal.limit, refusal.label, refusal.scope),
        ("global", "global", None)
    );
    // One call comes back per hour.
    assert!(
        refusal.wait > Duration::from_secs(3590) && refusal.wait <= Duration::from_secs(3600),
        "{:?}",
        refusal.wait
    );
    // A second set of buckets on the same Redis (another replica) sees the same count.
    let other = shared(
        &server.url(),
        "rate_limits: {global: {rate: 1/h, burst: 3}}",
    );
    assert!(check(&other, ALICE, None).await.is_err());
}

#[tokio::test]
async fn a_spent_bucket_admits_again_once_the_wait_it_named_has_passed() {
    let server = RedisServer::start();
    let s = shared(
        &server.url(),
        // A token every 500 ms: the test's own pauses on a loaded machine stay far inside it.
        "rate_limits: {per_principal: {rate: 2/s, burst: 2}}",
    );
    check(&s, ALICE, None).await.unwrap();
    check(&s, ALICE, None).await.unwrap();
    let refusal = check(&s, ALICE, None).await.expect_err("burst spent");
    assert_eq!(refusal.limit, "per_principal");
    assert_eq!(refusal.scope.as_deref(), Some(ALICE.1));
    assert!(
        refusal.wait > Duration::ZERO && refusal.wait <= Duration::from_millis(500),
        "{:?}",
        refusal.wait
    );
    // Bob has a bucket of his own.
    check(&s, BOB, None).await.unwrap();
    tokio::time::sleep(refusal.wait + Duration::from_millis(5)).await;
    check(&s, ALICE, None).await.expect("one call refilled");
    assert!(check(&s, ALICE, None).await.is_err(), "only one");
}

#[tokio::test]
async fn a_request_refused_by_one_bucket_spends_nothing_of_the_others() {
    let server = RedisServer::start();
    let s = shared(
        &server.url(),
        "rate_limits:\n  per_principal: {rate: 1/h, burst: 2}\n  per_tool: {\"github__*\": {rate: 1/h, burst: 5}}\n  global: {rate: 1/h, burst: 1}\n",
    );
    let call = tool("github__search");
    check(&s, ALICE, Some(&call)).await.unwrap();
    let alice = s.buckets(ALICE, Some(&call));
    let (principal, tool_key) = (alice[0].key.clone(), alice[1].key.clone());
    let before = (get(&s, &principal).await, get(&s, &tool_key).await);
    assert!(before.0.is_some() && before.1.is_some());
    // Global is spent: Alice's principal and tool buckets would admit, but are not charged.
    for _ in 0..3 {
        let refusal = check(&s, ALICE, Some(&call))
            .await
            .expect_err("global spent");
        assert_eq!(refusal.limit, "global");
    }
    assert_eq!(
        (get(&s, &principal).await, get(&s, &tool_key).await),
        before
    );
    // Bob's bucket is never even created.
    assert!(check(&s, BOB, None).await.is_err());
    let bob = s.buckets(BOB, None);
    assert_eq!(get(&s, &bob[0].key).await, None);
}

#[tokio::test]
async fn the_refusal_names_the_bucket_that_refuses_longest() {
    let server = RedisServer::start();
    let s = shared(
        &server.url(),
        "rate_limits:\n  per_principal: {rate: 1/m, burst: 1}\n  global: {rate: 1/h, burst: 1}\n",
    );
    check(&s, ALICE, None).await.unwrap();
    let refusal = check(&s, ALICE, None).await.expect_err("both spent");
    assert_eq!(refusal.limit, "global");
    assert!(
        refusal.wait > Duration::from_secs(3000),
        "{:?}",
        refusal.wait
    );
}

#[tokio::test]
async fn keys_are_bounded_name_nobody_and_expire_when_their_bucket_is_full_again() {
    let server = RedisServer::start();
    let s = shared(
        &server.url(),
        "rate_limits:\n  per_principal: {rate: 1/s, burst: 3}\n  per_tool: {\"github__*\": {rate: 10/s, burst: 3}, \"*search\": {rate: 10/s, burst: 3}}\n",
    );
    let long = "x".repeat(10_000);
    let call = tool("github__search");
    check(&s, (AuthMethod::ApiKey, &long), Some(&call))
        .await
        .unwrap();
    let keys: Vec<String> = s
        .redis
        .run(redis::cmd("KEYS").arg("*"))
        .await
        .expect("KEYS");
    assert_eq!(keys.len(), 3, "{keys:?}");
    for key in &keys {
        assert!(key.starts_with("t:rl:"), "{key}");
        assert!(key.len() < 80, "{key}");
        assert!(!key.contains("xxxx"), "{key}");
    }
    // One tool matching two globs: two buckets.
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("t:rl:tool:")).count(),
        2
    );
    // One request spent 1 s of a 3 s bucket: full again (and gone) in 1 s. (A second per
    // token, so that the checks below, a few milliseconds apart here, stay well inside one
    // on a loaded machine.)
    let key = &s.buckets(ALICE, None)[0].key;
    check(&s, ALICE, None).await.unwrap();
    let ttl = pttl(&s, key).await;
    assert!((1..=1000).contains(&ttl), "{ttl}");
    check(&s, ALICE, None).await.unwrap();
    check(&s, ALICE, None).await.unwrap();
    let ttl = pttl(&s, key).await;
    assert!((2000..=3000).contains(&ttl), "{ttl}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get(&s, key).await.is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the key never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Full again: the whole burst.
    for _ in 0..3 {
        check(&s, ALICE, None).await.unwrap();
    }
}

#[tokio::test]
async fn without_redis_a_limit_fails_open_or_closed_and_recovers_when_it_is_back() {
    let server = RedisServer::start();
    let port = server.port;
    let url = server.url();
    let yaml = "rate_limits: {global: {rate: 1/h, burst: 1}}";
    let open = shared(&url, yaml);
    let closed = shared(
        &url,
        "rate_limits: {global: {rate: 1/h, burst: 1}, on_redis_error: closed}",
    );
    assert_eq!(closed.on_error, FailMode::Closed);
    check(&open, ALICE, None).await.unwrap();
    assert!(check(&closed, ALICE, None).await.is_err(), "shared count");
    drop(server);

    let metrics = Metrics::default();
    for _ in 0..3 {
        assert!(
            open.check(ALICE, None, &metrics).await.is_ok(),
            "open admits"
        );
        assert!(matches!(
            closed.check(ALICE, None, &metrics).await,
            Err(Denial::StoreUnavailable)
        ));
    }
    assert!(open.outage.load(Ordering::Relaxed));
    let error = store_unavailable();
    assert_eq!(error.code, codes::RATE_LIMITED);
    assert!(
        error
            .message
            .contains("shared rate-limit store is unavailable")
    );
    assert!(!error.message.contains("127.0.0.1"));

    // The same port again (empty): both handles reconnect by themselves and count again.
    let _server = RedisServer::start_on(port, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match closed.check(ALICE, None, &metrics).await {
            Ok(()) => break,
            Err(Denial::StoreUnavailable) => {}
            Err(Denial::Limit(_)) => panic!("a fresh Redis has a full bucket"),
        }
        assert!(std::time::Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!closed.outage.load(Ordering::Relaxed));
    // Open admits until it asks Redis again (after its hold-off), which then refuses: the
    // bucket Redis counted for both is spent.
    let refusal = loop {
        if let Err(refusal) = check(&open, ALICE, None).await {
            break refusal;
        }
        assert!(std::time::Instant::now() < deadline, "never counted again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refusal.limit, "global");
    assert!(!open.outage.load(Ordering::Relaxed));
}

#[tokio::test]
async fn a_redis_slower_than_its_timeout_is_a_fault_and_is_used_again_once_it_answers() {
    let server = RedisServer::start();
    let s = shared(
        &server.url(),
        "rate_limits: {global: {rate: 1/h, burst: 2}, on_redis_error: closed}",
    );
    check(&s, ALICE, None).await.unwrap();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &server.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    // Stopped, Redis keeps the connection open and never answers.
    signal("-STOP");
    let started = std::time::Instant::now();
    let verdict = s.check(ALICE, None, &Metrics::default()).await;
    let waited = started.elapsed();
    assert!(matches!(verdict, Err(Denial::StoreUnavailable)));
    // Bounded by redis.timeout (300 ms), with room for a loaded machine.
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    // Meanwhile Redis is left alone: the next requests get the failure mode without
    // waiting on it (their check is ready at its first poll).
    use futures::FutureExt;
    for _ in 0..5 {
        let verdict = s.check(ALICE, None, &Metrics::default()).now_or_never();
        assert!(matches!(verdict, Some(Err(Denial::StoreUnavailable))));
    }
    signal("-CONT");
    // Once it runs again it answers, and it ran the command it held: the call that timed
    // out was counted (a fault never admits more than the limit in the end), so the burst
    // of two is spent.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let refusal = loop {
        match s.check(ALICE, None, &Metrics::default()).await {
            Err(Denial::Limit(refusal)) => break refusal,
            Err(Denial::StoreUnavailable) => {}
            Ok(()) => panic!("the call held through the stall was not counted"),
        }
        assert!(std::time::Instant::now() < deadline, "never answered again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refusal.limit, "global");
    assert!(!s.outage.load(Ordering::Relaxed));
}
