//! What the network reports to the node, and the protocol its streams speak: shared by the
//! driver that produces them and the handle that hands them on.

use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};

/// The protocol of weft's framed streams.
pub const WEFT_PROTOCOL: StreamProtocol = StreamProtocol::new("/weft/1");

/// What the network tells the node, in the order it happened.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetEvent {
    /// Listening on `addr` (ending in `/p2p/<peer-id>`, ready to give to other nodes).
    Listening {
        /// The full address.
        addr: Multiaddr,
    },
    /// First connection to a peer is up.
    PeerConnected {
        /// The peer (its DID: [`peer_did`](crate::peer_did)).
        peer: PeerId,
        /// The remote address of the connection.
        addr: Multiaddr,
        /// This node dialed it for weft (an explicit dial, a bootstrap address, or a provider a
        /// lookup found), rather than Kademlia for a query or the peer for its own reasons:
        /// such a connection is one to start a session on.
        wanted: bool,
        /// This node dialed the connection (for weft or for Kademlia).
        dialer: bool,
    },
    /// A peer already connected (for Kademlia, say) was found by a lookup or dialed again:
    /// it is now one to start a session with, if there is none.
    PeerWanted {
        /// The peer.
        peer: PeerId,
    },
    /// Last connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// One of several connections to a peer the node was told of closed; others stay. A weft
    /// stream on it is lost, while the peer is still connected.
    ConnectionDropped {
        /// The peer.
        peer: PeerId,
    },
    /// Dialing a bootstrap address failed (the node may try again; see weft-runtime).
    BootstrapFailed {
        /// The address.
        addr: Multiaddr,
        /// Why.
        error: String,
    },
    /// A peer opened a weft stream to us.
    InboundStream {
        /// The peer.
        peer: PeerId,
        /// The stream; the peer writes on it, we read.
        stream: Stream,
    },
}
