//! MCP log levels (RFC 5424 severities, least severe first).

/// The levels in order; a level's index is its rank.
pub const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// The rank of a level name, or `None` if MCP does not define it.
pub fn rank(level: &str) -> Option<usize> {
    LEVELS.iter().position(|l| *l == level)
}

pub fn name(rank: usize) -> &'static str {
    LEVELS[rank.min(LEVELS.len() - 1)]
}
