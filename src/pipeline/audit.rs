//! The audit log: one structured line per tool call, prompt get and resource read, with who
//! asked, what, which upstream served it, the outcome and the duration. Lines go to the log
//! target `manifold::audit` at `info` (JSON with `--log-format json`); filter them with
//! `MANIFOLD_LOG` like any other target.
//!
//! Arguments are redacted by default: the line lists their names, not their values, since
//! values often hold personal data or secrets. `audit.include_arguments: true` logs them.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::{DynStage, Next, Outcome, RequestContext, Stage};
use crate::config::audit::AuditConfig;
use crate::protocol::arguments::Shape;
use crate::protocol::{Request, methods};
use crate::telemetry::text::Line;
use crate::upstream::Upstreams;

pub fn stage(config: &AuditConfig, upstreams: &Arc<Upstreams>) -> Option<Arc<dyn DynStage>> {
    config.enabled.then(|| {
        Arc::new(Audit {
            include_arguments: config.include_arguments,
            upstreams: upstreams.clone(),
        }) as Arc<dyn DynStage>
    })
}

struct Audit {
    include_arguments: bool,
    upstreams: Arc<Upstreams>,
}

impl Stage for Audit {
    fn name(&self) -> &'static str {
        "audit"
    }

    async fn handle(&self, ctx: &mut RequestContext, req: &Request, next: Next<'_>) -> Outcome {
        let Some((kind, target)) = audited(req) else {
            return next.run(ctx, req).await;
        };
        // The request outlives the entry: its text is borrowed, not copied.
        let entry = Entry {
            principal: ctx.caller.principal.clone(),
            session: ctx.session.clone(),
            transport: ctx.caller.transport,
            method: &req.method,
            kind,
            target,
            upstream: super::owner::upstream_of(&self.upstreams, ctx.era(), req)
                .map(|i| self.upstreams.at(i)),
            arguments: if self.include_arguments {
                req.param("arguments")
                    .map(Value::to_string)
                    .unwrap_or_default()
            } else {
                req.arguments_shape().map(redacted).unwrap_or_default()
            },
            started: Instant::now(),
        };
        async move {
            // Written on drop too: a request abandoned half-way (its client went away, or
            // nobody resumed its stream) still leaves its line.
            let mut pending = Pending(Some(entry));
            let outcome = next.run(ctx, req).await;
            if let Some(entry) = pending.0.take() {
                let code = outcome.as_ref().err().map(|e| e.code);
                entry.write(super::metrics::outcome_label(&outcome), code);
            }
            outcome
        }
        .await
    }
}

/// What one audit line says besides the outcome, gathered before the request runs.
struct Entry<'r> {
    principal: Arc<crate::session::Principal>,
    session: Option<Arc<crate::session::Session>>,
    transport: &'static str,
    method: &'r str,
    kind: &'static str,
    target: &'r str,
    upstream: Option<Arc<crate::upstream::Upstream>>,
    arguments: String,
    started: Instant,
}

/// The log target of audit lines.
const TARGET: &str = "manifold::audit";

impl Entry<'_> {
    /// Logs the line: written straight to the text log when that is where it goes (see
    /// [`Line`]), as an event otherwise. Both read the same.
    fn write(&self, outcome: &'static str, code: Option<i32>) {
        if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            return;
        }
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        match Line::start(TARGET, tracing::Level::INFO) {
            Some(mut line) => {
                self.fill(&mut line, outcome, code, duration_ms);
                line.write();
            }
            None => self.event(outcome, code, duration_ms),
        }
    }

    /// The line's fields, in the order and with the types of [`Entry::event`]'s.
    fn fill(&self, line: &mut Line, outcome: &'static str, code: Option<i32>, duration_ms: f64) {
        line.message("audit")
            .display("principal", &printable(&self.principal.subject))
            .str("auth", self.principal.method.as_str())
            .display(
                "session",
                self.session.as_ref().map_or("", |s| super::short(&s.id)),
            )
            .str("transport", self.transport)
            .display("method", self.method)
            .str("kind", self.kind)
            .display("target", &printable(self.target))
            .display("upstream", self.upstream.as_ref().map_or("", |u| u.name()))
            .str("outcome", outcome);
        if let Some(code) = code {
            line.i64("error_code", i64::from(code));
        }
        line.f64("duration_ms", duration_ms)
            .display("arguments", &printable(&self.arguments));
    }

    fn event(&self, outcome: &'static str, code: Option<i32>, duration_ms: f64) {
        tracing::info!(
            target: TARGET,
            principal = %printable(&self.principal.subject),
            auth = self.principal.method.as_str(),
            session = %self.session.as_ref().map_or("", |s| super::short(&s.id)),
            transport = self.transport,
            method = %self.method,
            kind = self.kind,
            target = %printable(self.target),
            upstream = %self.upstream.as_ref().map_or("", |u| u.name()),
            outcome,
            error_code = code,
            duration_ms,
            arguments = %printable(&self.arguments),
            "audit"
        );
    }
}

/// Holds the entry of a request in flight; writes it as `abandoned` if the request is
/// dropped before it has an outcome.
struct Pending<'r>(Option<Entry<'r>>);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(entry) = self.0.take() {
            entry.write("abandoned", None);
        }
    }
}

/// The kind and name of an audited request; `None` for everything else.
fn audited(req: &Request) -> Option<(&'static str, &str)> {
    let text = |key| req.param(key).and_then(Value::as_str).unwrap_or("");
    match req.method.as_str() {
        methods::TOOLS_CALL => Some(("tool", text("name"))),
        methods::PROMPTS_GET => Some(("prompt", text("name"))),
        methods::RESOURCES_READ => Some(("resource", text("uri"))),
        _ => None,
    }
}

/// `text` with control characters escaped (`\n` → `\\n`), so a name or key a client chose
/// cannot start a forged line in the text log format.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        std::borrow::Cow::Owned(text.chars().flat_map(char::escape_default).collect())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Argument names only: `{city, units}`. Not an object: its JSON type.
fn redacted(shape: Shape) -> String {
    match shape {
        Shape::Object(names) => {
            let len = names.iter().map(|n| n.len() + 2).sum::<usize>();
            let mut out = String::with_capacity(len + 2);
            out.push('{');
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(name);
            }
            out.push('}');
            out
        }
        Shape::Other("null") => String::new(),
        Shape::Other(kind) => format!("<{kind}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_keeps_names_and_drops_values() {
        let args = json!({"city": "Paris", "token": "s3cret"});
        let shown = redacted(Shape::of(&args));
        assert_eq!(shown, "{city, token}");
        assert!(!shown.contains("s3cret"));
        assert_eq!(redacted(Shape::of(&json!(["a"]))), "<array>");
    }

    /// Arguments that passed through as text and arguments built as values are redacted
    /// alike.
    #[test]
    fn a_parsed_calls_arguments_are_redacted_as_values_would_be() {
        let text = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"city":"Paris","token":"s3cret"}}}"#;
        let Ok(crate::protocol::Message::Request(parsed)) =
            crate::protocol::Message::parse(text.as_bytes())
        else {
            panic!("parses");
        };
        assert!(parsed.arguments().is_some(), "kept as text");
        let built = Request::new(
            crate::protocol::Id::Num(1),
            methods::TOOLS_CALL,
            Some(json!({"name": "t", "arguments": {"city": "Paris", "token": "s3cret"}})),
        );
        for req in [&parsed, &built] {
            assert_eq!(
                req.arguments_shape().map(redacted).as_deref(),
                Some("{city, token}")
            );
        }
        let none = Request::new(crate::protocol::Id::Num(2), methods::TOOLS_CALL, None);
        assert_eq!(none.arguments_shape(), None);
    }

    #[test]
    fn client_chosen_text_cannot_forge_a_line() {
        let forged = "x\n2026-01-01 INFO manifold::audit: audit principal=admin";
        let shown = printable(forged);
        assert!(!shown.contains('\n'), "{shown}");
        assert!(shown.starts_with("x\\n2026"), "{shown}");
        assert_eq!(printable("alpha__echo"), "alpha__echo");
    }

    #[test]
    fn only_calls_reads_and_prompts_are_audited() {
        let call = Request::new(
            crate::protocol::Id::Num(1),
            methods::TOOLS_CALL,
            Some(json!({"name": "demo__echo"})),
        );
        assert_eq!(audited(&call), Some(("tool", "demo__echo")));
        let list = Request::new(crate::protocol::Id::Num(2), methods::TOOLS_LIST, None);
        assert_eq!(audited(&list), None);
    }

    /// The line written straight to the log and the event the log layer formats read the
    /// same, byte for byte after the time: escapes, quotes, empty fields, a missing and a
    /// present error code, durations.
    #[test]
    fn a_line_written_directly_reads_as_the_event_would() {
        let session = Arc::new(crate::session::Session::new(
            "2025-11-25",
            json!({}),
            json!({}),
        ));
        let alice = crate::session::Principal {
            subject: "alice\n INFO forged".into(),
            ..crate::session::Principal::local()
        };
        let entries = [
            Entry {
                principal: crate::session::Principal::anonymous_shared(),
                session: None,
                transport: "http",
                method: "tools/call",
                kind: "tool",
                target: "fx__tool0",
                upstream: None,
                arguments: "{}".into(),
                started: Instant::now(),
            },
            Entry {
                principal: Arc::new(alice),
                session: Some(session),
                transport: "stdio",
                method: "resources/read",
                kind: "resource",
                target: "file:///tmp/a b\u{1b}[31m\"q\"",
                upstream: None,
                arguments: "{\"k\": \"v\\t\"}".into(),
                started: Instant::now(),
            },
        ];
        let cases = [
            ("ok", None, 5.108_457_000_000_000_5),
            ("error", Some(-32602), 0.25),
            ("denied", Some(-32003), 1e-5),
            ("abandoned", None, 123_456.0),
        ];
        for entry in &entries {
            for (outcome, code, ms) in cases {
                let event = crate::telemetry::text::logged(|| entry.event(outcome, code, ms));

                let mut line = Line::begin(TARGET, tracing::Level::INFO);
                entry.fill(&mut line, outcome, code, ms);
                let direct = line.finish();
                let (time, rest) = direct.split_once(' ').unwrap();
                assert_eq!(time.len(), "2026-12-06T17:55:06.728215Z".len(), "{direct}");
                assert_eq!(rest, event);
                assert!(
                    event.starts_with(" INFO manifold::audit: audit principal="),
                    "{event}"
                );
            }
        }
    }
}
