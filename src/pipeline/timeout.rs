//! Request timeouts: per tool (the upstream's `tool_timeouts`, by glob over the upstream's own
//! tool names) and per upstream (`timeout`). The stage resolves the deadline and hands it to
//! the router; the upstream connection enforces it, and when it fires the upstream is sent
//! `notifications/cancelled` for the request and the client gets error -32011.

use std::sync::Arc;
use std::time::Duration;

use super::{DynStage, Next, Outcome, RequestContext, Stage};
use crate::config::UpstreamConfig;
use crate::protocol::{Request, methods};
use crate::upstream::Upstreams;

/// The stage exists only when some upstream has per-tool timeouts; otherwise each upstream's
/// own `timeout` applies without it.
pub fn stage(upstreams: &Arc<Upstreams>) -> Option<Arc<dyn DynStage>> {
    upstreams
        .iter()
        .any(|u| !u.config.tool_timeouts.is_empty())
        .then(|| {
            Arc::new(Timeout {
                upstreams: upstreams.clone(),
            }) as Arc<dyn DynStage>
        })
}

/// The timeout for `tool` (the upstream's own name) on `upstream`.
pub fn for_tool(upstream: &UpstreamConfig, tool: &str) -> Duration {
    upstream
        .tool_timeouts
        .iter()
        .find(|(pattern, _)| pattern.matches(tool))
        .map_or(upstream.timeout, |(_, timeout)| *timeout)
}

struct Timeout {
    upstreams: Arc<Upstreams>,
}

impl Stage for Timeout {
    fn name(&self) -> &'static str {
        "timeout"
    }

    async fn handle(&self, ctx: &mut RequestContext, req: &Request, next: Next<'_>) -> Outcome {
        if req.method == methods::TOOLS_CALL
            && let Some(owner) = super::owner::owner(&self.upstreams, ctx.era(), req)
            && let Some(tool) = &owner.tool
        {
            let upstream = &self.upstreams.at(owner.upstream).config;
            ctx.deadline = Some(for_tool(upstream, tool));
        }
        next.run(ctx, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pattern;

    #[test]
    fn the_most_specific_glob_wins_whatever_the_file_order() {
        let yaml = "upstreams:\n  a:\n    command: x\n    tool_timeouts:\n      \"*\": 30s\n      \"report_*\": 10m\n      \"report_daily\": 1h\n";
        let upstream = crate::config::from_yaml_str(yaml, &|_| None)
            .unwrap()
            .upstreams
            .remove(0);
        assert_eq!(
            for_tool(&upstream, "report_weekly"),
            Duration::from_secs(600)
        );
        assert_eq!(
            for_tool(&upstream, "report_daily"),
            Duration::from_secs(3600)
        );
        assert_eq!(for_tool(&upstream, "other"), Duration::from_secs(30));
    }

    #[test]
    fn first_matching_glob_wins_else_the_upstream_timeout() {
        let mut upstream =
            crate::config::from_yaml_str("upstreams: {a: {command: x, timeout: 7s}}", &|_| None)
                .unwrap()
                .upstreams
                .remove(0);
        upstream.tool_timeouts = vec![
            (Pattern::new("slow_*").unwrap(), Duration::from_secs(300)),
            (Pattern::new("*").unwrap(), Duration::from_secs(2)),
        ];
        assert_eq!(for_tool(&upstream, "slow_report"), Duration::from_secs(300));
        assert_eq!(for_tool(&upstream, "fast"), Duration::from_secs(2));
        upstream.tool_timeouts.clear();
        assert_eq!(for_tool(&upstream, "fast"), Duration::from_secs(7));
    }
}
