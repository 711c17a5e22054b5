//! The stdio reader: a child's stdout as lines of JSON with a size bound. Any bytes, read in
//! any chunk size, must give messages or errors and never a panic, and the chunk size must not
//! change what is read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manifold::upstream::fuzzing::stdio_stdout;

fn summary(out: Vec<Result<manifold::protocol::Message, String>>) -> Vec<Result<String, String>> {
    out.into_iter().map(|r| r.map(|m| m.to_json())).collect()
}

fuzz_target!(|data: &[u8]| {
    let [chunk, max, rest @ ..] = data else {
        return;
    };
    let chunk = usize::from(*chunk % 64) + 1;
    let max = usize::from(*max) + 2;
    let whole = summary(stdio_stdout(rest, rest.len().max(1), max));
    let pieces = summary(stdio_stdout(rest, chunk, max));
    assert_eq!(
        whole, pieces,
        "reading {chunk} bytes at a time changed the result"
    );
});
