//! The demo server in the 2026-07-28 era: no handshake, every request carries its
//! revision and the client's capabilities in `params._meta`, every result says what it is
//! (`resultType`) and who answered (`serverInfo`), listings and reads say how long they may
//! be cached.

use serde_json::{Map, Value, json};

use super::{
    DemoState, INVALID_REQUEST, RESOURCE_NOT_FOUND, RpcError, STATELESS_PROTOCOL_VERSIONS, catalog,
    confirm, error_response, response, server_info, single_page, tools,
};
use crate::protocol::envelope::{
    COMPLETE, CacheHint, Envelope, RESULT_TYPE, SERVER_INFO, SUBSCRIPTION_ID,
};
use crate::protocol::methods;

/// How long clients and gateways may reuse a listing, a read or the discovery result. The
/// catalog is fixed for the life of the process (no tool, prompt or resource ever changes,
/// which is also why no list_changed notifications are offered), so any lifetime is honest;
/// five minutes lets a new build of the binary show through soon after a restart.
pub const CATALOG_TTL_MS: u64 = 300_000;

/// Nothing in the catalog depends on who asks, so any cache may share it.
const CATALOG_HINT: CacheHint = CacheHint {
    ttl_ms: CATALOG_TTL_MS,
    private: false,
};

/// What a stateless request produces besides an error.
enum Outgoing {
    /// A result, shaped for the stateless era before it is sent.
    Result { result: Value, cacheable: bool },
    /// A whole message to send instead of a response (a listen's acknowledgement).
    Message(Value),
}

/// Serves one request on a connection locked to the stateless era and returns the message to
/// write.
pub(super) fn request(
    state: &mut DemoState,
    id: Value,
    method: &str,
    raw_params: Option<&Value>,
    params: &Map<String, Value>,
) -> Value {
    match serve(state, &id, method, raw_params, params) {
        Ok(Outgoing::Result { result, cacheable }) => response(id, shape(result, cacheable)),
        Ok(Outgoing::Message(msg)) => msg,
        Err(err) => error_response(id, &err),
    }
}

fn serve(
    state: &mut DemoState,
    id: &Value,
    method: &str,
    raw_params: Option<&Value>,
    params: &Map<String, Value>,
) -> Result<Outgoing, RpcError> {
    if state.listens.contains(id) {
        // Ids must be unique among the client's outstanding requests, and a listen stays
        // outstanding while its stream is open; its id is also the stream's name.
        return Err(RpcError::new(
            INVALID_REQUEST,
            "Invalid Request: the id names an open subscription",
        ));
    }
    if method == methods::INITIALIZE {
        // A handshake on a connection that already speaks 2026-07-28: name the revisions
        // this connection can still use, as a stateless server does for `initialize`.
        let requested = params
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(unsupported_version(requested));
    }
    // The order the reference SDK checks in: envelope keys, then the revision, then
    // whether the method exists.
    let envelope = Envelope::read(raw_params).map_err(RpcError::from)?;
    if !STATELESS_PROTOCOL_VERSIONS.contains(&envelope.version.as_str()) {
        return Err(unsupported_version(&envelope.version));
    }
    if !methods::STATELESS_CLIENT_REQUESTS.contains(&method) {
        return Err(super::method_not_found(method));
    }
    let listing = |key: &str, items: Vec<Value>| {
        single_page(params, key, items).map(|result| Outgoing::Result {
            result,
            cacheable: true,
        })
    };
    let once = |result: Result<Value, RpcError>| {
        result.map(|result| Outgoing::Result {
            result,
            cacheable: false,
        })
    };
    match method {
        methods::SERVER_DISCOVER => Ok(Outgoing::Result {
            result: discover(),
            cacheable: true,
        }),
        methods::SUBSCRIPTIONS_LISTEN => listen(state, id, params).map(Outgoing::Message),
        methods::TOOLS_LIST => listing("tools", tools::list()),
        methods::TOOLS_CALL if confirm::is_confirm(params) => {
            once(confirm::call_stateless(&state.state_key, params, &envelope))
        }
        methods::TOOLS_CALL => once(tools::call(params)),
        methods::RESOURCES_LIST => listing("resources", catalog::resources()),
        methods::RESOURCES_TEMPLATES_LIST => {
            listing("resourceTemplates", catalog::resource_templates())
        }
        methods::RESOURCES_READ => catalog::read_resource(params)
            .map(|result| Outgoing::Result {
                result,
                cacheable: true,
            })
            .map_err(|err| {
                // 2026-07-28 retired -32002: a missing resource is invalid params.
                if err.code == RESOURCE_NOT_FOUND {
                    RpcError {
                        code: super::INVALID_PARAMS,
                        ..err
                    }
                } else {
                    err
                }
            }),
        methods::PROMPTS_LIST => listing("prompts", catalog::prompts()),
        methods::PROMPTS_GET => once(catalog::get_prompt(params)),
        methods::COMPLETION_COMPLETE => once(catalog::complete(params)),
        other => Err(super::method_not_found(other)),
    }
}

/// -32022 naming the revisions a request on this connection can use.
fn unsupported_version(requested: &str) -> RpcError {
    RpcError::new(
        super::UNSUPPORTED_PROTOCOL_VERSION,
        format!(
            "Unsupported protocol version {requested:?} on this connection; supported: {}",
            STATELESS_PROTOCOL_VERSIONS.join(", ")
        ),
    )
    .with_data(json!({ "supported": STATELESS_PROTOCOL_VERSIONS, "requested": requested }))
}

/// Adds what every stateless result carries: `resultType` (complete unless the handler chose
/// another, e.g. `input_required`), the server's identity in `_meta`, and for listings,
/// reads and discovery the cache hints.
fn shape(mut result: Value, cacheable: bool) -> Value {
    if cacheable {
        CATALOG_HINT.write(&mut result);
    }
    if let Value::Object(obj) = &mut result {
        obj.entry(RESULT_TYPE)
            .or_insert_with(|| Value::from(COMPLETE));
        let meta = obj.entry("_meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.insert(SERVER_INFO.to_owned(), server_info());
        }
    }
    result
}

/// `server/discover`: the revisions the server speaks (both eras: a new connection may still
/// open with `initialize`), and what it offers. No `listChanged` or `subscribe`: in this era
/// they promise delivery on `subscriptions/listen`, and the catalog never changes.
fn discover() -> Value {
    json!({
        "supportedVersions": super::all_protocol_versions(),
        "capabilities": {
            "tools": {},
            "prompts": {},
            "resources": {},
            "completions": {},
        },
        "instructions": super::INSTRUCTIONS,
    })
}

/// `subscriptions/listen`: acknowledges the stream with the part of the filter the server
/// honours, which is nothing (nothing here ever changes), and keeps it open until the client
/// cancels it or its input ends (see [`super::end_of_input`]).
fn listen(
    state: &mut DemoState,
    id: &Value,
    params: &Map<String, Value>,
) -> Result<Value, RpcError> {
    if !params.get("notifications").is_some_and(Value::is_object) {
        return Err(RpcError::invalid_params(
            "`notifications` must be an object (a SubscriptionFilter)",
        ));
    }
    state.listens.push(id.clone());
    Ok(json!({
        "jsonrpc": "2.0",
        "method": methods::SUBSCRIPTIONS_ACKNOWLEDGED,
        "params": {
            "_meta": { SUBSCRIPTION_ID: id },
            "notifications": {},
        },
    }))
}

/// The result that ends an open listen when the server tears it down.
pub(super) fn listen_closed(id: Value) -> Value {
    let result = json!({
        RESULT_TYPE: COMPLETE,
        "_meta": { SUBSCRIPTION_ID: id, SERVER_INFO: server_info() },
    });
    response(id, result)
}

/// A client's `notifications/cancelled` for an open listen ends it. Nothing is written:
/// on stdio a server must not send further messages for a cancelled request.
pub(super) fn cancel(state: &mut DemoState, request_id: &Value) {
    state.listens.retain(|open| open != request_id);
}
