//! Composite cursors for the merged `*/list` methods.
//!
//! The gateway pages merged listings over its cached per-upstream catalogs in
//! a stable order (upstreams in a fixed order, items in each upstream's
//! order). MCP treats cursors as opaque strings chosen by the server, so a
//! [`ListCursor`] records where the next page starts and is sealed (see
//! [`super::seal`]) before it reaches the client: clients cannot forge
//! positions, and any replica sharing the key can continue a listing.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::seal::Sealer;

/// AEAD purpose of cursor tokens; sealed tokens of other kinds never open as
/// cursors.
const PURPOSE: &[u8] = b"cursor/v1";

/// Version of the sealed JSON payload, bumped on any change to [`Wire`].
const WIRE_VERSION: u8 = 1;

/// Which merged listing a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// `tools/list`
    Tools,
    /// `prompts/list`
    Prompts,
    /// `resources/list`
    Resources,
    /// `resources/templates/list`
    ResourceTemplates,
}

impl ListKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::ResourceTemplates,
    ];

    /// The MCP method that lists this kind.
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
        }
    }

    /// One-byte code used inside sealed cursors (kept stable across releases
    /// so replicas of different versions understand each other).
    fn code(self) -> u8 {
        match self {
            ListKind::Tools => 0,
            ListKind::Prompts => 1,
            ListKind::Resources => 2,
            ListKind::ResourceTemplates => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

impl fmt::Display for ListKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.method())
    }
}

/// Why a cursor was refused. The gateway answers every variant with JSON-RPC
/// error -32602 (invalid params, as MCP prescribes for invalid cursors) and
/// the Display text as message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Malformed, forged, sealed under another key, or not a cursor at all.
    #[error("invalid cursor: not issued by this gateway or corrupted")]
    Invalid,
    /// A genuine cursor from another listing, e.g. a `tools/list` cursor sent
    /// to `prompts/list`.
    #[error("cursor belongs to {found}, not {expected}")]
    WrongList {
        /// The listing the request was for.
        expected: ListKind,
        /// The listing the cursor was minted by.
        found: ListKind,
    },
}

/// Where the next page of a merged listing starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListCursor {
    /// The listing this cursor continues.
    pub kind: ListKind,
    /// Name of the upstream the next page starts in.
    pub upstream: String,
    /// Index of the next item within that upstream's filtered list.
    pub offset: usize,
    /// That upstream's catalog generation when the cursor was minted; the
    /// caller compares it with the current one to detect stale cursors.
    pub generation: u64,
}

/// Compact sealed form: short keys keep tokens small in every response.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u8,
    k: u8,
    u: String,
    o: u64,
    g: u64,
}

impl ListCursor {
    /// Seals the cursor into an opaque token for `nextCursor`.
    pub fn seal(&self, sealer: &Sealer) -> String {
        let wire = Wire {
            v: WIRE_VERSION,
            k: self.kind.code(),
            u: self.upstream.clone(),
            // usize is at most 64 bits on every supported target.
            o: self.offset as u64,
            g: self.generation,
        };
        // Serialising a struct of integers and a String cannot fail; fall back
        // to an empty payload (which `open` rejects) rather than panic.
        let payload = serde_json::to_vec(&wire).unwrap_or_default();
        sealer.seal(PURPOSE, &payload)
    }

    /// Opens a client-supplied cursor for the listing `expected`.
    pub fn open(token: &str, sealer: &Sealer, expected: ListKind) -> Result<Self, CursorError> {
        let payload = sealer
            .open(PURPOSE, token)
            .map_err(|_| CursorError::Invalid)?;
        // Authenticated payloads are ours, but an older or newer replica may
        // have written a different layout: treat anything unexpected as
        // invalid rather than guess.
        let wire: Wire = serde_json::from_slice(&payload).map_err(|_| CursorError::Invalid)?;
        if wire.v != WIRE_VERSION {
            return Err(CursorError::Invalid);
        }
        let kind = ListKind::from_code(wire.k).ok_or(CursorError::Invalid)?;
        if kind != expected {
            return Err(CursorError::WrongList {
                expected,
                found: kind,
            });
        }
        Ok(Self {
            kind,
            upstream: wire.u,
            offset: usize::try_from(wire.o).map_err(|_| CursorError::Invalid)?,
            generation: wire.g,
        })
    }
}

#[cfg(test)]
mod tests;
