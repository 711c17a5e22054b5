//! Protocol extensions the gateway knows by name, and how a party declares one.

use serde_json::Value;

/// The tasks extension of the 2026-07-28 revision (SEP-2663).
pub const TASKS: &str = "io.modelcontextprotocol/tasks";

/// Whether `capabilities` (client or server) declare the extension `id` under `extensions`.
pub fn declares(capabilities: &Value, id: &str) -> bool {
    capabilities
        .get("extensions")
        .and_then(|e| e.get(id))
        .is_some_and(|v| !v.is_null())
}
