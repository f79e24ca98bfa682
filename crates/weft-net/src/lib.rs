//! weft's network layer: one libp2p swarm per node, on its own tokio runtime thread.
//!
//! The swarm speaks QUIC (quinn), Kademlia under weft's own protocol name (`/weft/kad/1.0.0`, in
//! server mode, so weft meshes never join the public IPFS DHT), identify (whose reported listen
//! addresses feed Kademlia), ping, and weft's framed streams (`/weft/1`) through libp2p-stream.
//!
//! ```text
//!   actors (actix)            |  weft-net thread (tokio, 2 workers)
//!                             |
//!   Network::dial/provide/…  --Command-->  Driver ── owns ──> Swarm
//!   (cloneable handle)        |              │ translates swarm events
//!   events: Receiver<NetEvent> <--NetEvent---┘ (PeerConnected, InboundStream, …)
//!   open_stream / spawn_*     |  outbox writer and framed reader tasks per stream
//! ```
//!
//! The driver only translates: a command becomes one swarm call with its reply stored under the
//! query or peer id; a swarm event becomes a [`NetEvent`]. It makes no decision about realms,
//! authorization or retries: those belong to the actors.
//!
//! # Layout
//! - [`config`]: [`NetConfig`], and parsing `HOST:PORT` or multiaddrs.
//! - [`identity`]: a weft key as a libp2p key, and the [`Did`](weft_identity::Did) of a `PeerId`.
//! - `behaviour`: the composed libp2p behaviour.
//! - `driver`: the swarm event loop.
//! - `departed`: peers not to dial from DHT records for a while (gone, or unreachable).
//! - `store`: the Kademlia store, handing out a key's providers in turns.
//! - `stored`: peers' provider records in the store, bounded, and when they expire.
//! - `addresses`: which of a peer's addresses are kept and offered.
//! - [`interface`]: binding a node to one network interface.
//! - `lan`: what a node does with the peers mDNS finds.
//! - `reach`: AutoNAT's results and relay reservations; `probe`: the AutoNAT client, fed only
//!   the addresses `reach` chooses.
//! - `paths`: direct and relayed connections, and relayed ones held back while hole punching.
//! - [`inspect`]: DHT introspection, asked and answered on `/weft/dht/1`.
//! - [`network`]: [`Network`], the handle, and [`NetEvent`].
//! - [`framed`]: opening and accepting weft streams, and a bounded reader of frames in batches.
//! - [`outbox`]: a peer's queued frames as one buffer, and the writer that drains it.
//! - [`error`]: what can fail, [`NetError`].
#![warn(missing_docs)]

mod addresses;
mod behaviour;
mod budget;
mod chosen;
pub mod config;
mod departed;
mod driver;
pub mod error;
mod events;
pub mod framed;
pub mod identity;
pub mod inspect;
pub mod interface;
mod lan;
pub mod network;
pub mod outbox;
mod paths;
mod placement;
mod reach;
mod refresh;
mod spread;
mod store;
mod stored;

pub use behaviour::{
    AUTONAT_PROBE_INTERVAL, IDENTIFY_VERSION, KAD_PROTOCOL, MAX_KAD_MESSAGE, MAX_PROVIDERS_PER_KEY,
    MAX_STORED_KEYS, PROVIDER_RECORD_TTL, PROVIDER_REPUBLISH, RELAY_CIRCUIT_BYTES,
    RELAY_CIRCUIT_DURATION, RELAY_CIRCUITS, RELAY_CIRCUITS_PER_PEER, RELAY_RESERVATIONS,
    kad_fan_out,
};
pub use config::{NetConfig, loopback_any, parse_addr};
pub use driver::{DhtStats, NatStatus};
pub use error::NetError;
pub use identity::{did_peer, peer_did};
pub use libp2p::{Multiaddr, PeerId, Stream};
pub use network::{NetEvent, NetThread, Network, WEFT_PROTOCOL};
pub use paths::Path;
pub use reach::{RESERVATIONS, Reachability};
pub use stored::{MEMBERSHIP_SHARDS, membership_shard};
pub use weft_wire::inspect::DhtFigures;
