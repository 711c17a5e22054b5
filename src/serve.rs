//! The server's lifecycle: build the gateway, serve its HTTP face on a bound listener until
//! a shutdown future resolves, drain, stop the upstreams. `main` and the tests call the same
//! functions, so a test can bind port 0 and stop the server when it is done.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::pipeline::Hooks;

/// Serves clients on `listener` until `shutdown` resolves, then stops in order: stop
/// accepting, let in-flight requests finish within `shutdown_grace`, close the upstreams
/// (stdin closed, wait, kill), return. Called by `main` and by tests alike.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(config, listener, shutdown, Hooks::default()).await
}

/// [`serve`] with test seams, for tests that run the gateway in-process (a rate-limit clock
/// they advance by hand, say). Production passes `Hooks::default()`, which is `serve`.
pub async fn serve_with(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    hooks: Hooks,
) -> std::io::Result<()> {
    let grace = config.shutdown_grace;
    let gateway = Gateway::start_with(config, &hooks);
    let app = crate::downstream::app(gateway.clone());
    let closing = gateway.shutdown.clone();
    // Without TCP_NODELAY, an SSE answer (headers, event, end of stream written separately)
    // waits on Nagle's algorithm and the client's delayed ACK: ~40 ms per answer.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "Could not set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("Shutting down: no new connections; draining requests in flight");
        closing.cancel();
    });
    let server = tokio::spawn(async move { server.await });
    gateway.shutdown.cancelled().await;
    match tokio::time::timeout(grace, server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) => tracing::error!(error = %join, "HTTP server task failed"),
        Err(_) => {
            tracing::warn!(grace = ?grace, "Requests still in flight after the grace period; closing anyway")
        }
    }
    gateway.stop_upstreams().await;
    tracing::info!("Stopped");
    Ok(())
}

/// Starts the upstreams without serving clients (for `manifold tools`).
pub fn start_gateway(config: Config) -> Arc<Gateway> {
    Gateway::start(config)
}
