//! The cluster harness itself (`support/cluster.rs`): three real gateways sharing one real
//! `redis-server`, behind a real HAProxy. Shows that the balancer sends each request of one
//! keep-alive connection to the next replica (its header and each replica's own metrics
//! agree), and that after a replica is killed with SIGKILL the others serve every request.

mod support;

use serde_json::json;
use support::{
    CLIENT_PORT_HEADER, Cluster, HttpFixture, Stateless, WAIT, http_upstream, replica_of, wait_for,
};

/// One `fx__echo` call through the balancer: the replica that answered, and the client port.
async fn echo(client: &Stateless, text: &str) -> (usize, String) {
    let id = client.next_id();
    let body = client.body(
        id,
        "tools/call",
        json!({ "name": "fx__echo", "arguments": { "text": text } }),
    );
    let reply = client.post_raw(&body, &Stateless::headers_for(&body)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let result = reply.json();
    assert_eq!(
        result["result"]["content"][0]["text"], text,
        "{}",
        reply.body
    );
    let replica = replica_of(&reply.headers).expect("the balancer names the replica");
    let port = reply
        .header(CLIENT_PORT_HEADER)
        .expect("client port")
        .to_owned();
    (replica, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_of_one_connection_goes_to_the_next_replica_and_survivors_serve_after_a_kill() {
    let fixture = HttpFixture::start("fx", &[]);
    let mut cluster = Cluster::start(
        3,
        &format!("upstreams:\n{}", http_upstream("fx", &fixture.url)),
    )
    .await;
    for gw in &cluster.replicas {
        gw.wait_upstreams_ready().await;
    }
    let client = Stateless::new(&cluster.url, json!({}));

    let mut seen = Vec::new();
    for i in 0..6 {
        seen.push(echo(&client, &format!("call {i}")).await);
    }
    // One connection, and the replicas in turn: r(k), r(k+1), r(k+2), r(k), ...
    assert!(seen.iter().all(|(_, port)| *port == seen[0].1), "{seen:?}");
    for pair in seen.windows(2) {
        assert_eq!((pair[0].0 + 1) % 3, pair[1].0, "{seen:?}");
    }
    // Each replica's own count agrees with the balancer's header: two calls each.
    for (i, gw) in cluster.replicas.iter().enumerate() {
        let calls = gw
            .metric("manifold_tool_calls_total{tool=\"fx__echo\",upstream=\"fx\",outcome=\"ok\"}")
            .await;
        assert_eq!(calls, Some(2.0), "replica r{i}");
    }

    // SIGKILL one; every later call is answered by the other two.
    cluster.kill_replica(1);
    for i in 0..6 {
        let (replica, _) = echo(&client, &format!("after {i}")).await;
        assert_ne!(replica, 1);
    }
    wait_for(WAIT, "HAProxy to mark r1 down", || async {
        cluster
            .balancer_log()
            .contains("replicas/r1 is DOWN")
            .then_some(())
    })
    .await;
}
