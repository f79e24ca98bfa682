//! A libp2p behaviour that sees only the address candidates the driver chooses.
//!
//! The swarm hands every behaviour each address a peer says it sees this node at. Two of them
//! act on those claims with other hosts' packets:
//! - AutoNAT's client tests every candidate and keeps them all: any peer could make it test
//!   (and pay data for) addresses of its choosing, or make it believe a neighbour's dial-back
//!   to a private address proves it public;
//! - hole punching (DCUtR) sends its candidates to the peer it punches to, which dials each:
//!   a loopback address seen by a local client has that peer dial itself, which fails the
//!   whole attempt, and a neighbour's claims would have remote peers dial hosts of its choice.
//!
//! Wrapped in [`Chosen`], such a behaviour gets no candidate from the swarm, and only the
//! addresses the driver offers through [`Chosen::candidate`].

use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NewExternalAddrCandidate,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// `B`, its address candidates chosen by the driver.
pub(crate) struct Chosen<B> {
    inner: B,
}

impl<B: NetworkBehaviour> Chosen<B> {
    pub(crate) fn new(inner: B) -> Self {
        Self { inner }
    }

    /// Offers `addr` as an address this node may be reached at.
    pub(crate) fn candidate(&mut self, addr: &Multiaddr) {
        self.inner
            .on_swarm_event(FromSwarm::NewExternalAddrCandidate(
                NewExternalAddrCandidate { addr },
            ));
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for Chosen<B> {
    type ConnectionHandler = THandler<B>;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner
            .handle_pending_outbound_connection(id, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if !matches!(event, FromSwarm::NewExternalAddrCandidate(_)) {
            self.inner.on_swarm_event(event);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}
