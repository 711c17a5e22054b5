//! MCP method names, as constants so a typo is a compile error.

pub const INITIALIZE: &str = "initialize";
pub const INITIALIZED: &str = "notifications/initialized";
pub const PING: &str = "ping";
pub const TOOLS_LIST: &str = "tools/list";
pub const TOOLS_CALL: &str = "tools/call";
pub const PROMPTS_LIST: &str = "prompts/list";
pub const PROMPTS_GET: &str = "prompts/get";
pub const RESOURCES_LIST: &str = "resources/list";
pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
pub const RESOURCES_READ: &str = "resources/read";
pub const COMPLETION_COMPLETE: &str = "completion/complete";
pub const CANCELLED: &str = "notifications/cancelled";
pub const PROGRESS: &str = "notifications/progress";
pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
pub const PROMPTS_LIST_CHANGED: &str = "notifications/prompts/list_changed";
pub const RESOURCES_LIST_CHANGED: &str = "notifications/resources/list_changed";
pub const LOGGING_SET_LEVEL: &str = "logging/setLevel";
pub const LOG_MESSAGE: &str = "notifications/message";
pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
pub const RESOURCES_UPDATED: &str = "notifications/resources/updated";
pub const ROOTS_LIST: &str = "roots/list";
pub const ROOTS_LIST_CHANGED: &str = "notifications/roots/list_changed";
pub const SAMPLING_CREATE_MESSAGE: &str = "sampling/createMessage";
pub const ELICITATION_CREATE: &str = "elicitation/create";
pub const ELICITATION_COMPLETE: &str = "notifications/elicitation/complete";
pub const SERVER_DISCOVER: &str = "server/discover";
pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
pub const SUBSCRIPTIONS_ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
pub const TASKS_GET: &str = "tasks/get";
pub const TASKS_RESULT: &str = "tasks/result";
pub const TASKS_LIST: &str = "tasks/list";
pub const TASKS_CANCEL: &str = "tasks/cancel";
pub const TASKS_UPDATE: &str = "tasks/update";
/// 2025-11-25: a task's status changed (params: the Task).
pub const TASKS_STATUS: &str = "notifications/tasks/status";
/// 2026-07-28 extension: a task changed (params: the DetailedTask), on listen streams.
pub const TASKS_NOTIFICATION: &str = "notifications/tasks";

/// Methods a 2026-07-28 client may call (the schema's client request union). Anything else
/// from a stateless client, the handshake-era methods included, is -32601 with HTTP 404.
pub const STATELESS_CLIENT_REQUESTS: [&str; 13] = [
    SERVER_DISCOVER,
    COMPLETION_COMPLETE,
    PROMPTS_GET,
    PROMPTS_LIST,
    RESOURCES_LIST,
    RESOURCES_TEMPLATES_LIST,
    RESOURCES_READ,
    SUBSCRIPTIONS_LISTEN,
    TOOLS_CALL,
    TOOLS_LIST,
    // The `io.modelcontextprotocol/tasks` extension (SEP-2663).
    TASKS_GET,
    TASKS_UPDATE,
    TASKS_CANCEL,
];

/// Requests that may run as tasks (2025-11-25 `task` param; prompts and reads as FastMCP
/// allows; the 2026-07-28 extension covers `tools/call` only).
pub const TASK_CAPABLE: [&str; 3] = [TOOLS_CALL, PROMPTS_GET, RESOURCES_READ];

/// The methods about tasks themselves, in either era (`tasks/list` and `tasks/result` are
/// 2025-11-25 only, `tasks/update` 2026-07-28 only).
pub const TASK_METHODS: [&str; 5] = [
    TASKS_GET,
    TASKS_RESULT,
    TASKS_LIST,
    TASKS_CANCEL,
    TASKS_UPDATE,
];

/// The only methods whose results may be `input_required` (MRTR).
pub const INPUT_CAPABLE: [&str; 3] = [TOOLS_CALL, PROMPTS_GET, RESOURCES_READ];

/// The methods a 2026-07-28 client may call; the handshake-era ones are unknown to it.
pub fn check_stateless_client_request(method: &str) -> Result<(), super::ErrorObject> {
    if STATELESS_CLIENT_REQUESTS.contains(&method) {
        Ok(())
    } else {
        Err(super::ErrorObject::method_not_found(method))
    }
}
