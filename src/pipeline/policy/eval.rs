//! Decisions: which rules are about a principal, and whether they let an item through.
//!
//! A request first narrows the rules to those whose `who` matches its principal (done once
//! per request), then asks about each item it touches. Patterns are compiled at load time,
//! so a decision is a few glob matches.

use crate::config::policy::{Effect, PolicyConfig, Rule, Who};
use crate::session::Principal;

/// The three kinds of items a rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Tool,
    Prompt,
    /// Resources by URI and resource templates by their `uriTemplate` text.
    Resource,
}

/// The rules that are about one principal, in order, with the default.
pub struct Decider<'a> {
    default: Effect,
    rules: Vec<&'a Rule>,
}

impl PolicyConfig {
    /// The rules that apply to `principal`.
    pub fn decider(&self, principal: &Principal) -> Decider<'_> {
        Decider {
            default: self.default,
            rules: self
                .rules
                .iter()
                .filter(|r| who_matches(&r.who, principal))
                .collect(),
        }
    }

    /// The positions of the rules that apply to `principal`, in order: with the
    /// configuration, all a decision about the principal depends on.
    pub fn matching(&self, principal: &Principal) -> Vec<usize> {
        (0..self.rules.len())
            .filter(|&i| who_matches(&self.rules[i].who, principal))
            .collect()
    }

    /// [`Decider::allows`] for the rules at `matching` (see [`PolicyConfig::matching`]).
    pub fn allows_with(
        &self,
        matching: &[usize],
        kind: ItemKind,
        upstream: &str,
        name: &str,
    ) -> bool {
        let rules = matching.iter().filter_map(|&i| self.rules.get(i));
        allows(self.default, rules, kind, upstream, name)
    }

    /// [`Decider::allows_uri`] for the rules at `matching`.
    pub fn allows_uri_with(&self, matching: &[usize], upstream: &str, uri: &str) -> bool {
        let rules = matching.iter().filter_map(|&i| self.rules.get(i));
        allows_uri(self.default, rules, upstream, uri)
    }
}

/// The first rule naming the item decides; none: the default.
fn allows<'r>(
    default: Effect,
    mut rules: impl Iterator<Item = &'r Rule>,
    kind: ItemKind,
    upstream: &str,
    name: &str,
) -> bool {
    let effect = rules
        .find(|rule| rule_covers(rule, kind, upstream, name))
        .map_or(default, |rule| rule.effect);
    effect == Effect::Allow
}

/// The URI as sent and its normal form must both be allowed.
fn allows_uri<'r>(
    default: Effect,
    rules: impl Iterator<Item = &'r Rule> + Clone,
    upstream: &str,
    uri: &str,
) -> bool {
    allows(default, rules.clone(), ItemKind::Resource, upstream, uri) && {
        let normal = super::uri::normalize(uri);
        normal == uri || allows(default, rules, ItemKind::Resource, upstream, &normal)
    }
}

impl Decider<'_> {
    /// Whether the item `name` (the upstream's own tool or prompt name, or a resource URI or
    /// template) of `upstream` is allowed. The first rule naming the item decides.
    pub fn allows(&self, kind: ItemKind, upstream: &str, name: &str) -> bool {
        allows(
            self.default,
            self.rules.iter().copied(),
            kind,
            upstream,
            name,
        )
    }

    /// Whether the resource `uri` of `upstream` may be read (subscribed to, completed): the
    /// URI as sent and its [normal form](super::uri::normalize) must both be allowed, so
    /// `file:///%73ecret/key` or `file:///public/../secret/key` cannot slip past a rule
    /// about `file:///secret/*` (nor out of an allow-list under `default: deny`).
    pub fn allows_uri(&self, upstream: &str, uri: &str) -> bool {
        allows_uri(self.default, self.rules.iter().copied(), upstream, uri)
    }

    /// Whether every item of a kind is allowed without looking (no rule about this principal
    /// names the kind, and the default allows): listings then pass untouched.
    pub fn allows_all(&self, kind: ItemKind) -> bool {
        self.default == Effect::Allow && self.rules.iter().all(|r| patterns(r, kind).is_none())
    }
}

fn who_matches(who: &Who, principal: &Principal) -> bool {
    let subject = who
        .subjects
        .as_ref()
        .is_none_or(|globs| globs.iter().any(|g| g.matches(&principal.subject)));
    let auth = who
        .auth
        .as_ref()
        .is_none_or(|methods| methods.contains(&principal.method));
    let claims = who
        .claims
        .iter()
        .all(|(name, values)| values.0.iter().any(|v| principal.claim_matches(name, v)));
    let scopes = who.scopes.iter().all(|s| principal.has_scope(s));
    subject && auth && claims && scopes
}

fn patterns(rule: &Rule, kind: ItemKind) -> Option<&[crate::config::Pattern]> {
    match kind {
        ItemKind::Tool => rule.tools.as_deref(),
        ItemKind::Prompt => rule.prompts.as_deref(),
        ItemKind::Resource => rule.resources.as_deref(),
    }
}

fn rule_covers(rule: &Rule, kind: ItemKind, upstream: &str, name: &str) -> bool {
    rule.upstreams
        .as_ref()
        .is_none_or(|names| names.iter().any(|n| n == upstream))
        && patterns(rule, kind).is_some_and(|globs| globs.iter().any(|g| g.matches(name)))
}

#[cfg(test)]
mod tests;
