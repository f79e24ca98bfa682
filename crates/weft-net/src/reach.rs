//! Whether this node can be reached from outside, and which relays it holds a slot on.
//!
//! AutoNAT v2 asks other nodes to dial this node back at an address it was seen at; a dial that
//! arrives proves the address public. A node none of whose addresses proved public, after at
//! least one was tried, is behind a NAT or a firewall: it reserves a slot on up to
//! [`RESERVATIONS`] relays it knows (peers that offer the relay protocol), and announces its
//! relayed addresses, through which peers reach it until hole punching gives them a direct path.
//!
//! What peers say is bounded here: which addresses are tested (public-looking ones, a few),
//! which relays are remembered, and what a relay may make this node announce.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
pub use weft_wire::inspect::Reachability;

/// Relays a node behind a NAT holds a slot on: two, so that losing one leaves it reachable.
pub const RESERVATIONS: usize = 2;
/// Relays remembered, of those seen.
const KNOWN_RELAYS: usize = 8;
/// Addresses whose test results are kept.
const TESTED: usize = 16;
/// Addresses offered for testing that are remembered (so each is offered once); past this,
/// the memory starts again.
const OFFERED: usize = 16;
/// Relayed addresses taken from one slot: a relay names the node's address through it, and
/// one that named hundreds would fill the node's records and identify messages.
const ADDRS_PER_SLOT: usize = 2;
/// A reservation that neither came up nor failed in this long is given up (and retried).
const RESERVATION_TIMEOUT: Duration = Duration::from_secs(30);
/// A relay that refused or ignored a reservation is not asked again for this long.
const RELAY_BACKOFF: Duration = Duration::from_secs(60);
/// A relay whose granted slot closed is asked again after this long (another one at once).
const RETRY_AFTER_LOSS: Duration = Duration::from_secs(10);
/// How long a node is private with no relay known before it says so.
const STRANDED_AFTER: Duration = Duration::from_secs(30);
/// Records are provided again, for a new relayed address, at most this often.
const PROVIDE_AGAIN_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
enum Slot {
    Asked {
        listener: ListenerId,
        since: Instant,
    },
    Held {
        listener: ListenerId,
    },
}

impl Slot {
    fn listener(&self) -> ListenerId {
        match self {
            Slot::Asked { listener, .. } | Slot::Held { listener } => *listener,
        }
    }
}

/// What to do about relay slots now.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Asks {
    /// Listeners of slots given up, to remove (a late answer must not bring one back).
    pub(crate) give_up: Vec<ListenerId>,
    /// Relays to ask, as circuit listen addresses.
    pub(crate) ask: Vec<(PeerId, Multiaddr)>,
}

/// AutoNAT's results, the relays known, and the reservations held.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    tested: HashMap<Multiaddr, (bool, Instant)>,
    offered: HashSet<Multiaddr>,
    relays: Vec<(PeerId, Multiaddr)>,
    slots: HashMap<PeerId, Slot>,
    /// Relayed addresses taken, per slot listener.
    taken: HashMap<ListenerId, usize>,
    /// Relays not to ask until then.
    resting: HashMap<PeerId, Instant>,
    provide_due: bool,
    provided_at: Option<Instant>,
    /// When the node was first found private with no relay to ask, and whether that was said.
    stranded: Option<(Instant, bool)>,
}

impl Reach {
    /// Whether hole punching may offer peers `addr`, an address this node was seen at: only a
    /// public-looking, direct QUIC one (`/ip4|ip6/…/udp/PORT/quic-v1`). A loopback or LAN
    /// address would have a peer on another network dial itself or its neighbours, and libp2p
    /// gives up a punch at the first connection to the wrong peer.
    pub(crate) fn punchable(addr: &Multiaddr) -> bool {
        let mut parts = addr.iter().skip(1);
        crate::addresses::looks_public(addr)
            && matches!(parts.next(), Some(Protocol::Udp(_)))
            && matches!(parts.next(), Some(Protocol::QuicV1))
            && parts.all(|p| matches!(p, Protocol::P2p(_)))
    }

    /// Whether to have AutoNAT test `addr`, an address this node was seen at: only a
    /// public-looking, direct one, and each once (libp2p's client tests an address once).
    pub(crate) fn offer(&mut self, addr: &Multiaddr) -> bool {
        if !crate::addresses::looks_public(addr) || is_relayed(addr) {
            return false;
        }
        if self.offered.len() >= OFFERED {
            self.offered.clear();
        }
        self.offered.insert(addr.clone())
    }

    /// An address was tested: `reachable` if the dial back arrived. Only addresses [`offer`]
    /// would take count: a loopback or private address dialed back by a neighbour says nothing
    /// about reachability from elsewhere, nor does a relayed one.
    ///
    /// [`offer`]: Reach::offer
    pub(crate) fn tested(&mut self, addr: Multiaddr, reachable: bool, now: Instant) {
        if !crate::addresses::looks_public(&addr) || is_relayed(&addr) {
            return;
        }
        if !self.tested.contains_key(&addr)
            && self.tested.len() >= TESTED
            && let Some(oldest) = self
                .tested
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(a, _)| a.clone())
        {
            self.tested.remove(&oldest);
        }
        self.tested.insert(addr, (reachable, now));
    }

    /// What the tests say: public if any address was dialed back.
    pub(crate) fn reachability(&self) -> Reachability {
        if self.tested.values().any(|(ok, _)| *ok) {
            Reachability::Public
        } else if self.tested.is_empty() {
            Reachability::Unknown
        } else {
            Reachability::Private
        }
    }

    /// The addresses dialed back.
    pub(crate) fn public_addrs(&self) -> Vec<Multiaddr> {
        let mut addrs: Vec<Multiaddr> = self
            .tested
            .iter()
            .filter(|(_, (ok, _))| *ok)
            .map(|(a, _)| a.clone())
            .collect();
        addrs.sort();
        addrs
    }

    /// A peer offers the relay protocol and can be dialed at `addr` (a direct address).
    pub(crate) fn relay_seen(&mut self, relay: PeerId, addr: Multiaddr) {
        if is_relayed(&addr) {
            return;
        }
        if let Some(known) = self.relays.iter_mut().find(|(p, _)| *p == relay) {
            known.1 = addr;
            return;
        }
        if self.relays.len() == KNOWN_RELAYS {
            // The oldest one without a slot makes room; with every one holding a slot, none.
            let Some(i) = self
                .relays
                .iter()
                .position(|(p, _)| !self.slots.contains_key(p))
            else {
                return;
            };
            self.relays.remove(i);
        }
        self.relays.push((relay, addr));
    }

    /// A peer is no longer connected: forgotten as a relay unless this node holds a slot on it.
    pub(crate) fn relay_gone(&mut self, peer: &PeerId) {
        if !self.slots.contains_key(peer) {
            self.relays.retain(|(p, _)| p != peer);
        }
    }

    /// The relay slots to give up and to ask for now: while the node is private and holds
    /// fewer than [`RESERVATIONS`], relays it has no slot on and that are not resting.
    pub(crate) fn slots_to_ask(&mut self, now: Instant) -> Asks {
        let mut asks = Asks::default();
        let stale: Vec<PeerId> = self
            .slots
            .iter()
            .filter(|(_, slot)| {
                matches!(slot, Slot::Asked { since, .. } if now.duration_since(*since) >= RESERVATION_TIMEOUT)
            })
            .map(|(p, _)| *p)
            .collect();
        for relay in stale {
            if let Some(slot) = self.slots.remove(&relay) {
                asks.give_up.push(slot.listener());
                self.taken.remove(&slot.listener());
            }
            self.resting.insert(relay, now + RELAY_BACKOFF);
        }
        self.resting.retain(|_, until| now < *until);
        if self.reachability() != Reachability::Private {
            return asks;
        }
        let room = RESERVATIONS.saturating_sub(self.slots.len());
        asks.ask = self
            .relays
            .iter()
            .filter(|(p, _)| !self.slots.contains_key(p) && !self.resting.contains_key(p))
            .take(room)
            .map(|(relay, addr)| {
                let circuit = addr
                    .clone()
                    .with(Protocol::P2p(*relay))
                    .with(Protocol::P2pCircuit);
                (*relay, circuit)
            })
            .collect();
        asks
    }

    /// A slot was asked for on `relay`, listening as `listener`.
    pub(crate) fn asked(&mut self, relay: PeerId, listener: ListenerId, now: Instant) {
        self.slots.insert(
            relay,
            Slot::Asked {
                listener,
                since: now,
            },
        );
    }

    /// `relay` accepted the reservation.
    pub(crate) fn held(&mut self, relay: PeerId) {
        if let Some(slot) = self.slots.get_mut(&relay) {
            *slot = Slot::Held {
                listener: slot.listener(),
            };
        }
    }

    /// Listener `listener` reports `addr`, a relayed address of this node (`own`): true if it
    /// is to be announced. Only an address of one of this node's slots, through that slot's
    /// relay and ending with this node, and at most [`ADDRS_PER_SLOT`] of them per slot.
    pub(crate) fn relayed_addr(
        &mut self,
        listener: ListenerId,
        addr: &Multiaddr,
        own: &PeerId,
    ) -> bool {
        let Some(relay) = self
            .slots
            .iter()
            .find(|(_, slot)| slot.listener() == listener)
            .map(|(p, _)| *p)
        else {
            return false;
        };
        let through = addr.iter().any(|p| p == Protocol::P2p(relay));
        let ours = matches!(addr.iter().last(), Some(Protocol::P2p(p)) if p == *own);
        let taken = self.taken.entry(listener).or_default();
        if !through || !ours || *taken >= ADDRS_PER_SLOT {
            return false;
        }
        *taken += 1;
        self.provide_due = true;
        true
    }

    /// Whether to provide every record again now, for relayed addresses announced since the
    /// last time: at most every [`PROVIDE_AGAIN_EVERY`].
    pub(crate) fn provide_now(&mut self, now: Instant) -> bool {
        let rested = self
            .provided_at
            .is_none_or(|at| now.duration_since(at) >= PROVIDE_AGAIN_EVERY);
        if self.provide_due && rested {
            self.provide_due = false;
            self.provided_at = Some(now);
            return true;
        }
        false
    }

    /// A listener closed: if it was a relay slot, the slot is gone, and that relay rests for a
    /// while: a minute if it never granted the slot, less if it did.
    pub(crate) fn listener_closed(&mut self, closed: ListenerId, now: Instant) {
        self.taken.remove(&closed);
        let relay = self
            .slots
            .iter()
            .find(|(_, slot)| slot.listener() == closed)
            .map(|(p, _)| *p);
        if let Some(relay) = relay {
            let rest = match self.slots.remove(&relay) {
                Some(Slot::Held { .. }) => RETRY_AFTER_LOSS,
                _ => RELAY_BACKOFF,
            };
            self.resting.insert(relay, now + rest);
        }
    }

    /// Whether to tell the operator, once, that this node is private and knows no relay: peers
    /// outside its network cannot reach it. Said after [`STRANDED_AFTER`] of it (relays are
    /// learnt as peers connect), and again only if it happens anew.
    pub(crate) fn stranded(&mut self, now: Instant) -> bool {
        let stranded = self.reachability() == Reachability::Private
            && self.relays.is_empty()
            && self.slots.is_empty();
        match (stranded, self.stranded) {
            (false, _) => {
                self.stranded = None;
                false
            }
            (true, None) => {
                self.stranded = Some((now, false));
                false
            }
            (true, Some((since, false))) if now.duration_since(since) >= STRANDED_AFTER => {
                self.stranded = Some((since, true));
                true
            }
            (true, Some(_)) => false,
        }
    }

    /// The relays this node holds a slot on.
    pub(crate) fn relays_held(&self) -> Vec<PeerId> {
        let mut held: Vec<PeerId> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Held { .. }))
            .map(|(p, _)| *p)
            .collect();
        held.sort();
        held
    }
}

/// The address goes through a relay.
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_looking_direct_addresses_are_tested_and_count() {
        let t0 = Instant::now();
        let mut reach = Reach::default();
        for private in [
            "/ip4/127.0.0.1/udp/4001/quic-v1",
            "/ip4/192.168.1.2/udp/4001/quic-v1",
            "/ip4/10.0.0.2/udp/4001/quic-v1",
            "/ip4/100.64.0.2/udp/4001/quic-v1",
            "/ip6/fd00::2/udp/4001/quic-v1",
            "/ip4/198.18.0.10/udp/4001/quic-v1/p2p-circuit",
        ] {
            assert!(!reach.offer(&addr(private)), "{private}");
            reach.tested(addr(private), true, t0);
        }
        assert_eq!(
            reach.reachability(),
            Reachability::Unknown,
            "none of those count"
        );
        let public = addr("/ip4/198.18.0.21/udp/4001/quic-v1");
        assert!(Reach::punchable(&public));
        for private in [
            "/ip4/127.0.0.1/udp/4001/quic-v1",
            "/ip4/192.168.1.2/udp/4001/quic-v1",
            "/ip4/198.18.0.10/udp/4001/quic-v1/p2p-circuit",
            "/ip6/::ffff:127.0.0.1/udp/4001/quic-v1",
            "/ip4/198.18.0.21/tcp/4001",
            "/ip4/198.18.0.21/udp/4001/webrtc-direct",
        ] {
            assert!(!Reach::punchable(&addr(private)), "{private}");
        }
        assert!(reach.offer(&public));
        assert!(!reach.offer(&public), "each address once");
        reach.tested(public, false, t0);
        assert_eq!(reach.reachability(), Reachability::Private);
        reach.tested(addr("/ip4/198.18.0.30/udp/4001/quic-v1"), true, t0);
        assert_eq!(reach.reachability(), Reachability::Public);
        assert_eq!(
            reach.public_addrs(),
            [addr("/ip4/198.18.0.30/udp/4001/quic-v1")]
        );
        // Addresses offered and tested are bounded, the oldest making room.
        for i in 0..40 {
            let a = addr(&format!("/ip4/203.0.113.{i}/udp/1/quic-v1"));
            reach.offer(&a);
            reach.tested(a, false, t0 + Duration::from_secs(i));
        }
        assert_eq!(reach.tested.len(), TESTED);
        assert!(reach.offered.len() <= OFFERED);
    }

    fn private_with_relays(n: usize) -> (Reach, Vec<PeerId>) {
        let mut reach = Reach::default();
        let relays: Vec<PeerId> = (0..n).map(|_| PeerId::random()).collect();
        for (i, relay) in relays.iter().enumerate() {
            reach.relay_seen(*relay, addr(&format!("/ip4/198.18.0.{i}/udp/4001/quic-v1")));
        }
        reach.tested(
            addr("/ip4/198.18.0.21/udp/4001/quic-v1"),
            false,
            Instant::now(),
        );
        (reach, relays)
    }

    #[test]
    fn a_private_node_reserves_on_two_relays_and_replaces_a_lost_one() {
        let t0 = Instant::now();
        let mut reach = Reach::default();
        let relays: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for (i, relay) in relays.iter().enumerate() {
            reach.relay_seen(*relay, addr(&format!("/ip4/198.18.0.{i}/udp/4001/quic-v1")));
        }
        // Relayed addresses are no way to reach a relay.
        reach.relay_seen(
            PeerId::random(),
            addr("/ip4/1.2.3.4/udp/1/quic-v1/p2p-circuit"),
        );
        assert_eq!(reach.relays.len(), 3);
        assert_eq!(
            reach.slots_to_ask(t0),
            Asks::default(),
            "not known to be private"
        );
        reach.tested(addr("/ip4/198.18.0.21/udp/4001/quic-v1"), false, t0);
        let asked = reach.slots_to_ask(t0).ask;
        assert_eq!(asked.len(), RESERVATIONS);
        assert_eq!(
            asked[0].1.to_string(),
            format!(
                "/ip4/198.18.0.0/udp/4001/quic-v1/p2p/{}/p2p-circuit",
                relays[0]
            )
        );
        let (l0, l1) = (ListenerId::next(), ListenerId::next());
        reach.asked(relays[0], l0, t0);
        reach.asked(relays[1], l1, t0);
        assert!(reach.slots_to_ask(t0).ask.is_empty(), "two slots asked for");
        reach.held(relays[0]);
        assert_eq!(reach.relays_held(), [relays[0]]);
        // The second never answers: given up (its listener removed), and the third asked.
        let later = t0 + RESERVATION_TIMEOUT;
        let next = reach.slots_to_ask(later);
        assert_eq!(next.give_up, [l1]);
        assert_eq!(next.ask.len(), 1);
        assert_eq!(next.ask[0].0, relays[2]);
        reach.asked(relays[2], ListenerId::next(), later);
        // A held slot that closes is asked for again after a short rest.
        reach.listener_closed(l0, later);
        assert!(reach.slots_to_ask(later).ask.is_empty());
        assert_eq!(
            reach.slots_to_ask(later + RETRY_AFTER_LOSS).ask[0].0,
            relays[0]
        );
        // A public node reserves nothing.
        reach.tested(addr("/ip4/198.18.0.40/udp/4001/quic-v1"), true, later);
        assert!(reach.slots_to_ask(later + RELAY_BACKOFF).ask.is_empty());
    }

    #[test]
    fn a_relay_can_make_the_node_announce_only_a_few_addresses_through_itself() {
        let t0 = Instant::now();
        let (mut reach, relays) = private_with_relays(2);
        let own = PeerId::random();
        let (l0, stranger) = (ListenerId::next(), ListenerId::next());
        reach.asked(relays[0], l0, t0);
        let through = |relay: PeerId, i: u8| {
            addr(&format!(
                "/ip4/198.18.0.{i}/udp/4001/quic-v1/p2p/{relay}/p2p-circuit/p2p/{own}"
            ))
        };
        assert!(reach.relayed_addr(l0, &through(relays[0], 0), &own));
        assert!(
            !reach.relayed_addr(l0, &through(relays[1], 1), &own),
            "another relay"
        );
        assert!(
            !reach.relayed_addr(stranger, &through(relays[0], 0), &own),
            "no slot"
        );
        let elsewhere = addr(&format!(
            "/ip4/198.18.0.0/udp/4001/quic-v1/p2p/{}/p2p-circuit/p2p/{}",
            relays[0],
            PeerId::random()
        ));
        assert!(!reach.relayed_addr(l0, &elsewhere, &own), "another node's");
        assert!(reach.relayed_addr(l0, &through(relays[0], 9), &own));
        for i in 10..100 {
            assert!(
                !reach.relayed_addr(l0, &through(relays[0], i), &own),
                "past the bound"
            );
        }
        // Providing again happens once for the lot, then at most once a minute.
        assert!(reach.provide_now(t0));
        assert!(!reach.provide_now(t0));
        reach.listener_closed(l0, t0);
        reach.asked(relays[0], l0, t0 + RETRY_AFTER_LOSS);
        assert!(reach.relayed_addr(l0, &through(relays[0], 0), &own));
        assert!(!reach.provide_now(t0 + RETRY_AFTER_LOSS));
        assert!(reach.provide_now(t0 + PROVIDE_AGAIN_EVERY));
    }

    #[test]
    fn relays_known_are_bounded_but_never_those_holding_a_slot() {
        let t0 = Instant::now();
        let (mut reach, relays) = private_with_relays(1);
        reach.asked(relays[0], ListenerId::next(), t0);
        reach.held(relays[0]);
        for i in 0..100 {
            reach.relay_seen(
                PeerId::random(),
                addr(&format!("/ip4/10.0.1.{i}/udp/1/quic-v1")),
            );
        }
        assert_eq!(reach.relays.len(), KNOWN_RELAYS);
        assert!(reach.relays.iter().any(|(p, _)| *p == relays[0]));
        // Gone peers are forgotten, unless they hold this node's slot.
        let gone = reach.relays[1].0;
        reach.relay_gone(&gone);
        reach.relay_gone(&relays[0]);
        assert!(!reach.relays.iter().any(|(p, _)| *p == gone));
        assert!(reach.relays.iter().any(|(p, _)| *p == relays[0]));
    }

    #[test]
    fn a_private_node_with_no_relay_says_so_once() {
        let t0 = Instant::now();
        let mut reach = Reach::default();
        assert!(!reach.stranded(t0), "not known to be private");
        reach.tested(addr("/ip4/198.18.0.21/udp/4001/quic-v1"), false, t0);
        assert!(!reach.stranded(t0));
        assert!(
            !reach.stranded(t0 + STRANDED_AFTER / 2),
            "relays may still come"
        );
        assert!(reach.stranded(t0 + STRANDED_AFTER));
        assert!(!reach.stranded(t0 + STRANDED_AFTER * 2), "said once");
        // A relay appears: no longer stranded; gone again, it is said anew later.
        let relay = PeerId::random();
        reach.relay_seen(relay, addr("/ip4/198.18.0.10/udp/4001/quic-v1"));
        assert!(!reach.stranded(t0 + STRANDED_AFTER * 3));
        reach.relay_gone(&relay);
        let later = t0 + STRANDED_AFTER * 4;
        assert!(!reach.stranded(later));
        assert!(reach.stranded(later + STRANDED_AFTER));
    }
}
