//! The client-facing side: transports that accept MCP clients, and their sessions.

mod answer;
pub mod exchange;
pub mod guard;
pub mod http;
pub mod http_sse;
pub mod stateless;
pub mod stdio;
