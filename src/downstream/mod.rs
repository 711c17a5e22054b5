//! The client-facing side: transports that accept MCP clients, and their sessions.

pub mod events;
pub mod exchange;
pub mod guard;
pub mod http;
pub mod session;

pub use session::{Session, SessionStore};
