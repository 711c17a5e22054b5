//! The command line: `check` reports every configuration problem by path, `tools` prints the
//! merged catalog and fails when an upstream is down or names collide, the repository's own
//! gateway.yaml and desktop-client `mcpServers` files work, `--version` and `--help`.

mod support;

use std::path::Path;
use std::process::{Output, Stdio};

use serde_json::{Value, json};
use support::{WAIT, fixture_bin, manifold_bin, stdio_fixture};

/// Runs `manifold` with `args` in `dir` (bounded by [`WAIT`]), without any inherited
/// `MANIFOLD_*` settings (see [`support::hermetic`]).
fn manifold_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let child = support::hermetic(manifold_bin())
        .args(args)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn manifold");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(out) => out.expect("manifold output"),
        Err(_) => {
            support::signal(pid, "KILL");
            panic!("manifold {args:?} did not finish within {WAIT:?}");
        }
    }
}

/// Writes `text` as `name` in a fresh tempdir and runs `manifold <command> --config FILE`.
fn with_config(command: &[&str], name: &str, text: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(name);
    std::fs::write(&file, text).expect("write config");
    let mut args = command.to_vec();
    let file = file.display().to_string();
    args.extend(["--config", file.as_str()]);
    manifold_in(dir.path(), &args, env)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn check(yaml: &str, env: &[(&str, &str)]) -> Output {
    with_config(&["check"], "gateway.yaml", yaml, env)
}

fn assert_lines(out: &Output, lines: &[&str]) {
    let err = stderr(out);
    for line in lines {
        assert!(
            err.lines().any(|l| l.trim() == *line),
            "missing line {line:?} in stderr:\n{err}"
        );
    }
}

#[test]
fn check_lists_every_validation_problem_with_its_path() {
    let yaml = "listen: nowhere\npage_size: 0\nupstreams:\n  github:\n    url: /mcp\n  Bad_Name:\n    command: y\n  both:\n    command: x\n    url: http://127.0.0.1:1/mcp\n";
    let out = check(yaml, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_lines(
        &out,
        &[
            "listen: invalid socket address \"nowhere\"",
            "page_size: must be at least 1",
            "upstreams.github.url: relative URL without a base",
            "upstreams.Bad_Name: upstream names must match [a-z0-9-]{1,32}",
            "upstreams.both: set exactly one of command or url",
        ],
    );
    assert!(
        stdout(&out).is_empty(),
        "nothing on stdout: {}",
        stdout(&out)
    );
}

#[test]
fn check_names_an_unknown_key_by_its_path() {
    let out = check("upstreams:\n  a:\n    comand: foo\n", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("upstreams.a.comand: unknown field")),
        "{err}"
    );
    let out = check("listn: 127.0.0.1:1\n", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).lines().any(|l| l.starts_with("listn: ")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_names_a_missing_environment_variable_but_never_a_value() {
    let yaml = "upstreams:\n  a:\n    command: x\n    env:\n      TOKEN: ${MANIFOLD_TEST_UNSET_TOKEN}\n      OTHER: ${MANIFOLD_TEST_UNSET_OTHER:-fallback}\n";
    let out = check(yaml, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_lines(
        &out,
        &["upstreams.a.env.TOKEN: environment variable MANIFOLD_TEST_UNSET_TOKEN is not set"],
    );
    assert!(
        !stderr(&out).contains("OTHER"),
        "a default makes a variable optional: {}",
        stderr(&out)
    );

    let out = check(yaml, &[("MANIFOLD_TEST_UNSET_TOKEN", "s3cr3t-token")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).contains("s3cr3t") && !stderr(&out).contains("s3cr3t"));

    // An invalid value that came from the environment is reported without the value.
    let out = check(
        "upstreams:\n  gh:\n    url: ${MANIFOLD_TEST_URL}\n",
        &[("MANIFOLD_TEST_URL", "/relative-s3cr3t")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_lines(&out, &["upstreams.gh.url: relative URL without a base"]);
    assert!(!stderr(&out).contains("s3cr3t"), "{}", stderr(&out));
}

#[test]
fn check_reports_problems_of_every_kind_in_one_run() {
    // A typo, an invalid value and a missing variable in three upstreams: fixing them one
    // run at a time is what listing every problem is meant to spare.
    let yaml = "upstreams:\n  a:\n    comand: foo\n  github:\n    url: /mcp\n  secret:\n    command: x\n    env:\n      TOKEN: ${MANIFOLD_TEST_UNSET_TOKEN}\n";
    let out = check(yaml, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for path in [
        "upstreams.a.comand: ",
        "upstreams.github.url: relative URL without a base",
        "upstreams.secret.env.TOKEN: ",
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(path)),
            "{path:?} not reported:\n{err}"
        );
    }
}

#[test]
fn check_accepts_a_good_config_and_summarises_it() {
    let yaml = format!(
        "upstreams:\n{}  remote:\n    url: http://127.0.0.1:9/mcp\n    prefix: r\n",
        stdio_fixture("alpha", &[])
    );
    let out = check(&yaml, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("ok (2 upstreams"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["alpha", "stdio", "alpha__"]),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["remote", "streamable_http", "r__"]),
        "{text}"
    );
}

fn tools_json(yaml: &str) -> (Output, Value) {
    let out = with_config(
        &["tools", "--json", "--wait", "20"],
        "gateway.yaml",
        yaml,
        &[],
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\n{}",
            stdout(&out),
            stderr(&out)
        )
    });
    (out, json)
}

fn pairs(json: &Value, kind: &str, key: &str) -> Vec<(String, String)> {
    json[kind]
        .as_array()
        .unwrap_or_else(|| panic!("no {kind} list: {json}"))
        .iter()
        .map(|e| {
            (
                e["upstream"].as_str().expect("upstream").to_owned(),
                e["item"][key].as_str().expect("key").to_owned(),
            )
        })
        .collect()
}

#[test]
fn tools_json_lists_the_merged_catalog_with_each_items_upstream() {
    let yaml = format!(
        "upstreams:\n{}{}",
        stdio_fixture("alpha", &[]),
        stdio_fixture("beta", &["--tools", "1"])
    );
    let (out, json) = tools_json(&yaml);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let tools = pairs(&json, "tools", "name");
    let mut expected = Vec::new();
    for (name, n) in [("alpha", 3), ("beta", 1)] {
        let own = support::fixture_tools(n);
        expected.extend(
            own.into_iter()
                .map(|t| (name.to_owned(), format!("{name}__{t}"))),
        );
    }
    assert_eq!(tools, expected);
    let prompts = pairs(&json, "prompts", "name");
    assert!(
        prompts.contains(&("beta".to_owned(), "beta__greet".to_owned())),
        "{prompts:?}"
    );
    let resources = pairs(&json, "resources", "uri");
    assert!(
        resources.contains(&("alpha".to_owned(), "fixture://alpha/info".to_owned())),
        "{resources:?}"
    );
    let templates = pairs(&json, "resourceTemplates", "uriTemplate");
    assert_eq!(
        templates,
        [
            ("alpha".to_owned(), "fixture://alpha/tpl/{id}".to_owned()),
            ("beta".to_owned(), "fixture://beta/tpl/{id}".to_owned())
        ]
    );
    assert_eq!(json["upstreams"]["alpha"]["status"], "ready");
    assert_eq!(json["upstreams"]["beta"]["status"], "ready");
    assert_eq!(json["collisions"], json!([]));
}

#[test]
fn tools_exits_1_when_an_upstream_is_down() {
    let yaml = format!(
        "upstreams:\n{}  broken:\n    command: /nonexistent/manifold-tests/server\n",
        stdio_fixture("alpha", &[])
    );
    let (out, json) = tools_json(&yaml);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json["upstreams"]["broken"]["status"], "down");
    assert!(
        json["upstreams"]["broken"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("/nonexistent/manifold-tests/server"),
        "{json}"
    );
    assert_eq!(json["upstreams"]["alpha"]["status"], "ready");
    assert!(
        pairs(&json, "tools", "name").contains(&("alpha".to_owned(), "alpha__whoami".to_owned()))
    );
}

/// A minimal image has no CA certificates: that is an error for HTTPS upstreams only, with
/// the cause in their status, never a crash of the whole gateway.
#[test]
fn no_ca_certificates_fails_only_the_https_upstreams() {
    let empty = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "upstreams:\n{}  remote:\n    url: https://127.0.0.1:9/mcp\n",
        stdio_fixture("alpha", &[])
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gateway.yaml");
    std::fs::write(&file, yaml).expect("write config");
    let file = file.display().to_string();
    let certs = empty.path().display().to_string();
    let out = manifold_in(
        dir.path(),
        &["tools", "--json", "--wait", "3", "--config", &file],
        &[
            ("SSL_CERT_FILE", "/nonexistent/manifold-tests/ca.pem"),
            ("SSL_CERT_DIR", &certs),
        ],
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).expect("tools --json output");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json["upstreams"]["alpha"]["status"], "ready", "{json}");
    assert_eq!(json["upstreams"]["remote"]["status"], "down", "{json}");
    let error = json["upstreams"]["remote"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("no CA certificates"), "{json}");
}

#[test]
fn tools_exits_1_on_an_unresolved_collision() {
    let yaml = format!(
        "upstreams:\n{}    prefix: \"\"\n{}    prefix: \"\"\n",
        stdio_fixture("left", &[]),
        stdio_fixture("right", &[])
    );
    let (out, json) = tools_json(&yaml);
    assert_eq!(out.status.code(), Some(1));
    let collisions = json["collisions"].as_array().expect("collisions");
    let whoami = collisions
        .iter()
        .find(|c| c["name"] == "whoami")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(whoami["upstreams"], json!(["left", "right"]));
    assert!(
        !pairs(&json, "tools", "name")
            .iter()
            .any(|(_, n)| n == "whoami"),
        "withheld"
    );
}

#[test]
fn the_repository_gateway_yaml_passes_check_and_tools() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = manifold_in(repo, &["check"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("gateway.yaml: ok (1 upstreams"),
        "{}",
        stdout(&out)
    );

    let out = manifold_in(repo, &["tools", "--json", "--wait", "20"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut tools = pairs(&json, "tools", "name");
    tools.sort();
    // `confirm` is listed because the gateway's upstream session declares elicitation.
    let expected: Vec<(String, String)> = [
        "demo__add",
        "demo__confirm",
        "demo__echo",
        "demo__now",
        "demo__word_count",
    ]
    .iter()
    .map(|t| ("demo".to_owned(), t.to_string()))
    .collect();
    assert_eq!(tools, expected);
    assert_eq!(
        pairs(&json, "resourceTemplates", "uriTemplate"),
        [("demo".to_owned(), "demo://notes/{topic}".to_owned())]
    );

    // The table form names the same things.
    let out = manifold_in(repo, &["tools"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("demo__word_count"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_desktop_mcp_servers_file_works_with_check_and_tools() {
    let fixture = fixture_bin().display().to_string();
    let file = json!({
        "mcpServers": {
            "My Fixture": {"command": fixture, "args": ["--name", "mine"]},
            "off": {"command": "/nonexistent/manifold-tests/off", "disabled": true},
        }
    })
    .to_string();
    let out = with_config(&["check"], "claude_desktop_config.json", &file, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ok (1 upstreams"),
        "the disabled server is skipped: {}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("my-fixture"),
        "names are normalised: {}",
        stdout(&out)
    );

    let out = with_config(
        &["tools", "--json", "--wait", "20"],
        "claude_desktop_config.json",
        &file,
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        pairs(&json, "tools", "name")
            .contains(&("my-fixture".to_owned(), "my-fixture__whoami".to_owned())),
        "{json}"
    );
    assert!(json["upstreams"].get("off").is_none());

    // Problems in such a file are reported under its own names.
    let bad = json!({"mcpServers": {"My Fixture": {"comand": "x"}}}).to_string();
    let out = with_config(&["check"], "claude_desktop_config.json", &bad, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .lines()
            .any(|l| l.starts_with("mcpServers.My Fixture.comand: ")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn serve_refuses_an_invalid_config_without_listening() {
    let out = with_config(
        &["serve", "--listen", "127.0.0.1:0"],
        "gateway.yaml",
        "page_size: 0\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!stdout(&out).contains("listening"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("page_size: must be at least 1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = manifold_in(dir.path(), &["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out).trim(),
        format!("manifold {}", env!("CARGO_PKG_VERSION"))
    );

    let out = manifold_in(dir.path(), &["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for command in ["serve", "check", "tools", "demo"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "--help lists {command}:\n{help}"
        );
    }
}
