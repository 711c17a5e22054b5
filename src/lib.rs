//! Manifold: an MCP gateway. Clients see one MCP server; behind it stand many upstream MCP
//! servers (stdio child processes and remote HTTP servers) whose tools, prompts and
//! resources are merged, namespaced and routed.
//!
//! The modules are layers, each importing only the ones listed before it (checked by
//! `tests/layers.rs`; the table and the reasons are in `docs/architecture.md`):
//!
//! | layer | holds |
//! |---|---|
//! | `alloc` | the global allocator the binaries install (the one module allowed `unsafe`) |
//! | `sync` | small concurrency helpers the layers share |
//! | `protocol` | the wire: JSON-RPC, codes, methods, eras, envelope, headers |
//! | `config` | data only: raw shapes, the validated model, every stage's section |
//! | `net` | outbound HTTP clients, and what happens without CA certificates |
//! | `telemetry` | logs, the OpenTelemetry exporter, span helpers |
//! | `aggregate` | pure: names, seals, cursors, URI templates, catalog data and merge |
//! | `session` | client state: sessions, event logs, principals, task records and stores |
//! | `upstream` | transports, peers, supervisors, catalog fetching, the upstream table |
//! | `relay` | the way back: upstream traffic to the right client |
//! | `pipeline` | the stage chain and its stages, ending in a terminal it is handed |
//! | `router` | the terminal: lists, calls, MRTR, `initialize`, `server/discover` |
//! | `tasks` | the tasks stage, the runner of wrapped tasks, passthrough, task methods |
//! | `gateway` | the composition root that builds the parts above |
//! | `downstream` | the client faces: Streamable HTTP, HTTP+SSE, stdio |
//! | `serve` | the server's lifecycle |
//! | `demo` | the built-in demo server, which shares only the wire |
//! | `cli` | the commands |

#![deny(unsafe_code)]

pub mod aggregate;
pub mod alloc;
pub mod cli;
pub mod config;
pub mod demo;
pub mod downstream;
pub mod gateway;
pub mod net;
pub mod pipeline;
pub mod protocol;
pub mod relay;
pub mod router;
pub mod serve;
pub mod session;
pub mod sync;
pub mod tasks;
pub mod telemetry;
pub mod upstream;

pub use serve::{serve, serve_with, start_gateway};
