//! Where a realm's publications go, and in what order: the routing decisions of a router.
//!
//! [`Routing`] holds the realm's members in slots, the subscriptions (this node's and its
//! members'), each publisher's sequence, this node's own numbering, and what members gone
//! without a goodbye are missing. It decides:
//! - for a publication of this node: its targets and number ([`route_local`](Routing::route_local));
//!   a client sends everything to its access node as well, whatever that node asked for;
//! - for a member's publication: whether it is a duplicate, its targets
//!   ([`route_remote`](Routing::route_remote)), and which of the peer targets it is relayed to
//!   ([`relays_to`](Routing::relays_to), by the [`relay`](crate::core::relay) rules);
//! - how many deliveries absent members miss each time ([`Route::missed`]).
//!
//! It does not authorize (that is [`authority`](crate::core::authority)'s, before a publication
//! is routed), encode, or deliver: its owner does that with the targets it is given. Time is an
//! argument.

use std::hash::Hash;
use std::time::Instant;

use weft_names::{Name, Pattern};

use crate::core::absent::Absent;
use crate::core::interest::Interests;
use crate::core::relay::{self, Origin};
use crate::core::sequence::{SequenceRun, Sequenced, Sequencer};
use crate::core::slots::{Slot, Slots};

/// Where a matching publication goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// A subscription of this node, by id.
    Local(u32),
    /// A member, by slot.
    Peer(Slot),
}

/// What routing needs to know of a member.
pub(crate) trait Routed<P> {
    /// Its peer.
    fn peer(&self) -> &P;
    /// A client of this node: what it publishes is relayed to the realm, and what the realm
    /// publishes is relayed to it.
    fn client(&self) -> bool;
    /// Its run, from its hello (`core::sequence`).
    fn run(&self) -> u64;
}

/// Why a peer's publication goes nowhere (`core::sequence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unrouted {
    /// It was delivered already, or is of the publisher's earlier run.
    Duplicate,
    /// It is too far behind the publisher's highest number to tell: counted as lost.
    TooLate,
}

/// A publication's route, beside the targets written into the caller's vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    /// Deliveries it misses because their member is gone (counted, never silent).
    pub(crate) missed: usize,
}

/// The routing of one realm; `P` names a peer, `M` is the owner's entry for a member.
#[derive(Debug)]
pub(crate) struct Routing<P, M> {
    members: Slots<P, M>,
    interests: Interests<Target>,
    sequencer: Sequencer<P>,
    absent: Absent<P>,
    /// This node's last number for a publication it sent (its own, or relayed).
    next_seq: u64,
    /// This node is a client: its members are its access node.
    client: bool,
}

impl<P: Clone + Eq + Hash, M: Routed<P>> Routing<P, M> {
    /// No member and no subscription; `client` if this node is a client.
    pub(crate) fn new(client: bool) -> Self {
        Self {
            members: Slots::default(),
            interests: Interests::new(),
            sequencer: Sequencer::new(),
            absent: Absent::default(),
            next_seq: 0,
            client,
        }
    }

    /// Whether this node is a client.
    pub(crate) fn client(&self) -> bool {
        self.client
    }

    /// The members.
    pub(crate) fn members(&self) -> &Slots<P, M> {
        &self.members
    }

    /// The members, to change an owner's entry (not to admit or remove: see
    /// [`join`](Self::join) and [`leave`](Self::leave)).
    pub(crate) fn members_mut(&mut self) -> &mut Slots<P, M> {
        &mut self.members
    }

    /// The subscriptions.
    pub(crate) fn interests(&self) -> &Interests<Target> {
        &self.interests
    }

    /// Admits `peer` at `now`. A member that reconnects starts a new session: its old
    /// subscriptions are void, and it has a while to announce them again. Its numbering goes
    /// on (a restart is a new run, see `core::sequence`).
    pub(crate) fn join(&mut self, peer: P, member: M, now: Instant) -> Slot {
        if let Some(slot) = self.members.slot(&peer) {
            self.interests.remove_target(&Target::Peer(slot));
        }
        self.sequencer.session(&peer, member.run());
        self.absent.rejoined(&peer, now);
        self.members.insert(peer, member)
    }

    /// `peer` left at `now`, without a goodbye if `abrupt`: then what its subscriptions match
    /// from now on is counted as missed until it is back. Its subscriptions go before its slot
    /// can be given to another member.
    pub(crate) fn leave(&mut self, peer: &P, abrupt: bool, now: Instant) -> Option<(Slot, M)> {
        let (slot, member) = self.members.remove(peer)?;
        let target = Target::Peer(slot);
        if abrupt {
            let held: Vec<(u32, Pattern)> = self
                .interests
                .patterns(&target)
                .map(|(id, pattern)| (id, pattern.clone()))
                .collect();
            self.absent.left(peer.clone(), member.client(), held, now);
        }
        self.interests.remove_target(&target);
        Some((slot, member))
    }

    /// Forgets, at `now`, absent members whose time to come back has passed.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.absent.expire(now);
    }

    /// This node subscribed (`id`, `pattern`).
    pub(crate) fn add_local(&mut self, id: u32, pattern: Pattern) {
        self.interests.insert(Target::Local(id), 0, pattern);
    }

    /// This node's subscription `id` ended.
    pub(crate) fn remove_local(&mut self, id: u32) {
        self.interests.remove_target(&Target::Local(id));
    }

    /// `peer` announced, or ended, its subscription `id` (an absent member that
    /// does so is back for that subscription).
    pub(crate) fn announced(&mut self, peer: &P, id: u32) {
        self.absent.announced(peer, id);
    }

    /// The member in `slot` subscribes (`id`, `pattern`), authorized and within its cap.
    pub(crate) fn subscribe(&mut self, slot: Slot, id: u32, pattern: Pattern) {
        self.interests.insert(Target::Peer(slot), id, pattern);
    }

    /// The member in `slot` ended its subscription `id`.
    pub(crate) fn unsubscribe(&mut self, slot: Slot, id: u32) {
        self.interests.remove(&Target::Peer(slot), id);
    }

    /// Routes a publication of this node to `topic`: its targets go into `targets` (emptied
    /// first), and it takes the next number, returned.
    pub(crate) fn route_local(&mut self, topic: &Name, targets: &mut Vec<Target>) -> (u64, Route) {
        self.interests.targets_into(topic, targets);
        let missed = self.missed(topic, false, targets);
        if self.client {
            // The access node routes for us, whatever it asked for.
            for slot in self.members.slots() {
                if !targets.contains(&Target::Peer(slot)) {
                    targets.push(Target::Peer(slot));
                }
            }
        }
        self.next_seq += 1;
        (self.next_seq, Route { missed })
    }

    /// Starts routing a batch of `from`'s publications: see [`route_remote`](Self::route_remote)
    /// and [`end_batch`](Self::end_batch).
    pub(crate) fn begin_batch(&self, from: &P, run: u64) -> SequenceRun {
        self.sequencer.run(from, run)
    }

    /// Routes `from`'s publication number `seq` to `topic`, within the batch `run`: `None` for a
    /// duplicate (or one older than what was delivered), which goes nowhere; otherwise its
    /// targets go into `targets`, local and peers alike (relaying is
    /// [`relays_to`](Self::relays_to)'s to decide).
    pub(crate) fn route_remote(
        &mut self,
        run: &mut SequenceRun,
        seq: u64,
        topic: &Name,
        targets: &mut Vec<Target>,
    ) -> Result<Route, Unrouted> {
        // Gaps are normal: a peer is sent only what matches its interests, and every
        // publication of the realm takes a number. Duplicates and late copies count.
        match run.handle(seq) {
            Sequenced::Duplicate => return Err(Unrouted::Duplicate),
            Sequenced::TooLate => return Err(Unrouted::TooLate),
            Sequenced::Deliver { .. } => {}
        }
        self.interests.targets_into(topic, targets);
        let missed = self.missed(topic, true, targets);
        Ok(Route { missed })
    }

    /// Ends the batch `run` of `from`'s publications.
    pub(crate) fn end_batch(&mut self, from: P, run: SequenceRun) {
        self.sequencer.finish(from, run);
    }

    /// The member in `slot`, if a publication from `origin` is relayed to it.
    pub(crate) fn relays_to(&self, origin: &Origin<P>, slot: Slot) -> Option<&M> {
        let member = self.members.get(slot)?;
        relay::publish_to(origin, member.peer(), member.client()).then_some(member)
    }

    /// Takes the next number for a publication this node relays: a peer sees one sequence from
    /// this node, whoever published.
    pub(crate) fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn missed(&mut self, topic: &Name, relayed: bool, targets: &[Target]) -> usize {
        let members = &self.members;
        self.absent.missed(topic, relayed, |peer| {
            members
                .slot(peer)
                .is_some_and(|slot| targets.contains(&Target::Peer(slot)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A member: its name, and whether it is a client of this node.
    #[derive(Debug)]
    struct Peer(&'static str, bool);

    impl Routed<&'static str> for Peer {
        fn peer(&self) -> &&'static str {
            &self.0
        }
        fn client(&self) -> bool {
            self.1
        }
        fn run(&self) -> u64 {
            1
        }
    }

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn pattern(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    fn sorted(mut targets: Vec<Target>) -> Vec<Target> {
        targets.sort_unstable_by_key(|t| match t {
            Target::Local(id) => (0, *id),
            Target::Peer(slot) => (1, *slot),
        });
        targets
    }

    #[test]
    fn a_local_publication_goes_to_matching_subscriptions_and_takes_the_next_number() {
        let now = Instant::now();
        let mut routing: Routing<&str, Peer> = Routing::new(false);
        let a = routing.join("a", Peer("a", false), now);
        let b = routing.join("b", Peer("b", false), now);
        routing.add_local(7, pattern("orders.*"));
        routing.subscribe(a, 1, pattern("orders.**"));
        routing.subscribe(b, 1, pattern("audit.*"));
        let mut targets = Vec::new();
        let (seq, route) = routing.route_local(&name("orders.placed"), &mut targets);
        assert_eq!(
            sorted(targets.clone()),
            vec![Target::Local(7), Target::Peer(a)]
        );
        assert_eq!((seq, route.missed), (1, 0));
        let (seq, _) = routing.route_local(&name("nothing.here"), &mut targets);
        assert!(targets.is_empty());
        assert_eq!(seq, 2, "numbered whether or not anyone listens");
    }

    #[test]
    fn a_client_sends_everything_to_its_access_node() {
        let now = Instant::now();
        let mut routing: Routing<&str, Peer> = Routing::new(true);
        let access = routing.join("access", Peer("access", false), now);
        let mut targets = Vec::new();
        routing.route_local(&name("orders.placed"), &mut targets);
        assert_eq!(targets, vec![Target::Peer(access)]);
    }

    #[test]
    fn duplicates_go_nowhere_and_relays_follow_the_rules() {
        let now = Instant::now();
        let mut routing: Routing<&str, Peer> = Routing::new(false);
        let member = routing.join("member", Peer("member", false), now);
        let client = routing.join("client", Peer("client", true), now);
        let other = routing.join("other", Peer("other", false), now);
        for slot in [member, client, other] {
            routing.subscribe(slot, 1, pattern("orders.*"));
        }
        let topic = name("orders.placed");
        let mut targets = Vec::new();
        let mut run = routing.begin_batch(&"member", 1);
        assert!(
            routing
                .route_remote(&mut run, 5, &topic, &mut targets)
                .is_ok()
        );
        assert!(
            routing.route_remote(&mut run, 5, &topic, &mut targets) == Err(Unrouted::Duplicate),
            "the same number twice"
        );
        routing.end_batch("member", run);
        let mut run = routing.begin_batch(&"member", 1);
        assert!(
            routing.route_remote(&mut run, 5, &topic, &mut targets) == Err(Unrouted::Duplicate),
            "delivered already, in a later batch"
        );
        assert!(
            routing
                .route_remote(&mut run, 4, &topic, &mut targets)
                .is_ok(),
            "a lower number never delivered: a copy that came late"
        );
        routing.end_batch("member", run);

        // A member's publication is relayed to clients only; a client's to everyone but itself.
        let relayed = |origin: Origin<&'static str>| -> Vec<Slot> {
            [member, client, other]
                .into_iter()
                .filter(|slot| routing.relays_to(&origin, *slot).is_some())
                .collect()
        };
        assert_eq!(relayed(Origin::Member), vec![client]);
        assert_eq!(relayed(Origin::Client("client")), vec![member, other]);
        let first = routing.take_seq();
        assert_eq!(
            routing.take_seq(),
            first + 1,
            "relays are numbered as this node's own"
        );
    }

    #[test]
    fn what_a_member_gone_without_goodbye_misses_is_counted_until_it_is_back() {
        let now = Instant::now();
        let mut routing: Routing<&str, Peer> = Routing::new(false);
        let slot = routing.join("a", Peer("a", false), now);
        routing.subscribe(slot, 1, pattern("orders.*"));
        let topic = name("orders.placed");
        let mut targets = Vec::new();

        assert!(routing.leave(&"a", true, now).is_some());
        let (_, route) = routing.route_local(&topic, &mut targets);
        assert_eq!((targets.len(), route.missed), (0, 1));

        // Back, but its subscription not announced yet: still missed.
        let later = now + Duration::from_secs(1);
        let slot = routing.join("a", Peer("a", false), later);
        assert_eq!(routing.route_local(&topic, &mut targets).1.missed, 1);
        routing.announced(&"a", 1);
        routing.subscribe(slot, 1, pattern("orders.*"));
        let (_, route) = routing.route_local(&topic, &mut targets);
        assert_eq!((targets, route.missed), (vec![Target::Peer(slot)], 0));

        // One that said goodbye misses nothing that counts.
        assert!(routing.leave(&"a", false, later).is_some());
        let mut targets = Vec::new();
        assert_eq!(routing.route_local(&topic, &mut targets).1.missed, 0);
    }

    #[test]
    fn a_member_that_reconnects_starts_without_its_old_subscriptions() {
        let now = Instant::now();
        let mut routing: Routing<&str, Peer> = Routing::new(false);
        let slot = routing.join("a", Peer("a", false), now);
        routing.subscribe(slot, 1, pattern("orders.*"));
        assert_eq!(routing.join("a", Peer("a", false), now), slot, "same slot");
        let mut targets = Vec::new();
        routing.route_local(&name("orders.placed"), &mut targets);
        assert!(targets.is_empty(), "{targets:?}");
    }
}
