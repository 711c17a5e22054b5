//! Property tests for the pure `aggregate` helpers (names, sealing, cursors,
//! URI templates).

use manifold::aggregate::cursor::{CursorError, ListCursor, ListKind};
use manifold::aggregate::names::{
    MAX_NAME_LEN, MIN_EXPOSED_LEN, decode, encode, expose, is_unambiguous_prefix, is_valid_name,
};
use manifold::aggregate::seal::{SealError, Sealer};
use manifold::aggregate::uri_template::UriTemplate;
use proptest::prelude::*;

/// Separators the config may choose (1–8 chars of `[A-Za-z0-9._-]`).
fn separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["__", ".", "-", "_", "--", "x.", "sep"])
}

/// Names of any shape, biased towards containing, starting or ending with
/// `sep`, being empty, or holding non-ASCII characters.
fn name_around(sep: &'static str) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(sep.to_owned()),
        "[a-z_.-]{0,3}",
        any::<char>().prop_map(String::from),
    ];
    prop_oneof![
        any::<String>(),
        prop::collection::vec(piece, 0..6).prop_map(|parts| parts.concat()),
    ]
}

fn sep_and_name() -> impl Strategy<Value = (&'static str, String)> {
    separator().prop_flat_map(|sep| (Just(sep), name_around(sep)))
}

fn list_kind() -> impl Strategy<Value = ListKind> {
    prop::sample::select(ListKind::ALL.to_vec())
}

fn list_cursor() -> impl Strategy<Value = ListCursor> {
    (list_kind(), any::<String>(), any::<usize>(), any::<u64>()).prop_map(
        |(kind, upstream, offset, generation)| ListCursor {
            kind,
            upstream,
            offset,
            generation,
        },
    )
}

fn sealer() -> Sealer {
    Sealer::new([0x5a; 32])
}

proptest! {
    #[test]
    fn decode_inverts_encode((sep, name) in sep_and_name(), raw in "[a-z0-9-]{1,16}") {
        // Config guarantees the prefix does not contain the separator.
        let prefix = match raw.replace(sep, "") {
            p if p.is_empty() => "p".to_owned(),
            p => p,
        };
        prop_assume!(is_unambiguous_prefix(&prefix, sep));
        let encoded = encode(&prefix, sep, &name);
        prop_assert_eq!(decode(&encoded, sep), Some((prefix.as_str(), name.as_str())));
    }

    #[test]
    fn unambiguous_prefix_is_exactly_when_decode_works(
        sep in "[a-z0-9._-]{1,3}",
        prefix in "[a-z0-9-]{1,8}",
        name in any::<String>(),
    ) {
        let encoded = encode(&prefix, &sep, &name);
        let round_trips = decode(&encoded, &sep) == Some((prefix.as_str(), name.as_str()));
        prop_assert_eq!(is_unambiguous_prefix(&prefix, &sep), round_trips);
    }

    #[test]
    fn empty_prefix_leaves_name_unchanged((sep, name) in sep_and_name()) {
        prop_assert_eq!(encode("", sep, &name), name);
    }

    #[test]
    fn expose_is_valid_bounded_and_deterministic(
        prefix in "[a-z0-9-]{0,40}",
        (sep, name) in sep_and_name(),
        long in ".{0,300}",
        use_long in any::<bool>(),
        max_len in MIN_EXPOSED_LEN..=MAX_NAME_LEN,
    ) {
        let name = if use_long { long } else { name };
        let out = expose(&prefix, sep, &name, max_len);
        prop_assert!(is_valid_name(&out), "{:?}", out);
        prop_assert!(out.len() <= max_len);
        prop_assert_eq!(&out, &expose(&prefix, sep, &name, max_len));
        // The prefix and separator survive whenever they fit beside the digest.
        if !prefix.is_empty() && prefix.len() + sep.len() <= max_len - 9 {
            let head = format!("{prefix}{sep}");
            prop_assert!(out.starts_with(&head));
        }
    }

    #[test]
    fn expose_clamps_small_max_len(name in ".{0,200}", max_len in 0usize..MIN_EXPOSED_LEN) {
        let out = expose("p", "__", &name, max_len);
        prop_assert!(is_valid_name(&out));
        prop_assert!(out.len() <= MIN_EXPOSED_LEN);
    }

    #[test]
    fn expose_keeps_names_differing_past_the_cut_apart(
        base in "[a-zA-Z0-9_ -]{128,160}",
        a in ".{1,20}",
        b in ".{1,20}",
        max_len in MIN_EXPOSED_LEN..=MAX_NAME_LEN,
    ) {
        prop_assume!(a != b);
        let x = expose("up", "__", &format!("{base}{a}"), max_len);
        let y = expose("up", "__", &format!("{base}{b}"), max_len);
        prop_assert_ne!(x, y);
    }

    #[test]
    fn cursor_round_trips(cursor in list_cursor()) {
        let token = cursor.seal(&sealer());
        prop_assert_eq!(ListCursor::open(&token, &sealer(), cursor.kind), Ok(cursor));
    }

    #[test]
    fn mutated_cursor_tokens_are_rejected(
        cursor in list_cursor(),
        index in any::<prop::sample::Index>(),
        replacement in prop_oneof![
            prop::sample::select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=".chars().collect::<Vec<_>>()
            ),
            any::<char>(),
        ],
    ) {
        let token = cursor.seal(&sealer());
        let mut chars: Vec<char> = token.chars().collect();
        let i = index.index(chars.len());
        prop_assume!(chars[i] != replacement);
        chars[i] = replacement;
        let mutated: String = chars.into_iter().collect();
        prop_assert_eq!(
            ListCursor::open(&mutated, &sealer(), cursor.kind),
            Err(CursorError::Invalid)
        );
    }

    #[test]
    fn truncated_or_extended_tokens_are_rejected(
        cursor in list_cursor(),
        cut in any::<prop::sample::Index>(),
        extra in "[A-Za-z0-9_-]{1,4}",
    ) {
        let token = cursor.seal(&sealer());
        let short = &token[..cut.index(token.len())];
        prop_assert!(ListCursor::open(short, &sealer(), cursor.kind).is_err());
        let long = format!("{token}{extra}");
        prop_assert!(ListCursor::open(&long, &sealer(), cursor.kind).is_err());
    }

    #[test]
    fn arbitrary_strings_never_open_as_cursors(
        text in prop_oneof![any::<String>(), "[A-Za-z0-9_-]{0,200}"],
        kind in list_kind(),
    ) {
        prop_assert_eq!(ListCursor::open(&text, &sealer(), kind), Err(CursorError::Invalid));
    }

    #[test]
    fn other_key_is_rejected(
        cursor in list_cursor(),
        key_a in any::<[u8; 32]>(),
        key_b in any::<[u8; 32]>(),
    ) {
        prop_assume!(key_a != key_b);
        let token = cursor.seal(&Sealer::new(key_a));
        prop_assert_eq!(
            ListCursor::open(&token, &Sealer::new(key_b), cursor.kind),
            Err(CursorError::Invalid)
        );
    }

    #[test]
    fn other_list_kind_is_rejected(cursor in list_cursor(), expected in list_kind()) {
        prop_assume!(expected != cursor.kind);
        let token = cursor.seal(&sealer());
        prop_assert_eq!(
            ListCursor::open(&token, &sealer(), expected),
            Err(CursorError::WrongList { expected, found: cursor.kind })
        );
    }

    #[test]
    fn other_purpose_is_rejected(
        x in prop::collection::vec(any::<u8>(), 0..16),
        y in prop::collection::vec(any::<u8>(), 0..16),
        plaintext in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        prop_assume!(x != y);
        let s = sealer();
        let token = s.seal(&x, &plaintext);
        prop_assert_eq!(s.open(&x, &token), Ok(plaintext));
        prop_assert_eq!(s.open(&y, &token), Err(SealError::Forged));
    }

    #[test]
    fn uri_templates_never_panic(
        template in prop_oneof![any::<String>(), "[{}a-z+#./;?&*:0-9,%=!]{0,60}"],
        uri in prop_oneof![any::<String>(), "[a-z0-9/?#&;.=:%]{0,60}"],
    ) {
        if let Ok(t) = UriTemplate::parse(&template) {
            let _ = t.matches(&uri);
            let _ = t.specificity();
            prop_assert_eq!(t.as_str(), template.as_str());
        }
    }

    #[test]
    fn simple_template_matches_its_expansions(
        a in "[a-z0-9]+",
        b in "[a-z0-9]+",
        extra in "[a-z0-9]+",
        at in 0usize..3,
    ) {
        let t = UriTemplate::parse("scheme://{a}/items/{b}").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let uri = format!("scheme://{a}/items/{b}");
        prop_assert!(t.matches(&uri), "{}", uri);
        let with_extra = match at {
            0 => format!("scheme://{extra}/{a}/items/{b}"),
            1 => format!("scheme://{a}/{extra}/items/{b}"),
            _ => format!("scheme://{a}/items/{b}/{extra}"),
        };
        prop_assert!(!t.matches(&with_extra), "{}", with_extra);
    }
}
