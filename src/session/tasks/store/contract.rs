//! The behaviour every [`TaskStore`] must show, run against each backend.

use std::time::Duration;

use serde_json::{Map, json};

use super::{StoreError, TaskStore};
use crate::session::tasks::record::{Owner, Status, TaskRecord, new_id, now_ms};

fn owner(name: &str) -> Owner {
    Owner {
        principal: format!("bearer:{name}"),
        session: None,
    }
}

fn record(owner: &Owner, ttl_ms: u64) -> TaskRecord {
    let now = now_ms();
    TaskRecord {
        id: new_id(),
        owner: owner.clone(),
        method: "tools/call".into(),
        upstream: "up".into(),
        remote: None,
        era: crate::protocol::Era::Stateless,
        status: Status::Working,
        status_message: None,
        created_ms: now,
        updated_ms: now,
        ttl_ms,
        poll_ms: 100,
        result: None,
        error: None,
        input_requests: Map::new(),
        input_responses: Map::new(),
        cancel_requested: false,
    }
}

pub async fn run(store: &dyn TaskStore) {
    // Readable once created; unknown ids are absent.
    let alice = owner(&new_id());
    let first = record(&alice, 60_000);
    store.create(&first, 10).await.unwrap();
    assert_eq!(store.get(&first.id).await.unwrap().as_ref(), Some(&first));
    assert_eq!(store.get("task-nope").await.unwrap(), None);

    // Updates apply and are visible; a change that says "nothing changed" writes nothing.
    let after = store
        .update(&first.id, &mut |r| r.finish(Ok(json!({"content": []}))))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.status, Status::Completed);
    assert_eq!(
        store.get(&first.id).await.unwrap().unwrap().status,
        Status::Completed
    );
    let unchanged = store
        .update(&first.id, &mut |r| r.set_status(Status::Working, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.status, Status::Completed);
    assert_eq!(
        store.update("task-nope", &mut |_| true).await.unwrap(),
        None
    );

    // Per-owner limit, and listing oldest first, owners apart.
    let mut second = record(&alice, 60_000);
    second.created_ms = first.created_ms + 1;
    store.create(&second, 2).await.unwrap();
    let third = record(&alice, 60_000);
    assert_eq!(store.create(&third, 2).await, Err(StoreError::Limit(2)));
    let bob = owner(&new_id());
    let bobs = record(&bob, 60_000);
    store.create(&bobs, 2).await.unwrap();
    let listed: Vec<String> = store
        .list(&alice)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, vec![first.id.clone(), second.id.clone()]);
    assert_eq!(store.list(&bob).await.unwrap().len(), 1);

    // Passthrough tasks are found by their upstream id.
    let mut remote = record(&bob, 60_000);
    remote.remote = Some("upstream-7".into());
    store.create(&remote, 10).await.unwrap();
    assert_eq!(
        store.by_remote("up", "upstream-7").await.unwrap(),
        Some(remote.id.clone())
    );
    assert_eq!(store.by_remote("other", "upstream-7").await.unwrap(), None);

    // Concurrent updates of one record are all kept.
    let counted = record(&bob, 60_000);
    store.create(&counted, 10).await.unwrap();
    let bumps = (0..16).map(|i| {
        let id = counted.id.clone();
        async move {
            store
                .update(&id, &mut |r| {
                    r.input_responses.insert(format!("k{i}"), json!(i));
                    true
                })
                .await
                .unwrap();
        }
    });
    futures::future::join_all(bumps).await;
    assert_eq!(
        store
            .get(&counted.id)
            .await
            .unwrap()
            .unwrap()
            .input_responses
            .len(),
        16
    );

    // A watcher taken before a change wakes on it (or within the store's poll).
    let mut watch = store.watch();
    let waiter = async {
        let started = std::time::Instant::now();
        watch.wait(Duration::from_secs(5)).await;
        started.elapsed()
    };
    let mut cancel = |r: &mut TaskRecord| r.set_status(Status::Cancelled, None);
    let (waited, _) = tokio::join!(waiter, async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        store.update(&second.id, &mut cancel).await
    });
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");

    // Expired records are gone, and no longer count against the limit.
    let carol = owner(&new_id());
    let short = record(&carol, 150);
    store.create(&short, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.get(&short.id).await.unwrap(), None);
    assert!(store.list(&carol).await.unwrap().is_empty());
    store.create(&record(&carol, 60_000), 1).await.unwrap();
}
