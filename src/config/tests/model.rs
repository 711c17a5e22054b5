//! Properties of the validated model: resolved defaults, filters, keys, redaction.

use super::{error_lines, parse};
use crate::config::{Config, TransportConfig};

#[test]
fn dns_rebinding_auto_follows_loopback() {
    assert!(
        parse("listen: 127.0.0.1:8080")
            .unwrap()
            .security
            .dns_rebinding_protection
    );
    assert!(
        parse("listen: \"[::1]:8080\"")
            .unwrap()
            .security
            .dns_rebinding_protection
    );
    assert!(
        !parse("listen: 0.0.0.0:8080")
            .unwrap()
            .security
            .dns_rebinding_protection
    );
    let forced = "listen: 0.0.0.0:8080\nsecurity: {dns_rebinding_protection: on}\n";
    assert!(parse(forced).unwrap().security.dns_rebinding_protection);
    let disabled = "security: {dns_rebinding_protection: false}\n";
    assert!(!parse(disabled).unwrap().security.dns_rebinding_protection);
}

#[test]
fn filters_combine_allow_and_deny_and_cross_slashes() {
    let yaml = r#"
upstreams:
  fs:
    command: fs
    tools: {allow: ["read_*", "list_*"], deny: ["read_secret*"]}
    resources: {allow: ["file:///srv/*"]}
"#;
    let config = parse(yaml).unwrap();
    let fs = &config.upstreams[0];
    assert!(fs.tools.allows("read_file"));
    assert!(!fs.tools.allows("read_secrets"));
    assert!(!fs.tools.allows("write_file"));
    assert!(fs.resources.allows("file:///srv/a/b/c.txt"));
    assert!(!fs.resources.allows("file:///etc/passwd"));
    assert!(fs.prompts.allows("anything"));
}

#[test]
fn seal_key_forms() {
    let hex = "ab".repeat(32);
    assert_eq!(
        parse(&format!("seal_key: {hex}")).unwrap().seal_key,
        Some([0xab; 32])
    );
    let base64 = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";
    assert_eq!(
        parse(&format!("seal_key: {base64}")).unwrap().seal_key,
        Some([0xab; 32])
    );
    let unpadded = base64.trim_end_matches('=');
    assert_eq!(
        parse(&format!("seal_key: {unpadded}")).unwrap().seal_key,
        Some([0xab; 32])
    );
    assert_eq!(parse("seal_key: ''").unwrap().seal_key, None);
    let lines = error_lines(parse(&format!("seal_key: {}", "ab".repeat(31))));
    assert_eq!(
        lines,
        ["seal_key: must be 32 bytes, but decodes to 46 bytes"]
    );
}

#[test]
fn debug_redacts_secrets() {
    let yaml = r#"
seal_key: "0000000000000000000000000000000000000000000000000000000000000001"
upstreams:
  gh:
    url: https://user:pw@api.example.com/mcp?key=k3y
    headers: {Authorization: "Bearer sup3rs3cret"}
  local:
    command: srv
    env: {API_KEY: "env-s3cret"}
"#;
    let config = parse(yaml).unwrap();
    let transport = format!("{:?}", config.upstreams[0].transport);
    assert!(
        transport.contains("Authorization") && transport.contains("<redacted>"),
        "{transport}"
    );
    let everything = format!("{config:?}");
    for secret in ["sup3rs3cret", "env-s3cret", "pw@", "k3y"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
    assert!(everything.contains("API_KEY"));
    assert!(matches!(
        config.upstreams[1].transport,
        TransportConfig::Stdio { .. }
    ));
}

#[test]
fn test_defaults_bind_port_zero() {
    let config = Config::default_for_tests();
    assert_eq!(config.listen.port(), 0);
    assert!(config.upstreams.is_empty());
}

#[test]
fn first_event_wait_defaults_to_a_second_and_may_be_zero() {
    use std::time::Duration;
    assert_eq!(
        parse("listen: 127.0.0.1:8080").unwrap().first_event_wait,
        Duration::from_secs(1)
    );
    assert_eq!(
        parse("first_event_wait: 250ms").unwrap().first_event_wait,
        Duration::from_millis(250)
    );
    assert_eq!(
        parse("first_event_wait: 0").unwrap().first_event_wait,
        Duration::ZERO
    );
    assert!(parse("first_event_wait: soon").is_err());
}
