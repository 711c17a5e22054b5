//! The `policy` section: its serde shape and the load-time checks serde cannot make.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::auth::AuthMethod;
use super::{Config, ConfigError, Pattern};

/// The `policy` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// What happens to an item no rule decides. Default `allow`.
    pub default: Effect,
    /// How a refused call reads to the client. Default `unknown`.
    pub denied_as: DeniedAs,
    /// Checked in order for each item; the first rule that applies decides.
    pub rules: Vec<Rule>,
}

/// Whether a rule (or the default) lets an item through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    #[default]
    Allow,
    Deny,
}

/// What a client is told when the policy refuses a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeniedAs {
    /// Exactly what the router says for a name nobody serves: the client cannot tell a
    /// hidden item from a missing one.
    #[default]
    Unknown,
    /// Error -32014 (HTTP 403): honest about the refusal, but confirms the item exists.
    Forbidden,
}

/// One rule: who it is about, what it decides, and for which items.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Which principals the rule is about; omitted or empty means everyone.
    #[serde(default)]
    pub who: Who,
    pub effect: Effect,
    /// Upstream names the rule is limited to; omitted means every upstream.
    #[serde(default)]
    pub upstreams: Option<Vec<String>>,
    /// Globs over the upstream's own tool names. A kind left out is not decided by this rule.
    #[serde(default)]
    pub tools: Option<Vec<Pattern>>,
    /// Globs over the upstream's own prompt names.
    #[serde(default)]
    pub prompts: Option<Vec<Pattern>>,
    /// Globs over resource URIs; also matched against resource templates' `uriTemplate`.
    #[serde(default)]
    pub resources: Option<Vec<Pattern>>,
}

/// Conditions on the principal; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Who {
    /// Subject globs; one must match.
    pub subjects: Option<Vec<Pattern>>,
    /// How the principal authenticated (`api_key`, `jwt`, `local`, `anonymous`); one must
    /// match. Subjects alone do not tell an API key named `ci` from a JWT user `ci`.
    pub auth: Option<Vec<AuthMethod>>,
    /// Claim name → accepted values; each claim must equal (or, for an array claim, contain)
    /// one of its values.
    pub claims: BTreeMap<String, ClaimValues>,
    /// Scopes the principal must all hold.
    pub scopes: Vec<String>,
}

/// One claim value or a list of them, compared as text (`3`, `true`, `admins`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimValues(pub Vec<String>);

impl<'de> Deserialize<'de> for ClaimValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let one = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let bad = || serde::de::Error::custom("expected a string, number or boolean, or a list");
        match Value::deserialize(d)? {
            Value::Array(items) => items
                .iter()
                .map(|v| one(v).ok_or_else(bad))
                .collect::<Result<_, _>>()
                .map(ClaimValues),
            other => one(&other).map(|v| ClaimValues(vec![v])).ok_or_else(bad),
        }
    }
}

impl PolicyConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        super::section::section("policy", raw, errors)
    }
}

/// The checks that need the rest of the configuration (upstream names) or that serde cannot
/// express: every rule names at least one kind, no list is empty, every upstream exists.
pub fn check(config: &Config, errors: &mut Vec<ConfigError>) {
    for (i, rule) in config.policy.rules.iter().enumerate() {
        let at = format!("policy.rules[{i}]");
        if rule.tools.is_none() && rule.prompts.is_none() && rule.resources.is_none() {
            errors.push(ConfigError::new(
                &at,
                "names no tools, prompts or resources: a rule decides only the kinds it lists",
            ));
        }
        let lists = [
            ("tools", rule.tools.as_ref().map(Vec::len)),
            ("prompts", rule.prompts.as_ref().map(Vec::len)),
            ("resources", rule.resources.as_ref().map(Vec::len)),
            ("upstreams", rule.upstreams.as_ref().map(Vec::len)),
            ("who.subjects", rule.who.subjects.as_ref().map(Vec::len)),
            ("who.auth", rule.who.auth.as_ref().map(Vec::len)),
        ];
        for (key, len) in lists {
            if len == Some(0) {
                errors.push(ConfigError::new(
                    format!("{at}.{key}"),
                    "is empty and would match nothing; leave the key out to mean all",
                ));
            }
        }
        for (claim, values) in &rule.who.claims {
            if values.0.is_empty() {
                errors.push(ConfigError::new(
                    format!("{at}.who.claims.{claim}"),
                    "is empty and would match nobody",
                ));
            }
        }
        for (j, name) in rule.upstreams.iter().flatten().enumerate() {
            if config.upstream(name).is_none() {
                errors.push(ConfigError::new(
                    format!("{at}.upstreams[{j}]"),
                    format!("unknown upstream {name:?}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::auth::AuthMethod;

    fn load(yaml: &str) -> Result<crate::config::Config, String> {
        let upstreams = "upstreams: {github: {command: x}}\n";
        crate::config::from_yaml_str(&format!("{upstreams}policy:\n{yaml}"), &|_| None)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_policy_loads() {
        let config = load(
            "  default: deny\n  denied_as: forbidden\n  rules:\n    - who: {subjects: [alice, \"svc-*\"], auth: [jwt, api_key], claims: {groups: admins}, scopes: [admin]}\n      effect: allow\n      upstreams: [github]\n      tools: [\"*\"]\n      prompts: [\"*\"]\n      resources: [\"file:///*\"]\n    - {effect: deny, tools: [x]}\n",
        )
        .unwrap();
        let policy = &config.policy;
        assert_eq!(policy.default, super::Effect::Deny);
        assert_eq!(policy.denied_as, super::DeniedAs::Forbidden);
        assert_eq!(policy.rules.len(), 2);
        assert_eq!(policy.rules[0].who.claims["groups"].0, vec!["admins"]);
        assert_eq!(
            policy.rules[0].who.auth,
            Some(vec![AuthMethod::Jwt, AuthMethod::ApiKey])
        );
        assert_eq!(policy.rules[1].who, super::Who::default());
    }

    #[test]
    fn rule_problems_are_reported_with_their_path() {
        let cases = [
            (
                "  rules: [{effect: deny}]",
                "policy.rules[0]: names no tools, prompts or resources",
            ),
            (
                "  rules: [{effect: deny, tools: [x], upstreams: [github, gitlab]}]",
                "policy.rules[0].upstreams[1]: unknown upstream \"gitlab\"",
            ),
            (
                "  rules: [{effect: deny, tools: []}]",
                "policy.rules[0].tools: is empty",
            ),
            (
                "  rules: [{effect: deny, tools: [x], upstreams: []}]",
                "policy.rules[0].upstreams: is empty",
            ),
            (
                "  rules: [{effect: deny, tools: [x], who: {subjects: []}}]",
                "policy.rules[0].who.subjects: is empty",
            ),
            (
                "  rules: [{effect: deny, tools: [x], who: {auth: []}}]",
                "policy.rules[0].who.auth: is empty",
            ),
            (
                "  rules: [{effect: deny, tools: [x], who: {auth: [jwt, apikey]}}]",
                "policy.rules[0].who.auth[1]: unknown variant `apikey`",
            ),
            (
                "  rules: [{effect: deny, tools: [x], who: {claims: {g: []}}}]",
                "policy.rules[0].who.claims.g: is empty",
            ),
            (
                "  rules: [{effect: deny, tools: [\"[\"]}]",
                "policy.rules[0].tools[0]: invalid glob \"[\"",
            ),
            (
                "  rules: [{effect: maybe, tools: [x]}]",
                "policy.rules[0].effect: unknown variant `maybe`",
            ),
            ("  rules: [{tools: [x]}]", "missing field `effect`"),
            (
                "  rules: [{effect: deny, tool: [x]}]",
                "policy.rules[0].tool: unknown field",
            ),
            (
                "  denied_as: hidden",
                "policy.denied_as: unknown variant `hidden`",
            ),
            (
                "  rules: [{effect: deny, tools: [x], who: {claims: {g: {a: 1}}}}]",
                "policy.rules[0].who.claims.g: expected a string",
            ),
        ];
        for (yaml, expected) in cases {
            let error = load(yaml).expect_err(yaml);
            assert!(error.contains(expected), "{yaml}\n  got: {error}");
        }
    }
}
