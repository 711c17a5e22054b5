//! One upstream request, owning everything it needs, so it can outlive the client request
//! that started it (a call held while a 2026-07-28 client answers an input request).

use std::sync::Arc;

use serde_json::Value;

use super::Router;
use crate::pipeline::RequestContext;
use crate::protocol::arguments::Params;
use crate::protocol::{ErrorObject, Payload, field};
use crate::relay::progress::Registration;
use crate::upstream::Upstream;
use crate::upstream::peer::Origin;

/// One upstream request (see the module docs).
pub struct Call {
    upstream: Arc<Upstream>,
    origin: Option<Arc<Origin>>,
    method: String,
    params: Params,
    timeout: std::time::Duration,
    _progress: Option<Registration>,
}

impl Call {
    /// Prepares a request to its owner. A client `progressToken` is swapped for a gateway
    /// token for the duration of the call, so progress finds its way back to this request's
    /// stream.
    pub fn new(
        router: &Router,
        ctx: &RequestContext,
        upstream: usize,
        method: &str,
        mut params: Params,
        origin: Option<Arc<Origin>>,
    ) -> Call {
        let client_token = crate::protocol::envelope::meta(params.value.as_ref())
            .and_then(|meta| field::get(meta, "progressToken"))
            .filter(|t| t.is_string() || t.is_number())
            .cloned();
        let registration = match (client_token, &ctx.notify) {
            (Some(token), Some(sink)) => Some(router.relay.progress.register(token, sink.clone())),
            _ => None,
        };
        if let Some(reg) = &registration {
            params.object()["_meta"]["progressToken"] = Value::from(reg.token());
        } else if params.value.as_ref().is_some_and(client_token_sent) {
            // Nowhere to deliver progress: do not ask the upstream for it.
            if let Some(meta) = params
                .object()
                .get_mut("_meta")
                .and_then(Value::as_object_mut)
            {
                meta.remove("progressToken");
            }
        }
        let upstream = router.upstreams.at(upstream).clone();
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

    pub async fn run(self) -> Result<Payload, ErrorObject> {
        self.upstream
            .request_within(self.origin, &self.method, self.params, self.timeout)
            .await
    }
}

/// Whether the params' `_meta` has a `progressToken` (of any type).
fn client_token_sent(params: &Value) -> bool {
    crate::protocol::envelope::meta(Some(params))
        .is_some_and(|meta| field::get(meta, "progressToken").is_some())
}
