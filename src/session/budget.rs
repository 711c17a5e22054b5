//! Byte budgets for what the gateway holds for its clients: every message waiting in a
//! session's streams (unread, or kept for `Last-Event-ID` resumption) is charged to its
//! session's budget and to the gateway's, and released when it is dropped.
//!
//! Counting is two atomic additions per message; only a message that takes a session over
//! its budget makes the session shed its oldest events (see [`super::events`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::events::EventLog;

/// Bytes held across every session, against `buffers.total_bytes`.
#[derive(Debug)]
pub struct Buffers {
    used: AtomicUsize,
    total: usize,
    per_session: usize,
}

impl Buffers {
    pub fn new(per_session: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            total,
            per_session,
        })
    }

    /// Bytes held now, over every session.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// A fresh budget for one session.
    pub fn session(self: &Arc<Self>) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit: self.per_session,
            global: self.clone(),
            logs: Mutex::new(Logs::default()),
        })
    }
}

/// One session's bytes, and the logs it may shed events from, oldest first.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
    global: Arc<Buffers>,
    logs: Mutex<Logs>,
}

/// The logs a budget may shed from, registered in order. Dead ones (streams the session has
/// forgotten) are dropped as they are found behind the first, where the oldest request
/// streams are, and otherwise in a sweep of the whole list once it has doubled since the
/// last: a request's answer registers a log, and a sweep per registration was a walk over
/// every stream the session keeps on every call.
#[derive(Debug, Default)]
struct Logs {
    list: VecDeque<Weak<EventLog>>,
    /// Length of `list` after the last sweep.
    swept: usize,
}

/// Dead entries a list may gain beyond doubling before it is swept.
const SWEEP_SLACK: usize = 16;

impl Logs {
    fn register(&mut self, log: &Arc<EventLog>) {
        // Request streams end oldest first (the session keeps its newest few), so the dead
        // gather right behind the first entry, the session's standalone stream.
        while self.list.get(1).is_some_and(|l| l.strong_count() == 0) {
            self.list.remove(1);
        }
        if self.list.len() >= 2 * self.swept + SWEEP_SLACK {
            self.list.retain(|l| l.strong_count() > 0);
            self.swept = self.list.len();
        }
        self.list.push_back(Arc::downgrade(log));
    }
}

/// Bytes charged to a budget until this is dropped.
#[derive(Debug)]
pub struct Charge {
    bytes: usize,
    budget: Arc<Budget>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
        self.budget
            .global
            .used
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Budget {
    /// Charges `bytes` unconditionally (a message that must be kept for now).
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        self.used.fetch_add(bytes, Ordering::Relaxed);
        self.global.used.fetch_add(bytes, Ordering::Relaxed);
        Charge {
            bytes,
            budget: self.clone(),
        }
    }

    /// Charges `bytes` only if both the session and the gateway stay within their budgets.
    pub fn try_charge(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        let charge = self.charge(bytes);
        (!self.over() && !self.global_over()).then_some(charge)
    }

    /// Bytes this session holds now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn over(&self) -> bool {
        self.used() > self.limit
    }

    pub fn global_over(&self) -> bool {
        self.global.used() > self.global.total
    }

    /// Lets the budget shed events of `log` when the session goes over it. The first log
    /// registered (the session's standalone stream) is shed last.
    pub fn register(&self, log: &Arc<EventLog>) {
        lock(&self.logs).register(log);
    }

    /// Drops the oldest events of the session's logs (request streams first, the standalone
    /// stream after them, `keep` — the newest event of the log that just grew — never) until
    /// the session and the gateway are within budget or nothing else is left.
    pub(super) fn shed(&self, keep: (u64, u64)) {
        let logs: Vec<Arc<EventLog>> = {
            let logs = lock(&self.logs);
            let mut live: Vec<_> = logs.list.iter().filter_map(Weak::upgrade).collect();
            if !live.is_empty() {
                let standalone = live.remove(0);
                live.push(standalone);
            }
            live
        };
        for log in logs {
            if !self.over() && !self.global_over() {
                return;
            }
            log.shed_while(keep, || self.over() || self.global_over());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Id;

    fn log(stream: u64) -> Arc<EventLog> {
        EventLog::for_request(stream, Id::Num(stream as i64))
    }

    #[test]
    fn registered_logs_stay_bounded_whatever_order_they_end_in() {
        let budget = Buffers::new(1 << 20, 1 << 30).session();
        let standalone = log(0);
        budget.register(&standalone);
        // As a session keeps its newest 32 request streams: the oldest end first.
        let mut kept = VecDeque::new();
        for stream in 1..=10_000 {
            let l = log(stream);
            budget.register(&l);
            kept.push_back(l);
            if kept.len() > 32 {
                kept.pop_front();
            }
            assert!(lock(&budget.logs).list.len() <= 34, "at stream {stream}");
        }
        // Streams that end out of order are swept once the list has doubled.
        let mut held = Vec::new();
        for stream in 10_001..=20_000 {
            let l = log(stream);
            budget.register(&l);
            // Every other one lives on: the dead sit between the living.
            if stream % 2 == 0 {
                held.push(l);
            }
            if held.len() > 32 {
                held.remove(0);
            }
            let len = lock(&budget.logs).list.len();
            assert!(
                len <= 2 * (32 + 32 + 2) + SWEEP_SLACK + 1,
                "at stream {stream}: {len}"
            );
        }
        // The standalone stream is still first: it is shed last.
        let logs = lock(&budget.logs);
        let first = logs.list.front().and_then(Weak::upgrade).unwrap();
        assert!(Arc::ptr_eq(&first, &standalone));
    }
}
