//! Requests to a 2026-07-28 upstream: what the era removed is answered here, and what a
//! stateless request needs besides its params (the tool's own schema for `Mcp-Param-*`,
//! the caller's identity headers, the log level) is gathered for the peer.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::peer::{self, Origin};
use super::{Live, Upstream, lock};
use crate::protocol::arguments::Params;
use crate::protocol::{ErrorObject, Payload, methods};

impl Upstream {
    /// A request to a 2026-07-28 upstream. The methods that era removed never reach it:
    /// subscriptions go into the listen filter, the log level into later envelopes, and a
    /// ping is answered here. Everything else carries the envelope (the peer adds it) and,
    /// over HTTP, the headers the upstream's own tool schema asks for and the caller's
    /// identity headers, since a stateless upstream has no per-client session to hold them.
    pub(super) async fn send_stateless(
        &self,
        live: &Live,
        origin: Option<Arc<Origin>>,
        method: &str,
        params: Params,
        timeout: Duration,
    ) -> Result<Payload, ErrorObject> {
        let uri = || {
            params
                .get("uri")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ErrorObject::invalid_params("missing required field 'uri'"))
        };
        match method {
            methods::RESOURCES_SUBSCRIBE => {
                self.listen.add(uri()?);
                return Ok(json!({}).into());
            }
            methods::RESOURCES_UNSUBSCRIBE => {
                self.listen.remove(&uri()?);
                return Ok(json!({}).into());
            }
            methods::LOGGING_SET_LEVEL => {
                let level = params
                    .get("level")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                *lock(&self.log_level) = level;
                return Ok(json!({}).into());
            }
            methods::PING => return Ok(json!({}).into()),
            _ => {}
        }
        let mut extra = peer::Extra {
            log_level: lock(&self.log_level).clone(),
            ..peer::Extra::default()
        };
        if self.is_http() {
            if method == methods::TOOLS_CALL {
                extra.tool_schema = self.tool_schema(params.value.as_ref());
            }
            if let Some(origin) = &origin {
                let identity = crate::session::identity::headers(
                    &self.config.identity_headers,
                    &origin.principal,
                );
                extra.headers.extend(identity);
            }
        }
        live.peer
            .request_with(origin, method, params, timeout, extra)
            .await
    }

    /// The `inputSchema` the upstream listed for the tool a `tools/call` names, when it has
    /// `x-mcp-header` annotations (the only use of it here).
    fn tool_schema(&self, params: Option<&Value>) -> Option<Value> {
        let name = crate::protocol::field::of(params?, "name")?.as_str()?;
        self.catalog().header_schema(name).cloned()
    }
}
