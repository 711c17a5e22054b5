//! Unit tests of `envelope.rs`.

use super::*;
use crate::protocol::codes;

fn params(meta: Value) -> Option<Value> {
    Some(json!({ "_meta": meta, "name": "x" }))
}

#[test]
fn the_version_key_alone_marks_a_stateless_request() {
    assert!(declares_version(
        params(json!({ PROTOCOL_VERSION: "2026-07-28" })).as_ref()
    ));
    assert!(!declares_version(
        params(json!({ "progressToken": 1 })).as_ref()
    ));
    assert!(!declares_version(None));
}

#[test]
fn missing_or_mistyped_keys_are_invalid_params_and_an_old_version_is_32022() {
    let e = Envelope::read(params(json!({ PROTOCOL_VERSION: "2026-07-28" })).as_ref()).unwrap_err();
    assert_eq!(e.code, codes::INVALID_PARAMS);
    assert!(e.message.contains(CLIENT_CAPABILITIES), "{}", e.message);
    let e =
        Envelope::read(params(json!({ PROTOCOL_VERSION: 7, CLIENT_CAPABILITIES: {} })).as_ref())
            .unwrap_err();
    assert_eq!(e.code, codes::INVALID_PARAMS);
    let env = Envelope::read(
        params(json!({ PROTOCOL_VERSION: "2025-11-25", CLIENT_CAPABILITIES: {} })).as_ref(),
    )
    .expect("well formed");
    let e = env.check_version().unwrap_err();
    assert_eq!(e.code, codes::UNSUPPORTED_PROTOCOL_VERSION);
    let data = e.data.expect("data");
    assert_eq!(data["requested"], "2025-11-25");
    assert!(
        data["supported"]
            .as_array()
            .expect("list")
            .contains(&json!("2026-07-28"))
    );
}

#[test]
fn the_upstream_hop_gets_the_gateways_envelope_and_keeps_other_meta() {
    let mut p = params(json!({
        PROTOCOL_VERSION: "2026-07-28",
        CLIENT_CAPABILITIES: { "sampling": {} },
        CLIENT_INFO: { "name": "client" },
        "progressToken": "t1",
    }));
    let caps = json!({ "elicitation": {} });
    let mut stateless = p.clone();
    let hop = for_stateless_hop(&mut stateless, &caps, Some("debug"));
    let hop: Value = serde_json::from_str(&format!("{{{hop}}}")).unwrap();
    assert_eq!(hop[CLIENT_INFO]["name"], "manifold");
    assert_eq!(hop[CLIENT_CAPABILITIES], caps);
    assert_eq!(hop[LOG_LEVEL], "debug");
    assert_eq!(hop[PROTOCOL_VERSION], Era::Stateless.latest());
    assert_eq!(
        stateless.as_ref().expect("params")["_meta"],
        json!({ "progressToken": "t1" })
    );
    strip_hop_keys(&mut p);
    let meta = &p.as_ref().expect("params")["_meta"];
    assert_eq!(meta, &json!({ "progressToken": "t1" }));
    let mut bare = Some(json!({ "_meta": { PROTOCOL_VERSION: "2026-07-28" } }));
    strip_hop_keys(&mut bare);
    assert_eq!(bare, Some(json!({})));
}

#[test]
fn results_are_shaped_per_era() {
    let mut r = json!({ "content": [] });
    for_stateless(&mut r);
    assert_eq!(r[RESULT_TYPE], COMPLETE);
    assert_eq!(r["_meta"][SERVER_INFO]["name"], "manifold");
    let mut pending = json!({ RESULT_TYPE: INPUT_REQUIRED, "requestState": "s" });
    for_stateless(&mut pending);
    assert_eq!(result_type(&pending), INPUT_REQUIRED);
    CacheHint {
        ttl_ms: 5,
        private: false,
    }
    .write(&mut r);
    for_handshake(&mut r);
    assert_eq!(r, json!({ "content": [], "_meta": {} }));
    assert_eq!(result_type(&json!({})), COMPLETE);
}

#[test]
fn hints_merge_to_the_shorter_and_the_more_private() {
    let a = CacheHint::of(&json!({ TTL_MS: 60000, CACHE_SCOPE: "public" }));
    let b = CacheHint::of(&json!({ TTL_MS: 5000, CACHE_SCOPE: "public" }));
    assert_eq!(
        a.merge(b),
        CacheHint {
            ttl_ms: 5000,
            private: false
        }
    );
    assert_eq!(a.merge(CacheHint::NONE), CacheHint::NONE);
    assert_eq!(CacheHint::of(&json!({ TTL_MS: -3 })).ttl_ms, 0);
}

/// `take` reads what `read` reads and moves the envelope's keys out of `_meta`, keeping the
/// client's other members in order; a `_meta` left empty goes; a refusal changes nothing.
#[test]
fn take_moves_the_envelope_out_and_leaves_the_rest() {
    let meta = json!({
        "progressToken": 7,
        PROTOCOL_VERSION: "2026-07-28",
        CLIENT_CAPABILITIES: {"elicitation": {}},
        "x-trace": "t",
        CLIENT_INFO: {"name": "c", "version": "1"},
        LOG_LEVEL: "debug",
    });
    let mut params = Some(json!({"name": "a__b", "_meta": meta, "arguments": {}}));
    let read = Envelope::read(params.as_ref()).expect("valid");
    let taken = Envelope::take(&mut params).expect("valid");
    assert_eq!(taken, read);
    let params = params.expect("params");
    let keys: Vec<&str> = params["_meta"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["progressToken", "x-trace"]);
    let top: Vec<&str> = params
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, ["name", "_meta", "arguments"]);

    let mut only =
        Some(json!({"_meta": {PROTOCOL_VERSION: "2026-07-28", CLIENT_CAPABILITIES: {}}}));
    Envelope::take(&mut only).expect("valid");
    assert_eq!(only, Some(json!({})));

    let refused = json!({"_meta": {PROTOCOL_VERSION: 1, CLIENT_CAPABILITIES: {}}});
    let mut params = Some(refused.clone());
    assert!(Envelope::take(&mut params).is_err());
    assert_eq!(params, Some(refused));
}

/// The envelope written as text for a stateless hop: the revision, the capabilities, the
/// gateway, the log level when asked, in that order; the client's hop keys leave its
/// `_meta` (its other members stay in order), and a `_meta` that is no object goes.
#[test]
fn the_stateless_hop_is_the_gateways_envelope_after_the_clients_own_members() {
    let caps = json!({"elicitation": {}, "sampling": {"tools": {}}});
    for (params, level, left) in [
        (None, None, None),
        (
            Some(json!({"name": "x"})),
            Some("debug"),
            Some(json!({"name": "x"})),
        ),
        (
            Some(json!({"_meta": {"progressToken": 1, CLIENT_INFO: {"name": "c"}, "z": 2}})),
            None,
            Some(json!({"_meta": {"progressToken": 1, "z": 2}})),
        ),
        (
            Some(json!({"_meta": 5, "name": "x"})),
            None,
            Some(json!({"name": "x"})),
        ),
    ] {
        let mut readied = params.clone();
        let hop = for_stateless_hop(&mut readied, &caps, level);
        let hop: Map<String, Value> = serde_json::from_str(&format!("{{{hop}}}")).unwrap();
        let mut expected = vec![
            (PROTOCOL_VERSION, json!(Era::Stateless.latest())),
            (CLIENT_CAPABILITIES, caps.clone()),
            (CLIENT_INFO, gateway_info()),
        ];
        if let Some(level) = level {
            expected.push((LOG_LEVEL, json!(level)));
        }
        let hop: Vec<(&str, Value)> = hop.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        assert_eq!(hop, expected, "{params:?}");
        assert_eq!(readied, left, "{params:?}");
        let order: Option<Vec<String>> = readied
            .as_ref()
            .and_then(|p| p.get("_meta"))
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect());
        if let Some(order) = order {
            assert_eq!(order, ["progressToken", "z"]);
        }
    }
}
