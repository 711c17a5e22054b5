//! Resumable SSE streams. Every stream the gateway writes to a client (the GET stream, and
//! each POST answer) is an [`EventLog`]: messages are numbered, kept in a bounded buffer,
//! and read by followers. A client whose connection dropped reconnects with GET and
//! `Last-Event-ID: <stream>-<seq>` and gets every later event of that stream, then the live
//! rest of it (Streamable HTTP resumability).
//!
//! Writers never wait for readers: past the bound the oldest events are dropped, so a client
//! that neither reads nor leaves costs a bounded amount of memory.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::Stream;
use tokio::sync::watch;

use crate::protocol::Message;

/// Events kept per stream for replay.
pub const REPLAY_EVENTS: usize = 1024;

pub struct EventLog {
    pub stream: u64,
    inner: Mutex<Inner>,
    /// Bumped on every push and on close, so followers wake without polling.
    changed: watch::Sender<u64>,
    /// Followers currently reading: zero means the client's connection is gone.
    readers: Arc<AtomicUsize>,
}

struct Inner {
    events: VecDeque<(u64, Message)>,
    next: u64,
    closed: bool,
}

/// Counts a follower for as long as its stream exists.
struct Reader(Arc<AtomicUsize>);

impl Reader {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count.clone())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Follow {
    log: Arc<EventLog>,
    rx: watch::Receiver<u64>,
    cursor: u64,
    ready: VecDeque<(u64, Message)>,
    _reader: Reader,
}

impl EventLog {
    pub fn new(stream: u64) -> Arc<Self> {
        let (changed, _) = watch::channel(0);
        let inner = Mutex::new(Inner {
            events: VecDeque::new(),
            next: 1,
            closed: false,
        });
        Arc::new(Self {
            stream,
            inner,
            changed,
            readers: Arc::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a message; returns its sequence number (0 if the stream is closed).
    pub fn push(&self, msg: Message) -> u64 {
        let seq = {
            let mut inner = self.lock();
            if inner.closed {
                return 0;
            }
            let seq = inner.next;
            inner.next += 1;
            inner.events.push_back((seq, msg));
            if inner.events.len() > REPLAY_EVENTS {
                inner.events.pop_front();
            }
            seq
        };
        self.changed.send_replace(seq);
        seq
    }

    /// No more events: followers end after the last one.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.send_modify(|v| *v += 1);
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// How many followers are reading the log now.
    pub fn readers(&self) -> usize {
        self.readers.load(Ordering::Acquire)
    }

    /// The events after `after` (0 = from the first kept), then live ones until the log
    /// closes. Items are `(event id, message)`.
    pub fn follow(
        self: &Arc<Self>,
        after: u64,
    ) -> impl Stream<Item = (String, Message)> + Send + 'static {
        let state = Follow {
            log: self.clone(),
            rx: self.changed.subscribe(),
            cursor: after,
            ready: VecDeque::new(),
            _reader: Reader::new(&self.readers),
        };
        futures::stream::unfold(state, |mut f| async move {
            loop {
                if let Some((seq, msg)) = f.ready.pop_front() {
                    let item = (event_id(f.log.stream, seq), msg);
                    return Some((item, f));
                }
                let closed = {
                    let inner = f.log.lock();
                    let cursor = f.cursor;
                    f.ready
                        .extend(inner.events.iter().filter(|(s, _)| *s > cursor).cloned());
                    inner.closed
                };
                if let Some((seq, _)) = f.ready.back() {
                    f.cursor = *seq;
                    continue;
                }
                if closed || f.rx.changed().await.is_err() {
                    return None;
                }
            }
        })
    }
}

/// `<stream>-<seq>`: unique across the session's streams, and says which stream to resume.
pub fn event_id(stream: u64, seq: u64) -> String {
    format!("{stream}-{seq}")
}

/// Reads a `Last-Event-ID` back into stream and sequence.
pub fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (stream, seq) = id.trim().split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Notification, methods};
    use futures::StreamExt;

    fn note(n: u64) -> Message {
        Message::Notification(Notification::new(
            methods::PROGRESS,
            Some(serde_json::json!({ "progress": n })),
        ))
    }

    #[tokio::test]
    async fn a_follower_resumes_after_the_last_event_it_saw_and_ends_at_close() {
        let log = EventLog::new(7);
        for n in 1..=3 {
            log.push(note(n));
        }
        let first: Vec<_> = log.follow(0).take(2).collect().await;
        assert_eq!(
            first.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["7-1", "7-2"]
        );
        let (stream, seq) = parse_event_id(&first[1].0).expect("valid id");
        assert_eq!((stream, seq), (7, 2));
        let follower = log.follow(seq);
        log.push(note(4));
        log.close();
        let rest: Vec<_> = follower.collect().await;
        assert_eq!(
            rest.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["7-3", "7-4"]
        );
        assert_eq!(rest[1].1, note(4));
        assert_eq!(log.push(note(5)), 0, "a closed log takes nothing");
    }

    #[tokio::test]
    async fn readers_are_counted_while_their_stream_lives() {
        let log = EventLog::new(2);
        assert_eq!(log.readers(), 0);
        let a = log.follow(0);
        let b = log.follow(0);
        assert_eq!(log.readers(), 2);
        drop(a);
        assert_eq!(log.readers(), 1);
        drop(b);
        assert_eq!(log.readers(), 0);
    }

    #[test]
    fn the_buffer_is_bounded() {
        let log = EventLog::new(1);
        for n in 0..(REPLAY_EVENTS as u64 + 10) {
            log.push(note(n));
        }
        assert_eq!(log.lock().events.len(), REPLAY_EVENTS);
        assert_eq!(log.lock().events.front().map(|(s, _)| *s), Some(11));
    }

    #[test]
    fn event_ids_round_trip_and_garbage_is_rejected() {
        assert_eq!(parse_event_id(&event_id(3, 99)), Some((3, 99)));
        for bad in ["", "3", "a-1", "1-b", "-1", "1-"] {
            assert_eq!(parse_event_id(bad), None, "{bad}");
        }
    }
}
