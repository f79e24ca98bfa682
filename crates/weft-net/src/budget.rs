//! The connection budget: at most `max_connections` connections, where a new one takes the place
//! of the oldest connection that carries no weft session (one Kademlia opened for a query, or a
//! peer's that never opened a stream) instead of being refused. Only when every connection
//! carries a session is a new one refused; the node keeps its sessions below the budget
//! (`weft-runtime` releases idle ones), so there is room for Kademlia's.
//!
//! A connection being closed to make room no longer counts: it carries nothing any more. A
//! connection younger than [`MIN_AGE`] is not evicted, so that the Kademlia request it was opened
//! for gets through, except from this node's own dials: they may evict a peer's connection once
//! [`PEER_GRACE`] old, time for a session's stream to arrive on it (peers' queries are served as
//! room allows, and can ask others, while this node's own would otherwise starve when peers
//! keep its spare slots full), and its own once [`OWN_MIN_AGE`] old. Its own dials are refused
//! before they start when nothing could make room for them, rather than after the peer has
//! spent a slot of its own on the handshake.
//!
//! A peer's connection on which a weft stream arrived is spared like a session's while the
//! node decides on the session, for at most [`PENDING_FOR`]: the node learns of the stream only
//! once its runtime has taken it, and a popular node, dialed by many for Kademlia, would
//! otherwise evict the connection under a session being opened once it is [`MIN_AGE`] old.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    CloseConnection, ConnectionClosed, ConnectionDenied, ConnectionId, DialFailure, FromSwarm,
    ListenFailure, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// How long a connection without a session is safe from eviction by a peer's new connection: a
/// Kademlia request takes a round trip or two once the connection is up.
pub(crate) const MIN_AGE: Duration = Duration::from_secs(1);
/// How long this node's own connection without a session is safe from its next dial. Its
/// queries ask one peer at a time under a small budget (see `behaviour::kad_fan_out`), so by its
/// next dial a query is done with the connection before; a whole second would hold a lookup to
/// a few steps a second, and Kademlia gives up on a peer whose dial is refused.
pub(crate) const OWN_MIN_AGE: Duration = Duration::from_millis(100);
/// How long a peer's new connection is safe from this node's own dials: the peer may have
/// dialed to open a session, and its stream comes a moment after the connection (a round trip,
/// and its runtime's turn). Evicted at once, the session failed with it, and the peer tried
/// again and again: in a 100-node mesh of 16 connections, hundreds of sessions a run.
pub(crate) const PEER_GRACE: Duration = Duration::from_millis(500);
/// How long a connection whose peer opened a weft stream is spared while the node decides on
/// the session: it marks the session, or refuses it, well within this unless overloaded. As
/// long as a peer is given to say hello once its session starts (`Limits::hello_timeout`), so
/// a stream that is never decided pins its slot no longer than one that never says hello.
pub(crate) const PENDING_FOR: Duration = Duration::from_secs(5);

/// What [`Slots::admit`] decided about a new connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit<C, P> {
    /// There is room.
    Room,
    /// It takes the place of this connection of this peer, to be closed.
    Evict(C, P),
    /// Every connection carries a session: refused.
    Full,
}

/// A connection in the budget.
#[derive(Debug)]
struct Slot<P> {
    peer: P,
    /// Order of arrival: the oldest is let go first.
    order: u64,
    /// When it was established.
    since: Instant,
    /// The peer dialed it.
    inbound: bool,
    /// Being closed to make room: no longer counted.
    closing: bool,
}

/// The budget's bookkeeping, apart from libp2p.
#[derive(Debug)]
pub(crate) struct Slots<C, P> {
    max: usize,
    slots: HashMap<C, Slot<P>>,
    /// Peers with a session: their connections are never evicted.
    sessions: HashSet<P>,
    /// Peers whose weft stream arrived, and when: spared for [`PENDING_FOR`] until the session
    /// is decided. Only connected peers, so bounded by the connections.
    pending: HashMap<P, Instant>,
    next: u64,
}

impl<C: Copy + Eq + std::hash::Hash, P: Copy + Eq + std::hash::Hash> Slots<C, P> {
    /// At most `max` connections (at least one).
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            slots: HashMap::new(),
            sessions: HashSet::new(),
            pending: HashMap::new(),
            next: 0,
        }
    }

    /// Connections counted: those not being closed.
    pub(crate) fn open(&self) -> usize {
        self.slots.values().filter(|s| !s.closing).count()
    }

    /// The connection a new one with `peer` (`inbound`: the peer dialed) would take the place
    /// of, at `now`: the oldest without a session and not `peer`'s own, at least [`MIN_AGE`] old
    /// for a peer's new connection; for this node's own, a peer's at least [`PEER_GRACE`] old,
    /// or its own at least [`OWN_MIN_AGE`] old.
    fn victim(&self, peer: P, inbound: bool, now: Instant) -> Option<(C, P)> {
        // A session runs on one connection: only a session peer's oldest is spared, so that a
        // peer cannot shield a second one (and sessions cannot hold twice their share).
        let mut spared: HashMap<P, u64> = HashMap::new();
        let pending = |peer: &P| {
            self.pending
                .get(peer)
                .is_some_and(|at| now.saturating_duration_since(*at) < PENDING_FOR)
        };
        for slot in self.slots.values() {
            if !slot.closing && (self.sessions.contains(&slot.peer) || pending(&slot.peer)) {
                let order = spared.entry(slot.peer).or_insert(slot.order);
                *order = (*order).min(slot.order);
            }
        }
        self.slots
            .iter()
            .filter(|(_, s)| {
                let age = now.saturating_duration_since(s.since);
                let old_enough = match (inbound, s.inbound) {
                    (true, _) => age >= MIN_AGE,
                    (false, true) => age >= PEER_GRACE,
                    (false, false) => age >= OWN_MIN_AGE,
                };
                !s.closing && s.peer != peer && spared.get(&s.peer) != Some(&s.order) && old_enough
            })
            // Peers' connections before this node's own, then the oldest.
            .min_by_key(|(_, s)| (!s.inbound, s.order))
            .map(|(c, s)| (*c, s.peer))
    }

    /// Whether a connection this node dials to `peer` could be admitted at `now` (nothing is
    /// changed).
    pub(crate) fn could_dial(&self, peer: P, now: Instant) -> bool {
        self.open() < self.max || self.victim(peer, false, now).is_some()
    }

    /// A connection `id` with `peer` (`inbound`: the peer dialed) is established at `now`: room
    /// for it, made by evicting a connection without a session (see [`Slots::victim`]), or none.
    pub(crate) fn admit(&mut self, id: C, peer: P, inbound: bool, now: Instant) -> Admit<C, P> {
        let decision = if self.open() < self.max {
            Admit::Room
        } else {
            match self.victim(peer, inbound, now) {
                Some((c, p)) => {
                    if let Some(slot) = self.slots.get_mut(&c) {
                        slot.closing = true;
                    }
                    Admit::Evict(c, p)
                }
                None => return Admit::Full,
            }
        };
        self.slots.insert(
            id,
            Slot {
                peer,
                order: self.next,
                since: now,
                inbound,
                closing: false,
            },
        );
        self.next += 1;
        decision
    }

    /// Connection `id` closed, or was denied by another behaviour after this one admitted it.
    pub(crate) fn closed(&mut self, id: &C) {
        if let Some(slot) = self.slots.remove(id)
            && !self.slots.values().any(|s| s.peer == slot.peer)
        {
            self.pending.remove(&slot.peer);
        }
    }

    /// `peer`, connected, opened a weft stream at `now`: its connection is spared until its
    /// session is decided ([`session`](Self::session)), for at most [`PENDING_FOR`].
    pub(crate) fn stream_arrived(&mut self, peer: P, now: Instant) {
        self.pending
            .retain(|_, at| now.saturating_duration_since(*at) < PENDING_FOR);
        if self.slots.values().any(|s| s.peer == peer && !s.closing) {
            self.pending.insert(peer, now);
        }
    }

    /// `peer` has a session (`open`) or no longer has one, or was refused one: it is no longer
    /// pending either way.
    pub(crate) fn session(&mut self, peer: P, open: bool) {
        self.pending.remove(&peer);
        if open {
            self.sessions.insert(peer);
        } else {
            self.sessions.remove(&peer);
        }
    }
}

/// The budget as a libp2p behaviour: it decides at establishment, before the other behaviours
/// see the connection, and closes what it evicts.
#[allow(missing_debug_implementations)] // holds nothing worth printing
pub(crate) struct Budget {
    slots: Slots<ConnectionId, PeerId>,
    to_close: VecDeque<(ConnectionId, PeerId)>,
}

impl Budget {
    pub(crate) fn new(max_connections: u32) -> Self {
        Self {
            slots: Slots::new(usize::try_from(max_connections).unwrap_or(usize::MAX)),
            to_close: VecDeque::new(),
        }
    }

    /// `peer` has a weft session now (`open`), or no longer (or was refused one).
    pub(crate) fn session(&mut self, peer: PeerId, open: bool) {
        self.slots.session(peer, open);
    }

    /// `peer` opened a weft stream: its connection is spared while the session is decided.
    pub(crate) fn stream_arrived(&mut self, peer: PeerId) {
        self.slots.stream_arrived(peer, Instant::now());
    }

    fn admit(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        inbound: bool,
    ) -> Result<(), ConnectionDenied> {
        match self.slots.admit(id, peer, inbound, Instant::now()) {
            Admit::Room => Ok(()),
            Admit::Evict(victim, victim_peer) => {
                metrics::counter!("weft_connections_evicted_total").increment(1);
                self.to_close.push_back((victim, victim_peer));
                Ok(())
            }
            Admit::Full => Err(ConnectionDenied::new(Full)),
        }
    }
}

/// Addresses one dial may try. weft's own dials name at most a few (a record keeps 4); a dial
/// naming more comes from a peer's list (hole punching dials every address the other side
/// sends, up to 4 KiB of them), which would make this node send handshakes to a hundred hosts
/// of that peer's choosing. libp2p's hole punching sends at most 20 (its candidate cache), so
/// an honest peer's list fits.
pub(crate) const MAX_DIAL_ADDRESSES: usize = 20;

/// A dial names more than [`MAX_DIAL_ADDRESSES`].
#[derive(Debug, thiserror::Error)]
#[error("a dial naming {0} addresses (at most {MAX_DIAL_ADDRESSES} are tried)")]
pub(crate) struct TooManyAddresses(usize);

/// Every connection carries a session: no room for another.
#[derive(Debug, thiserror::Error)]
#[error("connection budget full: every connection carries a session")]
pub(crate) struct Full;

impl NetworkBehaviour for Budget {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_outbound_connection(
        &mut self,
        _id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        _role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if addresses.len() > MAX_DIAL_ADDRESSES {
            return Err(ConnectionDenied::new(TooManyAddresses(addresses.len())));
        }
        // A dial of an unknown peer (a bootstrap address, an explicit dial) goes ahead, and is
        // decided once the peer is known.
        match peer {
            Some(peer) if !self.slots.could_dial(peer, Instant::now()) => {
                Err(ConnectionDenied::new(Full))
            }
            _ => Ok(Vec::new()),
        }
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(id, peer, true)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(id, peer, false)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::DialFailure(DialFailure { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.slots.closed(&connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.to_close.pop_front() {
            Some((connection, peer_id)) => Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::One(connection),
            }),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admits at a time old enough for every earlier connection to be evictable.
    fn admit(slots: &mut Slots<u32, char>, id: u32, peer: char) -> Admit<u32, char> {
        let later = Instant::now() + MIN_AGE * id;
        slots.admit(id, peer, true, later)
    }

    #[test]
    fn room_until_the_limit() {
        let mut slots = Slots::new(2);
        assert_eq!(admit(&mut slots, 1, 'a'), Admit::Room);
        assert_eq!(admit(&mut slots, 2, 'b'), Admit::Room);
        assert_eq!(slots.open(), 2);
    }

    #[test]
    fn a_new_connection_takes_the_place_of_the_oldest_without_a_session() {
        let mut slots = Slots::new(3);
        admit(&mut slots, 1, 'a');
        admit(&mut slots, 2, 'b');
        admit(&mut slots, 3, 'c');
        slots.session('a', true);
        assert_eq!(admit(&mut slots, 4, 'd'), Admit::Evict(2, 'b'));
        assert_eq!(slots.open(), 3, "the evicted one no longer counts");
        assert_eq!(admit(&mut slots, 5, 'e'), Admit::Evict(3, 'c'));
        // Closing an evicted connection frees nothing more: it was not counted.
        slots.closed(&2);
        assert_eq!(slots.open(), 3);
    }

    #[test]
    fn refused_when_every_connection_carries_a_session() {
        let mut slots = Slots::new(2);
        admit(&mut slots, 1, 'a');
        admit(&mut slots, 2, 'b');
        slots.session('a', true);
        slots.session('b', true);
        assert_eq!(admit(&mut slots, 3, 'c'), Admit::Full);
        assert_eq!(slots.open(), 2, "a refused connection takes no slot");
        slots.session('b', false);
        assert_eq!(admit(&mut slots, 3, 'c'), Admit::Evict(2, 'b'));
    }

    #[test]
    fn a_peer_never_evicts_its_own_connection() {
        let mut slots = Slots::new(1);
        admit(&mut slots, 1, 'a');
        assert_eq!(admit(&mut slots, 2, 'a'), Admit::Full);
    }

    #[test]
    fn a_closed_connection_frees_its_slot() {
        let mut slots = Slots::new(1);
        admit(&mut slots, 1, 'a');
        slots.session('a', true);
        slots.closed(&1);
        assert_eq!(admit(&mut slots, 2, 'b'), Admit::Room);
    }

    #[test]
    fn a_young_connection_is_not_evicted_for_a_peers_one() {
        let t0 = Instant::now();
        let mut slots = Slots::new(1);
        slots.admit(1, 'a', false, t0);
        let soon = t0 + MIN_AGE / 2;
        assert_eq!(slots.admit(2, 'b', true, soon), Admit::Full);
        assert_eq!(
            slots.admit(2, 'b', true, t0 + MIN_AGE),
            Admit::Evict(1, 'a')
        );
    }

    #[test]
    fn this_nodes_own_dial_takes_the_place_of_its_own_connection_once_its_request_is_done() {
        let t0 = Instant::now();
        let mut slots = Slots::new(1);
        slots.admit(1, 'a', false, t0);
        assert!(!slots.could_dial('b', t0 + OWN_MIN_AGE / 2));
        assert!(slots.could_dial('b', t0 + OWN_MIN_AGE));
        assert_eq!(
            slots.admit(2, 'b', false, t0 + OWN_MIN_AGE),
            Admit::Evict(1, 'a')
        );
    }

    #[test]
    fn this_nodes_own_dials_evict_peers_connections_first_once_their_session_could_start() {
        let t0 = Instant::now();
        let mut slots = Slots::new(2);
        slots.admit(1, 'a', false, t0); // this node's, older
        slots.admit(2, 'b', true, t0); // a peer's, whose session stream may be on its way
        let soon = t0 + PEER_GRACE / 2;
        assert_eq!(
            slots.admit(3, 'c', false, soon),
            Admit::Evict(1, 'a'),
            "the peer's is spared for now; this node's own goes"
        );
        let later = t0 + PEER_GRACE;
        assert!(slots.could_dial('d', later));
        assert_eq!(slots.admit(4, 'd', false, later), Admit::Evict(2, 'b'));
        assert_eq!(slots.admit(5, 'e', false, later), Admit::Evict(3, 'c'));
        assert_eq!(
            slots.admit(6, 'f', false, later),
            Admit::Full,
            "its own young ones are safe"
        );
    }

    #[test]
    fn only_a_session_peers_first_connection_is_spared() {
        let mut slots = Slots::new(3);
        admit(&mut slots, 1, 'a');
        admit(&mut slots, 2, 'a'); // a second connection of the same peer
        admit(&mut slots, 3, 'b');
        slots.session('a', true);
        slots.session('b', true);
        assert_eq!(admit(&mut slots, 4, 'c'), Admit::Evict(2, 'a'));
        slots.session('c', true);
        assert_eq!(admit(&mut slots, 5, 'd'), Admit::Full, "one each is spared");
    }

    #[test]
    fn a_dial_naming_too_many_addresses_is_refused() {
        let mut budget = Budget::new(64);
        let addrs: Vec<Multiaddr> = (0..=MAX_DIAL_ADDRESSES)
            .map(|i| {
                format!("/ip4/203.0.113.{i}/udp/4001/quic-v1")
                    .parse()
                    .unwrap()
            })
            .collect();
        let peer = Some(PeerId::random());
        let id = ConnectionId::new_unchecked(1);
        assert!(
            budget
                .handle_pending_outbound_connection(id, peer, &addrs, Endpoint::Dialer)
                .is_err()
        );
        assert!(
            budget
                .handle_pending_outbound_connection(
                    id,
                    peer,
                    &addrs[..MAX_DIAL_ADDRESSES],
                    Endpoint::Dialer
                )
                .is_ok()
        );
    }

    #[test]
    fn a_connection_whose_peer_opened_a_stream_is_spared_until_its_session_is_decided() {
        let t0 = Instant::now();
        let mut slots = Slots::new(2);
        slots.admit(1, 'a', true, t0);
        slots.admit(2, 'b', true, t0);
        let later = t0 + MIN_AGE;
        slots.stream_arrived('a', later);
        assert_eq!(
            slots.admit(3, 'c', true, later),
            Admit::Evict(2, 'b'),
            "a's stream is being decided on"
        );
        slots.closed(&2);
        // Refused a session (or one that ended): no longer spared.
        slots.session('a', false);
        assert_eq!(slots.admit(4, 'd', true, later), Admit::Evict(1, 'a'));
        slots.closed(&1);

        // Undecided for too long: spared no more.
        slots.stream_arrived('c', later);
        let late = later + PENDING_FOR + MIN_AGE;
        assert_eq!(slots.admit(5, 'e', true, late), Admit::Evict(3, 'c'));
        slots.closed(&3);
        // A stream from a peer with no connection marks nothing.
        slots.stream_arrived('z', late);
        assert!(!slots.pending.contains_key(&'z'));
        // The mark goes with the peer's last connection.
        slots.stream_arrived('d', late);
        slots.closed(&4);
        assert!(!slots.pending.contains_key(&'d'));
    }
}
