//! The connection budget: at most `max_connections` connections, where a new one takes the place
//! of the oldest connection that carries no weft session (one Kademlia opened for a query, or a
//! peer's that never opened a stream) instead of being refused. Only when every connection
//! carries a session is a new one refused; the node keeps its sessions below the budget
//! (`weft-runtime` releases idle ones), so there is room for Kademlia's.
//!
//! A connection being closed to make room no longer counts: it carries nothing any more.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    CloseConnection, ConnectionClosed, ConnectionDenied, ConnectionId, DialFailure, FromSwarm,
    ListenFailure, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

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
    next: u64,
}

impl<C: Copy + Eq + std::hash::Hash, P: Copy + Eq + std::hash::Hash> Slots<C, P> {
    /// At most `max` connections (at least one).
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            slots: HashMap::new(),
            sessions: HashSet::new(),
            next: 0,
        }
    }

    /// Connections counted: those not being closed.
    pub(crate) fn open(&self) -> usize {
        self.slots.values().filter(|s| !s.closing).count()
    }

    /// A connection `id` with `peer` is established: room for it, made by evicting the oldest
    /// connection without a session (never one of `peer`'s own), or none.
    pub(crate) fn admit(&mut self, id: C, peer: P) -> Admit<C, P> {
        let decision = if self.open() < self.max {
            Admit::Room
        } else {
            let victim = self
                .slots
                .iter()
                .filter(|(_, s)| !s.closing && s.peer != peer && !self.sessions.contains(&s.peer))
                .min_by_key(|(_, s)| s.order)
                .map(|(c, s)| (*c, s.peer));
            match victim {
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
                closing: false,
            },
        );
        self.next += 1;
        decision
    }

    /// Connection `id` closed, or was denied by another behaviour after this one admitted it.
    pub(crate) fn closed(&mut self, id: &C) {
        self.slots.remove(id);
    }

    /// `peer` has a session (`open`) or no longer has one.
    pub(crate) fn session(&mut self, peer: P, open: bool) {
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

    /// `peer` has a weft session now (`open`), or no longer.
    pub(crate) fn session(&mut self, peer: PeerId, open: bool) {
        self.slots.session(peer, open);
    }

    fn admit(&mut self, id: ConnectionId, peer: PeerId) -> Result<(), ConnectionDenied> {
        match self.slots.admit(id, peer) {
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

/// Every connection carries a session: no room for another.
#[derive(Debug, thiserror::Error)]
#[error("connection budget full: every connection carries a session")]
pub(crate) struct Full;

impl NetworkBehaviour for Budget {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(id, peer)?;
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
        self.admit(id, peer)?;
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

    #[test]
    fn room_until_the_limit() {
        let mut slots = Slots::new(2);
        assert_eq!(slots.admit(1, 'a'), Admit::Room);
        assert_eq!(slots.admit(2, 'b'), Admit::Room);
        assert_eq!(slots.open(), 2);
    }

    #[test]
    fn a_new_connection_takes_the_place_of_the_oldest_without_a_session() {
        let mut slots = Slots::new(3);
        slots.admit(1, 'a');
        slots.admit(2, 'b');
        slots.admit(3, 'c');
        slots.session('a', true);
        assert_eq!(slots.admit(4, 'd'), Admit::Evict(2, 'b'));
        assert_eq!(slots.open(), 3, "the evicted one no longer counts");
        assert_eq!(slots.admit(5, 'e'), Admit::Evict(3, 'c'));
        // Closing an evicted connection frees nothing more: it was not counted.
        slots.closed(&2);
        assert_eq!(slots.open(), 3);
    }

    #[test]
    fn refused_when_every_connection_carries_a_session() {
        let mut slots = Slots::new(2);
        slots.admit(1, 'a');
        slots.admit(2, 'b');
        slots.session('a', true);
        slots.session('b', true);
        assert_eq!(slots.admit(3, 'c'), Admit::Full);
        assert_eq!(slots.open(), 2, "a refused connection takes no slot");
        slots.session('b', false);
        assert_eq!(slots.admit(3, 'c'), Admit::Evict(2, 'b'));
    }

    #[test]
    fn a_peer_never_evicts_its_own_connection() {
        let mut slots = Slots::new(1);
        slots.admit(1, 'a');
        assert_eq!(slots.admit(2, 'a'), Admit::Full);
    }

    #[test]
    fn a_closed_connection_frees_its_slot() {
        let mut slots = Slots::new(1);
        slots.admit(1, 'a');
        slots.session('a', true);
        slots.closed(&1);
        assert_eq!(slots.admit(2, 'b'), Admit::Room);
    }
}
