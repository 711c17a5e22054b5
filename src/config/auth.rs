//! The `auth` section: its YAML shape, and the checked form the authenticator runs on.
//!
//! API keys given as `file` or `env` are read here, while the configuration is validated, and
//! kept only as SHA-256 digests; no message and no `Debug` output ever contains a key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ConfigError;
use super::section::duration;

/// Default `jwt.leeway`: clock skew tolerated on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default `jwt.jwks_cache`: how long fetched keys are used before they are fetched again.
pub const DEFAULT_JWKS_CACHE: Duration = Duration::from_secs(10 * 60);
/// Default `jwt.jwks_cooldown`: least time between two fetches of the key set, so tokens
/// naming unknown keys cannot make the gateway hammer the issuer.
pub const DEFAULT_JWKS_COOLDOWN: Duration = Duration::from_secs(10);
/// Largest API key file read at startup.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The `auth` section, checked. Empty (the default) means no authentication.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    pub api_keys: Vec<ApiKey>,
    pub jwt: Option<JwtConfig>,
    /// Scopes every caller must hold; a valid credential lacking one gets 403.
    pub required_scopes: Vec<String>,
    /// The RFC 9728 `resource`; `None` derives it from the request's Host and `path`.
    pub resource: Option<url::Url>,
    /// Authorization servers advertised in the metadata; defaults to the JWT issuer.
    pub authorization_servers: Vec<String>,
    /// Scopes advertised in the metadata; defaults to `required_scopes`.
    pub scopes_supported: Vec<String>,
}

/// One static API key, by the SHA-256 digest of its text.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The principal's subject.
    pub name: String,
    pub digest: [u8; 32],
    pub scopes: BTreeSet<String>,
    /// Where the key came from (`sha256`, `file` or `env`), for `Debug`.
    pub source: &'static str,
}

/// Where the JWT signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    Url(url::Url),
    File(PathBuf),
}

/// JWT bearer tokens, verified against the issuer's key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    pub issuer: String,
    pub audience: Vec<String>,
    pub jwks: JwksSource,
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    pub jwks_cache: Duration,
    pub jwks_cooldown: Duration,
    pub scope_claim: String,
    pub subject_claim: String,
}

impl AuthConfig {
    /// Parses and checks the `auth` section, reading key files and the process environment.
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        let parsed: RawAuth = super::section::section("auth", raw, errors);
        resolve(parsed, &|name| std::env::var(name).ok(), errors)
    }

    /// Whether any way of authenticating is configured.
    pub fn is_enabled(&self) -> bool {
        !self.api_keys.is_empty() || self.jwt.is_some()
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("api_keys", &self.api_keys)
            .field("jwt", &self.jwt)
            .field("required_scopes", &self.required_scopes)
            .field("resource", &self.resource.as_ref().map(url::Url::as_str))
            .field("authorization_servers", &self.authorization_servers)
            .field("scopes_supported", &self.scopes_supported)
            .finish()
    }
}

impl fmt::Debug for ApiKey {
    // The digest is left out too: it identifies the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The SHA-256 digest of a key's text.
pub fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

// ---- the YAML shape ----

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawAuth {
    api_keys: Vec<RawApiKey>,
    jwt: Option<RawJwt>,
    required_scopes: Vec<String>,
    resource: Option<String>,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    name: String,
    sha256: Option<String>,
    file: Option<PathBuf>,
    env: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    issuer: Option<String>,
    audience: Option<OneOrMany>,
    jwks_url: Option<String>,
    jwks_file: Option<PathBuf>,
    algorithms: Option<Vec<String>>,
    #[serde(default, with = "duration::option")]
    leeway: Option<Duration>,
    #[serde(default, with = "duration::option")]
    jwks_cache: Option<Duration>,
    #[serde(default, with = "duration::option")]
    jwks_cooldown: Option<Duration>,
    scope_claim: Option<String>,
    subject_claim: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

// ---- checks ----

/// Turns the parsed section into the checked one; `env` looks up environment variables.
fn resolve(
    raw: RawAuth,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) -> AuthConfig {
    let before = errors.len();
    let api_keys = api_keys(raw.api_keys, env, errors);
    let jwt = raw.jwt.and_then(|j| jwt(j, errors));
    let resource = raw.resource.and_then(|r| match url::Url::parse(&r) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.fragment().is_none() => Some(u),
        Ok(_) => {
            errors.push(ConfigError::new(
                "auth.resource",
                "must be an http(s) URL without a fragment",
            ));
            None
        }
        Err(e) => {
            errors.push(ConfigError::new(
                "auth.resource",
                format!("invalid URL: {e}"),
            ));
            None
        }
    });
    for (i, server) in raw.authorization_servers.iter().enumerate() {
        if url::Url::parse(server).is_err() {
            let path = format!("auth.authorization_servers[{i}]");
            errors.push(ConfigError::new(path, "not a valid URL"));
        }
    }
    scope_words("auth.required_scopes", &raw.required_scopes, errors);
    scope_words("auth.scopes_supported", &raw.scopes_supported, errors);
    let config = AuthConfig {
        authorization_servers: if raw.authorization_servers.is_empty() {
            jwt.iter().map(|j| j.issuer.clone()).collect()
        } else {
            raw.authorization_servers
        },
        scopes_supported: if raw.scopes_supported.is_empty() {
            raw.required_scopes.clone()
        } else {
            raw.scopes_supported
        },
        required_scopes: raw.required_scopes,
        api_keys,
        jwt,
        resource,
    };
    let other_settings = config.resource.is_some()
        || !config.required_scopes.is_empty()
        || !config.authorization_servers.is_empty()
        || !config.scopes_supported.is_empty();
    // Only when the methods themselves are fine: a broken `jwt` is reported as such.
    if !config.is_enabled() && other_settings && errors.len() == before {
        errors.push(ConfigError::new(
            "auth",
            "no api_keys and no jwt: configure one of them, or remove the auth section",
        ));
    }
    config
}

fn api_keys(
    raw: Vec<RawApiKey>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) -> Vec<ApiKey> {
    let mut keys: Vec<ApiKey> = Vec::new();
    let mut positions: Vec<usize> = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, key) in raw.into_iter().enumerate() {
        let at = format!("auth.api_keys[{i}]");
        if key.name.trim().is_empty() {
            errors.push(ConfigError::new(format!("{at}.name"), "must not be empty"));
        } else if is_reserved_subject(&key.name) {
            let msg = format!(
                "{:?} is reserved for the gateway's built-in principal; choose another name",
                key.name
            );
            errors.push(ConfigError::new(format!("{at}.name"), msg));
        } else if let Some(first) = names.insert(key.name.clone(), i) {
            let msg = format!("duplicate name (also auth.api_keys[{first}])");
            errors.push(ConfigError::new(format!("{at}.name"), msg));
        }
        scope_words(&format!("{at}.scopes"), &key.scopes, errors);
        let digest = match (key.sha256, key.file, key.env) {
            (Some(hex), None, None) => parse_hex_digest(&hex)
                .map(|d| (d, "sha256"))
                .map_err(|m| ConfigError::new(format!("{at}.sha256"), m)),
            (None, Some(path), None) => read_key_file(&path)
                .map(|k| (digest(k.as_bytes()), "file"))
                .map_err(|m| ConfigError::new(format!("{at}.file"), m)),
            // Surrounding whitespace is ignored, as in a file and in the presented key.
            (None, None, Some(var)) => match env(&var) {
                Some(k) if !k.trim().is_empty() => Ok((digest(k.trim().as_bytes()), "env")),
                Some(_) => Err(format!("environment variable {var} is empty")),
                None => Err(format!("environment variable {var} is not set")),
            }
            .map_err(|m| ConfigError::new(format!("{at}.env"), m)),
            _ => {
                let msg = "exactly one of sha256, file and env is required";
                errors.push(ConfigError::new(at, msg));
                continue;
            }
        };
        match digest {
            Ok((digest, source)) => {
                if let Some(j) = keys.iter().position(|k| k.digest == digest) {
                    let msg = format!("the same key as auth.api_keys[{}]", positions[j]);
                    errors.push(ConfigError::new(at, msg));
                }
                positions.push(i);
                keys.push(ApiKey {
                    name: key.name,
                    digest,
                    scopes: key.scopes.into_iter().collect(),
                    source,
                });
            }
            Err(e) => errors.push(e),
        }
    }
    keys
}

/// 64 hexadecimal digits, either case.
fn parse_hex_digest(hex: &str) -> Result<[u8; 32], String> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("must be 64 hexadecimal digits (the SHA-256 of the key)".into());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The key in a file, surrounding whitespace (a trailing newline) removed.
fn read_key_file(path: &std::path::Path) -> Result<String, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(format!("{shown} is larger than {MAX_KEY_FILE_BYTES} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let key = text.trim();
    if key.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    Ok(key.to_owned())
}

/// Scope tokens are non-empty and hold no spaces or quotes (RFC 6749 §3.3).
fn scope_words(path: &str, scopes: &[String], errors: &mut Vec<ConfigError>) {
    for (i, s) in scopes.iter().enumerate() {
        let ok = !s.is_empty()
            && s.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b))
            && !s.contains('\\');
        if !ok {
            let msg = "a scope is printable ASCII without spaces, quotes or backslashes";
            errors.push(ConfigError::new(format!("{path}[{i}]"), msg));
        }
    }
}

fn jwt(raw: RawJwt, errors: &mut Vec<ConfigError>) -> Option<JwtConfig> {
    let before = errors.len();
    let mut missing = |field: &str, what: &str| {
        errors.push(ConfigError::new(
            format!("auth.jwt.{field}"),
            what.to_owned(),
        ));
    };
    let issuer = raw.issuer.filter(|s| !s.trim().is_empty());
    if issuer.is_none() {
        missing("issuer", "required: the `iss` tokens must carry");
    }
    let audience = match raw.audience {
        Some(OneOrMany::One(a)) => vec![a],
        Some(OneOrMany::Many(list)) => list,
        None => Vec::new(),
    };
    if audience.iter().all(|a| a.trim().is_empty()) {
        missing("audience", "required: the `aud` value(s) tokens must carry");
    }
    let jwks = match (raw.jwks_url, raw.jwks_file) {
        (Some(_), Some(_)) => {
            missing("jwks_url", "give jwks_url or jwks_file, not both");
            None
        }
        (None, None) => {
            missing(
                "jwks_url",
                "required (or jwks_file): where the signing keys are",
            );
            None
        }
        (Some(u), None) => jwks_url(&u, errors).map(JwksSource::Url),
        (None, Some(path)) => match super::jwks::check_file(&path) {
            Ok(()) => Some(JwksSource::File(path)),
            Err(e) => {
                errors.push(ConfigError::new("auth.jwt.jwks_file", e));
                None
            }
        },
    };
    let algorithms = algorithms(raw.algorithms, errors);
    let jwks_cache = raw.jwks_cache.unwrap_or(DEFAULT_JWKS_CACHE);
    if jwks_cache.is_zero() {
        errors.push(ConfigError::new(
            "auth.jwt.jwks_cache",
            "must be greater than zero",
        ));
    }
    let claim =
        |value: Option<String>, field: &str, default: &str, errors: &mut Vec<ConfigError>| {
            let v = value.unwrap_or_else(|| default.to_owned());
            if v.trim().is_empty() {
                errors.push(ConfigError::new(
                    format!("auth.jwt.{field}"),
                    "must not be empty",
                ));
            }
            v
        };
    let scope_claim = claim(raw.scope_claim, "scope_claim", "scope", errors);
    let subject_claim = claim(raw.subject_claim, "subject_claim", "sub", errors);
    if errors.len() > before {
        return None;
    }
    Some(JwtConfig {
        issuer: issuer?,
        audience: audience
            .into_iter()
            .filter(|a| !a.trim().is_empty())
            .collect(),
        jwks: jwks?,
        algorithms,
        leeway: raw.leeway.unwrap_or(DEFAULT_LEEWAY),
        jwks_cache,
        jwks_cooldown: raw.jwks_cooldown.unwrap_or(DEFAULT_JWKS_COOLDOWN),
        scope_claim,
        subject_claim,
    })
}

/// An `https` URL; plain `http` only to a loopback host, since whoever can alter the key set
/// in transit can mint tokens.
fn jwks_url(text: &str, errors: &mut Vec<ConfigError>) -> Option<url::Url> {
    let problem = match url::Url::parse(text) {
        Ok(u) if u.scheme() == "https" => return Some(u),
        Ok(u) if u.scheme() == "http" && is_loopback(&u) => return Some(u),
        Ok(u) if u.scheme() == "http" => {
            "plain http is accepted for loopback hosts only; use https".to_owned()
        }
        Ok(_) => "must be an https URL".to_owned(),
        Err(e) => format!("invalid URL: {e}"),
    };
    errors.push(ConfigError::new("auth.jwt.jwks_url", problem));
    None
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Asymmetric algorithms only: a key set publishes public keys, and a shared secret in one
/// would let anyone who can read it mint tokens.
fn algorithms(raw: Option<Vec<String>>, errors: &mut Vec<ConfigError>) -> Vec<Algorithm> {
    const ALLOWED: [(&str, Algorithm); 9] = [
        ("RS256", Algorithm::RS256),
        ("RS384", Algorithm::RS384),
        ("RS512", Algorithm::RS512),
        ("PS256", Algorithm::PS256),
        ("PS384", Algorithm::PS384),
        ("PS512", Algorithm::PS512),
        ("ES256", Algorithm::ES256),
        ("ES384", Algorithm::ES384),
        ("EdDSA", Algorithm::EdDSA),
    ];
    let Some(names) = raw else {
        return vec![Algorithm::RS256];
    };
    if names.is_empty() {
        errors.push(ConfigError::new(
            "auth.jwt.algorithms",
            "must list at least one algorithm",
        ));
    }
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match ALLOWED.iter().find(|(n, _)| n == name) {
            Some((_, alg)) if !out.contains(alg) => out.push(*alg),
            Some(_) => {}
            None => {
                let known: Vec<&str> = ALLOWED.iter().map(|(n, _)| *n).collect();
                let why = if name.starts_with("HS") {
                    format!("{name:?} is a shared-secret algorithm, not accepted with a key set")
                } else {
                    format!("unknown algorithm {name:?}")
                };
                let msg = format!("{why}; expected one of {}", known.join(", "));
                errors.push(ConfigError::new(format!("auth.jwt.algorithms[{i}]"), msg));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
/// How the caller proved who it is. Deserialized from the [`AuthMethod::as_str`] labels
/// (policy `who.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// No authentication is configured for this face: every caller is `anonymous`.
    Anonymous,
    /// The stdio face: the local user who started the gateway, trusted.
    Local,
    /// A static API key or bearer token from the configuration.
    ApiKey,
    /// A JWT validated against the configured issuer's keys.
    Jwt,
}

impl AuthMethod {
    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::Local => "local",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Jwt => "jwt",
        }
    }
}

/// Subjects the gateway gives its built-in principals ([`Principal::local`] and
/// [`Principal::anonymous`]). No API key may be named so and no JWT may claim one, so a
/// rule or bucket about `local` cannot be reached by a remote caller who picked the name.
pub const RESERVED_SUBJECTS: [&str; 2] = ["local", "anonymous"];

/// Whether `subject` is one of the [`RESERVED_SUBJECTS`].
pub fn is_reserved_subject(subject: &str) -> bool {
    RESERVED_SUBJECTS.contains(&subject)
}
