//! Binding a node to one network interface (`--interface wg0`): it listens on that interface's
//! addresses only, and dials only what it can reach from them.
//!
//! QUIC dials leave from a listening socket of the same address family (libp2p-quic reuses its
//! listeners' ports), so listening on the interface's addresses is what makes dials leave from
//! them. The one way out is a dial that no listener can carry (another family, or a loopback
//! address from a non-loopback interface): libp2p-quic would open a fresh socket on `0.0.0.0`
//! for it, so [`Bound`] refuses those dials instead. With or without an interface, [`Bound`]
//! also refuses dials that would reach the node itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use libp2p::Multiaddr;
use libp2p::core::transport::{DialOpts, ListenerId, Transport, TransportError, TransportEvent};
use libp2p::multiaddr::Protocol;

use crate::NetError;

/// An interface's name and the addresses a node can bind to on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Its name (`wg0`).
    pub name: String,
    /// Its addresses, IPv6 link-local ones left out (binding one needs a scope as well).
    pub addrs: Vec<IpAddr>,
}

impl Interface {
    /// The interface of this host named `name`, with its addresses now; an error naming it if
    /// there is no such interface or it has no usable address.
    pub fn lookup(name: &str) -> Result<Interface, NetError> {
        let all = if_addrs::get_if_addrs()
            .map_err(|e| NetError::Start(format!("cannot list network interfaces: {e}")))?;
        let addrs: Vec<IpAddr> = all
            .iter()
            .filter(|i| i.name == name)
            .map(|i| i.ip())
            .filter(|ip| !is_v6_link_local(ip))
            .collect();
        if addrs.is_empty() {
            let exists = std::path::Path::new("/sys/class/net").join(name).exists();
            return Err(NetError::Start(if exists {
                format!("interface {name} has no IP address to listen on")
            } else {
                format!("no network interface named {name:?} with an IP address")
            }));
        }
        Ok(Interface {
            name: name.to_owned(),
            addrs,
        })
    }

    /// The listen addresses `listen` becomes on this interface: an unspecified IP (`0.0.0.0`,
    /// `::`) stands for each of the interface's addresses of that family, a given IP must be
    /// one of them. An error if one is not, or if nothing is left to listen on.
    pub fn bind(&self, listen: &[Multiaddr]) -> Result<Vec<Multiaddr>, NetError> {
        let mut bound = Vec::new();
        for addr in listen {
            let Some(ip) = ip_of(addr) else {
                return Err(NetError::Address {
                    addr: addr.to_string(),
                    reason: "not an IP address, so not one of an interface".into(),
                });
            };
            if ip.is_unspecified() {
                for own in self
                    .addrs
                    .iter()
                    .filter(|own| own.is_ipv4() == ip.is_ipv4())
                {
                    bound.push(with_ip(addr, *own));
                }
            } else if self.addrs.contains(&ip) {
                bound.push(addr.clone());
            } else {
                return Err(NetError::Address {
                    addr: addr.to_string(),
                    reason: format!("{ip} is not an address of interface {}", self.name),
                });
            }
        }
        if bound.is_empty() {
            return Err(NetError::Start(format!(
                "interface {} has no address of the families listened on ({})",
                self.name,
                listen
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(bound)
    }

    /// Whether a dial to `addr` can leave from this interface's addresses: its family is one the
    /// interface has, and it is a loopback address only if the interface has one too.
    pub fn may_dial(&self, addr: &Multiaddr) -> bool {
        let Some(ip) = ip_of(addr) else {
            return false;
        };
        self.addrs
            .iter()
            .any(|own| own.is_ipv4() == ip.is_ipv4() && own.is_loopback() == ip.is_loopback())
    }
}

fn is_v6_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local())
}

/// The IP an address starts with, if it does.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

/// `addr` with its leading IP replaced by `ip`.
fn with_ip(addr: &Multiaddr, ip: IpAddr) -> Multiaddr {
    let first = match ip {
        IpAddr::V4(ip) => Protocol::Ip4(ip),
        IpAddr::V6(ip) => Protocol::Ip6(ip),
    };
    std::iter::once(first).chain(addr.iter().skip(1)).collect()
}

/// A transport that dials only where [`Interface::may_dial`] allows (anywhere without an
/// interface), and never one of its own listen addresses.
///
/// A peer's hole punching names addresses it was seen at, a loopback one among them when a
/// client on its host saw it; dialed, that address reaches this node itself, and libp2p gives
/// up the whole dial at the first connection to the wrong peer. The swarm filters its own
/// listen addresses only when written exactly so, not with a `/p2p` suffix.
#[derive(Debug)]
pub(crate) struct Bound<T> {
    inner: T,
    interface: Option<Interface>,
    /// Where its listeners listen, and which listener.
    listening: HashMap<Multiaddr, ListenerId>,
    /// UDP ports of its IPv4 wildcard (`0.0.0.0`) listeners, which answer on every loopback
    /// address (127.0.0.0/8), not only the 127.0.0.1 reported as listened on.
    wildcard_ports: HashMap<ListenerId, u16>,
}

impl<T> Bound<T> {
    pub(crate) fn new(inner: T, interface: Option<Interface>) -> Self {
        Self {
            inner,
            interface,
            listening: HashMap::new(),
            wildcard_ports: HashMap::new(),
        }
    }
}

impl<T> Bound<T> {
    /// Whether a dial of `target` (see [`dial_target`]) reaches one of this node's listeners.
    fn is_own(&self, target: &Multiaddr) -> bool {
        if self.listening.contains_key(target) {
            return true;
        }
        let mut parts = target.iter();
        matches!(
            (parts.next(), parts.next()),
            (Some(Protocol::Ip4(ip)), Some(Protocol::Udp(port)))
                if ip.is_loopback() && self.wildcard_ports.values().any(|p| *p == port)
        )
    }
}

/// Where a dial of `addr` goes, written as a listen address is: without trailing `/p2p/PEER`s
/// (libp2p-quic ignores any number of them), and an IPv4-mapped IPv6 address as the IPv4
/// address a dual-stack socket sends it to.
fn dial_target(addr: &Multiaddr) -> Multiaddr {
    let mut addr = addr.clone();
    while matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    match addr.iter().next() {
        Some(Protocol::Ip6(ip)) => match ip.to_ipv4_mapped() {
            Some(v4) => with_ip(&addr, IpAddr::V4(v4)),
            None => addr,
        },
        _ => addr,
    }
}

impl<T: Transport + Unpin> Transport for Bound<T> {
    type Output = T::Output;
    type Error = T::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = T::Dial;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        let mut parts = addr.iter();
        if let (Some(Protocol::Ip4(ip)), Some(Protocol::Udp(port))) = (parts.next(), parts.next())
            && ip.is_unspecified()
        {
            self.wildcard_ports.insert(id, port);
        }
        self.inner.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        if let Some(interface) = &self.interface
            && !interface.may_dial(&addr)
        {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        if self.is_own(&dial_target(&addr)) {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        self.inner.dial(addr, opts)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        let event = Pin::new(&mut self.inner).poll(cx);
        match &event {
            Poll::Ready(TransportEvent::NewAddress {
                listener_id,
                listen_addr,
            }) => {
                self.listening.insert(listen_addr.clone(), *listener_id);
            }
            Poll::Ready(TransportEvent::AddressExpired { listen_addr, .. }) => {
                self.listening.remove(listen_addr);
            }
            Poll::Ready(TransportEvent::ListenerClosed { listener_id, .. }) => {
                self.listening.retain(|_, id| id != listener_id);
                self.wildcard_ports.remove(listener_id);
            }
            _ => {}
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wg0() -> Interface {
        Interface {
            name: "wg0".into(),
            addrs: vec!["10.8.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
        }
    }

    fn addrs(list: &[&str]) -> Vec<Multiaddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn an_unspecified_address_becomes_each_of_the_interfaces() {
        let bound = wg0()
            .bind(&addrs(&[
                "/ip4/0.0.0.0/udp/4001/quic-v1",
                "/ip6/::/udp/0/quic-v1",
            ]))
            .unwrap();
        assert_eq!(
            bound,
            addrs(&[
                "/ip4/10.8.0.2/udp/4001/quic-v1",
                "/ip6/fd00::2/udp/0/quic-v1"
            ])
        );
        // A given address of the interface stays as it is.
        let own = addrs(&["/ip4/10.8.0.2/udp/9/quic-v1"]);
        assert_eq!(wg0().bind(&own).unwrap(), own);
    }

    #[test]
    fn an_address_of_another_interface_or_none_left_is_an_error() {
        let elsewhere = wg0().bind(&addrs(&["/ip4/192.168.1.5/udp/4001/quic-v1"]));
        assert!(
            elsewhere
                .unwrap_err()
                .to_string()
                .contains("192.168.1.5 is not an address of interface wg0")
        );
        let v4_only = Interface {
            name: "eth9".into(),
            addrs: vec!["10.0.0.1".parse().unwrap()],
        };
        // A family the interface lacks is left out, and if nothing is left, that is an error.
        assert_eq!(
            v4_only
                .bind(&addrs(&[
                    "/ip4/0.0.0.0/udp/0/quic-v1",
                    "/ip6/::/udp/0/quic-v1"
                ]))
                .unwrap(),
            addrs(&["/ip4/10.0.0.1/udp/0/quic-v1"])
        );
        assert!(v4_only.bind(&addrs(&["/ip6/::/udp/0/quic-v1"])).is_err());
        assert!(
            wg0()
                .bind(&addrs(&["/dns4/example.com/udp/1/quic-v1"]))
                .is_err()
        );
    }

    #[test]
    fn dials_leave_only_where_a_listener_can_carry_them() {
        let v4_only = Interface {
            name: "eth9".into(),
            addrs: vec!["10.0.0.1".parse().unwrap()],
        };
        let may = |a: &str| v4_only.may_dial(&a.parse().unwrap());
        assert!(may("/ip4/10.0.0.7/udp/4001/quic-v1"));
        assert!(may(
            "/ip4/203.0.113.9/udp/4001/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
        ));
        assert!(!may("/ip6/fd00::9/udp/4001/quic-v1"), "no IPv6 listener");
        assert!(
            !may("/ip4/127.0.0.1/udp/4001/quic-v1"),
            "loopback is another interface"
        );
        assert!(!may("/dns4/example.com/udp/4001/quic-v1"));
        let lo = Interface {
            name: "lo".into(),
            addrs: vec!["127.0.0.1".parse().unwrap()],
        };
        assert!(lo.may_dial(&"/ip4/127.0.0.1/udp/1/quic-v1".parse().unwrap()));
        assert!(!lo.may_dial(&"/ip4/10.0.0.7/udp/1/quic-v1".parse().unwrap()));
    }

    #[test]
    fn a_dial_of_its_own_listen_address_is_refused() {
        use libp2p::core::Endpoint;
        use libp2p::core::transport::{MemoryTransport, PortUse};

        let mut transport = Bound::new(MemoryTransport::default(), None);
        let id = ListenerId::next();
        transport
            .listen_on(id, "/memory/0".parse().unwrap())
            .unwrap();
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let own = match Pin::new(&mut transport).poll(&mut cx) {
            Poll::Ready(TransportEvent::NewAddress { listen_addr, .. }) => listen_addr,
            _ => panic!("no listen address"),
        };
        let opts = || DialOpts {
            role: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        };
        let peer: Multiaddr = "/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
            .parse()
            .unwrap();
        let p2p = peer.iter().next().unwrap();
        for addr in [
            own.clone(),
            own.clone().with(p2p.clone()),
            own.clone().with(p2p.clone()).with(p2p),
        ] {
            assert!(
                matches!(
                    transport.dial(addr.clone(), opts()),
                    Err(TransportError::MultiaddrNotSupported(_))
                ),
                "{addr}"
            );
        }
        // Another node's address on the same transport is dialed.
        let mut other = MemoryTransport::default();
        other
            .listen_on(ListenerId::next(), "/memory/0".parse().unwrap())
            .unwrap();
        let Poll::Ready(TransportEvent::NewAddress { listen_addr, .. }) =
            Pin::new(&mut other).poll(&mut cx)
        else {
            panic!("no listen address")
        };
        assert!(transport.dial(listen_addr, opts()).is_ok());

        // Once the listener is gone, so is the refusal.
        assert!(transport.remove_listener(id));
        while let Poll::Ready(event) = Pin::new(&mut transport).poll(&mut cx) {
            if matches!(event, TransportEvent::ListenerClosed { .. }) {
                break;
            }
        }
        assert!(transport.listening.is_empty());
    }

    #[test]
    fn a_wildcard_listener_owns_every_loopback_address_at_its_port() {
        let mut bound = Bound::new((), None);
        bound.wildcard_ports.insert(ListenerId::next(), 4001);
        let own = |a: &str| bound.is_own(&dial_target(&a.parse().unwrap()));
        assert!(own("/ip4/127.0.0.2/udp/4001/quic-v1"));
        assert!(own("/ip6/::ffff:127.9.9.9/udp/4001/quic-v1"));
        assert!(!own("/ip4/127.0.0.2/udp/4002/quic-v1"), "another port");
        assert!(!own("/ip4/10.0.0.2/udp/4001/quic-v1"), "another host");
    }

    #[test]
    fn a_dial_is_compared_with_listen_addresses_as_the_socket_sends_it() {
        let peer = "/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        let target = |a: &str| dial_target(&a.parse().unwrap()).to_string();
        assert_eq!(
            target(&format!(
                "/ip6/::ffff:127.0.0.1/udp/4001/quic-v1{peer}{peer}"
            )),
            "/ip4/127.0.0.1/udp/4001/quic-v1"
        );
        assert_eq!(
            target("/ip6/2001:db8::1/udp/4001/quic-v1"),
            "/ip6/2001:db8::1/udp/4001/quic-v1"
        );
    }

    #[test]
    fn a_missing_interface_is_named_in_the_error() {
        let error = Interface::lookup("weft-no-such-if0")
            .unwrap_err()
            .to_string();
        assert!(error.contains("weft-no-such-if0"), "{error}");
    }
}
