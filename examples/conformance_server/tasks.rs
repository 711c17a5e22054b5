//! The tasks extension of 2026-07-28 (SEP-2663, `io.modelcontextprotocol/tasks`)
//! and the tools the suite's `tasks-*` scenarios call.
//!
//! A server that declares the extension may answer a `tools/call` with a
//! task (`CreateTaskResult`, `resultType: "task"`) instead of the result; the
//! client then polls `tasks/get`, answers the task's questions with
//! `tasks/update` and may stop it with `tasks/cancel`. The server alone
//! decides which calls become tasks, but only for a request whose own
//! `_meta` client capabilities declare the extension. Here:
//!
//! * A request of the handshake era never gets a task: every tool below
//!   runs synchronously there, asking its questions the handshake way.
//! * A 2026-07-28 request that declares the extension gets a task from every
//!   tool below except `greet` (always synchronous) and `slow_compute` with
//!   `seconds: 0` (the "immediate result" shortcut the extension allows).
//!   `test_tool_with_task` first gathers the user's name over multi
//!   round-trip requests (an `InputRequiredResult`, with `requestState`) and
//!   only the call that brings the answer becomes a task.
//! * A 2026-07-28 request that does not declare it gets a synchronous answer
//!   (`InputRequiredResult`s included) from the tools that take to tasks
//!   optionally, and -32021 naming the extension from those that need one
//!   (`failing_job`, `test_tool_with_task`).
//!
//! Tasks live in one process-wide [`TaskStore`]: stateless requests have no
//! session to keep them in, and a `tasks/get` may come on any connection.
//! rmcp's [`TaskManager`] holds them and runs each as a tokio task, so a task
//! can be read as soon as its `CreateTaskResult` exists. Every task ends
//! `cancelled` when `tasks/cancel` reaches it before it finishes; a tool error
//! ends it `completed` (with `result.isError`), a protocol error `failed`.
//!
//! `notifications/tasks` are not sent: rmcp's `subscriptions/listen` filter
//! has no `taskIds` yet, so a listener cannot ask for them, and the
//! extension makes them optional.

use std::future::Future;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, CreateTaskResult,
    ElicitResult, ElicitationAction, GetTaskResult, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::task_manager::{TaskContext, TaskExit, TaskManager, TaskOptions};
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};

use crate::handler::{ConformanceServer, is_stateless};
use crate::input::{self, Origin, Outcome, Retry, Round, Step};
use crate::tools::{
    accepted_field, converse, describe_elicitation, elicitation, name_form, text, tool_error,
};

/// How long a task stays readable: from its creation while it runs, and as
/// long again once it has ended (rmcp's retention rule). Work still running
/// when it elapses is stopped and the task ends `failed`.
const TASK_TTL: Duration = Duration::from_secs(10 * 60);

/// The polling interval suggested to clients.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Longest `slow_compute` run accepted, well inside [`TASK_TTL`].
const MAX_SECONDS: f64 = 300.0;

/// How long `failing_job` works before it reports its tool error.
const FAILING_JOB_TIME: Duration = Duration::from_secs(1);

/// How long the other task tools work once they have what they need, so a
/// client sees them `working` at least briefly.
const SHORT_WORK: Duration = Duration::from_millis(300);

/// The tools served here.
const TOOLS: [&str; 7] = [
    "greet",
    "slow_compute",
    "failing_job",
    "protocol_error_job",
    "confirm_delete",
    "multi_input",
    "test_tool_with_task",
];

/// Whether `name` is one of the tools served here.
pub fn serves(name: &str) -> bool {
    TOOLS.contains(&name)
}

pub fn definitions() -> Vec<Value> {
    let tool = |name: &str, description: &str, properties: Value, required: &[&str]| {
        json!({
            "name": name,
            "description": description,
            "inputSchema": { "type": "object", "properties": properties, "required": required },
        })
    };
    vec![
        tool(
            "greet",
            "Says hello; always answers synchronously",
            json!({ "name": { "type": "string", "description": "Who to greet" } }),
            &["name"],
        ),
        tool(
            "slow_compute",
            "Works for `seconds` seconds (at most 300); a task when the client supports tasks \
             and seconds > 0",
            json!({
                "seconds": { "type": "number", "minimum": 0, "maximum": MAX_SECONDS },
                "label": { "type": "string", "description": "Echoed in the result" },
            }),
            &["seconds"],
        ),
        tool(
            "failing_job",
            "Reports a tool error after about a second; needs the tasks extension in 2026-07-28",
            json!({}),
            &[],
        ),
        tool(
            "protocol_error_job",
            "Fails with a protocol error (-32603); as a task, the task ends failed",
            json!({}),
            &[],
        ),
        tool(
            "confirm_delete",
            "Asks the user to confirm deleting `filename` (input request `confirm`)",
            json!({ "filename": { "type": "string" } }),
            &["filename"],
        ),
        tool(
            "multi_input",
            "Asks the user two questions at once (input requests `name` and `confirm`)",
            json!({}),
            &[],
        ),
        tool(
            "test_tool_with_task",
            "Asks the user's name over multi round-trip requests, then greets them from a task; \
             needs the tasks extension in 2026-07-28",
            json!({}),
            &[],
        ),
    ]
}

/// How a tool takes to being run as a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Support {
    /// A task when the request allows one, a plain answer otherwise.
    Optional,
    /// A task, or -32021 when a 2026-07-28 request does not allow one.
    Required,
}

/// Whether the call in `context` of a tool with `support` runs as a task;
/// see the module docs.
fn runs_as_task(context: &RequestContext<RoleServer>, support: Support) -> Result<bool, ErrorData> {
    if !is_stateless(context) {
        return Ok(false);
    }
    let declared = context
        .client_capabilities()
        .is_some_and(|capabilities| capabilities.supports_tasks());
    if !declared && support == Support::Required {
        return Err(ErrorData::missing_required_client_capability(
            ClientCapabilities::builder().enable_tasks().build(),
        ));
    }
    Ok(declared)
}

/// Runs the tool `request` names, one of [`TOOLS`].
pub async fn call(
    server: &ConformanceServer,
    request: CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, ErrorData> {
    let args = request.arguments.clone().unwrap_or_default();
    let name = request.name.as_ref();
    let text_arg = |field: &str| args.get(field).and_then(Value::as_str).map(str::to_owned);
    let tasks = server.tasks();
    match name {
        "greet" => Ok(match text_arg("name") {
            Some(who) => text(&format!("Hello, {who}!")),
            None => tool_error("greet needs a string argument `name`"),
        }
        .into()),
        "slow_compute" => {
            let as_task = runs_as_task(context, Support::Optional)?;
            let seconds = match args.get("seconds").and_then(Value::as_f64) {
                Some(seconds) if (0.0..=MAX_SECONDS).contains(&seconds) => seconds,
                _ => {
                    return Ok(tool_error(&format!(
                        "slow_compute needs a number argument `seconds` from 0 to {MAX_SECONDS}"
                    ))
                    .into());
                }
            };
            let label = text_arg("label").unwrap_or_else(|| "unlabelled".to_owned());
            let work = async move {
                tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                text(&format!("slow_compute {label}: done after {seconds} s"))
            };
            if as_task && seconds > 0.0 {
                Ok(tasks.start(|_| async move { Ok(work.await) }))
            } else {
                Ok(work.await.into())
            }
        }
        "failing_job" => {
            let work = async {
                tokio::time::sleep(FAILING_JOB_TIME).await;
                tool_error("failing_job failed, as it always does")
            };
            if runs_as_task(context, Support::Required)? {
                Ok(tasks.start(|_| async move { Ok(work.await) }))
            } else {
                Ok(work.await.into())
            }
        }
        "protocol_error_job" => {
            let failure = || {
                ErrorData::internal_error("protocol_error_job broke down, as it always does", None)
            };
            if runs_as_task(context, Support::Optional)? {
                Ok(tasks.start(move |_| async move {
                    tokio::time::sleep(SHORT_WORK).await;
                    Err(TaskExit::Error(failure()))
                }))
            } else {
                Err(failure())
            }
        }
        "confirm_delete" => {
            let Some(filename) = text_arg("filename") else {
                return Ok(tool_error("confirm_delete needs a string argument `filename`").into());
            };
            let step = move |round: &Round| confirm_delete_step(round, &filename);
            if runs_as_task(context, Support::Optional)? {
                input::check_opening_questions(context, step.clone())?;
                Ok(tasks.start(|task| async move { input::drive_task(&task, step).await }))
            } else {
                converse(server, context, name, &args, retry(&request), &step).await
            }
        }
        "multi_input" => {
            if runs_as_task(context, Support::Optional)? {
                input::check_opening_questions(context, multi_input_step)?;
                Ok(tasks
                    .start(|task| async move { input::drive_task(&task, multi_input_step).await }))
            } else {
                converse(
                    server,
                    context,
                    name,
                    &args,
                    retry(&request),
                    &multi_input_step,
                )
                .await
            }
        }
        "test_tool_with_task" => {
            let as_task = runs_as_task(context, Support::Required)?;
            let origin = Origin {
                method: "tools/call",
                name,
                arguments: Some(&args),
            };
            let user_name = match input::drive(
                server.seal(),
                context,
                origin,
                retry(&request),
                user_name_step,
            )
            .await?
            {
                Outcome::Done(user_name) => user_name,
                Outcome::InputRequired(result) => return Ok(result.into()),
                Outcome::Unanswered(why) => return Ok(tool_error(&why).into()),
            };
            if as_task {
                Ok(tasks.start(|_| async move {
                    tokio::time::sleep(SHORT_WORK).await;
                    Ok(text(&format!("Hello, {user_name}! (from a task)")))
                }))
            } else {
                Ok(text(&format!("Hello, {user_name}!")).into())
            }
        }
        _ => Err(ErrorData::invalid_params(
            format!("no such tool: {name}"),
            Some(json!({ "name": name })),
        )),
    }
}

fn retry(request: &CallToolRequestParams) -> Retry {
    Retry {
        input_responses: request.input_responses.clone(),
        request_state: request.request_state.clone(),
    }
}

/// Whether the user accepted and ticked `confirm`.
fn confirmed(answer: &ElicitResult) -> bool {
    answer.action == ElicitationAction::Accept
        && answer
            .content
            .as_ref()
            .and_then(|content| content.get("confirm"))
            == Some(&Value::Bool(true))
}

fn confirm_form(message: &str) -> Value {
    json!({
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": { "confirm": { "type": "boolean" } },
            "required": ["confirm"],
        },
    })
}

fn confirm_delete_step(round: &Round, filename: &str) -> Result<Step<CallToolResult>, ErrorData> {
    match round.elicited("confirm")? {
        Some(answer) if confirmed(&answer) => Ok(Step::Done(text(&format!(
            "Deleted {filename} (nothing was really deleted)."
        )))),
        Some(answer) => Ok(Step::Done(text(&format!(
            "Kept {filename}: {}",
            describe_elicitation("not confirmed", &answer)
        )))),
        None => Step::ask(json!({
            "confirm": elicitation(&confirm_form(&format!("Delete {filename}?"))),
        })),
    }
}

/// Asks both questions at once and finishes when both are answered. Over
/// multi round-trip requests a client may answer one now and the other
/// later, so answers already given travel in the state.
fn multi_input_step(round: &Round) -> Result<Step<CallToolResult>, ErrorData> {
    let mut answers = round
        .state()
        .and_then(|state| state.get("answers"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(answer) = round.elicited("name")? {
        let name = accepted_field(&answer, "name").unwrap_or_else(|| "(no name)".to_owned());
        answers.insert("name".into(), name.into());
    }
    if let Some(answer) = round.elicited("confirm")? {
        answers.insert("confirm".into(), confirmed(&answer).into());
    }
    let questions = [
        ("name", elicitation(&name_form("What is your name?"))),
        ("confirm", elicitation(&confirm_form("Shall we go on?"))),
    ];
    let missing: serde_json::Map<String, Value> = questions
        .into_iter()
        .filter(|(key, _)| !answers.contains_key(*key))
        .map(|(key, question)| (key.to_owned(), question))
        .collect();
    if missing.is_empty() {
        return Ok(Step::Done(text(&format!(
            "Both answers are in: name={}, confirm={}",
            answers["name"], answers["confirm"]
        ))));
    }
    Step::ask_keeping(Value::Object(missing), json!({ "answers": answers }))
}

/// Asks the user's name and keeps state; the name counts only when the
/// state that asked for it comes back with it.
fn user_name_step(round: &Round) -> Result<Step<String>, ErrorData> {
    let asked = round
        .state()
        .and_then(|state| state.get("asked"))
        .and_then(Value::as_str)
        == Some("user_name");
    match round.elicited("user_name")? {
        Some(answer) if asked => Ok(Step::Done(
            accepted_field(&answer, "name").unwrap_or_else(|| "whoever you are".to_owned()),
        )),
        _ => Step::ask_keeping(
            json!({ "user_name": elicitation(&name_form("What is your name?")) }),
            json!({ "asked": "user_name" }),
        ),
    }
}

/// Every task of the process; see the module docs.
#[derive(Default)]
pub struct TaskStore {
    manager: TaskManager,
}

impl TaskStore {
    /// Makes a task of `work`, which is handed the task's context, and
    /// answers the call with it. The task can be read before this returns.
    fn start<W, F>(&self, work: W) -> CallToolResponse
    where
        W: FnOnce(TaskContext) -> F,
        F: Future<Output = Result<CallToolResult, TaskExit>> + Send + 'static,
    {
        let options = TaskOptions::new()
            .with_ttl_ms(TASK_TTL.as_millis() as u64)
            .with_poll_interval_ms(POLL_INTERVAL.as_millis() as u64);
        let task = self.manager.spawn(options, |task| {
            let cancel = task.clone();
            let work = work(task);
            Box::pin(async move {
                tokio::select! {
                    () = cancel.cancelled() => Err(TaskExit::Cancelled),
                    outcome = work => outcome,
                }
            })
        });
        CreateTaskResult::new(task).into()
    }

    /// `tasks/get`: the task as it is now; -32602 for an unknown id.
    pub fn get(&self, task_id: &str) -> Result<GetTaskResult, ErrorData> {
        self.manager.get_task(task_id).map(GetTaskResult::new)
    }

    /// `tasks/update`: hands the answers to the questions they are keyed by;
    /// answers to nothing open are ignored.
    pub fn update(&self, request: UpdateTaskParams) -> Result<(), ErrorData> {
        self.manager
            .update_task(&request.task_id, request.input_responses)
    }

    /// `tasks/cancel`: asks the task to stop; a task that already ended
    /// stays as it is.
    pub fn cancel(&self, task_id: &str) -> Result<(), ErrorData> {
        self.manager.cancel_task(task_id)
    }
}
