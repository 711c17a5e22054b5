//! The server's lifecycle: build the gateway, serve its HTTP face on a bound listener until
//! a shutdown future resolves, drain, stop the upstreams. `main` and the tests call the same
//! functions, so a test can bind port 0 and stop the server when it is done.
//!
//! The drain, once the shutdown future resolves: `/readyz` answers 503 and new sessions are
//! refused at once, open streams end, while the listener stays open so requests that are
//! still routed here are answered; requests in flight finish within `shutdown_grace`; then
//! the listener closes and the upstreams stop.
//!
//! With a [`Reload`] source, the configuration file is loaded again on SIGHUP and whenever
//! its content changes (see [`reload`]).

pub mod connections;
mod in_flight;
pub mod reload;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::pipeline::Hooks;
use in_flight::InFlight;
pub use reload::Reload;

/// Serves clients on `listener` until `shutdown` resolves, then drains and stops (see the
/// module documentation). Called by `main` and by tests alike.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run(config, listener, shutdown, Hooks::default(), None).await
}

/// [`serve`] with test seams, for tests that run the gateway in-process (a rate-limit clock
/// they advance by hand, say). Production passes `Hooks::default()`, which is `serve`.
pub async fn serve_with(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    hooks: Hooks,
) -> std::io::Result<()> {
    run(config, listener, shutdown, hooks, None).await
}

/// [`serve`], reloading the configuration from `reload` while it runs.
pub async fn serve_reloading(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reload: Reload,
) -> std::io::Result<()> {
    run(config, listener, shutdown, Hooks::default(), Some(reload)).await
}

async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    hooks: Hooks,
    reload: Option<Reload>,
) -> std::io::Result<()> {
    let gateway = Gateway::start_with(config, &hooks);
    let in_flight = InFlight::default();
    let app = crate::downstream::app(gateway.clone());
    let close = CancellationToken::new();
    let server = tokio::spawn(connections::serve(
        listener,
        app,
        gateway.config().connections.clone(),
        gateway.metrics.clone(),
        in_flight.clone(),
        close.clone(),
    ));
    if let Some(reload) = reload {
        tokio::spawn(reload::watch(gateway.clone(), reload));
    }
    shutdown.await;
    drain(&gateway, &in_flight).await;
    close.cancel();
    // Connections finish their answers in progress (HTTP/2: GOAWAY), each at most 1 s.
    let grace = std::time::Duration::from_secs(2);
    let abort = server.abort_handle();
    match tokio::time::timeout(grace, server).await {
        Ok(Ok(())) => {}
        Ok(Err(join)) => tracing::error!(error = %join, "HTTP server task failed"),
        Err(_) => {
            tracing::warn!("Connections still open after the drain; closing anyway");
            abort.abort();
        }
    }
    gateway.stop_upstreams().await;
    tracing::info!("Stopped");
    Ok(())
}

/// Turns `/readyz` to 503, refuses new sessions and ends open streams, then waits for the
/// requests in flight, at most `shutdown_grace`.
async fn drain(gateway: &Arc<Gateway>, in_flight: &InFlight) {
    let grace = gateway.config().shutdown_grace;
    tracing::info!(in_flight = in_flight.count(), grace = ?grace, "Shutting down: not ready, no new sessions; draining requests in flight");
    gateway.shutdown.cancel();
    let deadline = tokio::time::Instant::now() + grace;
    if in_flight.drained(deadline).await {
        tracing::info!("Drained: no request in flight");
    } else {
        tracing::warn!(in_flight = in_flight.count(), grace = ?grace, "Requests still in flight after the grace period; closing anyway");
    }
}

/// Starts the upstreams without serving clients (for `manifold tools`).
pub fn start_gateway(config: Config) -> Arc<Gateway> {
    Gateway::start(config)
}
