//! Unit tests for `uri_template`.

use super::*;

fn t(template: &str) -> UriTemplate {
    match UriTemplate::parse(template) {
        Ok(t) => t,
        Err(e) => panic!("{template:?} should parse: {e}"),
    }
}

#[test]
fn literal_only() {
    let tpl = t("file:///etc/hosts");
    assert!(tpl.matches("file:///etc/hosts"));
    assert!(!tpl.matches("file:///etc/hosts2"));
    assert!(!tpl.matches("file:///etc/host"));
    assert_eq!(tpl.specificity(), 17);
    assert_eq!(tpl.as_str(), "file:///etc/hosts");
}

#[test]
fn literals_are_not_regex() {
    let tpl = t("a.b+c(d)/{x}");
    assert!(tpl.matches("a.b+c(d)/1"));
    assert!(!tpl.matches("aXb+c(d)/1"));
}

#[test]
fn simple_variable() {
    let tpl = t("db://{table}/rows/{id}");
    assert!(tpl.matches("db://users/rows/42"));
    assert!(!tpl.matches("db://users/rows/"));
    assert!(!tpl.matches("db:///rows/42"));
    assert!(!tpl.matches("db://users/x/rows/42"));
    assert!(!tpl.matches("db://users/rows/42/extra"));
    assert!(!tpl.matches("db://users/rows/42?x=1"));
    assert!(!tpl.matches("db://users/rows/4#2"));
    assert_eq!(tpl.specificity(), "db:///rows/".len());
}

#[test]
fn simple_variable_before_literal_suffix() {
    let tpl = t("file:///{name}.txt");
    assert!(tpl.matches("file:///notes.txt"));
    assert!(tpl.matches("file:///a.b.txt"));
    assert!(!tpl.matches("file:///.txt"));
    assert!(!tpl.matches("file:///notes.md"));
}

#[test]
fn multiple_and_adjacent_variables() {
    assert!(t("m://{x,y}").matches("m://1,2"));
    let adjacent = t("m://{a}{b}");
    assert!(adjacent.matches("m://ab"));
    assert!(!adjacent.matches("m://a"));
}

#[test]
fn reserved_and_fragment() {
    let tpl = t("file:///{+path}");
    assert!(tpl.matches("file:///a/b/c.txt"));
    assert!(!tpl.matches("file:///"));
    let frag = t("doc://x{#section}");
    assert!(frag.matches("doc://x"));
    assert!(frag.matches("doc://x#intro/part"));
    assert!(!frag.matches("doc://xy"));
}

#[test]
fn label_path_and_params() {
    let label = t("host://www{.domain}");
    assert!(label.matches("host://www"));
    assert!(label.matches("host://www.example.com"));
    assert!(!label.matches("host://www/x"));
    let path = t("repo://r{/segments*}");
    assert!(path.matches("repo://r"));
    assert!(path.matches("repo://r/a/b/c"));
    assert!(!path.matches("repo://rx"));
    let params = t("map://m{;x,y}");
    assert!(params.matches("map://m;x=1;y=2"));
    assert!(params.matches("map://m"));
    assert!(!params.matches("map://m/x"));
}

#[test]
fn query_parts_are_optional() {
    let tpl = t("search://items{?q,page}{&lang}");
    assert!(tpl.matches("search://items"));
    assert!(tpl.matches("search://items?q=rust&page=2"));
    assert!(tpl.matches("search://items?q=a&lang=en"));
    assert!(!tpl.matches("search://items/x"));
    assert!(!tpl.matches("search://items?q=a#frag"));
    let cont = t("search://items?fixed=1{&q}");
    assert!(cont.matches("search://items?fixed=1"));
    assert!(cont.matches("search://items?fixed=1&q=x"));
}

#[test]
fn modifiers_are_accepted() {
    assert!(t("x://{var:3}").matches("x://abc"));
    assert!(t("x://{list*}").matches("x://a,b,c"));
    assert!(t("x://{a.b,c_d,%41e:9999}").matches("x://v"));
}

#[test]
fn unicode_and_percent_encoding() {
    let tpl = t("notes://ü/{title}");
    assert!(tpl.matches("notes://ü/caf%C3%A9"));
    assert!(tpl.matches("notes://ü/café"));
    assert_eq!(tpl.specificity(), 10);
}

#[test]
fn parse_errors() {
    use TemplateError::*;
    let err = |s: &str| UriTemplate::parse(s).err();
    assert_eq!(err("x://{a"), Some(Unclosed { at: 4 }));
    assert_eq!(err("x://a}"), Some(UnmatchedClose { at: 5 }));
    assert!(matches!(
        err("x://{}"),
        Some(InvalidExpression { at: 4, .. })
    ));
    assert!(matches!(err("x://{=a}"), Some(InvalidExpression { .. })));
    assert!(matches!(err("x://{a,}"), Some(InvalidExpression { .. })));
    assert!(matches!(err("x://{a b}"), Some(InvalidExpression { .. })));
    assert!(matches!(err("x://{a{b}"), Some(InvalidExpression { .. })));
    assert!(matches!(err("x://{a:0}"), Some(InvalidExpression { .. })));
    assert!(matches!(
        err("x://{a:10000}"),
        Some(InvalidExpression { .. })
    ));
    assert!(matches!(err("x://{a*:3}"), Some(InvalidExpression { .. })));
    assert!(err("x://{.a}").is_none());
    assert!(matches!(err("x://{a.}"), Some(InvalidExpression { .. })));
    assert!(matches!(err("x://{a..b}"), Some(InvalidExpression { .. })));
    assert!(matches!(err("x://{%4}"), Some(InvalidExpression { .. })));
    let long = "x".repeat(MAX_TEMPLATE_LEN + 1);
    assert!(matches!(err(&long), Some(TooLong { .. })));
}

#[test]
fn long_inputs_are_bounded() {
    let tpl = t("x://{+a}");
    assert!(tpl.matches(&format!("x://{}", "a".repeat(MAX_URI_LEN - 4))));
    assert!(!tpl.matches(&format!("x://{}", "a".repeat(MAX_URI_LEN))));
    // The largest templates still compile.
    let many = "{a}".repeat(MAX_TEMPLATE_LEN / 3);
    assert!(t(&many).matches(&"b".repeat(MAX_TEMPLATE_LEN)));
    let many_ops = "{/a}{?b}".repeat(MAX_TEMPLATE_LEN / 8);
    assert!(t(&many_ops).matches("/x/y?z"));
}

#[test]
fn equality_and_display_follow_source() {
    assert_eq!(t("a://{b}"), t("a://{b}"));
    assert_ne!(t("a://{b}"), t("a://{c}"));
    assert_eq!(t("a://{b}").to_string(), "a://{b}");
}
