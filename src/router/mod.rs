//! The router: the last stage of the pipeline. List methods are served from the merged
//! catalog; calls, reads, prompts and completions go to the upstream that owns them, with the
//! upstream's own name restored.

mod calls;
mod initialize;
mod lists;
mod modern;
pub mod mrtr;
pub mod progress;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::aggregate::catalog::Kind;
use crate::gateway::Gateway;
use crate::protocol::{ErrorObject, Request, methods};
use crate::relay;
use crate::session::Session;

pub use crate::pipeline::RequestContext;
pub use calls::origin_of;
pub use initialize::capabilities;

pub async fn route(
    gateway: &Gateway,
    ctx: &RequestContext,
    req: &Request,
) -> Result<Value, ErrorObject> {
    if ctx.is_modern() {
        modern::check_capability(gateway, &req.method)?;
    }
    let outcome = match req.method.as_str() {
        methods::SERVER_DISCOVER => modern::discover(gateway),
        methods::SUBSCRIPTIONS_LISTEN => modern::listen(gateway, ctx, req).await,
        methods::INITIALIZE => initialize::initialize(gateway, req),
        methods::PING => Ok(json!({})),
        methods::TOOLS_LIST => lists::list(gateway, req, Kind::Tools),
        methods::PROMPTS_LIST => lists::list(gateway, req, Kind::Prompts),
        methods::RESOURCES_LIST => lists::list(gateway, req, Kind::Resources),
        methods::RESOURCES_TEMPLATES_LIST => lists::list(gateway, req, Kind::ResourceTemplates),
        methods::TOOLS_CALL => calls::call_tool(gateway, ctx, req).await,
        methods::PROMPTS_GET => calls::get_prompt(gateway, ctx, req).await,
        methods::RESOURCES_READ => calls::read_resource(gateway, ctx, req).await,
        methods::COMPLETION_COMPLETE => calls::complete(gateway, ctx, req).await,
        methods::TASKS_GET
        | methods::TASKS_RESULT
        | methods::TASKS_LIST
        | methods::TASKS_CANCEL
        | methods::TASKS_UPDATE => crate::tasks::methods::handle(gateway, ctx, req).await,
        methods::LOGGING_SET_LEVEL => {
            let session = session_of(ctx)?;
            let level = req
                .param("level")
                .ok_or_else(|| ErrorObject::invalid_params("missing required field 'level'"))?;
            relay::logging::set_level(gateway, session, level).await
        }
        methods::RESOURCES_SUBSCRIBE => {
            relay::subscriptions::subscribe(gateway, session_of(ctx)?, req.str_param("uri")?).await
        }
        methods::RESOURCES_UNSUBSCRIBE => {
            relay::subscriptions::unsubscribe(gateway, session_of(ctx)?, req.str_param("uri")?)
                .await
        }
        other => Err(ErrorObject::method_not_found(other)),
    };
    if !ctx.is_modern() {
        return outcome;
    }
    // Cache hints on what a modern client may cache: listings and reads. Interim results
    // (input required) carry none.
    outcome.map(|mut result| {
        let hint = match req.method.as_str() {
            methods::TOOLS_LIST => Some(modern::list_hint(gateway, Kind::Tools)),
            methods::PROMPTS_LIST => Some(modern::list_hint(gateway, Kind::Prompts)),
            methods::RESOURCES_LIST => Some(modern::list_hint(gateway, Kind::Resources)),
            methods::RESOURCES_TEMPLATES_LIST => {
                Some(modern::list_hint(gateway, Kind::ResourceTemplates))
            }
            methods::RESOURCES_READ
                if crate::protocol::envelope::result_type(&result)
                    == crate::protocol::envelope::COMPLETE =>
            {
                Some(modern::read_hint(gateway, &result))
            }
            _ => None,
        };
        if let Some(hint) = hint {
            hint.write(&mut result);
        }
        result
    })
}

/// The input schema of a tool as the gateway lists it (the upstream's own, untouched).
pub fn tool_schema(gateway: &Gateway, exposed: &str) -> Option<Value> {
    let route = gateway.catalog().tool(exposed)?.clone();
    let catalog = gateway.upstreams.get(route.upstream)?.catalog();
    catalog
        .tools
        .iter()
        .find(|t| t.get("name").and_then(Value::as_str) == Some(route.name.as_str()))
        .and_then(|t| t.get("inputSchema"))
        .cloned()
}

/// The client's session, for methods that only make sense inside one.
fn session_of(ctx: &RequestContext) -> Result<&Arc<Session>, ErrorObject> {
    ctx.session
        .as_ref()
        .ok_or_else(|| ErrorObject::invalid_request("this method needs an initialized session"))
}
