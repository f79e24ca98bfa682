//! libp2p's AutoNAT v2 client, fed only the addresses the driver chooses.
//!
//! The stock client tests every address peers say they see this node at, and keeps them all:
//! any peer could make it test (and pay data for) addresses of its choosing, or make it believe
//! a neighbour's dial-back to a private address proves it public. Here the swarm's candidates
//! are dropped, and the driver offers the addresses `Reach::offer` takes instead.

use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NewExternalAddrCandidate,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, autonat};

type Client = autonat::v2::client::Behaviour;

/// The AutoNAT client, tested addresses chosen by the driver.
pub(crate) struct Probe {
    client: Client,
}

impl Probe {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    /// Has `addr` tested (once: the client tests each address one time).
    pub(crate) fn candidate(&mut self, addr: &Multiaddr) {
        self.client
            .on_swarm_event(FromSwarm::NewExternalAddrCandidate(
                NewExternalAddrCandidate { addr },
            ));
    }
}

impl NetworkBehaviour for Probe {
    type ConnectionHandler = THandler<Client>;
    type ToSwarm = <Client as NetworkBehaviour>::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.client
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.client
            .handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.client
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
        self.client
            .handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if !matches!(event, FromSwarm::NewExternalAddrCandidate(_)) {
            self.client.on_swarm_event(event);
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.client.on_connection_handler_event(peer, id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.client.poll(cx)
    }
}
