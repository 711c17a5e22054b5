//! The fixture MCP server for the MCP conformance suite
//! (`@modelcontextprotocol/conformance`): it implements every tool, prompt
//! and resource the suite's server scenarios look for, so the suite can be
//! run against it directly and against Manifold standing in front of it.
//! `scripts/interop` does both.
//!
//! It speaks both protocol eras: the handshake era (2024-11-05 … 2025-11-25,
//! `initialize` first, sessions, server-to-client requests) and the
//! stateless 2026-07-28 (every request carries its version and capabilities
//! in `_meta`; questions for the client travel as `InputRequiredResult`). In
//! 2026-07-28 it also serves the tasks extension (`tasks.rs`): tool calls of
//! clients that declare it may become tasks, read with `tasks/get`.
//!
//! ```text
//! conformance_server [--transport http|stdio] [--port P]
//! ```
//!
//! * `http` (default): Streamable HTTP at `http://127.0.0.1:P/mcp` (P = 0
//!   picks a free port). Each POST picks its era: `initialize` opens a
//!   stateful session (`Mcp-Session-Id`), a request with the 2026-07-28
//!   envelope is served on its own. Once it accepts connections it prints
//!   exactly one line to stdout, `LISTENING http://127.0.0.1:PORT/mcp`.
//!   Requests whose Host is not a loopback name are refused (DNS-rebinding
//!   protection).
//! * `stdio`: JSON-RPC on stdin/stdout, for running as a gateway's stdio
//!   upstream; exits when stdin closes. The first request decides the era of
//!   the connection (see `era.rs`). It behaves the same: elicitation,
//!   sampling and roots questions go to the client that called the tool, log
//!   messages and progress flow during calls, and subscribers (handshake
//!   era) or listeners (2026-07-28) hear about changes to
//!   `test://watched-resource`.
//!
//! Diagnostics go to stderr only.

mod content;
mod era;
mod handler;
mod input;
mod tasks;
mod tools;

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use rmcp::service::ServerInitializeError;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler as _, ServiceExt as _};

use crate::era::EraGate;
use crate::handler::{ConformanceServer, Shared};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    Http,
    Stdio,
}

/// MCP server exposing the fixtures the MCP conformance suite expects.
#[derive(Debug, Parser)]
#[command(name = "conformance_server")]
struct Cli {
    /// Transport to serve.
    #[arg(long, value_enum, default_value_t = Transport::Http)]
    transport: Transport,
    /// Port for `--transport http`, bound on 127.0.0.1 only; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let shared = Arc::new(Shared::default());
    match cli.transport {
        Transport::Stdio => serve_stdio(shared).await,
        Transport::Http => serve_http(shared, cli.port).await,
    }
}

async fn serve_stdio(shared: Arc<Shared>) -> anyhow::Result<()> {
    eprintln!("conformance_server: serving MCP on stdio");
    let server = ConformanceServer::new_session(shared);
    let stdio = AsyncRwTransport::new_server(tokio::io::stdin(), tokio::io::stdout());
    let transport = EraGate::new(stdio, &server.supported_protocol_versions());
    let running = match server.serve(transport).await {
        Ok(running) => running,
        // A client may probe with server/discover and leave, or just leave.
        Err(ServerInitializeError::ConnectionClosed(_)) => {
            eprintln!("conformance_server: stdin closed before a session started, exiting");
            return Ok(());
        }
        Err(err) => return Err(err).context("starting MCP on stdio"),
    };
    // Resolves when stdin reaches EOF or the client goes away.
    running.waiting().await.context("serving stdio")?;
    eprintln!("conformance_server: stdin closed, exiting");
    Ok(())
}

async fn serve_http(shared: Arc<Shared>, port: u16) -> anyhow::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;

    // The default configuration is what the suite needs: stateful sessions
    // (`Mcp-Session-Id`), SSE responses, and Host validation that only lets
    // loopback names through.
    let service = StreamableHttpService::new(
        move || Ok(ConformanceServer::new_session(shared.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);

    // Callers wait for this exact line: it must be the only stdout output,
    // and flushed, since stdout is a pipe when a script starts us.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "LISTENING http://{bound}/mcp").context("writing the LISTENING line")?;
    stdout.flush().context("flushing the LISTENING line")?;
    drop(stdout);
    eprintln!("conformance_server: serving MCP on http://{bound}/mcp");

    // TCP_NODELAY: SSE answers would otherwise wait ~40 ms on Nagle and delayed ACKs,
    // which would make this server a poor baseline for measuring the gateway.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            // Without a Ctrl-C handler, serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
        .context("serving HTTP")
}
