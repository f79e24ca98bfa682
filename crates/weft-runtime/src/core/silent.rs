//! Which silent sessions to let go. A session whose peer has not sent its hello costs memory and
//! proves nothing (identities are free), so such sessions are capped: when one more starts at
//! the cap, the oldest silent one makes room. A real peer says hello within a round trip, so an
//! attacker must open the cap's worth of connections within that time to push it out.

use std::collections::VecDeque;

/// The sessions still waiting for their peer's hello, oldest first.
#[derive(Debug)]
pub(crate) struct Silent<P> {
    order: VecDeque<P>,
    cap: usize,
}

impl<P: PartialEq + Copy> Silent<P> {
    /// At most `cap` silent sessions (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// A session with `peer` started; returns the silent session to end to make room for it.
    pub(crate) fn started(&mut self, peer: P) -> Option<P> {
        if self.order.contains(&peer) {
            return None;
        }
        let evicted = (self.order.len() >= self.cap)
            .then(|| self.order.pop_front())
            .flatten();
        self.order.push_back(peer);
        evicted
    }

    /// `peer` said hello, or its session ended: it is no longer silent.
    pub(crate) fn remove(&mut self, peer: &P) {
        self.order.retain(|p| p != peer);
    }

    /// Silent sessions now.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_silent_session_makes_room() {
        let mut silent = Silent::new(2);
        assert_eq!(silent.started(1), None);
        assert_eq!(silent.started(2), None);
        assert_eq!(silent.started(2), None, "a session counts once");
        assert_eq!(silent.started(3), Some(1));
        silent.remove(&2); // 2 said hello
        assert_eq!(silent.started(4), None);
        assert_eq!(silent.len(), 2);
        assert_eq!(silent.started(5), Some(3));
        silent.remove(&9); // unknown: nothing
        assert_eq!(silent.len(), 2);
    }

    #[test]
    fn a_cap_of_zero_still_admits_one() {
        let mut silent = Silent::new(0);
        assert_eq!(silent.started(1), None);
        assert_eq!(silent.started(2), Some(1));
    }
}
