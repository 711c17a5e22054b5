//! The fixture's `ServerHandler`, written out by hand.
//!
//! The fixture speaks both protocol eras. Handshake-era clients
//! (2024-11-05 … 2025-11-25) open a session with `initialize`; 2026-07-28
//! clients send every request on its own, with the protocol version and their
//! capabilities in `params._meta`. rmcp tells the two apart per request (HTTP)
//! or per connection (stdio) and validates the 2026-07-28 envelope;
//! [`is_stateless`] is how the fixture's own code asks which era it serves.
//!
//! State lives at two levels. A [`ConformanceServer`] is one connection: an
//! HTTP session (rmcp builds one per `Mcp-Session-Id`), one stateless HTTP
//! request, or the stdio connection; for a handshake session it owns the log
//! level set by `logging/setLevel`. [`Shared`] is the whole process: the
//! watched resource's revision, every handshake session's resource
//! subscriptions, every open `subscriptions/listen` stream, the key that
//! seals `requestState` and every task, so a change made through one
//! connection reaches subscribers and listeners on all of them, and a task
//! made by one stateless request can be read by the next.

// `logging/setLevel` and `resources/subscribe` are handshake-era methods,
// deprecated in 2026-07-28 but current where the fixture serves them.
#![allow(deprecated)]

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskMethod, CancelTaskParams,
    CompleteRequestParams, CompleteResult, ConstString, GetPromptRequestParams, GetPromptResponse,
    GetTaskMethod, GetTaskParams, GetTaskResult, Implementation, InitializeRequestParams,
    InitializeResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
    ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ResourceUpdatedNotificationParam, ServerCapabilities, ServerConfig, SetLevelRequestMethod,
    SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter, TASKS_EXTENSION_ID, Tool,
    UnsubscribeRequestParams, UpdateTaskMethod, UpdateTaskParams,
};
use rmcp::service::{
    NotificationContext, Peer, RequestContext, SubscriptionContext, SubscriptionSink,
};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;

use crate::content::{self, CONTEXT_PROMPT, WATCHED_URI};
use crate::input::{self, Origin, Outcome, Retry, StateSeal};
use crate::tasks::TaskStore;
use crate::tools;

/// Newest protocol revision served: the stateless 2026-07-28.
const MAX_PROTOCOL: ProtocolVersion = ProtocolVersion::V_2026_07_28;

/// Newest revision with an `initialize` handshake, and the one `initialize`
/// answers with when the client asks for one the fixture does not know.
const HANDSHAKE_PROTOCOL: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// How long after a subscription to the watched resource the fixture
/// "changes" it, so every subscriber sees at least one update.
const WATCHED_CHANGE_DELAY: Duration = Duration::from_millis(100);

/// Name used as `serverInfo.name` and as the logger of log messages.
const SERVER_NAME: &str = "manifold-conformance-fixture";

/// Whether the request in `context` belongs to the stateless era
/// (2026-07-28 or later): its own `_meta` names such a version, or its stdio
/// connection opened that way. The handshake era answers `false`.
pub fn is_stateless(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|version| version.as_str() >= MAX_PROTOCOL.as_str())
}

/// A list whose change can be announced to clients.
#[derive(Debug, Clone, Copy)]
pub enum ListChange {
    Tools,
    Prompts,
}

/// Process-wide state shared by all connections.
#[derive(Default)]
pub struct Shared {
    next_connection: AtomicU64,
    watched_revision: AtomicU64,
    subscriptions: Mutex<Vec<Subscription>>,
    sessions: Mutex<Vec<HandshakeSession>>,
    listeners: Mutex<Vec<Listener>>,
    seal: StateSeal,
    tasks: TaskStore,
}

/// One `resources/subscribe` that has not been undone (handshake era).
struct Subscription {
    session: u64,
    uri: String,
    peer: Peer<RoleServer>,
}

/// A handshake-era session, told about list changes outside any request.
struct HandshakeSession {
    session: u64,
    peer: Peer<RoleServer>,
}

/// One open `subscriptions/listen` stream (2026-07-28).
struct Listener {
    id: u64,
    sink: SubscriptionSink,
}

/// Locks `mutex`; a panic while it was held leaves plain data, still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One connection (a handshake session, a stateless request or stdio).
#[derive(Clone)]
pub struct ConformanceServer {
    shared: Arc<Shared>,
    connection: u64,
    /// Least severe level a handshake-era client wants to receive. Until it
    /// says otherwise with `logging/setLevel`, it gets everything.
    min_level: Arc<Mutex<LoggingLevel>>,
}

impl ConformanceServer {
    pub fn new_session(shared: Arc<Shared>) -> Self {
        let connection = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        Self {
            shared,
            connection,
            min_level: Arc::new(Mutex::new(LoggingLevel::Debug)),
        }
    }

    pub fn seal(&self) -> &StateSeal {
        &self.shared.seal
    }

    pub fn tasks(&self) -> &TaskStore {
        &self.shared.tasks
    }

    /// Sends `notifications/message` on the request's stream unless the
    /// client does not want it. A handshake-era session gets what its
    /// `logging/setLevel` allows; a 2026-07-28 request only opts in with
    /// `_meta["io.modelcontextprotocol/logLevel"]`, and without it gets
    /// nothing.
    pub async fn log(
        &self,
        context: &RequestContext<RoleServer>,
        level: LoggingLevel,
        message: &str,
    ) {
        let min_level = if is_stateless(context) {
            match context.meta.log_level() {
                Some(level) => level,
                None => return,
            }
        } else {
            *lock(&self.min_level)
        };
        if severity(level) < severity(min_level) {
            return;
        }
        let params = LoggingMessageNotificationParam::new(level, Value::from(message))
            .with_logger(SERVER_NAME);
        if let Err(err) = context.peer.notify_logging_message(params).await {
            eprintln!("conformance_server: log message not delivered: {err}");
        }
    }

    /// Moves the watched resource to its next revision and tells every
    /// handshake session subscribed to it and every listen stream that asked
    /// for it. Returns the new revision.
    pub async fn touch_watched(&self) -> u64 {
        let revision = self.shared.watched_revision.fetch_add(1, Ordering::Relaxed) + 1;
        let peers: Vec<Peer<RoleServer>> = {
            let mut subscriptions = lock(&self.shared.subscriptions);
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
        for sink in self.listening(|accepted| {
            accepted
                .resource_subscriptions
                .as_ref()
                .is_some_and(|uris| uris.iter().any(|uri| uri == WATCHED_URI))
        }) {
            if let Err(err) = sink.notify_resource_updated(WATCHED_URI).await {
                eprintln!("conformance_server: resource update not delivered: {err}");
            }
        }
        revision
    }

    /// Tells every handshake session, and every listen stream that asked for
    /// it, that `list` changed. Returns how many were told.
    pub async fn announce(&self, list: ListChange) -> usize {
        let mut told = 0;
        let sessions: Vec<Peer<RoleServer>> = {
            let mut sessions = lock(&self.shared.sessions);
            sessions.retain(|session| !session.peer.is_transport_closed());
            sessions
                .iter()
                .map(|session| session.peer.clone())
                .collect()
        };
        for peer in sessions {
            let sent = match list {
                ListChange::Tools => peer.notify_tool_list_changed().await,
                ListChange::Prompts => peer.notify_prompt_list_changed().await,
            };
            match sent {
                Ok(()) => told += 1,
                Err(err) => eprintln!("conformance_server: list change not delivered: {err}"),
            }
        }
        let listeners = self.listening(|accepted| match list {
            ListChange::Tools => accepted.tools_list_changed == Some(true),
            ListChange::Prompts => accepted.prompts_list_changed == Some(true),
        });
        for sink in listeners {
            let sent = match list {
                ListChange::Tools => sink.notify_tool_list_changed().await,
                ListChange::Prompts => sink.notify_prompt_list_changed().await,
            };
            match sent {
                Ok(()) => told += 1,
                Err(err) => eprintln!("conformance_server: list change not delivered: {err}"),
            }
        }
        told
    }

    /// The sinks of the open listen streams whose accepted filter passes
    /// `wants`.
    fn listening(&self, wants: impl Fn(&SubscriptionFilter) -> bool) -> Vec<SubscriptionSink> {
        lock(&self.shared.listeners)
            .iter()
            .filter(|listener| wants(listener.sink.accepted()))
            .map(|listener| listener.sink.clone())
            .collect()
    }
}

/// Tasks are a 2026-07-28 extension: a handshake-era request for `M` (one
/// of the `tasks/*` methods) finds no such method.
fn tasks_era<M: ConstString>(context: &RequestContext<RoleServer>) -> Result<(), ErrorData> {
    if is_stateless(context) {
        Ok(())
    } else {
        Err(ErrorData::method_not_found::<M>())
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
        // In 2026-07-28 `listChanged` and `subscribe` promise delivery on
        // `subscriptions/listen`; in the handshake era, on the session. The
        // tasks extension is 2026-07-28 only: `initialize` leaves it out.
        let capabilities = ServerCapabilities::builder()
            .enable_logging()
            .enable_completions()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_tasks()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION")))
            .with_protocol_version(HANDSHAKE_PROTOCOL)
            .with_instructions(
                "Fixture for the MCP conformance suite: every test_* tool, prompt and \
                 test:// resource the suite's server scenarios ask for, in both the \
                 handshake era and 2026-07-28.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&MAX_PROTOCOL))
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        context.peer.set_peer_info(request.clone());
        let mut result = self.negotiate_initialize(&request)?;
        if let Some(extensions) = result.capabilities.extensions.as_mut() {
            extensions.remove(TASKS_EXTENSION_ID);
            if extensions.is_empty() {
                result.capabilities.extensions = None;
            }
        }
        Ok(result)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let mut sessions = lock(&self.shared.sessions);
        sessions.retain(|session| !session.peer.is_transport_closed());
        if !sessions
            .iter()
            .any(|session| session.session == self.connection)
        {
            sessions.push(HandshakeSession {
                session: self.connection,
                peer: context.peer,
            });
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        tools::list()
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::find(name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        tools::call(self, request, &context).await
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
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != CONTEXT_PROMPT {
            return content::get_prompt(&request.name, request.arguments.as_ref()).map(Into::into);
        }
        let origin = Origin {
            method: "prompts/get",
            name: &request.name,
            arguments: request.arguments.as_ref(),
        };
        let retry = Retry {
            input_responses: request.input_responses.clone(),
            request_state: request.request_state.clone(),
        };
        match input::drive(
            self.seal(),
            &context,
            origin,
            retry,
            content::context_prompt,
        )
        .await?
        {
            Outcome::Done(prompt) => Ok(prompt.into()),
            Outcome::InputRequired(result) => Ok(result.into()),
            Outcome::Unanswered(why) => Err(ErrorData::invalid_request(
                format!("{CONTEXT_PROMPT} needs the user's answer: {why}"),
                None,
            )),
        }
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

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // Everything the capabilities promise (rmcp drops the rest), and
        // updates only for resources that exist.
        let mut accepted = requested.clone();
        if let Some(uris) = accepted.resource_subscriptions.as_mut() {
            uris.retain(|uri| content::read_resource(uri, 0).is_ok());
        }
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        // rmcp has already sent `notifications/subscriptions/acknowledged`.
        let id = self.shared.next_connection.fetch_add(1, Ordering::Relaxed);
        let watches = context
            .accepted()
            .resource_subscriptions
            .as_ref()
            .is_some_and(|uris| uris.iter().any(|uri| uri == WATCHED_URI));
        lock(&self.shared.listeners).push(Listener {
            id,
            sink: context.sink().clone(),
        });
        if watches {
            self.change_watched_soon();
        }
        // The stream stays open until the client closes it (HTTP) or
        // cancels the request (stdio).
        context.cancelled().await;
        lock(&self.shared.listeners).retain(|listener| listener.id != id);
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // Only resources that can be read can be watched.
        content::read_resource(&request.uri, 0)?;
        {
            let mut subscriptions = lock(&self.shared.subscriptions);
            let already = subscriptions
                .iter()
                .any(|sub| sub.session == self.connection && sub.uri == request.uri);
            if !already {
                subscriptions.push(Subscription {
                    session: self.connection,
                    uri: request.uri.clone(),
                    peer: context.peer.clone(),
                });
            }
        }
        if request.uri == WATCHED_URI {
            self.change_watched_soon();
        }
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        lock(&self.shared.subscriptions)
            .retain(|sub| !(sub.session == self.connection && sub.uri == request.uri));
        Ok(())
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // 2026-07-28 removed the method: the level travels on each request.
        if is_stateless(&context) {
            return Err(ErrorData::method_not_found::<SetLevelRequestMethod>());
        }
        *lock(&self.min_level) = request.level;
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        content::complete(&request)
    }

    // rmcp has already refused (-32021) `tasks/*` requests that do not
    // declare the extension.
    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        tasks_era::<GetTaskMethod>(&context)?;
        self.tasks().get(&request.task_id)
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        tasks_era::<UpdateTaskMethod>(&context)?;
        self.tasks().update(request)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        tasks_era::<CancelTaskMethod>(&context)?;
        self.tasks().cancel(&request.task_id)
    }
}

impl ConformanceServer {
    /// Changes the watched resource a moment from now, after the response
    /// that set up the subscription is out.
    fn change_watched_soon(&self) {
        let server = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(WATCHED_CHANGE_DELAY).await;
            server.touch_watched().await;
        });
    }
}
