//! The desktop-client `mcpServers` format.

use std::time::Duration;

use super::{error_lines, parse, write_file};
use crate::config::{Environment, Overrides, TransportConfig, load_with_env};

const DESKTOP: &str = r#"{
  "mcpServers": {
    "File_System": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
      "env": {"TOKEN": "${FS_TOKEN}"},
      "autoApprove": ["read_file"],
      "description": "files"
    },
    "remote.api": {"url": "https://api.example.com/mcp", "headers": {"Authorization": "Bearer x"}, "type": "streamableHttp"},
    "legacy": {"url": "https://old.example.com/sse", "type": "sse"},
    "off": {"command": "nothing", "disabled": true, "weird": 1}
  },
  "globalShortcut": "Ctrl+Space"
}"#;

fn load_json(
    text: &str,
    env: &Environment,
) -> Result<crate::config::Config, crate::config::ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(&dir, "claude_desktop_config.json", text);
    load_with_env(&path, &Overrides::default(), env)
}

#[test]
fn desktop_servers_become_upstreams() {
    let env = Environment::from_pairs([("FS_TOKEN", "abc")]);
    let config = load_json(DESKTOP, &env).unwrap();
    let names: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["file-system", "legacy", "remote-api"]);
    let TransportConfig::Stdio {
        command, args, env, ..
    } = &config.upstreams[0].transport
    else {
        panic!("stdio expected");
    };
    assert_eq!(
        (command.as_str(), args.len(), env["TOKEN"].as_str()),
        ("npx", 3, "abc")
    );
    assert_eq!(config.upstreams[1].transport.kind(), "sse");
    assert_eq!(config.upstreams[2].transport.kind(), "streamable_http");
    assert_eq!(config.upstreams[2].prefix, "remote-api");
    assert_eq!(config.upstreams[2].timeout, Duration::from_secs(60));
}

#[test]
fn desktop_format_is_detected_in_yaml_too() {
    let yaml = "mcpServers:\n  demo:\n    command: demo\n    type: stdio\n";
    let config = parse(yaml).unwrap();
    assert_eq!(config.upstreams[0].name, "demo");
}

#[test]
fn desktop_errors_use_the_names_as_written() {
    let json = r#"{"mcpServers": {
        "My_Server": {"command": "a", "envFile": ".env"},
        "Bad": {"url": "not a url", "type": "carrier-pigeon"},
        "Rel": {"url": "/relative"},
        "Tok": {"command": "t", "env": {"K": "${MISSING}"}}
    }}"#;
    let lines = error_lines(load_json(json, &Environment::default()));
    assert_eq!(
        lines,
        [
            "mcpServers.My_Server.envFile: unknown field, expected one of command, args, env, cwd, url, headers, type, disabled",
            "mcpServers.Bad.type: unknown value \"carrier-pigeon\", expected stdio, sse, http, streamable-http or streamableHttp",
        ]
    );
    let json = r#"{"mcpServers": {"Rel": {"url": "/relative"}, "Tok": {"command": "t", "env": {"K": "${MISSING}"}}}}"#;
    // Every problem at once: the missing variable and the invalid URL of another entry.
    assert_eq!(
        error_lines(load_json(json, &Environment::default())),
        [
            "mcpServers.Tok.env.K: environment variable MISSING is not set",
            "mcpServers.Rel.url: relative URL without a base"
        ]
    );
    let json = r#"{"mcpServers": {"Rel": {"url": "/relative"}}}"#;
    assert_eq!(
        error_lines(load_json(json, &Environment::default())),
        ["mcpServers.Rel.url: relative URL without a base"]
    );
}

#[test]
fn names_that_normalise_alike_clash() {
    let json = r#"{"mcpServers": {"my server": {"command": "a"}, "My_Server": {"command": "b"}}}"#;
    assert_eq!(
        error_lines(load_json(json, &Environment::default())),
        ["mcpServers.My_Server: normalises to \"my-server\", like mcpServers.my server"]
    );
}

#[test]
fn a_normalised_name_is_still_validated() {
    let json = r#"{"mcpServers": {"ünïcode": {"command": "a"}}}"#;
    assert_eq!(
        error_lines(load_json(json, &Environment::default())),
        ["mcpServers.ünïcode: upstream names must match [a-z0-9-]{1,32}"]
    );
}

#[test]
fn type_needs_the_matching_field() {
    let json = r#"{"mcpServers": {"s": {"command": "a", "type": "sse"}}}"#;
    assert_eq!(
        error_lines(load_json(json, &Environment::default())),
        ["mcpServers.s.type: \"sse\" requires url"]
    );
    assert!(
        error_lines(load_json("{}", &Environment::default()))[0].starts_with("mcpServers: missing")
    );
}
