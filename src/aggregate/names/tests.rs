//! Unit tests for `names`.

use super::*;

#[test]
fn valid_names() {
    assert!(is_valid_name("a"));
    assert!(is_valid_name("get_weather.v2-beta"));
    assert!(is_valid_name(&"x".repeat(128)));
    assert!(!is_valid_name(""));
    assert!(!is_valid_name(&"x".repeat(129)));
    assert!(!is_valid_name("has space"));
    assert!(!is_valid_name("slash/name"));
    assert!(!is_valid_name("ünïcode"));
}

#[test]
fn valid_separators() {
    assert!(is_valid_separator("__"));
    assert!(is_valid_separator("."));
    assert!(is_valid_separator("12345678"));
    assert!(!is_valid_separator(""));
    assert!(!is_valid_separator("123456789"));
    assert!(!is_valid_separator("::"));
}

#[test]
fn encode_joins_and_skips_empty_prefix() {
    assert_eq!(encode("gh", "__", "search"), "gh__search");
    assert_eq!(encode("", "__", "search"), "search");
    assert_eq!(encode("gh", ".", ""), "gh.");
}

#[test]
fn decode_splits_at_first_separator() {
    assert_eq!(decode("gh__search", "__"), Some(("gh", "search")));
    assert_eq!(decode("a__b__c", "__"), Some(("a", "b__c")));
    assert_eq!(decode("a____c", "__"), Some(("a", "__c")));
    assert_eq!(decode("a__", "__"), Some(("a", "")));
    assert_eq!(decode("plain", "__"), None);
    assert_eq!(decode("plain", ""), None);
    assert_eq!(decode("p.ünï", "."), Some(("p", "ünï")));
}

#[test]
fn separator_straddling_prefix_end_is_detected() {
    // `a-` does not contain `--`, yet `a-` + `--` + name starts a `--` early.
    assert!(!is_unambiguous_prefix("a-", "--"));
    assert_eq!(decode(&encode("a-", "--", "x"), "--"), Some(("a", "-x")));
    assert!(!is_unambiguous_prefix("ab", "bb"));
    assert!(is_unambiguous_prefix("a-b", "__"));
    assert!(is_unambiguous_prefix("", "__"));
    assert!(is_unambiguous_prefix("a", "a-"));
    assert!(!is_unambiguous_prefix("a-b", "-"));
    assert!(!is_unambiguous_prefix("a", ""));
}

#[test]
fn expose_short_names_unchanged() {
    assert_eq!(expose("gh", "__", "search", 64), "gh__search");
    assert_eq!(expose("", "__", "search", 64), "search");
}

#[test]
fn expose_sanitises_invalid_characters_and_keeps_names_apart() {
    let out = expose("fs", "__", "read file/now", 64);
    assert!(out.starts_with("fs__read_file_now-"), "{out}");
    assert_eq!(out.len(), "fs__read_file_now-".len() + 8);
    assert!(expose("fs", "__", "ünï", 64).starts_with("fs___n_-"));
    // Lossy sanitising must not merge names: the hash of the original tells them apart.
    assert_ne!(
        expose("a", "__", "has space", 64),
        expose("a", "__", "has_space", 64)
    );
    assert_eq!(expose("a", "__", "has_space", 64), "a__has_space");
}

#[test]
fn expose_empty_name() {
    assert!(expose("", "__", "", 64).starts_with("_-"));
    assert!(expose("gh", "__", "", 64).starts_with("gh___-"));
    assert!(is_valid_name(&expose("", "__", "", 64)));
}

#[test]
fn expose_shortens_with_digest() {
    let name = "n".repeat(200);
    let out = expose("gh", "__", &name, 64);
    assert_eq!(out.len(), 64);
    assert!(out.starts_with("gh__nnn"));
    assert!(is_valid_name(&out));
    let (head, hash) = out.split_at(64 - 9);
    assert!(
        head.chars()
            .all(|c| c == 'g' || c == 'h' || c == '_' || c == 'n')
    );
    assert_eq!(&hash[..1], "-");
    assert!(
        hash[1..]
            .chars()
            .all(|c| matches!(c, '0'..='9' | 'a'..='f'))
    );
    // Expected digest prefix: SHA-256 of the full unsanitised encoded name.
    let digest = Sha256::digest(format!("gh__{name}").as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    assert_eq!(&hash[1..], hex);
}

#[test]
fn expose_exactly_max_len_is_not_shortened() {
    let name = "n".repeat(60);
    assert_eq!(expose("gh", "__", &name, 64), format!("gh__{name}"));
    let name = "n".repeat(61);
    assert_eq!(expose("gh", "__", &name, 64).len(), 64);
    assert_ne!(
        expose("gh", "__", &name, 64),
        format!("gh__{}", &name[..60])
    );
}

#[test]
fn expose_distinguishes_names_differing_past_cut() {
    let a = format!("{}a", "x".repeat(150));
    let b = format!("{}b", "x".repeat(150));
    assert_ne!(expose("p", "__", &a, 128), expose("p", "__", &b, 128));
    // Replaced characters past the cut are also told apart by the digest.
    let c = format!("{}ä", "x".repeat(150));
    let d = format!("{}ö", "x".repeat(150));
    assert_ne!(expose("p", "__", &c, 128), expose("p", "__", &d, 128));
}

#[test]
fn expose_clamps_max_len() {
    let name = "n".repeat(300);
    assert_eq!(expose("p", "__", &name, 0).len(), MIN_EXPOSED_LEN);
    assert_eq!(expose("p", "__", &name, 5).len(), MIN_EXPOSED_LEN);
    assert_eq!(expose("p", "__", &name, 1000).len(), MAX_NAME_LEN);
    assert!(is_valid_name(&expose("p", "__", &name, 0)));
}

#[test]
fn expose_long_prefix_that_does_not_fit() {
    let prefix = "p".repeat(100);
    let out = expose(&prefix, "__", "tool", 32);
    assert_eq!(out.len(), 32);
    assert!(out.starts_with(&"p".repeat(23)));
    assert!(is_valid_name(&out));
}
