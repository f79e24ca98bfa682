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

/// The addresses a peer reported that this node can use: loopback ones only if the peer is
/// itself reached over loopback.
pub(crate) fn usable(reported: Vec<Multiaddr>, peer_on_loopback: bool) -> Vec<Multiaddr> {
    reported
        .into_iter()
        .filter(|addr| peer_on_loopback || !is_loopback(addr))
        .collect()
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
