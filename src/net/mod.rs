//! Outbound clients: the one place that decides how the gateway reaches remote
//! servers (HTTP upstreams, JWKS endpoints, the OTLP collector) and what happens when the
//! machine has no CA certificates; and the shared Redis ([`redis`]).
//!
//! A minimal container image often has none. HTTPS is then impossible, but plain HTTP is
//! not, and a gateway whose upstreams are all stdio or `http://` needs no certificate at all.
//! So a missing certificate store is never fatal here: the client is built without roots,
//! [`tls_roots_missing`] remembers it, and whoever dials an `https://` address refuses with
//! [`NO_CA_CERTIFICATES`], which says how to fix it.

use std::sync::atomic::{AtomicBool, Ordering};

pub mod redis;

/// Why an HTTPS address cannot be reached on a machine without a certificate store.
pub const NO_CA_CERTIFICATES: &str = "no CA certificates were found on this machine, so HTTPS \
     cannot be verified: install the ca-certificates package, or point SSL_CERT_FILE at a PEM bundle";

/// The `User-Agent` the gateway sends to upstream servers.
pub const USER_AGENT: &str = concat!("manifold/", env!("CARGO_PKG_VERSION"));

static ROOTS_MISSING: AtomicBool = AtomicBool::new(false);

/// Builds a client from `configure` (applied to a fresh builder). When the system's
/// certificate store cannot be loaded, builds it again without roots (plain HTTP works,
/// HTTPS is refused by [`check_url`]) and logs what is missing. `purpose` names the
/// client in that log line.
pub fn client(
    purpose: &str,
    configure: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> reqwest::Client {
    // reqwest is built without a default TLS provider; install ring's once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match configure(reqwest::Client::builder()).build() {
        Ok(client) => client,
        Err(error) => {
            ROOTS_MISSING.store(true, Ordering::Relaxed);
            tracing::warn!(client = purpose, error = %error, "{NO_CA_CERTIFICATES}; plain HTTP still works");
            configure(reqwest::Client::builder())
                .tls_certs_only(std::iter::empty())
                .build()
                .unwrap_or_else(|error| {
                    tracing::error!(client = purpose, error = %error, "Could not build an HTTP client; using one with no settings");
                    reqwest::Client::builder()
                        .tls_certs_only(std::iter::empty())
                        .build()
                        .unwrap_or_default()
                })
        }
    }
}

/// Longest wait for a TCP connection to an upstream.
pub const UPSTREAM_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long an idle connection to an upstream may be reused.
pub const UPSTREAM_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// The HTTP client of every upstream (one for all: connections and TLS sessions are reused).
/// The lean HTTP/1 path (`upstream::h1`) keeps the same timeouts and `User-Agent`.
pub fn upstream_client() -> reqwest::Client {
    client("upstreams", |builder| {
        builder
            .connect_timeout(UPSTREAM_CONNECT_TIMEOUT)
            .pool_idle_timeout(UPSTREAM_IDLE_TIMEOUT)
            .user_agent(USER_AGENT)
    })
}

/// Whether a client was built without the system's certificate store.
pub fn tls_roots_missing() -> bool {
    ROOTS_MISSING.load(Ordering::Relaxed)
}

/// Refuses an `https://` address when no certificate store could be loaded, so the error
/// names the cause instead of a certificate failure on every attempt.
pub fn check_url(url: &str) -> Result<(), String> {
    let https = url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
    if https && tls_roots_missing() {
        return Err(NO_CA_CERTIFICATES.to_owned());
    }
    Ok(())
}
