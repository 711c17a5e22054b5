//! Pure (no I/O) helpers for merging many upstream MCP servers into one catalog.
//!
//! Everything here is deterministic given its inputs (apart from the random
//! nonces and keys of [`seal`]), so it can be unit- and property-tested without
//! a network.

pub mod catalog;
pub mod cursor;
pub mod merge;
pub mod names;
pub mod seal;
pub mod uri_template;
