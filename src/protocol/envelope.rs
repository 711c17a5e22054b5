//! The 2026-07-28 per-request envelope (`params._meta`), result types and cache hints.
//!
//! A stateless request carries its revision and the client's capabilities in `params._meta`
//! on every request (no handshake). Every stateless result says what it is (`resultType`), and
//! listings and reads say how long they may be cached (`ttlMs`, `cacheScope`). These are the
//! pure pieces both faces of the gateway use: the downstream face reads and checks what a
//! client sent, the upstream face writes the gateway's own envelope for each upstream hop.

use serde_json::{Map, Value, json};

use super::{Era, ErrorObject};

pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// The envelope keys that belong to one hop: the gateway reads the client's and writes its
/// own on the way upstream, never forwards them.
pub const HOP_KEYS: [&str; 4] = [
    PROTOCOL_VERSION,
    CLIENT_CAPABILITIES,
    CLIENT_INFO,
    LOG_LEVEL,
];

/// `clientInfo`'s place in [`HOP_KEYS`]: the one hop key nothing reads (see [`Envelope`]).
pub const CLIENT_INFO_AT: usize = 2;
const _: () = assert!(matches!(
    HOP_KEYS[CLIENT_INFO_AT].as_bytes(),
    b"io.modelcontextprotocol/clientInfo"
));

pub const RESULT_TYPE: &str = "resultType";
pub const COMPLETE: &str = "complete";
pub const INPUT_REQUIRED: &str = "input_required";

/// The client's envelope keys as a stateless parse read them out of `params._meta`
/// ([`crate::protocol::Message::parse_stateless`]), for [`Envelope::from_taken`]: what
/// [`Envelope::take`] takes, without building them into the params first.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Taken {
    /// Whether the request had a `_meta` object (one left empty is not kept in the params).
    pub meta: bool,
    /// The values of [`HOP_KEYS`], in that order; `clientInfo`'s is never kept (see
    /// [`Envelope`]).
    pub keys: [Option<Value>; 4],
}

/// What a stateless client declared on one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub version: String,
    /// A ClientCapabilities object (`{}` = no optional features).
    pub client_capabilities: Value,
    // No `clientInfo`: the gateway reads nothing of the client's (it sends its own upstream),
    // so a stateless parse checks it as JSON and skips it rather than building it.
    /// Opt-in to `notifications/message` for this request (deprecated feature).
    pub log_level: Option<String>,
}

/// Whether a request is in the stateless era: its `_meta` names a protocol version. The
/// version key alone is the signal (a `_meta` with only `progressToken` is not).
pub fn declares_version(params: Option<&Value>) -> bool {
    meta(params).is_some_and(|m| super::field::get(m, PROTOCOL_VERSION).is_some())
}

/// The request's `_meta`, when it is an object.
pub fn meta(params: Option<&Value>) -> Option<&Map<String, Value>> {
    super::field::of(params?, "_meta")?.as_object()
}

impl Envelope {
    /// Reads the envelope of a request. Missing or mistyped required keys are -32602 (the
    /// spec's "invalid params", HTTP 400); the revision itself is checked by
    /// [`Envelope::check_version`], after the HTTP headers (the order the reference SDK uses).
    pub fn read(params: Option<&Value>) -> Result<Envelope, ErrorObject> {
        let (version, meta) = Envelope::checked(params)?;
        Ok(Envelope {
            version,
            client_capabilities: super::field::get(meta, CLIENT_CAPABILITIES)
                .cloned()
                .unwrap_or_else(|| json!({})),
            log_level: meta
                .get(LOG_LEVEL)
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// The checks of [`Envelope::read`]: the revision, and the `_meta` it is in.
    fn checked(params: Option<&Value>) -> Result<(String, &Map<String, Value>), ErrorObject> {
        let meta = meta(params);
        let version = Envelope::check_keys(
            meta.is_some(),
            meta.and_then(|m| super::field::get(m, PROTOCOL_VERSION)),
            meta.and_then(|m| super::field::get(m, CLIENT_CAPABILITIES)),
        )?;
        Ok((version, meta.expect("checked")))
    }

    /// The checks of [`Envelope::read`] on the pieces: whether `_meta` is an object, its
    /// revision and its capabilities. Returns the revision.
    fn check_keys(
        meta: bool,
        version: Option<&Value>,
        capabilities: Option<&Value>,
    ) -> Result<String, ErrorObject> {
        if !meta {
            return Err(ErrorObject::invalid_params(format!(
                "missing params._meta with {PROTOCOL_VERSION} and {CLIENT_CAPABILITIES}"
            )));
        }
        let version = match version {
            Some(Value::String(v)) => v.clone(),
            Some(_) => {
                return Err(ErrorObject::invalid_params(format!(
                    "_meta[{PROTOCOL_VERSION:?}] must be a string"
                )));
            }
            None => {
                return Err(ErrorObject::invalid_params(format!(
                    "missing _meta[{PROTOCOL_VERSION:?}]"
                )));
            }
        };
        match capabilities {
            Some(Value::Object(_)) => {}
            Some(_) => {
                return Err(ErrorObject::invalid_params(format!(
                    "_meta[{CLIENT_CAPABILITIES:?}] must be an object"
                )));
            }
            None => {
                return Err(ErrorObject::invalid_params(format!(
                    "missing _meta[{CLIENT_CAPABILITIES:?}]"
                )));
            }
        }
        Ok(version)
    }

    /// [`Envelope::take`] for keys the parse already took out of `_meta` (see
    /// [`crate::protocol::Message::parse_stateless`]): the same checks, the same errors.
    pub fn from_taken(taken: Taken) -> Result<Envelope, ErrorObject> {
        let [version, capabilities, _, log_level] = taken.keys;
        let version = Envelope::check_keys(taken.meta, version.as_ref(), capabilities.as_ref())?;
        Ok(Envelope {
            version,
            client_capabilities: capabilities.unwrap_or_else(|| json!({})),
            log_level: log_level.and_then(|l| l.as_str().map(str::to_owned)),
        })
    }

    /// [`Envelope::read`], taking the envelope's keys out of `_meta` (the other members stay,
    /// in their order): they belong to the client's hop, the gateway writes its own upstream,
    /// so they are moved here rather than copied and stripped later. Checked by
    /// [`Envelope::read`] first: an error leaves `params` as it was.
    pub fn take(params: &mut Option<Value>) -> Result<Envelope, ErrorObject> {
        let (version, _) = Envelope::checked(params.as_ref())?;
        let mut taken: [Option<Value>; 4] = Default::default();
        if let Some(meta) = params
            .as_mut()
            .and_then(|p| p.get_mut("_meta"))
            .and_then(Value::as_object_mut)
        {
            meta.retain(|key, value| match HOP_KEYS.iter().position(|k| k == key) {
                Some(i) => {
                    taken[i] = Some(std::mem::take(value));
                    false
                }
                None => true,
            });
            // Nothing of the client's own left: no `_meta` goes upstream, as before.
            if meta.is_empty()
                && let Some(Value::Object(p)) = params.as_mut()
            {
                p.remove("_meta");
            }
        }
        let [_, capabilities, _, log_level] = taken;
        Ok(Envelope {
            version,
            client_capabilities: capabilities.unwrap_or_else(|| json!({})),
            log_level: log_level.and_then(|l| l.as_str().map(str::to_owned)),
        })
    }

    /// -32022 naming every revision the gateway speaks, unless the request's is stateless and
    /// supported.
    pub fn check_version(&self) -> Result<(), ErrorObject> {
        if Era::of(&self.version) == Some(Era::Stateless) {
            Ok(())
        } else {
            Err(ErrorObject::unsupported_version(&self.version))
        }
    }
}

/// Takes the 2026-07-28 hop keys out of a request's `_meta` for a handshake-era upstream
/// (a `_meta` left empty goes). Other `_meta` keys (`progressToken`, trace context, unknown
/// ones) are kept.
pub fn strip_hop_keys(params: &mut Option<Value>) {
    if !declares_any_hop_key(params.as_ref()) {
        return;
    }
    let Some(Value::Object(obj)) = params.as_mut() else {
        return;
    };
    let Some(Value::Object(meta)) = obj.get_mut("_meta") else {
        return;
    };
    // One pass, no key hashed, the other members left in their order.
    meta.retain(|key, _| !HOP_KEYS.contains(&key.as_str()));
    if meta.is_empty() {
        obj.remove("_meta");
    }
}

/// Readies a request's params for a 2026-07-28 upstream hop and returns the gateway's
/// envelope for it as JSON members (for [`crate::protocol::Request::hop_meta`]): the
/// revision, `capabilities`, the gateway as client, and the log level when one is asked
/// for. The client's hop keys leave `_meta` (a `_meta` that is not an object goes); its
/// other members stay. Written as text, it is never built (and hashed) as values.
pub fn for_stateless_hop(
    params: &mut Option<Value>,
    capabilities: &Value,
    log_level: Option<&str>,
) -> Box<str> {
    if let Some(Value::Object(obj)) = params.as_mut() {
        match obj.get_mut("_meta") {
            Some(Value::Object(meta)) if meta.keys().any(|k| HOP_KEYS.contains(&k.as_str())) => {
                meta.retain(|key, _| !HOP_KEYS.contains(&key.as_str()));
            }
            Some(Value::Object(_)) | None => {}
            Some(_) => {
                obj.remove("_meta");
            }
        }
    }
    // The revision and the keys are the same on every hop: written once.
    static HEAD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut out = String::new();
        super::compact::string(&mut out, PROTOCOL_VERSION);
        out.push(':');
        super::compact::string(&mut out, Era::Stateless.latest());
        out.push(',');
        super::compact::string(&mut out, CLIENT_CAPABILITIES);
        out.push(':');
        out
    });
    static INFO: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut out = String::from(",");
        super::compact::string(&mut out, CLIENT_INFO);
        out.push(':');
        out.push_str(gateway_info_json());
        out
    });
    let mut out = String::with_capacity(HEAD.len() + INFO.len() + 64);
    out.push_str(&HEAD);
    super::compact::value(&mut out, capabilities);
    out.push_str(&INFO);
    if let Some(level) = log_level {
        out.push(',');
        super::compact::string(&mut out, LOG_LEVEL);
        out.push(':');
        super::compact::string(&mut out, level);
    }
    out.into_boxed_str()
}

fn declares_any_hop_key(params: Option<&Value>) -> bool {
    meta(params).is_some_and(|m| m.keys().any(|k| HOP_KEYS.contains(&k.as_str())))
}

/// The gateway as an MCP implementation (`clientInfo` upstream, `serverInfo` downstream).
pub fn gateway_info() -> Value {
    // Built once: every stateless answer and upstream request carries a copy, and a copy
    // costs less than building (and hashing) the object again.
    static INFO: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
        json!({
            "name": "manifold",
            "title": "Manifold MCP gateway",
            "version": env!("CARGO_PKG_VERSION"),
        })
    });
    INFO.clone()
}

/// [`gateway_info`] as JSON text, written once: what a result's `serverInfo` and an upstream
/// request's `clientInfo` carry when they are written as text.
pub fn gateway_info_json() -> &'static str {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut out = String::new();
        super::compact::value(&mut out, &gateway_info());
        out
    });
    &TEXT
}

/// A result's type; a missing one (a handshake-era server) means complete.
pub fn result_type(result: &Value) -> &str {
    super::field::of(result, RESULT_TYPE)
        .and_then(Value::as_str)
        .unwrap_or(COMPLETE)
}

/// Shapes a result for a 2026-07-28 client: `resultType` (complete unless already set) and
/// the gateway's `serverInfo` in `_meta`.
pub fn for_stateless(result: &mut Value) {
    let Some(obj) = result.as_object_mut() else {
        return;
    };
    obj.entry(RESULT_TYPE)
        .or_insert_with(|| Value::from(COMPLETE));
    let meta = obj.entry("_meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(SERVER_INFO.into(), gateway_info());
    }
}

/// Shapes a result for a handshake-era client: the stateless-only fields (`resultType`, cache
/// hints) are removed, since strict handshake clients may reject unknown fields.
pub fn for_handshake(result: &mut Value) {
    if let Some(obj) = result.as_object_mut() {
        obj.remove(RESULT_TYPE);
        obj.remove(TTL_MS);
        obj.remove(CACHE_SCOPE);
        if let Some(meta) = obj.get_mut("_meta").and_then(Value::as_object_mut) {
            meta.remove(SERVER_INFO);
        }
    }
}

pub const TTL_MS: &str = "ttlMs";
pub const CACHE_SCOPE: &str = "cacheScope";

/// How long a result may be cached, and by whom (SEP-2549).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheHint {
    pub ttl_ms: u64,
    /// `"private"`: only within the same authorization context; otherwise `"public"`.
    pub private: bool,
}

impl CacheHint {
    /// Nothing known (a handshake-era server): not cacheable at all. The scope is left to
    /// whoever answers (the gateway makes its own answers private when they depend on
    /// the caller).
    pub const NONE: CacheHint = CacheHint {
        ttl_ms: 0,
        private: false,
    };

    /// The hint a result carries; a missing or negative `ttlMs` is 0, a missing scope private.
    pub fn of(result: &Value) -> CacheHint {
        let ttl_ms = result
            .get(TTL_MS)
            .and_then(Value::as_i64)
            .map_or(0, |t| t.max(0) as u64);
        let private = result.get(CACHE_SCOPE).and_then(Value::as_str) != Some("public");
        CacheHint { ttl_ms, private }
    }

    /// The conservative merge of two hints: the shorter lifetime, private if either is.
    pub fn merge(self, other: CacheHint) -> CacheHint {
        CacheHint {
            ttl_ms: self.ttl_ms.min(other.ttl_ms),
            private: self.private || other.private,
        }
    }

    /// Writes `ttlMs` and `cacheScope` into a result object.
    pub fn write(self, result: &mut Value) {
        if let Some(obj) = result.as_object_mut() {
            obj.insert(TTL_MS.into(), Value::from(self.ttl_ms));
            let scope = if self.private { "private" } else { "public" };
            obj.insert(CACHE_SCOPE.into(), Value::from(scope));
        }
    }
}

#[cfg(test)]
mod tests;
