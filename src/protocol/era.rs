//! Protocol eras, the revisions each holds, and version negotiation.
//!
//! - **Handshake era** (2024-11-05 … 2025-11-25): a client's `initialize` names the revision
//!   it wants and opens a session; the gateway echoes the revision when it speaks it and
//!   otherwise answers with its latest (MCP lifecycle, "Version Negotiation"). The client
//!   then decides whether it can live with that.
//! - **Stateless era** (2026-07-28 on): no handshake and no session; every request names its
//!   revision and capabilities in `params._meta` (see [`super::envelope`]), and an unknown
//!   revision is refused with -32022.
//!
//! Code asks which era a party speaks ([`Era`]); nothing is named by age, so the next
//! revision adds itself to the era it belongs to, or a new variant, and every `match` on the
//! era says what changes.

/// How a conversation starts and what it keeps between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Era {
    /// `initialize` first; a session carries the revision, capabilities and log level.
    Handshake,
    /// Every request carries its own revision and capabilities; no session.
    Stateless,
}

/// Handshake-era revisions the gateway speaks, oldest first.
const HANDSHAKE: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// Stateless-era revisions the gateway speaks, oldest first.
const STATELESS: [&str; 1] = ["2026-07-28"];

/// The revision a Streamable HTTP server assumes when a request carries no
/// `MCP-Protocol-Version` header and nothing else tells (2025-06-18 transports).
pub const HTTP_DEFAULT: &str = "2025-03-26";

impl Era {
    /// The revisions of this era the gateway speaks, oldest first.
    pub const fn revisions(self) -> &'static [&'static str] {
        match self {
            Era::Handshake => &HANDSHAKE,
            Era::Stateless => &STATELESS,
        }
    }

    /// The revision of this era the gateway prefers, towards clients and upstreams.
    pub const fn latest(self) -> &'static str {
        let revisions = self.revisions();
        revisions[revisions.len() - 1]
    }

    /// The era of a revision the gateway speaks; `None` for any other.
    pub fn of(revision: &str) -> Option<Era> {
        [Era::Handshake, Era::Stateless]
            .into_iter()
            .find(|era| era.speaks(revision))
    }

    /// Whether the gateway speaks `revision` in this era.
    pub fn speaks(self, revision: &str) -> bool {
        self.revisions().contains(&revision)
    }

    /// The era's name in configuration and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Era::Handshake => "handshake",
            Era::Stateless => "stateless",
        }
    }
}

/// Every revision the gateway speaks, both eras, oldest first: what `server/discover` and
/// -32022 list.
pub fn all() -> Vec<&'static str> {
    HANDSHAKE.iter().chain(STATELESS.iter()).copied().collect()
}

/// The handshake-era revision to answer a client whose `initialize` asked for `requested`.
pub fn negotiate(requested: &str) -> &'static str {
    HANDSHAKE
        .iter()
        .copied()
        .find(|v| *v == requested)
        .unwrap_or(Era::Handshake.latest())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_echoes_supported_and_falls_back_to_latest() {
        assert_eq!(negotiate("2025-03-26"), "2025-03-26");
        assert_eq!(negotiate("2024-11-05"), "2024-11-05");
        assert_eq!(negotiate("1999-01-01"), "2025-11-25");
        assert_eq!(negotiate(""), "2025-11-25");
        assert_eq!(negotiate("2026-07-28"), "2025-11-25");
    }

    #[test]
    fn every_revision_belongs_to_one_era() {
        assert_eq!(Era::of("2024-11-05"), Some(Era::Handshake));
        assert_eq!(Era::of("2025-11-25"), Some(Era::Handshake));
        assert_eq!(Era::of("2026-07-28"), Some(Era::Stateless));
        assert_eq!(Era::of("2027-01-01"), None);
        assert_eq!(Era::Handshake.latest(), "2025-11-25");
        assert_eq!(Era::Stateless.latest(), "2026-07-28");
        assert_eq!(all().len(), 5);
    }
}
