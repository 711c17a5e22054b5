//! Authentication of HTTP clients, end to end with the real binary: JWTs signed here and
//! verified against a JWK set served by a loopback HTTP server in this test (valid, expired,
//! wrong audience, foreign key, rotated key), static API keys, the RFC 9728 metadata and the
//! `WWW-Authenticate` challenges, sessions bound to their principal, and what an HTTP
//! upstream gets to see of the caller (selected claims, never the caller's token).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{
    ACCEPT_BOTH, Gateway, Mcp, Reply, VERSION, WAIT, http_client, initialize_body, sha256_hex,
    wait_for,
};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "manifold-tests";
/// What the gateway itself is configured to send the upstream as its credential.
const UPSTREAM_CREDENTIAL: &str = "Bearer upstream-own-credential";
const CI_KEY: &str = "ci-key-0123456789";
const BOT_KEY: &str = "bot-key-from-the-environment";
const NOSCOPE_KEY: &str = "key-without-scopes";

// ---- keys and tokens ----

/// A test-only private key from `tests/keys`, with the `kid` it is published under.
struct SigningKey {
    encoding: EncodingKey,
    alg: Algorithm,
    kid: String,
}

impl SigningKey {
    fn load(file: &str, kid: &str) -> SigningKey {
        let path = format!("{}/tests/keys/{file}", env!("CARGO_MANIFEST_DIR"));
        let pem = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (encoding, alg) = if file.starts_with("ec") {
            (
                EncodingKey::from_ec_pem(&pem).expect("EC PEM"),
                Algorithm::ES256,
            )
        } else {
            (
                EncodingKey::from_rsa_pem(&pem).expect("RSA PEM"),
                Algorithm::RS256,
            )
        };
        SigningKey {
            encoding,
            alg,
            kid: kid.to_owned(),
        }
    }

    /// The public half, as a JWK.
    fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).expect("public JWK");
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        serde_json::to_value(jwk).unwrap()
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims of a good token for `sub`, valid for ten minutes.
fn claims(sub: &str) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now(),
        "exp": now() + 600,
        "scope": "mcp profile",
        "email": format!("{sub}@example.test"),
    })
}

// ---- the issuer's JWK set on loopback ----

#[derive(Clone)]
struct Issuer {
    url: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl Issuer {
    async fn start(keys: &[&SigningKey]) -> Issuer {
        let issuer = Issuer {
            url: String::new(),
            jwks: Arc::new(Mutex::new(Value::Null)),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        issuer.publish(keys);
        let app = axum::Router::new()
            .route("/jwks.json", axum::routing::get(serve_jwks))
            .with_state(issuer.clone());
        let url = serve(app).await;
        Issuer {
            url: format!("{url}/jwks.json"),
            ..issuer
        }
    }

    /// Replaces the published key set; an empty list makes the endpoint fail (HTTP 500).
    fn publish(&self, keys: &[&SigningKey]) {
        if keys.is_empty() {
            *self.jwks.lock().unwrap() = Value::Null;
            return;
        }
        let keys: Vec<Value> = keys.iter().map(|k| k.jwk()).collect();
        *self.jwks.lock().unwrap() = json!({ "keys": keys });
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn serve_jwks(State(issuer): State<Issuer>) -> Response {
    issuer.fetches.fetch_add(1, Ordering::SeqCst);
    let body = issuer.jwks.lock().unwrap().clone();
    if body.is_null() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    axum::Json(body).into_response()
}

/// Serves `app` on a free loopback port; returns `http://127.0.0.1:PORT`.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

// ---- an upstream that records what it is sent ----

/// A minimal Streamable HTTP MCP server with one tool, `whoami`, that keeps the headers of
/// every request it receives.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<(String, HeaderMap)>>>,
    sessions: Arc<AtomicUsize>,
}

impl Recorder {
    async fn start() -> (Recorder, String) {
        let recorder = Recorder::default();
        let app = axum::Router::new()
            .route(
                "/mcp",
                axum::routing::post(recorder_post)
                    .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
                    .delete(|| async { StatusCode::OK }),
            )
            .with_state(recorder.clone());
        let url = serve(app).await;
        (recorder, format!("{url}/mcp"))
    }

    fn seen(&self) -> Vec<(String, HeaderMap)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn recorder_post(
    State(rec): State<Recorder>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = msg["method"].as_str().unwrap_or("").to_owned();
    rec.seen
        .lock()
        .unwrap()
        .push((method.clone(), headers.clone()));
    let Some(id) = msg.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response();
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let result = match method.as_str() {
        "initialize" => json!({
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "recorder", "version": "0"},
        }),
        "tools/list" => json!({"tools": [{"name": "whoami", "inputSchema": {"type": "object"}}]}),
        "tools/call" => {
            let text = format!("user={} email={}", header("x-user"), header("x-email"));
            json!({"content": [{"type": "text", "text": text}]})
        }
        "ping" => json!({}),
        other => {
            let error = json!({"code": -32601, "message": format!("no method {other}")});
            return axum::Json(json!({"jsonrpc": "2.0", "id": id, "error": error})).into_response();
        }
    };
    let mut resp =
        axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response();
    if method == "initialize" {
        let n = rec.sessions.fetch_add(1, Ordering::SeqCst);
        resp.headers_mut()
            .insert("mcp-session-id", format!("up-{n}").parse().unwrap());
    }
    resp
}

// ---- the gateway ----

struct Setup {
    gw: Gateway,
    issuer: Issuer,
    recorder: Recorder,
    key_a: SigningKey,
    key_b: SigningKey,
    ec: SigningKey,
    stranger: SigningKey,
}

/// A gateway with API keys, a JWT issuer (key A and the EC key published) and the recording
/// upstream, which gets the caller's `sub` and `email` as headers.
async fn setup(cooldown: &str) -> Setup {
    let key_a = SigningKey::load("rsa-a.pem", "key-a");
    let key_b = SigningKey::load("rsa-b.pem", "key-b");
    let ec = SigningKey::load("ec-a.pem", "ec-a");
    // Publishes under key A's id, to look like the real thing.
    let stranger = SigningKey::load("rsa-stranger.pem", "key-a");
    let issuer = Issuer::start(&[&key_a, &ec]).await;
    let (recorder, upstream) = Recorder::start().await;
    let yaml = format!(
        r#"
auth:
  api_keys:
    - {{name: ci, sha256: "{ci}", scopes: [mcp]}}
    - {{name: bot, env: AUTH_TEST_BOT_KEY, scopes: [mcp, extra]}}
    - {{name: noscope, sha256: "{noscope}"}}
  jwt:
    issuer: {ISSUER}
    audience: [{AUDIENCE}, other-audience]
    jwks_url: {jwks}
    algorithms: [RS256, ES256]
    leeway: 30s
    jwks_cooldown: {cooldown}
  required_scopes: [mcp]
upstreams:
  rec:
    url: {upstream:?}
    headers:
      authorization: {UPSTREAM_CREDENTIAL:?}
    identity_headers:
      x-user: sub
      x-email: email
"#,
        ci = sha256_hex(CI_KEY),
        noscope = sha256_hex(NOSCOPE_KEY),
        jwks = issuer.url,
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    std::fs::write(&config, yaml).unwrap();
    let gw = Gateway::start_with(dir, &config, &[("AUTH_TEST_BOT_KEY", BOT_KEY)]);
    gw.wait_ready().await;
    Setup {
        gw,
        issuer,
        recorder,
        key_a,
        key_b,
        ec,
        stranger,
    }
}

/// A client whose every request carries `Authorization: Bearer <token>`.
fn client_with(token: &str) -> reqwest::Client {
    support::init_tls();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A session opened with `token`, once the merged catalog lists the upstream's tool.
async fn session(gw: &Gateway, token: &str) -> Mcp {
    let mcp = Mcp::connect_using(client_with(token), &gw.url, VERSION, json!({})).await;
    wait_for(WAIT, "rec__whoami in tools/list", || async {
        let names = mcp.list_keys("tools/list", "tools", "name").await;
        names.iter().any(|n| n == "rec__whoami").then_some(())
    })
    .await;
    mcp
}

/// `initialize` with the given extra headers, answer read whole.
async fn initialize(gw: &Gateway, headers: &[(&str, &str)]) -> Reply {
    let mut req = http_client()
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .json(&initialize_body(1, VERSION));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Reply::read(req.send().await.expect("POST initialize")).await
}

async fn initialize_bearer(gw: &Gateway, token: &str) -> Reply {
    initialize(gw, &[("authorization", &format!("Bearer {token}"))]).await
}

/// The RFC 9728 document URL the gateway's challenges must name.
fn metadata_url(gw: &Gateway) -> String {
    format!("{}/.well-known/oauth-protected-resource/mcp", gw.base)
}

fn assert_invalid_token(reply: &Reply, description: &str) {
    assert_eq!(reply.status, 401, "{}", reply.body);
    let challenge = reply.header("www-authenticate").expect("WWW-Authenticate");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        challenge.contains(&format!("error_description=\"{description}\"")),
        "{challenge}"
    );
    assert_eq!(
        reply.json()["error"]["code"],
        json!(-32014),
        "{}",
        reply.body
    );
}

// ---- tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_jwts_open_sessions_and_list_tools() {
    let s = setup("0s").await;
    let mcp = session(&s.gw, &s.key_a.sign(&claims("alice"))).await;
    let text = mcp.call_text("rec__whoami", json!({})).await;
    assert_eq!(text, "user=alice email=alice@example.test");
    // An ES256 key of the same set works as well.
    let es = session(&s.gw, &s.ec.sign(&claims("erin"))).await;
    assert!(es.session != mcp.session);
    // Expired a few seconds ago, within the 30 s leeway for clock skew.
    let mut skewed = claims("sam");
    skewed["exp"] = json!(now() - 5);
    assert_eq!(
        initialize_bearer(&s.gw, &s.key_a.sign(&skewed))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_401_invalid_token() {
    let s = setup("0s").await;
    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 120);
    let mut audience = claims("alice");
    audience["aud"] = json!("someone-else");
    let mut issuer = claims("alice");
    issuer["iss"] = json!("https://evil.test");
    let mut no_sub = claims("alice");
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut early = claims("alice");
    early["nbf"] = json!(now() + 3600);
    let unknown_kid = SigningKey::load("rsa-stranger.pem", "nobody");
    let cases = [
        (s.key_a.sign(&expired), "token expired"),
        (s.key_a.sign(&audience), "token audience not accepted"),
        (s.key_a.sign(&issuer), "token issuer not accepted"),
        (s.key_a.sign(&no_sub), "token has no 'sub' claim"),
        (s.key_a.sign(&early), "token not yet valid"),
        // Signed by a key the issuer never published, under a published key id.
        (
            s.stranger.sign(&claims("alice")),
            "token signature does not verify",
        ),
        (
            unknown_kid.sign(&claims("alice")),
            "token signed by an unknown key",
        ),
        // A published key that is not in the rotation yet.
        (
            s.key_b.sign(&claims("alice")),
            "token signed by an unknown key",
        ),
        ("not-a-token".to_owned(), "unknown API key or token"),
        // The gateway's built-in principals: a token may not pass for them.
        (s.key_a.sign(&claims("local")), "reserved subject"),
        (s.key_a.sign(&claims("anonymous")), "reserved subject"),
    ];
    for (token, description) in cases {
        let reply = initialize_bearer(&s.gw, &token).await;
        assert_invalid_token(&reply, description);
        assert!(
            !reply.body.contains(&token),
            "the token is echoed: {}",
            reply.body
        );
        assert!(!s.gw.log().contains(&token), "the token is logged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_picked_up_and_the_retired_one_refused() {
    let s = setup("0s").await;
    let old = s.key_a.sign(&claims("alice"));
    assert_eq!(initialize_bearer(&s.gw, &old).await.status, 200);
    let before = s.issuer.fetches();

    // The issuer rotates: key B in, key A out. No restart, no cache expiry.
    s.issuer.publish(&[&s.key_b]);
    let new = s.key_b.sign(&claims("alice"));
    assert_eq!(
        initialize_bearer(&s.gw, &new).await.status,
        200,
        "the new key is fetched on its first use"
    );
    assert!(s.issuer.fetches() > before);
    assert_invalid_token(
        &initialize_bearer(&s.gw, &old).await,
        "token signed by an unknown key",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_ids_do_not_flood_the_issuer() {
    let s = setup("10m").await;
    assert_eq!(
        initialize_bearer(&s.gw, &s.key_a.sign(&claims("alice")))
            .await
            .status,
        200
    );
    let before = s.issuer.fetches();
    assert_eq!(before, 1, "one fetch on first use");
    for i in 0..5 {
        let forged = SigningKey::load("rsa-stranger.pem", &format!("made-up-{i}"));
        let reply = initialize_bearer(&s.gw, &forged.sign(&claims("mallory"))).await;
        assert_eq!(reply.status, 401);
    }
    // Within the cooldown a new key id triggers no fetch at all.
    assert_eq!(s.issuer.fetches(), before);
    // ...which also means a real rotation waits for the cooldown (or the cache period).
    s.issuer.publish(&[&s.key_a, &s.key_b]);
    assert_eq!(
        initialize_bearer(&s.gw, &s.key_b.sign(&claims("alice")))
            .await
            .status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_get_401_pointing_to_the_metadata() {
    let s = setup("0s").await;
    let reply = initialize(&s.gw, &[]).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    let url = metadata_url(&s.gw);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(format!("Bearer resource_metadata=\"{url}\", scope=\"mcp\"").as_str())
    );
    // GET streams and DELETE need credentials as much as POSTs.
    let get = http_client()
        .get(&s.gw.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", "whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 401);
    let delete = http_client()
        .delete(&s.gw.url)
        .header("mcp-session-id", "whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 401);
    // So does the HTTP+SSE transport.
    let sse = http_client()
        .get(format!("{}/sse", s.gw.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 401);
    assert!(sse.headers().contains_key("www-authenticate"));

    // The document is public, at the path-suffixed URL and at the bare well-known path.
    let expected = json!({
        "resource": format!("{}/mcp", s.gw.base),
        "authorization_servers": [ISSUER],
        "scopes_supported": ["mcp"],
        "bearer_methods_supported": ["header"],
    });
    for at in [
        url.clone(),
        format!("{}/.well-known/oauth-protected-resource", s.gw.base),
    ] {
        let resp = http_client().get(&at).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{at}");
        assert_eq!(resp.json::<Value>().await.unwrap(), expected, "{at}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_without_the_required_scope_get_403_naming_it() {
    let s = setup("0s").await;
    let mut narrow = claims("alice");
    narrow["scope"] = json!("profile");
    for reply in [
        initialize_bearer(&s.gw, &s.key_a.sign(&narrow)).await,
        initialize(&s.gw, &[("x-api-key", NOSCOPE_KEY)]).await,
    ] {
        assert_eq!(reply.status, 403, "{}", reply.body);
        let challenge = reply.header("www-authenticate").unwrap();
        assert_eq!(
            challenge,
            format!(
                "Bearer resource_metadata=\"{}\", error=\"insufficient_scope\", scope=\"mcp\", \
                 error_description=\"insufficient scope: missing mcp\"",
                metadata_url(&s.gw)
            )
        );
    }
    // `scp` as an array grants scopes too.
    let mut scp = claims("alice");
    scp.as_object_mut().unwrap().remove("scope");
    scp["scp"] = json!(["mcp"]);
    assert_eq!(
        initialize_bearer(&s.gw, &s.key_a.sign(&scp)).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_accepted_and_unknown_ones_refused() {
    let s = setup("0s").await;
    let ci = session(&s.gw, CI_KEY).await;
    assert_eq!(
        ci.call_text("rec__whoami", json!({})).await,
        "user=ci email=",
        "an API key's subject is its name"
    );
    let bot = session(&s.gw, BOT_KEY).await;
    assert!(!bot.session.is_empty());
    assert_eq!(
        initialize(&s.gw, &[("x-api-key", CI_KEY)]).await.status,
        200
    );
    assert_invalid_token(
        &initialize_bearer(&s.gw, "ci-key-012345678").await,
        "unknown API key or token",
    );
    assert_invalid_token(
        &initialize(&s.gw, &[("x-api-key", "nope")]).await,
        "unknown API key",
    );
    let log = s.gw.log();
    assert!(!log.contains(CI_KEY) && !log.contains(BOT_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_useless_with_another_principals_credentials() {
    let s = setup("0s").await;
    let alice = session(&s.gw, &s.key_a.sign(&claims("alice"))).await;
    for other in [s.key_a.sign(&claims("bob")), CI_KEY.to_owned()] {
        let reply = Reply::read(
            alice
                .post()
                .header("authorization", format!("Bearer {other}"))
                .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 404, "{}", reply.body);
    }
    // Alice herself, with a fresh token, still gets in.
    let again = Reply::read(
        alice
            .post()
            .header(
                "authorization",
                format!("Bearer {}", s.key_a.sign(&claims("alice"))),
            )
            .json(&json!({"jsonrpc": "2.0", "id": 10, "method": "tools/list"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_see_selected_claims_but_never_the_clients_token() {
    let s = setup("0s").await;
    let token = s.key_a.sign(&claims("alice"));
    let alice = session(&s.gw, &token).await;
    assert_eq!(
        alice.call_text("rec__whoami", json!({})).await,
        "user=alice email=alice@example.test"
    );
    let seen = s.recorder.seen();
    let calls: Vec<&HeaderMap> = seen
        .iter()
        .filter(|(m, _)| m == "tools/call")
        .map(|(_, h)| h)
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].get("x-user").unwrap(), "alice");
    assert!(seen.iter().any(|(m, _)| m == "initialize"));
    let signature = token.rsplit('.').next().unwrap();
    for (method, headers) in &seen {
        // Every request carries the gateway's own credential for this upstream.
        assert_eq!(
            headers.get("authorization").map(|v| v.to_str().unwrap()),
            Some(UPSTREAM_CREDENTIAL),
            "{method}"
        );
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            assert!(
                !value.contains(signature),
                "{method}: header {name} carries the client's token"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_key_set_is_503_until_it_comes_back() {
    let key = SigningKey::load("rsa-a.pem", "key-a");
    let issuer = Issuer::start(&[]).await;
    let yaml = format!(
        "auth:\n  jwt:\n    issuer: {ISSUER}\n    audience: {AUDIENCE}\n    jwks_url: {}\n    \
         jwks_cooldown: 0s\nupstreams: {{}}\n",
        issuer.url
    );
    let gw = Gateway::start(&yaml);
    let token = key.sign(&claims("alice"));
    let reply = initialize_bearer(&gw, &token).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.contains("signing keys could not be fetched"));
    issuer.publish(&[&key]);
    assert_eq!(initialize_bearer(&gw, &token).await.status, 200);
    assert!(issuer.fetches() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_auth_section_there_is_no_metadata_and_no_challenge() {
    let gw = Gateway::start("upstreams: {}\n");
    let reply = initialize(&gw, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let resp = http_client()
        .get(format!("{}/.well-known/oauth-protected-resource", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_opener_of_a_http_sse_stream_can_initialize_on_it() {
    let s = setup("10s").await;
    let opened = support::streaming_client()
        .get(format!("{}/sse", s.gw.base))
        .header("accept", "text/event-stream")
        .bearer_auth(CI_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    let mut sse = support::RawSse::new(opened);
    let endpoint = sse.next(WAIT).await.expect("the endpoint event");
    assert_eq!(endpoint.event.as_deref(), Some("endpoint"), "{endpoint:?}");
    let message_url = format!("{}{}", s.gw.base, endpoint.data);
    let post = |key: &'static str| {
        http_client()
            .post(&message_url)
            .header("content-type", "application/json")
            .bearer_auth(key)
            .json(&initialize_body(1, VERSION))
            .send()
    };
    // Another valid principal who learnt the id (it travels in a URL) cannot take it over.
    let hijack = post(BOT_KEY).await.unwrap();
    assert_eq!(hijack.status(), 404);
    // The opener can, and its answer arrives on its stream.
    let own = post(CI_KEY).await.unwrap();
    assert_eq!(own.status(), 202);
    let answer = sse.next(WAIT).await.expect("the initialize answer").json();
    assert_eq!(answer["id"], 1, "{answer}");
    assert!(answer["result"]["protocolVersion"].is_string(), "{answer}");
}
