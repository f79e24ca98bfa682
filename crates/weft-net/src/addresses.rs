//! Which addresses are worth telling and trying. A loopback address names the host it is used
//! on: to a peer on another host it names that peer's own machine. So a node offers its loopback
//! listeners only while it has no other, and keeps a peer's loopback addresses only when it
//! reaches that peer over loopback itself.

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// The address is on the loopback interface (127.0.0.0/8 or ::1).
pub(crate) fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

/// Addresses kept for one peer. A node listens on a handful; more would only make every
/// Kademlia message that names the peer larger, which a hostile peer could use to push replies
/// past the message limit.
pub(crate) const MAX_ADDRESSES_PER_PEER: usize = 4;
/// The longest address kept, in bytes as encoded: an IPv6 QUIC address through a relay, with
/// the relay's and its own `/p2p/` parts, takes 106.
pub(crate) const MAX_ADDRESS_LEN: usize = 128;

/// The addresses a peer reported that this node can use: loopback ones only if the peer is
/// itself reached over loopback, none longer than [`MAX_ADDRESS_LEN`], at most
/// [`MAX_ADDRESSES_PER_PEER`].
pub(crate) fn usable(reported: Vec<Multiaddr>, peer_on_loopback: bool) -> Vec<Multiaddr> {
    reported
        .into_iter()
        .filter(|addr| peer_on_loopback || !is_loopback(addr))
        .filter(|addr| addr.len() <= MAX_ADDRESS_LEN)
        .take(MAX_ADDRESSES_PER_PEER)
        .collect()
}

/// A peer now reports `usable` (already filtered by [`usable`]); Kademlia knows it at `known`.
/// Returns the addresses to add and those to remove, so that what it says now replaces what
/// it said before: a peer pushing new addresses again and again must not grow its routing entry,
/// which every answer naming it carries. Kademlia keeps each address with the peer's `/p2p/`
/// suffix, and so are these. Nothing is removed if nothing is added: the entry never empties.
pub(crate) fn replace(
    known: &[Multiaddr],
    usable: Vec<Multiaddr>,
    peer: libp2p::PeerId,
) -> (Vec<Multiaddr>, Vec<Multiaddr>) {
    let add: Vec<Multiaddr> = usable
        .into_iter()
        .filter_map(|addr| addr.with_p2p(peer).ok())
        .collect();
    let remove = match add.is_empty() {
        true => Vec::new(),
        false => known.iter().filter(|a| !add.contains(a)).cloned().collect(),
    };
    (add, remove)
}

/// What to do with this node's announced addresses when it starts listening on one more.
#[derive(Debug, Default)]
pub(crate) struct Announced {
    loopback: Vec<Multiaddr>,
    other: bool,
}

/// A change to the announced addresses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) add: Option<Multiaddr>,
    pub(crate) remove: Vec<Multiaddr>,
}

impl Announced {
    /// This node listens on `addr`: announce it, unless it is loopback and another is announced
    /// (then withdraw the loopback ones announced so far).
    pub(crate) fn listening(&mut self, addr: Multiaddr) -> Change {
        if is_loopback(&addr) {
            if self.other {
                return Change {
                    add: None,
                    remove: Vec::new(),
                };
            }
            self.loopback.push(addr.clone());
            return Change {
                add: Some(addr),
                remove: Vec::new(),
            };
        }
        self.other = true;
        Change {
            add: Some(addr),
            remove: std::mem::take(&mut self.loopback),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_is_recognised_in_both_families() {
        assert!(is_loopback(&a("/ip4/127.0.0.1/udp/1/quic-v1")));
        assert!(is_loopback(&a("/ip4/127.3.2.1/udp/1/quic-v1")));
        assert!(is_loopback(&a("/ip6/::1/udp/1/quic-v1")));
        assert!(!is_loopback(&a("/ip4/10.0.0.1/udp/1/quic-v1")));
        assert!(!is_loopback(&a("/dns4/localhost/udp/1/quic-v1")));
    }

    #[test]
    fn a_remote_peers_loopback_addresses_are_dropped() {
        let reported = vec![
            a("/ip4/127.0.0.1/udp/1/quic-v1"),
            a("/ip4/10.0.0.2/udp/1/quic-v1"),
        ];
        assert_eq!(
            usable(reported.clone(), false),
            [a("/ip4/10.0.0.2/udp/1/quic-v1")]
        );
        assert_eq!(usable(reported.clone(), true), reported);
    }

    #[test]
    fn a_peer_is_kept_to_a_few_addresses_of_bounded_length() {
        let peer = libp2p::PeerId::random();
        let relay = libp2p::PeerId::random();
        let longest = a(&format!(
            "/ip6/2001:db8::ffff:ffff:ffff:ffff/udp/65535/quic-v1/p2p/{relay}/p2p-circuit/p2p/{peer}"
        ));
        assert!(
            longest.len() <= MAX_ADDRESS_LEN,
            "the longest address weft gives fits: an IPv6 one through a relay"
        );
        let longer = a(&format!(
            "/dns4/{}.example/udp/1/quic-v1/p2p/{peer}",
            "a-host-name-no-weft-node-listens-on".repeat(3)
        ));
        assert!(usable(vec![longer], false).is_empty());
        let many: Vec<Multiaddr> = (1..=100)
            .map(|port| a(&format!("/ip4/10.0.0.2/udp/{port}/quic-v1")))
            .collect();
        assert_eq!(usable(many.clone(), false), many[..MAX_ADDRESSES_PER_PEER]);
    }

    #[test]
    fn what_a_peer_reports_now_replaces_what_it_reported_before() {
        let peer = libp2p::PeerId::random();
        let with_p2p = |s: &str| a(s).with_p2p(peer).unwrap();
        let known = vec![
            with_p2p("/ip4/10.0.0.2/udp/1/quic-v1"),
            with_p2p("/ip4/10.0.0.2/udp/2/quic-v1"),
        ];
        let (add, remove) = replace(
            &known,
            vec![
                a("/ip4/10.0.0.2/udp/2/quic-v1"),
                a("/ip4/10.0.0.2/udp/3/quic-v1"),
            ],
            peer,
        );
        assert_eq!(
            add,
            [
                with_p2p("/ip4/10.0.0.2/udp/2/quic-v1"),
                with_p2p("/ip4/10.0.0.2/udp/3/quic-v1")
            ]
        );
        assert_eq!(remove, [with_p2p("/ip4/10.0.0.2/udp/1/quic-v1")]);
        let (add, remove) = replace(&known, vec![], peer);
        assert!(
            add.is_empty() && remove.is_empty(),
            "reporting nothing usable removes nothing"
        );
        let other = libp2p::PeerId::random();
        let theirs = a(&format!("/ip4/10.0.0.9/udp/1/quic-v1/p2p/{other}"));
        assert!(
            replace(&known, vec![theirs], peer).0.is_empty(),
            "another peer's address"
        );
    }

    #[test]
    fn loopback_is_announced_only_while_nothing_else_is() {
        let mut announced = Announced::default();
        let lo = a("/ip4/127.0.0.1/udp/1/quic-v1");
        let eth = a("/ip4/10.0.0.1/udp/1/quic-v1");
        assert_eq!(
            announced.listening(lo.clone()),
            Change {
                add: Some(lo.clone()),
                remove: vec![]
            }
        );
        assert_eq!(
            announced.listening(eth.clone()),
            Change {
                add: Some(eth),
                remove: vec![lo.clone()]
            }
        );
        assert_eq!(
            announced.listening(a("/ip6/::1/udp/1/quic-v1")),
            Change {
                add: None,
                remove: vec![]
            }
        );
    }
}
