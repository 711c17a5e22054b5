//! What an upstream does with tasks: whether it runs a request as a task of its own (a
//! handshake-era server's `tasks.requests`, a 2026-07-28 server's tasks extension), and what
//! the gateway lists for each of its tools as `execution.taskSupport`.

use std::sync::Arc;

use serde_json::Value;

use super::Upstream;
use crate::config::TaskMode;
use crate::protocol::Era;
use crate::protocol::methods;

/// The upstream's own `execution.taskSupport` for one of its tools.
pub fn tool_support(tool: &Value) -> &str {
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

impl Upstream {
    /// Whether the upstream, reached in the handshake era by a client of `era`, runs this
    /// request as a task itself: that session declares the request type under
    /// `tasks.requests` and, for a tool, the tool allows it. One capability lookup, and a
    /// catalog scan only for an upstream that declares tool tasks.
    pub fn own_tasks(&self, era: Era, method: &str, name: Option<&str>) -> OwnTasks {
        if self.served_in(era) == Era::Stateless {
            return OwnTasks::No;
        }
        let pointer = match method {
            methods::TOOLS_CALL => "/tasks/requests/tools/call",
            methods::PROMPTS_GET => "/tasks/requests/prompts/get",
            methods::RESOURCES_READ => "/tasks/requests/resources/read",
            _ => return OwnTasks::No,
        };
        if !self.declares_at_in(Era::Handshake, pointer) {
            return OwnTasks::No;
        }
        if method != methods::TOOLS_CALL {
            return OwnTasks::Optional;
        }
        let Some(name) = name else {
            return OwnTasks::No;
        };
        let catalog = self.catalog_for(Era::Handshake);
        let tool = catalog
            .tools
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name));
        match tool.map(tool_support) {
            Some("required") => OwnTasks::Required,
            Some("optional") => OwnTasks::Optional,
            _ => OwnTasks::No,
        }
    }

    /// Whether a 2026-07-28 upstream offers the tasks extension (it then decides per call).
    pub fn offers_task_extension(&self) -> bool {
        self.era() == Era::Stateless
            && self.declares_at("/extensions/io.modelcontextprotocol~1tasks")
    }

    /// The `execution.taskSupport` the gateway lists to clients of `era` for one of this
    /// upstream's tools.
    pub fn listed_task_support(&self, era: Era, tool: &Value) -> &'static str {
        self.listed_task_support_served(self.served_in(era), tool)
    }

    /// [`Upstream::listed_task_support`] for clients this upstream serves in `served` (what
    /// [`Upstream::served_in`] says): the answer depends on nothing else but the tool.
    pub fn listed_task_support_served(&self, served: Era, tool: &Value) -> &'static str {
        let name = tool.get("name").and_then(Value::as_str);
        match self.config.task_mode(methods::TOOLS_CALL, name) {
            TaskMode::Never => "forbidden",
            TaskMode::Always => "required",
            TaskMode::OnRequest => {
                if served == Era::Handshake && tool_support(tool) == "required" {
                    "required"
                } else {
                    "optional"
                }
            }
        }
    }
}

/// What the gateway can serve as tasks, for its capabilities: (tools/call, prompts/get,
/// resources/read), each true when the configuration lets some upstream run that request
/// type as a task (the gateway wraps any upstream's calls). From the configuration alone, so
/// a client that initializes before its upstreams are ready gets the same answer.
pub fn servable(upstreams: &[Arc<Upstream>]) -> (bool, bool, bool) {
    let allows = |u: &Upstream, method: &str| {
        let default = u.config.task_mode(method, None) != TaskMode::Never;
        default
            || (method == methods::TOOLS_CALL
                && u.config
                    .tool_tasks
                    .iter()
                    .any(|(_, mode)| *mode != TaskMode::Never))
    };
    let any = |method: &str| upstreams.iter().any(|u| allows(u, method));
    (
        any(methods::TOOLS_CALL),
        any(methods::PROMPTS_GET),
        any(methods::RESOURCES_READ),
    )
}
