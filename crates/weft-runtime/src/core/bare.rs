//! Connections without a session: opened by Kademlia for a query, or by a peer that has not
//! opened its stream yet. A session starts on one if the peer opens its stream or a lookup of
//! this node wants the peer; otherwise it is closed. Inbound ones are capped as silent sessions
//! are (the oldest let go first) and closed at the hello timeout, so connections made to hold
//! slots cost no more than silent sessions; this node's own (`dialer`) are left to the idle
//! timeout and never evicted by a flood of inbound ones.

use std::collections::HashMap;
use std::hash::Hash;

use crate::core::silent::Silent;

/// Which hold of a peer's bare connection a timer is for: a later hold (the peer reconnected)
/// is not ended by an earlier one's timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hold(u64);

/// What [`Bare::hold`] asks of the caller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Held<P> {
    /// End this hold at the hello timeout, unless a session started meanwhile (`None` for a
    /// connection this node dialed).
    pub(crate) timer: Option<Hold>,
    /// Close the connection of this peer, to make room.
    pub(crate) evicted: Option<P>,
}

/// The bare connections, with the address of each.
#[derive(Debug)]
pub(crate) struct Bare<P, A> {
    held: HashMap<P, (A, Hold)>,
    /// Inbound ones, oldest first, capped.
    inbound: Silent<P>,
    next: u64,
}

impl<P: Copy + Eq + Hash, A> Bare<P, A> {
    /// At most `cap` inbound bare connections.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            held: HashMap::new(),
            inbound: Silent::new(cap),
            next: 0,
        }
    }

    /// `peer` connected at `addr` and no session started (`dialer`: this node dialed it).
    pub(crate) fn hold(&mut self, peer: P, addr: A, dialer: bool) -> Held<P> {
        let hold = Hold(self.next);
        self.next += 1;
        self.held.insert(peer, (addr, hold));
        if dialer {
            return Held {
                timer: None,
                evicted: None,
            };
        }
        let evicted = self.inbound.started(peer);
        if let Some(evicted) = &evicted {
            self.held.remove(evicted);
        }
        Held {
            timer: Some(hold),
            evicted,
        }
    }

    /// A session starts with `peer`, or its connection closed: no longer held. Returns its
    /// address if it was.
    pub(crate) fn take(&mut self, peer: &P) -> Option<A> {
        self.inbound.remove(peer);
        self.held.remove(peer).map(|(addr, _)| addr)
    }

    /// `hold`'s timer fired: whether its connection is to be closed (still that hold, and no
    /// session started). It is then no longer held.
    pub(crate) fn expire(&mut self, peer: &P, hold: Hold) -> bool {
        let current = self.held.get(peer).is_some_and(|(_, h)| *h == hold);
        if current {
            self.take(peer);
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_connection_is_taken_once_for_its_session() {
        let mut bare: Bare<u32, &str> = Bare::new(4);
        let held = bare.hold(1, "a", false);
        assert!(held.timer.is_some() && held.evicted.is_none());
        assert_eq!(bare.take(&1), Some("a"));
        assert_eq!(bare.take(&1), None);
        let timer = held.timer.unwrap();
        assert!(
            !bare.expire(&1, timer),
            "a session started: the timer does nothing"
        );
    }

    #[test]
    fn the_timer_ends_only_its_own_hold() {
        let mut bare: Bare<u32, &str> = Bare::new(4);
        let first = bare.hold(1, "a", false).timer.unwrap();
        bare.take(&1); // the connection closed
        let second = bare.hold(1, "b", false).timer.unwrap();
        assert!(!bare.expire(&1, first), "the earlier hold's timer");
        assert!(bare.expire(&1, second));
        assert_eq!(bare.take(&1), None, "closed, no longer held");
    }

    #[test]
    fn inbound_ones_are_capped_and_this_nodes_own_are_not() {
        let mut bare: Bare<u32, &str> = Bare::new(2);
        let own = bare.hold(9, "mine", true);
        assert_eq!(
            own,
            Held {
                timer: None,
                evicted: None
            }
        );
        bare.hold(1, "a", false);
        bare.hold(2, "b", false);
        assert_eq!(bare.hold(3, "c", false).evicted, Some(1), "the oldest goes");
        assert_eq!(bare.take(&1), None);
        assert_eq!(bare.take(&9), Some("mine"), "never evicted by inbound ones");
        bare.take(&2);
        assert_eq!(bare.hold(4, "d", false).evicted, None, "room made");
    }
}
