//! Validation of the `upstreams` map: names, prefixes, transports, filters.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::error::{ConfigError, KeyPath};
use super::model::{
    DEFAULT_UPSTREAM_TIMEOUT, NameFilter, ProtocolMode, SessionMode, TaskMode, TransportConfig,
    UpstreamConfig,
};
use super::raw::{RawFilter, RawUpstream};
use super::validate::{choice, duration};

/// Longest upstream name; names double as default prefixes, so they stay short.
const MAX_UPSTREAM_NAME_LEN: usize = 32;

/// Validates every upstream. The map is sorted by name, so the result is too, and when two
/// upstreams claim the same prefix the one that sorts later is reported.
pub(crate) fn validate_upstreams(
    raw: BTreeMap<String, RawUpstream>,
    separator: Option<&str>,
    errors: &mut Vec<ConfigError>,
) -> Vec<UpstreamConfig> {
    let mut owners = BTreeMap::new();
    let mut upstreams = Vec::with_capacity(raw.len());
    for (name, upstream) in raw {
        let path = KeyPath::root("upstreams").key(&name);
        let name_ok = is_upstream_name(&name);
        if !name_ok {
            let message =
                format!("upstream names must match [a-z0-9-]{{1,{MAX_UPSTREAM_NAME_LEN}}}");
            errors.push(path.error(message));
        }
        let explicit = upstream.prefix.as_deref();
        let prefix = explicit.unwrap_or(&name).to_owned();
        // A defaulted prefix of a bad name would only repeat the name error.
        if explicit.is_some() || name_ok {
            check_prefix(&prefix, separator, &path.key("prefix"), errors);
        }
        claim_prefix(&mut owners, &prefix, &name, &path, errors);
        if let Some(config) = upstream_config(name, prefix, upstream, &path, errors) {
            upstreams.push(config);
        }
    }
    upstreams
}

/// Records `name` as the owner of `prefix`, or reports the upstream that owns it already.
fn claim_prefix(
    owners: &mut BTreeMap<String, String>,
    prefix: &str,
    name: &str,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
) {
    // Several empty prefixes are fine: the `collisions` policy handles clashes at run time.
    if prefix.is_empty() {
        return;
    }
    match owners.get(prefix) {
        Some(owner) => {
            let message = format!("{prefix:?} is already the prefix of upstream {owner}");
            errors.push(path.key("prefix").error(message));
        }
        None => {
            owners.insert(prefix.to_owned(), name.to_owned());
        }
    }
}

fn upstream_config(
    name: String,
    prefix: String,
    raw: RawUpstream,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
) -> Option<UpstreamConfig> {
    let transport = transport(&raw, path, errors);
    let timeout = raw
        .timeout
        .as_ref()
        .map_or(DEFAULT_UPSTREAM_TIMEOUT, |timeout| {
            duration(path.key("timeout").as_str(), timeout, false, errors)
        });
    let session_options = [
        ("shared", SessionMode::Shared),
        ("per_session", SessionMode::PerSession),
    ];
    let session = raw
        .session
        .as_deref()
        .map_or(Some(SessionMode::Shared), |session| {
            choice(&path.key("session"), session, &session_options, errors)
        });
    let protocol = protocol(&raw, path, errors);
    let max_concurrency = raw.max_concurrency.map(|n| {
        super::validate::bounded(
            path.key("max_concurrency").as_str(),
            n,
            1,
            usize::MAX,
            errors,
        )
    });
    let tool_timeouts = by_glob(
        raw.tool_timeouts,
        &path.key("tool_timeouts"),
        errors,
        |at, raw, errors| Some(duration(at.as_str(), raw, false, errors)),
    );
    let tasks = raw
        .tasks
        .as_deref()
        .map_or(Some(TaskMode::OnRequest), |mode| {
            choice(&path.key("tasks"), mode, &TASK_MODES, errors)
        });
    let tool_tasks = by_glob(
        raw.tool_tasks,
        &path.key("tool_tasks"),
        errors,
        |at, mode: &String, errors| choice(at, mode, &TASK_MODES, errors),
    );
    let identity_headers = raw.identity_headers.unwrap_or_default();
    let circuit = circuit(raw.circuit.as_ref(), path, errors);
    check_headers_named(&identity_headers, &path.key("identity_headers"), errors);
    Some(UpstreamConfig {
        circuit,
        retry_lists: raw.retry_lists.unwrap_or(true),
        max_concurrency,
        tool_timeouts,
        tasks: tasks?,
        tool_tasks,
        identity_headers,
        tools: filter(&path.key("tools"), raw.tools, errors),
        prompts: filter(&path.key("prompts"), raw.prompts, errors),
        resources: filter(&path.key("resources"), raw.resources, errors),
        transport: transport?,
        session: session?,
        protocol: protocol?,
        name,
        prefix,
        timeout,
    })
}

/// `protocol`: `auto` (default), `handshake` or `stateless` (the older spellings `legacy` and
/// `modern` are still accepted). The HTTP+SSE transport exists only in the 2024-11-05
/// revision, so `stateless` over `transport: sse` can never work.
fn protocol(
    raw: &RawUpstream,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
) -> Option<ProtocolMode> {
    let options = [
        ("auto", ProtocolMode::Auto),
        ("handshake", ProtocolMode::Handshake),
        ("stateless", ProtocolMode::Stateless),
    ];
    let Some(value) = raw.protocol.as_deref() else {
        return Some(ProtocolMode::Auto);
    };
    // The spellings of earlier releases, which named the eras by age, are still read.
    let value = match value {
        "legacy" => "handshake",
        "modern" => "stateless",
        other => other,
    };
    let mode = choice(&path.key("protocol"), value, &options, errors)?;
    let sse = raw.url.is_some() && raw.transport.as_deref() == Some("sse");
    if sse && mode == ProtocolMode::Stateless {
        let message =
            "stateless is not possible with transport: sse (HTTP+SSE is a 2024-11-05 transport)";
        errors.push(path.key("protocol").error(message));
        return None;
    }
    Some(mode)
}

/// Checks a prefix against the name alphabet and the separator: exposed names are split at the
/// first separator, so a prefix must not contain it, nor end with its first characters.
fn check_prefix(
    prefix: &str,
    separator: Option<&str>,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
) {
    if !prefix.chars().all(is_name_char) {
        errors.push(path.error("must match [a-z0-9-]*"));
        return;
    }
    let Some(separator) = separator.filter(|_| !prefix.is_empty()) else {
        return;
    };
    if prefix.contains(separator) {
        errors.push(path.error(format!("must not contain the separator {separator:?}")));
    } else if format!("{prefix}{separator}").find(separator) != Some(prefix.len()) {
        // e.g. prefix `a-` with separator `--`: `a---x` would split as `a` + `-x`.
        let message = format!("must not end with the start of the separator {separator:?}");
        errors.push(path.error(message));
    }
}

fn is_upstream_name(name: &str) -> bool {
    (1..=MAX_UPSTREAM_NAME_LEN).contains(&name.len()) && name.chars().all(is_name_char)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// Exactly one of `command` and `url` picks the transport; fields of the other kind are errors.
fn transport(
    raw: &RawUpstream,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
) -> Option<TransportConfig> {
    match (&raw.command, &raw.url) {
        (Some(command), None) => {
            let stdio = stdio(command, raw, path, errors);
            let misplaced = [
                ("headers", raw.headers.is_some()),
                ("transport", raw.transport.is_some()),
            ];
            reject(path, &misplaced, "url", errors);
            stdio
        }
        (None, Some(url)) => {
            let http = http(url, raw, path, errors);
            let misplaced = [
                ("args", raw.args.is_some()),
                ("env", raw.env.is_some()),
                ("cwd", raw.cwd.is_some()),
                ("session", raw.session.is_some()),
            ];
            reject(path, &misplaced, "command", errors);
            http
        }
        _ => {
            errors.push(path.error("set exactly one of command or url"));
            None
        }
    }
}

fn reject(path: &KeyPath, fields: &[(&str, bool)], owner: &str, errors: &mut Vec<ConfigError>) {
    for (field, _) in fields.iter().filter(|(_, present)| *present) {
        errors.push(path.key(field).error(format!("only valid with {owner}")));
    }
}

fn stdio(
    command: &str,
    raw: &RawUpstream,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
) -> Option<TransportConfig> {
    let before = errors.len();
    if command.trim().is_empty() {
        errors.push(path.key("command").error("must not be empty"));
    }
    let env = raw.env.clone().unwrap_or_default();
    for (key, value) in &env {
        let env_path = path.key("env").key(key);
        if key.is_empty() || key.contains(['=', '\0']) {
            errors.push(env_path.error("variable names must be non-empty, without '=' or NUL"));
        } else if value.contains('\0') {
            errors.push(env_path.error("must not contain NUL"));
        }
    }
    let cwd = raw.cwd.as_deref().map(PathBuf::from);
    if cwd.as_ref().is_some_and(|cwd| cwd.as_os_str().is_empty()) {
        errors.push(path.key("cwd").error("must not be empty"));
    }
    (errors.len() == before).then(|| TransportConfig::Stdio {
        command: command.to_owned(),
        args: raw.args.clone().unwrap_or_default(),
        env,
        cwd,
    })
}

fn http(
    text: &str,
    raw: &RawUpstream,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
) -> Option<TransportConfig> {
    let url_path = path.key("url");
    // The parse error never quotes the URL, which may carry a token in its query.
    let url = match url::Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
        Ok(_) => {
            errors.push(url_path.error("must be an http or https URL"));
            None
        }
        Err(error) => {
            errors.push(url_path.error(error.to_string()));
            None
        }
    };
    let headers = raw.headers.clone().unwrap_or_default();
    let headers_ok = check_headers(&path.key("headers"), &headers, errors);
    let sse = match raw.transport.as_deref() {
        None => Some(false),
        Some(kind) => {
            let options = [("streamable_http", false), ("sse", true)];
            choice(&path.key("transport"), kind, &options, errors)
        }
    };
    match (url?, sse?, headers_ok) {
        (url, false, true) => Some(TransportConfig::StreamableHttp { url, headers }),
        (url, true, true) => Some(TransportConfig::Sse { url, headers }),
        (_, _, false) => None,
    }
}

/// Header names must be HTTP tokens and values single-line, or the HTTP client would refuse
/// them at the first request instead of at startup.
fn check_headers(
    path: &KeyPath,
    headers: &BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
) -> bool {
    let before = errors.len();
    for (name, value) in headers {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            errors.push(path.key(name).error("is not a valid HTTP header name"));
        } else if value.contains(['\r', '\n', '\0']) {
            errors.push(path.key(name).error("must not contain line breaks or NUL"));
        }
    }
    errors.len() == before
}

fn filter(path: &KeyPath, raw: RawFilter, errors: &mut Vec<ConfigError>) -> NameFilter {
    NameFilter::new(raw.allow, raw.deny).unwrap_or_else(|problems| {
        for problem in problems {
            errors.push(
                path.key(problem.list)
                    .index(problem.index)
                    .error(problem.to_string()),
            );
        }
        NameFilter::allow_all()
    })
}

/// The values of `tasks` and `tool_tasks`.
const TASK_MODES: [(&str, TaskMode); 3] = [
    ("never", TaskMode::Never),
    ("on_request", TaskMode::OnRequest),
    ("always", TaskMode::Always),
];

/// A glob → value mapping (`tool_timeouts`, `tool_tasks`), most specific first (most
/// literal characters, then by text), so `report_*` beats `*` whatever the file's order
/// (which the config layers do not keep: they sort mappings).
fn by_glob<R, T>(
    raw: Option<BTreeMap<String, R>>,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
    mut value: impl FnMut(&KeyPath, &R, &mut Vec<ConfigError>) -> Option<T>,
) -> Vec<(super::model::Pattern, T)> {
    let mut rules = Vec::new();
    for (glob, raw) in raw.unwrap_or_default() {
        let at = path.key(&glob);
        let parsed = value(&at, &raw, errors);
        match (super::model::Pattern::new(&glob), parsed) {
            (Ok(pattern), Some(parsed)) => rules.push((pattern, parsed)),
            (Err(message), _) => errors.push(at.error(message)),
            (Ok(_), None) => {}
        }
    }
    let literal = |p: &super::model::Pattern| {
        p.as_str()
            .chars()
            .filter(|c| !matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | ','))
            .count()
    };
    rules.sort_by(|(a, _), (b, _)| {
        literal(b)
            .cmp(&literal(a))
            .then_with(|| a.as_str().cmp(b.as_str()))
    });
    rules
}

/// Header names of `identity_headers` must be valid HTTP header names.
fn check_headers_named(
    headers: &BTreeMap<String, String>,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
) {
    for name in headers.keys() {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.push(path.key(name).error("not a valid HTTP header name"));
        }
    }
}

/// `circuit`: failures in a row (0 = never open) and the cooldown before a probe.
fn circuit(
    raw: Option<&super::raw::RawCircuit>,
    path: &KeyPath,
    errors: &mut Vec<ConfigError>,
) -> super::model::Circuit {
    let mut circuit = super::model::Circuit::default();
    let Some(raw) = raw else {
        return circuit;
    };
    let at = path.key("circuit");
    if let Some(n) = raw.failures {
        let n = super::validate::bounded(at.key("failures").as_str(), n, 0, 1_000_000, errors);
        circuit.failures = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(cooldown) = &raw.cooldown {
        circuit.cooldown = duration(at.key("cooldown").as_str(), cooldown, false, errors);
    }
    circuit
}
