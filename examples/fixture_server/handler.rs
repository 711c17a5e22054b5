//! The fixture's `ServerHandler`, written by hand rather than with rmcp's
//! tool macros so that pagination, error codes and result shapes are exactly
//! what the gateway's integration tests expect.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    ContentBlock, DiscoverResult, GetPromptRequestParams, GetPromptResponse, Implementation,
    InitializeRequestParams, InitializeResult, JsonObject, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter, Tool,
    UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use crate::catalog::{Catalog, TINY_PNG_BASE64, from_json};
use crate::era::{Diagnostics, Protocol, Shared, envelope_of};

/// The revision the fixture prefers in an `initialize` handshake (2026-07-28 has none).
const MAX_PROTOCOL: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// Interval between progress notifications from `slow`.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// One fixture process. Cheap to clone: the HTTP transport builds one
/// handler per session, and they all share the catalog and peer list.
#[derive(Clone)]
pub struct Fixture {
    catalog: Arc<Catalog>,
    /// Which eras it speaks.
    protocol: Protocol,
    /// Who hears of changes (every session that completed `initialize`, every listen
    /// stream), and the journal of protocol events.
    shared: Shared,
    /// Set when spans are exported (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
    /// Whether one tool differs by era (`--era-tools`).
    era_tools: bool,
}

impl Fixture {
    pub fn new(catalog: Catalog, protocol: Protocol) -> Self {
        Self {
            catalog: Arc::new(catalog),
            protocol,
            shared: Arc::new(Diagnostics::default()),
            tracer: None,
            era_tools: false,
        }
    }

    pub fn with_era_tools(mut self, on: bool) -> Self {
        self.era_tools = on;
        self
    }

    /// The era-specific tool a request of this era sees (`--era-tools`): a request that
    /// names its revision in `_meta` is a 2026-07-28 one.
    fn era_tool(&self, context: &RequestContext<RoleServer>) -> Option<&'static str> {
        let stateless = context
            .meta
            .get("io.modelcontextprotocol/protocolVersion")
            .is_some();
        self.era_tools.then_some(if stateless {
            "era_stateless"
        } else {
            "era_handshake"
        })
    }

    pub fn with_tracer(mut self, tracer: Option<opentelemetry_sdk::trace::SdkTracer>) -> Self {
        self.tracer = tracer;
        self
    }

    fn record(&self, event: impl Into<String>) {
        self.shared.journal.record(&self.catalog.name, event);
    }

    /// Tells every session and listen stream that the tool list changed.
    async fn announce_tool_list_change(&self) {
        self.shared.watchers.tools_changed(&self.catalog.name).await;
    }

    async fn call(
        &self,
        tool: &str,
        args: &JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let server = &self.catalog.name;
        let str_arg = |field: &str| args.get(field).and_then(Value::as_str);
        match tool {
            "whoami" => Ok(CallToolResult::success(vec![text(server)])),
            "echo" => {
                let Some(message) = str_arg("text") else {
                    return Ok(bad_args("echo needs a string `text`"));
                };
                from_json(json!({
                    "content": [
                        {
                            "type": "text",
                            "text": message,
                            "annotations": { "audience": ["user"], "priority": 0.5 },
                            "_meta": { "fixture/echo": true },
                        },
                        { "type": "image", "data": TINY_PNG_BASE64, "mimeType": "image/png" },
                    ],
                    "structuredContent": { "text": message },
                }))
            }
            "slow" => {
                let Some(ms) = args.get("ms").and_then(Value::as_u64) else {
                    return Ok(bad_args("slow needs a non-negative integer `ms`"));
                };
                self.slow(ms, context).await
            }
            "crash" => {
                eprintln!("fixture {server}: crashing on request");
                // Exit without unwinding or answering: the gateway must cope
                // with an upstream that vanishes mid-call.
                std::process::exit(3);
            }
            "add_tool" | "remove_tool" => {
                let Some(name) = str_arg("name") else {
                    return Ok(bad_args(&format!("{tool} needs a string `name`")));
                };
                let changed = if tool == "add_tool" {
                    self.catalog.add_tool(name)?
                } else {
                    self.catalog.remove_tool(name)
                };
                if !changed {
                    let why = if tool == "add_tool" {
                        "already exists"
                    } else {
                        "does not exist"
                    };
                    return Ok(bad_args(&format!("tool `{name}` {why}")));
                }
                self.announce_tool_list_change().await;
                Ok(CallToolResult::success(vec![text(if tool == "add_tool" {
                    "added"
                } else {
                    "removed"
                })]))
            }
            "fail" => Err(ErrorData::internal_error("deliberate failure", None)),
            "envelope" => {
                let seen = envelope_of(context);
                from_json(json!({
                    "content": [{ "type": "text", "text": seen.to_string() }],
                    "structuredContent": seen,
                }))
            }
            "journal" => {
                let events = self.shared.journal.events();
                from_json(json!({
                    "content": [{ "type": "text", "text": events.join("\n") }],
                    "structuredContent": { "events": events },
                }))
            }
            "touch" => {
                let Some(uri) = str_arg("uri") else {
                    return Ok(bad_args("touch needs a string `uri`"));
                };
                let told = self.shared.watchers.resource_updated(uri).await;
                Ok(CallToolResult::success(vec![text(&format!("told {told}"))]))
            }
            // `tool_i` and anything added at runtime.
            generic => from_json(json!({
                "content": [{ "type": "text", "text": format!("{server}:{generic}") }],
                "structuredContent": { "server": server, "tool": generic },
            })),
        }
    }

    /// Sleeps `ms` milliseconds, sending progress every 100 ms when the
    /// request carried a progress token. Stops early if the call is cancelled.
    async fn slow(
        &self,
        ms: u64,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        self.record(format!("slow {ms} ms started"));
        let token = context.meta.get_progress_token();
        let total = Duration::from_millis(ms);
        let mut elapsed = Duration::ZERO;
        while elapsed < total {
            let step = PROGRESS_INTERVAL.min(total - elapsed);
            tokio::select! {
                () = tokio::time::sleep(step) => {}
                () = context.ct.cancelled() => {
                    self.record(format!("cancelled slow after {} ms", elapsed.as_millis()));
                    return Err(ErrorData::internal_error("cancelled", None));
                }
            }
            elapsed += step;
            if let Some(token) = &token {
                // Milliseconds fit an f64 exactly far beyond any test duration.
                let progress =
                    ProgressNotificationParam::new(token.clone(), elapsed.as_millis() as f64)
                        .with_total(ms as f64)
                        .with_message(format!("{} of {ms} ms", elapsed.as_millis()));
                if let Err(err) = context.peer.notify_progress(progress).await {
                    eprintln!(
                        "fixture {}: progress not delivered: {err}",
                        self.catalog.name
                    );
                }
            }
        }
        Ok(CallToolResult::success(vec![text(&format!(
            "done after {ms} ms"
        ))]))
    }
}

fn text(text: &str) -> ContentBlock {
    ContentBlock::text(text.to_owned())
}

/// Invalid arguments are tool results, not protocol errors (MCP 2025-11-25).
fn bad_args(message: &str) -> CallToolResult {
    CallToolResult::error(vec![text(message)])
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_prompts()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_completions()
            .build();
        let info = Implementation::new(self.catalog.name.clone(), env!("CARGO_PKG_VERSION"));
        ServerConfig::new(capabilities)
            .with_server_info(info)
            .with_protocol_version(MAX_PROTOCOL)
            .with_instructions(format!("Test fixture server {}", self.catalog.name))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.protocol.versions()
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        self.record(format!("initialize {}", request.protocol_version));
        // A 2026-07-28-only server has no handshake: -32022, naming what it does speak.
        if self.protocol == Protocol::Stateless {
            return Err(ErrorData::unsupported_protocol_version(
                request.protocol_version.clone(),
                &self.supported_protocol_versions(),
            ));
        }
        context.peer.set_peer_info(request.clone());
        self.shared.watchers.add_session(context.peer.clone());
        self.negotiate_initialize(&request)
    }

    async fn discover(
        &self,
        _context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, ErrorData> {
        self.record("discover");
        Ok(DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            self.get_info(),
        ))
    }

    /// The schema rmcp checks `Mcp-Param-*` headers against (SEP-2243).
    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.catalog.tool(name)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let filter = serde_json::to_value(context.accepted()).unwrap_or(Value::Null);
        self.record(format!("listen {filter}"));
        let key = self.shared.watchers.add_listen(context.sink().clone());
        context.cancelled().await;
        self.shared.watchers.remove_listen(key);
        self.record("listen ended");
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.record(format!("subscribe {}", request.uri));
        self.shared
            .watchers
            .subscribe(context.peer.clone(), request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared.watchers.unsubscribe(&request.uri);
        Ok(())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let first_page = request.as_ref().is_none_or(|r| r.cursor.is_none());
        let (mut tools, next_cursor) = self.catalog.tools_page(request)?;
        if let Some(name) = self.era_tool(&context).filter(|_| first_page) {
            tools.push(Tool::new(
                name,
                "Answers with the era it was called in",
                Arc::new(serde_json::Map::from_iter([(
                    "type".to_owned(),
                    json!("object"),
                )])),
            ));
        }
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = next_cursor;
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if let Some(name) = self.era_tool(&context)
            && request.name == name
        {
            return Ok(CallToolResult::success(vec![text(name)]).into());
        }
        if !self.catalog.has_tool(&request.name) {
            return Err(ErrorData::invalid_params(
                format!("unknown tool: {}", request.name),
                Some(json!({ "name": request.name })),
            ));
        }
        let span = self
            .tracer
            .as_ref()
            .map(|t| crate::otel::tool_span(t, &request.name, &context));
        let args = request.arguments.unwrap_or_default();
        let result = self.call(&request.name, &args, &context).await;
        if let Some(span) = span {
            crate::otel::end(span);
        }
        result.map(Into::into)
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let (prompts, next_cursor) = self.catalog.prompts_page(request)?;
        let mut result = ListPromptsResult::with_all_items(prompts);
        result.next_cursor = next_cursor;
        Ok(result)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.catalog
            .get_prompt(&request.name, request.arguments.as_ref())
            .map(Into::into)
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let (resources, next_cursor) = self.catalog.resources_page(request)?;
        let mut result = ListResourcesResult::with_all_items(resources);
        result.next_cursor = next_cursor;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let (templates, next_cursor) = self.catalog.templates_page(request)?;
        let mut result = ListResourceTemplatesResult::with_all_items(templates);
        result.next_cursor = next_cursor;
        Ok(result)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.catalog.read_resource(&request.uri).map(Into::into)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.catalog.complete(&request)
    }
}
