//! Asking the calling client for input while a request is open, in either
//! protocol era.
//!
//! A tool or prompt that needs the client's user (elicitation), LLM
//! (sampling) or roots is written once, as a step function in the style of
//! 2026-07-28's multi round-trip requests (SEP-2322): given the answers
//! gathered so far it either finishes ([`Step::Done`]) or names the questions
//! it still needs answered ([`Step::Ask`]). [`drive`] runs that function the
//! way the request's era wants:
//!
//! * 2026-07-28 (stateless): a step that asks ends the request with an
//!   `InputRequiredResult` (`resultType: "input_required"`, `inputRequests`
//!   and, when the step keeps state, a sealed `requestState`). The client
//!   answers by sending the same request again with `inputResponses` and the
//!   state, and the step runs again on those.
//! * The handshake era (2024-11-05 … 2025-11-25): servers may send requests
//!   to the client, so the fixture asks each question itself, as
//!   `elicitation/create`, `sampling/createMessage` or `roots/list` on the
//!   caller's connection, and runs the step again with the answers until it
//!   finishes. A gateway in front of the fixture sees real server-to-client
//!   requests, which is what it must route back to the right client.
//!
//! A 2026-07-28 tool call that became a task (SEP-2663, see `tasks.rs`) runs
//! its step in the task instead, through [`drive_task`]: the questions wait
//! in the task's `inputRequests`, where `tasks/get` shows them, until the
//! client answers each with `tasks/update`; then the step runs again on the
//! answers. Nothing goes back and forth in the tool call itself, so there is
//! no `requestState` to seal: the state stays in the task.
//!
//! `requestState` comes back from the client, so it is untrusted: it is
//! sealed with XChaCha20-Poly1305 under a key that never leaves this process,
//! bound to the request it belongs to (method, tool or prompt name and
//! arguments) and given an expiry. A value that was altered, minted for
//! another request or has expired is refused with -32602.

// Sampling and roots are deprecated in 2026-07-28 (SEP-2577) but still part
// of it, and the conformance scenarios ask for both.
#![allow(deprecated)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use rmcp::model::{
    ClientCapabilities, ClientResult, CreateMessageResult, ElicitResult, InputRequest,
    InputRequests, InputRequiredResult, InputResponses, JsonObject, ListRootsResult, ServerRequest,
};
use rmcp::service::RequestContext;
use rmcp::task_manager::{TaskContext, TaskExit};
use rmcp::{ErrorData, RoleServer};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::content::from_json;
use crate::handler::is_stateless;

/// How long a sealed `requestState` stays valid: long enough for a person to
/// answer a form, short enough that old states cannot be replayed forever.
const STATE_TTL: Duration = Duration::from_secs(10 * 60);

/// Bound on the rounds the handshake-era and task drivers run, so a step
/// that keeps asking cannot hold a request or a task open forever.
const MAX_ROUNDS: usize = 10;

/// XChaCha20 nonce length in bytes; random nonces of this size never repeat
/// in practice.
const NONCE_LEN: usize = 24;

/// What a step decided.
pub enum Step<T> {
    /// The request is complete.
    Done(T),
    /// The client must answer these questions first.
    Ask(Ask),
}

/// Questions for the client, keyed by names the step chooses, and the state
/// the step wants back with the answers.
pub struct Ask {
    questions: InputRequests,
    state: Option<Value>,
}

impl<T> Step<T> {
    /// Asks the questions in `questions`, a JSON object mapping each key to
    /// a request object (`{"method": …, "params": …}`), without keeping state.
    pub fn ask(questions: Value) -> Result<Self, ErrorData> {
        Ok(Self::Ask(Ask {
            questions: from_json(questions)?,
            state: None,
        }))
    }

    /// Like [`Step::ask`], and has `state` handed back on the next round.
    pub fn ask_keeping(questions: Value, state: Value) -> Result<Self, ErrorData> {
        Ok(Self::Ask(Ask {
            questions: from_json(questions)?,
            state: Some(state),
        }))
    }
}

/// The answers and state a step runs on.
#[derive(Default)]
pub struct Round {
    answers: InputResponses,
    state: Option<Value>,
}

impl Round {
    /// The state the previous step kept, once verified.
    pub fn state(&self) -> Option<&Value> {
        self.state.as_ref()
    }

    /// The client's answer to the elicitation asked under `key`, if it sent one.
    pub fn elicited(&self, key: &str) -> Result<Option<ElicitResult>, ErrorData> {
        self.answer(key, "ElicitResult")
    }

    /// The client's answer to the sampling request asked under `key`.
    pub fn sampled(&self, key: &str) -> Result<Option<CreateMessageResult>, ErrorData> {
        self.answer(key, "CreateMessageResult")
    }

    /// The client's answer to the `roots/list` asked under `key`.
    pub fn roots(&self, key: &str) -> Result<Option<ListRootsResult>, ErrorData> {
        self.answer(key, "ListRootsResult")
    }

    /// An answer that is present but not the result its question calls for
    /// is a malformed request (-32602), not a reason to ask again.
    fn answer<T: DeserializeOwned>(&self, key: &str, what: &str) -> Result<Option<T>, ErrorData> {
        let Some(answer) = self.answers.get(key) else {
            return Ok(None);
        };
        serde_json::from_value(answer.clone())
            .map(Some)
            .map_err(|err| {
                ErrorData::invalid_params(
                    format!("inputResponses.{key} is not a valid {what}: {err}"),
                    Some(json!({ "inputResponse": key })),
                )
            })
    }
}

/// The request a step belongs to; sealed state is bound to all of it.
pub struct Origin<'a> {
    pub method: &'static str,
    pub name: &'a str,
    pub arguments: Option<&'a JsonObject>,
}

impl Origin<'_> {
    /// Canonical bytes of the request's identity: the arguments with their
    /// object keys sorted, so a client that re-serializes them in another
    /// order still matches.
    fn binding(&self) -> Vec<u8> {
        let arguments = self
            .arguments
            .map(|args| canonical(&Value::Object(args.clone())))
            .unwrap_or(Value::Null);
        json!([self.method, self.name, arguments])
            .to_string()
            .into_bytes()
    }
}

fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key.clone(), canonical(value)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The MRTR fields of a retried request, as the client sent them.
#[derive(Default)]
pub struct Retry {
    pub input_responses: Option<InputResponses>,
    pub request_state: Option<String>,
}

/// How a driven request ended.
pub enum Outcome<T> {
    Done(T),
    /// 2026-07-28: the client must answer and retry.
    InputRequired(InputRequiredResult),
    /// Handshake era: the client could not answer (it lacks the capability,
    /// or its answer failed); the text says why.
    Unanswered(String),
}

/// Runs `step` for the era of the request in `context`; see the module docs.
pub async fn drive<T>(
    seal: &StateSeal,
    context: &RequestContext<RoleServer>,
    origin: Origin<'_>,
    retry: Retry,
    step: impl Fn(&Round) -> Result<Step<T>, ErrorData>,
) -> Result<Outcome<T>, ErrorData> {
    let binding = origin.binding();
    if is_stateless(context) {
        let state = match &retry.request_state {
            Some(sealed) => Some(seal.open(sealed, &binding)?),
            None => None,
        };
        let round = Round {
            answers: retry.input_responses.unwrap_or_default(),
            state,
        };
        return match step(&round)? {
            Step::Done(done) => Ok(Outcome::Done(done)),
            Step::Ask(ask) => {
                require_capabilities(context, &ask.questions)?;
                let state = ask.state.map(|state| seal.seal(&state, &binding));
                Ok(Outcome::InputRequired(InputRequiredResult::new(
                    Some(ask.questions),
                    state,
                )))
            }
        };
    }

    // Handshake era: answer every question by asking the client directly.
    let mut round = Round::default();
    for _ in 0..MAX_ROUNDS {
        let ask = match step(&round)? {
            Step::Done(done) => return Ok(Outcome::Done(done)),
            Step::Ask(ask) => ask,
        };
        let mut answers = BTreeMap::new();
        for (key, question) in ask.questions {
            match ask_client(context, origin.name, question).await {
                Ok(answer) => {
                    answers.insert(key, answer);
                }
                Err(why) => return Ok(Outcome::Unanswered(why)),
            }
        }
        round = Round {
            answers,
            state: ask.state,
        };
    }
    Err(ErrorData::internal_error(
        format!(
            "{} {} still asked for input after {MAX_ROUNDS} rounds",
            origin.method, origin.name
        ),
        None,
    ))
}

/// Runs `step` inside the task `task` until it finishes; see the module
/// docs. All questions of one round are open at once, and the round is over
/// when every one of them has its answer, whichever order they come in. A
/// task cancelled while it waits ends `cancelled`.
pub async fn drive_task<T>(
    task: &TaskContext,
    step: impl Fn(&Round) -> Result<Step<T>, ErrorData>,
) -> Result<T, TaskExit> {
    let mut round = Round::default();
    for _ in 0..MAX_ROUNDS {
        let ask = match step(&round)? {
            Step::Done(done) => return Ok(done),
            Step::Ask(ask) => ask,
        };
        let waiting = ask.questions.into_iter().map(|(key, question)| async move {
            let answer = task.request_input(key.clone(), question).await?;
            Ok::<_, TaskExit>((key, answer))
        });
        round = Round {
            answers: futures::future::try_join_all(waiting)
                .await?
                .into_iter()
                .collect(),
            state: ask.state,
        };
    }
    Err(TaskExit::Error(ErrorData::internal_error(
        format!("the task still asked for input after {MAX_ROUNDS} rounds"),
        None,
    )))
}

/// 2026-07-28, before a task is made for `step`: refuses (-32021) the call
/// when the request's `clientCapabilities` do not cover the questions the
/// step opens with, which the task could otherwise never put to the client.
pub fn check_opening_questions<T>(
    context: &RequestContext<RoleServer>,
    step: impl Fn(&Round) -> Result<Step<T>, ErrorData>,
) -> Result<(), ErrorData> {
    match step(&Round::default())? {
        Step::Done(_) => Ok(()),
        Step::Ask(ask) => require_capabilities(context, &ask.questions),
    }
}

/// The capability a client must declare to be asked `question`.
fn capability(question: &InputRequest) -> &'static str {
    match question {
        InputRequest::Elicitation(_) => "elicitation",
        InputRequest::CreateMessage(_) => "sampling",
        InputRequest::ListRoots(_) => "roots",
        // InputRequest is non-exhaustive; a kind rmcp adds later is asked
        // only of clients that declare everything below.
        _ => "experimental",
    }
}

fn declares(capabilities: &ClientCapabilities, capability: &str) -> bool {
    match capability {
        "elicitation" => capabilities.elicitation.is_some(),
        "sampling" => capabilities.sampling.is_some(),
        "roots" => capabilities.roots.is_some(),
        _ => false,
    }
}

/// 2026-07-28: a server MUST NOT put a question in `inputRequests` that the
/// request's own `clientCapabilities` does not cover; it answers -32021
/// naming what is missing instead.
fn require_capabilities(
    context: &RequestContext<RoleServer>,
    questions: &InputRequests,
) -> Result<(), ErrorData> {
    let declared = context.client_capabilities().unwrap_or_default();
    let mut missing = serde_json::Map::new();
    for question in questions.values() {
        let needed = capability(question);
        if !declares(&declared, needed) {
            missing.insert(needed.to_owned(), json!({}));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let required: ClientCapabilities = from_json(Value::Object(missing))?;
    Err(ErrorData::missing_required_client_capability(required))
}

/// Handshake era: sends `question` to the calling client on its connection
/// and returns its answer as JSON, or why there is none.
async fn ask_client(
    context: &RequestContext<RoleServer>,
    asker: &str,
    question: InputRequest,
) -> Result<Value, String> {
    let needed = capability(&question);
    let declared = context
        .peer
        .peer_info()
        .is_some_and(|info| declares(&info.capabilities, needed));
    if !declared {
        return Err(format!(
            "the client did not declare the {needed} capability, so {asker} cannot ask it"
        ));
    }
    let (method, request) = match question {
        InputRequest::Elicitation(request) => {
            ("elicitation/create", ServerRequest::ElicitRequest(request))
        }
        InputRequest::CreateMessage(request) => (
            "sampling/createMessage",
            ServerRequest::CreateMessageRequest(request),
        ),
        InputRequest::ListRoots(request) => {
            ("roots/list", ServerRequest::ListRootsRequest(request))
        }
        _ => return Err("the fixture cannot ask this kind of question".to_owned()),
    };
    let answer = context
        .peer
        .send_request(request)
        .await
        .map_err(|err| format!("{method} failed: {err}"))?;
    let answer = match (method, answer) {
        ("elicitation/create", ClientResult::ElicitResult(answer)) => serde_json::to_value(answer),
        ("sampling/createMessage", ClientResult::CreateMessageResult(answer)) => {
            serde_json::to_value(answer)
        }
        ("roots/list", ClientResult::ListRootsResult(answer)) => serde_json::to_value(answer),
        (_, other) => return Err(format!("{method} got an unexpected answer: {other:?}")),
    };
    answer.map_err(|err| format!("{method} answer could not be encoded: {err}"))
}

/// Seals and opens `requestState` values under a key made at start-up.
pub struct StateSeal {
    cipher: XChaCha20Poly1305,
}

impl Default for StateSeal {
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }
}

impl StateSeal {
    /// Token text: URL-safe base64 (no padding) of `nonce || ciphertext`,
    /// whose plaintext is `{"expires": unix ms, "state": …}` and whose
    /// associated data is the request binding.
    fn seal(&self, state: &Value, binding: &[u8]) -> String {
        let expires = now_ms().saturating_add(STATE_TTL.as_millis() as u64);
        let plaintext = json!({ "expires": expires, "state": state }).to_string();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: binding,
        };
        // Encryption fails only past XChaCha20's 256 GiB keystream limit.
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut token = nonce.to_vec();
        token.extend_from_slice(&ciphertext);
        URL_SAFE_NO_PAD.encode(token)
    }

    fn open(&self, token: &str, binding: &[u8]) -> Result<Value, ErrorData> {
        let refuse = |why: &str| {
            ErrorData::invalid_params(
                format!("requestState refused: {why}"),
                Some(json!({ "requestState": "invalid" })),
            )
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| refuse("not a token this server issued"))?;
        if bytes.len() <= NONCE_LEN {
            return Err(refuse("not a token this server issued"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: binding,
        };
        let plaintext = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| {
                refuse("it failed integrity verification or belongs to another request")
            })?;
        let mut opened: Value =
            serde_json::from_slice(&plaintext).map_err(|_| refuse("its content is unreadable"))?;
        let expires = opened.get("expires").and_then(Value::as_u64).unwrap_or(0);
        if expires < now_ms() {
            return Err(refuse("it has expired; start the request again"));
        }
        Ok(opened
            .get_mut("state")
            .map(Value::take)
            .unwrap_or(Value::Null))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
