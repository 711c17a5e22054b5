//! Calls, reads, prompts and completions: resolve the owner, restore the upstream's own
//! name, forward, and return the upstream's answer untouched.

use serde_json::{Value, json};

use super::Router;
use crate::pipeline::RequestContext;
use crate::protocol::{Era, ErrorObject, Payload, Request, methods};

pub async fn call_tool(
    router: &Router,
    ctx: &RequestContext,
    req: &Request,
) -> Result<Payload, ErrorObject> {
    let name = req.str_param("name")?;
    let route = router
        .upstreams
        .catalog(ctx.era())
        .tool(name)
        .cloned()
        .ok_or_else(|| unknown(router, "tool", name))?;
    super::mrtr::forward(router, ctx, req, route.upstream, Some(&route.name)).await
}

pub async fn get_prompt(
    router: &Router,
    ctx: &RequestContext,
    req: &Request,
) -> Result<Payload, ErrorObject> {
    let name = req.str_param("name")?;
    let route = router
        .upstreams
        .catalog(ctx.era())
        .prompt(name)
        .cloned()
        .ok_or_else(|| unknown(router, "prompt", name))?;
    super::mrtr::forward(router, ctx, req, route.upstream, Some(&route.name)).await
}

pub async fn read_resource(
    router: &Router,
    ctx: &RequestContext,
    req: &Request,
) -> Result<Payload, ErrorObject> {
    let uri = req.str_param("uri")?;
    let owner = router
        .upstreams
        .catalog(ctx.era())
        .resource_owner(uri)
        .ok_or_else(|| ErrorObject::resource_not_found(uri))?;
    let outcome = super::mrtr::forward(router, ctx, req, owner, None).await;
    match outcome {
        Err(e) if ctx.era() == Era::Handshake && is_stateless_not_found(router, owner, &e) => {
            Err(ErrorObject::resource_not_found(uri))
        }
        other => other,
    }
}

/// A 2026-07-28 upstream says "resource not found" with -32602; a handshake-era client
/// expects -32002 for it.
fn is_stateless_not_found(router: &Router, owner: usize, e: &ErrorObject) -> bool {
    router.upstreams.at(owner).served_in(Era::Handshake) == Era::Stateless
        && e.code == crate::protocol::codes::INVALID_PARAMS
        && e.message.to_ascii_lowercase().contains("not found")
}

/// `completion/complete` for a prompt argument (namespaced prompt name) or a resource
/// template argument (template URI). An owner without the `completions` capability gets no
/// request: the answer is an empty completion, as for any value with no suggestions.
pub async fn complete(
    router: &Router,
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
    let catalog = router.upstreams.catalog(ctx.era());
    let (owner, params) = match kind {
        "ref/prompt" => {
            let name = reference
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ErrorObject::invalid_params("'ref.name' must be a string"))?;
            let route = catalog
                .prompt(name)
                .cloned()
                .ok_or_else(|| unknown(router, "prompt", name))?;
            let mut params = req.params().into_value().unwrap_or_else(|| json!({}));
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
            (
                owner,
                req.params().into_value().unwrap_or_else(|| json!({})),
            )
        }
        other => {
            return Err(ErrorObject::invalid_params(format!(
                "unsupported ref type {other:?}"
            )));
        }
    };
    let upstream = &router.upstreams.at(owner);
    if !upstream.declares_at_in(ctx.era(), "/completions") {
        return Ok(json!({ "completion": { "values": [], "hasMore": false } }));
    }
    upstream
        .request(ctx.origin(), methods::COMPLETION_COMPLETE, Some(params))
        .await
}

/// The error for a name no upstream serves. When the name's prefix belongs to an upstream
/// that is down, the honest answer is "unavailable" (-32010), not "unknown": the tool may well
/// exist once it is back. Otherwise "unknown", saying which part did not resolve.
fn unknown(router: &Router, what: &str, name: &str) -> ErrorObject {
    let sep = &router.config.separator;
    let Some((prefix, _)) = crate::aggregate::names::decode(name, sep) else {
        return ErrorObject::invalid_params(format!("Unknown {what}: {name}"));
    };
    match router
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
