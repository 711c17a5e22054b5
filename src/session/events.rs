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
use std::sync::{Arc, Mutex, OnceLock};

use futures::Stream;
use tokio::sync::Notify;

use super::budget::{Budget, Charge};
use crate::protocol::{ErrorObject, Id, Message, Notification, Response, codes, methods};

/// Events kept per stream for replay.
pub const REPLAY_EVENTS: usize = 1024;

pub struct EventLog {
    pub stream: u64,
    /// The request this stream answers (`None`: the standalone stream), so a reader whose
    /// events were dropped gets an error answer to it instead of a silent gap.
    request: Option<Id>,
    /// Whether read events are kept for `Last-Event-ID` (HTTP+SSE has no resumption).
    replay: bool,
    inner: Mutex<Inner>,
    /// The session's byte budget, once the log belongs to a session.
    budget: OnceLock<Arc<Budget>>,
    /// Woken on every push and on close, so followers wake without polling. (A `Notify`
    /// lives inline; a watch channel would be an allocation of ~400 bytes per stream, and a
    /// session keeps up to 33 streams.)
    changed: Notify,
    /// Followers currently reading: zero means the client's connection is gone.
    readers: AtomicUsize,
}

/// One message, serialised once: every reader and every replay sends these bytes.
struct Event {
    seq: u64,
    json: Text,
    _charge: Option<Charge>,
}

struct Inner {
    /// Consecutive sequence numbers, oldest first.
    events: VecDeque<Event>,
    next: u64,
    closed: bool,
    /// The newest sequence number dropped before every reader had it (0: none).
    dropped_through: u64,
}

/// A follower of a log, counted in its `readers` for as long as its stream exists.
struct Follow {
    log: Arc<EventLog>,
    cursor: u64,
    /// A request stream ends after telling its reader that events were dropped.
    ended: bool,
}

impl Follow {
    fn new(log: &Arc<EventLog>, cursor: u64) -> Self {
        log.readers.fetch_add(1, Ordering::AcqRel);
        Follow {
            log: log.clone(),
            cursor,
            ended: false,
        }
    }
}

/// What a follower reads next.
enum Next {
    Item((String, Text)),
    /// Nothing yet: the log is open.
    Wait,
    End,
}

impl Follow {
    fn next(&mut self) -> Next {
        if self.ended {
            return Next::End;
        }
        let log = &self.log;
        let mut inner = log.lock();
        if !log.replay {
            while inner.events.front().is_some_and(|e| e.seq <= self.cursor) {
                inner.events.pop_front();
            }
        }
        if inner.dropped_through > self.cursor {
            let missed = inner.dropped_through - self.cursor;
            self.cursor = inner.dropped_through;
            drop(inner);
            let notice = log.gap_notice(missed);
            self.ended = log.request.is_some();
            return Next::Item((event_id(log.stream, self.cursor), notice));
        }
        // One event at a time: a reader that stalls holds nothing the log let go.
        let next = inner.events.front().and_then(|front| {
            let skip = (self.cursor + 1).saturating_sub(front.seq);
            let event = inner.events.get(usize::try_from(skip).ok()?)?;
            Some((event.seq, event.json.clone()))
        });
        let closed = inner.closed;
        drop(inner);
        match next {
            Some((seq, json)) => {
                self.cursor = seq;
                Next::Item((event_id(log.stream, seq), json))
            }
            None if closed => Next::End,
            None => Next::Wait,
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.log.readers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a reader missed events: the bounds they were dropped for.
pub const DROPPED: &str = "were dropped to bound the gateway's memory (more than \
    buffers.session_bytes held for this session, buffers.total_bytes for the gateway, or 1024 \
    events for the stream) before they were read";

impl EventLog {
    pub fn new(stream: u64) -> Arc<Self> {
        Self::build(stream, None, true)
    }

    /// A stream that cannot be resumed: an event is let go once a reader took it.
    pub fn unreplayable(stream: u64) -> Arc<Self> {
        Self::build(stream, None, false)
    }

    /// The stream of one request's answer.
    pub fn for_request(stream: u64, request: Id) -> Arc<Self> {
        Self::build(stream, Some(request), true)
    }

    fn build(stream: u64, request: Option<Id>, replay: bool) -> Arc<Self> {
        let inner = Mutex::new(Inner {
            events: VecDeque::new(),
            next: 1,
            closed: false,
            dropped_through: 0,
        });
        Arc::new(Self {
            stream,
            request,
            replay,
            inner,
            budget: OnceLock::new(),
            changed: Notify::new(),
            readers: AtomicUsize::new(0),
        })
    }

    /// Charges this log's later events to `budget`, which may shed them.
    pub fn attach(self: &Arc<Self>, budget: &Arc<Budget>) {
        if self.budget.set(budget.clone()).is_ok() {
            budget.register(self);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a message; returns its sequence number (0 if the stream is closed).
    pub fn push(&self, msg: Message) -> u64 {
        self.push_json(msg.to_json())
    }

    /// Appends a message already serialised (one JSON-RPC message, no newlines).
    pub fn push_json(&self, mut json: String) -> u64 {
        // Kept until the stream is forgotten: without the slack serialising left.
        json.shrink_to_fit();
        self.push_text(Text::Whole(Arc::new(json)))
    }

    /// Appends a message already serialised, whole or around a shared piece. It is charged
    /// to the budget at its full length either way.
    pub fn push_text(&self, json: Text) -> u64 {
        let budget = self.budget.get();
        let seq = {
            let mut inner = self.lock();
            if inner.closed {
                return 0;
            }
            let seq = inner.next;
            inner.next += 1;
            let charge = budget.map(|b| b.charge(json.len()));
            inner.events.push_back(Event {
                seq,
                json,
                _charge: charge,
            });
            if inner.events.len() > REPLAY_EVENTS
                && let Some(old) = inner.events.pop_front()
            {
                inner.dropped_through = old.seq;
            }
            seq
        };
        if let Some(budget) = budget
            && (budget.over() || budget.global_over())
        {
            budget.shed((self.stream, seq));
            // Only this message is left and the gateway is still full: it goes too.
            if budget.global_over() {
                self.shed_while((u64::MAX, 0), || budget.global_over());
            }
        }
        self.changed.notify_waiters();
        seq
    }

    /// Drops this log's oldest events while `more` holds, never the event `keep` names.
    pub(super) fn shed_while(&self, keep: (u64, u64), more: impl Fn() -> bool) {
        let mut inner = self.lock();
        while more() {
            let Some(front) = inner.events.front() else {
                return;
            };
            if (self.stream, front.seq) == keep {
                return;
            }
            let seq = front.seq;
            inner.events.pop_front();
            inner.dropped_through = seq;
        }
    }

    /// No more events: followers end after the last one. What the log keeps for
    /// resumption is trimmed to its size (a finished request's stream is kept a while).
    pub fn close(&self) {
        {
            let mut inner = self.lock();
            inner.closed = true;
            inner.events.shrink_to_fit();
        }
        self.changed.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// How many followers are reading the log now.
    pub fn readers(&self) -> usize {
        self.readers.load(Ordering::Acquire)
    }

    /// The events after `after` (0 = from the first kept), then live ones until the log
    /// closes. Items are `(event id, message as JSON)`. A reader that missed events because
    /// they were dropped is told so: on a request stream with an error answer to the request
    /// (and the stream ends), on the standalone stream with an error log notification.
    pub fn follow(
        self: &Arc<Self>,
        after: u64,
    ) -> impl Stream<Item = (String, Text)> + Send + 'static {
        futures::stream::unfold(Follow::new(self, after), |mut f| async move {
            loop {
                // Registered before looking, so a push in between still wakes this reader.
                let log = f.log.clone();
                let changed = log.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                match f.next() {
                    Next::Item(item) => return Some((item, f)),
                    Next::End => return None,
                    Next::Wait => changed.await,
                }
            }
        })
    }

    /// What [`EventLog::follow`] from the start gives a reader of this log now, up to
    /// where it would wait: for an answer already whole, written at once.
    pub fn each_now(self: &Arc<Self>, mut each: impl FnMut(&str, &Text)) {
        let mut f = Follow::new(self, 0);
        while let Next::Item((id, json)) = f.next() {
            each(&id, &json);
        }
    }

    fn gap_notice(&self, missed: u64) -> Text {
        let text = format!("{missed} message(s) of this stream {DROPPED}");
        let msg = match &self.request {
            Some(id) => Message::Response(Response::err(
                Some(id.clone()),
                ErrorObject::new(codes::GATEWAY_BUSY, format!("answer lost: {text}")),
            )),
            None => Message::Notification(Notification::new(
                methods::LOG_MESSAGE,
                Some(serde_json::json!({
                    "level": "error",
                    "logger": "manifold",
                    "data": text,
                })),
            )),
        };
        Text::Whole(Arc::new(msg.to_json()))
    }
}

/// One message as JSON text: written out whole, or around a piece it shares with other
/// messages (a listing page, which the catalog holds once however many answers kept for
/// resumption contain it). Cloning it shares the text.
#[derive(Clone)]
pub enum Text {
    Whole(Arc<String>),
    Around(Arc<Around>),
}

/// `head`, then the shared piece, then `tail`.
pub struct Around {
    pub head: String,
    pub shared: Arc<dyn AsRef<str> + Send + Sync>,
    pub tail: String,
}

impl Text {
    /// The text around a shared piece.
    pub fn around(head: String, shared: Arc<dyn AsRef<str> + Send + Sync>, tail: String) -> Self {
        Text::Around(Arc::new(Around { head, shared, tail }))
    }

    /// Length in bytes of the whole text.
    pub fn len(&self) -> usize {
        match self {
            Text::Whole(json) => json.len(),
            Text::Around(a) => a.head.len() + (*a.shared).as_ref().len() + a.tail.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole text (put together, for text around a shared piece).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Text::Whole(json) => std::borrow::Cow::Borrowed(json.as_str()),
            Text::Around(a) => {
                let shared = (*a.shared).as_ref();
                let mut all = String::with_capacity(a.head.len() + shared.len() + a.tail.len());
                all.push_str(&a.head);
                all.push_str(shared);
                all.push_str(&a.tail);
                std::borrow::Cow::Owned(all)
            }
        }
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
        assert_eq!(rest[1].1.text(), note(4).to_json());
        assert_eq!(log.push(note(5)), 0, "a closed log takes nothing");
    }

    #[tokio::test]
    async fn a_waiting_follower_wakes_on_push_and_on_close() {
        let log = EventLog::new(3);
        let mut follower = Box::pin(log.follow(0));
        let reader = tokio::spawn(async move {
            let first = follower.next().await.map(|(id, _)| id);
            (first, follower.next().await.is_none())
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        log.push(note(1));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        log.close();
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), reader)
            .await
            .expect("the follower woke")
            .expect("reader task");
        assert_eq!(read, (Some("3-1".to_owned()), true));
        assert_eq!(log.readers(), 0);
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
        assert_eq!(log.lock().events.front().map(|e| e.seq), Some(11));
    }

    #[test]
    fn event_ids_round_trip_and_garbage_is_rejected() {
        assert_eq!(parse_event_id(&event_id(3, 99)), Some((3, 99)));
        for bad in ["", "3", "a-1", "1-b", "-1", "1-"] {
            assert_eq!(parse_event_id(bad), None, "{bad}");
        }
    }
}
