//! RFC 6570 templates as matchers: any template text and any URI (split at the first
//! newline) must parse or be refused and match or not, without a panic; a template without
//! expressions matches exactly its own text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manifold::aggregate::uri_template::UriTemplate;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, uri) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(parsed) = UriTemplate::parse(template) else {
        return;
    };
    let _ = parsed.matches(uri);
    let _ = parsed.specificity();
    if !template.contains(['{', '}']) {
        assert!(
            parsed.matches(template),
            "literal template {template:?} misses itself"
        );
        assert_eq!(parsed.matches(uri), uri == template);
    }
});
