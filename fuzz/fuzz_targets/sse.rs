//! The reader of SSE bodies from HTTP upstreams (`upstream::sse_read`, on the
//! `eventsource-stream` crate): any bytes, split into chunks anywhere, must yield messages or
//! errors and never a panic; and how the body is split must not change what comes out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manifold::upstream::fuzzing::sse_messages;

fn summary(body: Vec<Vec<u8>>) -> Vec<Result<(String, Option<String>), String>> {
    sse_messages(body)
        .into_iter()
        .map(|r| r.map(|(m, id)| (m.to_json(), id)))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, body)) = data.split_first() else {
        return;
    };
    let size = usize::from(size % 32) + 1;
    let whole = summary(vec![body.to_vec()]);
    let chunked = summary(body.chunks(size).map(<[u8]>::to_vec).collect());
    // Errors (invalid UTF-8) may be reported per chunk; the messages must be the same.
    let oks = |v: &[Result<(String, Option<String>), String>]| {
        v.iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect::<Vec<_>>()
    };
    if whole.iter().all(Result::is_ok) && chunked.iter().all(Result::is_ok) {
        assert_eq!(
            oks(&whole),
            oks(&chunked),
            "chunks of {size} changed the messages"
        );
    }
});
