//! An upstream's catalog: its tools, prompts, resources and templates, fetched page by page
//! and filtered by the upstream's allow/deny globs. The gateway serves listings from these
//! snapshots and refreshes one kind when the upstream says it changed.
//!
//! A 2026-07-28 upstream also says how long each listing may be cached (`ttlMs`,
//! `cacheScope`); the hint of every page of a listing is merged and kept per kind, for the
//! router to merge across upstreams. A handshake-era upstream gives none: [`CacheHint::NONE`].

use serde_json::{Value, json};

use super::ServerInfo;
use super::peer::Peer;
pub use crate::aggregate::catalog::{Kind, Listing, UpstreamCatalog, next_generation};
use crate::config::{NameFilter, UpstreamConfig};
use crate::protocol::Era;
use crate::protocol::ErrorObject;
use crate::protocol::envelope::CacheHint;

/// Most pages read from one upstream listing: a server that keeps answering `nextCursor`
/// forever must not keep the gateway paging forever.
pub const MAX_LIST_PAGES: usize = 1000;

/// Fetches every kind the server declared; a kind whose listing fails is logged and left
/// empty, so one broken listing does not take the upstream's other features down. A
/// listing refused as a request of the wrong era (see [`refuses_era`]) fails the whole
/// fetch: the connection was opened in an era the server does not speak.
pub async fn fetch_all(
    peer: &Peer,
    info: &ServerInfo,
    config: &UpstreamConfig,
) -> Result<UpstreamCatalog, String> {
    let mut catalog = UpstreamCatalog::empty();
    for kind in Kind::ALL {
        if !info.has(kind.capability()) {
            continue;
        }
        match fetch(peer, config, kind).await {
            Ok(listing) => catalog.set(kind, listing),
            Err(e) if refuses_era(&e) => {
                return Err(format!("{} refused: {}", kind.method(), e.message));
            }
            Err(e) => {
                tracing::warn!(upstream = %config.name, list = kind.method(), error = %e, "Listing failed")
            }
        }
    }
    Ok(catalog)
}

/// Whether an error to a listing says the request was of the wrong era rather than that
/// the listing failed: an unsupported version (-32022), or a request refused outright
/// (-32600), as a handshake-era server answers an enveloped request before `initialize`,
/// and as a stateless one answers a request without the envelope.
pub fn refuses_era(error: &ErrorObject) -> bool {
    use crate::protocol::codes;
    matches!(
        error.code,
        codes::UNSUPPORTED_PROTOCOL_VERSION | codes::INVALID_REQUEST
    )
}

/// Fetches every page of one listing and keeps the items the filters allow. The hints of
/// the pages merge to the shortest lifetime and the most private scope.
pub async fn fetch(
    peer: &Peer,
    config: &UpstreamConfig,
    kind: Kind,
) -> Result<Listing, ErrorObject> {
    let filter = filter_for(config, kind);
    let mut items = Vec::new();
    let mut hint: Option<CacheHint> = None;
    let mut cursor: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..MAX_LIST_PAGES {
        let params = cursor.as_ref().map(|c| json!({ "cursor": c }));
        let page = match peer
            .request(kind.method(), params.clone(), config.timeout)
            .await
        {
            // A listing is idempotent: one that failed to reach the server is sent again.
            Err(e) if config.retry_lists && super::is_connection_error(&e) => {
                tracing::debug!(upstream = %config.name, list = kind.method(), error = %e.message, "Listing failed to reach the upstream; sending it again");
                peer.request(kind.method(), params, config.timeout).await?
            }
            other => other?,
        };
        let page_hint = if peer.era() == Era::Stateless {
            CacheHint::of(&page)
        } else {
            CacheHint::NONE
        };
        hint = Some(hint.map_or(page_hint, |h| h.merge(page_hint)));
        let Some(Value::Array(batch)) = page.get(kind.field()) else {
            return Err(ErrorObject::internal(format!(
                "{} result has no '{}' array",
                kind.method(),
                kind.field()
            )));
        };
        items.extend(
            batch
                .iter()
                .filter(|item| allowed(item, kind, filter))
                .filter(|item| {
                    kind != Kind::Tools || peer.era() == Era::Handshake || headers_ok(item, config)
                })
                .cloned(),
        );
        match page.get("nextCursor") {
            Some(Value::String(next)) if seen.insert(next.clone()) => cursor = Some(next.clone()),
            Some(Value::String(next)) => {
                return Err(ErrorObject::internal(format!(
                    "{} repeated cursor {next:?}",
                    kind.method()
                )));
            }
            _ => {
                let hint = hint.unwrap_or(CacheHint::NONE);
                return Ok(Listing { items, hint });
            }
        }
    }
    Err(ErrorObject::internal(format!(
        "{} returned more than {MAX_LIST_PAGES} pages",
        kind.method()
    )))
}

/// Whether a tool's `x-mcp-header` annotations are ones the gateway can honour. SEP-2243
/// asks HTTP clients to drop (and log) a tool with an invalid one, since its calls could not
/// carry the headers the server expects: a name that is not an HTTP token, names equal but
/// for case, or a property that is not a string, integer or boolean.
fn headers_ok(tool: &Value, config: &UpstreamConfig) -> bool {
    if matches!(
        config.transport,
        crate::config::TransportConfig::Stdio { .. }
    ) {
        return true;
    }
    let Some(schema) = tool.get("inputSchema") else {
        return true;
    };
    match invalid_header(schema) {
        None => true,
        Some(why) => {
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            tracing::warn!(upstream = %config.name, tool = name, reason = %why, "Dropped a tool with an invalid x-mcp-header");
            false
        }
    }
}

/// What is wrong with a schema's `x-mcp-header` annotations, if anything.
pub fn invalid_header(schema: &Value) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    for header in crate::protocol::headers::param_headers(schema) {
        let token = !header.name.is_empty()
            && header
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Some(format!("{:?} is not an HTTP token", header.name));
        }
        if !seen.insert(header.name.to_ascii_lowercase()) {
            return Some(format!("{:?} is named twice", header.name));
        }
        let mut property = schema;
        for key in &header.path {
            property = &property["properties"][key];
        }
        let kind = property.get("type").and_then(Value::as_str);
        if !matches!(kind, Some("string" | "integer" | "boolean")) {
            return Some(format!("{:?} annotates a {kind:?} property", header.name));
        }
    }
    None
}

fn filter_for(config: &UpstreamConfig, kind: Kind) -> &NameFilter {
    match kind {
        Kind::Tools => &config.tools,
        Kind::Prompts => &config.prompts,
        Kind::Resources | Kind::ResourceTemplates => &config.resources,
    }
}

fn allowed(item: &Value, kind: Kind, filter: &NameFilter) -> bool {
    match item.get(kind.key()).and_then(Value::as_str) {
        Some(key) => filter.allows(key),
        None => {
            tracing::warn!(
                list = kind.method(),
                "Dropped a listed item without '{}'",
                kind.key()
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::invalid_header;

    #[test]
    fn header_annotations_must_be_tokens_unique_and_on_simple_types() {
        let ok = json!({"properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "opts": {"type": "object", "properties": {"n": {"type": "integer", "x-mcp-header": "N"}}},
        }});
        assert_eq!(invalid_header(&ok), None);
        for bad in [
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "Bad Name"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": ""}}}),
            json!({"properties": {
                "a": {"type": "string", "x-mcp-header": "Dup"},
                "b": {"type": "string", "x-mcp-header": "dup"},
            }}),
            json!({"properties": {"a": {"type": "number", "x-mcp-header": "Ratio"}}}),
        ] {
            assert!(invalid_header(&bad).is_some(), "{bad}");
        }
    }
}
