//! DNS-rebinding protection: `Host` and `Origin` checks for the MCP endpoint.
//!
//! A browser page on an attacker's domain can resolve that domain to 127.0.0.1 and talk to a
//! local gateway; it cannot forge `Host` or `Origin`. So when protection is on (the default
//! for loopback listeners), only loopback names and configured extras are accepted. A bad
//! `Origin` gets 403 (MCP 2025-11-25 transports); a bad `Host` gets 421 Misdirected Request.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::config::Security;

#[derive(Debug, Clone)]
pub struct Guard {
    enabled: bool,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
}

/// A rejected request: the status and a message for the body.
pub type Rejection = (StatusCode, String);

impl Guard {
    pub fn new(security: &Security) -> Self {
        Self {
            enabled: security.dns_rebinding_protection,
            allowed_hosts: security
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            allowed_origins: security
                .allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        if !self.enabled {
            return Ok(());
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !self.host_allowed(host) {
            return Err((
                StatusCode::MISDIRECTED_REQUEST,
                format!("Host {host:?} is not allowed (DNS rebinding protection)"),
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !self.origin_allowed(origin) {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!("Origin {origin:?} is not allowed (DNS rebinding protection)"),
                ));
            }
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        is_loopback_name(strip_port(&host))
            || self
                .allowed_hosts
                .iter()
                .any(|h| *h == host || h == strip_port(&host))
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.allowed_origins.contains(&origin) {
            return true;
        }
        match url::Url::parse(&origin) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u
                .host_str()
                .is_some_and(|h| is_loopback_name(h.trim_start_matches('[').trim_end_matches(']'))),
            _ => false,
        }
    }
}

/// The request's authority as its `Host` header, so every check and every URL built from
/// `Host` sees it whatever the HTTP version: an HTTP/2 request carries it in `:authority`
/// (the URI), usually without `Host`, as does an HTTP/1.1 request in absolute form. A `Host`
/// that names another authority than the URI is refused with 400 (RFC 9113 §8.3.1, RFC 9112
/// §3.2.2: the URI's authority is the one that counts, so the two must not disagree).
///
/// Run by the edge (`serve::connections`) on every request before it is routed; returns
/// the answer to send instead when it refuses.
pub fn authority_as_host<B>(req: &mut http::Request<B>) -> Option<Response> {
    let authority = req.uri().authority()?;
    match req.headers().get(header::HOST) {
        Some(host)
            if !host
                .as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
        {
            let msg = format!(
                "Host {:?} differs from the request's authority {:?}",
                host.to_str().unwrap_or("(not text)"),
                authority.as_str()
            );
            let error = crate::protocol::ErrorObject::invalid_request(msg);
            Some(super::web::rpc_error(StatusCode::BAD_REQUEST, error))
        }
        Some(_) => None,
        None => {
            if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                req.headers_mut().insert(header::HOST, v);
            }
            None
        }
    }
}

/// `host:port`, `[v6]:port`, `host` or `[v6]` → the host part, brackets removed.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

fn is_loopback_name(host: &str) -> bool {
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn guard(hosts: &[&str], origins: &[&str]) -> Guard {
        Guard {
            enabled: true,
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).expect("ascii"));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).expect("ascii"));
        }
        h
    }

    #[test]
    fn loopback_hosts_and_origins_pass() {
        let g = guard(&[], &[]);
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:9",
            "127.3.2.1",
        ] {
            assert!(g.check(&headers(host, None)).is_ok(), "{host}");
        }
        assert!(
            g.check(&headers("localhost:1", Some("http://localhost:3000")))
                .is_ok()
        );
        assert!(
            g.check(&headers("localhost:1", Some("http://[::1]:3000")))
                .is_ok()
        );
    }

    #[test]
    fn rebinding_attempts_are_rejected_with_the_right_status() {
        let g = guard(&[], &[]);
        let (status, msg) = g
            .check(&headers("evil.example:8080", None))
            .expect_err("bad host");
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
        assert!(msg.contains("evil.example"));
        let (status, _) = g
            .check(&headers("127.0.0.1:8080", Some("http://evil.example")))
            .expect_err("bad origin");
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(g.check(&headers("127.0.0.1:8080", Some("null"))).is_err());
        assert!(g.check(&headers("localhost.evil.example", None)).is_err());
    }

    #[test]
    fn configured_extras_pass_and_disabled_guard_passes_everything() {
        let g = guard(&["mcp.internal"], &["https://app.example.com"]);
        assert!(
            g.check(&headers(
                "mcp.internal:443",
                Some("https://app.example.com/")
            ))
            .is_ok()
        );
        let off = Guard {
            enabled: false,
            ..guard(&[], &[])
        };
        assert!(
            off.check(&headers("evil.example", Some("http://evil.example")))
                .is_ok()
        );
    }
}
