//! Static API keys: the presented key is hashed and compared with every configured digest in
//! constant time, so neither the comparison nor which entry matched shows in the timing.

use crate::config::auth::AuthMethod;
use crate::config::auth::{ApiKey, digest};
use crate::session::Principal;

/// The configured keys.
pub struct ApiKeys {
    keys: Vec<ApiKey>,
}

impl ApiKeys {
    pub fn new(keys: Vec<ApiKey>) -> Self {
        ApiKeys { keys }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The principal of the key `presented`, if it is one of ours.
    pub fn lookup(&self, presented: &str) -> Option<Principal> {
        let wanted = digest(presented.as_bytes());
        // Every entry is compared; the match is remembered, not returned early.
        let mut found = None;
        for key in &self.keys {
            if constant_time_eq(&key.digest, &wanted) {
                found = Some(key);
            }
        }
        found.map(|key| Principal {
            subject: key.name.clone(),
            method: AuthMethod::ApiKey,
            scopes: key.scopes.clone(),
            claims: Default::default(),
        })
    }
}

/// Equality of two digests in time independent of where they differ.
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn key(name: &str, text: &str) -> ApiKey {
        ApiKey {
            name: name.into(),
            digest: digest(text.as_bytes()),
            scopes: BTreeSet::from(["mcp".to_owned()]),
            source: "sha256",
        }
    }

    #[test]
    fn a_configured_key_proves_its_name_and_scopes() {
        let keys = ApiKeys::new(vec![key("ci", "k-ci"), key("ops", "k-ops")]);
        let p = keys.lookup("k-ops").expect("known key");
        assert_eq!(p.subject, "ops");
        assert_eq!(p.method, AuthMethod::ApiKey);
        assert!(p.has_scope("mcp"));
        assert!(keys.lookup("k-op").is_none());
        assert!(keys.lookup("").is_none());
    }

    #[test]
    fn digests_compare_by_every_byte() {
        let a = digest(b"a");
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!constant_time_eq(&a, &b));
    }
}
