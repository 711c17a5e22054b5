//! The router: the last stage of the pipeline. List methods are served from the merged
//! catalog; calls, reads, prompts and completions go to the upstream that owns them, with the
//! upstream's own name restored.

mod call;
mod calls;
mod initialize;
mod lists;
pub mod mrtr;
mod stateless;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::aggregate::catalog::Kind;
use crate::aggregate::seal::Sealer;
use crate::config::Config;
use crate::pipeline::{Outcome, RequestContext, Terminal};
use crate::protocol::{Era, ErrorObject, Payload, Request, methods};
use crate::relay::{self, Relay};
use crate::session::Session;
use crate::upstream::Upstreams;

pub use initialize::capabilities;

/// What the router answers from and forwards through.
pub struct Router {
    pub config: Arc<Config>,
    pub upstreams: Arc<Upstreams>,
    /// The way back: progress tokens, questions to clients, subscriptions, listen streams.
    pub relay: Arc<Relay>,
    /// Seals cursors and `requestState`.
    pub sealer: Arc<Sealer>,
    /// Calls held for 2026-07-28 clients until they retry with the input asked for.
    pub parked: Arc<mrtr::Parked>,
    /// Whether answers may differ by caller (credentials are checked, or policy rules
    /// filter): cache hints then say `private`.
    pub per_principal: bool,
    /// Cancelled when the gateway shuts down: listen streams end.
    pub shutdown: CancellationToken,
}

impl Terminal for Router {
    fn route<'a>(&'a self, ctx: &'a RequestContext, req: &'a Request) -> BoxFuture<'a, Outcome> {
        Box::pin(route(self, ctx, req))
    }
}

pub async fn route(router: &Router, ctx: &RequestContext, req: &Request) -> Outcome {
    // A request the gateway makes of one upstream itself (the tasks runner waiting on an
    // upstream's own task): forwarded as it is.
    if let Some(upstream) = ctx.route_to {
        return mrtr::forward(router, ctx, req, upstream, None).await;
    }
    if ctx.era() == Era::Stateless {
        stateless::check_capability(router, &req.method)?;
    }
    let outcome: Outcome = match req.method.as_str() {
        methods::SERVER_DISCOVER => stateless::discover(router).map(Payload::from),
        methods::SUBSCRIPTIONS_LISTEN => {
            stateless::listen(router, ctx, req).await.map(Payload::from)
        }
        methods::INITIALIZE => initialize::initialize(router, req).map(Payload::from),
        methods::PING => Ok(json!({}).into()),
        methods::TOOLS_LIST => lists::list(router, ctx, req, Kind::Tools).map(Payload::from),
        methods::PROMPTS_LIST => lists::list(router, ctx, req, Kind::Prompts).map(Payload::from),
        methods::RESOURCES_LIST => {
            lists::list(router, ctx, req, Kind::Resources).map(Payload::from)
        }
        methods::RESOURCES_TEMPLATES_LIST => {
            lists::list(router, ctx, req, Kind::ResourceTemplates).map(Payload::from)
        }
        methods::TOOLS_CALL => calls::call_tool(router, ctx, req).await,
        methods::PROMPTS_GET => calls::get_prompt(router, ctx, req).await,
        methods::RESOURCES_READ => calls::read_resource(router, ctx, req).await,
        methods::COMPLETION_COMPLETE => calls::complete(router, ctx, req).await.map(Payload::from),
        methods::LOGGING_SET_LEVEL => {
            let session = session_of(ctx)?;
            let level = req
                .param("level")
                .ok_or_else(|| ErrorObject::invalid_params("missing required field 'level'"))?;
            let set = relay::logging::set_level(&router.relay, session, level).await?;
            relay::bus::changed(session).await?;
            Ok(set.into())
        }
        methods::RESOURCES_SUBSCRIBE => {
            let session = session_of(ctx)?;
            let uri = req.str_param("uri")?;
            let done = relay::subscriptions::subscribe(&router.relay, session, uri).await?;
            relay::bus::changed(session).await?;
            Ok(done.into())
        }
        methods::RESOURCES_UNSUBSCRIBE => {
            let session = session_of(ctx)?;
            let uri = req.str_param("uri")?;
            let done = relay::subscriptions::unsubscribe(&router.relay, session, uri).await?;
            relay::bus::changed(session).await?;
            Ok(done.into())
        }
        other => Err(ErrorObject::method_not_found(other)),
    };
    if ctx.era() == Era::Handshake {
        return outcome;
    }
    // Cache hints on what a stateless client may cache: listings and reads. Interim results
    // (input required) carry none.
    outcome.map(|mut result| {
        let hint = match req.method.as_str() {
            methods::TOOLS_LIST => Some(stateless::list_hint(router, Kind::Tools)),
            methods::PROMPTS_LIST => Some(stateless::list_hint(router, Kind::Prompts)),
            methods::RESOURCES_LIST => Some(stateless::list_hint(router, Kind::Resources)),
            methods::RESOURCES_TEMPLATES_LIST => {
                Some(stateless::list_hint(router, Kind::ResourceTemplates))
            }
            methods::RESOURCES_READ
                if result.result_type() == crate::protocol::envelope::COMPLETE =>
            {
                Some(stateless::read_hint(router, &result))
            }
            _ => None,
        };
        if let Some(hint) = hint {
            hint.write(&mut result);
        }
        result
    })
}

/// The client's session, for methods that only make sense inside one.
fn session_of(ctx: &RequestContext) -> Result<&Arc<Session>, ErrorObject> {
    ctx.session
        .as_ref()
        .ok_or_else(|| ErrorObject::invalid_request("this method needs an initialized session"))
}
