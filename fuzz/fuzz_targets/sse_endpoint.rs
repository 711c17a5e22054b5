//! The `endpoint` event of an HTTP+SSE (2024-11-05) upstream names where the gateway POSTs
//! client messages (with configured credentials): whatever it says, the URL accepted must be
//! on the SSE URL's origin.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manifold::upstream::fuzzing::sse_endpoint;

const BASES: [&str; 4] = [
    "http://127.0.0.1:8080/sse",
    "https://mcp.example.com/v1/sse?token=abc",
    "http://[::1]:9000/a/b/sse",
    "https://user:pw@example.com:8443/",
];

fn origin(url: &str) -> String {
    // scheme://host:port, as the URL standard's tuple origin; parsed here by hand so the
    // check does not reuse the code it checks.
    let (scheme, rest) = url.split_once("://").expect("absolute URL");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let default = if scheme == "https" { "443" } else { "80" };
    let has_port = host_port.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (!h.starts_with('[') || h.ends_with(']'))
    });
    let with_port = if has_port {
        host_port.to_string()
    } else {
        format!("{host_port}:{default}")
    };
    format!("{scheme}://{}", with_port.to_ascii_lowercase())
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(endpoint) = std::str::from_utf8(rest) else {
        return;
    };
    let base = BASES[usize::from(pick) % BASES.len()];
    if let Ok(url) = sse_endpoint(base, endpoint) {
        assert_eq!(
            origin(&url),
            origin(base),
            "endpoint {endpoint:?} left the origin"
        );
    }
});
