//! Which upstream a request will be routed to, resolved from the catalog the way the router
//! resolves it. Stages that need to know (limits, timeouts, metrics, audit) ask here rather
//! than each walking the catalog their own way.

use serde_json::Value;

use crate::protocol::{Era, Request, methods};
use crate::upstream::Upstreams;

/// The owner of a routed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Index into the upstream table.
    pub upstream: usize,
    /// For `tools/call`: the upstream's own name of the tool.
    pub tool: Option<String>,
}

/// Whether `method` is one the router forwards to an upstream.
pub fn is_routed(method: &str) -> bool {
    matches!(
        method,
        methods::TOOLS_CALL
            | methods::PROMPTS_GET
            | methods::RESOURCES_READ
            | methods::COMPLETION_COMPLETE
    )
}

/// The owner of `req`; `None` for methods the gateway answers itself and for names, URIs
/// or references no upstream serves (the router answers those without an upstream).
pub fn owner(upstreams: &Upstreams, era: Era, req: &Request) -> Option<Owner> {
    resolve(upstreams, era, req, true)
}

/// The index of [`owner`]'s upstream alone (no copy of the tool's name).
pub fn upstream_of(upstreams: &Upstreams, era: Era, req: &Request) -> Option<usize> {
    resolve(upstreams, era, req, false).map(|o| o.upstream)
}

fn resolve(upstreams: &Upstreams, era: Era, req: &Request, with_tool: bool) -> Option<Owner> {
    let catalog = upstreams.catalog(era);
    let str_param = |key: &str| req.param(key).and_then(Value::as_str);
    let (upstream, tool) = match req.method.as_str() {
        methods::TOOLS_CALL => {
            let route = catalog.tool(str_param("name")?)?;
            (route.upstream, with_tool.then(|| route.name.clone()))
        }
        methods::PROMPTS_GET => (catalog.prompt(str_param("name")?)?.upstream, None),
        methods::RESOURCES_READ => (catalog.resource_owner(str_param("uri")?)?, None),
        methods::COMPLETION_COMPLETE => {
            let reference = req.param("ref")?;
            let field = |key: &str| reference.get(key).and_then(Value::as_str);
            let owner = match field("type")? {
                "ref/prompt" => catalog.prompt(field("name")?)?.upstream,
                "ref/resource" => {
                    let uri = field("uri")?;
                    catalog
                        .template_owner(uri)
                        .or_else(|| catalog.resource_owner(uri))?
                }
                _ => return None,
            };
            (owner, None)
        }
        _ => return None,
    };
    (upstream < upstreams.len()).then_some(Owner { upstream, tool })
}
