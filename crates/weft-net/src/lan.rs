//! What a node does with the peers mDNS finds on its LAN: it learns their addresses, and dials
//! a few of them until it has a first connection, from which Kademlia finds the rest.
//!
//! Anyone on the LAN can answer mDNS queries with any peers and addresses, so what an answer
//! can cost is bounded here: a few peers and addresses taken per answer, and a few dials per
//! window, whatever it names.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

/// Peers taken from one mDNS answer (batch of discoveries).
pub(crate) const PEERS_PER_ANSWER: usize = 32;
/// Addresses kept per peer, as for provider records.
pub(crate) const ADDRESSES_PER_PEER: usize = 4;
/// Dials started per [`DIAL_WINDOW`] while the node has no connection.
pub(crate) const DIALS_PER_WINDOW: usize = 4;
/// See [`DIALS_PER_WINDOW`].
pub(crate) const DIAL_WINDOW: Duration = Duration::from_secs(10);

/// Discovered peers, grouped, bounded, and which of them to dial.
#[derive(Debug, Default)]
pub(crate) struct Lan {
    /// When the current dial window opened, and the dials made in it.
    window: Option<(Instant, usize)>,
}

/// What to do with one answer's peers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Peers and their addresses, to add to the routing table.
    pub(crate) learn: Vec<(PeerId, Vec<Multiaddr>)>,
    /// Of those, the peers to dial now.
    pub(crate) dial: Vec<PeerId>,
}

impl Lan {
    /// The plan for `found` (as mDNS reports it: one address per item), for a node that is
    /// `alone` (no connection yet), at `now`. `own` is this node, which mDNS hears too.
    pub(crate) fn discovered(
        &mut self,
        found: Vec<(PeerId, Multiaddr)>,
        own: &PeerId,
        alone: bool,
        now: Instant,
    ) -> Plan {
        let mut order = Vec::new();
        let mut addresses: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
        for (peer, addr) in found {
            // A peer on the LAN is reached at its LAN address; its loopback one is this host's.
            // Addresses are kept to what the routing table keeps of any peer's.
            if peer == *own
                || crate::identity::peer_did(&peer).is_none()
                || crate::addresses::is_loopback(&addr)
                || crate::reach::is_relayed(&addr)
                || addr.len() > crate::addresses::MAX_ADDRESS_LEN
            {
                continue;
            }
            if !addresses.contains_key(&peer) {
                if order.len() == PEERS_PER_ANSWER {
                    continue;
                }
                order.push(peer);
            }
            let list = addresses.entry(peer).or_default();
            if list.len() < ADDRESSES_PER_PEER && !list.contains(&addr) {
                list.push(addr);
            }
        }
        let mut dial = Vec::new();
        if alone {
            let window = match self.window {
                Some((opened, made)) if now.duration_since(opened) < DIAL_WINDOW => (opened, made),
                _ => (now, 0),
            };
            let room = DIALS_PER_WINDOW - window.1.min(DIALS_PER_WINDOW);
            dial = order.iter().take(room).copied().collect();
            self.window = Some((window.0, window.1 + dial.len()));
        }
        let learn = order
            .into_iter()
            .filter_map(|peer| addresses.remove(&peer).map(|a| (peer, a)))
            .collect();
        Plan { learn, dial }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ed25519_peer() -> PeerId {
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    fn addr(i: usize) -> Multiaddr {
        format!("/ip4/10.0.0.{}/udp/4001/quic-v1", i % 250 + 1)
            .parse()
            .unwrap()
    }

    #[test]
    fn a_node_alone_dials_a_few_and_learns_them_all() {
        let own = ed25519_peer();
        let peers: Vec<PeerId> = (0..6).map(|_| ed25519_peer()).collect();
        let mut found: Vec<(PeerId, Multiaddr)> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, addr(i)))
            .collect();
        found.push((own, addr(99)));
        found.push((peers[0], addr(50)));
        found.push((peers[1], "/ip4/127.0.0.1/udp/4001/quic-v1".parse().unwrap()));
        found.push((
            peers[1],
            "/ip4/10.0.0.9/udp/4001/quic-v1/p2p-circuit"
                .parse()
                .unwrap(),
        ));
        let t0 = Instant::now();
        let mut lan = Lan::default();
        let plan = lan.discovered(found.clone(), &own, true, t0);
        assert_eq!(plan.learn.len(), 6, "itself is left out");
        assert_eq!(plan.learn[0], (peers[0], vec![addr(0), addr(50)]));
        assert_eq!(
            plan.learn[1],
            (peers[1], vec![addr(1)]),
            "not its loopback address"
        );
        assert_eq!(plan.dial, peers[..DIALS_PER_WINDOW].to_vec());
        // The window's dials are spent; the next window has more.
        assert!(
            lan.discovered(found.clone(), &own, true, t0)
                .dial
                .is_empty()
        );
        let later = lan.discovered(found.clone(), &own, true, t0 + DIAL_WINDOW);
        assert_eq!(later.dial.len(), DIALS_PER_WINDOW);
        // Once connected, it only learns.
        let connected = lan.discovered(found, &own, false, t0 + DIAL_WINDOW * 3);
        assert!(connected.dial.is_empty());
        assert_eq!(connected.learn.len(), 6);
    }

    #[test]
    fn an_answer_naming_many_peers_and_addresses_is_cut_short() {
        let own = ed25519_peer();
        let many: Vec<(PeerId, Multiaddr)> = (0..200)
            .flat_map(|i| {
                let peer = ed25519_peer();
                (0..10).map(move |j| (peer, addr(i * 10 + j)))
            })
            .collect();
        let plan = Lan::default().discovered(many, &own, false, Instant::now());
        assert_eq!(plan.learn.len(), PEERS_PER_ANSWER);
        assert!(
            plan.learn
                .iter()
                .all(|(_, a)| a.len() == ADDRESSES_PER_PEER)
        );
        // A peer that is not an Ed25519 key is no weft node.
        let rsa_like = PeerId::random();
        let plan = Lan::default().discovered(vec![(rsa_like, addr(1))], &own, true, Instant::now());
        assert!(plan.learn.is_empty() && plan.dial.is_empty());
    }
}
