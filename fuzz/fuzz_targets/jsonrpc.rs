//! The JSON-RPC parser every transport runs on every message: it must never panic, and a
//! message it accepts must survive being written and read again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manifold::protocol::Message;
use manifold::protocol::jsonrpc::ParseError;

fn round_trips(msg: &Message) {
    let text = msg.to_json();
    let again = Message::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("the gateway's own output does not parse: {e:?}: {text}"));
    assert_eq!(
        msg.to_value(),
        again.to_value(),
        "round trip changed {text}"
    );
    assert_eq!(msg.method(), again.method());
}

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(msg) => round_trips(&msg),
        Err(ParseError::Batch(items)) => {
            for item in items {
                if let Ok(msg) = Message::from_value(item) {
                    round_trips(&msg);
                }
            }
        }
        Err(ParseError::Invalid(err)) => {
            // The error object is what a client is answered with: it must serialise.
            let answer = Message::Response(manifold::protocol::Response::err(None, err));
            let _ = answer.to_json();
        }
    }
});
