//! A configurable MCP server used as a real upstream in Manifold's
//! integration tests, built on rmcp (the official Rust SDK) so the gateway is
//! exercised against an implementation it does not share code with.
//!
//! ```text
//! fixture_server --name NAME [--transport stdio|http] [--protocol dual|stateless|handshake]
//!                [--tools N] [--page-size K] [--port P]
//! ```
//!
//! * `stdio` (default): JSON-RPC on stdin/stdout; exits when stdin closes.
//! * `http`: Streamable HTTP with stateful sessions at
//!   `http://127.0.0.1:P/mcp` (P = 0 picks a free port); prints exactly one
//!   line, `LISTENING http://127.0.0.1:PORT/mcp`, to stdout once ready.
//!
//! `--protocol` (default `dual`): which MCP eras it speaks. `dual` serves a
//! 2026-07-28 client statelessly and a handshake-era one in a session, as rmcp
//! does; `stateless` refuses `initialize`, `handshake` refuses `server/discover`
//! (both with -32022 naming what it does speak).
//!
//! Tools: `tool_0`..`tool_{N-1}`, `whoami`, `echo`, `slow`, `crash`,
//! `add_tool`, `remove_tool`, `fail`, and for the era tests `envelope` (the
//! `_meta` and HTTP headers a call arrived with), `journal` (protocol events
//! seen: probes, listens, cancellations) and `touch` (a resource update for
//! whoever subscribed, by `resources/subscribe` or `subscriptions/listen`).
//! Prompts: `greet`, `about`. Resources:
//! `fixture://NAME/info`, `fixture://NAME/item/{i}` and the template
//! `fixture://NAME/tpl/{id}`. With `--era-tools` the tool list differs by era: one more tool,
//! `era_handshake` or `era_stateless`, for a client of that era. With `--page-size K` every list is paginated
//! with opaque cursors. Diagnostics go to stderr only.
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, tool calls are exported as OpenTelemetry
//! spans (see `otel.rs`), children of the `traceparent` they arrived with.

mod catalog;
mod era;
mod handler;
mod otel;

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use rmcp::ServiceExt as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::catalog::Catalog;
use crate::handler::Fixture;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    Stdio,
    Http,
}

/// Test fixture MCP server for Manifold's integration tests.
#[derive(Debug, Parser)]
#[command(name = "fixture_server")]
struct Cli {
    /// Server name: reported as serverInfo.name and woven into every
    /// description, text and URI so tests can tell servers apart.
    #[arg(long)]
    name: String,
    /// Transport to serve.
    #[arg(long, value_enum, default_value_t = Transport::Stdio)]
    transport: Transport,
    /// Protocol eras to speak.
    #[arg(long, value_enum, default_value_t = era::Protocol::Dual)]
    protocol: era::Protocol,
    /// Number of generic tools (`tool_0`..) and of `item/{i}` resources.
    #[arg(long, default_value_t = 3)]
    tools: usize,
    /// Items per page in every list result; 0 disables pagination.
    #[arg(long, default_value_t = 0)]
    page_size: usize,
    /// Port for `--transport http` (bound on 127.0.0.1 only); 0 = any free port.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// List one more tool that differs by era: `era_handshake` to a handshake-era client,
    /// `era_stateless` to a 2026-07-28 one (each answers with its era).
    #[arg(long)]
    era_tools: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let catalog = Catalog::new(&cli.name, cli.tools, cli.page_size)
        .map_err(|err| anyhow::anyhow!("building the catalog: {}", err.message))?;
    let provider = otel::init(&cli.name).context("setting up OTLP export")?;
    let fixture = Fixture::new(catalog, cli.protocol)
        .with_tracer(provider.as_ref().map(otel::tracer))
        .with_era_tools(cli.era_tools);
    eprintln!(
        "fixture {} started ({:?}, {:?}, {} tools, page size {})",
        cli.name, cli.transport, cli.protocol, cli.tools, cli.page_size
    );
    match cli.transport {
        Transport::Stdio => serve_stdio(fixture).await,
        Transport::Http => serve_http(fixture, cli.port).await,
    }?;
    if let Some(provider) = provider {
        otel::shutdown(provider).await;
    }
    eprintln!("fixture {} stopped", cli.name);
    Ok(())
}

async fn serve_stdio(fixture: Fixture) -> anyhow::Result<()> {
    let running = fixture
        .serve(rmcp::transport::stdio())
        .await
        .context("MCP handshake on stdio")?;
    // Returns once stdin reaches EOF (or the client goes away).
    running.waiting().await.context("serving stdio")?;
    Ok(())
}

async fn serve_http(fixture: Fixture, port: u16) -> anyhow::Result<()> {
    // Loopback only: the fixture must never be reachable from elsewhere.
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;

    // Default config = stateful sessions (`Mcp-Session-Id`), loopback Host
    // validation, SSE keep-alives.
    let service = StreamableHttpService::new(
        move || Ok(fixture.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);

    // Tests wait for this exact line, so it must be the only stdout output
    // and must be flushed before anyone can connect usefully.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "LISTENING http://{bound}/mcp").context("writing LISTENING line")?;
    stdout.flush().context("flushing LISTENING line")?;
    drop(stdout);

    // TCP_NODELAY: SSE answers would otherwise wait ~40 ms on Nagle and delayed ACKs,
    // which would make this server a poor baseline for measuring the gateway.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            // If the signal handler cannot be installed, just serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
        .context("serving HTTP")?;
    Ok(())
}
