//! Sealed tokens and composite cursors come back from clients as arbitrary text: opening one
//! must never panic, and what the gateway sealed must open to exactly what it sealed, only
//! for the purpose it was sealed for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manifold::aggregate::cursor::{ListCursor, ListKind};
use manifold::aggregate::seal::Sealer;

fuzz_target!(|data: &[u8]| {
    let sealer = Sealer::new([7; 32]);
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = sealer.open(b"fuzz", token);
        for kind in ListKind::ALL {
            if let Ok(cursor) = ListCursor::open(token, &sealer, kind) {
                // Only a token this key sealed can open; the fuzzer cannot forge one.
                panic!("a forged cursor opened: {cursor:?}");
            }
        }
    }
    let token = sealer.seal(b"fuzz", data);
    assert_eq!(sealer.open(b"fuzz", &token).as_deref(), Ok(data));
    assert!(sealer.open(b"other", &token).is_err());
    assert!(Sealer::new([8; 32]).open(b"fuzz", &token).is_err());
    // A cursor for any upstream name survives sealing.
    let cursor = ListCursor {
        kind: ListKind::ALL[data.len() % 4],
        upstream: String::from_utf8_lossy(data).into_owned(),
        offset: data.len(),
        generation: u64::from(data.first().copied().unwrap_or(0)),
    };
    let token = cursor.seal(&sealer);
    assert_eq!(
        ListCursor::open(&token, &sealer, cursor.kind).as_ref(),
        Ok(&cursor)
    );
});
