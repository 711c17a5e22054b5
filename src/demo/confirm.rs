//! `confirm`: the demo's one tool that needs the user, by asking through elicitation.
//!
//! It exists so the gateway's translation between eras can be shown end to end with the
//! demo alone. The question is the same in both eras; how it travels differs:
//!
//! - 2026-07-28 (multi round-trip requests): the first `tools/call` answers
//!   `input_required` with the question in `inputRequests` and a `requestState`; the
//!   client asks the user and calls again (new id, same params) with the answer in
//!   `inputResponses` and the state echoed. The server keeps nothing in between, so the
//!   state is sealed with an HMAC that binds it to this process, the tool and its
//!   arguments, and an expiry.
//! - Handshake era: the server sends a real `elicitation/create` request to the client and
//!   answers the `tools/call` when the client's response comes back (see
//!   [`start_handshake`] and [`answer_handshake`]).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::tools::{self, Checked};
use super::{DemoState, MethodResult, RpcError, error_response, response};
use crate::protocol::envelope::{Envelope, INPUT_REQUIRED, RESULT_TYPE};

/// The tool's name.
pub(super) const NAME: &str = "confirm";

/// The key of the one question in `inputRequests` / `inputResponses`.
pub(super) const INPUT_KEY: &str = "confirm";

/// How long a `requestState` stays valid: long enough for a person to answer.
const STATE_LIFETIME_SECS: u64 = 600;

/// Handshake era: confirmations waiting for the client's answer at once, at most. Each holds
/// a little memory until answered or cancelled, and a client that never answers should not
/// make that grow without bound.
const MAX_PENDING: usize = 16;

/// The revision that introduced elicitation; older sessions cannot be asked.
const FIRST_ELICITING_REVISION: &str = "2025-06-18";

/// The revision from which an elicitation request names its `mode`.
const FIRST_MODE_REVISION: &str = "2025-11-25";

const STATE_FORMAT: &str = "v1";

pub(super) fn definition() -> Value {
    json!({
        "name": NAME,
        "title": "Ask the user to confirm",
        "description": "Asks the user to confirm an action (through the client's elicitation \
            form) and reports the answer: confirmed or not, declined or dismissed, and any note.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "action": {
                    "type": "string",
                    "description": "What the user is asked to confirm, e.g. \"delete the draft\"",
                },
            },
            "required": ["action"],
            "additionalProperties": false,
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "response": { "type": "string", "enum": ["accept", "decline", "cancel"] },
                "confirmed": { "type": "boolean" },
                "note": { "type": "string" },
            },
            "required": ["response", "confirmed"],
        },
        "annotations": {
            "readOnlyHint": true,
            "idempotentHint": false,
            "openWorldHint": false,
        },
    })
}

/// Whether a `tools/call` is for this tool.
pub(super) fn is_confirm(params: &Map<String, Value>) -> bool {
    params.get("name").and_then(Value::as_str) == Some(NAME)
}

/// Whether client capabilities allow a form-mode elicitation: `elicitation` present, and
/// either empty (which means form, for backwards compatibility) or naming `form`.
pub(super) fn can_elicit_form(capabilities: &Value) -> bool {
    match capabilities.get("elicitation") {
        Some(Value::Object(modes)) => modes.is_empty() || modes.contains_key("form"),
        _ => false,
    }
}

/// Whether a handshake-era session can be asked: a revision with elicitation, and the
/// capability declared in `initialize`.
pub(super) fn handshake_session_can_elicit(state: &DemoState) -> bool {
    state
        .protocol_version
        .as_deref()
        .is_some_and(|v| v >= FIRST_ELICITING_REVISION)
        && can_elicit_form(&state.client_capabilities)
}

/// The `elicitation/create` params that ask the user about `action`.
fn question(action: &str, with_mode: bool) -> Value {
    let mut params = json!({
        "message": format!("Please confirm: {action}"),
        "requestedSchema": {
            "type": "object",
            "properties": {
                "confirmed": {
                    "type": "boolean",
                    "title": "Confirm",
                    "description": "Go ahead with the action?",
                    "default": false,
                },
                "note": {
                    "type": "string",
                    "title": "Note",
                    "description": "Anything to add (optional)",
                    "maxLength": 500,
                },
            },
            "required": ["confirmed"],
        },
    });
    if with_mode && let Value::Object(obj) = &mut params {
        obj.insert("mode".to_owned(), Value::from("form"));
    }
    params
}

/// The user's answer, read from an ElicitResult.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Answer {
    Accepted {
        confirmed: bool,
        note: Option<String>,
    },
    Declined,
    Cancelled,
}

/// Reads an ElicitResult (`{action, content?}`) given in answer to [`question`].
pub(super) fn parse_answer(result: &Value) -> Result<Answer, String> {
    let Some(result) = result.as_object() else {
        return Err("the answer must be an object (an ElicitResult)".to_owned());
    };
    match result.get("action").and_then(Value::as_str) {
        Some("accept") => {}
        Some("decline") => return Ok(Answer::Declined),
        Some("cancel") => return Ok(Answer::Cancelled),
        _ => return Err("`action` must be `accept`, `decline` or `cancel`".to_owned()),
    }
    let empty = Map::new();
    let content = match result.get("content") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(content)) => content,
        Some(_) => return Err("`content` must be an object".to_owned()),
    };
    let Some(confirmed) = content.get("confirmed").and_then(Value::as_bool) else {
        return Err("an accepted answer needs a boolean `content.confirmed`".to_owned());
    };
    let note = match content.get("note") {
        None | Some(Value::Null) => None,
        Some(Value::String(note)) if note.trim().is_empty() => None,
        Some(Value::String(note)) => Some(note.clone()),
        Some(_) => return Err("`content.note` must be a string".to_owned()),
    };
    Ok(Answer::Accepted { confirmed, note })
}

/// The tool's result for an answer, in either era.
pub(super) fn outcome(action: &str, answer: &Answer) -> Value {
    let (response, confirmed, note, text) = match answer {
        Answer::Accepted { confirmed, note } => {
            let mut text = if *confirmed {
                format!("The user confirmed: {action}")
            } else {
                format!("The user did not confirm: {action}")
            };
            if let Some(note) = note {
                text.push_str(&format!(" (note: {note})"));
            }
            ("accept", *confirmed, note.as_deref(), text)
        }
        Answer::Declined => (
            "decline",
            false,
            None,
            format!("The user declined to answer whether to {action}"),
        ),
        Answer::Cancelled => (
            "cancel",
            false,
            None,
            format!("The user dismissed the question whether to {action}"),
        ),
    };
    let mut structured = json!({ "response": response, "confirmed": confirmed });
    if let (Some(note), Value::Object(obj)) = (note, &mut structured) {
        obj.insert("note".to_owned(), Value::from(note));
    }
    json!({ "content": [tools::text(text)], "structuredContent": structured })
}

fn action_of(args: &Map<String, Value>) -> &str {
    // The schema check guarantees a string; the fallback only keeps this panic-free.
    args.get("action")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 2026-07-28 `tools/call` of `confirm`: ask (`input_required`), or finish with the answer
/// in `inputResponses`.
pub(super) fn call_stateless(
    key: &StateKey,
    params: &Map<String, Value>,
    envelope: &Envelope,
) -> MethodResult {
    call_stateless_at(key, params, envelope, now_secs())
}

pub(super) fn call_stateless_at(
    key: &StateKey,
    params: &Map<String, Value>,
    envelope: &Envelope,
    now: u64,
) -> MethodResult {
    let args = match tools::check(params)? {
        Checked::Valid { args, .. } => args,
        Checked::Invalid(result) => return Ok(result),
    };
    let responses = match params.get("inputResponses") {
        None | Some(Value::Null) => None,
        Some(Value::Object(responses)) => Some(responses),
        Some(_) => {
            return Err(RpcError::invalid_params(
                "`inputResponses` must be an object",
            ));
        }
    };
    match params.get("requestState") {
        None | Some(Value::Null) if responses.is_some() => {
            return Err(RpcError::invalid_params(
                "`inputResponses` without the `requestState` this server sent with its question",
            ));
        }
        None | Some(Value::Null) => {}
        Some(Value::String(state)) => key
            .open(super::TOOLS_CALL, NAME, &args, state, now)
            .map_err(|why| RpcError::invalid_params(format!("`requestState` {why}")))?,
        Some(_) => return Err(RpcError::invalid_params("`requestState` must be a string")),
    }
    let action = action_of(&args);
    if let Some(answer) = responses.and_then(|r| r.get(INPUT_KEY)) {
        let answer = parse_answer(answer).map_err(|why| {
            RpcError::invalid_params(format!("`inputResponses.{INPUT_KEY}`: {why}"))
        })?;
        return Ok(outcome(action, &answer));
    }
    // No answer yet (a first call, or a retry that left it out): ask, if this request
    // says the client can be asked. Capabilities count per request, never from earlier ones.
    if !can_elicit_form(&envelope.client_capabilities) {
        return Err(RpcError::new(
            super::MISSING_CLIENT_CAPABILITY,
            format!("Missing required client capability: `{NAME}` asks the user through a form elicitation"),
        )
        .with_data(json!({ "requiredCapabilities": { "elicitation": { "form": {} } } })));
    }
    let state = key.seal(
        super::TOOLS_CALL,
        NAME,
        &args,
        now.saturating_add(STATE_LIFETIME_SECS),
    );
    Ok(json!({
        RESULT_TYPE: INPUT_REQUIRED,
        "inputRequests": {
            INPUT_KEY: { "method": "elicitation/create", "params": question(action, true) },
        },
        "requestState": state,
    }))
}

/// A handshake-era confirmation waiting for the client's answer.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    /// The id of the `elicitation/create` request this server sent.
    request_id: String,
    /// The id of the client's `tools/call` to answer.
    call_id: Value,
    action: String,
}

/// Handshake-era `tools/call` of `confirm`: sends the client an `elicitation/create`
/// request (returned as the message to write) and remembers the call until the answer comes
/// back; or answers at once when the session cannot be asked.
pub(super) fn start_handshake(
    state: &mut DemoState,
    id: Value,
    params: &Map<String, Value>,
) -> Value {
    let args = match tools::check(params) {
        Ok(Checked::Valid { args, .. }) => args,
        Ok(Checked::Invalid(result)) => return response(id, result),
        Err(err) => return error_response(id, &err),
    };
    if !handshake_session_can_elicit(state) {
        return response(
            id,
            tools::tool_error(format!(
                "`{NAME}` needs a client that can answer form elicitation requests \
                 (protocol {FIRST_ELICITING_REVISION} or later, with the `elicitation` capability)."
            )),
        );
    }
    if state.pending.len() >= MAX_PENDING {
        return response(
            id,
            tools::tool_error(
                "Too many confirmations are waiting for the user; answer or cancel one first.",
            ),
        );
    }
    state.next_request_id += 1;
    let request_id = format!("manifold-demo-{}", state.next_request_id);
    let action = action_of(&args).to_owned();
    let with_mode = state
        .protocol_version
        .as_deref()
        .is_some_and(|v| v >= FIRST_MODE_REVISION);
    let request = json!({
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "elicitation/create",
        "params": question(&action, with_mode),
    });
    state.pending.push(Pending {
        request_id,
        call_id: id,
        action,
    });
    request
}

/// A response from the client: if it answers one of our elicitation requests, the reply
/// to the `tools/call` that asked. Anything else is ignored.
pub(super) fn answer_handshake(state: &mut DemoState, msg: &Map<String, Value>) -> Option<Value> {
    let id = msg.get("id").and_then(Value::as_str)?;
    let index = state.pending.iter().position(|p| p.request_id == id)?;
    let pending = state.pending.remove(index);
    let result = match (msg.get("result"), msg.get("error")) {
        (Some(result), _) => match parse_answer(result) {
            Ok(answer) => outcome(&pending.action, &answer),
            Err(why) => tools::tool_error(format!("The client's answer was malformed: {why}")),
        },
        (None, error) => {
            let message = error
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            tools::tool_error(format!("The client could not ask the user: {message}"))
        }
    };
    Some(response(pending.call_id, result))
}

/// The client cancelled a `tools/call`: if it was a confirmation still waiting, forget it
/// and tell the client to drop the question (a `notifications/cancelled` for our request).
pub(super) fn cancel_handshake(state: &mut DemoState, call_id: &Value) -> Option<Value> {
    let index = state.pending.iter().position(|p| p.call_id == *call_id)?;
    let pending = state.pending.remove(index);
    Some(json!({
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {
            "requestId": pending.request_id,
            "reason": "The tools/call that asked was cancelled",
        },
    }))
}

type HmacSha256 = Hmac<Sha256>;

/// The per-process secret that seals `requestState`s. A state is opaque to the client and
/// comes back as attacker-controlled input, so it is authenticated: the HMAC-SHA256 tag
/// covers the method, the tool, a digest of the arguments and the expiry. A state that was
/// altered, issued by another process (another key), or presented with other arguments
/// fails; nothing needs to be stored between the rounds.
#[derive(Clone)]
pub(super) struct StateKey([u8; 32]);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

/// The environment variable that gives the demo a state key shared by its processes.
pub const STATE_KEY_VAR: &str = "MANIFOLD_DEMO_STATE_KEY";

impl StateKey {
    /// A fresh random key.
    pub(super) fn random() -> Self {
        Self(rand::random())
    }

    /// The key derived from `MANIFOLD_DEMO_STATE_KEY` when it is set and not empty, so the
    /// demo processes of several gateway replicas accept each other's states; else a random
    /// one (states are then valid only in this process).
    pub(super) fn from_env_or_random() -> Self {
        match std::env::var(STATE_KEY_VAR) {
            Ok(secret) if !secret.is_empty() => Self::derived(&secret),
            _ => Self::random(),
        }
    }

    /// A key derived from a shared secret (any text).
    pub(super) fn derived(secret: &str) -> Self {
        let mut digest = Sha256::new();
        digest.update(b"manifold-demo-request-state/v1\0");
        digest.update(secret.as_bytes());
        Self(digest.finalize().into())
    }

    fn mac(&self, method: &str, tool: &str, args: &Map<String, Value>, expires: u64) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail; `new_from_slice` is only the
        // constructor that takes a plain byte slice.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        let digest = Sha256::digest(canonical_json(&Value::Object(args.clone())).as_bytes());
        let expires = expires.to_be_bytes();
        let fields: [&[u8]; 5] = [
            STATE_FORMAT.as_bytes(),
            method.as_bytes(),
            tool.as_bytes(),
            digest.as_slice(),
            &expires,
        ];
        // Length-prefixed, so no two different field lists hash the same bytes.
        for field in fields {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        mac
    }

    /// A state for this request, valid until `expires` (Unix seconds).
    pub(super) fn seal(
        &self,
        method: &str,
        tool: &str,
        args: &Map<String, Value>,
        expires: u64,
    ) -> String {
        let tag = self
            .mac(method, tool, args, expires)
            .finalize()
            .into_bytes();
        format!("{STATE_FORMAT}.{expires}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks a state the client sent back with this request at time `now`.
    pub(super) fn open(
        &self,
        method: &str,
        tool: &str,
        args: &Map<String, Value>,
        state: &str,
        now: u64,
    ) -> Result<(), &'static str> {
        const FOREIGN: &str = "does not match this request: it was altered, issued by \
            another server process, or issued for other arguments";
        let mut parts = state.split('.');
        let (Some(STATE_FORMAT), Some(expires), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(FOREIGN);
        };
        let expires: u64 = expires.parse().map_err(|_| FOREIGN)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| FOREIGN)?;
        self.mac(method, tool, args, expires)
            .verify_slice(&tag)
            .map_err(|_| FOREIGN)?;
        if now > expires {
            return Err("has expired; call the tool again without it");
        }
        Ok(())
    }
}

/// JSON with object keys sorted at every level, so arguments that are equal as JSON digest
/// the same whatever order a client (or a gateway on the way) wrote them in.
fn canonical_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::from(key.as_str()).to_string());
                    out.push(':');
                    if let Some(item) = map.get(key) {
                        write(item, out);
                    }
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}
