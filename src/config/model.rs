//! The validated configuration the rest of the gateway runs on: parsed, checked, defaults filled.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use super::filter::{NameFilter, Pattern};

/// Default `listen`: loopback only, so a fresh install is not reachable from the network.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// Default `path`: where MCP clients conventionally look for a Streamable HTTP endpoint.
pub const DEFAULT_PATH: &str = "/mcp";
/// Default `separator`: `__` is legal in MCP tool names and rare inside them.
pub const DEFAULT_SEPARATOR: &str = "__";
/// Default `max_name_length`: 64 is what common LLM APIs accept for a tool name.
pub const DEFAULT_MAX_NAME_LENGTH: usize = 64;
/// Largest `max_name_length`: the MCP spec's own limit on tool names.
pub const MAX_NAME_LENGTH_LIMIT: usize = 128;
/// Default `page_size` of merged listings.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Default `session_idle_timeout`: long enough for a human pause, short enough to reap zombies.
pub const DEFAULT_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default `shutdown_grace`: fits inside Kubernetes' default 30 s termination grace period.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default `max_body_bytes` (4 MiB): room for large tool arguments, bounded against abuse.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default `resume_window`: time for a client to reconnect after a dropped stream.
pub const DEFAULT_RESUME_WINDOW: Duration = Duration::from_secs(30);
/// Default `first_event_wait`: long enough for most calls to answer within it (their answer
/// then leaves in one write), short next to any proxy's or client's header timeout.
pub const DEFAULT_FIRST_EVENT_WAIT: Duration = Duration::from_secs(1);
/// Default per-upstream request `timeout`.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// The whole gateway configuration, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Socket address to serve on. Default `127.0.0.1:8080`: loopback, so nothing is exposed
    /// until an operator asks for it.
    pub listen: SocketAddr,
    /// Path of the Streamable HTTP endpoint; starts with `/`. Default `/mcp`.
    pub path: String,
    /// Text between an upstream's prefix and a tool or prompt name. Default `__`.
    pub separator: String,
    /// Exposed names longer than this are shortened; 1..=128. Default 64 (LLM API limit).
    pub max_name_length: usize,
    /// Items per page of merged listings; at least 1. Default 100.
    pub page_size: usize,
    /// What to do when two upstreams expose the same name or URI. Default `error`: a silent
    /// shadowing would be worse than a refusal to start.
    pub collisions: CollisionPolicy,
    /// Sessions without traffic for this long are closed. Default 30 minutes.
    pub session_idle_timeout: Duration,
    /// How long in-flight work may run after a shutdown signal. Default 10 seconds.
    pub shutdown_grace: Duration,
    /// Largest accepted downstream request body. Default 4 MiB.
    pub max_body_bytes: usize,
    /// How requests are answered on Streamable HTTP. Default `stream`.
    pub response_mode: ResponseMode,
    /// How long a request whose response stream lost its reader keeps running, so the client
    /// can resume it with `Last-Event-ID`; then it is cancelled upstream. Default 30 seconds.
    pub resume_window: Duration,
    /// How long a streamed answer's head (status and headers) waits for its first event, so
    /// that a quick answer goes out in one write with it; zero sends the head at once.
    /// Default 1 second.
    pub first_event_wait: Duration,
    /// Key sealing resumable state. Default `None`: the caller then uses a random per-process
    /// key, which is fine for one replica but not for several behind a load balancer.
    pub seal_key: Option<[u8; 32]>,
    /// The Redis that replicas share (`redis`). Default `None`: everything is kept in this
    /// process, exactly as a single replica needs.
    pub redis: Option<super::redis::RedisConfig>,
    /// Host and Origin checks.
    pub security: Security,
    /// Upstream servers, sorted by name so that merged listings have a stable order.
    pub upstreams: Vec<UpstreamConfig>,
    /// Authentication of HTTP clients (`auth`). Default: none, every caller is anonymous.
    pub auth: super::auth::AuthConfig,
    /// Authorization rules (`policy`). Default: everything allowed.
    pub policy: super::policy::PolicyConfig,
    /// Rate limits (`rate_limits`). Default: none.
    pub rate_limits: super::rate_limits::RateLimitConfig,
    /// Tracing and OTLP export (`telemetry`). Default: spans on, no exporter.
    pub telemetry: super::telemetry::TelemetryConfig,
    /// The Prometheus endpoint (`metrics`). Default: on, at `/metrics`.
    pub metrics: super::metrics::MetricsConfig,
    /// The audit log (`audit`). Default: on, arguments redacted.
    pub audit: super::audit::AuditConfig,
    /// Tasks: store, lifetimes, limits and the threshold (`tasks`).
    pub tasks: super::tasks::TasksConfig,
    /// Connection count, per-source count and timeouts of the HTTP face (`connections`).
    pub connections: super::limits::ConnectionsConfig,
    /// Session count, per-principal and per-source counts, unused expiry (`sessions`).
    pub sessions: super::limits::SessionsConfig,
    /// Bytes kept for clients' streams, per session and in all (`buffers`).
    pub buffers: super::buffers::BuffersConfig,
}

/// How the gateway answers a request on Streamable HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseMode {
    /// Every request is answered with an SSE stream whose events carry ids, so any answer
    /// can be resumed after a dropped connection (what the reference SDKs do).
    #[default]
    Stream,
    /// A plain JSON answer, unless something related to the request (progress, a
    /// server→client request) comes before the result; then a stream.
    Auto,
}

/// What to do when two upstreams expose the same exposed name or resource URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CollisionPolicy {
    /// Refuse: report the collision as an error.
    #[default]
    Error,
    /// Keep the entry of the upstream that sorts first by name; drop the others.
    FirstWins,
}

/// Protection against DNS rebinding and cross-origin browser requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// Whether Host and Origin headers are checked. Resolved from `auto` (the default), which
    /// turns it on when `listen` is a loopback address: that is the setup a malicious web page
    /// can reach through a rebinding DNS name.
    pub dns_rebinding_protection: bool,
    /// Extra accepted `Host` values (`host` or `host:port`, lower case) besides loopback names.
    /// Default empty.
    pub allowed_hosts: Vec<String>,
    /// Extra accepted `Origin` values, normalised to `scheme://host[:port]`. Default empty.
    pub allowed_origins: Vec<String>,
}

/// One upstream MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Unique name, `[a-z0-9-]{1,32}`.
    pub name: String,
    /// Prepended (with the separator) to exposed names. Default: the upstream name. Empty means
    /// names are exposed unchanged.
    pub prefix: String,
    /// How to reach the server.
    pub transport: TransportConfig,
    /// Per-request timeout. Default 60 seconds.
    pub timeout: Duration,
    /// Which upstream tool names are exposed. Default: all.
    pub tools: NameFilter,
    /// Which upstream prompt names are exposed. Default: all.
    pub prompts: NameFilter,
    /// Which resource URIs and URI templates are exposed. Default: all.
    pub resources: NameFilter,
    /// Whether downstream sessions share one upstream session. Default `Shared`.
    pub session: SessionMode,
    /// Which protocol era to speak to the server. Default `Auto`: probe once, remember.
    pub protocol: ProtocolMode,
    /// Most requests in flight to this upstream at once; more wait for a slot (bounded by
    /// the request timeout). Default: no cap.
    pub max_concurrency: Option<usize>,
    /// Per-tool timeouts by glob over the upstream's own tool names, most specific first
    /// (the first match wins); tools that match none use `timeout`. Default: none.
    pub tool_timeouts: Vec<(Pattern, Duration)>,
    /// Whether the gateway runs this upstream's calls as tasks. Default `on_request`.
    pub tasks: TaskMode,
    /// Per-tool overrides of `tasks` by glob over the upstream's own tool names, most
    /// specific first. Default: none.
    pub tool_tasks: Vec<(Pattern, TaskMode)>,
    /// Extra HTTP headers sent upstream, each filled from a claim of the caller's principal
    /// (header name → claim name). Never the client's token. Default: none.
    pub identity_headers: BTreeMap<String, String>,
    /// When to stop sending requests to an upstream that keeps failing. Default: open after
    /// 5 failures in a row, probe again after 30 seconds.
    pub circuit: Circuit,
    /// Whether listings (`tools/list` …) that failed on a connection error are sent again,
    /// once. Default true: they change nothing upstream.
    pub retry_lists: bool,
}

/// An upstream's circuit breaker (`circuit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Circuit {
    /// Connection failures and timeouts in a row that open the circuit; 0 never opens it.
    pub failures: u32,
    /// How long an open circuit refuses requests before one goes through as a probe.
    pub cooldown: Duration,
}

/// Default `circuit.failures`.
pub const DEFAULT_CIRCUIT_FAILURES: u32 = 5;
/// Default `circuit.cooldown`.
pub const DEFAULT_CIRCUIT_COOLDOWN: Duration = Duration::from_secs(30);

impl Default for Circuit {
    fn default() -> Self {
        Circuit {
            failures: DEFAULT_CIRCUIT_FAILURES,
            cooldown: DEFAULT_CIRCUIT_COOLDOWN,
        }
    }
}

/// Whether a call may run as a task (`tasks` and `tool_tasks` of an upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskMode {
    /// Never a task: listed `taskSupport: forbidden`, and a request for a task is refused
    /// (a tool) or ignored (a prompt or a read).
    Never,
    /// A task when the client asks for one (2025-11-25 `task` param), or when a 2026-07-28
    /// client that declared the tasks extension waits longer than `tasks.threshold`.
    #[default]
    OnRequest,
    /// Always a task: listed `taskSupport: required`; 2026-07-28 clients without the tasks
    /// extension get -32021.
    Always,
}

/// Whether downstream sessions share an upstream session (only meaningful for stdio).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionMode {
    /// One upstream process or session serves every downstream session: cheap, the default.
    #[default]
    Shared,
    /// Each downstream session gets its own upstream process or session: full isolation.
    PerSession,
}

/// Which protocol era the gateway speaks to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolMode {
    /// Probe with `server/discover` at 2026-07-28; fall back to `initialize` on anything but
    /// a stateless-era answer. The verdict is remembered across reconnects. The default, since it
    /// costs one round trip per upstream and works with servers of either era.
    #[default]
    Auto,
    /// Always `initialize` (the handshake era, 2025-11-25 and older): for servers that
    /// misbehave when probed.
    Handshake,
    /// Always the stateless era (2026-07-28); an upstream that does not speak it stays down.
    Stateless,
}

/// How to reach an upstream. `Debug` redacts header and environment values (they hold tokens).
#[derive(Clone, PartialEq, Eq)]
pub enum TransportConfig {
    /// A child process speaking MCP over stdin/stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    /// An MCP server speaking Streamable HTTP at `url`.
    StreamableHttp {
        url: url::Url,
        headers: BTreeMap<String, String>,
    },
    /// A HTTP+SSE server; `url` is its `GET /sse` endpoint.
    Sse {
        url: url::Url,
        headers: BTreeMap<String, String>,
    },
}

const REDACTED: &str = "<redacted>";

impl Config {
    /// The upstream called `name`, if any.
    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|upstream| upstream.name == name)
    }

    /// Defaults with `listen` on `127.0.0.1:0`, so tests can bind a free port.
    pub fn default_for_tests() -> Self {
        Config {
            listen: SocketAddr::new(DEFAULT_LISTEN.ip(), 0),
            ..Config::default()
        }
    }
}

impl Default for Config {
    /// Every setting at its documented default, with no upstreams.
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN,
            path: DEFAULT_PATH.to_owned(),
            separator: DEFAULT_SEPARATOR.to_owned(),
            max_name_length: DEFAULT_MAX_NAME_LENGTH,
            page_size: DEFAULT_PAGE_SIZE,
            collisions: CollisionPolicy::Error,
            session_idle_timeout: DEFAULT_SESSION_IDLE_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            response_mode: ResponseMode::Stream,
            resume_window: DEFAULT_RESUME_WINDOW,
            first_event_wait: DEFAULT_FIRST_EVENT_WAIT,
            seal_key: None,
            redis: None,
            security: Security {
                dns_rebinding_protection: true,
                allowed_hosts: Vec::new(),
                allowed_origins: Vec::new(),
            },
            upstreams: Vec::new(),
            auth: Default::default(),
            policy: Default::default(),
            rate_limits: Default::default(),
            telemetry: Default::default(),
            metrics: Default::default(),
            audit: Default::default(),
            tasks: Default::default(),
            connections: Default::default(),
            sessions: Default::default(),
            buffers: Default::default(),
        }
    }
}

impl fmt::Debug for Config {
    // Hand-written so the seal key never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("path", &self.path)
            .field("separator", &self.separator)
            .field("max_name_length", &self.max_name_length)
            .field("page_size", &self.page_size)
            .field("collisions", &self.collisions)
            .field("session_idle_timeout", &self.session_idle_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("response_mode", &self.response_mode)
            .field("resume_window", &self.resume_window)
            .field("first_event_wait", &self.first_event_wait)
            .field("seal_key", &self.seal_key.map(|_| REDACTED))
            .field("redis", &self.redis)
            .field("security", &self.security)
            .field("upstreams", &self.upstreams)
            .field("auth", &self.auth)
            .field("policy", &self.policy)
            .field("rate_limits", &self.rate_limits)
            .field("telemetry", &self.telemetry)
            .field("metrics", &self.metrics)
            .field("audit", &self.audit)
            .field("tasks", &self.tasks)
            .field("connections", &self.connections)
            .field("sessions", &self.sessions)
            .field("buffers", &self.buffers)
            .finish()
    }
}

impl TransportConfig {
    /// A short, stable label for logs and metrics: `stdio`, `streamable_http` or `sse`.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportConfig::Stdio { .. } => "stdio",
            TransportConfig::StreamableHttp { .. } => "streamable_http",
            TransportConfig::Sse { .. } => "sse",
        }
    }
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportConfig::Stdio {
                command,
                args,
                env,
                cwd,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &Redacted(env))
                .field("cwd", cwd)
                .finish(),
            TransportConfig::StreamableHttp { url, headers } => f
                .debug_struct("StreamableHttp")
                .field("url", &redacted_url(url))
                .field("headers", &Redacted(headers))
                .finish(),
            TransportConfig::Sse { url, headers } => f
                .debug_struct("Sse")
                .field("url", &redacted_url(url))
                .field("headers", &Redacted(headers))
                .finish(),
        }
    }
}

/// Shows a map's keys with every value replaced by `<redacted>`.
struct Redacted<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|key| (key, REDACTED)))
            .finish()
    }
}

/// The URL as text with its password and query replaced, since either may carry a credential
/// (`https://user:redacted@host/sse?redacted`).
fn redacted_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Fails only for URLs that cannot have credentials, which then have no password either.
        let _ = shown.set_password(Some("redacted"));
    }
    if shown.query().is_some() {
        shown.set_query(Some("redacted"));
    }
    shown.to_string()
}
