//! Tasks (SEP-1686 in 2025-11-25, the `io.modelcontextprotocol/tasks` extension of
//! 2026-07-28, SEP-2663): a request that answers at once with a task, whose status and
//! result the client fetches later.
//!
//! Two ways a task comes to be:
//! - **passthrough** (`passthrough`): the upstream runs its own task, in the client's era
//!   (a 2025-11-25 upstream that declares `tasks.requests.*` for a 2025-11-25 client; a
//!   2026-07-28 upstream with the extension for a 2026-07-28 client). The gateway records
//!   the task under an id of its own and routes `tasks/*` to the owner with the upstream's id.
//! - **wrapping** (`stage`, `runner`): the upstream cannot (or speaks the other era), so the
//!   gateway runs the request itself in the background and serves `tasks/*` from its store.
//!
//! Either way the task lives in the store (`store`): memory by default, Redis when several
//! replicas must answer for each other's tasks. Tasks are bound to the principal (and, in the
//! handshake era, the session) that created them; anyone else is told the task does not exist.

pub mod methods;
pub mod passthrough;
pub mod record;
pub mod runner;
pub mod stage;
pub mod store;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::section::duration;
use crate::config::{ConfigError, TaskMode, UpstreamConfig};
use crate::protocol::methods as m;
use crate::upstream::Upstream;
use record::Owner;
use store::TaskStore;

/// The 2026-07-28 extension's identifier.
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// The `tasks` section.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TasksConfig {
    /// `redis://[user:password@]host:port[/db]`: task state in that Redis, so every replica
    /// answers for every task. Default none: this process's memory.
    pub redis: Option<String>,
    /// Prefix of every Redis key the gateway writes. Default `manifold`.
    pub redis_prefix: String,
    /// A call of a 2026-07-28 client that declared the tasks extension becomes a task when
    /// it has not finished after this long. `0` turns it off. Default 5 seconds.
    #[serde(with = "duration")]
    pub threshold: Duration,
    /// Lifetime of a task whose client asked for none. Default 1 hour.
    #[serde(with = "duration")]
    pub default_ttl: Duration,
    /// Longest lifetime granted, whatever the client asks. Default 24 hours.
    #[serde(with = "duration")]
    pub max_ttl: Duration,
    /// How often clients are told to poll. Default 1 second.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// Most live tasks per principal; more get -32010-free refusals (-32602 explains).
    /// Default 100.
    pub max_per_principal: usize,
}

impl Default for TasksConfig {
    fn default() -> Self {
        TasksConfig {
            redis: None,
            redis_prefix: "manifold".into(),
            threshold: Duration::from_secs(5),
            default_ttl: Duration::from_secs(3600),
            max_ttl: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_secs(1),
            max_per_principal: 100,
        }
    }
}

impl fmt::Debug for TasksConfig {
    // Hand-written: the Redis URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TasksConfig")
            .field("redis", &self.redis.as_ref().map(|_| "<redacted>"))
            .field("redis_prefix", &self.redis_prefix)
            .field("threshold", &self.threshold)
            .field("default_ttl", &self.default_ttl)
            .field("max_ttl", &self.max_ttl)
            .field("poll_interval", &self.poll_interval)
            .field("max_per_principal", &self.max_per_principal)
            .finish()
    }
}

impl TasksConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        let config: TasksConfig = crate::config::section::section("tasks", raw, errors);
        if let Some(url) = &config.redis
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            errors.push(ConfigError::new(
                "tasks.redis",
                "must be a redis:// or rediss:// URL",
            ));
        }
        if config.max_per_principal == 0 {
            errors.push(ConfigError::new(
                "tasks.max_per_principal",
                "must be at least 1",
            ));
        }
        if config.max_ttl.is_zero() || config.default_ttl.is_zero() {
            errors.push(ConfigError::new("tasks", "ttls must be longer than 0"));
        }
        if config.poll_interval.is_zero() {
            errors.push(ConfigError::new(
                "tasks.poll_interval",
                "must be longer than 0",
            ));
        }
        config
    }

    /// The lifetime granted for a requested one (milliseconds; `None`: the default).
    pub fn ttl_ms(&self, requested: Option<u64>) -> u64 {
        let max = u64::try_from(self.max_ttl.as_millis()).unwrap_or(u64::MAX);
        let default = u64::try_from(self.default_ttl.as_millis()).unwrap_or(u64::MAX);
        requested.unwrap_or(default).clamp(1, max)
    }

    pub fn poll_ms(&self) -> u64 {
        u64::try_from(self.poll_interval.as_millis()).unwrap_or(1000)
    }
}

/// The gateway's task state: the store, and the tasks this replica runs.
pub struct Tasks {
    pub config: TasksConfig,
    pub store: Arc<dyn TaskStore>,
    /// Tasks running on this replica: id → what stops them (a `tasks/cancel` here stops
    /// its task at once; one on another replica is seen through the store).
    running: DashMap<String, CancellationToken>,
    /// Client sessions whose per-client upstream link owns a passed-through task: session →
    /// until when (ms since the epoch) the link must outlive the session.
    link_holds: DashMap<String, u64>,
}

impl Tasks {
    pub fn new(config: TasksConfig) -> Tasks {
        let store: Arc<dyn TaskStore> = match &config.redis {
            Some(url) => Arc::new(store::redis::RedisStore::new(url, &config.redis_prefix)),
            None => Arc::new(store::memory::MemoryStore::default()),
        };
        Tasks {
            config,
            store,
            running: DashMap::new(),
            link_holds: DashMap::new(),
        }
    }

    /// Keeps the upstream link of `session` open until `until_ms`, for the upstream task it
    /// owns.
    pub fn hold_link(&self, session: &str, until_ms: u64) {
        let mut hold = self.link_holds.entry(session.to_owned()).or_insert(0);
        *hold = (*hold).max(until_ms);
    }

    /// How long the links of a closed session must stay open for their tasks, if at all.
    pub fn release_link(&self, session: &str) -> Option<Duration> {
        let (_, until) = self.link_holds.remove(session)?;
        let left = until.saturating_sub(record::now_ms());
        (left > 0).then(|| Duration::from_millis(left))
    }

    /// Stops a task this replica runs; false when it runs elsewhere (or no longer runs).
    pub fn stop_local(&self, id: &str) -> bool {
        self.running.get(id).map(|t| t.cancel()).is_some()
    }
}

/// The owner of a task created by this request.
pub fn owner_of(ctx: &crate::pipeline::RequestContext) -> Owner {
    let principal = ctx.principal();
    Owner {
        principal: format!("{:?}:{}", principal.method, principal.subject),
        session: ctx.session.as_ref().map(|s| s.id.clone()),
    }
}

/// The live session that created a 2025-11-25 task, for what the gateway sends it unasked.
pub fn owner_session(
    gateway: &crate::gateway::Gateway,
    record: &record::TaskRecord,
) -> Option<Arc<crate::downstream::Session>> {
    gateway.sessions.peek(record.owner.session.as_deref()?)
}

/// Whether a 2026-07-28 request's client capabilities declare the tasks extension.
pub fn declares_extension(capabilities: &Value) -> bool {
    capabilities
        .get("extensions")
        .and_then(|e| e.get(EXTENSION))
        .is_some_and(|v| !v.is_null())
}

/// The configured mode for a request to `upstream`: per tool glob for `tools/call`, else
/// the upstream's. `always` applies to tools only; a prompt or a read is a task when asked.
pub fn mode(upstream: &UpstreamConfig, method: &str, name: Option<&str>) -> TaskMode {
    if method != m::TOOLS_CALL {
        return match upstream.tasks {
            TaskMode::Always => TaskMode::OnRequest,
            other => other,
        };
    }
    name.and_then(|tool| {
        upstream
            .tool_tasks
            .iter()
            .find(|(pattern, _)| pattern.matches(tool))
            .map(|(_, mode)| *mode)
    })
    .unwrap_or(upstream.tasks)
}

/// The upstream's own `execution.taskSupport` for one of its tools.
pub fn upstream_support(tool: &Value) -> &str {
    tool.pointer("/execution/taskSupport")
        .and_then(Value::as_str)
        .unwrap_or("forbidden")
}

/// How a handshake-era upstream runs this request as a task itself (SEP-1686).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnTasks {
    /// It does not (no `tasks.requests` entry, or the tool forbids it).
    No,
    /// It may: the client chooses.
    Optional,
    /// The tool runs only as a task.
    Required,
}

/// Whether a handshake-era upstream runs this request as a task itself: it declares the
/// request type under `tasks.requests` and, for a tool, the tool allows it. One capability
/// lookup, and a catalog scan only for an upstream that declares tool tasks.
pub fn upstream_runs_legacy(upstream: &Upstream, method: &str, name: Option<&str>) -> OwnTasks {
    if upstream.is_modern() {
        return OwnTasks::No;
    }
    let pointer = match method {
        m::TOOLS_CALL => "/tasks/requests/tools/call",
        m::PROMPTS_GET => "/tasks/requests/prompts/get",
        m::RESOURCES_READ => "/tasks/requests/resources/read",
        _ => return OwnTasks::No,
    };
    if !upstream.declares_at(pointer) {
        return OwnTasks::No;
    }
    if method != m::TOOLS_CALL {
        return OwnTasks::Optional;
    }
    let Some(name) = name else {
        return OwnTasks::No;
    };
    let catalog = upstream.catalog();
    let tool = catalog
        .tools
        .iter()
        .find(|t| t.get("name").and_then(Value::as_str) == Some(name));
    match tool.map(upstream_support) {
        Some("required") => OwnTasks::Required,
        Some("optional") => OwnTasks::Optional,
        _ => OwnTasks::No,
    }
}

/// Whether a 2026-07-28 upstream offers the tasks extension (it then decides per call).
pub fn upstream_runs_modern(upstream: &Upstream) -> bool {
    upstream.is_modern() && upstream.declares_at("/extensions/io.modelcontextprotocol~1tasks")
}

/// The `execution.taskSupport` the gateway lists for a tool of `upstream` (its own name).
pub fn listed_support(upstream: &Upstream, tool: &Value) -> &'static str {
    let name = tool.get("name").and_then(Value::as_str);
    match mode(&upstream.config, m::TOOLS_CALL, name) {
        TaskMode::Never => "forbidden",
        TaskMode::Always => "required",
        TaskMode::OnRequest => {
            if !upstream.is_modern() && upstream_support(tool) == "required" {
                "required"
            } else {
                "optional"
            }
        }
    }
}

/// What the gateway can serve as tasks, for its capabilities: (tools/call, prompts/get,
/// resources/read), each true when some upstream serving that kind allows tasks.
pub fn servable(upstreams: &[Arc<Upstream>]) -> (bool, bool, bool) {
    let allows = |u: &Upstream, method: &str| {
        let default = mode(&u.config, method, None) != TaskMode::Never;
        default
            || (method == m::TOOLS_CALL
                && u.config
                    .tool_tasks
                    .iter()
                    .any(|(_, mode)| *mode != TaskMode::Never))
    };
    let any = |cap: &str, method: &str| {
        upstreams
            .iter()
            .any(|u| u.declares(cap) == Some(true) && allows(u, method))
    };
    (
        any("tools", m::TOOLS_CALL),
        any("prompts", m::PROMPTS_GET),
        any("resources", m::RESOURCES_READ),
    )
}
