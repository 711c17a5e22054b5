//! Unit tests of `config.rs`.

use super::*;
use serde_json::json;

fn check(raw: Value, env: &[(&str, &str)]) -> (AuthConfig, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let parsed: RawAuth = crate::config::section::section("auth", &raw, &mut errors);
    let lookup = |name: &str| {
        env.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    };
    let config = resolve(parsed, &lookup, &mut errors);
    (config, errors)
}

fn paths(errors: &[ConfigError]) -> Vec<&str> {
    errors.iter().map(|e| e.path.as_str()).collect()
}

const HEX_OF_SECRET: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

#[test]
fn empty_section_means_no_authentication() {
    let (config, errors) = check(Value::Null, &[]);
    assert!(errors.is_empty());
    assert!(!config.is_enabled());
    assert_eq!(config, AuthConfig::default());
}

#[test]
fn keys_from_hash_file_and_env_are_stored_as_digests() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    std::fs::write(&file, "from-file\n").unwrap();
    let raw = json!({"api_keys": [
        {"name": "ci", "sha256": HEX_OF_SECRET.to_uppercase(), "scopes": ["mcp"]},
        {"name": "ops", "file": file},
        {"name": "bot", "env": "BOT_KEY"},
    ]});
    let (config, errors) = check(raw, &[("BOT_KEY", "from-env")]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(config.api_keys[0].digest, digest(b"secret"));
    assert_eq!(
        config.api_keys[0].scopes,
        BTreeSet::from(["mcp".to_owned()])
    );
    assert_eq!(config.api_keys[1].digest, digest(b"from-file"));
    assert_eq!(config.api_keys[2].digest, digest(b"from-env"));
    let shown = format!("{config:?}");
    for secret in ["from-file", "from-env", HEX_OF_SECRET, "2bb80d"] {
        assert!(!shown.to_lowercase().contains(secret), "{shown}");
    }
}

#[test]
fn bad_keys_are_reported_with_their_paths_and_without_secrets() {
    let raw = json!({"api_keys": [
        {"name": "a", "sha256": "xyz"},
        {"name": "b", "sha256": HEX_OF_SECRET, "env": "K"},
        {"name": "c"},
        {"name": "d", "file": "/nonexistent/manifold-key"},
        {"name": "e", "env": "UNSET_VAR"},
        {"name": "a", "env": "EMPTY"},
        {"name": "g", "sha256": HEX_OF_SECRET},
        {"name": "h", "env": "SAME", "scopes": ["has space"]},
    ]});
    let (_, errors) = check(raw, &[("EMPTY", "  "), ("SAME", "secret")]);
    assert_eq!(
        paths(&errors),
        [
            "auth.api_keys[0].sha256",
            "auth.api_keys[1]",
            "auth.api_keys[2]",
            "auth.api_keys[3].file",
            "auth.api_keys[4].env",
            "auth.api_keys[5].name",
            "auth.api_keys[5].env",
            "auth.api_keys[7].scopes[0]",
            "auth.api_keys[7]",
        ],
        "{errors:#?}"
    );
    assert!(errors[3].message.contains("/nonexistent/manifold-key"));
    assert!(errors[4].message.contains("UNSET_VAR is not set"));
    assert!(errors[8].message.contains("api_keys[6]"), "{}", errors[8]);
}

#[test]
fn keys_may_not_take_a_built_in_principal_name() {
    let raw = json!({"api_keys": [
        {"name": "local", "sha256": HEX_OF_SECRET},
        {"name": "ok", "env": "K1"},
        {"name": "anonymous", "env": "K2"},
    ]});
    let (_, errors) = check(raw, &[("K1", "one"), ("K2", "two")]);
    assert_eq!(
        paths(&errors),
        ["auth.api_keys[0].name", "auth.api_keys[2].name"]
    );
    assert!(errors[0].message.contains("reserved"), "{}", errors[0]);
}

#[test]
fn jwt_needs_issuer_audience_and_one_key_source() {
    let (_, errors) = check(json!({"jwt": {}}), &[]);
    assert_eq!(
        paths(&errors),
        ["auth.jwt.issuer", "auth.jwt.audience", "auth.jwt.jwks_url"]
    );
    let both = json!({"jwt": {"issuer": "i", "audience": "a",
        "jwks_url": "https://i/jwks", "jwks_file": "/x"}});
    let (_, errors) = check(both, &[]);
    assert_eq!(paths(&errors), ["auth.jwt.jwks_url"]);
    assert!(errors[0].message.contains("not both"));
}

#[test]
fn jwt_settings_are_parsed_with_defaults() {
    let raw = json!({"jwt": {"issuer": "https://issuer", "audience": "manifold",
        "jwks_url": "https://issuer/jwks.json", "leeway": "5s"}});
    let (config, errors) = check(raw, &[]);
    assert!(errors.is_empty(), "{errors:?}");
    let jwt = config.jwt.unwrap();
    assert_eq!(jwt.audience, ["manifold"]);
    assert_eq!(jwt.algorithms, [Algorithm::RS256]);
    assert_eq!(jwt.leeway, Duration::from_secs(5));
    assert_eq!(jwt.jwks_cache, DEFAULT_JWKS_CACHE);
    assert_eq!(
        (jwt.scope_claim.as_str(), jwt.subject_claim.as_str()),
        ("scope", "sub")
    );
    assert_eq!(config.authorization_servers, ["https://issuer"]);
}

#[test]
fn unsafe_jwt_settings_are_refused() {
    let raw = json!({"jwt": {"issuer": "i", "audience": ["a"],
        "jwks_url": "http://issuer.example/jwks", "algorithms": ["HS256", "ES256", "XX1"],
        "leeway": "soon"}});
    let (_, errors) = check(raw, &[]);
    assert_eq!(paths(&errors), ["auth.jwt.leeway"], "{errors:?}");
    let raw = json!({"jwt": {"issuer": "i", "audience": ["a"],
        "jwks_url": "http://issuer.example/jwks", "algorithms": ["HS256", "ES256", "XX1"]}});
    let (_, errors) = check(raw, &[]);
    assert_eq!(
        paths(&errors),
        [
            "auth.jwt.jwks_url",
            "auth.jwt.algorithms[0]",
            "auth.jwt.algorithms[2]"
        ],
        "{errors:?}"
    );
    assert!(errors[1].message.contains("shared-secret"));
    let loopback = json!({"jwt": {"issuer": "i", "audience": "a",
        "jwks_url": "http://127.0.0.1:9/jwks"}});
    assert!(check(loopback, &[]).1.is_empty());
}

#[test]
fn settings_without_a_method_are_an_error() {
    let (_, errors) = check(json!({"required_scopes": ["mcp"]}), &[]);
    assert_eq!(paths(&errors), ["auth"]);
    // Whatever went wrong elsewhere in the file.
    let mut errors = vec![ConfigError::new("listen", "earlier problem")];
    let parsed: RawAuth =
        crate::config::section::section("auth", &json!({"resource": "https://x/mcp"}), &mut errors);
    resolve(parsed, &|_| None, &mut errors);
    assert_eq!(paths(&errors), ["listen", "auth"]);
    let (_, errors) = check(json!({"api_keys": [], "resource": "ftp://x"}), &[]);
    assert_eq!(paths(&errors), ["auth.resource"]);
}

#[test]
fn unknown_fields_are_reported() {
    let (_, errors) = check(json!({"jwt": {"isuer": "x"}}), &[]);
    assert_eq!(paths(&errors), ["auth.jwt.isuer"]);
}
