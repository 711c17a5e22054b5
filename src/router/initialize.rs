//! `initialize`: version negotiation and the capabilities the gateway advertises.

use serde_json::{Map, Value, json};

use super::Router;
use crate::protocol::{ErrorObject, Request, era};

pub fn initialize(router: &Router, req: &Request) -> Result<Value, ErrorObject> {
    let requested = req.str_param("protocolVersion")?;
    if !req.param("capabilities").is_some_and(Value::is_object) {
        return Err(ErrorObject::invalid_params(
            "'capabilities' must be an object",
        ));
    }
    let negotiated = era::negotiate(requested);
    let mut capabilities = capabilities(router);
    // Core tasks (SEP-1686) exist from 2025-11-25 on; older clients never see them.
    if negotiated >= "2025-11-25"
        && let Some(tasks) = handshake_tasks(router)
    {
        capabilities["tasks"] = tasks;
    }
    let mut result = json!({
        "protocolVersion": negotiated,
        "capabilities": capabilities,
        "serverInfo": {
            "name": "manifold",
            "title": "Manifold MCP gateway",
            "version": env!("CARGO_PKG_VERSION"),
        },
    });
    if let Some(text) = instructions(router) {
        result["instructions"] = Value::from(text);
    }
    Ok(result)
}

/// What the gateway declares, from its configuration alone, so that it does not depend on
/// which upstreams happened to be up when a client connected: with any upstream configured,
/// the three lists (with `listChanged`, since the merged lists change as upstreams come and
/// go, which is how a client that connected early learns what upstreams bring), resource
/// subscriptions (routed to the URI's owner; refused for a URI whose owner cannot watch it),
/// `logging` (levels are kept per client and passed to upstreams that log) and
/// `completions` (an owner without them answers with no suggestions).
pub fn capabilities(router: &Router) -> Value {
    if router.upstreams.is_empty() {
        return json!({});
    }
    json!({
        "tools": { "listChanged": true },
        "prompts": { "listChanged": true },
        "resources": { "listChanged": true, "subscribe": true },
        "logging": {},
        "completions": {},
    })
}

/// The 2025-11-25 `tasks` capability: exactly the request types the gateway can serve as
/// tasks (passed through or wrapped), first-class rather than under `experimental`.
/// `list` and `cancel` are always served: tasks are bound to their principal and session,
/// so a listing shows nobody else's.
fn handshake_tasks(router: &Router) -> Option<Value> {
    let (tools, prompts, resources) = router.upstreams.task_servable();
    let mut requests = Map::new();
    if tools {
        requests.insert("tools".into(), json!({ "call": {} }));
    }
    if prompts {
        requests.insert("prompts".into(), json!({ "get": {} }));
    }
    if resources {
        requests.insert("resources".into(), json!({ "read": {} }));
    }
    (!requests.is_empty()).then(|| json!({ "list": {}, "cancel": {}, "requests": requests }))
}

/// Whether the 2026-07-28 tasks extension is offered: some tool can run as a task.
pub fn offers_task_extension(router: &Router) -> bool {
    router.upstreams.task_servable().0
}

/// Whether the gateway offers a top-level capability (see [`capabilities`]).
pub fn offers(router: &Router, capability: &str) -> bool {
    // Checked on every stateless request: the answer of `capabilities` without building it.
    !router.upstreams.is_empty()
        && matches!(
            capability,
            "tools" | "prompts" | "resources" | "logging" | "completions"
        )
}

/// Upstream instructions, each under its upstream's name so the model knows whose they are.
pub fn instructions(router: &Router) -> Option<String> {
    let parts: Vec<String> = router
        .upstreams
        .iter()
        .filter_map(|u| {
            let text = u.server_info()?.instructions?;
            let prefix = if u.config.prefix.is_empty() {
                String::new()
            } else {
                format!(
                    " (tools and prompts prefixed '{}{}')",
                    u.config.prefix, router.config.separator
                )
            };
            Some(format!("## {}{prefix}\n{}", u.name(), text.trim()))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}
