//! Prometheus metrics: the registry, the `metrics` stage that counts and times every client
//! request (refusals by later stages included), and the text served at `metrics.path`.
//!
//! Every label has a bounded set of values: methods outside the MCP method list count as
//! `other`, tools and upstreams only appear when the catalog knows them (`unknown`
//! otherwise), and nothing per session or per argument is ever a label.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use hashbrown::{Equivalent, HashMap};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::Value;

use super::{DynStage, Next, Outcome, RequestContext, Stage};
use crate::config::metrics::MetricsConfig;
use crate::protocol::{Era, ErrorObject, Request, codes, methods};
use crate::upstream::{Upstream, Upstreams};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    upstream: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    method: &'static str,
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
    upstream: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

/// Every metric the gateway keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<DurationLabels, Histogram>,
    tool_calls: Family<ToolLabels, Counter>,
    rate_limited: Family<LimitLabels, Counter>,
    rate_limit_store_errors: Family<OutcomeLabels, Counter>,
    upstream_up: Family<UpstreamLabels, Gauge>,
    upstream_restarts: Family<UpstreamLabels, Counter>,
    circuit_open: Family<UpstreamLabels, Gauge>,
    circuit_trips: Family<UpstreamLabels, Counter>,
    sessions: Gauge,
    buffered: Gauge,
    reloads: Family<ReloadLabels, Counter>,
    sessions_evicted: Family<LimitLabels, Counter>,
    sessions_refused: Family<LimitLabels, Counter>,
    connections_refused: Family<LimitLabels, Counter>,
    connections_closed: Family<ReasonLabels, Counter>,
    /// The request metrics of each kind of request, once looked up in their families (which
    /// hash the whole label set with SipHash and lock on every lookup).
    handles: RwLock<HashMap<HandleKey, Handles>>,
}

/// A request's label values, as kept in [`Metrics::handles`].
#[derive(PartialEq, Eq)]
struct HandleKey {
    method: &'static str,
    outcome: &'static str,
    upstream: Box<str>,
    tool: Option<Box<str>>,
}

/// The same, borrowed from the request: what a lookup is made with.
struct HandleRef<'a> {
    method: &'static str,
    outcome: &'static str,
    upstream: &'a str,
    tool: Option<&'a str>,
}

/// Hashes the label values of a key, owned or borrowed, the same way.
fn hash_labels<H: Hasher>(state: &mut H, labels: (&str, &str, &str, Option<&str>)) {
    labels.hash(state);
}

impl Hash for HandleKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let tool = self.tool.as_deref();
        hash_labels(state, (self.method, self.outcome, &self.upstream, tool));
    }
}

impl Hash for HandleRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_labels(state, (self.method, self.outcome, self.upstream, self.tool));
    }
}

impl Equivalent<HandleKey> for HandleRef<'_> {
    fn equivalent(&self, key: &HandleKey) -> bool {
        self.method == key.method
            && self.outcome == key.outcome
            && self.upstream == &*key.upstream
            && self.tool == key.tool.as_deref()
    }
}

/// The metrics one kind of request counts into (counters and histograms are shared
/// handles: a clone counts into the same series).
#[derive(Clone)]
struct Handles {
    requests: Counter,
    duration: Histogram,
    tool: Option<Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("manifold");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Client requests by MCP method, owning upstream and outcome",
            requests.clone(),
        );
        // 0.5 ms to ~65 s: from a cached listing to a long tool call.
        let durations = Family::<DurationLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0005, 2.0, 18))) as fn() -> Histogram,
        );
        registry.register(
            "request_duration_seconds",
            "Time from a client request entering the pipeline to its answer",
            durations.clone(),
        );
        let tool_calls = Family::<ToolLabels, Counter>::default();
        registry.register(
            "tool_calls",
            "tools/call requests by exposed tool name, upstream and outcome",
            tool_calls.clone(),
        );
        let rate_limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by the limit that refused them",
            rate_limited.clone(),
        );
        let rate_limit_store_errors = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "rate_limit_store_errors",
            "Requests whose shared rate limits Redis could not check, by what became of them \
             (admitted: on_redis_error open; refused: closed)",
            rate_limit_store_errors.clone(),
        );
        let upstream_up = Family::<UpstreamLabels, Gauge>::default();
        registry.register(
            "upstream_up",
            "1 when the upstream is connected and initialized, else 0",
            upstream_up.clone(),
        );
        let upstream_restarts = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_restarts",
            "Times the upstream's connection was lost or failed to open (each is retried)",
            upstream_restarts.clone(),
        );
        let circuit_open = Family::<UpstreamLabels, Gauge>::default();
        registry.register(
            "upstream_circuit_open",
            "1 while the upstream's circuit is open (requests fail fast), else 0",
            circuit_open.clone(),
        );
        let circuit_trips = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_circuit_trips",
            "Times the upstream's circuit opened after failures in a row",
            circuit_trips.clone(),
        );
        let sessions = Gauge::default();
        registry.register("sessions_active", "Open client sessions", sessions.clone());
        let buffered = Gauge::default();
        registry.register(
            "buffered_bytes",
            "Bytes of messages held for clients' streams (unread or kept for resumption)",
            buffered.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads, by result: applied, or refused (the old one kept serving)",
            reloads.clone(),
        );
        let sessions_evicted = Family::<LimitLabels, Counter>::default();
        registry.register(
            "sessions_evicted",
            "Idle sessions closed to make room for a new one, by the limit that was reached",
            sessions_evicted.clone(),
        );
        let sessions_refused = Family::<LimitLabels, Counter>::default();
        registry.register(
            "sessions_refused",
            "New sessions refused because every session under a limit was busy, by limit",
            sessions_refused.clone(),
        );
        let connections_refused = Family::<LimitLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "TCP connections answered 503 and closed at once, by limit (max, source)",
            connections_refused.clone(),
        );
        let connections_closed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "connections_closed",
            "Connections the gateway closed itself, by reason (idle, header_timeout, body_timeout)",
            connections_closed.clone(),
        );
        Metrics {
            registry,
            sessions_evicted,
            sessions_refused,
            connections_refused,
            connections_closed,
            handles: RwLock::default(),
            requests,
            durations,
            tool_calls,
            rate_limited,
            rate_limit_store_errors,
            upstream_up,
            upstream_restarts,
            circuit_open,
            circuit_trips,
            sessions,
            buffered,
            reloads,
        }
    }
}

impl Metrics {
    /// A rate-limit rejection, by which limit refused (`global`, `principal`, `upstream`,
    /// `tool`, `concurrency`).
    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// A request whose shared buckets Redis could not check: `admitted` or `refused`.
    pub fn rate_limit_store_error(&self, outcome: &'static str) {
        self.rate_limit_store_errors
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// An idle session closed to make room under `limit` (`sessions`, `principal`, `source`).
    pub fn session_evicted(&self, limit: &'static str) {
        self.sessions_evicted
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// A new session refused under `limit`: every session it counts was busy.
    pub fn session_refused(&self, limit: &'static str) {
        self.sessions_refused
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// A connection refused at accept time under `limit` (`max`, `source`).
    pub fn connection_refused(&self, limit: &'static str) {
        self.connections_refused
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// A connection the gateway closed itself (`idle`, `header_timeout`, `body_timeout`).
    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// A configuration reload: `applied` or `refused`.
    pub fn reloaded(&self, result: &'static str) {
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// The exposition text, with gauges read at scrape time: each upstream's health and
    /// restarts, the number of open sessions and the bytes held for them.
    pub fn render(&self, upstreams: &Upstreams, sessions: usize, buffered: usize) -> String {
        // An upstream a reload removed has no health left to report.
        self.upstream_up.clear();
        self.circuit_open.clear();
        for (_, upstream) in upstreams.serving() {
            let labels = UpstreamLabels {
                upstream: upstream.name().to_owned(),
            };
            let up = matches!(upstream.status(), crate::upstream::Status::Ready { .. });
            self.upstream_up.get_or_create(&labels).set(i64::from(up));
            // The upstream keeps the authoritative count; the counter catches up to it.
            let open = upstream.circuit.state() != crate::upstream::circuit::State::Closed;
            self.circuit_open
                .get_or_create(&labels)
                .set(i64::from(open));
            let trips = self.circuit_trips.get_or_create(&labels);
            trips.inc_by(upstream.circuit.trips().saturating_sub(trips.get()));
            let restarts = self.upstream_restarts.get_or_create(&labels);
            let seen = restarts.get();
            restarts.inc_by(upstream.failures().saturating_sub(seen));
        }
        self.sessions
            .set(i64::try_from(sessions).unwrap_or(i64::MAX));
        self.buffered
            .set(i64::try_from(buffered).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    fn record(
        &self,
        method: &'static str,
        target: &Target,
        outcome: &'static str,
        started: Instant,
    ) {
        let labels = HandleRef {
            method,
            outcome,
            upstream: target.upstream(),
            tool: target.tool,
        };
        let known = self
            .handles
            .read()
            .ok()
            .and_then(|h| h.get(&labels).cloned());
        let handles = known.unwrap_or_else(|| self.handles_for(&labels));
        handles.requests.inc();
        handles.duration.observe(started.elapsed().as_secs_f64());
        if let Some(tool) = &handles.tool {
            tool.inc();
        }
    }

    /// The metrics of a kind of request not seen before, from their families; kept for
    /// the next one.
    fn handles_for(&self, labels: &HandleRef<'_>) -> Handles {
        let upstream = labels.upstream.to_owned();
        let handles = Handles {
            requests: self
                .requests
                .get_or_create(&RequestLabels {
                    method: labels.method,
                    upstream: upstream.clone(),
                    outcome: labels.outcome,
                })
                .clone(),
            duration: self
                .durations
                .get_or_create(&DurationLabels {
                    method: labels.method,
                    upstream: upstream.clone(),
                })
                .clone(),
            tool: labels.tool.map(|tool| {
                self.tool_calls
                    .get_or_create(&ToolLabels {
                        tool: tool.to_owned(),
                        upstream: upstream.clone(),
                        outcome: labels.outcome,
                    })
                    .clone()
            }),
        };
        if let Ok(mut known) = self.handles.write() {
            known.insert(
                HandleKey {
                    method: labels.method,
                    outcome: labels.outcome,
                    upstream: upstream.into(),
                    tool: labels.tool.map(Into::into),
                },
                handles.clone(),
            );
        }
        handles
    }
}

pub fn stage(
    config: &MetricsConfig,
    metrics: &Arc<Metrics>,
    upstreams: &Arc<Upstreams>,
) -> Option<Arc<dyn DynStage>> {
    config.enabled.then(|| {
        Arc::new(Measure {
            metrics: metrics.clone(),
            upstreams: upstreams.clone(),
        }) as Arc<dyn DynStage>
    })
}

struct Measure {
    metrics: Arc<Metrics>,
    upstreams: Arc<Upstreams>,
}

impl Stage for Measure {
    fn name(&self) -> &'static str {
        "metrics"
    }

    async fn handle(&self, ctx: &mut RequestContext, req: &Request, next: Next<'_>) -> Outcome {
        // Counted on drop too, as `abandoned`: the client went away or nobody resumed the
        // request's stream before it had an outcome.
        let mut pending = Pending {
            metrics: &self.metrics,
            upstreams: &self.upstreams,
            era: ctx.era(),
            req,
            started: Instant::now(),
            done: false,
        };
        let outcome = next.run(ctx, req).await;
        pending.finish(&outcome);
        outcome
    }
}

/// A request being measured; recorded exactly once, when it finishes or is dropped.
struct Pending<'a> {
    metrics: &'a Metrics,
    upstreams: &'a Upstreams,
    era: Era,
    req: &'a Request,
    started: Instant,
    done: bool,
}

impl Pending<'_> {
    fn finish(&mut self, outcome: &Outcome) {
        self.done = true;
        let target = Target::of(self.upstreams, self.era, self.req, outcome);
        self.metrics.record(
            method_label(&self.req.method),
            &target,
            outcome_label(outcome),
            self.started,
        );
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            let target = Target::of(self.upstreams, self.era, self.req, &Ok(Value::Null.into()));
            self.metrics.record(
                method_label(&self.req.method),
                &target,
                "abandoned",
                self.started,
            );
        }
    }
}

/// What a request was about, as bounded label values (borrowed: most requests find their
/// metrics in [`Metrics::handles`] without a copy of them).
struct Target<'a> {
    /// The owning upstream (its name), or a fixed label: `unknown`, or empty for requests
    /// the gateway answers itself.
    upstream: Result<Arc<Upstream>, &'static str>,
    /// The exposed tool name of a `tools/call` the catalog knows; `unknown` for others.
    tool: Option<&'a str>,
}

impl<'a> Target<'a> {
    fn upstream(&self) -> &str {
        match &self.upstream {
            Ok(upstream) => upstream.name(),
            Err(label) => label,
        }
    }

    fn of(upstreams: &Upstreams, era: Era, req: &'a Request, outcome: &Outcome) -> Target<'a> {
        // A request answered "unknown" or "forbidden" may name an item the policy hides from
        // its caller; `/metrics` must not tell anyone else that it exists.
        let hidden = matches!(outcome, Err(e) if matches!(
            e.code,
            codes::INVALID_PARAMS | codes::RESOURCE_NOT_FOUND | codes::UNAUTHORIZED
        ));
        let owner = (!hidden)
            .then(|| super::owner::upstream_of(upstreams, era, req))
            .flatten();
        let upstream = match owner {
            Some(i) => Ok(upstreams.at(i)),
            None if super::owner::is_routed(&req.method) => Err("unknown"),
            None => Err(""),
        };
        let tool = (req.method == methods::TOOLS_CALL).then(|| {
            owner
                .and_then(|_| req.param("name").and_then(Value::as_str))
                .unwrap_or("unknown")
        });
        Target { upstream, tool }
    }
}

/// The method as a label: one of the MCP methods the gateway knows, else `other`.
fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        methods::INITIALIZE,
        methods::PING,
        methods::TOOLS_LIST,
        methods::TOOLS_CALL,
        methods::PROMPTS_LIST,
        methods::PROMPTS_GET,
        methods::RESOURCES_LIST,
        methods::RESOURCES_TEMPLATES_LIST,
        methods::RESOURCES_READ,
        methods::RESOURCES_SUBSCRIBE,
        methods::RESOURCES_UNSUBSCRIBE,
        methods::COMPLETION_COMPLETE,
        methods::LOGGING_SET_LEVEL,
        methods::SERVER_DISCOVER,
        methods::SUBSCRIPTIONS_LISTEN,
        methods::TASKS_GET,
        methods::TASKS_RESULT,
        methods::TASKS_LIST,
        methods::TASKS_CANCEL,
        methods::TASKS_UPDATE,
    ];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// How a request ended, as a label: `ok`, `tool_error` (a result with `isError`), or the
/// kind of error.
pub fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Ok(result) if result.is_error() => "tool_error",
        Ok(_) => "ok",
        Err(e) => error_label(e),
    }
}

fn error_label(e: &ErrorObject) -> &'static str {
    match e.code {
        codes::RATE_LIMITED => "rate_limited",
        codes::UNAUTHORIZED => "unauthorized",
        codes::UPSTREAM_TIMEOUT => "timeout",
        codes::UPSTREAM_UNAVAILABLE => "unavailable",
        codes::REQUEST_CANCELLED => "cancelled",
        codes::GATEWAY_BUSY => "busy",
        codes::INVALID_PARAMS | codes::INVALID_REQUEST | codes::METHOD_NOT_FOUND => "invalid",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_stay_bounded() {
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("x/made-up-by-a-client"), "other");
        assert_eq!(
            outcome_label(&Ok(json!({"isError": true}).into())),
            "tool_error"
        );
        assert_eq!(outcome_label(&Ok(json!({}).into())), "ok");
        let limited = ErrorObject::new(codes::RATE_LIMITED, "slow down");
        assert_eq!(outcome_label(&Err(limited)), "rate_limited");
    }

    #[test]
    fn exposition_lists_the_families() {
        let metrics = Metrics::default();
        metrics.rate_limited("principal");
        metrics.rate_limited("principal");
        let target = Target {
            upstream: Err("alpha"),
            tool: None,
        };
        metrics.record("tools/list", &target, "ok", Instant::now());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        assert!(
            text.contains("manifold_rate_limited_total{limit=\"principal\"} 2"),
            "{text}"
        );
        assert!(text.contains("# TYPE manifold_request_duration_seconds histogram"));
    }

    /// The second request of a kind counts through the handles the first one kept, into
    /// the same series; another outcome or tool is a series of its own.
    #[test]
    fn requests_of_one_kind_count_into_one_series() {
        let metrics = Metrics::default();
        let call = |tool, outcome| {
            let target = Target {
                upstream: Err("alpha"),
                tool: Some(tool),
            };
            metrics.record("tools/call", &target, outcome, Instant::now());
        };
        call("alpha__echo", "ok");
        call("alpha__echo", "ok");
        call("alpha__echo", "tool_error");
        call("alpha__add", "ok");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        for series in [
            r#"manifold_requests_total{method="tools/call",upstream="alpha",outcome="ok"} 3"#,
            r#"manifold_requests_total{method="tools/call",upstream="alpha",outcome="tool_error"} 1"#,
            r#"manifold_tool_calls_total{tool="alpha__echo",upstream="alpha",outcome="ok"} 2"#,
            r#"manifold_tool_calls_total{tool="alpha__echo",upstream="alpha",outcome="tool_error"} 1"#,
            r#"manifold_tool_calls_total{tool="alpha__add",upstream="alpha",outcome="ok"} 1"#,
            r#"manifold_request_duration_seconds_count{method="tools/call",upstream="alpha"} 4"#,
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
    }
}
