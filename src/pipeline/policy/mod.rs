//! Authorization policy: rules by principal, claim or scope that allow or deny tools,
//! prompts and resources, by upstream and glob.
//!
//! - On the way in, a call (`tools/call`, `prompts/get`, `resources/read`,
//!   `resources/subscribe`, `completion/complete`, and the URIs of a 2026-07-28
//!   `subscriptions/listen`) is resolved through the catalog to its
//!   upstream and the upstream's own name, and refused when the policy denies it: with the
//!   router's own "unknown" error (`denied_as: unknown`, the default), or -32014 / HTTP 403
//!   (`denied_as: forbidden`).
//! - Listings are filtered so a client never sees what it may not call: the stage hands the
//!   router a filter for the principal ([`RequestContext::list_filter`]), and the router
//!   cuts each page first and filters it after, so a page may come back shorter than the page
//!   size (even empty); `nextCursor` is kept. The filter is keyed by the rules that apply to
//!   the principal (and this stage), so principals the same rules apply to share the
//!   catalog's cached pages.

mod eval;
mod uri;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

pub use crate::config::policy::{ClaimValues, DeniedAs, Effect, PolicyConfig, Rule, Who};
pub use eval::{Decider, ItemKind};

use super::{DynStage, Next, Outcome, RequestContext, Stage};
use crate::aggregate::catalog::Kind;
use crate::aggregate::merge::{Catalog, ItemFilter};
use crate::protocol::{Era, ErrorObject, Request, codes, methods};
use crate::upstream::Upstreams;

/// The stage exists when there is something to enforce: a rule, or a `deny` default.
pub fn stage(config: &PolicyConfig, upstreams: &Arc<Upstreams>) -> Option<Arc<dyn DynStage>> {
    /// Numbers the stages built, so listing filters of different configurations (a reload)
    /// never share a key.
    static STAGES: AtomicU64 = AtomicU64::new(1);
    (config.default == Effect::Deny || !config.rules.is_empty()).then(|| {
        Arc::new(Policy {
            config: Arc::new(config.clone()),
            upstreams: upstreams.clone(),
            id: STAGES.fetch_add(1, Ordering::Relaxed),
        }) as Arc<dyn DynStage>
    })
}

struct Policy {
    config: Arc<PolicyConfig>,
    upstreams: Arc<Upstreams>,
    id: u64,
}

/// What one principal may see of listings: the rules that apply to it.
struct ListFilter {
    config: Arc<PolicyConfig>,
    matching: Vec<usize>,
    /// The stage, then the positions in `matching`.
    key: Vec<u64>,
}

impl ItemFilter for ListFilter {
    fn key(&self) -> &[u64] {
        &self.key
    }

    fn shows(&self, kind: Kind, upstream: &str, name: &str) -> bool {
        match kind {
            // Listed as it would be read: the same check as `resources/read`.
            Kind::Resources => self.config.allows_uri_with(&self.matching, upstream, name),
            _ => self
                .config
                .allows_with(&self.matching, item_kind(kind), upstream, name),
        }
    }
}

fn item_kind(kind: Kind) -> ItemKind {
    match kind {
        Kind::Tools => ItemKind::Tool,
        Kind::Prompts => ItemKind::Prompt,
        Kind::Resources | Kind::ResourceTemplates => ItemKind::Resource,
    }
}

impl Stage for Policy {
    fn name(&self) -> &'static str {
        "policy"
    }

    async fn handle(&self, ctx: &mut RequestContext, req: &Request, next: Next<'_>) -> Outcome {
        let decider = self.config.decider(ctx.principal());
        if let Some(refusal) = refuse(
            &self.upstreams,
            ctx.era(),
            &decider,
            self.config.denied_as,
            req,
        ) {
            tracing::debug!(method = %req.method, subject = %ctx.principal().subject, "Policy refused the request");
            return Err(refusal);
        }
        if let Some(kind) = listed_kind(&req.method)
            && !decider.allows_all(item_kind(kind))
        {
            let matching = self.config.matching(ctx.principal());
            let key = std::iter::once(self.id)
                .chain(matching.iter().map(|&i| i as u64))
                .collect();
            ctx.list_filter = Some(Arc::new(ListFilter {
                config: self.config.clone(),
                matching,
                key,
            }));
        }
        next.run(ctx, req).await
    }
}

/// The listing a method returns, if it is a list method.
fn listed_kind(method: &str) -> Option<Kind> {
    match method {
        methods::TOOLS_LIST => Some(Kind::Tools),
        methods::PROMPTS_LIST => Some(Kind::Prompts),
        methods::RESOURCES_LIST => Some(Kind::Resources),
        methods::RESOURCES_TEMPLATES_LIST => Some(Kind::ResourceTemplates),
        _ => None,
    }
}

/// What a denied request targets, for the error the client gets.
enum Target<'r> {
    Tool(&'r str),
    Prompt(&'r str),
    Resource(&'r str),
    /// A `completion/complete` `ref/resource`: the router's error for it differs.
    CompletionResource(&'r str),
}

/// The refusal for a request the policy denies; `None` lets it through. A target that does
/// not resolve is let through too: the router then gives its own "unknown" answer.
fn refuse(
    upstreams: &Upstreams,
    era: Era,
    decider: &Decider<'_>,
    denied_as: DeniedAs,
    req: &Request,
) -> Option<ErrorObject> {
    let catalog = upstreams.catalog(era);
    if req.method == methods::SUBSCRIPTIONS_LISTEN {
        return refuse_listen(upstreams, &catalog, decider, denied_as, req);
    }
    let str_param = |key: &str| req.param(key).and_then(Value::as_str);
    let (target, kind, upstream, name) = match req.method.as_str() {
        methods::TOOLS_CALL => {
            let exposed = str_param("name")?;
            let route = catalog.tool(exposed)?;
            (
                Target::Tool(exposed),
                ItemKind::Tool,
                route.upstream,
                route.name.as_str(),
            )
        }
        methods::PROMPTS_GET => {
            let exposed = str_param("name")?;
            let route = catalog.prompt(exposed)?;
            (
                Target::Prompt(exposed),
                ItemKind::Prompt,
                route.upstream,
                route.name.as_str(),
            )
        }
        methods::RESOURCES_READ | methods::RESOURCES_SUBSCRIBE => {
            let uri = str_param("uri")?;
            (
                Target::Resource(uri),
                ItemKind::Resource,
                catalog.resource_owner(uri)?,
                uri,
            )
        }
        methods::COMPLETION_COMPLETE => {
            let reference = req.param("ref")?;
            let field = |key: &str| reference.get(key).and_then(Value::as_str);
            match field("type")? {
                "ref/prompt" => {
                    let exposed = field("name")?;
                    let route = catalog.prompt(exposed)?;
                    (
                        Target::Prompt(exposed),
                        ItemKind::Prompt,
                        route.upstream,
                        route.name.as_str(),
                    )
                }
                "ref/resource" => {
                    let uri = field("uri")?;
                    let owner = catalog
                        .template_owner(uri)
                        .or_else(|| catalog.resource_owner(uri))?;
                    (
                        Target::CompletionResource(uri),
                        ItemKind::Resource,
                        owner,
                        uri,
                    )
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    let upstream = upstreams.get(upstream)?;
    let upstream = upstream.name();
    let allowed = match kind {
        // The upstream may decode or resolve the URI: its normal form is checked too.
        ItemKind::Resource => decider.allows_uri(upstream, name),
        _ => decider.allows(kind, upstream, name),
    };
    if allowed {
        return None;
    }
    Some(denial(target, denied_as))
}

/// A 2026-07-28 listen stream naming a resource the caller may not read is refused the way
/// `resources/subscribe` to it would be: updates would otherwise reveal it.
fn refuse_listen(
    upstreams: &Upstreams,
    catalog: &Catalog,
    decider: &Decider<'_>,
    denied_as: DeniedAs,
    req: &Request,
) -> Option<ErrorObject> {
    let uris = req
        .params_except_arguments()?
        .pointer("/notifications/resourceSubscriptions")?
        .as_array()?;
    uris.iter().filter_map(Value::as_str).find_map(|uri| {
        let upstream = upstreams.get(catalog.resource_owner(uri)?)?;
        (!decider.allows_uri(upstream.name(), uri))
            .then(|| denial(Target::Resource(uri), denied_as))
    })
}

fn denial(target: Target<'_>, denied_as: DeniedAs) -> ErrorObject {
    match denied_as {
        // Word for word what `router::calls` answers for a name nobody serves.
        DeniedAs::Unknown => match target {
            Target::Tool(name) => ErrorObject::invalid_params(format!("Unknown tool: {name}")),
            Target::Prompt(name) => ErrorObject::invalid_params(format!("Unknown prompt: {name}")),
            Target::Resource(uri) => ErrorObject::resource_not_found(uri),
            Target::CompletionResource(uri) => {
                ErrorObject::invalid_params(format!("Unknown resource or template: {uri}"))
            }
        },
        DeniedAs::Forbidden => {
            let (what, name) = match target {
                Target::Tool(name) => ("tool", name),
                Target::Prompt(name) => ("prompt", name),
                Target::Resource(uri) | Target::CompletionResource(uri) => ("resource", uri),
            };
            ErrorObject::new(
                codes::UNAUTHORIZED,
                format!("Forbidden: the policy does not allow {what} {name}"),
            )
            .with_data(json!({ "kind": what, "name": name }))
        }
    }
}
