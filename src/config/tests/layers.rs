//! Defaults, the full example, the environment and CLI layers, and `${VAR}` expansion.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{error_lines, no_env, parse, write_file};
use crate::config::{
    CollisionPolicy, Config, Environment, Overrides, ProtocolMode, SessionMode, TransportConfig,
    from_yaml_str, load, load_with_env,
};

const FULL_EXAMPLE: &str = r#"
listen: 127.0.0.1:8080
path: /mcp
separator: "__"
max_name_length: 64
page_size: 100
collisions: first_wins
session_idle_timeout: 30m
shutdown_grace: 10s
max_body_bytes: 4194304
seal_key: ${MANIFOLD_SEAL_KEY}
security:
  dns_rebinding_protection: auto
  allowed_hosts: [mcp.example.com:8443]
  allowed_origins: [https://App.Example.com]
upstreams:
  demo:
    command: manifold
    args: [demo]
    env: {LOG: "1"}
    cwd: /tmp
    prefix: demo
    timeout: 60s
    tools:     {allow: ["*"], deny: ["danger_*"]}
    prompts:   {allow: ["greet*"], deny: []}
    resources: {deny: ["file:///etc/*"]}
    session: per_session
  remote:
    url: https://example.com/mcp
    headers: {Authorization: "Bearer ${TOKEN}"}
    transport: streamable_http
    protocol: stateless
"#;

fn example_env(name: &str) -> Option<String> {
    match name {
        "MANIFOLD_SEAL_KEY" => Some("00".repeat(32)),
        "TOKEN" => Some("t0ken".to_owned()),
        _ => None,
    }
}

#[test]
fn an_empty_file_gives_the_defaults() {
    let config = parse("").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.session_idle_timeout, Duration::from_secs(1800));
    assert!(config.security.dns_rebinding_protection);
    assert_eq!(
        parse("# only a comment\nupstreams:\n").unwrap(),
        Config::default()
    );
}

#[test]
fn the_full_example_parses() {
    let config = from_yaml_str(FULL_EXAMPLE, &example_env).unwrap();
    assert_eq!(config.collisions, CollisionPolicy::FirstWins);
    assert_eq!(config.seal_key, Some([0; 32]));
    assert_eq!(config.security.allowed_hosts, ["mcp.example.com:8443"]);
    assert_eq!(config.security.allowed_origins, ["https://app.example.com"]);
    let names: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["demo", "remote"]);

    let demo = &config.upstreams[0];
    assert_eq!(demo.session, SessionMode::PerSession);
    assert_eq!(
        demo.protocol,
        ProtocolMode::Auto,
        "auto unless said otherwise"
    );
    assert!(demo.tools.allows("search") && !demo.tools.allows("danger_rm"));
    assert!(demo.prompts.allows("greeting") && !demo.prompts.allows("other"));
    assert!(!demo.resources.allows("file:///etc/passwd"));
    let TransportConfig::Stdio {
        command,
        args,
        env,
        cwd,
    } = &demo.transport
    else {
        panic!("demo should be stdio");
    };
    assert_eq!(
        (command.as_str(), args.as_slice()),
        ("manifold", ["demo".to_owned()].as_slice())
    );
    assert_eq!(env, &BTreeMap::from([("LOG".to_owned(), "1".to_owned())]));
    assert_eq!(cwd.as_deref(), Some(std::path::Path::new("/tmp")));

    let remote = &config.upstreams[1];
    assert_eq!(
        (remote.prefix.as_str(), remote.timeout),
        ("remote", Duration::from_secs(60))
    );
    let TransportConfig::StreamableHttp { url, headers } = &remote.transport else {
        panic!("remote should be streamable HTTP");
    };
    assert_eq!(url.as_str(), "https://example.com/mcp");
    assert_eq!(headers["Authorization"], "Bearer t0ken");
    assert_eq!(remote.protocol, ProtocolMode::Stateless);
}

#[test]
fn protocol_handshake_is_accepted_on_every_transport() {
    let yaml = "upstreams:\n  old:\n    url: http://127.0.0.1:9000/sse\n    transport: sse\n    protocol: handshake\n  cli:\n    command: x\n    protocol: handshake\n";
    let config = parse(yaml).unwrap();
    assert!(
        config
            .upstreams
            .iter()
            .all(|u| u.protocol == ProtocolMode::Handshake)
    );
}

#[test]
fn the_older_spellings_of_protocol_still_name_the_same_eras() {
    let yaml = "upstreams:\n  a:\n    command: x\n    protocol: legacy\n  b:\n    command: x\n    protocol: modern\n";
    let config = parse(yaml).unwrap();
    let modes: Vec<ProtocolMode> = config.upstreams.iter().map(|u| u.protocol).collect();
    assert_eq!(modes, [ProtocolMode::Handshake, ProtocolMode::Stateless]);
}

#[test]
fn sse_transport_and_integer_seconds() {
    let yaml = "upstreams:\n  old:\n    url: http://127.0.0.1:9000/sse\n    transport: sse\n    timeout: 5\n";
    let upstream = &parse(yaml).unwrap().upstreams[0];
    assert_eq!(upstream.transport.kind(), "sse");
    assert_eq!(upstream.timeout, Duration::from_secs(5));
}

#[test]
fn environment_layer_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        &dir,
        "gateway.yaml",
        "listen: 127.0.0.1:1000\npage_size: 10\n",
    );
    let env = Environment::from_pairs([
        ("MANIFOLD_PAGE_SIZE", "50"),
        ("MANIFOLD_SECURITY__DNS_REBINDING_PROTECTION", "off"),
        ("MANIFOLD_SESSION_IDLE_TIMEOUT", "90"),
        ("MANIFOLD_LOG", "debug"), // not a setting: ignored
    ]);
    let config = load_with_env(&path, &Overrides::default(), &env).unwrap();
    assert_eq!(config.page_size, 50);
    assert_eq!(config.listen.to_string(), "127.0.0.1:1000");
    assert!(!config.security.dns_rebinding_protection);
    assert_eq!(config.session_idle_timeout, Duration::from_secs(90));
}

#[test]
fn cli_override_beats_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(&dir, "gateway.yaml", "listen: 127.0.0.1:1000\n");
    let env = Environment::from_pairs([("MANIFOLD_LISTEN", "127.0.0.1:2000")]);
    let from_env = load_with_env(&path, &Overrides::default(), &env).unwrap();
    assert_eq!(from_env.listen.to_string(), "127.0.0.1:2000");
    let overrides = Overrides {
        listen: Some("0.0.0.0:3000".to_owned()),
    };
    let config = load_with_env(&path, &overrides, &env).unwrap();
    assert_eq!(config.listen.to_string(), "0.0.0.0:3000");
}

#[test]
fn environment_values_stay_text_unless_they_are_lists() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(&dir, "gateway.yaml", "");
    let digits = "0".repeat(63) + "1";
    let env = Environment::from_pairs([
        ("MANIFOLD_SEAL_KEY", digits.as_str()),
        (
            "MANIFOLD_SECURITY__ALLOWED_HOSTS",
            "[a.example.com, b.example.com:8443]",
        ),
        ("MANIFOLD_SECURITY__DNS_REBINDING_PROTECTION", "false"),
        ("MANIFOLD_MAX_BODY_BYTES", "1024"),
    ]);
    let config = load_with_env(&path, &Overrides::default(), &env).unwrap();
    let mut key = [0; 32];
    key[31] = 1;
    assert_eq!(config.seal_key, Some(key));
    assert_eq!(
        config.security.allowed_hosts,
        ["a.example.com", "b.example.com:8443"]
    );
    assert!(!config.security.dns_rebinding_protection);
    assert_eq!(config.max_body_bytes, 1024);
}

#[test]
fn environment_layer_reaches_into_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        &dir,
        "gateway.yaml",
        "upstreams:\n  demo:\n    command: demo\n",
    );
    let env = Environment::from_pairs([("MANIFOLD_UPSTREAMS__DEMO__TIMEOUT", "5s")]);
    let config = load_with_env(&path, &Overrides::default(), &env).unwrap();
    assert_eq!(config.upstreams[0].timeout, Duration::from_secs(5));
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.yaml");
    let lines = error_lines(load(&path, &Overrides::default()));
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with(&format!("{}: cannot read config file", path.display())),
        "{lines:?}"
    );
}

#[test]
fn variables_defaults_and_escapes_are_expanded() {
    let yaml = r#"
path: ${MCP_PATH:-/default}
upstreams:
  a:
    command: ${CMD}
    args: ["$${NOT_EXPANDED}", "${CMD}-x"]
    env: {NESTED: "${CMD:-unused}"}
"#;
    let env = |name: &str| (name == "CMD").then(|| "server".to_owned());
    let config = from_yaml_str(yaml, &env).unwrap();
    assert_eq!(config.path, "/default");
    let TransportConfig::Stdio {
        command, args, env, ..
    } = &config.upstreams[0].transport
    else {
        panic!("stdio expected");
    };
    assert_eq!(command, "server");
    assert_eq!(args, &["${NOT_EXPANDED}", "server-x"]);
    assert_eq!(env["NESTED"], "server");
}

#[test]
fn a_missing_variable_is_named_and_no_value_leaks() {
    let yaml = r#"
upstreams:
  github:
    url: https://api.example.com/mcp
    headers: {Authorization: "Bearer ${GITHUB_TOKEN}", X-Other: "${PRESENT}"}
"#;
    let env = |name: &str| (name == "PRESENT").then(|| "hunter2".to_owned());
    let lines = error_lines(from_yaml_str(yaml, &env));
    assert_eq!(
        lines,
        ["upstreams.github.headers.Authorization: environment variable GITHUB_TOKEN is not set"]
    );
    assert!(!lines.concat().contains("hunter2"));
}

#[test]
fn numbers_may_come_from_variables() {
    let env = |name: &str| (name == "PAGE").then(|| "25".to_owned());
    let config =
        from_yaml_str("page_size: ${PAGE}\nmax_body_bytes: ${BODY:-1024}\n", &env).unwrap();
    assert_eq!((config.page_size, config.max_body_bytes), (25, 1024));
    assert!(from_yaml_str("page_size: 7", &no_env).is_ok());
}
