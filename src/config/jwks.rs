//! A JWK set: the keys a JWT may be signed with, parsed from a `jwks_file` while the
//! configuration is checked and from every document the authenticator fetches.

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// Largest key set accepted, from a URL or a file.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// One usable verification key.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    /// The algorithm the key is restricted to, when the JWK names one.
    pub alg: Option<Algorithm>,
    family: Family,
    pub key: DecodingKey,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    Rsa,
    Ec,
    Ed,
}

impl Key {
    /// Whether this key can verify a token signed with `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|a| a == alg) && family_of(alg) == Some(self.family)
    }
}

fn family_of(alg: Algorithm) -> Option<Family> {
    use Algorithm::*;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Some(Family::Rsa),
        ES256 | ES384 => Some(Family::Ec),
        EdDSA => Some(Family::Ed),
        _ => None,
    }
}

pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if meta.len() > MAX_JWKS_BYTES as u64 {
        return Err(format!("{shown} is larger than {MAX_JWKS_BYTES} bytes"));
    }
    std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))
}

/// Checks at load time that a `jwks_file` exists and holds at least one usable key.
pub fn check_file(path: &Path) -> Result<(), String> {
    let keys = parse(&read_file(path)?)?;
    if keys.is_empty() {
        return Err(format!("{} holds no usable signing key", path.display()));
    }
    Ok(())
}

/// The usable signing keys of a JWK set. Keys this gateway cannot use (encryption keys,
/// shared secrets, unknown types) are skipped, not fatal: issuers publish such keys too.
pub fn parse(bytes: &[u8]) -> Result<Vec<Key>, String> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("key set is not JSON: {e}"))?;
    let Some(items) = doc.get("keys").and_then(Value::as_array) else {
        return Err("key set has no \"keys\" array".into());
    };
    let mut keys = Vec::new();
    for item in items {
        match usable(item) {
            Ok(key) => keys.push(key),
            Err(why) => {
                let kid = item.get("kid").and_then(Value::as_str).unwrap_or("");
                tracing::debug!(kid, why, "Skipped a key of the JWK set");
            }
        }
    }
    Ok(keys)
}

fn usable(item: &Value) -> Result<Key, String> {
    let jwk: Jwk = serde_json::from_value(item.clone()).map_err(|e| e.to_string())?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return Err("not a signing key".into());
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(signing_alg(a).ok_or("not a signature algorithm")?),
    };
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Family::Rsa,
        AlgorithmParameters::EllipticCurve(_) => Family::Ec,
        AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
        AlgorithmParameters::OctetKey(_) => return Err("shared secrets are not accepted".into()),
        _ => return Err("unsupported key type".into()),
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    Ok(Key {
        kid: jwk.common.key_id,
        alg,
        family,
        key,
    })
}

fn signing_alg(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
