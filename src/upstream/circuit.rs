//! The circuit breaker of one upstream. Connection failures and timeouts in a row (the
//! gateway's own -32010 and -32011, never an error the upstream answered, never a tool's
//! `isError`) open it: requests then fail at once with the reason, and nothing is sent.
//! After the cooldown one request goes through as a probe; its success closes the circuit,
//! its failure opens it for another cooldown.
//!
//! A closed circuit costs one atomic load per request; only outcomes touch more.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::Circuit as Settings;
use crate::protocol::{ErrorObject, codes};

pub struct Circuit {
    settings: Settings,
    /// When the process's circuits started counting: `opened` is measured from it.
    epoch: Instant,
    /// Failures in a row.
    failures: AtomicU32,
    /// Milliseconds after `epoch` at which the circuit opened, plus one; 0 while closed.
    opened: AtomicU64,
    /// A probe is in flight (half-open): other requests still fail fast.
    probing: AtomicBool,
    /// Times the circuit opened.
    trips: AtomicU64,
    /// The last failure, for the refusal's message.
    last_error: Mutex<String>,
}

/// The circuit's state, as `/readyz` and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    /// The cooldown is over: the next request is a probe.
    HalfOpen,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

/// Admission of one request; a probe's slot is given back if it ends without an outcome.
pub struct Pass<'a> {
    circuit: &'a Circuit,
    probe: bool,
    done: bool,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if self.probe && !self.done {
            self.circuit.probing.store(false, Ordering::Release);
        }
    }
}

impl Pass<'_> {
    /// Records how the request ended.
    pub fn finish<T>(mut self, upstream: &str, outcome: &Result<T, ErrorObject>) {
        self.done = true;
        match outcome {
            Err(e) if counts(e) => self.circuit.failed(upstream, self.probe, &e.message),
            _ => self.circuit.succeeded(upstream),
        }
    }
}

/// Whether an error says the upstream could not be reached or did not answer in time.
pub fn counts(e: &ErrorObject) -> bool {
    matches!(
        e.code,
        codes::UPSTREAM_UNAVAILABLE | codes::UPSTREAM_TIMEOUT
    ) && e.data.as_ref().and_then(|d| d.get("source")) == Some(&Value::from("gateway"))
}

impl Circuit {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            opened: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            trips: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }

    fn cooling(&self, opened: u64) -> Option<Duration> {
        let open_for = Duration::from_millis(self.now().saturating_sub(opened));
        self.settings.cooldown.checked_sub(open_for)
    }

    pub fn state(&self) -> State {
        match self.opened.load(Ordering::Acquire) {
            0 => State::Closed,
            at if self.cooling(at).is_some_and(|d| !d.is_zero()) => State::Open,
            _ => State::HalfOpen,
        }
    }

    /// Times the circuit opened since the upstream was created.
    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    /// Lets a request through, or refuses it with the reason while the circuit is open (or
    /// half-open with its probe in flight).
    pub fn admit(&self, upstream: &str) -> Result<Pass<'_>, ErrorObject> {
        let opened = self.opened.load(Ordering::Acquire);
        if opened == 0 {
            return Ok(Pass {
                circuit: self,
                probe: false,
                done: false,
            });
        }
        let wait = self.cooling(opened).filter(|d| !d.is_zero());
        if wait.is_none()
            && self
                .probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Ok(Pass {
                circuit: self,
                probe: true,
                done: false,
            });
        }
        let reason = self.describe(wait);
        let mut error = ErrorObject::upstream_unavailable(upstream, reason);
        if let Some(data) = error.data.as_mut().and_then(Value::as_object_mut) {
            data.insert("circuit".into(), Value::from("open"));
        }
        Err(error)
    }

    /// Why requests are refused while the circuit is not closed (`None` while it is).
    pub fn reason(&self) -> Option<String> {
        let opened = self.opened.load(Ordering::Acquire);
        (opened != 0).then(|| self.describe(self.cooling(opened).filter(|d| !d.is_zero())))
    }

    fn describe(&self, wait: Option<Duration>) -> String {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let when = match wait {
            Some(d) => format!("next probe in {}s", d.as_secs().max(1)),
            None => "the next request is a probe".to_owned(),
        };
        format!(
            "circuit open after {} failures in a row ({when}); last: {last}",
            self.settings.failures
        )
    }

    /// A failure seen outside a request: the connection was lost or could not be opened.
    pub fn note_failure(&self, upstream: &str, message: &str) {
        self.failed(upstream, false, message);
    }

    fn failed(&self, upstream: &str, probe: bool, message: &str) {
        if self.settings.failures == 0 {
            return;
        }
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = message.to_owned();
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if probe {
            self.opened.store(self.now(), Ordering::Release);
            self.probing.store(false, Ordering::Release);
            tracing::warn!(upstream, error = %message, "Circuit probe failed; open again");
        } else if failures >= self.settings.failures
            && self
                .opened
                .compare_exchange(0, self.now(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.trips.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(upstream, failures, cooldown = ?self.settings.cooldown, error = %message, "Circuit opened: requests fail fast until a probe succeeds");
        }
    }

    fn succeeded(&self, upstream: &str) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Release);
        }
        if self.opened.swap(0, Ordering::AcqRel) != 0 {
            self.probing.store(false, Ordering::Release);
            tracing::info!(upstream, "Circuit closed: the upstream answered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn down() -> Result<Value, ErrorObject> {
        Err(ErrorObject::upstream_unavailable("u", "connection refused"))
    }

    #[test]
    fn failures_in_a_row_open_it_and_a_probe_closes_it() {
        let c = Circuit::new(Settings {
            failures: 2,
            cooldown: Duration::ZERO,
        });
        c.admit("u").expect("closed").finish("u", &down());
        assert_eq!(c.state(), State::Closed);
        c.admit("u").expect("closed").finish("u", &down());
        assert_eq!(c.trips(), 1);
        // Zero cooldown: half-open at once; one probe at a time.
        let probe = c.admit("u").expect("the probe");
        let refused = c.admit("u").err().expect("refused while probing");
        assert!(
            refused.message.contains("circuit open"),
            "{}",
            refused.message
        );
        probe.finish("u", &Ok(json!({})));
        assert_eq!(c.state(), State::Closed);
    }

    #[test]
    fn errors_the_upstream_answered_do_not_count() {
        let c = Circuit::new(Settings {
            failures: 1,
            cooldown: Duration::from_secs(60),
        });
        let answered: Result<(), _> = Err(ErrorObject::new(codes::UPSTREAM_UNAVAILABLE, "its own"));
        c.admit("u").expect("closed").finish("u", &answered);
        assert_eq!(c.state(), State::Closed);
        c.admit("u").expect("closed").finish("u", &down());
        assert_eq!(c.state(), State::Open);
        let refused = c.admit("u").err().expect("open");
        assert!(
            refused.message.contains("connection refused"),
            "{}",
            refused.message
        );
    }
}
