//! Which of a realm's membership records a node announces, and which it looks up.
//!
//! A node holds at most 200 providers per key (the network store's `MAX_PROVIDERS_PER_KEY`), keeping the
//! first that came. Under one membership key, every member of a realm of thousands would find
//! the same few hundred, and those would refuse most sessions for room: in the simulator
//! (`crate::simulation`), 1,000 nodes of 16 connections left 42 % of them without a member
//! and delivered 18 % of publications. So every member announces itself under one of
//! [`SHARDS`] shard keys, the one its identity picks, and its lookups alternate between the
//! realm's own key (the base key) and the shards, one after another, so that they find a
//! sample of the whole realm rather than its oldest members.
//!
//! In a realm of a few dozen most shards are empty: the base key is how its members find each
//! other. A node announces itself there too if a lookup of it finds fewer than
//! [`BASE_ENOUGH`] members, once, and never withdraws: the base key holds a realm's first
//! members, enough to bootstrap from.

use sha2::Digest as _;
use weft_identity::Did;

/// Shard keys a realm's members spread over: at 200 providers each, 12,800 members all find a
/// place.
pub(crate) const SHARDS: u8 = 64;
/// Members a lookup of the base key must find for the realm to count as large.
pub(crate) const BASE_ENOUGH: usize = 64;

/// The shard `member` announces itself under.
pub(crate) fn shard_of(member: &Did) -> u8 {
    shard_from(member.to_string().as_bytes())
}

/// The shard an identity written as `name` picks.
pub(crate) fn shard_from(name: &[u8]) -> u8 {
    sha2::Sha256::digest(name)[0] % SHARDS
}

/// A membership lookup to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The realm's own key.
    Base,
    /// One of its shards.
    Shard(u8),
}

/// One realm's membership lookups and base-key announcement, for one node.
#[derive(Debug)]
pub(crate) struct Rendezvous {
    /// Announced under the base key.
    announced: bool,
    next_shard: u8,
    /// The next lookup is of a shard.
    shard_next: bool,
}

impl Rendezvous {
    /// Shard lookups start at `start` (any number; taken modulo [`SHARDS`]).
    pub(crate) fn new(start: u8) -> Self {
        Self {
            announced: false,
            next_shard: start % SHARDS,
            // Sessions taken from a shard's members spread over the realm; the base key's are
            // its first members, which every newcomer would ask.
            shard_next: true,
        }
    }

    /// The lookup to make next: a shard and the base key in turn, a shard first.
    pub(crate) fn next(&mut self) -> Lookup {
        self.shard_next = !self.shard_next;
        if !self.shard_next {
            let shard = self.next_shard;
            self.next_shard = (shard + 1) % SHARDS;
            return Lookup::Shard(shard);
        }
        Lookup::Base
    }

    /// A lookup of `which` found `found` members other than this node: whether to announce
    /// under the base key now.
    pub(crate) fn found(&mut self, which: Lookup, found: usize) -> bool {
        if which != Lookup::Base || self.announced || found >= BASE_ENOUGH {
            return false;
        }
        self.announced = true;
        true
    }
}

/// What a membership lookup says of the realm, for the pace of the next ones
/// ([`Discovery`](super::discovery)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It found members this node was not connected to.
    New,
    /// The base key named members, none of them new: the realm may hold no one else.
    NoOneNew,
    /// It says nothing either way: a shard holds a sliver of the realm, and a walk that found
    /// no one at all failed (the base key names at least this node's own members).
    Inconclusive,
}

/// The verdict of a lookup of `which` that found `found` members, `new` of them ones this node
/// was not connected to.
pub(crate) fn verdict(which: Lookup, found: usize, new: usize) -> Verdict {
    if new > 0 {
        Verdict::New
    } else if found == 0 || matches!(which, Lookup::Shard(_)) {
        Verdict::Inconclusive
    } else {
        Verdict::NoOneNew
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_alternate_between_each_shard_in_turn_and_the_base_key() {
        let mut r = Rendezvous::new(SHARDS - 1);
        let lookups: Vec<Lookup> = (0..5).map(|_| r.next()).collect();
        assert_eq!(
            lookups,
            [
                Lookup::Shard(SHARDS - 1),
                Lookup::Base,
                Lookup::Shard(0),
                Lookup::Base,
                Lookup::Shard(1)
            ]
        );
    }

    #[test]
    fn a_node_announces_under_the_base_key_once_if_few_are_there() {
        let mut r = Rendezvous::new(0);
        assert!(
            !r.found(Lookup::Shard(3), 0),
            "shards say nothing of the base key"
        );
        assert!(r.found(Lookup::Base, 0), "alone: announce");
        assert!(!r.found(Lookup::Base, 1), "announced already");
        let mut late = Rendezvous::new(0);
        assert!(
            !late.found(Lookup::Base, BASE_ENOUGH),
            "enough there already"
        );
        assert!(late.found(Lookup::Base, BASE_ENOUGH - 1), "fewer now");
    }

    #[test]
    fn only_the_base_key_naming_no_one_new_says_the_realm_may_hold_no_one_else() {
        assert_eq!(verdict(Lookup::Base, 3, 1), Verdict::New, "found someone");
        assert_eq!(
            verdict(Lookup::Base, 3, 0),
            Verdict::NoOneNew,
            "the base key names no one new"
        );
        assert_eq!(
            verdict(Lookup::Base, 0, 0),
            Verdict::Inconclusive,
            "a walk that found no one says nothing"
        );
        assert_eq!(
            verdict(Lookup::Shard(5), 2, 0),
            Verdict::Inconclusive,
            "one shard says little"
        );
        assert_eq!(verdict(Lookup::Shard(5), 3, 3), Verdict::New);
    }

    #[test]
    fn members_spread_over_every_shard() {
        let mut counts = [0u32; SHARDS as usize];
        for i in 0..6_400u32 {
            counts[usize::from(shard_from(&i.to_be_bytes()))] += 1;
        }
        assert!(counts.iter().all(|c| (50..=150).contains(c)), "{counts:?}");
    }
}
