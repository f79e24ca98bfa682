//! The path to each peer, direct or through a relay, and when the node hears of a peer.
//!
//! A relayed connection is where hole punching starts: for a short while after it comes up,
//! the node keeps it to itself ([`HOLD`]), so that a weft session does not settle on the relay
//! when a direct connection is about to follow. Once one does, the held relayed connections to
//! that peer are closed (libp2p opens each stream on any of a peer's connections, so a relayed
//! one left open would carry some of them), as is a new relayed one to a peer reached directly.
//! Relayed connections already announced are left open: the peer's session may run on them,
//! and closing them would end it (a later direct connection, an AutoNAT dial-back say, does
//! not move it).
//! If hole punching fails, or takes longer than the hold, the session runs over the relay.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

/// How long a relayed connection is held back while hole punching may still give a direct one:
/// DCUtR makes three attempts, each a round trip through the relay and one over the direct path.
pub(crate) const HOLD: Duration = Duration::from_secs(10);

/// How this node reaches a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path {
    /// Over a connection of its own, hole-punched or not.
    Direct,
    /// Only through a relay.
    Relayed,
}

impl Path {
    /// `direct` or `relayed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Relayed => "relayed",
        }
    }
}

/// A relayed connection held back, with what announcing it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) peer: PeerId,
    pub(crate) connection: ConnectionId,
    pub(crate) addr: Multiaddr,
    pub(crate) wanted: bool,
    pub(crate) dialer: bool,
    since: Instant,
}

/// What to do about a connection that came up.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Tell the node of the peer (it was not told yet); `wanted` if this connection or a
    /// relayed one it replaces was dialed for a session.
    Announce { wanted: bool },
    /// The node knows the peer already.
    Known,
    /// Keep it back: hole punching may bring a direct connection.
    Hold,
}

/// Connections by path, the relayed ones held back, and the peers the node was told of.
#[derive(Debug, Default)]
pub(crate) struct Paths {
    connections: HashMap<ConnectionId, (PeerId, Path)>,
    /// Where each connection's peer is, as the connection says.
    remotes: HashMap<ConnectionId, Multiaddr>,
    held: HashMap<PeerId, Held>,
    announced: HashSet<PeerId>,
}

impl Paths {
    /// A connection came up over `path`, with the peer at `addr`. Returns what to do with it,
    /// and the relayed connections to the peer to close now that a direct one is there.
    pub(crate) fn established(
        &mut self,
        connection: ConnectionId,
        (peer, addr): (PeerId, &Multiaddr),
        path: Path,
        (wanted, dialer): (bool, bool),
        now: Instant,
    ) -> (Arrival, Vec<ConnectionId>) {
        self.connections.insert(connection, (peer, path));
        self.remotes.insert(connection, addr.clone());
        let mut close = Vec::new();
        let mut wanted = wanted;
        if path == Path::Direct {
            if let Some(held) = self.held.remove(&peer) {
                wanted |= held.wanted;
                // Not yet announced, so nothing of the node's runs on them.
                close = self.relayed_of(&peer);
            }
        } else if self.path(&peer) == Some(Path::Direct) {
            close.push(connection);
        }
        let arrival = if self.announced.contains(&peer) {
            Arrival::Known
        } else if path == Path::Relayed && close.is_empty() {
            self.held.entry(peer).or_insert(Held {
                peer,
                connection,
                addr: addr.clone(),
                wanted,
                dialer,
                since: now,
            });
            Arrival::Hold
        } else {
            self.announced.insert(peer);
            Arrival::Announce { wanted }
        };
        (arrival, close)
    }

    /// Hole punching to `peer` failed: its held connection, to announce now.
    pub(crate) fn punch_failed(&mut self, peer: &PeerId) -> Option<Held> {
        let held = self.held.remove(peer)?;
        self.announced.insert(held.peer);
        Some(held)
    }

    /// The held connections whose time is up, to announce now.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<Held> {
        let due: Vec<PeerId> = self
            .held
            .values()
            .filter(|h| now.duration_since(h.since) >= HOLD)
            .map(|h| h.peer)
            .collect();
        due.into_iter()
            .filter_map(|peer| self.punch_failed(&peer))
            .collect()
    }

    /// A connection closed, `remaining` being the peer's connections left. True if the node
    /// was told of the peer and is to be told it is gone.
    pub(crate) fn closed(&mut self, connection: ConnectionId, remaining: u32) -> bool {
        self.remotes.remove(&connection);
        let Some((peer, _)) = self.connections.remove(&connection) else {
            return false;
        };
        if self
            .held
            .get(&peer)
            .is_some_and(|h| h.connection == connection)
        {
            // Another relayed connection to the peer takes the hold over, or the peer would
            // never be announced.
            match self.relayed_of(&peer).first() {
                Some(other) => {
                    if let Some(held) = self.held.get_mut(&peer) {
                        held.connection = *other;
                    }
                }
                None => {
                    self.held.remove(&peer);
                }
            }
        }
        remaining == 0 && self.announced.remove(&peer)
    }

    /// The relayed connections to `peer`.
    pub(crate) fn relayed_of(&self, peer: &PeerId) -> Vec<ConnectionId> {
        let mut relayed: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, (p, path))| p == peer && *path == Path::Relayed)
            .map(|(c, _)| *c)
            .collect();
        relayed.sort();
        relayed
    }

    /// The peer's address on `connection`.
    pub(crate) fn remote(&self, connection: &ConnectionId) -> Option<&Multiaddr> {
        self.remotes.get(connection)
    }

    /// Whether `connection` goes through a relay.
    pub(crate) fn is_relayed(&self, connection: &ConnectionId) -> bool {
        self.connections
            .get(connection)
            .is_some_and(|(_, path)| *path == Path::Relayed)
    }

    /// Connected peers reached directly, and only through a relay, in numbers.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let all = self.all();
        let relayed = all.iter().filter(|(_, p)| *p == Path::Relayed).count();
        (all.len() - relayed, relayed)
    }

    /// Whether the node was told of `peer`.
    #[cfg(test)]
    pub(crate) fn announced(&self, peer: &PeerId) -> bool {
        self.announced.contains(peer)
    }

    /// The path to `peer`, if connected.
    pub(crate) fn path(&self, peer: &PeerId) -> Option<Path> {
        let mut paths = self
            .connections
            .values()
            .filter(|(p, _)| p == peer)
            .map(|(_, path)| *path);
        let first = paths.next()?;
        Some(
            if first == Path::Direct || paths.any(|p| p == Path::Direct) {
                Path::Direct
            } else {
                Path::Relayed
            },
        )
    }

    /// Every connected peer and its path.
    pub(crate) fn all(&self) -> Vec<(PeerId, Path)> {
        let peers: HashSet<PeerId> = self.connections.values().map(|(p, _)| *p).collect();
        let mut all: Vec<(PeerId, Path)> = peers
            .into_iter()
            .filter_map(|p| self.path(&p).map(|path| (p, path)))
            .collect();
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct() -> Multiaddr {
        "/ip4/198.18.0.22/udp/4001/quic-v1".parse().unwrap()
    }

    fn relayed(relay: PeerId) -> Multiaddr {
        format!("/ip4/198.18.0.10/udp/4001/quic-v1/p2p/{relay}/p2p-circuit")
            .parse()
            .unwrap()
    }

    #[test]
    fn a_relayed_connection_waits_for_the_direct_one_which_replaces_it() {
        let t0 = Instant::now();
        let (peer, relay) = (PeerId::random(), PeerId::random());
        let mut paths = Paths::default();
        let via_relay = ConnectionId::new_unchecked(1);
        let (arrival, close) = paths.established(
            via_relay,
            (peer, &relayed(relay)),
            Path::Relayed,
            (true, true),
            t0,
        );
        assert_eq!((arrival, close), (Arrival::Hold, vec![]));
        assert_eq!(paths.path(&peer), Some(Path::Relayed));
        assert!(!paths.announced(&peer));
        // Hole punching worked: the direct connection is announced, the relayed one closed.
        let punched = ConnectionId::new_unchecked(2);
        let (arrival, close) =
            paths.established(punched, (peer, &direct()), Path::Direct, (false, true), t0);
        assert_eq!(
            (arrival, close),
            (Arrival::Announce { wanted: true }, vec![via_relay]),
            "wanted, as the relayed connection it replaces was"
        );
        assert_eq!(paths.path(&peer), Some(Path::Direct));
        assert!(paths.expired(t0 + HOLD).is_empty(), "nothing held any more");
        assert!(!paths.closed(via_relay, 1));
        assert_eq!(paths.all(), [(peer, Path::Direct)]);
        // Another relayed connection to a peer reached directly is closed at once.
        let again = ConnectionId::new_unchecked(3);
        let (arrival, close) = paths.established(
            again,
            (peer, &relayed(relay)),
            Path::Relayed,
            (false, false),
            t0,
        );
        assert_eq!((arrival, close), (Arrival::Known, vec![again]));
        assert!(paths.is_relayed(&again) && !paths.is_relayed(&punched));
        assert_eq!(paths.remote(&punched), Some(&direct()));
        assert!(!paths.closed(again, 1));
        assert_eq!(paths.counts(), (1, 0));
        assert!(
            paths.closed(punched, 0),
            "the last connection: told it is gone"
        );
        assert_eq!(paths.path(&peer), None);
    }

    #[test]
    fn without_a_direct_path_the_relayed_connection_is_announced() {
        let t0 = Instant::now();
        let (a, b, relay) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut paths = Paths::default();
        let (ca, cb) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        paths.established(ca, (a, &relayed(relay)), Path::Relayed, (true, true), t0);
        paths.established(
            cb,
            (b, &relayed(relay)),
            Path::Relayed,
            (false, false),
            t0 + HOLD / 2,
        );
        // Hole punching to a failed: announced as it is.
        let held = paths.punch_failed(&a).unwrap();
        assert_eq!(
            (held.connection, held.wanted, held.dialer),
            (ca, true, true)
        );
        assert!(paths.announced(&a));
        // b's hold runs out.
        assert!(paths.expired(t0 + HOLD).is_empty());
        let due = paths.expired(t0 + HOLD / 2 + HOLD);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].peer, b);
        let mut both = vec![(a, Path::Relayed), (b, Path::Relayed)];
        both.sort();
        assert_eq!(paths.all(), both);
        // A held connection that closes is forgotten, and the node was never told of it.
        let c = PeerId::random();
        let cc = ConnectionId::new_unchecked(3);
        paths.established(cc, (c, &relayed(relay)), Path::Relayed, (false, false), t0);
        assert!(!paths.closed(cc, 0));
        assert!(paths.expired(t0 + HOLD * 3).is_empty());
    }

    #[test]
    fn a_direct_connection_is_announced_at_once() {
        let t0 = Instant::now();
        let peer = PeerId::random();
        let mut paths = Paths::default();
        let (arrival, close) = paths.established(
            ConnectionId::new_unchecked(7),
            (peer, &direct()),
            Path::Direct,
            (false, false),
            t0,
        );
        assert_eq!(
            (arrival, close),
            (Arrival::Announce { wanted: false }, vec![])
        );
        let (arrival, _) = paths.established(
            ConnectionId::new_unchecked(8),
            (peer, &direct()),
            Path::Direct,
            (true, true),
            t0,
        );
        assert_eq!(arrival, Arrival::Known);
    }
}

#[cfg(test)]
mod hold_tests {
    use super::*;

    fn relayed() -> Multiaddr {
        format!(
            "/ip4/198.18.0.10/udp/4001/quic-v1/p2p/{}/p2p-circuit",
            PeerId::random()
        )
        .parse()
        .unwrap()
    }

    #[test]
    fn a_hold_moves_to_the_peers_other_relayed_connection() {
        let t0 = Instant::now();
        let peer = PeerId::random();
        let mut paths = Paths::default();
        let (first, second) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        paths.established(first, (peer, &relayed()), Path::Relayed, (true, true), t0);
        paths.established(
            second,
            (peer, &relayed()),
            Path::Relayed,
            (false, false),
            t0,
        );
        assert!(!paths.closed(first, 1));
        let due = paths.expired(t0 + HOLD);
        assert_eq!(
            due.len(),
            1,
            "still held, and announced when its time is up"
        );
        assert_eq!(due[0].connection, second);
        assert!(due[0].wanted);
    }

    #[test]
    fn a_direct_connection_does_not_close_an_announced_relayed_one() {
        let t0 = Instant::now();
        let peer = PeerId::random();
        let direct: Multiaddr = "/ip4/198.18.0.22/udp/4001/quic-v1".parse().unwrap();
        let mut paths = Paths::default();
        let via = ConnectionId::new_unchecked(1);
        paths.established(via, (peer, &relayed()), Path::Relayed, (true, true), t0);
        assert!(paths.punch_failed(&peer).is_some());
        // A direct connection that comes later (an AutoNAT dial-back, say) leaves it open.
        let (arrival, close) = paths.established(
            ConnectionId::new_unchecked(2),
            (peer, &direct),
            Path::Direct,
            (false, false),
            t0,
        );
        assert_eq!((arrival, close), (Arrival::Known, vec![]));
        assert_eq!(paths.relayed_of(&peer), [via]);
    }
}
