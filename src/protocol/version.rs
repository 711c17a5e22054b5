//! Protocol revisions and version negotiation.
//!
//! Handshake era (2024-11-05 … 2025-11-25): a client's `initialize` names the revision it
//! wants; the gateway echoes it when supported and otherwise answers with its latest (MCP
//! lifecycle, "Version Negotiation"). The client then decides whether it can live with that.
//!
//! Modern era (2026-07-28 on): no handshake; every request names its revision in
//! `params._meta` (see [`super::envelope`]), and an unsupported one is refused with -32022.

/// Handshake-era revisions the gateway speaks, oldest first.
pub const SUPPORTED: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// The revision the gateway prefers, both towards clients and upstreams.
pub const LATEST: &str = "2025-11-25";

/// The revision a Streamable HTTP server assumes when a request carries no
/// `MCP-Protocol-Version` header and nothing else tells (2025-06-18 transports).
pub const HTTP_DEFAULT: &str = "2025-03-26";

/// Stateless-era revisions the gateway speaks, oldest first.
pub const MODERN: [&str; 1] = ["2026-07-28"];

/// The modern revision the gateway prefers, towards clients and upstreams.
pub const MODERN_LATEST: &str = "2026-07-28";

/// Every revision the gateway speaks, both eras, oldest first: what `server/discover` and
/// -32022 list.
pub fn all() -> Vec<&'static str> {
    SUPPORTED.iter().chain(MODERN.iter()).copied().collect()
}

/// Whether `version` is a stateless-era revision the gateway speaks.
pub fn is_modern(version: &str) -> bool {
    MODERN.contains(&version)
}

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
