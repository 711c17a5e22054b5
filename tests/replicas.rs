//! One handshake-era (2025-11-25) client served by three real replicas that share one real
//! `redis-server`, behind a real HAProxy that sends every request to the next replica
//! (`support/cluster.rs`). What it proves, each in front of our own fixtures (the rmcp fixture
//! over HTTP, shared by the replicas, and the built-in demo over stdio) and in front of a
//! server we did not write (server-everything, the TypeScript reference server, one stdio
//! process per replica):
//!
//! 1. a session opened on one replica is served by the others with no new `initialize`
//!    (tools, prompts, resources), and `DELETE` on one ends it on all three;
//! 2. a resource update reaches the client once, on the GET stream another replica holds,
//!    also when the server changes the resource as soon as `resources/subscribe` returned;
//! 3. progress of a call reaches that call's own stream, not the GET stream held elsewhere;
//! 4. an elicitation asked by one replica is answered through another, and the call ends
//!    with the answer;
//! 5. a request stream written by one replica is resumed (`Last-Event-ID`) through another,
//!    and once that replica is killed the resumption is a clear 410, at once; the GET
//!    stream, reconnected with `Last-Event-ID` on another replica (its holder alive or
//!    killed), is served there;
//! 6. a replica killed with SIGKILL in the middle of a run: the calls in flight on it end
//!    with an error, every later call (sessions opened on the dead one included) succeeds on
//!    the others, and nothing hangs;
//! 7. Redis stopped: a replica keeps serving the sessions it holds a copy of, answers 503
//!    naming the shared session store for the others; Redis back (empty): old sessions are
//!    404, new ones are served across replicas again.
//!
//! The client is raw HTTP (reqwest) so each answer shows which replica gave it (HAProxy's
//! `X-Manifold-Replica`); a request meant for one replica is sent to its own URL. Every wait
//! is bounded; a short read window only ever shows that something did *not* arrive.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    ACCEPT_BOTH, Cluster, HttpFixture, RawSse, Reply, VERSION, WAIT, content_type, demo_upstream,
    everything_upstream, first_text, http_client, http_upstream, initialize_body, messages_of,
    replica_of, streaming_client, wait_for, within,
};

/// How long a message that must arrive may take.
const ARRIVES: Duration = Duration::from_secs(15);
/// How long we watch for a message that must not arrive (a duplicate, a stray copy).
const QUIET: Duration = Duration::from_secs(2);
/// The bound on any single request in the kill and Redis scenarios: past it, it hung.
const HUNG: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// The servers behind the gateway.
// ---------------------------------------------------------------------------------------

/// What the scenarios need from the servers behind the gateway, and how they answer.
struct Server {
    /// The `upstreams:` entries of the gateway configuration.
    upstreams: String,
    /// The shared HTTP fixture, kept alive as long as the cluster.
    _fixture: Option<HttpFixture>,
    /// A tool that answers at once, and the text it answers `text` with.
    echo: fn(&str) -> (&'static str, Value, String),
    /// A prompt, its arguments and a text its first message holds.
    prompt: (&'static str, Value, &'static str),
    /// A resource and a text its first content holds.
    resource: (&'static str, &'static str),
    /// A call that sends progress (when asked) for a second or two, and a text its result
    /// holds.
    slow: (&'static str, Value, &'static str),
    /// A call that runs for several seconds (in flight when a replica is killed).
    long: (&'static str, Value),
    /// A tool that elicits, its arguments, the client's answer (`content`), and a text the
    /// result then holds.
    elicit: (&'static str, Value, Value, &'static str),
    /// A resource to subscribe to, and the call that makes the server announce an update.
    watched: &'static str,
    touch: (&'static str, Value),
}

impl Server {
    /// Ours: the rmcp fixture over Streamable HTTP (one process every replica links to,
    /// as a remote MCP server would be) and the built-in demo (`confirm` elicits) over stdio.
    fn ours() -> Server {
        let fixture = HttpFixture::start("fx", &[]);
        Server {
            upstreams: format!(
                "{}{}",
                http_upstream("fx", &fixture.url),
                demo_upstream("demo")
            ),
            _fixture: Some(fixture),
            echo: |text| ("fx__echo", json!({ "text": text }), text.to_owned()),
            prompt: ("fx__greet", json!({ "name": "Ada" }), "Hello Ada from fx"),
            resource: ("fixture://fx/info", "I am fx"),
            slow: ("fx__slow", json!({ "ms": 1500 }), "done after 1500 ms"),
            long: ("fx__slow", json!({ "ms": 4000 })),
            elicit: (
                "demo__confirm",
                json!({ "action": "ship it" }),
                json!({ "confirmed": true, "note": "go" }),
                "The user confirmed: ship it (note: go)",
            ),
            watched: "fixture://fx/info",
            touch: ("fx__touch", json!({ "uri": "fixture://fx/info" })),
        }
    }

    /// server-everything over stdio: each replica runs its own process.
    fn everything() -> Server {
        Server {
            upstreams: everything_upstream(),
            _fixture: None,
            echo: |text| {
                let args = json!({ "message": text });
                ("everything__echo", args, format!("Echo: {text}"))
            },
            prompt: (
                "everything__simple-prompt",
                json!({}),
                "This is a simple prompt without arguments.",
            ),
            resource: (
                "demo://resource/dynamic/text/1",
                "Resource 1: This is a plaintext resource",
            ),
            slow: (
                "everything__trigger-long-running-operation",
                json!({ "duration": 2, "steps": 8 }),
                "Long running operation completed",
            ),
            long: (
                "everything__trigger-long-running-operation",
                json!({ "duration": 10, "steps": 10 }),
            ),
            elicit: (
                "everything__trigger-elicitation-request",
                json!({}),
                json!({ "name": "Ada Lovelace", "check": true }),
                "- Name: Ada Lovelace",
            ),
            watched: "demo://resource/dynamic/text/1",
            touch: ("everything__toggle-subscriber-updates", json!({})),
        }
    }

    /// Three replicas serving these upstreams, each with its upstreams ready.
    async fn cluster(&self) -> Cluster {
        let cluster = Cluster::start(3, &format!("upstreams:\n{}", self.upstreams)).await;
        for gw in &cluster.replicas {
            gw.wait_upstreams_ready().await;
        }
        cluster
    }
}

// ---------------------------------------------------------------------------------------
// A raw HTTP client of one session.
// ---------------------------------------------------------------------------------------

/// One handshake-era session spoken to with raw HTTP: through the balancer (one keep-alive
/// connection, so consecutive requests go to consecutive replicas), or to one replica's URL.
struct Client {
    http: reqwest::Client,
    /// The balancer's endpoint.
    url: String,
    session: String,
    next_id: AtomicU64,
}

/// How one request ended (the kill scenario).
#[derive(Debug)]
// Some fields are only read through `Debug`, in failure messages.
#[allow(dead_code)]
enum Attempt {
    /// A JSON-RPC response (result or error), and the replica that gave it.
    Answered(Option<usize>, Value),
    /// An HTTP status other than 200, and its body.
    Refused(Option<usize>, u16, String),
    /// The answer stream ended (or broke) without a response.
    Cut(Option<usize>, String),
    /// No HTTP answer at all (connection refused or reset).
    Failed(String),
    /// Nothing within [`HUNG`].
    Hung,
}

impl Client {
    /// `initialize` and `notifications/initialized` at `url`; the client, and the replica
    /// that opened the session (when `url` is the balancer's).
    async fn open(url: &str, capabilities: Value) -> (Client, Option<usize>) {
        Self::try_open(url, capabilities)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Client::open`], or why not.
    async fn try_open(url: &str, capabilities: Value) -> Result<(Client, Option<usize>), String> {
        let http = http_client();
        let reply = support::post_initialize(&http, url, 0, VERSION, capabilities)
            .await
            .map_err(|e| format!("POST initialize: {e}"))?;
        if reply.status != 200 {
            return Err(format!("initialize: HTTP {} {}", reply.status, reply.body));
        }
        let opened_on = replica_of(&reply.headers);
        assert_eq!(
            reply.json()["result"]["protocolVersion"],
            VERSION,
            "{}",
            reply.body
        );
        let session = reply
            .header("mcp-session-id")
            .expect("Mcp-Session-Id")
            .to_owned();
        let client = Client {
            http,
            url: url.to_owned(),
            session,
            next_id: AtomicU64::new(1),
        };
        let reply = client
            .send_to(
                url,
                &json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
            )
            .await;
        assert_eq!(reply.status, 202, "initialized: {}", reply.body);
        Ok((client, opened_on))
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn request_body(&self, method: &str, params: Value) -> (u64, Value) {
        let id = self.next_id();
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        (id, body)
    }

    fn post(&self, http: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        http.post(url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", VERSION)
    }

    /// POSTs one message to `url` and reads the whole answer.
    async fn send_to(&self, url: &str, msg: &Value) -> Reply {
        let resp = self.post(&self.http, url).json(msg).send().await;
        Reply::read(resp.expect("POST")).await
    }

    /// A request through the balancer that must succeed: the replica that answered, and
    /// the result.
    async fn ok(&self, method: &str, params: Value) -> (usize, Value) {
        let (replica, response) = self.request_to(&self.url, method, params).await;
        let replica = replica.expect("the balancer names the replica");
        match response.get("result") {
            Some(result) => (replica, result.clone()),
            None => panic!("{method} failed on r{replica}: {response}"),
        }
    }

    /// A request to `url` answered with HTTP 200: the replica (if the balancer named it) and
    /// the JSON-RPC response.
    async fn request_to(&self, url: &str, method: &str, params: Value) -> (Option<usize>, Value) {
        let (id, body) = self.request_body(method, params);
        let reply = self.send_to(url, &body).await;
        assert_eq!(reply.status, 200, "{method}: {}", reply.body);
        let response = reply
            .messages()
            .into_iter()
            .find(|m| m["id"] == json!(id) && m.get("method").is_none())
            .unwrap_or_else(|| panic!("{method}: no response in {}", reply.body));
        (replica_of(&reply.headers), response)
    }

    /// A request to `url` whose answer stream is read as it comes: its id, the replica, the
    /// stream.
    async fn stream_to(&self, url: &str, method: &str, params: Value) -> (u64, usize, RawSse) {
        let (id, body) = self.request_body(method, params);
        let resp = self
            .post(&streaming_client(), url)
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), 200, "{method}");
        assert!(
            content_type(&resp).starts_with("text/event-stream"),
            "{method}: answered as a stream"
        );
        let replica = replica_of(resp.headers()).unwrap_or(usize::MAX);
        (id, replica, RawSse::new(resp))
    }

    /// `GET` at `url`: the session's stream, or with `last_event_id` the rest of a stream.
    async fn get(&self, url: &str, last_event_id: Option<&str>) -> reqwest::Response {
        let mut req = streaming_client()
            .get(url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", VERSION);
        if let Some(last) = last_event_id {
            req = req.header("last-event-id", last);
        }
        req.send().await.expect("GET")
    }

    /// Opens the session's GET stream through the balancer: the replica holding it, and
    /// the stream.
    async fn open_stream(&self) -> (usize, RawSse) {
        let resp = self.get(&self.url, None).await;
        assert_eq!(resp.status(), 200, "GET stream");
        let replica = replica_of(resp.headers()).expect("the balancer names the replica");
        (replica, RawSse::new(resp))
    }

    /// One request through the balancer, however it ends, within [`HUNG`].
    async fn attempt(&self, method: &str, params: Value) -> Attempt {
        let (id, body) = self.request_body(method, params);
        let run = async {
            let resp = match self.post(&self.http, &self.url).json(&body).send().await {
                Ok(resp) => resp,
                Err(e) => return Attempt::Failed(e.to_string()),
            };
            let status = resp.status().as_u16();
            let replica = replica_of(resp.headers());
            let kind = content_type(&resp);
            let text = match resp.text().await {
                Ok(text) => text,
                Err(e) => return Attempt::Cut(replica, e.to_string()),
            };
            if status != 200 {
                return Attempt::Refused(replica, status, text);
            }
            match messages_of(&kind, &text)
                .into_iter()
                .find(|m| m["id"] == json!(id) && m.get("method").is_none())
            {
                Some(response) => Attempt::Answered(replica, response),
                None => Attempt::Cut(replica, format!("no response in {text:?}")),
            }
        };
        tokio::time::timeout(HUNG, run)
            .await
            .unwrap_or(Attempt::Hung)
    }
}

fn call(tool: &str, args: &Value) -> Value {
    json!({ "name": tool, "arguments": args })
}

/// A call's parameters asking for progress under `token`.
fn call_with_progress(tool: &str, args: &Value, token: &str) -> Value {
    json!({ "name": tool, "arguments": args, "_meta": { "progressToken": token } })
}

fn is_response_to(id: u64) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["id"] == json!(id) && m.get("method").is_none()
}

fn is_update_of(uri: &'static str) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["method"] == "notifications/resources/updated" && m["params"]["uri"] == uri
}

fn is_progress(m: &Value) -> bool {
    m["method"] == "notifications/progress"
}

/// `<stream>-<seq>` of an SSE event id.
fn event_id(id: &str) -> (u64, u64) {
    let (stream, seq) = id.split_once('-').expect("<stream>-<seq>");
    (
        stream.parse().expect("numeric stream"),
        seq.parse().expect("numeric sequence"),
    )
}

/// The sum of every series of one replica's metrics whose line starts with `prefix`.
async fn metric_sum(gw: &support::Gateway, prefix: &str) -> f64 {
    gw.metrics()
        .await
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the tool is listed to this session on every replica (server-everything lists
/// its elicitation tool only once it knows the gateway can elicit).
async fn listed_everywhere(cluster: &Cluster, c: &Client, tool: &str) {
    for url in cluster.replica_urls() {
        wait_for(WAIT, &format!("{tool} listed at {url}"), || async {
            let (_, response) = c.request_to(&url, "tools/list", json!({})).await;
            let tools = response["result"]["tools"].as_array()?.clone();
            tools.iter().any(|t| t["name"] == tool).then_some(())
        })
        .await;
    }
}

/// Runs `scenario` in front of our fixtures and in front of server-everything.
macro_rules! in_front_of_both {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ours() {
                super::$scenario(super::Server::ours()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn server_everything() {
                super::$scenario(super::Server::everything()).await
            }
        }
    )*};
}

in_front_of_both!(
    one_session_is_served_by_every_replica_and_deleted_on_all,
    a_resource_update_reaches_the_stream_held_elsewhere_once,
    progress_stays_on_the_calls_own_stream,
    an_elicitation_is_answered_through_another_replica,
    a_stream_resumes_through_another_replica_until_its_writer_dies,
    the_get_stream_reconnects_through_another_replica,
    a_replica_killed_mid_run_fails_only_what_it_was_running,
    redis_down_keeps_held_sessions_and_names_the_store_for_the_rest,
);

// ---------------------------------------------------------------------------------------
// 1. One session, every replica.
// ---------------------------------------------------------------------------------------

async fn one_session_is_served_by_every_replica_and_deleted_on_all(server: Server) {
    let cluster = server.cluster().await;
    let (c, opened_on) = Client::open(&cluster.url, json!({})).await;
    let opened_on = opened_on.expect("the balancer names the replica");

    let mut answered: Vec<(String, usize)> = Vec::new();
    let (r, tools) = c.ok("tools/list", json!({})).await;
    let (echo, _, _) = (server.echo)("");
    assert!(
        tools["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == echo)),
        "{tools}"
    );
    answered.push(("tools/list".into(), r));
    for i in 0..4 {
        let (tool, args, expected) = (server.echo)(&format!("call {i}"));
        let (r, result) = c.ok("tools/call", call(tool, &args)).await;
        assert_eq!(first_text(&result), expected, "{result}");
        answered.push((format!("tools/call {i}"), r));
    }
    let (name, args, text) = &server.prompt;
    let (r, prompt) = c
        .ok("prompts/get", json!({ "name": name, "arguments": args }))
        .await;
    assert!(first_text(&prompt).contains(text), "{prompt}");
    answered.push(("prompts/get".into(), r));
    let (uri, text) = server.resource;
    let (r, read) = c.ok("resources/read", json!({ "uri": uri })).await;
    assert!(first_text(&read).contains(text), "{read}");
    answered.push(("resources/read".into(), r));

    // Every replica answered, the ones that did not open the session included.
    let replicas: BTreeSet<usize> = answered.iter().map(|(_, r)| *r).collect();
    assert_eq!(replicas, BTreeSet::from([0, 1, 2]), "{answered:?}");
    assert!(answered.iter().any(|(_, r)| *r != opened_on));
    // Each replica's own count: one initialize in all, on the replica that opened it; the
    // others served the session's requests without one.
    for (i, gw) in cluster.replicas.iter().enumerate() {
        let inits = metric_sum(gw, "manifold_requests_total{method=\"initialize\"").await;
        let expected = if i == opened_on { 1.0 } else { 0.0 };
        assert_eq!(inits, expected, "initialize requests on r{i}");
        let calls = metric_sum(gw, "manifold_requests_total{method=\"tools/call\"").await;
        let mine = answered
            .iter()
            .filter(|(m, r)| m.starts_with("tools/call") && *r == i)
            .count();
        assert_eq!(calls, mine as f64, "tools/call requests on r{i}");
    }

    // DELETE through the balancer, on the next replica; then the session is gone on all
    // three, each asked directly.
    let resp = c
        .http
        .delete(&cluster.url)
        .header("mcp-session-id", &c.session)
        .header("mcp-protocol-version", VERSION)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(resp.status(), 204);
    let deleted_on = replica_of(resp.headers()).expect("the balancer names the replica");
    for (i, url) in cluster.replica_urls().iter().enumerate() {
        let (_, body) = c.request_body("tools/list", json!({}));
        let reply = c.send_to(url, &body).await;
        assert_eq!(
            reply.status, 404,
            "r{i} after DELETE on r{deleted_on}: {}",
            reply.body
        );
        assert!(
            reply.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("unknown or expired session")),
            "{}",
            reply.body
        );
        let get = c.get(url, None).await;
        assert_eq!(get.status(), 404, "GET on r{i} after DELETE");
    }
}

// ---------------------------------------------------------------------------------------
// 2. A subscription, its update, and the stream held by another replica.
// ---------------------------------------------------------------------------------------

async fn a_resource_update_reaches_the_stream_held_elsewhere_once(server: Server) {
    let cluster = server.cluster().await;
    let (c, _) = Client::open(&cluster.url, json!({})).await;
    // The GET stream, the subscription and the change each land on another replica.
    let (held_by, mut stream) = c.open_stream().await;
    let (subscribed_on, done) = c
        .ok("resources/subscribe", json!({ "uri": server.watched }))
        .await;
    assert_eq!(done, json!({}));
    let (tool, args) = &server.touch;
    let (touched_on, result) = c.ok("tools/call", call(tool, args)).await;
    assert_ne!(result["isError"], json!(true), "{result}");
    let replicas = BTreeSet::from([held_by, subscribed_on, touched_on]);
    assert_eq!(
        replicas.len(),
        3,
        "stream r{held_by}, subscribe r{subscribed_on}, change r{touched_on}"
    );

    let is_update = is_update_of(server.watched);
    let update = stream
        .until(ARRIVES, &is_update)
        .await
        .map(|(event, _)| event.json());
    assert!(
        update.is_some(),
        "no notifications/resources/updated reached the GET stream on r{held_by} \
         (subscribed on r{subscribed_on}, changed on r{touched_on}); logs:\n{}",
        logs(&cluster)
    );
    // Exactly one: nothing more of that change within a bounded window.
    let again = stream.until(QUIET, &is_update).await;
    assert!(
        again.is_none(),
        "a second update of one change: {:?}",
        again.map(|(e, _)| e.json())
    );
}

// ---------------------------------------------------------------------------------------
// 3. Progress.
// ---------------------------------------------------------------------------------------

async fn progress_stays_on_the_calls_own_stream(server: Server) {
    let cluster = server.cluster().await;
    let (c, _) = Client::open(&cluster.url, json!({})).await;
    let (held_by, mut get) = c.open_stream().await;
    let (tool, args, text) = &server.slow;
    let (id, ran_on, mut answer) = c
        .stream_to(
            &cluster.url,
            "tools/call",
            call_with_progress(tool, args, "p-1"),
        )
        .await;
    assert_ne!(ran_on, held_by, "the call runs where the GET stream is not");
    let (done, before) = answer
        .until(ARRIVES, is_response_to(id))
        .await
        .unwrap_or_else(|| panic!("no response; logs:\n{}", logs(&cluster)));
    let result = &done.json()["result"];
    assert!(first_text(result).contains(text), "{result}");
    let progress: Vec<&Value> = before.iter().filter(|m| is_progress(m)).collect();
    assert!(
        progress.len() >= 3,
        "progress on the call's stream (r{ran_on}): {before:?}"
    );
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "p-1"),
        "{progress:?}"
    );
    let values: Vec<f64> = progress
        .iter()
        .filter_map(|p| p["params"]["progress"].as_f64())
        .collect();
    assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
    // None of it went to the GET stream the other replica holds.
    let stray = get.until(QUIET, is_progress).await;
    assert!(
        stray.is_none(),
        "progress on the GET stream (r{held_by}): {:?}",
        stray.map(|(e, _)| e.json())
    );
}

// ---------------------------------------------------------------------------------------
// 4. Elicitation.
// ---------------------------------------------------------------------------------------

async fn an_elicitation_is_answered_through_another_replica(server: Server) {
    let cluster = server.cluster().await;
    let (c, _) = Client::open(&cluster.url, json!({ "elicitation": {} })).await;
    let (tool, args, content, text) = &server.elicit;
    listed_everywhere(&cluster, &c, tool).await;

    let (id, ran_on, mut answer) = c
        .stream_to(&cluster.url, "tools/call", call(tool, args))
        .await;
    let (ask, _) = answer
        .until(ARRIVES, |m| m["method"] == "elicitation/create")
        .await
        .unwrap_or_else(|| panic!("no elicitation/create; logs:\n{}", logs(&cluster)));
    let ask = ask.json();
    // The answer goes straight to another replica than the one running the call.
    let other = (ran_on + 1) % 3;
    let reply = c
        .send_to(
            &cluster.replica_urls()[other],
            &json!({ "jsonrpc": "2.0", "id": ask["id"],
                     "result": { "action": "accept", "content": content } }),
        )
        .await;
    assert_eq!(reply.status, 202, "answer on r{other}: {}", reply.body);
    let (done, _) = answer
        .until(ARRIVES, is_response_to(id))
        .await
        .unwrap_or_else(|| {
            panic!(
                "the call on r{ran_on} did not end after the answer on r{other}; logs:\n{}",
                logs(&cluster)
            )
        });
    let result = &done.json()["result"];
    assert_ne!(result["isError"], json!(true), "{result}");
    let all_text: String = result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(all_text.contains(text), "{result}");
}

// ---------------------------------------------------------------------------------------
// 5. Resumption through another replica.
// ---------------------------------------------------------------------------------------

async fn a_stream_resumes_through_another_replica_until_its_writer_dies(server: Server) {
    let mut cluster = server.cluster().await;
    let (c, _) = Client::open(&cluster.url, json!({})).await;
    let urls = cluster.replica_urls();
    let (tool, args, text) = &server.slow;

    // The writer alive: two events on its replica, the rest through the next one.
    let (id, writer, mut answer) = c
        .stream_to(
            &cluster.url,
            "tools/call",
            call_with_progress(tool, args, "r-1"),
        )
        .await;
    let mut events = Vec::new();
    for _ in 0..2 {
        events.push(
            answer
                .next(ARRIVES)
                .await
                .expect("an event before the drop"),
        );
    }
    assert!(events.iter().all(|e| is_progress(&e.json())), "{events:?}");
    drop(answer);
    let reader = (writer + 1) % 3;
    let last = events[1].id.clone().expect("events carry ids");
    let resp = c.get(&urls[reader], Some(&last)).await;
    assert_eq!(resp.status(), 200, "resumed on r{reader}");
    assert!(content_type(&resp).starts_with("text/event-stream"));
    let mut resumed = RawSse::new(resp);
    loop {
        let event = resumed.next(ARRIVES).await.unwrap_or_else(|| {
            panic!(
                "the stream of r{writer} resumed on r{reader} ended early: {events:?}; logs:\n{}",
                logs(&cluster)
            )
        });
        let done = is_response_to(id)(&event.json());
        events.push(event);
        if done {
            break;
        }
    }
    let result = events.last().expect("the response").json();
    assert!(first_text(&result["result"]).contains(text), "{result}");
    assert!(
        resumed.next(ARRIVES).await.is_none() && resumed.ended(),
        "the resumed stream ends after the response"
    );
    // One stream, no gap, no repeat.
    let ids: Vec<(u64, u64)> = events
        .iter()
        .map(|e| event_id(e.id.as_deref().expect("every event has an id")))
        .collect();
    for pair in ids.windows(2) {
        assert_eq!(pair[0].0, pair[1].0, "one stream: {ids:?}");
        assert_eq!(pair[0].1 + 1, pair[1].1, "consecutive: {ids:?}");
    }

    // The writer killed: resuming through another replica is a clear 410 Gone, at once (not
    // 404, which would tell the client to drop a session that is still valid).
    let (_, writer, mut answer) = c
        .stream_to(
            &cluster.url,
            "tools/call",
            call_with_progress(tool, args, "r-2"),
        )
        .await;
    let first = answer
        .next(ARRIVES)
        .await
        .expect("an event before the kill");
    let last = first.id.expect("events carry ids");
    drop(answer);
    cluster.kill_replica(writer);
    let reader = (writer + 1) % 3;
    let started = Instant::now();
    let resp = within(
        Duration::from_secs(10),
        "resumption after the writer died",
        c.get(&urls[reader], Some(&last)),
    )
    .await;
    let status = resp.status().as_u16();
    let body = within(Duration::from_secs(10), "its body", resp.text())
        .await
        .unwrap_or_default();
    assert_eq!(
        status, 410,
        "resumed on r{reader} with r{writer} dead: {body}"
    );
    let error: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON: {body}"));
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("replica") && message.contains("gone"),
        "the error names the replica gone: {body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// The GET stream dropped (its connection cut) and reconnected as clients do, with the id of
/// the last event they got, through the balancer: whichever replica that lands on serves
/// the stream from then on; and again once the replica that held it is killed.
async fn the_get_stream_reconnects_through_another_replica(server: Server) {
    let mut cluster = server.cluster().await;
    let urls = cluster.replica_urls();
    let (c, _) = Client::open(&cluster.url, json!({})).await;
    let (mut holder, mut stream) = c.open_stream().await;
    // Subscribed where the stream is, so the subscription is in place there when it returns
    // (elsewhere it is replayed there a moment later: see the next test).
    let (_, response) = c
        .request_to(
            &urls[holder],
            "resources/subscribe",
            json!({ "uri": server.watched }),
        )
        .await;
    assert_eq!(response["result"], json!({}), "{response}");
    let (tool, args) = &server.touch;
    let is_update = is_update_of(server.watched);
    for round in ["dropped", "killed"] {
        // A change made where the stream is (every replica's upstream can make it).
        let (_, response) = c
            .request_to(&urls[holder], "tools/call", call(tool, args))
            .await;
        assert!(response.get("result").is_some(), "{response}");
        let (update, _) = stream.until(ARRIVES, &is_update).await.unwrap_or_else(|| {
            panic!("{round}: no update on r{holder}; logs:\n{}", logs(&cluster))
        });
        let last = update.id.expect("GET stream events carry ids");
        drop(stream);
        if round == "killed" {
            cluster.kill_replica(holder);
        }
        let next = (holder + 1) % 3;
        let resp = c.get(&urls[next], Some(&last)).await;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp.text().await.unwrap_or_default();
            panic!(
                "{round}: GET with Last-Event-ID {last} (r{holder}'s stream) on r{next}: \
                 HTTP {status} {body}"
            );
        }
        // Later messages come on the new stream (the next round's change).
        holder = next;
        stream = RawSse::new(resp);
    }
    let (_, response) = c
        .request_to(&urls[holder], "tools/call", call(tool, args))
        .await;
    assert!(response.get("result").is_some(), "{response}");
    assert!(
        stream.until(ARRIVES, &is_update).await.is_some(),
        "no update on the stream reconnected on r{holder}; logs:\n{}",
        logs(&cluster)
    );
}

/// A change made as soon as `resources/subscribe` returned reaches the client's GET stream
/// held by another replica. Each round subscribes to a fresh resource on one replica and has
/// the server change it at once through the replica holding the stream; every round's update
/// must arrive. (Ours only: in front of server-everything, scenario 2 already fails earlier.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_right_after_subscribing_reaches_the_stream_held_elsewhere() {
    const ROUNDS: usize = 8;
    let server = Server::ours();
    let cluster = server.cluster().await;
    let urls = cluster.replica_urls();
    let (c, _) = Client::open(&cluster.url, json!({})).await;
    let (holder, mut stream) = c.open_stream().await;
    let subscriber = (holder + 1) % 3;
    for round in 0..ROUNDS {
        let uri = format!("fixture://fx/tpl/round-{round}");
        let (_, response) = c
            .request_to(
                &urls[subscriber],
                "resources/subscribe",
                json!({ "uri": uri }),
            )
            .await;
        assert_eq!(response["result"], json!({}), "{response}");
        let (_, response) = c
            .request_to(
                &urls[holder],
                "tools/call",
                call("fx__touch", &json!({ "uri": uri })),
            )
            .await;
        let told = first_text(&response["result"]);
        let update = stream
            .until(Duration::from_secs(5), |m| {
                m["method"] == "notifications/resources/updated" && m["params"]["uri"] == uri
            })
            .await;
        assert!(
            update.is_some(),
            "round {round}: the update of {uri}, subscribed on r{subscriber} and changed at \
             once on r{holder} (the fixture {told}), never reached the GET stream on r{holder}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 6. SIGKILL in the middle of a run.
// ---------------------------------------------------------------------------------------

async fn a_replica_killed_mid_run_fails_only_what_it_was_running(server: Server) {
    const VICTIM: usize = 1;
    const CLIENTS: usize = 4;
    let mut cluster = server.cluster().await;

    // Sessions opened in turn, so one was opened on the replica that dies.
    let mut clients = Vec::new();
    let mut opened = Vec::new();
    for _ in 0..CLIENTS {
        let (c, on) = Client::open(&cluster.url, json!({})).await;
        clients.push(Arc::new(c));
        opened.push(on.expect("the balancer names the replica"));
    }
    assert!(opened.contains(&VICTIM), "{opened:?}");

    // Long calls in flight on every replica: each has sent its first progress.
    let (tool, args) = &server.long;
    let mut long = Vec::new();
    for i in 0..6 {
        let c = &clients[i % CLIENTS];
        let params = call_with_progress(tool, args, &format!("long-{i}"));
        long.push(c.stream_to(&cluster.url, "tools/call", params).await);
    }
    for (i, (_, on, stream)) in long.iter_mut().enumerate() {
        stream
            .until(ARRIVES, is_progress)
            .await
            .unwrap_or_else(|| panic!("long call {i} on r{on} never ran"));
    }
    assert_eq!(long.iter().filter(|(_, on, _)| *on == VICTIM).count(), 2);

    // Every client calling in a loop through the balancer; `answered` counts its answers.
    let stop = Arc::new(AtomicBool::new(false));
    let answered: Vec<Arc<AtomicUsize>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let mut loops = Vec::new();
    for (n, c) in clients.iter().enumerate() {
        let (c, stop, echo) = (c.clone(), stop.clone(), server.echo);
        let count = answered[n].clone();
        loops.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (tool, args, expected) = echo(&format!("client {n} call {i}"));
                let started = Instant::now();
                let attempt = c.attempt("tools/call", call(tool, &args)).await;
                if let Attempt::Answered(_, response) = &attempt {
                    assert_eq!(first_text(&response["result"]), expected, "{response}");
                    count.fetch_add(1, Ordering::Relaxed);
                }
                seen.push((started, attempt));
                i += 1;
            }
            seen
        }));
    }
    let each_answered = |n: usize| {
        let answered = answered.clone();
        move || {
            let all = answered.iter().all(|a| a.load(Ordering::Relaxed) >= n);
            std::future::ready(all.then_some(()))
        }
    };
    wait_for(WAIT, "every loop under way", each_answered(3)).await;

    cluster.kill_replica(VICTIM);
    let killed_at = Instant::now();
    // The calls in flight on the dead replica end, without a result; the others finish.
    for (i, (id, on, mut stream)) in long.into_iter().enumerate() {
        let end = within(HUNG, &format!("long call {i} on r{on} to end"), async {
            stream.until(HUNG, is_response_to(id)).await
        })
        .await;
        if on == VICTIM {
            assert!(
                end.is_none() && stream.ended(),
                "a call in flight on the killed r{on} ended with an error, not {:?}",
                end.map(|(e, _)| e.data)
            );
        } else {
            let (event, _) = end.unwrap_or_else(|| panic!("long call {i} on r{on} did not end"));
            assert!(event.json().get("result").is_some(), "{}", event.data);
        }
    }
    wait_for(WAIT, "HAProxy to mark the killed replica down", || async {
        cluster
            .balancer_log()
            .contains(&format!("replicas/r{VICTIM} is DOWN"))
            .then_some(())
    })
    .await;
    let down_at = Instant::now();
    // Let every loop run a few calls more on the survivors.
    let so_far = answered
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    wait_for(WAIT, "calls on the survivors", each_answered(so_far + 4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for (n, handle) in loops.into_iter().enumerate() {
        let seen = within(WAIT, "a client's loop to stop", handle)
            .await
            .expect("the loop did not panic");
        let mut after = 0;
        for (started, attempt) in &seen {
            match attempt {
                Attempt::Answered(Some(r), response) => {
                    assert!(response.get("result").is_some(), "client {n}: {response}");
                    if *started > killed_at {
                        assert_ne!(*r, VICTIM, "client {n} answered by the dead replica");
                    }
                    if *started > down_at {
                        after += 1;
                    }
                }
                Attempt::Hung => panic!("client {n}: a request hung: {seen:?}"),
                Attempt::Answered(None, response) => {
                    panic!("client {n}: an answer the balancer did not name: {response}")
                }
                // A clear failure (an HTTP error, a stream cut short, a refused connection),
                // and only for a request sent before HAProxy knew.
                failed => {
                    assert!(
                        *started < down_at,
                        "client {n}: a request after the kill was noticed failed: {failed:?}"
                    );
                    match failed {
                        Attempt::Refused(_, status, body) => {
                            assert!(*status >= 500, "client {n}: HTTP {status} {body}")
                        }
                        Attempt::Cut(replica, _) => assert_eq!(
                            *replica,
                            Some(VICTIM),
                            "client {n}: only the killed replica cuts a stream: {failed:?}"
                        ),
                        _ => {}
                    }
                    failures.push(format!("client {n}: {failed:?}"));
                }
            }
        }
        assert!(
            after >= 3,
            "client {n} (opened on r{}) kept its session on the survivors: {seen:?}",
            opened[n]
        );
    }
    eprintln!("calls that failed around the kill: {failures:#?}");
}

// ---------------------------------------------------------------------------------------
// 7. Redis down, and back.
// ---------------------------------------------------------------------------------------

async fn redis_down_keeps_held_sessions_and_names_the_store_for_the_rest(server: Server) {
    let mut cluster = server.cluster().await;
    let urls = cluster.replica_urls();
    // `held` has a copy on every replica; `lone` only on r0, where it was opened.
    let (held, _) = Client::open(&cluster.url, json!({})).await;
    let mut on = BTreeSet::new();
    for i in 0..3 {
        let (tool, args, _) = (server.echo)(&format!("before {i}"));
        on.insert(held.ok("tools/call", call(tool, &args)).await.0);
    }
    assert_eq!(on.len(), 3, "{on:?}");
    let (lone, _) = Client::open(&urls[0], json!({})).await;

    cluster.stop_redis();
    for (i, url) in urls.iter().enumerate() {
        let (tool, args, expected) = (server.echo)(&format!("without redis {i}"));
        let (_, response) = within(HUNG, "a held session without Redis", async {
            held.request_to(url, "tools/call", call(tool, &args)).await
        })
        .await;
        assert_eq!(
            first_text(&response["result"]),
            expected,
            "r{i}: {response}"
        );
    }
    for (i, url) in urls.iter().enumerate().skip(1) {
        let (_, body) = lone.request_body("tools/list", json!({}));
        let reply = within(
            HUNG,
            "an unknown session without Redis",
            lone.send_to(url, &body),
        )
        .await;
        assert_eq!(reply.status, 503, "r{i}: {}", reply.body);
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains("shared session store is unavailable"),
            "r{i}: {}",
            reply.body
        );
    }
    // A new session cannot be shared: refused, naming why.
    let init = initialize_body(0, VERSION);
    let resp = within(
        HUNG,
        "initialize without Redis",
        http_client()
            .post(&cluster.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .json(&init)
            .send(),
    )
    .await
    .expect("POST initialize");
    let reply = Reply::read(resp).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        reply.body.contains("shared session store is unavailable"),
        "{}",
        reply.body
    );

    // Redis back, empty: new sessions again (once the replicas reconnected), served by
    // every replica; the old ones are gone everywhere.
    cluster.start_redis();
    let fresh = wait_for(WAIT, "a new session after Redis came back", || async {
        let opened = Client::try_open(&cluster.url, json!({})).await;
        opened.ok().map(|(c, _)| c)
    })
    .await;
    let mut on = BTreeSet::new();
    for i in 0..3 {
        let (tool, args, expected) = (server.echo)(&format!("after {i}"));
        let (r, result) = fresh.ok("tools/call", call(tool, &args)).await;
        assert_eq!(first_text(&result), expected);
        on.insert(r);
    }
    assert_eq!(on.len(), 3, "{on:?}");
    for (name, c) in [("held", &held), ("lone", &lone)] {
        for (i, url) in urls.iter().enumerate() {
            wait_for(
                Duration::from_secs(5),
                &format!("{name} unknown on r{i}"),
                || async {
                    let (_, body) = c.request_body("tools/list", json!({}));
                    (c.send_to(url, &body).await.status == 404).then_some(())
                },
            )
            .await;
        }
    }
}

/// A client that only listens on its GET stream for longer than `session_idle_timeout`
/// still has its session on every replica: the replica holding the stream keeps it alive.
/// And a session too large to share is refused at `initialize`, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_session_outlives_the_idle_timeout_and_oversized_ones_are_refused() {
    let fixture = HttpFixture::start("fx", &[]);
    let yaml = format!(
        "session_idle_timeout: 3s\nupstreams:\n{}",
        http_upstream("fx", &fixture.url)
    );
    let cluster = Cluster::start(3, &yaml).await;
    for gw in &cluster.replicas {
        gw.wait_upstreams_ready().await;
    }
    let urls = cluster.replica_urls();
    let (c, _) = Client::open(&urls[0], json!({})).await;
    let reader = c.get(&urls[1], None).await;
    assert_eq!(reader.status(), 200, "GET stream on r1");
    // Nothing but the open stream for twice the idle timeout (the holder renews every
    // second here: a third of the timeout).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, answer) = c
        .request_to(
            &urls[2],
            "tools/call",
            call("fx__echo", &json!({ "text": "still here" })),
        )
        .await;
    assert_eq!(first_text(&answer["result"]), "still here", "{answer}");
    drop(reader);

    let huge = "x".repeat(70 * 1024);
    let capabilities = json!({ "experimental": { "big": huge } });
    let reply = support::post_initialize(&http_client(), &cluster.url, 0, VERSION, capabilities)
        .await
        .expect("POST initialize");
    assert!(reply.header("mcp-session-id").is_none(), "no session");
    let error = &reply.json()["error"];
    assert_eq!(error["code"], -32602, "{}", reply.body);
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("at most 65536"), "{}", reply.body);
}

/// A session stays bound to the principal that opened it on every replica: another API key
/// gets the same 404 on a replica that never saw the session as on the one that opened it,
/// and the owner is served everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_bound_to_its_principal_on_every_replica() {
    let hex = support::sha256_hex;
    let (alice, bob) = ("alice-key-0123456789", "bob-key-0123456789ab");
    let fixture = HttpFixture::start("fx", &[]);
    let yaml = format!(
        "auth:\n  api_keys:\n    - {{name: alice, sha256: \"{}\"}}\n    - {{name: bob, sha256: \"{}\"}}\nupstreams:\n{}",
        hex(alice),
        hex(bob),
        http_upstream("fx", &fixture.url)
    );
    let cluster = Cluster::start(3, &yaml).await;
    let urls = cluster.replica_urls();
    let post = |url: &str, key: &str, session: Option<&str>, body: Value| {
        let mut req = http_client()
            .post(url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .header("x-api-key", key)
            .header("mcp-protocol-version", VERSION);
        if let Some(session) = session {
            req = req.header("mcp-session-id", session);
        }
        req.json(&body).send()
    };
    let init = initialize_body(0, VERSION);
    let resp = post(&urls[0], alice, None, init).await.expect("initialize");
    assert_eq!(resp.status(), 200);
    let session = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    let list = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" });
    for (i, url) in urls.iter().enumerate().skip(1) {
        let resp = post(url, bob, Some(&session), list.clone())
            .await
            .expect("tools/list");
        assert_eq!(resp.status(), 404, "bob on r{i}");
    }
    let resp = post(&urls[0], bob, Some(&session), list.clone())
        .await
        .expect("tools/list");
    assert_eq!(resp.status(), 404, "bob on r0, where it was opened");
    for (i, url) in urls.iter().enumerate() {
        let resp = post(url, alice, Some(&session), list.clone())
            .await
            .expect("tools/list");
        assert_eq!(resp.status(), 200, "alice on r{i}");
    }
}

/// Every replica's log, for a failure's message.
fn logs(cluster: &Cluster) -> String {
    cluster
        .replicas
        .iter()
        .enumerate()
        .map(|(i, gw)| format!("--- r{i} ---\n{}", tail(&gw.log(), 150)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
