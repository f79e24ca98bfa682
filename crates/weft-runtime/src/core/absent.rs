//! Subscriptions of members whose session ended without a goodbye. Publications they would have
//! received are lost to them: not silently, but counted (`dropped_peer_gone`), from the moment
//! the session ends until the member is back and has announced each subscription again, or a
//! grace period passes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use weft_names::{Name, Pattern};

use crate::core::interest::Interests;

/// How long a member gone without a goodbye is expected back (its redials are at most 10 s
/// apart by default).
pub(crate) const GONE_FOR: Duration = Duration::from_secs(60);
/// How long a member that is back has to announce its subscriptions again: it sends them all
/// right after admission.
pub(crate) const REANNOUNCE_WITHIN: Duration = Duration::from_secs(5);
/// Absent members remembered at most; past it the one gone longest is forgotten.
pub(crate) const MAX_ABSENT: usize = 1024;

/// The absent members' subscriptions.
#[derive(Debug)]
pub(crate) struct Absent<P> {
    table: Interests<P>,
    /// Until when each is remembered, oldest first, and whether it was a client (relayed
    /// everything of the realm) rather than a member (sent only this node's publications).
    until: VecDeque<(P, Instant, bool)>,
    scratch: Vec<P>,
}

impl<P> Default for Absent<P> {
    fn default() -> Self {
        Self {
            table: Interests::default(),
            until: VecDeque::new(),
            scratch: Vec::new(),
        }
    }
}

impl<P: Clone + Eq + std::hash::Hash> Absent<P> {
    /// `peer` (a `client` of this node, or a member) left without a goodbye, holding
    /// `subscriptions`.
    pub(crate) fn left(
        &mut self,
        peer: P,
        client: bool,
        subscriptions: impl IntoIterator<Item = (u32, Pattern)>,
        now: Instant,
    ) {
        self.forget(&peer);
        let mut any = false;
        for (id, pattern) in subscriptions {
            self.table.insert(peer.clone(), id, pattern);
            any = true;
        }
        if !any {
            return;
        }
        if self.until.len() >= MAX_ABSENT
            && let Some((oldest, _, _)) = self.until.pop_front()
        {
            self.table.remove_target(&oldest);
        }
        self.until.push_back((peer, now + GONE_FOR, client));
    }

    /// `peer` is back: what it has not announced again within [`REANNOUNCE_WITHIN`] is forgotten.
    pub(crate) fn rejoined(&mut self, peer: &P, now: Instant) {
        if let Some(entry) = self.until.iter_mut().find(|(p, _, _)| p == peer) {
            entry.1 = entry.1.min(now + REANNOUNCE_WITHIN);
        }
    }

    /// `peer` announced (or ended) subscription `id` in its new session.
    pub(crate) fn announced(&mut self, peer: &P, id: u32) {
        if self.table.remove(peer, id).is_some() && self.table.count(peer) == 0 {
            self.until.retain(|(p, _, _)| p != peer);
        }
    }

    /// Forgets what is past its time.
    pub(crate) fn expire(&mut self, now: Instant) {
        let table = &mut self.table;
        self.until.retain(|(peer, until, _)| {
            let keep = *until > now;
            if !keep {
                table.remove_target(peer);
            }
            keep
        });
    }

    fn forget(&mut self, peer: &P) {
        self.table.remove_target(peer);
        self.until.retain(|(p, _, _)| p != peer);
    }

    /// How many absent peers a publication to `topic` misses, leaving out those `receives`
    /// says get it anyway (back, under another subscription). A publication from another member
    /// (`relayed`) was only ever going to clients, so only clients count for it.
    pub(crate) fn missed(
        &mut self,
        topic: &Name,
        relayed: bool,
        receives: impl Fn(&P) -> bool,
    ) -> usize {
        if self.until.is_empty() {
            return 0;
        }
        self.table.targets_into(topic, &mut self.scratch);
        let until = &self.until;
        self.scratch
            .iter()
            .filter(|peer| !receives(peer))
            .filter(|peer| !relayed || until.iter().any(|(p, _, client)| p == *peer && *client))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    #[test]
    fn a_gone_members_publications_are_counted_until_it_announces_again() {
        let t0 = Instant::now();
        let mut absent = Absent::default();
        absent.left("b", false, [(1, p("orders.*")), (2, p("billing.**"))], t0);
        absent.left("c", false, [], t0); // held nothing: nothing to count
        assert_eq!(absent.missed(&n("orders.placed"), false, |_| false), 1);
        assert_eq!(absent.missed(&n("other"), false, |_| false), 0);
        // Another member's publication was never going to b, a member.
        assert_eq!(absent.missed(&n("orders.placed"), true, |_| false), 0);
        absent.left("k", true, [(1, p("orders.*"))], t0);
        assert_eq!(
            absent.missed(&n("orders.placed"), true, |_| false),
            1,
            "k, a client"
        );
        absent.announced(&"k", 1);
        // Back, and announced orders.* again: only billing is still missed.
        absent.rejoined(&"b", t0 + Duration::from_secs(3));
        absent.announced(&"b", 1);
        assert_eq!(absent.missed(&n("orders.placed"), false, |_| false), 0);
        assert_eq!(absent.missed(&n("billing.paid"), false, |_| false), 1);
        // Getting it anyway under another subscription is not a miss.
        assert_eq!(
            absent.missed(&n("billing.paid"), false, |peer| *peer == "b"),
            0
        );
        // Not announced within the grace after rejoining: forgotten.
        absent.expire(t0 + Duration::from_secs(9));
        assert_eq!(absent.missed(&n("billing.paid"), false, |_| false), 0);
    }

    #[test]
    fn a_member_that_never_comes_back_is_forgotten_and_the_table_is_bounded() {
        let t0 = Instant::now();
        let mut absent = Absent::default();
        absent.left(0u32, false, [(1, p("x"))], t0);
        absent.expire(t0 + GONE_FOR - Duration::from_secs(1));
        assert_eq!(absent.missed(&n("x"), false, |_| false), 1);
        absent.expire(t0 + GONE_FOR);
        assert_eq!(absent.missed(&n("x"), false, |_| false), 0);
        for peer in 0..(MAX_ABSENT as u32 + 10) {
            absent.left(peer, false, [(1, p("x"))], t0);
        }
        assert_eq!(absent.until.len(), MAX_ABSENT);
        assert_eq!(absent.missed(&n("x"), false, |_| false), MAX_ABSENT);
    }
}
