//! Unit tests of `jwks.rs`.

use super::*;
use serde_json::{Value, json};
use std::path::Path;

/// A real P-256 public key (x, y) in JWK form.
fn ec_jwk(kid: &str) -> Value {
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
}

#[test]
fn unusable_keys_are_skipped_not_fatal() {
    let set = json!({"keys": [
        ec_jwk("a"),
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
         "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "XYZ", "kid": "odd"},
    ]});
    let keys = parse(set.to_string().as_bytes()).unwrap();
    let kids: Vec<_> = keys.iter().map(|k| k.kid.clone().unwrap()).collect();
    assert_eq!(kids, ["a"]);
    assert!(parse(b"[]").is_err());
    assert!(parse(b"not json").is_err());
}

#[test]
fn keys_are_chosen_by_kid_and_algorithm() {
    let keys = parse(
        json!({"keys": [ec_jwk("a"), ec_jwk("b")]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(select(&keys, Some("b"), Algorithm::ES256).unwrap().len(), 1);
    assert_eq!(select(&keys, None, Algorithm::ES256).unwrap().len(), 2);
    assert_eq!(
        select(&keys, Some("c"), Algorithm::ES256).err(),
        Some(KeyError::UnknownKid)
    );
    // An EC key restricted to ES256 cannot verify RS256 (algorithm confusion).
    assert_eq!(
        select(&keys, Some("a"), Algorithm::RS256).err(),
        Some(KeyError::NoSuitableKey)
    );
}

/// A key set in a file, rewritten by the test.
fn file_jwks(
    kids: &[&str],
    max_age: Duration,
    cooldown: Duration,
) -> (Arc<Jwks>, tempfile::TempDir) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    write_set(&path, kids);
    let jwks = Jwks::new(
        JwksSource::File(path),
        reqwest::Client::new(),
        max_age,
        cooldown,
    );
    (Arc::new(jwks), dir)
}

fn write_set(path: &Path, kids: &[&str]) {
    let keys: Vec<Value> = kids.iter().map(|k| ec_jwk(k)).collect();
    std::fs::write(path, json!({ "keys": keys }).to_string()).unwrap();
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn an_unknown_kid_refetches_which_picks_up_rotation() {
    let (jwks, dir) = file_jwks(&["a"], HOUR, Duration::ZERO);
    assert!(jwks.keys_for(Some("a"), Algorithm::ES256).await.is_ok());
    write_set(&dir.path().join("jwks.json"), &["b"]);
    assert!(jwks.keys_for(Some("b"), Algorithm::ES256).await.is_ok());
    assert_eq!(
        jwks.keys_for(Some("a"), Algorithm::ES256).await.err(),
        Some(KeyError::UnknownKid),
        "the retired key is gone"
    );
}

#[tokio::test]
async fn within_the_cooldown_an_unknown_kid_fetches_nothing() {
    let (jwks, dir) = file_jwks(&["a"], HOUR, HOUR);
    assert!(jwks.keys_for(Some("a"), Algorithm::ES256).await.is_ok());
    write_set(&dir.path().join("jwks.json"), &["a", "b"]);
    assert_eq!(
        jwks.keys_for(Some("b"), Algorithm::ES256).await.err(),
        Some(KeyError::UnknownKid)
    );
}

#[tokio::test]
async fn keys_older_than_jwks_cache_are_replaced() {
    let (jwks, dir) = file_jwks(&["a"], Duration::from_millis(1), Duration::ZERO);
    assert!(jwks.keys_for(Some("a"), Algorithm::ES256).await.is_ok());
    write_set(&dir.path().join("jwks.json"), &["a", "b"]);
    // Older than max_age from here on: every lookup is answered from the cache at once
    // and starts (at most one) background refresh.
    let mut renewed = false;
    for _ in 0..200 {
        assert!(jwks.keys_for(Some("a"), Algorithm::ES256).await.is_ok());
        if jwks.read().keys.len() == 2 {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(renewed, "the background refresh never happened");
}

#[tokio::test]
async fn a_key_set_never_fetched_is_unavailable() {
    let (jwks, dir) = file_jwks(&["a"], HOUR, HOUR);
    std::fs::remove_file(dir.path().join("jwks.json")).unwrap();
    assert_eq!(
        jwks.keys_for(Some("a"), Algorithm::ES256).await.err(),
        Some(KeyError::Unavailable)
    );
}

#[test]
fn fetches_are_rate_limited() {
    let t0 = Instant::now();
    let cooldown = Duration::from_secs(10);
    assert!(
        may_fetch(None, t0, t0, cooldown),
        "the first fetch always runs"
    );
    let later = t0 + Duration::from_secs(1);
    // A fetch started after the caller looked: it already has what there is.
    assert!(!may_fetch(Some(later), t0, later, cooldown));
    // Within the cooldown of the last fetch.
    assert!(!may_fetch(Some(t0), later, later, cooldown));
    let much_later = t0 + Duration::from_secs(11);
    assert!(may_fetch(Some(t0), much_later, much_later, cooldown));
    assert!(may_fetch(Some(t0), later, later, Duration::ZERO));
}
