//! Multi round-trip requests (MRTR, SEP-2322) across eras: how a call that needs the
//! client's input travels between a client and an upstream that may not speak the same era.
//!
//! | client ↓ / upstream → | handshake era (server→client requests) | 2026-07-28 (`input_required`) |
//! |---|---|---|
//! | handshake era | relayed as requests (`crate::relay`) | asked as real requests, then retried upstream |
//! | 2026-07-28 | call held, client answered `input_required` | passed through, `requestState` wrapped |
//!
//! Every `requestState` a client sees is the gateway's own sealed token ([`Token`]): it binds
//! the upstream, the method, the name or URI, a digest of the arguments and the principal,
//! and expires. It carries the upstream's own state (2026-07-28 upstream: any replica
//! sharing the seal key continues the exchange) or names an exchange held on this replica
//! (handshake-era upstream: the upstream call is parked here; a retry that reaches another
//! replica sharing sessions through Redis is continued here and its outcome sent back, and
//! without Redis it is refused with a message that says so).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::Router;
use super::call::Call;
use crate::pipeline::RequestContext;
use crate::protocol::arguments::Params;
use crate::protocol::envelope::{INPUT_REQUIRED, RESULT_TYPE};
use crate::protocol::{Era, ErrorObject, Id, Payload, Request, codes, headers};
use crate::upstream::peer::{InputNeeded, Origin};

/// AEAD purpose of request-state tokens.
const PURPOSE: &[u8] = b"request-state/v1";
const TOKEN_VERSION: u8 = 1;
/// How long a held call waits for the client's retry.
pub const PARK_FOR: Duration = Duration::from_secs(600);
/// How long a token carrying a 2026-07-28 upstream's state stays valid.
const WRAPPED_FOR: Duration = Duration::from_secs(3600);
/// Most calls held at once for 2026-07-28 clients.
const MAX_PARKED: usize = 10_000;
/// Most rounds of input a 2026-07-28 upstream may ask of a handshake-era client per call.
const MAX_ROUNDS: usize = 10;
/// Pause before retrying a state-only `input_required` result (the upstream asked for a
/// plain retry).
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// What a `requestState` the gateway issues binds and carries (sealed; short keys keep it
/// small).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Token {
    v: u8,
    /// Upstream name.
    u: String,
    /// Method.
    m: String,
    /// The tool or prompt name, or the URI, as the client sent it.
    n: String,
    /// SHA-256 of the canonical arguments.
    d: String,
    /// The principal (`method:subject`).
    p: String,
    /// Expiry, seconds since the Unix epoch.
    e: u64,
    /// The upstream's own `requestState`, byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    /// A call held on the replica that issued the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
}

/// What a token must match to continue a request.
#[derive(Clone, Serialize, Deserialize)]
struct Binding {
    upstream: String,
    method: String,
    name: String,
    digest: String,
    principal: String,
}

impl Binding {
    fn of(router: &Router, ctx: &RequestContext, req: &Request, upstream: usize) -> Binding {
        let principal = ctx.principal();
        Binding {
            upstream: router.upstreams.at(upstream).name().to_owned(),
            method: req.method.clone(),
            name: headers::name_of(&req.method, req.params_except_arguments())
                .unwrap_or_default()
                .to_owned(),
            digest: digest(req.param("arguments")),
            principal: format!("{:?}:{}", principal.method, principal.subject),
        }
    }

    fn seal(
        &self,
        router: &Router,
        upstream_state: Option<String>,
        parked: Option<String>,
    ) -> String {
        let lifetime = if parked.is_some() {
            PARK_FOR
        } else {
            WRAPPED_FOR
        };
        let token = Token {
            v: TOKEN_VERSION,
            u: self.upstream.clone(),
            m: self.method.clone(),
            n: self.name.clone(),
            d: self.digest.clone(),
            p: self.principal.clone(),
            e: now() + lifetime.as_secs(),
            s: upstream_state,
            x: parked,
        };
        let payload = serde_json::to_vec(&token).unwrap_or_default();
        router.sealer.seal(PURPOSE, &payload)
    }

    /// Opens a client's `requestState`: it must be the gateway's, unexpired, and issued for
    /// this very request (upstream, method, name, arguments and caller).
    fn open(&self, router: &Router, text: &str) -> Result<Token, ErrorObject> {
        let invalid =
            |why: &str| ErrorObject::invalid_params(format!("invalid requestState: {why}"));
        let payload = router
            .sealer
            .open(PURPOSE, text)
            .map_err(|_| invalid("not issued by this gateway, or altered"))?;
        let token: Token = serde_json::from_slice(&payload).map_err(|_| invalid("unreadable"))?;
        if token.v != TOKEN_VERSION {
            return Err(invalid("from an incompatible gateway version"));
        }
        if token.e < now() {
            return Err(invalid("expired; send the request again without it"));
        }
        let same = token.u == self.upstream
            && token.m == self.method
            && token.n == self.name
            && token.d == self.digest
            && token.p == self.principal;
        if !same {
            return Err(invalid(
                "issued for another request (the name, arguments and caller must not change)",
            ));
        }
        Ok(token)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// SHA-256 of the arguments in a canonical form (object keys sorted), so a client that
/// re-serialises the same arguments differently still matches.
fn digest(arguments: Option<&Value>) -> String {
    fn canonical(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(map) => {
                let sorted: BTreeMap<&String, &Value> = map.iter().collect();
                out.push(b'{');
                for (i, (k, v)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(Value::from(k.as_str()).to_string().as_bytes());
                    out.push(b':');
                    canonical(v, out);
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    canonical(item, out);
                }
                out.push(b']');
            }
            other => out.extend_from_slice(other.to_string().as_bytes()),
        }
    }
    let mut bytes = Vec::new();
    canonical(arguments.unwrap_or(&Value::Null), &mut bytes);
    let hash = Sha256::digest(&bytes);
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Forwards a call, read or prompt to its owner, carrying it through as many rounds of
/// client input as it needs, whatever the eras on both sides.
///
/// `name` is the upstream's own name for the tool or prompt, put in place of the client's
/// namespaced one; everything else of the client's params goes as it is.
pub async fn forward(
    router: &Router,
    ctx: &RequestContext,
    req: &Request,
    upstream: usize,
    name: Option<&str>,
) -> Result<Payload, ErrorObject> {
    if ctx.era() == Era::Stateless {
        stateless_client(router, ctx, req, upstream, outgoing(req, name)).await
    } else {
        handshake_client(router, ctx, req, upstream, name).await
    }
}

/// The params to send upstream: a copy of the client's, with `name` in place of its own.
/// Arguments that pass through as text are shared, not copied.
fn outgoing(req: &Request, name: Option<&str>) -> Params {
    let mut params = req.params();
    if let Some(name) = name {
        params.object()["name"] = Value::from(name);
    }
    params
}

/// A handshake-era client. Server→client requests of a handshake-era upstream are relayed
/// live; `input_required` from a 2026-07-28 upstream is asked of the client as real
/// requests and retried upstream with the answers and the upstream's exact state.
async fn handshake_client(
    router: &Router,
    ctx: &RequestContext,
    req: &Request,
    upstream: usize,
    name: Option<&str>,
) -> Result<Payload, ErrorObject> {
    let call =
        |params: Params| Call::new(router, ctx, upstream, &req.method, params, ctx.origin()).run();
    // The params are copied again for a retry, which few calls need.
    let mut result = call(outgoing(req, name)).await?;
    for _ in 0..MAX_ROUNDS {
        if result.result_type() != INPUT_REQUIRED {
            return Ok(result);
        }
        let session = ctx.session.as_deref().ok_or_else(|| {
            ErrorObject::internal("the upstream asked for input but the client has no session")
        })?;
        let requests = result
            .get("inputRequests")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let asks = requests.iter().map(|(key, request)| async move {
            let method = request
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let answer = crate::relay::client_requests::ask(
                &router.relay,
                session,
                ctx.notify.as_ref(),
                method,
                request.get("params").cloned(),
            )
            .await?;
            Ok::<_, ErrorObject>((key.clone(), answer))
        });
        let answers: Map<String, Value> = futures::future::try_join_all(asks)
            .await?
            .into_iter()
            .collect();
        if answers.is_empty() {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        let mut retry = outgoing(req, name);
        if !answers.is_empty() {
            retry.object()["inputResponses"] = Value::Object(answers);
        }
        if let Some(state) = result.get("requestState").filter(|s| s.is_string()) {
            retry.object()["requestState"] = state.clone();
        }
        result = call(retry).await?;
    }
    Err(ErrorObject::internal(format!(
        "the upstream still asked for input after {MAX_ROUNDS} rounds"
    )))
}

/// A 2026-07-28 client: a fresh call runs with an input channel (a handshake-era upstream's
/// server→client requests land there); a retry continues a held call or hands the
/// upstream its own state back.
async fn stateless_client(
    router: &Router,
    ctx: &RequestContext,
    req: &Request,
    upstream: usize,
    mut params: Params,
) -> Result<Payload, ErrorObject> {
    // The binding (a digest of the arguments among them) is made only when a token is
    // sealed or opened: most calls never need one.
    let binding = || Binding::of(router, ctx, req, upstream);
    let state = params.remove("requestState");
    let Some(state) = state else {
        // A fresh request. Any `inputResponses` go along: the upstream decides what they
        // mean (a 2026-07-28 server may use them; others ignore unknown fields). A
        // 2026-07-28 upstream never sends server→client requests, so its calls need no
        // held exchange: straight through, its state wrapped if it asks for input.
        if router.upstreams.at(upstream).era() == Era::Stateless {
            return direct(router, ctx, req, upstream, params, binding).await;
        }
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let origin = ctx.origin().map(|o| {
            Arc::new(Origin {
                inputs: Some(tx),
                ..(*o).clone()
            })
        });
        let capabilities = ctx
            .envelope
            .as_ref()
            .map(|e| e.client_capabilities.clone())
            .unwrap_or_default();
        let call = Call::new(router, ctx, upstream, &req.method, params, origin);
        let exchange = Exchange::start(call, rx, capabilities);
        return drive(router, &binding(), exchange).await;
    };
    let Value::String(text) = state else {
        return Err(ErrorObject::invalid_params(
            "'requestState' must be a string",
        ));
    };
    let bound = binding();
    let token = bound.open(router, &text)?;
    let answers = params.remove("inputResponses").unwrap_or_else(|| json!({}));
    if let Some(id) = token.x {
        let Some(mut exchange) = router.parked.take(&id) else {
            return Box::pin(continue_elsewhere(router, upstream, &id, answers, &bound)).await;
        };
        exchange.answer(&answers);
        return drive(router, &bound, exchange).await;
    }
    // A 2026-07-28 upstream's own state: hand it back exactly, with the answers.
    if let Some(p) = params.object().as_object_mut() {
        p.insert("inputResponses".into(), answers);
        if let Some(state) = token.s {
            p.insert("requestState".into(), Value::from(state));
        }
    }
    // Boxed, as is the continuation elsewhere: retries are rare, and inline their state
    // would size (and cost a copy of) the future of every fresh call.
    Box::pin(direct(router, ctx, req, upstream, params, || bound)).await
}

/// A retry for a call this replica does not hold: when replicas share sessions and the id
/// names another replica, that replica continues it and its outcome is the answer here.
async fn continue_elsewhere(
    router: &Router,
    upstream: usize,
    id: &str,
    answers: Value,
    bound: &Binding,
) -> Result<Payload, ErrorObject> {
    let not_held = || {
        ErrorObject::invalid_params(
            "requestState names a call this gateway replica no longer holds (it expired); \
             send the request again without requestState",
        )
    };
    let shared = router.relay.sessions.shared().ok_or_else(not_held)?;
    let owner = Parked::replica_of(id)
        .filter(|owner| *owner != shared.replica)
        .ok_or_else(not_held)?;
    // As long as the held call may still take upstream, and a little more.
    let wait = router.upstreams.at(upstream).config.timeout + Duration::from_secs(5);
    let binding = serde_json::to_value(bound).unwrap_or_default();
    let outcome =
        crate::relay::bus::continue_elsewhere(shared, owner, id, answers, binding, wait).await?;
    outcome_of(outcome)
}

/// Continues call `id` held here for a retry that reached another replica (see
/// [`crate::relay::bus::continue_elsewhere`]): the outcome as `{"ok": result}` or
/// `{"err": error}`.
pub async fn continue_held(router: &Router, id: &str, answers: Value, binding: Value) -> Value {
    let outcome = async {
        let bound: Binding = serde_json::from_value(binding)
            .map_err(|_| ErrorObject::internal("an unreadable held-call binding"))?;
        let mut exchange = router.parked.take(id).ok_or_else(|| {
            ErrorObject::invalid_params(
                "requestState names a call this gateway replica no longer holds (it expired); \
                 send the request again without requestState",
            )
        })?;
        exchange.answer(&answers);
        drive(router, &bound, exchange).await
    };
    match outcome.await {
        Ok(result) => json!({ "ok": result }),
        Err(e) => json!({ "err": e }),
    }
}

fn outcome_of(outcome: Value) -> Result<Payload, ErrorObject> {
    match outcome {
        Value::Object(mut o) => match (o.remove("ok"), o.remove("err")) {
            (Some(result), _) => Ok(result.into()),
            (None, Some(e)) => Err(serde_json::from_value(e)
                .unwrap_or_else(|_| ErrorObject::internal("an unreadable error from a replica"))),
            _ => Err(ErrorObject::internal("an unreadable answer from a replica")),
        },
        _ => Err(ErrorObject::internal("an unreadable answer from a replica")),
    }
}

/// A call to a 2026-07-28 upstream for a 2026-07-28 client: its input requests pass
/// through, its state travels wrapped in the gateway's token.
async fn direct(
    router: &Router,
    ctx: &RequestContext,
    req: &Request,
    upstream: usize,
    params: Params,
    binding: impl FnOnce() -> Binding,
) -> Result<Payload, ErrorObject> {
    let call = Call::new(router, ctx, upstream, &req.method, params, ctx.origin());
    Ok(wrap(router, binding, call.run().await?))
}

/// An upstream's `input_required` result for a 2026-07-28 client: its requests pass
/// through, its state is wrapped in the gateway's token.
fn wrap(router: &Router, binding: impl FnOnce() -> Binding, mut result: Payload) -> Payload {
    if result.result_type() != INPUT_REQUIRED {
        return result;
    }
    let upstream_state = result
        .get("requestState")
        .and_then(Value::as_str)
        .map(str::to_owned);
    result["requestState"] = Value::from(binding().seal(router, upstream_state, None));
    result
}

/// How long to wait for further input requests after the first, so requests an upstream
/// makes together reach the client in one round.
const GATHER: Duration = Duration::from_millis(25);

/// Server→client requests queued between an upstream and the exchange that asks for them.
const INPUT_QUEUE: usize = 16;

/// A call in flight for a 2026-07-28 client, with the input requests it is waiting on.
pub struct Exchange {
    call: tokio::task::JoinHandle<Result<Payload, ErrorObject>>,
    /// What the client declared on the request that started the call.
    capabilities: Value,
    inputs: mpsc::Receiver<InputNeeded>,
    /// Asked of the client and not answered yet: key → (request, where the answer goes).
    waiting: BTreeMap<String, (Value, oneshot::Sender<Result<Value, ErrorObject>>)>,
    next_key: u32,
}

impl Drop for Exchange {
    /// An exchange nobody continues (the client went away, the hold expired): the call is
    /// abandoned, which cancels it upstream.
    fn drop(&mut self) {
        self.call.abort();
    }
}

impl Exchange {
    fn start(call: Call, inputs: mpsc::Receiver<InputNeeded>, capabilities: Value) -> Exchange {
        Exchange {
            call: tokio::spawn(call.run()),
            capabilities,
            inputs,
            waiting: BTreeMap::new(),
            next_key: 0,
        }
    }

    /// Takes an input request the upstream made. One the client did not declare the
    /// capability for fails the upstream's request, and the client's with -32021.
    fn add(&mut self, input: InputNeeded) -> Result<(), ErrorObject> {
        let probe = Request::new(Id::Num(0), input.method.clone(), input.params.clone());
        if let Err(e) = crate::relay::client_requests::permitted(&self.capabilities, &probe) {
            let _ = input.reply.send(Err(e.clone()));
            return Err(ErrorObject::missing_capability(
                required_capability(&input.method, input.params.as_ref()),
                format!("the upstream asked for {}: {}", input.method, e.message),
            ));
        }
        self.next_key += 1;
        let key = format!("manifold-{}", self.next_key);
        let mut params = input.params.unwrap_or_else(|| json!({}));
        // The upstream's own progress token means nothing to the client.
        if let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) {
            meta.remove("progressToken");
            // Nor does a 2025-11-25 task tag (a 2026-07-28 task carries its id itself).
            meta.remove(crate::session::tasks::record::RELATED_TASK);
            if meta.is_empty() {
                params.as_object_mut().map(|p| p.remove("_meta"));
            }
        }
        let request = json!({ "method": input.method, "params": params });
        self.waiting.insert(key, (request, input.reply));
        Ok(())
    }

    /// Feeds the client's answers to the requests waiting for them; unknown keys are
    /// ignored, unanswered requests keep waiting.
    fn answer(&mut self, answers: &Value) {
        let Some(answers) = answers.as_object() else {
            return;
        };
        for (key, answer) in answers {
            if let Some((_, reply)) = self.waiting.remove(key) {
                let _ = reply.send(Ok(answer.clone()));
            }
        }
    }

    fn input_required(&self, token: String) -> Value {
        let requests: Map<String, Value> = self
            .waiting
            .iter()
            .map(|(k, (request, _))| (k.clone(), request.clone()))
            .collect();
        json!({
            RESULT_TYPE: INPUT_REQUIRED,
            "inputRequests": requests,
            "requestState": token,
        })
    }
}

/// Runs an exchange until the call completes or needs input the client has not given;
/// then the call is held and the client gets an `input_required` result.
async fn drive(
    router: &Router,
    binding: &Binding,
    mut exchange: Exchange,
) -> Result<Payload, ErrorObject> {
    if exchange.waiting.is_empty() {
        tokio::select! {
            biased;
            Some(input) = exchange.inputs.recv() => {
                exchange.add(input)?;
                // An upstream asking several things at once sends them back to back: take
                // what follows within a moment, so the client gets them in one round.
                let gather = tokio::time::sleep(GATHER);
                tokio::pin!(gather);
                loop {
                    tokio::select! {
                        biased;
                        Some(more) = exchange.inputs.recv() => exchange.add(more)?,
                        _ = &mut gather => break,
                    }
                }
            }
            outcome = &mut exchange.call => {
                let result = outcome.map_err(|e| ErrorObject::internal(format!("the call failed: {e}")))??;
                return Ok(wrap(router, || binding.clone(), result));
            }
        }
    }
    let id = router.parked.hold_id()?;
    let token = binding.seal(router, None, Some(id.clone()));
    let result = exchange.input_required(token);
    router.parked.put(id, exchange);
    Ok(result.into())
}

/// The ClientCapabilities an input request needs, for -32021's `requiredCapabilities`.
fn required_capability(method: &str, params: Option<&Value>) -> Value {
    match method {
        crate::protocol::methods::SAMPLING_CREATE_MESSAGE => json!({ "sampling": {} }),
        crate::protocol::methods::ROOTS_LIST => json!({ "roots": {} }),
        _ => {
            let mode = params
                .and_then(|p| p.get("mode"))
                .and_then(Value::as_str)
                .unwrap_or("form");
            json!({ "elicitation": { mode: {} } })
        }
    }
}

/// Calls held for 2026-07-28 clients between an `input_required` answer and its retry.
#[derive(Default)]
pub struct Parked {
    held: DashMap<String, (Instant, Exchange)>,
    /// This replica's number when replicas share sessions (0: they do not); held ids start
    /// with it, so a retry reaching another replica is continued here.
    replica: std::sync::atomic::AtomicU32,
}

impl Parked {
    /// Name replica `replica` in held ids.
    pub fn set_replica(&self, replica: u32) {
        self.replica
            .store(replica, std::sync::atomic::Ordering::Relaxed);
    }

    /// The replica a held id names (`r<N>-<hex>`).
    fn replica_of(id: &str) -> Option<u32> {
        id.strip_prefix('r')?.split_once('-')?.0.parse().ok()
    }

    /// A fresh id for a held call, or "busy" when too many are held.
    fn hold_id(&self) -> Result<String, ErrorObject> {
        self.sweep();
        if self.held.len() >= MAX_PARKED {
            return Err(ErrorObject::new(
                codes::GATEWAY_BUSY,
                "gateway busy: too many calls waiting for client input",
            ));
        }
        let bytes: [u8; 16] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(
            match self.replica.load(std::sync::atomic::Ordering::Relaxed) {
                0 => hex,
                replica => format!("r{replica}-{hex}"),
            },
        )
    }

    fn put(&self, id: String, exchange: Exchange) {
        self.held.insert(id, (Instant::now() + PARK_FOR, exchange));
    }

    fn take(&self, id: &str) -> Option<Exchange> {
        let (_, (deadline, exchange)) = self.held.remove(id)?;
        (deadline > Instant::now()).then_some(exchange)
    }

    /// Drops held calls whose client never came back (their upstream calls are cancelled).
    fn sweep(&self) {
        let now = Instant::now();
        self.held.retain(|_, (deadline, _)| *deadline > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_ignores_key_order_but_not_values() {
        let a = json!({ "x": 1, "y": { "b": [1, 2], "a": "s" } });
        let b = json!({ "y": { "a": "s", "b": [1, 2] }, "x": 1 });
        let c = json!({ "x": 2, "y": { "b": [1, 2], "a": "s" } });
        assert_eq!(digest(Some(&a)), digest(Some(&b)));
        assert_ne!(digest(Some(&a)), digest(Some(&c)));
        assert_eq!(digest(None), digest(Some(&Value::Null)));
    }
}
