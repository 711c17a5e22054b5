//! The 2026-07-28 per-request envelope: reading a client's `_meta`, rewriting it for an
//! upstream hop, and shaping results for either era, on any message the parser accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manifold::protocol::Message;
use manifold::protocol::envelope::{self, CacheHint, Envelope, HOP_KEYS};
use serde_json::{Value, json};

fn hop_keys_in(params: &Option<Value>) -> Vec<&'static str> {
    let meta = envelope::meta(params.as_ref());
    HOP_KEYS
        .iter()
        .copied()
        .filter(|k| meta.is_some_and(|m| m.contains_key(*k)))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    match msg {
        Message::Request(req) => {
            let declared = envelope::declares_version(req.params.as_ref());
            match Envelope::read(req.params.as_ref()) {
                Ok(env) => {
                    assert!(declared, "an envelope was read without a version");
                    let _ = env.check_version();
                }
                Err(e) => {
                    let _ = manifold::protocol::Response::err(Some(req.id.clone()), e);
                }
            }
            // A handshake-era hop: no hop key of the client's may remain.
            let mut to_handshake = req.params.clone();
            envelope::rewrite_for_upstream(&mut to_handshake, None);
            assert!(hop_keys_in(&to_handshake).is_empty(), "{to_handshake:?}");
            // A stateless hop: the gateway's envelope replaces the client's.
            let caps = json!({"sampling": {}});
            let mut to_stateless = req.params.clone();
            envelope::rewrite_for_upstream(&mut to_stateless, Some((&caps, Some("info"))));
            if to_stateless.as_ref().is_some_and(Value::is_object) {
                let meta = envelope::meta(to_stateless.as_ref()).expect("_meta written");
                assert_eq!(meta.get(envelope::CLIENT_CAPABILITIES), Some(&caps));
                assert!(envelope::declares_version(to_stateless.as_ref()));
            }
        }
        Message::Response(resp) => {
            if let Ok(result) = resp.outcome {
                let hint = CacheHint::of(&result);
                let _ = envelope::result_type(&result);
                let mut stateless = result.clone();
                envelope::for_stateless(&mut stateless);
                hint.merge(CacheHint::NONE).write(&mut stateless);
                let mut handshake = stateless.clone();
                envelope::for_handshake(&mut handshake);
                if let Some(obj) = handshake.as_object() {
                    assert!(!obj.contains_key(envelope::RESULT_TYPE));
                    assert!(!obj.contains_key(envelope::TTL_MS));
                }
            }
        }
        Message::Notification(_) => {}
    }
});
