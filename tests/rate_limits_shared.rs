//! Rate limits shared through Redis (`redis` set, `rate_limits.scope: shared`), shown with
//! real parts: three `manifold` processes behind HAProxy (every request to the next
//! replica), one `redis-server`, one fixture upstream, 2026-07-28 clients (no session, so
//! any replica serves any request).
//!
//! - A limit of R calls/s admits R × 10 s (+ burst) ± 10 % across the three replicas, while
//!   `scope: replica` admits about three times that.
//! - With Redis gone, `on_redis_error: open` admits (and says so once in the log), `closed`
//!   refuses with -32015 saying the store is unavailable; Redis back on the same port, the
//!   shared count resumes.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Cluster, HttpFixture, Reply, Stateless, WAIT, http_upstream, replica_of};

/// The rate-count runs are the point of the feature and measure throughput against a
/// clock: never two at once (tests in one file run in parallel).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const RATE: u64 = 20;
const BURST: u64 = 5;
const RUN: Duration = Duration::from_secs(10);
const CLIENTS: usize = 4;

/// One call of `tool` through `client`: the reply, and the JSON-RPC response.
async fn call(client: &Stateless, tool: &str) -> (Reply, Value) {
    let id = client.next_id();
    let body = client.body(
        id,
        "tools/call",
        json!({ "name": tool, "arguments": { "text": "x" } }),
    );
    let reply = client.post_raw(&body, &Stateless::headers_for(&body)).await;
    let response = reply.json();
    (reply, response)
}

/// One `fx__echo` call, the tool the limits are about.
async fn echo(client: &Stateless) -> (Reply, Value) {
    call(client, "fx__echo").await
}

/// A refusal exactly like a single gateway's: 429, `Retry-After` agreeing with the error.
fn assert_limited(reply: &Reply, response: &Value, limit: &str) {
    assert_eq!(reply.status, 429, "{}", reply.body);
    let error = &response["error"];
    assert_eq!(error["code"], -32015, "{error}");
    assert_eq!(error["data"]["limit"], limit, "{error}");
    let seconds = error["data"]["retryAfterSeconds"]
        .as_u64()
        .expect("seconds");
    assert!(seconds >= 1, "{error}");
    assert!(
        error["data"]["retryAfterMs"]
            .as_u64()
            .is_some_and(|ms| ms > 0)
    );
    assert_eq!(
        reply.header("retry-after").map(str::to_owned),
        Some(seconds.to_string())
    );
}

/// Three replicas of `yaml_limits` (a `rate_limits` section) in front of `fixture`, every
/// upstream ready.
async fn cluster(fixture: &HttpFixture, yaml_limits: &str) -> Cluster {
    let yaml = format!(
        "upstreams:\n{}{yaml_limits}",
        http_upstream("fx", &fixture.url)
    );
    let cluster = Cluster::start_with(3, |redis| {
        format!(
            "redis: {{url: {redis:?}, timeout: 500ms}}\nseal_key: {:?}\n{yaml}",
            support::CLUSTER_SEAL_KEY
        )
    })
    .await;
    for gw in &cluster.replicas {
        gw.wait_upstreams_ready().await;
    }
    cluster
}

/// What a run admitted: in all, per replica, and how long it sent for.
struct Run {
    admitted: u64,
    refused: u64,
    per_replica: [u64; 3],
    sent_for: Duration,
}

/// `CLIENTS` clients (one connection each) call `fx__echo` through the balancer as fast as
/// they are answered for `RUN`.
async fn drive(cluster: &Cluster) -> Run {
    let admitted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let per_replica: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let start = Instant::now();
    let end = start + RUN;
    let last_sent = Arc::new(std::sync::Mutex::new(start));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let client = Stateless::new(&cluster.url, json!({}));
            let (admitted, refused) = (admitted.clone(), refused.clone());
            let (per_replica, last_sent) = (per_replica.clone(), last_sent.clone());
            tokio::spawn(async move {
                let mut checked = false;
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let (reply, response) = echo(&client).await;
                    if response.get("result").is_some() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        let replica = replica_of(&reply.headers).expect("replica header");
                        per_replica[replica].fetch_add(1, Ordering::Relaxed);
                    } else {
                        if !checked {
                            assert_limited(&reply, &response, "per_tool");
                            checked = true;
                        }
                        assert_eq!(response["error"]["code"], -32015, "{}", reply.body);
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    let mut last = last_sent.lock().unwrap();
                    *last = (*last).max(sent);
                }
            })
        })
        .collect();
    for worker in workers {
        tokio::time::timeout(RUN + WAIT, worker)
            .await
            .expect("a client finished")
            .expect("a client did not panic");
    }
    let sent_for = *last_sent.lock().unwrap() - start;
    Run {
        admitted: admitted.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        per_replica: [0, 1, 2].map(|i| per_replica[i].load(Ordering::Relaxed)),
        sent_for,
    }
}

/// The sum over replicas of one series of their `/metrics`.
async fn total(cluster: &Cluster, series: &str) -> f64 {
    let mut sum = 0.0;
    for gw in &cluster.replicas {
        sum += gw.metric(series).await.unwrap_or(0.0);
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_limit_admits_its_rate_across_three_replicas_and_a_replica_limit_three_times_it() {
    let _serial = SERIAL.lock().await;
    let fixture = HttpFixture::start("fx", &[]);
    let limits =
        format!("rate_limits:\n  per_tool: {{\"fx__echo\": {{rate: {RATE}/s, burst: {BURST}}}}}\n");

    let shared = cluster(&fixture, &limits).await;
    let run = drive(&shared).await;
    // The bucket starts full (BURST) and refills RATE a second while the clients send.
    let expected = RATE as f64 * run.sent_for.as_secs_f64() + BURST as f64;
    let admitted = run.admitted as f64;
    eprintln!(
        "shared: admitted {} of {} in {:?} (expected {expected:.0}), per replica {:?}",
        run.admitted,
        run.admitted + run.refused,
        run.sent_for,
        run.per_replica
    );
    assert!(
        (admitted - expected).abs() <= expected * 0.10,
        "shared: admitted {admitted}, expected {expected:.0} ± 10 %"
    );
    // The clients asked for far more than the limit, and every replica admitted some: the
    // count is shared, not one replica's.
    assert!(run.refused as f64 > admitted, "{} refused", run.refused);
    assert!(
        run.per_replica.iter().all(|&n| n > 0),
        "{:?}",
        run.per_replica
    );
    // Each replica counted its refusals as a single gateway does.
    let counted = total(&shared, "manifold_rate_limited_total{limit=\"tool\"}").await;
    assert_eq!(counted, run.refused as f64);
    drop(shared);

    // The same run with each replica counting for itself: three buckets.
    let replica = cluster(&fixture, &format!("{limits}  scope: replica\n")).await;
    let run = drive(&replica).await;
    let expected = 3.0 * (RATE as f64 * run.sent_for.as_secs_f64() + BURST as f64);
    let admitted = run.admitted as f64;
    eprintln!(
        "replica: admitted {} of {} in {:?} (expected {expected:.0}), per replica {:?}",
        run.admitted,
        run.admitted + run.refused,
        run.sent_for,
        run.per_replica
    );
    assert!(
        (admitted - expected).abs() <= expected * 0.10,
        "scope replica: admitted {admitted}, expected {expected:.0} ± 10 %"
    );
}

/// Calls `fx__echo` through `client` until one is refused (bounded); how many passed, and
/// the refusal.
async fn spend(client: &Stateless) -> (u64, Reply, Value) {
    for admitted in 0..1000 {
        let (reply, response) = echo(client).await;
        if response.get("error").is_some() {
            return (admitted, reply, response);
        }
    }
    panic!("never refused");
}

/// How many times the replicas' logs say `text`, per replica.
fn said(cluster: &Cluster, text: &str) -> Vec<usize> {
    cluster
        .replicas
        .iter()
        .map(|gw| gw.log().matches(text).count())
        .collect()
}

const WARNED: &str = "Shared rate-limit store unavailable";
const RECOVERED: &str = "Shared rate-limit store answering again";

/// After Redis is back: calls `fx__echo` on each replica directly until it logs that the
/// store answers again (each reconnects on its own, at its next use); how many calls were
/// admitted on the way.
async fn until_recovered(cluster: &Cluster) -> u64 {
    let mut admitted = 0;
    for (i, gw) in cluster.replicas.iter().enumerate() {
        let direct = Stateless::new(&gw.url, json!({}));
        let deadline = Instant::now() + WAIT;
        while !gw.log().contains(RECOVERED) {
            assert!(
                Instant::now() < deadline,
                "replica r{i} never used Redis again"
            );
            let (_, response) = echo(&direct).await;
            admitted += u64::from(response.get("result").is_some());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    admitted
}

/// Every replica, asked directly, refuses `fx__echo` by the shared bucket.
async fn all_refuse(cluster: &Cluster) {
    for gw in &cluster.replicas {
        let direct = Stateless::new(&gw.url, json!({}));
        let (reply, response) = echo(&direct).await;
        assert_limited(&reply, &response, "per_tool");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_an_open_limit_admits_and_warns_once_and_the_shared_count_resumes() {
    let _serial = SERIAL.lock().await;
    let fixture = HttpFixture::start("fx", &[]);
    let mut cluster = cluster(
        &fixture,
        "rate_limits:\n  per_tool: {\"fx__echo\": {rate: 1/h, burst: 4}}\n",
    )
    .await;
    let client = Stateless::new(&cluster.url, json!({}));
    // Four calls across the replicas spend the one shared burst of four.
    let (passed, reply, response) = spend(&client).await;
    assert_eq!(passed, 4);
    assert_limited(&reply, &response, "per_tool");
    all_refuse(&cluster).await;

    cluster.stop_redis();
    // Twelve calls, four per replica: every one admitted without its limit.
    for _ in 0..12 {
        let (reply, response) = echo(&client).await;
        assert!(response.get("result").is_some(), "{}", reply.body);
    }
    let unchecked = "manifold_rate_limit_store_errors_total{outcome=\"admitted\"}";
    assert_eq!(total(&cluster, unchecked).await, 12.0);
    // One warning per replica for the outage, not one per call.
    assert_eq!(said(&cluster, WARNED), vec![1, 1, 1]);
    assert!(cluster.replicas[0].log().contains("on_redis_error: open"));

    // Back (empty) on the same port: each replica reconnects by itself, and together they
    // count one fresh burst of four again. Calls admitted while a replica had not yet
    // reconnected were unchecked (and counted as such).
    cluster.start_redis();
    let before = total(&cluster, unchecked).await;
    let mut admitted = until_recovered(&cluster).await;
    let (passed, reply, response) = spend(&client).await;
    admitted += passed;
    assert_limited(&reply, &response, "per_tool");
    let unchecked = total(&cluster, unchecked).await - before;
    assert_eq!(
        admitted as f64 - unchecked,
        4.0,
        "admitted {admitted}, unchecked {unchecked}"
    );
    all_refuse(&cluster).await;
    assert_eq!(said(&cluster, RECOVERED), vec![1, 1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_closed_limit_refuses_saying_why_and_the_shared_count_resumes() {
    let _serial = SERIAL.lock().await;
    let fixture = HttpFixture::start("fx", &[]);
    let mut cluster = cluster(
        &fixture,
        "rate_limits:\n  per_tool: {\"fx__echo\": {rate: 1/h, burst: 4}}\n  on_redis_error: closed\n",
    )
    .await;
    let client = Stateless::new(&cluster.url, json!({}));
    let (passed, _, _) = spend(&client).await;
    assert_eq!(passed, 4);

    cluster.stop_redis();
    for _ in 0..6 {
        let (reply, response) = echo(&client).await;
        assert_limited(&reply, &response, "store_unavailable");
        let message = response["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("shared rate-limit store is unavailable"),
            "{message}"
        );
        assert!(
            !message.contains("127.0.0.1") && !message.contains("redis://"),
            "{message}"
        );
        // A call no limit applies to does not need Redis.
        let (reply, response) = call(&client, "fx__whoami").await;
        assert!(response.get("result").is_some(), "{}", reply.body);
    }
    let refused = "manifold_rate_limit_store_errors_total{outcome=\"refused\"}";
    assert_eq!(total(&cluster, refused).await, 6.0);
    assert_eq!(said(&cluster, WARNED), vec![1, 1, 1]);
    assert!(cluster.replicas[0].log().contains("on_redis_error: closed"));

    // Back (empty) on the same port: a fresh burst of four, shared by all three.
    cluster.start_redis();
    let mut admitted = until_recovered(&cluster).await;
    let (passed, reply, response) = spend(&client).await;
    admitted += passed;
    assert_limited(&reply, &response, "per_tool");
    assert_eq!(admitted, 4);
    all_refuse(&cluster).await;
}
