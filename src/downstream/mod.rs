//! The client-facing side: transports that accept MCP clients, and their sessions.

mod answer;
pub mod events;
pub mod exchange;
pub mod guard;
pub mod http;
pub mod legacy_sse;
pub mod modern;
pub mod session;
pub mod stdio;

pub use session::{Session, SessionStore};
