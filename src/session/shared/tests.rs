use super::*;
use serde_json::json;

#[test]
fn a_record_keeps_what_a_replica_needs_to_serve_the_session() {
    let record = Record {
        protocol_version: "2025-11-25".into(),
        client_info: json!({"name": "c", "version": "1"}),
        client_capabilities: json!({"elicitation": {}}),
        subject: "alice".into(),
        method: "jwt".into(),
        scopes: vec!["tools".into()],
        claims: json!({"sub": "alice", "team": "a"})
            .as_object()
            .cloned()
            .unwrap(),
        source: Some("10.0.0.1".parse().unwrap()),
        log_level: Some(3),
        subscriptions: vec!["file:///a".into()],
        initialized: true,
    };
    let text = serde_json::to_string(&record).unwrap();
    let back: Record = serde_json::from_str(&text).unwrap();
    assert_eq!(back, record);
    let principal = back.principal();
    assert_eq!(
        (principal.subject.as_str(), principal.method),
        ("alice", AuthMethod::Jwt)
    );
    assert!(principal.has_scope("tools"));
    assert_eq!(principal.claim_text("team").as_deref(), Some("a"));
}

fn record() -> Record {
    Record {
        protocol_version: "2025-11-25".into(),
        client_info: json!({"name": "c"}),
        client_capabilities: json!({}),
        subject: "anonymous".into(),
        method: "anonymous".into(),
        scopes: Vec::new(),
        claims: Map::new(),
        source: None,
        log_level: None,
        subscriptions: Vec::new(),
        initialized: false,
    }
}

fn shared_on(server: &crate::session::tasks::store::test_redis::RedisServer) -> Arc<Shared> {
    let config = crate::config::redis::RedisConfig {
        url: server.url(),
        prefix: "t".into(),
        timeout: Duration::from_secs(2),
    };
    Shared::new(Redis::new(&config), Duration::from_secs(60)).0
}

#[tokio::test]
async fn a_record_lives_until_deleted_and_renewal_says_when_it_is_gone() {
    let server = crate::session::tasks::store::test_redis::RedisServer::start();
    let a = shared_on(&server);
    let b = shared_on(&server);
    assert_eq!(b.load("s1").await.unwrap(), None);
    a.save("s1", &record().encode().unwrap()).await.unwrap();
    assert_eq!(b.load("s1").await.unwrap(), Some(record()));
    assert!(b.renew("s1").await.unwrap());
    a.delete("s1").await.unwrap();
    assert_eq!(b.load("s1").await.unwrap(), None);
    b.forget("s1");
    assert!(
        !b.renew("s1").await.unwrap(),
        "a deleted record is not renewed"
    );
}

#[tokio::test]
async fn the_stream_holder_is_released_only_by_the_replica_holding_it() {
    let server = crate::session::tasks::store::test_redis::RedisServer::start();
    let a = shared_on(&server);
    let b = shared_on(&server);
    assert_eq!(a.stream_holder("s").await.unwrap(), 0);
    a.hold_stream("s").await.unwrap();
    assert_eq!(b.stream_holder("s").await.unwrap(), a.replica);
    b.hold_stream("s").await.unwrap();
    a.release_stream("s").await.unwrap();
    assert_eq!(
        a.stream_holder("s").await.unwrap(),
        b.replica,
        "a no longer held it"
    );
    b.release_stream("s").await.unwrap();
    assert_eq!(a.stream_holder("s").await.unwrap(), 0);
}

#[tokio::test]
async fn a_message_reaches_a_listening_replica_and_says_when_nobody_listens() {
    let server = crate::session::tasks::store::test_redis::RedisServer::start();
    let a = shared_on(&server);
    let b = shared_on(&server);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut rx = b
        .redis
        .subscribe(vec![b.replica_channel(b.replica)], stop.clone());
    let answer = Directed::Answer {
        s: "s".into(),
        m: json!({"jsonrpc": "2.0", "id": "x", "result": {}}),
    };
    // The subscription opens in the background: bounded wait until it listens.
    let mut delivered = false;
    for _ in 0..100 {
        if a.direct(b.replica, &answer).await.unwrap() {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(delivered, "b never listened");
    let (channel, payload) = rx.recv().await.unwrap();
    assert_eq!(channel, b.replica_channel(b.replica));
    assert!(matches!(decode::<Directed>(&payload), Some(Directed::Answer { s, .. }) if s == "s"));
    stop.cancel();
    assert!(
        !a.direct(12345, &answer).await.unwrap(),
        "nobody listens there"
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_fault_within_the_timeout() {
    let port = crate::session::tasks::store::test_redis::free_port();
    let config = crate::config::redis::RedisConfig {
        url: format!("redis://:secret-pw@127.0.0.1:{port}"),
        prefix: "t".into(),
        timeout: Duration::from_millis(300),
    };
    let shared = Shared::new(Redis::new(&config), Duration::from_secs(60)).0;
    let started = std::time::Instant::now();
    let fault = shared.load("s").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(fault.0.starts_with("redis:"), "{fault}");
    assert!(!fault.0.contains("secret-pw"), "{fault}");
}

#[test]
fn stream_numbers_name_the_replica_that_wrote_them() {
    let base = u64::from(0xdead_beef_u32) << 32;
    assert_eq!(Shared::replica_of(base + 7), 0xdead_beef);
    assert_eq!(Shared::replica_of(7), 0);
}

#[test]
fn a_record_over_the_bound_is_not_encoded() {
    let mut big = record();
    big.client_info = json!({ "name": "x".repeat(MAX_RECORD) });
    assert!(big.encode().is_err_and(|len| len > MAX_RECORD));
    assert!(record().encode().is_ok());
}
