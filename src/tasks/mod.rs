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
//! The stage also answers the `tasks/*` methods (`methods`), so they never reach the router.
//! Either way the task lives in the store (`crate::session::tasks::store`): memory by
//! default, Redis when several replicas must answer for each other's tasks. Tasks are bound to the principal (and, in the
//! handshake era, the session) that created them; anyone else is told the task does not exist.

pub mod methods;
pub mod passthrough;
pub mod runner;
pub mod stage;

use std::sync::{Arc, Weak};

use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

use crate::aggregate::seal::Sealer;
use crate::config::tasks::TasksConfig;
use crate::pipeline::{DynStage, RequestContext};
use crate::relay::Relay;
use crate::session::tasks::record::{Owner, TaskRecord};
use crate::session::tasks::store::{self, TaskStore};
use crate::session::{Session, SessionStore};
use crate::upstream::Upstreams;

/// The store the `tasks` section asks for: Redis when `tasks.redis` names one, else memory.
pub fn store_for(config: &TasksConfig) -> Arc<dyn TaskStore> {
    match &config.redis {
        Some(url) => Arc::new(store::redis::RedisStore::new(url, &config.redis_prefix)),
        None => Arc::new(store::memory::MemoryStore::default()),
    }
}

/// The gateway's task state: the store, the tasks this replica runs, and the handles the
/// stage, the runner and the task methods work with.
pub struct Tasks {
    pub config: TasksConfig,
    pub store: Arc<dyn TaskStore>,
    /// Tasks running on this replica: id → what stops them (a `tasks/cancel` here stops
    /// its task at once; one on another replica is seen through the store).
    running: DashMap<String, CancellationToken>,
    upstreams: Arc<Upstreams>,
    /// Where the owner of a 2025-11-25 task is told about it.
    sessions: Arc<SessionStore>,
    /// Keeps a client's upstream link alive while an upstream task it owns lives.
    relay: Arc<Relay>,
    /// Seals `tasks/list` cursors.
    sealer: Arc<Sealer>,
    /// Items per `tasks/list` page.
    page_size: usize,
    me: Weak<Tasks>,
}

/// What [`Tasks`] is built from.
pub struct TaskParts {
    pub config: TasksConfig,
    pub store: Arc<dyn TaskStore>,
    pub upstreams: Arc<Upstreams>,
    pub sessions: Arc<SessionStore>,
    pub relay: Arc<Relay>,
    pub sealer: Arc<Sealer>,
    pub page_size: usize,
}

impl Tasks {
    pub fn new(parts: TaskParts) -> Arc<Tasks> {
        Arc::new_cyclic(|me| Tasks {
            config: parts.config,
            store: parts.store,
            running: DashMap::new(),
            upstreams: parts.upstreams,
            sessions: parts.sessions,
            relay: parts.relay,
            sealer: parts.sealer,
            page_size: parts.page_size,
            me: me.clone(),
        })
    }

    /// The pipeline stage that makes calls tasks and answers the task methods.
    pub fn stage(self: &Arc<Self>) -> Arc<dyn DynStage> {
        Arc::new(stage::TaskStage(self.clone()))
    }

    /// A counted handle, for a task's background work.
    fn arc(&self) -> Arc<Tasks> {
        self.me
            .upgrade()
            .expect("the task state is alive while its methods run")
    }

    /// Stops a task this replica runs; false when it runs elsewhere (or no longer runs).
    pub fn stop_local(&self, id: &str) -> bool {
        self.running.get(id).map(|t| t.cancel()).is_some()
    }

    /// The live session that created a 2025-11-25 task, for what the gateway sends it
    /// unasked.
    fn owner_session(&self, record: &TaskRecord) -> Option<Arc<Session>> {
        self.sessions.peek(record.owner.session.as_deref()?)
    }
}

/// The owner of a task created by this request.
pub fn owner_of(ctx: &RequestContext) -> Owner {
    let principal = ctx.principal();
    Owner {
        principal: format!("{:?}:{}", principal.method, principal.subject),
        session: ctx.session.as_ref().map(|s| s.id.clone()),
    }
}
