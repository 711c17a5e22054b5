//! A task as the gateway keeps it, and the two wire shapes clients see: the 2025-11-25
//! `Task` (SEP-1686, nested under `task` on creation) and the flat 2026-07-28 task of the
//! `io.modelcontextprotocol/tasks` extension (SEP-2663).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::protocol::Era;

/// `_meta` key tying a 2025-11-25 message to its task.
pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

/// Where a task stands. `working` is the initial status; the last three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Working,
    InputRequired,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Working => "working",
            Status::InputRequired => "input_required",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Some(match text {
            "working" => Status::Working,
            "input_required" => Status::InputRequired,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }
}

/// Who may see a task: the principal that created it and, in the handshake era, its
/// session. Anyone else is told the task does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// `method:subject` of the creating principal.
    pub principal: String,
    /// The creating client session (handshake era); `None` for 2026-07-28 clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// One task, created by the gateway (wrapped) or by an upstream (passed through).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The id clients see: random, 128 bits, never the upstream's.
    pub id: String,
    pub owner: Owner,
    /// The request that runs as the task (`tools/call`, `prompts/get`, `resources/read`).
    pub method: String,
    /// Name of the upstream the request went to.
    pub upstream: String,
    /// The upstream's own task id when the upstream runs the task; `None` when the
    /// gateway runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// The era of the creating client: the shape of its task (2025-11-25 nested, 2026-07-28
    /// flat with `tasks/update`). Stored as the flag `modern`, as earlier releases wrote it,
    /// so replicas of both share one Redis during an upgrade.
    #[serde(rename = "modern", with = "stored_era")]
    pub era: Era,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Lifetime from creation; the store forgets the task afterwards.
    pub ttl_ms: u64,
    pub poll_ms: u64,
    /// The request's result once `completed` (a tool result with `isError` included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The JSON-RPC error once `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Outstanding input requests (`input_required`), key → `{method, params}`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub input_requests: Map<String, Value>,
    /// Answers delivered by `tasks/update` and not yet taken by the runner.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub input_responses: Map<String, Value>,
    /// Set by `tasks/cancel` on any replica; the runner stops the upstream request.
    #[serde(default)]
    pub cancel_requested: bool,
}

impl TaskRecord {
    /// When the store may forget the task, in milliseconds since the Unix epoch.
    pub fn expires_ms(&self) -> u64 {
        self.created_ms.saturating_add(self.ttl_ms)
    }

    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_ms() <= now
    }

    /// Moves to `status` unless the task already ended; says whether anything changed.
    pub fn set_status(&mut self, status: Status, message: Option<String>) -> bool {
        if self.status.is_terminal() || (self.status == status && self.status_message == message) {
            return false;
        }
        self.status = status;
        self.status_message = message;
        self.updated_ms = now_ms();
        true
    }

    /// Ends the task with the request's outcome. A 2025-11-25 tool result with `isError`
    /// makes the task `failed`; in 2026-07-28 it is `completed` (SEP-2663).
    pub fn finish(&mut self, outcome: Result<Value, Value>) -> bool {
        if self.status.is_terminal() {
            return false;
        }
        match outcome {
            Ok(result) => {
                let tool_error = result.get("isError") == Some(&Value::Bool(true));
                self.status = if tool_error && self.era == Era::Handshake {
                    Status::Failed
                } else {
                    Status::Completed
                };
                self.result = Some(result);
            }
            Err(error) => {
                self.status = Status::Failed;
                self.status_message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                self.error = Some(error);
            }
        }
        self.input_requests.clear();
        self.updated_ms = now_ms();
        true
    }

    /// The 2025-11-25 `Task` object.
    pub fn handshake_task(&self) -> Value {
        let mut task = json!({
            "taskId": self.id,
            "status": self.status.as_str(),
            "createdAt": iso8601(self.created_ms),
            "lastUpdatedAt": iso8601(self.updated_ms),
            "ttl": self.ttl_ms,
            "pollInterval": self.poll_ms,
        });
        if let Some(message) = &self.status_message {
            task["statusMessage"] = Value::from(message.as_str());
        }
        task
    }

    /// The flat 2026-07-28 task (`CreateTaskResult` without `resultType`).
    pub fn stateless_task(&self) -> Value {
        let mut task = json!({
            "taskId": self.id,
            "status": self.status.as_str(),
            "createdAt": iso8601(self.created_ms),
            "lastUpdatedAt": iso8601(self.updated_ms),
            "ttlMs": self.ttl_ms,
            "pollIntervalMs": self.poll_ms,
        });
        if let Some(message) = &self.status_message {
            task["statusMessage"] = Value::from(message.as_str());
        }
        task
    }

    /// The 2026-07-28 `DetailedTask` of `tasks/get`: the task plus what its status carries
    /// (outstanding input requests, the result, or the error).
    pub fn detailed(&self) -> Value {
        let mut task = self.stateless_task();
        match self.status {
            Status::InputRequired if !self.input_requests.is_empty() => {
                task["inputRequests"] = Value::Object(self.input_requests.clone());
            }
            Status::Completed => {
                if let Some(result) = &self.result {
                    let mut result = result.clone();
                    strip_related_task(&mut result);
                    task["result"] = result;
                }
            }
            Status::Failed => {
                if let Some(error) = &self.error {
                    task["error"] = error.clone();
                }
            }
            _ => {}
        }
        task
    }
}

/// Removes the 2025-11-25 `related-task` key from a result's `_meta` (the 2026-07-28 task
/// carries its id at the root).
pub fn strip_related_task(result: &mut Value) {
    if let Some(meta) = result.get_mut("_meta").and_then(Value::as_object_mut) {
        meta.remove(RELATED_TASK);
        if meta.is_empty() {
            result.as_object_mut().map(|r| r.remove("_meta"));
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh task id: 128 random bits, so ids cannot be guessed.
pub fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("task-{hex}")
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the Unix epoch (UTC, proleptic
/// Gregorian; days-from-civil inverse after H. Hinnant's algorithm).
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// [`TaskRecord::era`] as stored: `true` for the stateless era.
mod stored_era {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::protocol::Era;

    pub fn serialize<S: Serializer>(era: &Era, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*era == Era::Stateless)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Era, D::Error> {
        Ok(if bool::deserialize(d)? {
            Era::Stateless
        } else {
            Era::Handshake
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(era: Era) -> TaskRecord {
        TaskRecord {
            id: new_id(),
            owner: Owner {
                principal: "anonymous:x".into(),
                session: None,
            },
            method: "tools/call".into(),
            upstream: "up".into(),
            remote: None,
            era,
            status: Status::Working,
            status_message: None,
            created_ms: 0,
            updated_ms: 0,
            ttl_ms: 1000,
            poll_ms: 500,
            result: None,
            error: None,
            input_requests: Map::new(),
            input_responses: Map::new(),
            cancel_requested: false,
        }
    }

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_795_000_000_000), "2026-11-18T11:06:40.000Z");
    }

    #[test]
    fn ids_are_distinct_and_long() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), "task-".len() + 32);
    }

    #[test]
    fn a_tool_error_fails_a_handshake_task_but_completes_a_stateless_one() {
        let error = json!({"content": [], "isError": true});
        let mut handshake = record(Era::Handshake);
        handshake.finish(Ok(error.clone()));
        assert_eq!(handshake.status, Status::Failed);
        let mut stateless = record(Era::Stateless);
        stateless.finish(Ok(error));
        assert_eq!(stateless.status, Status::Completed);
    }

    #[test]
    fn the_era_is_stored_as_the_flag_earlier_releases_wrote() {
        let stored = serde_json::to_value(record(Era::Stateless)).unwrap();
        assert_eq!(stored["modern"], true);
        let mut older = serde_json::to_value(record(Era::Handshake)).unwrap();
        assert_eq!(older["modern"], false);
        older["modern"] = Value::Bool(true);
        let read: TaskRecord = serde_json::from_value(older).unwrap();
        assert_eq!(read.era, Era::Stateless);
    }

    #[test]
    fn terminal_states_are_final() {
        let mut r = record(Era::Stateless);
        assert!(r.set_status(Status::Cancelled, None));
        assert!(!r.finish(Ok(json!({"content": []}))));
        assert!(!r.set_status(Status::Working, None));
        assert_eq!(r.status, Status::Cancelled);
    }

    #[test]
    fn the_detailed_task_carries_what_its_status_has() {
        let mut r = record(Era::Stateless);
        r.finish(Ok(
            json!({"content": [], "_meta": {RELATED_TASK: {"taskId": "x"}}}),
        ));
        let d = r.detailed();
        assert_eq!(d["status"], "completed");
        assert_eq!(d["result"], json!({"content": []}));
        assert!(d.get("ttl").is_none() && d["ttlMs"] == 1000);
        let mut f = record(Era::Stateless);
        f.finish(Err(json!({"code": -32603, "message": "boom"})));
        let d = f.detailed();
        assert_eq!(d["error"]["code"], -32603);
        assert!(d.get("result").is_none());
    }
}
