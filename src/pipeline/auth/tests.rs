//! The authenticator with API keys (JWTs are exercised end to end in `tests/auth.rs`).

use std::collections::BTreeSet;

use http::{HeaderMap, HeaderValue, StatusCode};

use super::*;
use crate::config::auth::AuthMethod;

fn authenticator(required: &[&str]) -> Arc<Authenticator> {
    let key = |name: &str, text: &str, scopes: &[&str]| ApiKey {
        name: name.into(),
        digest: crate::config::auth::digest(text.as_bytes()),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        source: "sha256",
    };
    let config = AuthConfig {
        api_keys: vec![key("ci", "ci-key", &["mcp"]), key("ro", "ro-key", &[])],
        required_scopes: required.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    Authenticator::new(&config, "/mcp").expect("auth is configured")
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("gw.test:8080"));
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

async fn reject(auth: &Authenticator, pairs: &[(&'static str, &str)]) -> Rejection {
    auth.authenticate(&headers(pairs))
        .await
        .expect_err("should be refused")
}

const PRM: &str = "http://gw.test:8080/.well-known/oauth-protected-resource/mcp";

#[test]
fn nothing_configured_means_no_authenticator() {
    assert!(Authenticator::new(&AuthConfig::default(), "/mcp").is_none());
}

#[tokio::test]
async fn a_missing_credential_gets_the_metadata_challenge() {
    let auth = authenticator(&[]);
    let r = reject(&auth, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.challenge, format!("Bearer resource_metadata=\"{PRM}\""));
    let r = reject(&auth, &[("authorization", "Basic Y2k6Y2kta2V5")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.challenge.contains("error=\"invalid_request\""),
        "{}",
        r.challenge
    );
}

#[tokio::test]
async fn api_keys_are_accepted_as_bearer_tokens_or_x_api_key() {
    let auth = authenticator(&[]);
    let p = auth
        .authenticate(&headers(&[("authorization", "Bearer ci-key")]))
        .await
        .unwrap();
    assert_eq!((p.subject.as_str(), p.method), ("ci", AuthMethod::ApiKey));
    assert_eq!(p.scopes, BTreeSet::from(["mcp".to_owned()]));
    let p = auth
        .authenticate(&headers(&[("x-api-key", "ro-key")]))
        .await
        .unwrap();
    assert_eq!(p.subject, "ro");
    let p = auth
        .authenticate(&headers(&[("authorization", "bearer  ci-key ")]))
        .await
        .unwrap();
    assert_eq!(p.subject, "ci");
}

#[tokio::test]
async fn a_wrong_key_is_an_invalid_token_and_is_not_echoed() {
    let auth = authenticator(&[]);
    for pairs in [
        [("authorization", "Bearer ci-key2")],
        [("x-api-key", "ci-key2")],
    ] {
        let r = reject(&auth, &pairs).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(
            r.challenge.starts_with(&format!(
                "Bearer resource_metadata=\"{PRM}\", error=\"invalid_token\""
            )),
            "{}",
            r.challenge
        );
        assert!(!r.challenge.contains("ci-key2") && !r.message.contains("ci-key2"));
    }
}

#[tokio::test]
async fn a_valid_key_without_the_required_scope_is_forbidden() {
    let auth = authenticator(&["mcp"]);
    assert!(
        auth.authenticate(&headers(&[("x-api-key", "ci-key")]))
            .await
            .is_ok()
    );
    let r = reject(&auth, &[("x-api-key", "ro-key")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.challenge
            .contains("error=\"insufficient_scope\", scope=\"mcp\""),
        "{}",
        r.challenge
    );
    assert!(r.message.contains("missing mcp"), "{}", r.message);
    // Without credentials the 401 says which scope to ask for.
    let r = reject(&auth, &[]).await;
    assert!(r.challenge.ends_with(", scope=\"mcp\""), "{}", r.challenge);
}

#[test]
fn only_three_base64url_segments_look_like_a_jwt() {
    assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
    assert!(!looks_like_jwt("abc"));
    assert!(!looks_like_jwt("a.b"));
    assert!(!looks_like_jwt("a.b.c d"));
}
