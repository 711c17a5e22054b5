//! Calls, reads, prompts and completions: resolve the owner, restore the upstream's own
//! name, forward, and return the upstream's answer untouched.

use serde_json::{Value, json};

use std::sync::Arc;

use super::RequestContext;
use crate::gateway::Gateway;
use crate::protocol::{ErrorObject, Request, methods};
use crate::upstream::peer::Origin;

pub async fn call_tool(
    gateway: &Gateway,
    ctx: &RequestContext,
    req: &Request,
) -> Result<Value, ErrorObject> {
    let name = req.str_param("name")?;
    let route = gateway
        .catalog()
        .tool(name)
        .cloned()
        .ok_or_else(|| unknown(gateway, "tool", name))?;
    let params = with_field(req, "name", &route.name);
    super::mrtr::forward(gateway, ctx, req, route.upstream, params).await
}

pub async fn get_prompt(
    gateway: &Gateway,
    ctx: &RequestContext,
    req: &Request,
) -> Result<Value, ErrorObject> {
    let name = req.str_param("name")?;
    let route = gateway
        .catalog()
        .prompt(name)
        .cloned()
        .ok_or_else(|| unknown(gateway, "prompt", name))?;
    let params = with_field(req, "name", &route.name);
    super::mrtr::forward(gateway, ctx, req, route.upstream, params).await
}

pub async fn read_resource(
    gateway: &Gateway,
    ctx: &RequestContext,
    req: &Request,
) -> Result<Value, ErrorObject> {
    let uri = req.str_param("uri")?;
    let owner = gateway
        .catalog()
        .resource_owner(uri)
        .ok_or_else(|| ErrorObject::resource_not_found(uri))?;
    let params = req.params.clone().unwrap_or_else(|| json!({}));
    let outcome = super::mrtr::forward(gateway, ctx, req, owner, params).await;
    match outcome {
        Err(e) if !ctx.is_modern() && is_modern_not_found(gateway, owner, &e) => {
            Err(ErrorObject::resource_not_found(uri))
        }
        other => other,
    }
}

/// A 2026-07-28 upstream says "resource not found" with -32602; a handshake-era client
/// expects -32002 for it.
fn is_modern_not_found(gateway: &Gateway, owner: usize, e: &ErrorObject) -> bool {
    gateway.upstreams[owner].is_modern()
        && e.code == crate::protocol::codes::INVALID_PARAMS
        && e.message.to_ascii_lowercase().contains("not found")
}

/// One upstream request, owning everything it needs, so it can outlive the client request
/// that started it (a call held while a 2026-07-28 client answers an input request).
pub struct Call {
    upstream: Arc<crate::upstream::Upstream>,
    origin: Option<Arc<Origin>>,
    method: String,
    params: Value,
    timeout: std::time::Duration,
    _progress: Option<super::progress::Registration>,
}

impl Call {
    /// Prepares a request to its owner. A client `progressToken` is swapped for a gateway
    /// token for the duration of the call, so progress finds its way back to this request's
    /// stream.
    pub fn new(
        gateway: &Gateway,
        ctx: &RequestContext,
        upstream: usize,
        method: &str,
        mut params: Value,
        origin: Option<Arc<Origin>>,
    ) -> Call {
        let client_token = params
            .pointer("/_meta/progressToken")
            .filter(|t| t.is_string() || t.is_number())
            .cloned();
        let registration = match (client_token, &ctx.notify) {
            (Some(token), Some(sink)) => Some(gateway.progress.register(token, sink.clone())),
            _ => None,
        };
        if let Some(reg) = &registration {
            params["_meta"]["progressToken"] = Value::from(reg.token());
        } else if let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) {
            // Nowhere to deliver progress: do not ask the upstream for it.
            meta.remove("progressToken");
        }
        let upstream = gateway.upstreams[upstream].clone();
        let timeout = ctx.deadline.unwrap_or(upstream.config.timeout);
        Call {
            upstream,
            origin,
            method: method.to_owned(),
            params,
            timeout,
            _progress: registration,
        }
    }

    pub async fn run(self) -> Result<Value, ErrorObject> {
        self.upstream
            .request_within(self.origin, &self.method, Some(self.params), self.timeout)
            .await
    }
}

/// Who an upstream request serves: the client's session (handshake era) or the request's
/// own envelope (2026-07-28), with the request's stream for related traffic.
pub fn origin_of(ctx: &RequestContext) -> Option<Arc<Origin>> {
    if let Some(envelope) = &ctx.envelope {
        return Some(Arc::new(Origin {
            session: None,
            sink: ctx.notify.clone(),
            capabilities: envelope.client_capabilities.clone(),
            principal: ctx.caller.principal.clone(),
            log_level: envelope.log_level.clone(),
            inputs: None,
        }));
    }
    ctx.session.as_ref().map(|s| {
        Arc::new(Origin {
            session: Some(s.id.clone()),
            sink: ctx.notify.clone(),
            capabilities: s.client_capabilities.clone(),
            principal: ctx.caller.principal.clone(),
            log_level: s
                .log_level()
                .map(|r| crate::protocol::logging::name(r).to_owned()),
            inputs: None,
        })
    })
}

/// `completion/complete` for a prompt argument (namespaced prompt name) or a resource
/// template argument (template URI). An owner without the `completions` capability gets no
/// request: the answer is an empty completion, as for any value with no suggestions.
pub async fn complete(
    gateway: &Gateway,
    ctx: &RequestContext,
    req: &Request,
) -> Result<Value, ErrorObject> {
    let Some(reference) = req.param("ref") else {
        return Err(ErrorObject::invalid_params("missing required field 'ref'"));
    };
    let kind = reference
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let catalog = gateway.catalog();
    let (owner, params) = match kind {
        "ref/prompt" => {
            let name = reference
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ErrorObject::invalid_params("'ref.name' must be a string"))?;
            let route = catalog
                .prompt(name)
                .cloned()
                .ok_or_else(|| unknown(gateway, "prompt", name))?;
            let mut params = req.params.clone().unwrap_or_else(|| json!({}));
            params["ref"]["name"] = Value::from(route.name);
            (route.upstream, params)
        }
        "ref/resource" => {
            let uri = reference
                .get("uri")
                .and_then(Value::as_str)
                .ok_or_else(|| ErrorObject::invalid_params("'ref.uri' must be a string"))?;
            let owner = catalog
                .template_owner(uri)
                .or_else(|| catalog.resource_owner(uri))
                .ok_or_else(|| {
                    ErrorObject::invalid_params(format!("Unknown resource or template: {uri}"))
                })?;
            (owner, req.params.clone().unwrap_or_else(|| json!({})))
        }
        other => {
            return Err(ErrorObject::invalid_params(format!(
                "unsupported ref type {other:?}"
            )));
        }
    };
    let upstream = &gateway.upstreams[owner];
    if upstream.declares("completions") != Some(true) {
        return Ok(json!({ "completion": { "values": [], "hasMore": false } }));
    }
    upstream
        .request(origin_of(ctx), methods::COMPLETION_COMPLETE, Some(params))
        .await
}

/// The request's params with one top-level field replaced; everything else is untouched.
fn with_field(req: &Request, key: &str, value: &str) -> Value {
    let mut params = req.params.clone().unwrap_or_else(|| json!({}));
    params[key] = Value::from(value);
    params
}

/// The error for a name no upstream serves. When the name's prefix belongs to an upstream
/// that is down, the honest answer is "unavailable" (-32010), not "unknown": the tool may well
/// exist once it is back. Otherwise "unknown", saying which part did not resolve.
fn unknown(gateway: &Gateway, what: &str, name: &str) -> ErrorObject {
    let sep = &gateway.config.separator;
    let Some((prefix, _)) = crate::aggregate::names::decode(name, sep) else {
        return ErrorObject::invalid_params(format!("Unknown {what}: {name}"));
    };
    match gateway
        .upstreams
        .iter()
        .find(|u| !u.config.prefix.is_empty() && u.config.prefix == prefix)
    {
        Some(u) if !matches!(u.status(), crate::upstream::Status::Ready { .. }) => {
            let e = u.unavailable_reason();
            ErrorObject::upstream_unavailable(
                u.name(),
                format!("{}; cannot resolve {what} {name}", e),
            )
        }
        Some(_) => ErrorObject::invalid_params(format!("Unknown {what}: {name}")),
        None => ErrorObject::invalid_params(format!(
            "Unknown {what}: {name} (no upstream has the prefix '{prefix}')"
        )),
    }
}
