//! Which lost peers a node dials again, and when. A peer whose session ended without a goodbye
//! is dialed again on a backoff schedule if it was a member of one of the node's realms (and not
//! a client: nobody dials a client) or is one of the node's bootstrap peers, and if the node
//! knows an address for it. A goodbye means it left on purpose: it is not dialed.
//!
//! The supervisor drives it: [`Redials::gone`] when a session ends, [`Redials::due`] when the
//! delay it returned has passed, [`Redials::failed`] when that dial fails, and
//! [`Redials::connected`] when a connection to the peer is up again. The caller supplies the
//! randomness for jitter and does the waiting.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use crate::core::backoff::{Backoff, BackoffPolicy};

/// How a peer's session ended, as far as redialing it goes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ended {
    /// It said goodbye first.
    pub(crate) said_bye: bool,
    /// It was admitted to one of the node's realms.
    pub(crate) was_member: bool,
    /// It was a client of this node.
    pub(crate) client: bool,
    /// Its address is one of the node's bootstrap addresses.
    pub(crate) bootstrap: bool,
    /// It hosts none of the node's realms: the session ended on that ground, and the connection
    /// still serves the DHT.
    pub(crate) shares_nothing: bool,
}

/// What to do about a lost peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Next {
    /// Dial it after this long.
    After(Duration),
    /// Its attempts ran out: it is forgotten.
    GiveUp { attempts: u32 },
}

/// The lost peers being dialed again, by peer, with the address to dial.
#[derive(Debug)]
pub(crate) struct Redials<P, A> {
    policy: BackoffPolicy,
    pending: HashMap<P, (A, Backoff)>,
}

impl<P: Eq + Hash + Copy, A> Redials<P, A> {
    /// No peer lost yet; each lost peer backs off under `policy`.
    pub(crate) fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            pending: HashMap::new(),
        }
    }

    /// `peer`'s session, reached at `addr` (none if unknown), ended as `ended` says. Returns when
    /// to dial it, if it is worth dialing; if not, it is forgotten. `random` is a uniform sample
    /// in `[0, 1)` for jitter.
    pub(crate) fn gone(
        &mut self,
        peer: P,
        addr: Option<A>,
        ended: Ended,
        random: f64,
    ) -> Option<Next> {
        let worth_it =
            !ended.shares_nothing && ((ended.was_member && !ended.client) || ended.bootstrap);
        let Some(addr) = addr.filter(|_| worth_it && !ended.said_bye) else {
            self.pending.remove(&peer);
            return None;
        };
        // A peer lost again before it was reached keeps its schedule (a connection resets it).
        self.pending
            .entry(peer)
            .or_insert_with(|| (addr, Backoff::new(self.policy)));
        self.next(peer, random)
    }

    /// The address to dial `peer` at now, if it is still to be dialed.
    pub(crate) fn due(&self, peer: &P) -> Option<&A> {
        self.pending.get(peer).map(|(addr, _)| addr)
    }

    /// Dialing `peer` failed: when to try again, unless its attempts ran out.
    pub(crate) fn failed(&mut self, peer: P, random: f64) -> Option<Next> {
        self.next(peer, random)
    }

    /// A connection to `peer` is up: if it is lost again, its schedule starts over.
    pub(crate) fn connected(&mut self, peer: &P) {
        if let Some((_, backoff)) = self.pending.get_mut(peer) {
            backoff.reset();
        }
    }

    /// Stops dialing `peer` (the node is shutting down, or the peer left on purpose).
    pub(crate) fn forget(&mut self, peer: &P) {
        self.pending.remove(peer);
    }

    /// Attempts made at `peer` since it was last connected.
    pub(crate) fn attempts(&self, peer: &P) -> u32 {
        self.pending.get(peer).map_or(0, |(_, b)| b.attempts())
    }

    fn next(&mut self, peer: P, random: f64) -> Option<Next> {
        let (_, backoff) = self.pending.get_mut(&peer)?;
        match backoff.next_delay(random) {
            Some(delay) => Some(Next::After(delay)),
            None => {
                let attempts = backoff.attempts();
                self.pending.remove(&peer);
                Some(Next::GiveUp { attempts })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn redials(max_attempts: Option<u32>) -> Redials<u8, &'static str> {
        Redials::new(BackoffPolicy {
            initial: 100 * MS,
            max: 1000 * MS,
            multiplier: 2.0,
            jitter: 0.0,
            max_attempts,
        })
    }

    const MEMBER: Ended = Ended {
        said_bye: false,
        was_member: true,
        client: false,
        bootstrap: false,
        shares_nothing: false,
    };

    #[test]
    fn a_member_lost_without_a_goodbye_is_dialed_again_on_a_growing_schedule() {
        let mut r = redials(None);
        assert_eq!(
            r.gone(1, Some("a"), MEMBER, 0.0),
            Some(Next::After(100 * MS))
        );
        assert_eq!(r.due(&1), Some(&"a"));
        let delays: Vec<Option<Next>> = (0..5).map(|_| r.failed(1, 0.0)).collect();
        let ms = |n| Some(Next::After(n * MS));
        assert_eq!(delays, [ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        assert_eq!(r.attempts(&1), 6);

        r.connected(&1);
        assert_eq!(
            r.gone(1, Some("a"), MEMBER, 0.0),
            Some(Next::After(100 * MS)),
            "back, then lost again: the schedule starts over"
        );
    }

    #[test]
    fn who_is_not_dialed_again() {
        let mut r = redials(None);
        let cases = [
            (
                "said goodbye",
                Ended {
                    said_bye: true,
                    ..MEMBER
                },
                Some("a"),
            ),
            (
                "never a member",
                Ended {
                    was_member: false,
                    ..MEMBER
                },
                Some("a"),
            ),
            (
                "a client",
                Ended {
                    client: true,
                    ..MEMBER
                },
                Some("a"),
            ),
            ("no address", MEMBER, None),
            (
                "a bootstrap peer of no realm of ours",
                Ended {
                    was_member: false,
                    bootstrap: true,
                    shares_nothing: true,
                    ..MEMBER
                },
                Some("a"),
            ),
        ];
        for (why, ended, addr) in cases {
            assert_eq!(r.gone(1, addr, ended, 0.0), None, "{why}");
            assert_eq!(r.due(&1), None, "{why}");
        }
        let bootstrap = Ended {
            was_member: false,
            bootstrap: true,
            ..MEMBER
        };
        assert!(
            r.gone(2, Some("b"), bootstrap, 0.0).is_some(),
            "a bootstrap peer is"
        );
    }

    #[test]
    fn a_goodbye_ends_a_schedule_under_way_and_attempts_run_out() {
        let mut r = redials(Some(2));
        assert!(r.gone(1, Some("a"), MEMBER, 0.0).is_some());
        let bye = Ended {
            said_bye: true,
            ..MEMBER
        };
        assert_eq!(r.gone(1, Some("a"), bye, 0.0), None);
        assert_eq!(r.due(&1), None);

        assert!(r.gone(2, Some("b"), MEMBER, 0.0).is_some());
        assert!(matches!(r.failed(2, 0.0), Some(Next::After(_))));
        assert_eq!(r.failed(2, 0.0), Some(Next::GiveUp { attempts: 2 }));
        assert_eq!(r.due(&2), None, "forgotten");
        assert_eq!(r.failed(2, 0.0), None);
    }
}
