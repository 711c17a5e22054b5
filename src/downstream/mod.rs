//! The client-facing side: transports that accept MCP clients, and their sessions.

mod answer;
pub mod exchange;
pub mod guard;
pub mod http;
pub mod legacy_sse;
pub mod modern;
pub mod stdio;
