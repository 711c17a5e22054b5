//! Unit tests for `seal`.

use super::*;

const KEY_A: [u8; 32] = [7; 32];
const KEY_B: [u8; 32] = [8; 32];

#[test]
fn round_trip() {
    let sealer = Sealer::new(KEY_A);
    let token = sealer.seal(b"cursor/v1", b"hello");
    assert_eq!(sealer.open(b"cursor/v1", &token), Ok(b"hello".to_vec()));
    let empty = sealer.seal(b"cursor/v1", b"");
    assert_eq!(sealer.open(b"cursor/v1", &empty), Ok(Vec::new()));
}

#[test]
fn token_is_url_safe_and_unpadded() {
    let token = Sealer::new(KEY_A).seal(b"p", &[0xff; 100]);
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
}

#[test]
fn nonces_differ() {
    let sealer = Sealer::new(KEY_A);
    assert_ne!(sealer.seal(b"p", b"x"), sealer.seal(b"p", b"x"));
}

#[test]
fn replicas_sharing_a_key_interoperate() {
    let token = Sealer::new(KEY_A).seal(b"p", b"x");
    assert_eq!(Sealer::new(KEY_A).open(b"p", &token), Ok(b"x".to_vec()));
}

#[test]
fn other_key_or_purpose_is_forged() {
    let token = Sealer::new(KEY_A).seal(b"cursor/v1", b"x");
    assert_eq!(
        Sealer::new(KEY_B).open(b"cursor/v1", &token),
        Err(SealError::Forged)
    );
    assert_eq!(
        Sealer::new(KEY_A).open(b"session/v1", &token),
        Err(SealError::Forged)
    );
}

#[test]
fn malformed_tokens() {
    let sealer = Sealer::new(KEY_A);
    assert_eq!(sealer.open(b"p", ""), Err(SealError::Malformed));
    assert_eq!(sealer.open(b"p", "not base64!"), Err(SealError::Malformed));
    assert_eq!(sealer.open(b"p", "AAAA"), Err(SealError::Malformed));
    // Padded form of a valid token is refused: one text per token.
    let token = sealer.seal(b"p", b"x");
    assert_eq!(
        sealer.open(b"p", &format!("{token}=")),
        Err(SealError::Malformed)
    );
}

#[test]
fn unknown_version_is_malformed() {
    let sealer = Sealer::new(KEY_A);
    let mut body = URL_SAFE_NO_PAD
        .decode(sealer.seal(b"p", b"x"))
        .unwrap_or_default();
    body[0] = 2;
    let token = URL_SAFE_NO_PAD.encode(&body);
    assert_eq!(sealer.open(b"p", &token), Err(SealError::Malformed));
}

#[test]
fn flipped_bits_are_forged() {
    let sealer = Sealer::new(KEY_A);
    let body = URL_SAFE_NO_PAD
        .decode(sealer.seal(b"p", b"payload"))
        .unwrap_or_default();
    for i in 1..body.len() {
        let mut bad = body.clone();
        bad[i] ^= 0x01;
        let token = URL_SAFE_NO_PAD.encode(&bad);
        assert_eq!(
            sealer.open(b"p", &token),
            Err(SealError::Forged),
            "byte {i}"
        );
    }
}

#[test]
fn debug_hides_key() {
    let text = format!("{:?}", Sealer::new([0xab; 32]));
    assert_eq!(text, "Sealer { .. }");
}

#[test]
fn random_sealers_have_distinct_keys() {
    let token = Sealer::random().seal(b"p", b"x");
    assert_eq!(Sealer::random().open(b"p", &token), Err(SealError::Forged));
}
