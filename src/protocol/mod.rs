//! The wire: JSON-RPC framing, MCP error codes, methods and protocol revisions.
//!
//! Everything here is pure. Transports turn bytes into [`jsonrpc::Message`]s exactly once,
//! at the edge; the rest of the gateway works on those typed envelopes and keeps `params` and
//! `result` as JSON it does not re-model (see `docs/architecture.md`, "pass-through").

pub mod arguments;
pub mod codes;
pub mod compact;
pub mod envelope;
pub mod era;
pub mod extensions;
pub mod field;
pub mod headers;
pub mod jsonrpc;
pub mod logging;
pub mod methods;
pub mod payload;
pub mod scan;
pub mod text;
pub mod word;

pub use era::Era;
pub use jsonrpc::{ErrorObject, Id, Message, Notification, Request, Response};
pub use payload::Payload;
