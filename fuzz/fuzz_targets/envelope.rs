//! The 2026-07-28 per-request envelope: reading a client's `_meta`, taking it out (after the
//! parse, and in it), writing the gateway's for an upstream hop, and shaping results for
//! either era (as text and as values), on any message the parser accepts.
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
            let params = req.params_except_arguments();
            let declared = envelope::declares_version(params);
            match Envelope::read(params) {
                Ok(env) => {
                    assert!(declared, "an envelope was read without a version");
                    let _ = env.check_version();
                }
                Err(e) => {
                    let _ = manifold::protocol::Response::err(Some(req.id.clone()), e);
                }
            }
            // Taken at the edge: what `read` reads, and no hop key left behind.
            let mut taken = params.cloned();
            let took = Envelope::take(&mut taken);
            if let Ok(env) = &took {
                assert_eq!(Ok(env.clone()), Envelope::read(params));
                assert!(hop_keys_in(&taken).is_empty(), "{taken:?}");
            }
            // Taken in the parse: the same envelope or error, the same params left.
            let (parsed, keys) = Message::parse_stateless(data);
            let Ok(Message::Request(stateless)) = parsed else {
                panic!("parses one way only");
            };
            assert_eq!(Envelope::from_taken(keys), took);
            if took.is_ok() {
                let mut left = req.clone();
                *left.params_except_arguments_mut() = taken.clone();
                assert_eq!(stateless.full_params(), left.full_params());
            }
            // A handshake-era hop: no hop key of the client's may remain.
            let mut to_handshake = params.cloned();
            envelope::strip_hop_keys(&mut to_handshake);
            assert!(hop_keys_in(&to_handshake).is_empty(), "{to_handshake:?}");
            // A stateless hop: the gateway's envelope replaces the client's, on the wire.
            let caps = json!({"sampling": {}});
            let mut hop = req.clone();
            let text = envelope::for_stateless_hop(
                hop.params_except_arguments_mut(),
                &caps,
                Some("info"),
            );
            hop.hop_meta = Some(text);
            let written = Message::Request(hop.clone()).to_json();
            let Ok(Message::Request(read)) = Message::parse(written.as_bytes()) else {
                panic!("the gateway's own request does not parse: {written}");
            };
            // A tool call's arguments went as the client's text, in their place.
            assert_eq!(read.full_params(), hop.full_params(), "{written}");
            assert_eq!(read.arguments().map(|a| a.text()), req.arguments().map(|a| a.text()));
            assert_eq!(read.param("arguments"), req.param("arguments"), "{written}");
            let meta = envelope::meta(read.params_except_arguments()).expect("_meta written");
            assert_eq!(meta.get(envelope::CLIENT_CAPABILITIES), Some(&caps));
            assert!(envelope::declares_version(read.params_except_arguments()));
        }
        Message::Response(resp) => {
            if let Ok(payload) = resp.outcome {
                // Shaped as text, a result reads as the same result shaped as values.
                let value: Value = (*payload).clone();
                let mut shaped = payload.clone();
                shaped.shape_for_stateless();
                let mut expected = value.clone();
                envelope::for_stateless(&mut expected);
                assert_eq!(*shaped, expected);
                let mut shaped = payload;
                shaped.shape_for_handshake();
                let mut expected = value.clone();
                envelope::for_handshake(&mut expected);
                assert_eq!(*shaped, expected);
                let result = value;
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
