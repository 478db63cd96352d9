//! Per-upload flow control that works from async code without an async runtime.
//!
//! A front end may have at most `bytes` (and `chunks`) of one upload queued at
//! its hasher. When the budget is spent, [`Credits::poll_acquire`] parks the
//! task's `Waker`; the hasher returns credit as it hashes and wakes it. The
//! client is then slowed by TCP flow control, never by our memory.

use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// The job ended on the hasher side (pool shutting down); pushing more is pointless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobClosed;

impl std::fmt::Display for JobClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("hasher pool is shutting down")
    }
}

impl std::error::Error for JobClosed {}

#[derive(Debug)]
struct State {
    /// Bytes the sender may still queue. May go negative by at most one chunk:
    /// a chunk is admitted whenever any credit is left, so a chunk larger than
    /// the whole budget cannot wedge an upload.
    bytes: i64,
    /// Messages the sender may still queue; bounds channel slots per upload.
    chunks: usize,
    waker: Option<Waker>,
    closed: bool,
}

#[derive(Debug)]
pub(crate) struct Credits {
    state: Mutex<State>,
}

impl Credits {
    pub(crate) fn new(bytes: usize, chunks: usize) -> Credits {
        Credits {
            state: Mutex::new(State {
                bytes: bytes as i64,
                chunks,
                waker: None,
                closed: false,
            }),
        }
    }

    /// Ready when one more chunk may be queued.
    pub(crate) fn poll_acquire(&self, cx: &mut Context<'_>) -> Poll<Result<(), JobClosed>> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.closed {
            return Poll::Ready(Err(JobClosed));
        }
        if s.bytes > 0 && s.chunks > 0 {
            return Poll::Ready(Ok(()));
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Spends credit for a chunk about to be sent. Returns false when no
    /// credit was available (the caller skipped `poll_acquire`).
    pub(crate) fn try_spend(&self, len: usize) -> Result<bool, JobClosed> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.closed {
            return Err(JobClosed);
        }
        if s.bytes <= 0 || s.chunks == 0 {
            return Ok(false);
        }
        s.bytes -= len as i64;
        s.chunks -= 1;
        Ok(true)
    }

    /// Called by the hasher once a chunk is hashed and its memory released.
    pub(crate) fn release(&self, len: usize) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.bytes += len as i64;
            s.chunks += 1;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn close(&self) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.closed = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn budget_blocks_then_release_wakes() {
        let c = Credits::new(100, 8);
        let count = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert_eq!(c.poll_acquire(&mut cx), Poll::Ready(Ok(())));
        assert_eq!(
            c.try_spend(150),
            Ok(true),
            "one oversized chunk is admitted"
        );
        assert_eq!(c.poll_acquire(&mut cx), Poll::Pending);
        assert_eq!(c.try_spend(1), Ok(false));
        c.release(150);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(c.poll_acquire(&mut cx), Poll::Ready(Ok(())));
    }

    #[test]
    fn chunk_count_is_bounded_too() {
        let c = Credits::new(1 << 20, 2);
        assert_eq!(c.try_spend(1), Ok(true));
        assert_eq!(c.try_spend(1), Ok(true));
        assert_eq!(c.try_spend(1), Ok(false));
    }

    #[test]
    fn close_wakes_and_refuses() {
        let c = Credits::new(1, 1);
        c.try_spend(1).unwrap();
        let count = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert_eq!(c.poll_acquire(&mut cx), Poll::Pending);
        c.close();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(c.poll_acquire(&mut cx), Poll::Ready(Err(JobClosed)));
        assert_eq!(c.try_spend(1), Err(JobClosed));
    }
}
