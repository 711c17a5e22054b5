//! Unit tests for `cursor`.

use super::*;

fn sealer() -> Sealer {
    Sealer::new([42; 32])
}

fn cursor(kind: ListKind) -> ListCursor {
    ListCursor {
        kind,
        upstream: "github".to_owned(),
        offset: 50,
        generation: 3,
    }
}

#[test]
fn round_trip_every_kind() {
    for kind in ListKind::ALL {
        let token = cursor(kind).seal(&sealer());
        assert_eq!(ListCursor::open(&token, &sealer(), kind), Ok(cursor(kind)));
    }
}

#[test]
fn token_is_compact() {
    let token = cursor(ListKind::Tools).seal(&sealer());
    assert!(token.len() < 120, "{} chars", token.len());
}

#[test]
fn wrong_list_names_both_methods() {
    let token = cursor(ListKind::Tools).seal(&sealer());
    let err = ListCursor::open(&token, &sealer(), ListKind::Prompts);
    assert_eq!(
        err,
        Err(CursorError::WrongList {
            expected: ListKind::Prompts,
            found: ListKind::Tools
        })
    );
    let text = err.map(|_| ()).err().map(|e| e.to_string());
    assert_eq!(
        text.as_deref(),
        Some("cursor belongs to tools/list, not prompts/list")
    );
}

#[test]
fn garbage_and_other_purposes_are_invalid() {
    let s = sealer();
    for token in ["", "abc", "!!!", "eyJ2IjoxfQ"] {
        assert_eq!(
            ListCursor::open(token, &s, ListKind::Tools),
            Err(CursorError::Invalid)
        );
    }
    let other = s.seal(b"session/v1", br#"{"v":1,"k":0,"u":"x","o":0,"g":0}"#);
    assert_eq!(
        ListCursor::open(&other, &s, ListKind::Tools),
        Err(CursorError::Invalid)
    );
    assert_eq!(
        CursorError::Invalid.to_string(),
        "invalid cursor: not issued by this gateway or corrupted"
    );
}

#[test]
fn authentic_but_unexpected_payloads_are_invalid() {
    let s = sealer();
    for payload in [
        &br#"{"v":2,"k":0,"u":"x","o":0,"g":0}"#[..],
        br#"{"v":1,"k":9,"u":"x","o":0,"g":0}"#,
        br#"{"v":1,"k":0,"u":"x","o":0,"g":0,"z":1}"#,
        br#"{"v":1,"k":0,"u":"x","o":-1,"g":0}"#,
        b"",
    ] {
        let token = s.seal(PURPOSE, payload);
        assert_eq!(
            ListCursor::open(&token, &s, ListKind::Tools),
            Err(CursorError::Invalid)
        );
    }
}

#[test]
fn list_kind_serde_is_snake_case() {
    let json = serde_json::to_string(&ListKind::ResourceTemplates).unwrap_or_default();
    assert_eq!(json, r#""resource_templates""#);
}
