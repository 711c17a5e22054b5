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
            logs: Mutex::new(VecDeque::new()),
        })
    }
}

/// One session's bytes, and the logs it may shed events from, oldest first.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
    global: Arc<Buffers>,
    logs: Mutex<VecDeque<Weak<EventLog>>>,
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
        let mut logs = lock(&self.logs);
        logs.retain(|l| l.strong_count() > 0);
        logs.push_back(Arc::downgrade(log));
    }

    /// Drops the oldest events of the session's logs (request streams first, the standalone
    /// stream after them, `keep` — the newest event of the log that just grew — never) until
    /// the session and the gateway are within budget or nothing else is left.
    pub(super) fn shed(&self, keep: (u64, u64)) {
        let logs: Vec<Arc<EventLog>> = {
            let logs = lock(&self.logs);
            let mut live: Vec<_> = logs.iter().filter_map(Weak::upgrade).collect();
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
