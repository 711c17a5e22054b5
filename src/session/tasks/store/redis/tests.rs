//! Unit tests of `redis.rs`.

use super::super::test_redis::RedisServer;
use super::*;

#[tokio::test]
async fn the_redis_store_keeps_the_contract() {
    let server = RedisServer::start();
    let store = RedisStore::new(&server.url(), "contract");
    super::super::contract::run(&store).await;
}

#[tokio::test]
async fn replicas_sharing_a_redis_see_one_another_and_respect_one_limit() {
    let server = RedisServer::start();
    let a = RedisStore::new(&server.url(), "shared");
    let b = RedisStore::new(&server.url(), "shared");
    let elsewhere = RedisStore::new(&server.url(), "other-prefix");
    let owner = Owner {
        principal: "bearer:racer".into(),
        session: None,
    };
    // Two replicas race to create 20 tasks each under a limit of 5.
    let attempts = (0..40).map(|i| {
        let store = if i % 2 == 0 { &a } else { &b };
        let record = sample(&owner);
        async move { store.create(&record, 5).await }
    });
    let outcomes = futures::future::join_all(attempts).await;
    let made = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(made, 5, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(()) | Err(StoreError::Limit(5))))
    );
    let listed = b.list(&owner).await.unwrap();
    assert_eq!(listed.len(), 5);
    assert_eq!(a.get(&listed[0].id).await.unwrap().as_ref(), listed.first());
    assert!(elsewhere.list(&owner).await.unwrap().is_empty());
    assert_eq!(elsewhere.get(&listed[0].id).await.unwrap(), None);
}

#[tokio::test]
async fn an_unreachable_redis_is_a_prompt_error_without_the_password_until_it_is_back() {
    let port = super::super::test_redis::free_port();
    let store = RedisStore::new(&format!("redis://:s3cret-pw@127.0.0.1:{port}"), "x");
    let owner = Owner {
        principal: "bearer:patient".into(),
        session: None,
    };
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let error = store.create(&sample(&owner), 5).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        let StoreError::Backend(text) = &error else {
            panic!("{error:?}")
        };
        assert!(
            !text.contains("s3cret-pw") && !text.contains("127.0.0.1"),
            "{text}"
        );
    }
    // Once a server listens there, the same store reaches it.
    let server = RedisServer::start_on(port, Some("s3cret-pw"));
    let record = sample(&owner);
    let mut stored = Err(StoreError::Backend(String::new()));
    for _ in 0..50 {
        stored = store.create(&record, 5).await;
        if stored.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stored.unwrap();
    assert_eq!(store.get(&record.id).await.unwrap(), Some(record));
    drop(server);
}

#[test]
fn a_url_that_does_not_parse_fails_each_use_without_echoing_it() {
    let store = RedisStore::new("redis://:pw@[bad", "x");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime.block_on(store.get("task-1")).unwrap_err();
    assert!(!error.to_string().contains("pw@"), "{error}");
}

fn sample(owner: &Owner) -> TaskRecord {
    let now = now_ms();
    TaskRecord {
        id: crate::session::tasks::record::new_id(),
        owner: owner.clone(),
        method: "tools/call".into(),
        upstream: "up".into(),
        remote: None,
        era: crate::protocol::Era::Stateless,
        status: crate::session::tasks::record::Status::Working,
        status_message: None,
        created_ms: now,
        updated_ms: now,
        ttl_ms: 60_000,
        poll_ms: 100,
        result: None,
        error: None,
        input_requests: serde_json::Map::new(),
        input_responses: serde_json::Map::new(),
        cancel_requested: false,
    }
}
