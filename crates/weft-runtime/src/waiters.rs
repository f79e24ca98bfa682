//! "Tell me when …" requests: replies held until a condition on their key holds.
//!
//! Routers and registries answer readiness questions (a subscriber for this topic, this many
//! members, a provider of this procedure). Each question is answered once, at once if it already
//! holds, or when a later change makes it hold; a caller that gave up is forgotten.

use tokio::sync::oneshot;

/// Replies waiting for a condition on their key.
#[derive(Debug)]
pub(crate) struct Waiters<K> {
    waiting: Vec<(K, oneshot::Sender<()>)>,
}

impl<K> Default for Waiters<K> {
    fn default() -> Self {
        Self {
            waiting: Vec::new(),
        }
    }
}

impl<K> Waiters<K> {
    /// Answers `reply` now if `ready`, otherwise holds it under `key`.
    pub(crate) fn wait(&mut self, key: K, reply: oneshot::Sender<()>, ready: bool) {
        if ready {
            let _ = reply.send(());
        } else {
            self.waiting.retain(|(_, r)| !r.is_closed());
            self.waiting.push((key, reply));
        }
    }

    /// Answers every waiter whose key is now `ready`; forgets those whose caller gave up.
    pub(crate) fn wake(&mut self, mut ready: impl FnMut(&K) -> bool) {
        for (key, reply) in std::mem::take(&mut self.waiting) {
            if ready(&key) {
                let _ = reply.send(());
            } else if !reply.is_closed() {
                self.waiting.push((key, reply));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_now_later_or_never_and_forgets_callers_that_left() {
        let mut w = Waiters::default();
        let (now, mut now_rx) = oneshot::channel();
        w.wait(1, now, true);
        assert_eq!(now_rx.try_recv(), Ok(()));

        let (later, mut later_rx) = oneshot::channel();
        let (gone, gone_rx) = oneshot::channel();
        w.wait(3, later, false);
        w.wait(5, gone, false);
        drop(gone_rx);
        w.wake(|k| *k <= 2);
        assert!(later_rx.try_recv().is_err(), "not ready yet");
        w.wake(|k| *k <= 4);
        assert_eq!(later_rx.try_recv(), Ok(()));
        w.wake(|_| false);
        assert!(w.waiting.is_empty(), "the caller that left is forgotten");
    }
}
