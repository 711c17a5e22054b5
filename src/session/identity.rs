//! Identity headers for upstreams: selected claims of the caller's principal, sent as HTTP
//! headers on the upstream session opened for the caller (`identity_headers`, header name →
//! claim name). Never the caller's credential.

use std::collections::BTreeMap;

use super::Principal;

/// The headers `mapping` asks for, from `principal`'s claims. A claim the principal lacks
/// gives no header; a value that is not printable ASCII is percent-encoded (UTF-8), since a
/// header cannot carry it as is.
pub fn headers(
    mapping: &BTreeMap<String, String>,
    principal: &Principal,
) -> BTreeMap<String, String> {
    mapping
        .iter()
        .filter_map(|(header, claim)| Some((header.clone(), encode(&principal.claim_text(claim)?))))
        .collect()
}

fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b == b' ' || b.is_ascii_graphic() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::auth::AuthMethod;
    use serde_json::json;

    #[test]
    fn selected_claims_become_header_values() {
        let principal = Principal {
            subject: "alice".into(),
            method: AuthMethod::Jwt,
            scopes: Default::default(),
            claims: json!({"email": "al@example.com", "groups": ["a", "b"], "name": "Zoë\n"})
                .as_object()
                .unwrap()
                .clone(),
        };
        let mapping = BTreeMap::from([
            ("x-user".to_owned(), "sub".to_owned()),
            ("x-email".to_owned(), "email".to_owned()),
            ("x-groups".to_owned(), "groups".to_owned()),
            ("x-name".to_owned(), "name".to_owned()),
            ("x-missing".to_owned(), "tenant".to_owned()),
        ]);
        let got = headers(&mapping, &principal);
        assert_eq!(
            got,
            BTreeMap::from([
                ("x-email".to_owned(), "al@example.com".to_owned()),
                ("x-groups".to_owned(), "a,b".to_owned()),
                ("x-name".to_owned(), "Zo%C3%AB%0A".to_owned()),
                ("x-user".to_owned(), "alice".to_owned()),
            ])
        );
        for (_, v) in got {
            assert!(http::HeaderValue::from_str(&v).is_ok());
        }
    }
}
