//! `initialize`: version negotiation and the capabilities the gateway advertises.

use serde_json::{Map, Value, json};

use super::Router;
use crate::protocol::{ErrorObject, Request, era};
use crate::upstream::Status;

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

/// Capabilities follow what can be routed: a list capability when some upstream serves it or
/// may (one that has not connected yet), always with `listChanged` because the merged lists
/// change whenever upstreams come and go; `completions` when a connected upstream has it.
pub fn capabilities(router: &Router) -> Value {
    let mut caps = Map::new();
    if offers(router, "tools") {
        caps.insert("tools".into(), json!({ "listChanged": true }));
    }
    if offers(router, "prompts") {
        caps.insert("prompts".into(), json!({ "listChanged": true }));
    }
    if offers(router, "resources") {
        let mut r = json!({ "listChanged": true });
        // Subscriptions are routed to the URI's owner, so they are offered when one can take them.
        let subscribe = router.upstreams.iter().any(|u| {
            u.server_info().is_some_and(|i| {
                i.capabilities.pointer("/resources/subscribe") == Some(&Value::Bool(true))
            })
        });
        if subscribe {
            r["subscribe"] = Value::Bool(true);
        }
        caps.insert("resources".into(), r);
    }
    if offers(router, "logging") {
        caps.insert("logging".into(), json!({}));
    }
    if offers(router, "completions") {
        caps.insert("completions".into(), json!({}));
    }
    Value::Object(caps)
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

/// Whether the gateway offers a top-level capability: a connected upstream declared it, or,
/// for the three lists, an upstream that has not connected yet may serve one.
pub fn offers(router: &Router, capability: &str) -> bool {
    let may_arrive = matches!(capability, "tools" | "prompts" | "resources");
    router
        .upstreams
        .iter()
        .any(|u| match u.declares(capability) {
            Some(declared) => declared,
            None => may_arrive && !matches!(u.status(), Status::Stopped),
        })
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
