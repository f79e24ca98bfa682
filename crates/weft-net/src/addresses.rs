//! Which addresses are worth telling and trying. A loopback address names the host it is used
//! on: to a peer on another host it names that peer's own machine. So a node offers its loopback
//! listeners only while it has no other, and keeps a peer's loopback addresses only when it
//! reaches that peer over loopback itself.

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// The address is on the loopback interface (127.0.0.0/8 or ::1, or 127.0.0.0/8 written as an
/// IPv4-mapped IPv6 address, which a dual-stack socket sends to the same place).
pub(crate) fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        _ => false,
    })
}

/// The address starts with a unicast IP that other networks could route to: not loopback,
/// private (RFC 1918, IPv6 unique local), link-local, carrier-grade NAT (100.64.0.0/10),
/// unspecified, multicast, broadcast or reserved (0.0.0.0/8, 240.0.0.0/4), nor an IPv4-mapped
/// IPv6 address (a dual-stack socket sends one to the IPv4 address, whatever that is). Only
/// such an address can prove a node reachable from outside its own network.
pub(crate) fn looks_public(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b)))
        }
        Some(Protocol::Ip6(ip)) => {
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_unique_local()
                || ip.is_unicast_link_local()
                || ip.is_multicast()
                || ip.to_ipv4_mapped().is_some())
        }
        _ => false,
    }
}

/// Where a peer sees this node (`observed`), as addresses to test: as it is, and with the port
/// of each of this node's direct QUIC listen addresses (a NAT that keeps ports maps the listen
/// port; a peer may see the port a dial left from). Relayed and loopback ones are left out.
pub(crate) fn seen_at(observed: &Multiaddr, listening: &[Multiaddr]) -> Vec<Multiaddr> {
    let Some(ip) = observed.iter().next() else {
        return Vec::new();
    };
    if !matches!(ip, Protocol::Ip4(_) | Protocol::Ip6(_))
        || is_loopback(observed)
        || crate::reach::is_relayed(observed)
    {
        return Vec::new();
    }
    let bare = |addr: &Multiaddr| -> Multiaddr {
        addr.iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect()
    };
    let mut seen = vec![bare(observed)];
    for listen in listening {
        if crate::reach::is_relayed(listen) || is_loopback(listen) {
            continue;
        }
        let same_family = matches!(
            (listen.iter().next(), &ip),
            (Some(Protocol::Ip4(_)), Protocol::Ip4(_)) | (Some(Protocol::Ip6(_)), Protocol::Ip6(_))
        );
        if same_family {
            let translated: Multiaddr = std::iter::once(ip.clone())
                .chain(bare(listen).iter().skip(1))
                .collect();
            if !seen.contains(&translated) {
                seen.push(translated);
            }
        }
    }
    seen
}

/// Whether this node has a public-looking address among `listen`, looking up the host's
/// addresses for an unspecified one (`0.0.0.0`): such a node answers AutoNAT tests for others.
pub(crate) fn has_public_address(listen: &[Multiaddr]) -> bool {
    let host: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
        .map(|all| all.iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    listen.iter().any(|addr| match addr.iter().next() {
        Some(Protocol::Ip4(ip)) if ip.is_unspecified() => host
            .iter()
            .filter(|h| h.is_ipv4())
            .any(|h| looks_public(&Multiaddr::from(*h))),
        Some(Protocol::Ip6(ip)) if ip.is_unspecified() => host
            .iter()
            .filter(|h| h.is_ipv6())
            .any(|h| looks_public(&Multiaddr::from(*h))),
        _ => looks_public(addr),
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
        assert!(is_loopback(&a("/ip6/::ffff:127.0.0.1/udp/1/quic-v1")));
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

    #[test]
    fn where_a_peer_sees_this_node_is_tested_as_seen_and_at_the_listen_port() {
        let listening = [
            a(
                "/ip4/192.168.1.2/udp/4001/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
            ),
            a("/ip4/127.0.0.1/udp/4001/quic-v1"),
            a("/ip6/fd00::2/udp/4002/quic-v1"),
        ];
        assert_eq!(
            seen_at(&a("/ip4/198.18.0.21/udp/53000/quic-v1"), &listening),
            [
                a("/ip4/198.18.0.21/udp/53000/quic-v1"),
                a("/ip4/198.18.0.21/udp/4001/quic-v1")
            ]
        );
        assert!(seen_at(&a("/ip4/127.0.0.1/udp/1/quic-v1"), &listening).is_empty());
        assert!(seen_at(&a("/dns4/example.com/udp/1/quic-v1"), &listening).is_empty());
    }

    #[test]
    fn public_looking_addresses() {
        for public in [
            "/ip4/198.18.0.10/udp/1/quic-v1",
            "/ip4/203.0.113.5/udp/1/quic-v1",
            "/ip6/2001:db8::1/udp/1/quic-v1",
        ] {
            assert!(looks_public(&a(public)), "{public}");
        }
        for private in [
            "/ip4/10.1.2.3/udp/1/quic-v1",
            "/ip4/172.16.0.1/udp/1/quic-v1",
            "/ip4/192.168.0.1/udp/1/quic-v1",
            "/ip4/100.100.0.1/udp/1/quic-v1",
            "/ip4/169.254.1.1/udp/1/quic-v1",
            "/ip4/127.0.0.1/udp/1/quic-v1",
            "/ip6/fe80::1/udp/1/quic-v1",
            "/ip6/fd12::1/udp/1/quic-v1",
            "/dns4/example.com/udp/1/quic-v1",
            "/ip4/224.0.0.251/udp/1/quic-v1",
            "/ip4/240.0.0.1/udp/1/quic-v1",
            "/ip4/0.1.2.3/udp/1/quic-v1",
            "/ip6/ff02::1/udp/1/quic-v1",
            "/ip6/::ffff:127.0.0.1/udp/1/quic-v1",
            "/ip6/::ffff:192.168.1.2/udp/1/quic-v1",
            "/ip6/::ffff:203.0.113.5/udp/1/quic-v1",
        ] {
            assert!(!looks_public(&a(private)), "{private}");
        }
        assert!(has_public_address(&[a(
            "/ip4/198.18.0.10/udp/4001/quic-v1"
        )]));
        assert!(!has_public_address(&[a("/ip4/127.0.0.1/udp/0/quic-v1")]));
    }
}
