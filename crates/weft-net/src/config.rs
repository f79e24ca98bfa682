//! Network configuration and address parsing.

use std::net::SocketAddr;
use std::time::Duration;

use libp2p::Multiaddr;
use weft_identity::Keypair;

use crate::NetError;

/// How a node's network is set up.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The node's key: its PeerId and its DID.
    pub keypair: Keypair,
    /// Addresses to listen on; `/ip4/127.0.0.1/udp/0/quic-v1` picks a free loopback port.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start, to join the DHT.
    pub bootstrap: Vec<Multiaddr>,
    /// A connection with no open stream and no activity closes after this long. A session holds
    /// a stream open, so this closes connections that carry none: those that served only the
    /// DHT, to peers that share no realm with this node.
    pub idle_timeout: Duration,
    /// How fast a dead peer is noticed: QUIC closes a connection that has heard nothing for this
    /// long, and keep-alives are sent at a third of it so a live one never goes that quiet.
    pub liveness: Duration,
    /// Kademlia query timeout.
    pub query_timeout: Duration,
    /// Events buffered towards the node before the driver waits for it.
    pub event_capacity: usize,
    /// A client of the nodes it dials (a short-lived process attached with `--connect`): its
    /// Kademlia only asks, never answers or joins other nodes' routing tables, and it starts no
    /// DHT queries of its own.
    pub client: bool,
    /// Connections held at once, inbound and outbound. At the limit a new one takes the place
    /// of the oldest connection without a weft session (counted as
    /// `weft_connections_evicted_total`), and is refused during its handshake only if every
    /// connection carries one (`weft_connections_refused_total{reason="limit"}`).
    pub max_connections: u32,
    /// Inbound QUIC handshakes in progress at once; past it new ones are refused.
    pub max_incoming_handshakes: u32,
    /// The one network interface to listen on and dial from (`wg0`): `listen`'s unspecified
    /// addresses become the interface's, and dials it cannot carry are refused (see
    /// [`Interface`](crate::interface::Interface)). `None`: every interface.
    pub interface: Option<String>,
    /// Find peers on the local network by multicast DNS, without a bootstrap address.
    pub mdns: bool,
    /// Lend relayed circuits to nodes behind NATs (see [`RELAY_CIRCUITS`](crate::RELAY_CIRCUITS)
    /// for the bounds).
    pub relay: bool,
}

/// Connections one peer may hold at once: two nodes dialing each other at the same moment keep
/// both rather than each refusing the other's (weft runs one session per peer whatever the
/// count), and when both of those went through a relay, hole punching still has room for the
/// direct connection that replaces them.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 3;

impl NetConfig {
    /// A configuration listening on a free loopback port, with no bootstrap peers.
    pub fn loopback(keypair: Keypair) -> Self {
        Self {
            keypair,
            listen: vec![loopback_any()],
            bootstrap: Vec::new(),
            idle_timeout: Duration::from_secs(10),
            liveness: Duration::from_secs(10),
            query_timeout: Duration::from_secs(10),
            event_capacity: 1024,
            client: false,
            max_connections: 64,
            max_incoming_handshakes: 128,
            interface: None,
            mdns: false,
            relay: false,
        }
    }
}

/// `/ip4/127.0.0.1/udp/0/quic-v1`.
pub fn loopback_any() -> Multiaddr {
    use libp2p::multiaddr::Protocol;
    Multiaddr::empty()
        .with(Protocol::Ip4(std::net::Ipv4Addr::LOCALHOST))
        .with(Protocol::Udp(0))
        .with(Protocol::QuicV1)
}

/// Parses a multiaddr, or `HOST:PORT` as QUIC over UDP (`127.0.0.1:4001` →
/// `/ip4/127.0.0.1/udp/4001/quic-v1`). Host names are not resolved: weft addresses are IPs.
pub fn parse_addr(s: &str) -> Result<Multiaddr, NetError> {
    use libp2p::multiaddr::Protocol;
    let error = |reason: &str| NetError::Address {
        addr: s.to_owned(),
        reason: reason.to_owned(),
    };
    if s.starts_with('/') {
        return s
            .parse()
            .map_err(|e: libp2p::multiaddr::Error| error(&e.to_string()));
    }
    let socket: SocketAddr = s
        .parse()
        .map_err(|_| error("expected a multiaddr or IP:PORT"))?;
    let ip = match socket.ip() {
        std::net::IpAddr::V4(ip) => Protocol::Ip4(ip),
        std::net::IpAddr::V6(ip) => Protocol::Ip6(ip),
    };
    Ok(Multiaddr::empty()
        .with(ip)
        .with(Protocol::Udp(socket.port()))
        .with(Protocol::QuicV1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_means_quic() {
        assert_eq!(
            parse_addr("127.0.0.1:4001").unwrap().to_string(),
            "/ip4/127.0.0.1/udp/4001/quic-v1"
        );
        assert_eq!(
            parse_addr("[::1]:9").unwrap().to_string(),
            "/ip6/::1/udp/9/quic-v1"
        );
        assert_eq!(
            parse_addr("/ip4/127.0.0.1/udp/5/quic-v1")
                .unwrap()
                .to_string(),
            "/ip4/127.0.0.1/udp/5/quic-v1"
        );
        for bad in ["", "localhost:4001", "127.0.0.1", "/nope", "1.2.3.4:99999"] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }
}
