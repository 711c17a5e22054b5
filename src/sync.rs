//! Small concurrency helpers the layers share.
//!
//! [`cancelled`]: waiting on a [`CancellationToken`] inside a `select!` that is polled
//! several times per request. The token's own future re-enters its waiter list, under a
//! mutex, every time it is polled, though nothing changes while the same task polls it; on
//! a proxied call that was about 1k instructions for three such waits.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

pin_project_lite::pin_project! {
    /// Resolves when the token is cancelled (see [`cancelled`]).
    #[must_use = "futures do nothing unless polled"]
    pub struct Cancelled<'a> {
        token: &'a CancellationToken,
        #[pin]
        wait: WaitForCancellationFuture<'a>,
        // The waker the token will wake, once registered.
        registered: Option<Waker>,
    }
}

/// `token.cancelled()`, registered once per task: later polls by the same task only read
/// the token's flag. Polled by another task (the future moved), it registers that task.
pub fn cancelled(token: &CancellationToken) -> Cancelled<'_> {
    Cancelled {
        token,
        wait: token.cancelled(),
        registered: None,
    }
}

impl Future for Cancelled<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.token.is_cancelled() {
            return Poll::Ready(());
        }
        if this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let polled = this.wait.poll(cx);
        if polled.is_pending() {
            *this.registered = Some(cx.waker().clone());
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_cancel_wakes_the_task_that_polled_last_and_resolves() {
        let token = CancellationToken::new();
        let mut wait = Box::pin(cancelled(&token));
        let (first, w1) = waker();
        assert!(
            wait.as_mut()
                .poll(&mut Context::from_waker(&w1))
                .is_pending()
        );
        assert!(
            wait.as_mut()
                .poll(&mut Context::from_waker(&w1))
                .is_pending()
        );
        // Moved to another task: that task is the one to wake.
        let (second, w2) = waker();
        assert!(
            wait.as_mut()
                .poll(&mut Context::from_waker(&w2))
                .is_pending()
        );
        token.cancel();
        assert_eq!(second.0.load(Ordering::SeqCst), 1, "the last task is woken");
        assert!(wait.as_mut().poll(&mut Context::from_waker(&w2)).is_ready());
        let _ = first;
    }

    #[test]
    fn a_token_cancelled_before_the_first_poll_resolves_at_once() {
        let token = CancellationToken::new();
        let mut wait = Box::pin(cancelled(&token));
        token.cancel();
        let (_, w) = waker();
        assert!(wait.as_mut().poll(&mut Context::from_waker(&w)).is_ready());
    }

    #[test]
    fn a_child_token_is_woken_by_its_parent() {
        let parent = CancellationToken::new();
        let child = parent.child_token();
        let mut wait = Box::pin(cancelled(&child));
        let (count, w) = waker();
        assert!(
            wait.as_mut()
                .poll(&mut Context::from_waker(&w))
                .is_pending()
        );
        parent.cancel();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(wait.as_mut().poll(&mut Context::from_waker(&w)).is_ready());
    }
}
