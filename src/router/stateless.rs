//! What only 2026-07-28 clients ask for: `server/discover` and `subscriptions/listen`, and
//! the cache hints their listings and reads carry.

use serde_json::{Value, json};

use super::Router;
use crate::aggregate::catalog::Kind;
use crate::pipeline::RequestContext;
use crate::protocol::envelope::{CacheHint, SUBSCRIPTION_ID};
use crate::protocol::{ErrorObject, Request, codes, era, methods};
use crate::relay::listeners::{Filter, tagged};

/// `server/discover`: the revisions the gateway speaks, what it can route, and the
/// upstreams' instructions. Not cacheable for long: capabilities follow upstreams as they
/// come and go.
pub fn discover(router: &Router) -> Result<Value, ErrorObject> {
    let mut capabilities = super::initialize::capabilities(router);
    if super::initialize::offers_task_extension(router) {
        capabilities["extensions"] = json!({ crate::protocol::extensions::TASKS: {} });
    }
    let mut result = json!({
        "supportedVersions": era::all(),
        "capabilities": capabilities,
    });
    if let Some(text) = super::initialize::instructions(router) {
        result["instructions"] = Value::from(text);
    }
    CacheHint {
        ttl_ms: 0,
        private: router.per_principal,
    }
    .write(&mut result);
    Ok(result)
}

/// A method whose capability the gateway does not advertise is unknown to a stateless client
/// (what `server/discover` says and what is served must agree).
pub fn check_capability(router: &Router, method: &str) -> Result<(), ErrorObject> {
    let capability = match method {
        methods::TOOLS_LIST | methods::TOOLS_CALL => "tools",
        methods::PROMPTS_LIST | methods::PROMPTS_GET => "prompts",
        methods::RESOURCES_LIST | methods::RESOURCES_TEMPLATES_LIST | methods::RESOURCES_READ => {
            "resources"
        }
        methods::COMPLETION_COMPLETE => "completions",
        _ => return Ok(()),
    };
    if super::initialize::offers(router, capability) {
        Ok(())
    } else {
        Err(ErrorObject::method_not_found(method)
            .with_data(json!({ "reason": format!("no upstream offers {capability}") })))
    }
}

/// The cache hint of a merged listing: the most conservative of the upstreams' own hints
/// (a handshake-era upstream gives none, so 0 ms), and private whenever the answer may
/// depend on who asks (authentication or a policy is configured). The same for every page.
pub fn list_hint(router: &Router, kind: Kind) -> CacheHint {
    let mut hint = CacheHint {
        ttl_ms: u64::MAX,
        private: router.per_principal,
    };
    for upstream in router.upstreams.iter() {
        hint = hint.merge(upstream.catalog().hint(kind));
    }
    if hint.ttl_ms == u64::MAX {
        hint.ttl_ms = 0;
    }
    hint
}

/// The cache hint of a `resources/read` result: the upstream's own, made private when the
/// gateway's answer depends on who asks.
pub fn read_hint(router: &Router, result: &Value) -> CacheHint {
    let own = CacheHint::of(result);
    CacheHint {
        ttl_ms: own.ttl_ms,
        private: own.private || router.per_principal,
    }
}

/// `subscriptions/listen`: acknowledges what the gateway will honour, then delivers list
/// changes and resource updates on the request's stream until the client closes it (or,
/// on stdio, cancels it), or the gateway shuts down, and ends with a complete result.
pub async fn listen(
    router: &Router,
    ctx: &RequestContext,
    req: &Request,
) -> Result<Value, ErrorObject> {
    let Some(sink) = ctx.notify.clone() else {
        return Err(ErrorObject::invalid_request(
            "subscriptions/listen needs a transport that can stream",
        ));
    };
    let mut filter = Filter::read(req.params_except_arguments())?;
    let caps = super::initialize::capabilities(router);
    let can = |pointer: &str| caps.pointer(pointer) == Some(&Value::Bool(true));
    filter.tools &= can("/tools/listChanged");
    filter.prompts &= can("/prompts/listChanged");
    filter.resources &= can("/resources/listChanged");
    let subscription = req.id.to_value();
    let wanted = std::mem::take(&mut filter.uris);
    let registration = router
        .relay
        .listeners
        .register(subscription.clone(), filter.clone(), sink.clone())
        .ok_or_else(|| ErrorObject::new(codes::GATEWAY_BUSY, "too many listen streams open"))?;
    let subscriber = registration.subscriber();
    if can("/resources/subscribe") {
        filter.uris =
            crate::relay::subscriptions::listen(&router.relay, &subscriber, &wanted).await;
    }
    let ack = tagged(
        methods::SUBSCRIPTIONS_ACKNOWLEDGED,
        Some(json!({ "notifications": filter.to_value() })),
        &subscription,
    );
    // The acknowledgement goes first; a change racing it is at worst delivered right after.
    if sink.send(ack).await.is_ok() {
        let cancelled = async {
            match &ctx.cancel {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancelled => {}
            _ = sink.closed() => {}
            _ = router.shutdown.cancelled() => {}
        }
    }
    drop(registration);
    crate::relay::subscriptions::session_closed(&router.relay, &subscriber).await;
    Ok(json!({ "_meta": { SUBSCRIPTION_ID: subscription } }))
}
