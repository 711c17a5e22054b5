//! The fixture's `ServerHandler`, written out by hand.
//!
//! State lives at two levels. A [`ConformanceServer`] is one client session
//! (over HTTP rmcp builds one per `Mcp-Session-Id`; stdio has exactly one)
//! and owns that session's log level. [`Shared`] is the whole process: the
//! watched resource's revision and every session's resource subscriptions,
//! so a change made through one session reaches subscribers in all of them.

// `logging/setLevel` and `resources/subscribe` are legacy-only in newer
// protocol revisions; the fixture speaks up to 2025-11-25, where they are
// current, and the conformance suite tests them.
#![allow(deprecated)]

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel,
    LoggingMessageNotificationParam, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ResourceUpdatedNotificationParam,
    ServerCapabilities, ServerConfig, SetLevelRequestParams, SubscribeRequestParams,
    UnsubscribeRequestParams,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;

use crate::content::{self, WATCHED_URI};
use crate::tools;

/// Newest protocol revision served. The suite targets 2025-06-18 and
/// 2025-11-25; later revisions drop sessions and server-to-client requests.
const MAX_PROTOCOL: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// How long after a subscription to the watched resource the fixture
/// "changes" it, so every subscriber sees at least one update.
const WATCHED_CHANGE_DELAY: Duration = Duration::from_millis(100);

/// Name used as `serverInfo.name` and as the logger of log messages.
const SERVER_NAME: &str = "manifold-conformance-fixture";

/// Process-wide state shared by all sessions.
#[derive(Default)]
pub struct Shared {
    next_session: AtomicU64,
    watched_revision: AtomicU64,
    subscriptions: Mutex<Vec<Subscription>>,
}

/// One `resources/subscribe` that has not been undone.
struct Subscription {
    session: u64,
    uri: String,
    peer: Peer<RoleServer>,
}

impl Shared {
    fn subscriptions(&self) -> MutexGuard<'_, Vec<Subscription>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One client session.
#[derive(Clone)]
pub struct ConformanceServer {
    shared: Arc<Shared>,
    session: u64,
    /// Least severe level the client wants to receive. Until it says
    /// otherwise with `logging/setLevel`, it gets everything.
    min_level: Arc<Mutex<LoggingLevel>>,
}

impl ConformanceServer {
    pub fn new_session(shared: Arc<Shared>) -> Self {
        let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
        Self {
            shared,
            session,
            min_level: Arc::new(Mutex::new(LoggingLevel::Debug)),
        }
    }

    /// Sends `notifications/message` to `peer` unless this session's level
    /// filters it out.
    pub async fn log(&self, peer: &Peer<RoleServer>, level: LoggingLevel, message: &str) {
        let min_level = *self
            .min_level
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if severity(level) < severity(min_level) {
            return;
        }
        let params = LoggingMessageNotificationParam::new(level, Value::from(message))
            .with_logger(SERVER_NAME);
        if let Err(err) = peer.notify_logging_message(params).await {
            eprintln!("conformance_server: log message not delivered: {err}");
        }
    }

    /// Moves the watched resource to its next revision and tells every
    /// session subscribed to it. Returns the new revision.
    pub async fn touch_watched(&self) -> u64 {
        let revision = self.shared.watched_revision.fetch_add(1, Ordering::Relaxed) + 1;
        let peers: Vec<Peer<RoleServer>> = {
            let mut subscriptions = self.shared.subscriptions();
            subscriptions.retain(|sub| !sub.peer.is_transport_closed());
            subscriptions
                .iter()
                .filter(|sub| sub.uri == WATCHED_URI)
                .map(|sub| sub.peer.clone())
                .collect()
        };
        for peer in peers {
            let params = ResourceUpdatedNotificationParam::new(WATCHED_URI);
            if let Err(err) = peer.notify_resource_updated(params).await {
                eprintln!("conformance_server: resource update not delivered: {err}");
            }
        }
        revision
    }
}

/// Orders log levels from least (`debug`) to most (`emergency`) severe.
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

impl ServerHandler for ConformanceServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_logging()
            .enable_completions()
            .enable_prompts()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_tools()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION")))
            .with_protocol_version(MAX_PROTOCOL)
            .with_instructions(
                "Fixture for the MCP conformance suite: every test_* tool, prompt and \
                 test:// resource the suite's server scenarios ask for.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&MAX_PROTOCOL))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        tools::list()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        tools::call(self, &request.name, &args, &context)
            .await
            .map(Into::into)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        content::list_prompts()
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        content::get_prompt(&request.name, request.arguments.as_ref()).map(Into::into)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        content::list_resources()
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        content::list_resource_templates()
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let revision = self.shared.watched_revision.load(Ordering::Relaxed);
        content::read_resource(&request.uri, revision).map(Into::into)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // Only resources that can be read can be watched.
        content::read_resource(&request.uri, 0)?;
        {
            let mut subscriptions = self.shared.subscriptions();
            let already = subscriptions
                .iter()
                .any(|sub| sub.session == self.session && sub.uri == request.uri);
            if !already {
                subscriptions.push(Subscription {
                    session: self.session,
                    uri: request.uri.clone(),
                    peer: context.peer.clone(),
                });
            }
        }
        if request.uri == WATCHED_URI {
            // Change it a moment later, after the subscribe response is out.
            let server = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(WATCHED_CHANGE_DELAY).await;
                server.touch_watched().await;
            });
        }
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .subscriptions()
            .retain(|sub| !(sub.session == self.session && sub.uri == request.uri));
        Ok(())
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *self
            .min_level
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = request.level;
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        content::complete(&request)
    }
}
