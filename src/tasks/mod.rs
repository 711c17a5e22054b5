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
pub mod runner;
pub mod stage;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::TaskMode;
use crate::config::tasks::TasksConfig;
use crate::protocol::methods as m;
use crate::session::tasks::record::{self, Owner};
use crate::session::tasks::store::{self, TaskStore};
use crate::upstream::Upstream;

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
) -> Option<Arc<crate::session::Session>> {
    gateway.sessions.peek(record.owner.session.as_deref()?)
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
    match upstream.config.task_mode(m::TOOLS_CALL, name) {
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
        let default = u.config.task_mode(method, None) != TaskMode::Never;
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
