//! The OAuth 2.0 resource-server face (RFC 9728, RFC 6750): the protected-resource metadata
//! document, where it lives, and the `WWW-Authenticate` challenges that point to it.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Authenticator;

/// Where RFC 9728 puts the metadata, before the resource's own path (§3.1).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// What the challenges and the metadata say about this resource.
pub struct Resource {
    /// The configured `resource`, or `None` to derive it from each request.
    pub configured: Option<url::Url>,
    /// The MCP endpoint path (`path`), for the derived resource.
    pub endpoint_path: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
}

impl Resource {
    /// The resource identifier: the configured one, else `http(s)://<Host><path>` (the scheme
    /// from `X-Forwarded-Proto` when a proxy in front says `https`).
    pub fn resource(&self, headers: &HeaderMap) -> String {
        if let Some(u) = &self.configured {
            return u.to_string();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or("localhost");
        let scheme = match headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
        {
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        format!("{scheme}://{host}{}", self.endpoint_path)
    }

    /// The metadata document's URL for `resource`: the well-known path inserted between
    /// its origin and its path (RFC 9728 §3.1).
    pub fn metadata_url(&self, headers: &HeaderMap) -> String {
        metadata_url_of(&self.resource(headers))
    }

    /// The paths the document is served at: the bare well-known path, and that path
    /// followed by the endpoint's (and the configured resource's) path.
    pub fn paths(&self) -> Vec<String> {
        let mut paths = vec![WELL_KNOWN.to_owned()];
        let mut add = |p: &str| {
            let p = p.trim_end_matches('/');
            if !p.is_empty() {
                let full = format!("{WELL_KNOWN}{p}");
                if !paths.contains(&full) {
                    paths.push(full);
                }
            }
        };
        add(&self.endpoint_path);
        if let Some(u) = &self.configured {
            add(u.path());
        }
        paths
    }

    /// The metadata document.
    pub fn document(&self, headers: &HeaderMap) -> Value {
        let mut doc = json!({
            "resource": self.resource(headers),
            "bearer_methods_supported": ["header"],
        });
        if !self.authorization_servers.is_empty() {
            doc["authorization_servers"] = json!(self.authorization_servers);
        }
        if !self.scopes_supported.is_empty() {
            doc["scopes_supported"] = json!(self.scopes_supported);
        }
        doc
    }
}

fn metadata_url_of(resource: &str) -> String {
    match url::Url::parse(resource) {
        Ok(u) => {
            let path = u.path().trim_end_matches('/');
            let origin = u.origin().ascii_serialization();
            format!("{origin}{WELL_KNOWN}{path}")
        }
        Err(_) => WELL_KNOWN.to_owned(),
    }
}

/// A `WWW-Authenticate: Bearer ...` value. `error_description` is reduced to the characters
/// RFC 6750 §3 allows in it, so no input can break out of the quoted string.
pub fn challenge(params: &[(&str, &str)]) -> String {
    let rendered: Vec<String> = params
        .iter()
        .map(|(k, v)| {
            let clean: String = v
                .chars()
                .map(|c| match c {
                    ' ' | '!' | '#'..='[' | ']'..='~' => c,
                    _ => '?',
                })
                .collect();
            format!("{k}=\"{clean}\"")
        })
        .collect();
    if rendered.is_empty() {
        "Bearer".to_owned()
    } else {
        format!("Bearer {}", rendered.join(", "))
    }
}

/// The metadata document for a request to `path`, if it is one of this authenticator's
/// metadata paths (no credentials needed for them).
pub fn answer(auth: &Authenticator, path: &str, headers: &HeaderMap) -> Option<Response> {
    auth.resource
        .paths()
        .iter()
        .any(|p| p == path)
        .then(|| serve(auth, headers))
}

fn serve(auth: &Authenticator, headers: &HeaderMap) -> Response {
    let mut resp = (StatusCode::OK, axum::Json(auth.resource.document(headers))).into_response();
    // The document is public, and browser-based clients fetch it from another origin.
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(configured: Option<&str>, path: &str) -> Resource {
        Resource {
            configured: configured.map(|u| url::Url::parse(u).unwrap()),
            endpoint_path: path.into(),
            authorization_servers: vec!["https://issuer.example".into()],
            scopes_supported: vec![],
        }
    }

    fn host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, h.parse().unwrap());
        m
    }

    #[test]
    fn the_resource_is_derived_from_the_request_unless_configured() {
        let r = resource(None, "/mcp");
        assert_eq!(r.resource(&host("gw:8080")), "http://gw:8080/mcp");
        let mut h = host("gw.example");
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(r.resource(&h), "https://gw.example/mcp");
        assert_eq!(
            r.metadata_url(&h),
            "https://gw.example/.well-known/oauth-protected-resource/mcp"
        );
        let r = resource(Some("https://public.example/gw/mcp"), "/mcp");
        assert_eq!(
            r.resource(&host("internal")),
            "https://public.example/gw/mcp"
        );
        assert_eq!(
            r.metadata_url(&host("internal")),
            "https://public.example/.well-known/oauth-protected-resource/gw/mcp"
        );
        assert_eq!(
            r.paths(),
            [
                WELL_KNOWN,
                "/.well-known/oauth-protected-resource/mcp",
                "/.well-known/oauth-protected-resource/gw/mcp"
            ]
        );
    }

    #[test]
    fn the_document_lists_what_is_configured() {
        let doc = resource(None, "/mcp").document(&host("gw"));
        assert_eq!(
            doc,
            json!({"resource": "http://gw/mcp", "bearer_methods_supported": ["header"],
                "authorization_servers": ["https://issuer.example"]})
        );
    }

    #[test]
    fn challenges_quote_safely() {
        assert_eq!(challenge(&[]), "Bearer");
        assert_eq!(
            challenge(&[
                ("error", "invalid_token"),
                ("error_description", "bad \"x\"\\\n")
            ]),
            "Bearer error=\"invalid_token\", error_description=\"bad ?x???\""
        );
    }
}
