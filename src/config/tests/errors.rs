//! Every problem is reported, each with the path of the setting it is about.

use super::{error_lines, parse};

#[test]
fn unknown_top_level_key() {
    let lines = error_lines(parse("listen: 127.0.0.1:1\nlisten_addr: x\n"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("listen_addr: unknown field, expected one of listen, path,"),
        "{lines:?}"
    );
}

#[test]
fn unknown_upstream_keys_in_several_upstreams_are_all_reported() {
    let yaml =
        "upstreams:\n  demo:\n    comand: x\n  other:\n    command: y\n    tools: {alow: []}\n";
    let lines = error_lines(parse(yaml));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "upstreams.demo.comand: unknown field, expected one of command, args, env,"
        ),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        "upstreams.other.tools.alow: unknown field, expected one of allow, deny"
    );
}

#[test]
fn type_errors_carry_the_path_but_not_the_value() {
    let yaml = "page_size: [1]\nupstreams:\n  a:\n    command: x\n    args: [ok, {no: 1}]\n";
    let lines = error_lines(parse(yaml));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[0],
        "page_size: invalid type: found a list, expected a non-negative integer"
    );
    assert!(
        lines[1].starts_with("upstreams.a.args[1]: invalid type: found a mapping"),
        "{lines:?}"
    );
    let lines = error_lines(parse("upstreams: [a]\ncollisions: {}\n"));
    assert_eq!(
        lines,
        [
            "collisions: invalid type: found a mapping, expected a string",
            "upstreams: invalid type: found a list, expected a map",
        ]
    );
    let lines = error_lines(parse("seal_key: 12345\n"));
    assert!(!lines.concat().contains("12345"), "{lines:?}");
}

#[test]
fn every_validation_problem_at_once() {
    let yaml = r#"
listen: localhost:99999
path: mcp
separator: "::"
max_name_length: 0
page_size: 0
collisions: last_wins
session_idle_timeout: soon
shutdown_grace: 10s
max_body_bytes: 0
seal_key: AAECAw==
security:
  dns_rebinding_protection: maybe
  allowed_hosts: ["https://x.example.com/"]
  allowed_origins: ["https://x.example.com/path"]
upstreams:
  Bad_Name:
    command: x
  a:
    command: "  "
    headers: {X: y}
    tools: {allow: ["["]}
  b:
    url: https://b.example.com/mcp
    prefix: a
    args: [x]
    session: shared
    timeout: 0s
  github:
    url: /relative
    transport: websocket
  x:
    prefix: ""
"#;
    let lines = error_lines(parse(yaml));
    let expected = [
        "listen: invalid socket address \"localhost:99999\"",
        "path: must start with '/'",
        "separator: must be 1-8 characters from [A-Za-z0-9._-]",
        "max_name_length: must be between 1 and 128",
        "page_size: must be at least 1",
        "collisions: unknown value \"last_wins\", expected error or first_wins",
        "session_idle_timeout: invalid duration \"soon\": expected e.g. \"500ms\", \"10s\", \"30m\", \"1h\" or an integer number of seconds",
        "max_body_bytes: must be at least 1",
        "seal_key: must be 32 bytes, but decodes to 4 bytes",
        "security.dns_rebinding_protection: unknown value \"maybe\", expected auto, on or off",
        "security.allowed_hosts[0]: must be a host name or host:port, e.g. \"mcp.example.com:8443\"",
        "security.allowed_origins[0]: must be an origin such as \"https://app.example.com\" (scheme, host and port only)",
        "upstreams.Bad_Name: upstream names must match [a-z0-9-]{1,32}",
        "upstreams.a.command: must not be empty",
        "upstreams.a.headers: only valid with url",
        "upstreams.a.tools.allow[0]: invalid glob \"[\": unclosed character class; missing ']'",
        "upstreams.b.prefix: \"a\" is already the prefix of upstream a",
        "upstreams.b.args: only valid with command",
        "upstreams.b.session: only valid with command",
        "upstreams.b.timeout: must be greater than zero",
        "upstreams.github.url: relative URL without a base",
        "upstreams.github.transport: unknown value \"websocket\", expected streamable_http or sse",
        "upstreams.x: set exactly one of command or url",
    ];
    assert_eq!(lines, expected);
}

#[test]
fn prefixes_must_not_hold_the_separator() {
    let yaml = "separator: \"-\"\nupstreams:\n  a:\n    command: x\n    prefix: a-b\n";
    assert_eq!(
        error_lines(parse(yaml)),
        ["upstreams.a.prefix: must not contain the separator \"-\""]
    );
    // `a-` + `--` + `x` would read back as `a` + `-x`.
    let yaml = "separator: \"--\"\nupstreams:\n  a:\n    command: x\n    prefix: a-\n";
    assert_eq!(
        error_lines(parse(yaml)),
        ["upstreams.a.prefix: must not end with the start of the separator \"--\""]
    );
    let yaml = "upstreams:\n  a:\n    command: x\n    prefix: A!\n";
    assert_eq!(
        error_lines(parse(yaml)),
        ["upstreams.a.prefix: must match [a-z0-9-]*"]
    );
}

#[test]
fn several_empty_prefixes_are_allowed() {
    let yaml = "upstreams:\n  a: {command: x, prefix: ''}\n  b: {command: y, prefix: ''}\n";
    let config = parse(yaml).unwrap();
    assert!(
        config
            .upstreams
            .iter()
            .all(|upstream| upstream.prefix.is_empty())
    );
}

#[test]
fn both_command_and_url_is_an_error() {
    let yaml = "upstreams:\n  x:\n    command: a\n    url: https://example.com/\n";
    assert_eq!(
        error_lines(parse(yaml)),
        ["upstreams.x: set exactly one of command or url"]
    );
}

#[test]
fn bad_urls_and_headers() {
    let yaml = "upstreams:\n  f:\n    url: ftp://example.com/\n  h:\n    url: https://e.example/\n    headers: {\"Bad Name\": v, Ok: \"a\\nb\"}\n";
    assert_eq!(
        error_lines(parse(yaml)),
        [
            "upstreams.f.url: must be an http or https URL",
            "upstreams.h.headers.Bad Name: is not a valid HTTP header name",
            "upstreams.h.headers.Ok: must not contain line breaks or NUL",
        ]
    );
}

#[test]
fn syntax_errors_are_reported() {
    let lines = error_lines(parse("listen: [unclosed\n"));
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("invalid YAML:"), "{lines:?}");
    assert_eq!(
        error_lines(parse("- a\n- b\n")),
        ["the top level must be a mapping"]
    );
}

#[test]
fn errors_display_one_per_line() {
    let errors = parse("page_size: 0\nmax_body_bytes: 0\n").unwrap_err();
    assert_eq!(errors.len(), 2);
    assert_eq!(
        errors.to_string(),
        "page_size: must be at least 1\nmax_body_bytes: must be at least 1"
    );
}

#[test]
fn protocol_must_be_a_known_era_and_stateless_needs_more_than_sse() {
    let yaml = "upstreams:\n  a:\n    command: x\n    protocol: newest\n  b:\n    url: http://127.0.0.1:9/sse\n    transport: sse\n    protocol: stateless\n";
    assert_eq!(
        error_lines(parse(yaml)),
        [
            "upstreams.a.protocol: unknown value \"newest\", expected auto, handshake or stateless",
            "upstreams.b.protocol: stateless is not possible with transport: sse (HTTP+SSE is a 2024-11-05 transport)",
        ]
    );
}
