//! Protocol revisions and version negotiation (handshake era).
//!
//! A client's `initialize` names the revision it wants; the gateway echoes it when supported
//! and otherwise answers with its latest (MCP lifecycle, "Version Negotiation"). The client
//! then decides whether it can live with that.

/// Handshake-era revisions the gateway speaks, oldest first.
pub const SUPPORTED: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// The revision the gateway prefers, both towards clients and upstreams.
pub const LATEST: &str = "2025-11-25";

/// The revision a Streamable HTTP server assumes when a request carries no
/// `MCP-Protocol-Version` header and nothing else tells (2025-06-18 transports).
pub const HTTP_DEFAULT: &str = "2025-03-26";

/// Whether `version` is a handshake-era revision the gateway speaks.
pub fn is_supported(version: &str) -> bool {
    SUPPORTED.contains(&version)
}

/// The revision to answer a client that asked for `requested`.
pub fn negotiate(requested: &str) -> &'static str {
    SUPPORTED
        .iter()
        .copied()
        .find(|v| *v == requested)
        .unwrap_or(LATEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_echoes_supported_and_falls_back_to_latest() {
        assert_eq!(negotiate("2025-03-26"), "2025-03-26");
        assert_eq!(negotiate("2024-11-05"), "2024-11-05");
        assert_eq!(negotiate("1999-01-01"), LATEST);
        assert_eq!(negotiate(""), LATEST);
    }
}
