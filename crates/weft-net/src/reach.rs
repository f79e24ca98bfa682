//! Whether this node can be reached from outside, and which relays it holds a slot on.
//!
//! AutoNAT v2 asks other nodes to dial each address this node was seen at; a dial that arrives
//! proves the address public. A node none of whose addresses proved public, after at least one
//! was tried, is behind a NAT or a firewall: it reserves a slot on up to [`RESERVATIONS`] relays
//! it knows (peers that offer the relay protocol), and announces its relayed addresses, through
//! which peers reach it until hole punching gives them a direct path.

use std::collections::HashMap;
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
/// How long a test result stands: a node that moved, or whose NAT changed, tests again within
/// AutoNAT's own interval, and an old success no longer counts after this.
const RESULT_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// A reservation that neither came up nor failed in this long is given up (and retried).
const RESERVATION_TIMEOUT: Duration = Duration::from_secs(30);
/// A relay whose reservation failed is not asked again for this long.
const RELAY_BACKOFF: Duration = Duration::from_secs(60);

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

/// AutoNAT's results, the relays known, and the reservations held.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    tested: HashMap<Multiaddr, (bool, Instant)>,
    relays: Vec<(PeerId, Multiaddr)>,
    slots: HashMap<PeerId, Slot>,
    refused: HashMap<PeerId, Instant>,
}

impl Reach {
    /// An address was tested: `reachable` if the dial back arrived. A loopback address (seen by
    /// a client on this host) says nothing about reachability from elsewhere, nor does a relayed
    /// one (a dial back through the relay proves the relay reachable): both are ignored.
    pub(crate) fn tested(&mut self, addr: Multiaddr, reachable: bool, now: Instant) {
        if crate::addresses::is_loopback(&addr) || is_relayed(&addr) {
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

    /// What the tests say now.
    pub(crate) fn reachability(&self, now: Instant) -> Reachability {
        let recent = || {
            self.tested
                .values()
                .filter(move |(_, at)| now.duration_since(*at) < RESULT_LIFETIME)
        };
        if recent().any(|(ok, _)| *ok) {
            Reachability::Public
        } else if recent().next().is_some() {
            Reachability::Private
        } else {
            Reachability::Unknown
        }
    }

    /// The addresses proved reachable lately.
    pub(crate) fn public_addrs(&self, now: Instant) -> Vec<Multiaddr> {
        let mut addrs: Vec<Multiaddr> = self
            .tested
            .iter()
            .filter(|(_, (ok, at))| *ok && now.duration_since(*at) < RESULT_LIFETIME)
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

    /// The relays to ask for a slot now, as circuit listen addresses
    /// (`ADDR/p2p/RELAY/p2p-circuit`): while the node is private and holds fewer than
    /// [`RESERVATIONS`], relays it has no slot on and did not refuse it lately.
    pub(crate) fn slots_to_ask(&mut self, now: Instant) -> Vec<(PeerId, Multiaddr)> {
        let stale: Vec<PeerId> = self
            .slots
            .iter()
            .filter(|(_, slot)| {
                matches!(slot, Slot::Asked { since, .. } if now.duration_since(*since) >= RESERVATION_TIMEOUT)
            })
            .map(|(p, _)| *p)
            .collect();
        for relay in stale {
            self.slots.remove(&relay);
            self.refused.insert(relay, now);
        }
        self.refused
            .retain(|_, at| now.duration_since(*at) < RELAY_BACKOFF);
        if self.reachability(now) != Reachability::Private {
            return Vec::new();
        }
        let room = RESERVATIONS.saturating_sub(self.slots.len());
        self.relays
            .iter()
            .filter(|(p, _)| !self.slots.contains_key(p) && !self.refused.contains_key(p))
            .take(room)
            .map(|(relay, addr)| {
                let circuit = addr
                    .clone()
                    .with(Protocol::P2p(*relay))
                    .with(Protocol::P2pCircuit);
                (*relay, circuit)
            })
            .collect()
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
            let listener = match slot {
                Slot::Asked { listener, .. } | Slot::Held { listener } => *listener,
            };
            *slot = Slot::Held { listener };
        }
    }

    /// A listener closed: if it was a relay slot, the slot is gone, and that relay is left alone
    /// for a while if it never accepted.
    pub(crate) fn listener_closed(&mut self, closed: ListenerId, now: Instant) {
        let relay = self.slots.iter().find_map(|(p, slot)| match slot {
            Slot::Asked { listener, .. } | Slot::Held { listener } if *listener == closed => {
                Some(*p)
            }
            _ => None,
        });
        if let Some(relay) = relay
            && let Some(Slot::Asked { .. }) = self.slots.remove(&relay)
        {
            self.refused.insert(relay, now);
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
    fn reachability_follows_recent_tests() {
        let t0 = Instant::now();
        let mut reach = Reach::default();
        assert_eq!(reach.reachability(t0), Reachability::Unknown);
        reach.tested(addr("/ip4/127.0.0.1/udp/4001/quic-v1"), false, t0);
        assert_eq!(
            reach.reachability(t0),
            Reachability::Unknown,
            "loopback says nothing"
        );
        reach.tested(
            addr("/ip4/198.18.0.10/udp/4001/quic-v1/p2p-circuit"),
            true,
            t0,
        );
        assert_eq!(
            reach.reachability(t0),
            Reachability::Unknown,
            "nor a relayed address"
        );
        reach.tested(addr("/ip4/198.18.0.21/udp/4001/quic-v1"), false, t0);
        assert_eq!(reach.reachability(t0), Reachability::Private);
        reach.tested(addr("/ip4/198.18.0.30/udp/4001/quic-v1"), true, t0);
        assert_eq!(reach.reachability(t0), Reachability::Public);
        assert_eq!(
            reach.public_addrs(t0),
            [addr("/ip4/198.18.0.30/udp/4001/quic-v1")]
        );
        // Results age out: the node tests again rather than trusting an old answer.
        assert_eq!(
            reach.reachability(t0 + RESULT_LIFETIME),
            Reachability::Unknown
        );
        // Addresses tested are bounded, the oldest making room.
        for i in 0..40 {
            reach.tested(
                addr(&format!("/ip4/10.0.0.{i}/udp/1/quic-v1")),
                false,
                t0 + Duration::from_secs(i),
            );
        }
        assert_eq!(reach.tested.len(), TESTED);
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
        assert!(reach.slots_to_ask(t0).is_empty(), "not known to be private");
        reach.tested(addr("/ip4/198.18.0.21/udp/4001/quic-v1"), false, t0);
        let asked = reach.slots_to_ask(t0);
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
        assert!(reach.slots_to_ask(t0).is_empty(), "two slots asked for");
        reach.held(relays[0]);
        assert_eq!(reach.relays_held(), [relays[0]]);
        // The second never answers: given up, and the third is asked instead.
        let later = t0 + RESERVATION_TIMEOUT;
        let next = reach.slots_to_ask(later);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].0, relays[2]);
        reach.asked(relays[2], ListenerId::next(), later);
        // A held slot that closes is asked for again at once; a refused one is not.
        reach.listener_closed(l0, later);
        assert_eq!(reach.slots_to_ask(later)[0].0, relays[0]);
        // A public node reserves nothing.
        reach.tested(addr("/ip4/198.18.0.40/udp/4001/quic-v1"), true, later);
        assert!(reach.slots_to_ask(later).is_empty());
    }

    #[test]
    fn relays_known_are_bounded_but_never_those_holding_a_slot() {
        let t0 = Instant::now();
        let mut reach = Reach::default();
        reach.tested(addr("/ip4/198.18.0.21/udp/4001/quic-v1"), false, t0);
        let first = PeerId::random();
        reach.relay_seen(first, addr("/ip4/10.0.0.1/udp/1/quic-v1"));
        reach.asked(first, ListenerId::next(), t0);
        reach.held(first);
        for i in 0..100 {
            reach.relay_seen(
                PeerId::random(),
                addr(&format!("/ip4/10.0.1.{i}/udp/1/quic-v1")),
            );
        }
        assert_eq!(reach.relays.len(), KNOWN_RELAYS);
        assert!(reach.relays.iter().any(|(p, _)| *p == first));
    }
}
