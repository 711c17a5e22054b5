//! Turns the raw shapes into the model, collecting every problem instead of stopping at one.
//!
//! Each check pushes its problems and returns a stand-in value, so later checks still run; the
//! stand-ins never escape because any problem makes the whole result an error.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::error::{ConfigError, ConfigErrors, KeyPath};
use super::model::{
    CollisionPolicy, Config, DEFAULT_LISTEN, MAX_NAME_LENGTH_LIMIT, ResponseMode, Security,
};
use super::raw::{RawConfig, RawDuration, RawSecurity};
use super::scalar::{parse_duration, parse_seal_key};
use super::upstream::validate_upstreams;

/// Longest accepted separator: long separators eat into the name-length budget for nothing.
const MAX_SEPARATOR_LEN: usize = 8;

/// Validates a fully deserialised configuration.
pub(crate) fn validate(raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let e = &mut errors;
    // Checked in document order, so the report reads top to bottom.
    let listen = listen(&raw.listen, e);
    let path = endpoint_path(raw.path, e);
    let separator = separator(&raw.separator, e);
    let config = Config {
        listen: listen.unwrap_or(DEFAULT_LISTEN),
        path,
        max_name_length: bounded(
            "max_name_length",
            raw.max_name_length,
            1,
            MAX_NAME_LENGTH_LIMIT,
            e,
        ),
        page_size: bounded("page_size", raw.page_size, 1, usize::MAX, e),
        collisions: collisions(&raw.collisions, e),
        session_idle_timeout: duration("session_idle_timeout", &raw.session_idle_timeout, false, e),
        shutdown_grace: duration("shutdown_grace", &raw.shutdown_grace, true, e),
        max_body_bytes: bounded("max_body_bytes", raw.max_body_bytes, 1, usize::MAX, e),
        response_mode: response_mode(&raw.response_mode, e),
        resume_window: duration("resume_window", &raw.resume_window, true, e),
        first_event_wait: duration("first_event_wait", &raw.first_event_wait, true, e),
        seal_key: seal_key(raw.seal_key.as_deref(), e),
        redis: super::redis::RedisConfig::from_raw(&raw.redis, e),
        security: security(raw.security, listen, e),
        upstreams: validate_upstreams(raw.upstreams, separator.as_deref(), e),
        separator: separator.unwrap_or_default(),
        auth: super::auth::AuthConfig::from_raw(&raw.auth, e),
        policy: super::policy::PolicyConfig::from_raw(&raw.policy, e),
        rate_limits: super::rate_limits::RateLimitConfig::from_raw(&raw.rate_limits, e),
        telemetry: super::telemetry::TelemetryConfig::from_raw(&raw.telemetry, e),
        metrics: super::metrics::MetricsConfig::from_raw(&raw.metrics, e),
        audit: super::audit::AuditConfig::from_raw(&raw.audit, e),
        tasks: super::tasks::TasksConfig::from_raw(&raw.tasks, e),
        connections: super::limits::ConnectionsConfig::from_raw(&raw.connections, e),
        sessions: super::limits::SessionsConfig::from_raw(&raw.sessions, e),
        buffers: super::buffers::BuffersConfig::from_raw(&raw.buffers, e),
    };
    let config = shared_redis_for_tasks(config);
    reserved_paths(&config, e);
    // Stage sections that name upstreams are checked against the upstreams list.
    super::policy::check(&config, e);
    super::rate_limits::check(&config, e);
    ConfigErrors::check(errors, config)
}

/// The top-level `redis` is the tasks' store too, unless `tasks.redis` names another.
fn shared_redis_for_tasks(mut config: Config) -> Config {
    if let Some(redis) = &config.redis
        && config.tasks.redis.is_none()
    {
        config.tasks.redis = Some(redis.url.clone());
        if config.tasks.redis_prefix == super::tasks::TasksConfig::default().redis_prefix {
            config.tasks.redis_prefix = redis.prefix.clone();
        }
    }
    config
}

/// The metrics endpoint must not shadow the MCP endpoint or the fixed routes.
fn reserved_paths(config: &Config, errors: &mut Vec<ConfigError>) {
    let metrics = &config.metrics.path;
    let fixed = ["/healthz", "/readyz", "/sse", "/message"];
    if config.metrics.enabled && (metrics == &config.path || fixed.contains(&metrics.as_str())) {
        errors.push(ConfigError::new(
            "metrics.path",
            format!("{metrics:?} is already the path of another endpoint"),
        ));
    }
}

/// Parses one of a fixed set of words, e.g. `error | first_wins`.
pub(crate) fn choice<T: Copy>(
    path: &KeyPath,
    value: &str,
    options: &[(&str, T)],
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    if let Some((_, parsed)) = options.iter().find(|(word, _)| *word == value) {
        return Some(*parsed);
    }
    let words: Vec<&str> = options.iter().map(|(word, _)| *word).collect();
    let expected = match words.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    errors.push(path.error(format!("unknown value {value:?}, expected {expected}")));
    None
}

/// Parses a duration; `allow_zero` is false where zero would make every request fail.
pub(crate) fn duration(
    path: &str,
    raw: &RawDuration,
    allow_zero: bool,
    errors: &mut Vec<ConfigError>,
) -> Duration {
    match parse_duration(raw) {
        Ok(parsed) if parsed.is_zero() && !allow_zero => {
            errors.push(ConfigError::new(path, "must be greater than zero"));
            parsed
        }
        Ok(parsed) => parsed,
        Err(error) => {
            errors.push(ConfigError::new(path, error.to_string()));
            Duration::ZERO
        }
    }
}

fn listen(text: &str, errors: &mut Vec<ConfigError>) -> Option<SocketAddr> {
    let parsed = text.trim().parse().ok();
    if parsed.is_none() {
        // Names such as `localhost` are refused on purpose: what they resolve to can change.
        let message = format!("invalid socket address {text:?}");
        errors.push(ConfigError::new("listen", message));
    }
    parsed
}

fn endpoint_path(path: String, errors: &mut Vec<ConfigError>) -> String {
    if !path.starts_with('/') {
        errors.push(ConfigError::new("path", "must start with '/'"));
    } else if path.contains(['?', '#']) || path.contains(char::is_whitespace) {
        errors.push(ConfigError::new(
            "path",
            "must not contain '?', '#' or whitespace",
        ));
    }
    path
}

/// The separator, or `None` when it is invalid (prefix checks against it are then skipped).
fn separator(separator: &str, errors: &mut Vec<ConfigError>) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let valid =
        (1..=MAX_SEPARATOR_LEN).contains(&separator.len()) && separator.chars().all(allowed);
    if !valid {
        errors.push(ConfigError::new(
            "separator",
            format!("must be 1-{MAX_SEPARATOR_LEN} characters from [A-Za-z0-9._-]"),
        ));
    }
    valid.then(|| separator.to_owned())
}

pub(crate) fn bounded(
    path: &str,
    value: u64,
    min: usize,
    max: usize,
    errors: &mut Vec<ConfigError>,
) -> usize {
    let converted = usize::try_from(value)
        .ok()
        .filter(|v| (min..=max).contains(v));
    if converted.is_none() {
        let message = match (min, max) {
            (min, usize::MAX) if usize::try_from(value).is_ok() => {
                format!("must be at least {min}")
            }
            (_, usize::MAX) => "is too large".to_owned(),
            (min, max) => format!("must be between {min} and {max}"),
        };
        errors.push(ConfigError::new(path, message));
    }
    converted.unwrap_or(min)
}

fn response_mode(value: &str, errors: &mut Vec<ConfigError>) -> ResponseMode {
    let options = [
        ("stream", ResponseMode::Stream),
        ("auto", ResponseMode::Auto),
    ];
    choice(&KeyPath::root("response_mode"), value, &options, errors).unwrap_or_default()
}

fn collisions(value: &str, errors: &mut Vec<ConfigError>) -> CollisionPolicy {
    let options = [
        ("error", CollisionPolicy::Error),
        ("first_wins", CollisionPolicy::FirstWins),
    ];
    choice(&KeyPath::root("collisions"), value, &options, errors).unwrap_or_default()
}

/// An absent or blank key means "none configured", so `seal_key: ${KEY:-}` can make it optional.
fn seal_key(text: Option<&str>, errors: &mut Vec<ConfigError>) -> Option<[u8; 32]> {
    let text = text.filter(|text| !text.trim().is_empty())?;
    parse_seal_key(text)
        .map_err(|error| errors.push(ConfigError::new("seal_key", error.to_string())))
        .ok()
}

fn security(
    raw: RawSecurity,
    listen: Option<SocketAddr>,
    errors: &mut Vec<ConfigError>,
) -> Security {
    let path = KeyPath::root("security");
    // An unparsable `listen` is already an error; assume loopback so `auto` errs towards safety.
    let loopback = listen.is_none_or(|address| is_loopback(address.ip()));
    let options = [("auto", loopback), ("on", true), ("off", false)];
    let mode = raw.dns_rebinding_protection.as_str();
    let dns_rebinding_protection = choice(
        &path.key("dns_rebinding_protection"),
        mode,
        &options,
        errors,
    )
    .unwrap_or(true);
    Security {
        dns_rebinding_protection,
        allowed_hosts: list(
            &path.key("allowed_hosts"),
            raw.allowed_hosts,
            allowed_host,
            errors,
        ),
        allowed_origins: list(
            &path.key("allowed_origins"),
            raw.allowed_origins,
            allowed_origin,
            errors,
        ),
    }
}

/// `::ffff:127.0.0.1` is loopback too, though `Ipv6Addr::is_loopback` says otherwise.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Checks and normalises each item of a list, reporting bad items by index.
fn list(
    path: &KeyPath,
    items: Vec<String>,
    check: fn(&str) -> Result<String, &'static str>,
    errors: &mut Vec<ConfigError>,
) -> Vec<String> {
    let mut accepted = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match check(item.trim()) {
            Ok(normalised) => accepted.push(normalised),
            Err(message) => errors.push(path.index(index).error(message)),
        }
    }
    accepted
}

/// `host` or `host:port`, lower-cased because Host comparisons ignore case.
fn allowed_host(host: &str) -> Result<String, &'static str> {
    let parsed = url::Url::parse(&format!("http://{host}/")).ok();
    let plain = parsed.is_some_and(|url| {
        url.path() == "/"
            && url.username().is_empty()
            && url.query().is_none()
            && url.fragment().is_none()
    });
    if plain && !host.is_empty() && !host.contains(['/', '@', '?', '#']) {
        Ok(host.to_ascii_lowercase())
    } else {
        Err("must be a host name or host:port, e.g. \"mcp.example.com:8443\"")
    }
}

/// An origin, normalised to `scheme://host[:port]` (default ports dropped, host lower-cased).
fn allowed_origin(origin: &str) -> Result<String, &'static str> {
    let message =
        "must be an origin such as \"https://app.example.com\" (scheme, host and port only)";
    let url = url::Url::parse(origin).map_err(|_| message)?;
    let bare = url.path() == "/"
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none();
    if !bare || !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(message);
    }
    Ok(url.origin().ascii_serialization())
}
