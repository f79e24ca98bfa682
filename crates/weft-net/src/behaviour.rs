//! The composed libp2p behaviour: stock behaviours only, no hand-written connection handler.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{StreamProtocol, connection_limits, identify, identity, kad, ping};

/// Kademlia under weft's name: weft meshes never mix with the public IPFS DHT.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/weft/kad/1.0.0");
/// Identify's protocol-version field (the identify wire protocol itself stays `/ipfs/id/1.0.0`).
pub const IDENTIFY_VERSION: &str = "/weft/id/1.0.0";
/// Providers remembered per key: a realm with many members must not lose all but 20 of them.
pub const MAX_PROVIDERS_PER_KEY: usize = 1024;
/// How long a provider record lives at the nodes that store it. A member that leaves without
/// withdrawing (it crashed) is forgotten this long after its last republication, instead of the
/// 48 h libp2p defaults to.
pub const PROVIDER_RECORD_TTL: Duration = Duration::from_secs(30 * 60);
/// How often a node republishes the records it provides: well within their lifetime.
pub const PROVIDER_REPUBLISH: Duration = Duration::from_secs(10 * 60);

/// Connection limits, Kademlia, identify, ping and weft's streams.
#[derive(NetworkBehaviour)]
#[allow(missing_debug_implementations)] // the stock behaviours do not all implement Debug
pub(crate) struct Behaviour {
    /// Refuses connections past the configured limits, before any other behaviour sees them.
    pub(crate) limits: connection_limits::Behaviour,
    /// Peer routing and realm membership records; absent on a client, which reaches the realm
    /// through its access node alone (Kademlia would otherwise bootstrap from it, find the
    /// other nodes and connect to them).
    pub(crate) kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    /// Learns peers' listen addresses (fed to `kad`) and agents.
    pub(crate) identify: identify::Behaviour,
    /// Liveness.
    pub(crate) ping: ping::Behaviour,
    /// weft's own framed streams.
    pub(crate) stream: libp2p_stream::Behaviour,
}

impl Behaviour {
    /// Builds the behaviour for `key`, with Kademlia in server mode from the start: mesh nodes
    /// serve the DHT without waiting for an external address to be confirmed. A client has no
    /// Kademlia: no node adds it to its routing table, and nobody dials it back once it has gone.
    pub(crate) fn new(
        key: &identity::Keypair,
        query_timeout: Duration,
        client: bool,
        limits: connection_limits::ConnectionLimits,
    ) -> Self {
        let peer_id = key.public().to_peer_id();
        let store = kad::store::MemoryStore::with_config(
            peer_id,
            kad::store::MemoryStoreConfig {
                max_providers_per_key: MAX_PROVIDERS_PER_KEY,
                ..Default::default()
            },
        );
        let mut config = kad::Config::new(KAD_PROTOCOL);
        config.set_query_timeout(query_timeout);
        config.set_provider_record_ttl(Some(PROVIDER_RECORD_TTL));
        config.set_provider_publication_interval(Some(PROVIDER_REPUBLISH));
        let mut kad = kad::Behaviour::with_config(peer_id, store, config);
        kad.set_mode(Some(kad::Mode::Server));
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_VERSION.to_owned(), key.public())
                .with_agent_version(format!("weft/{}", env!("CARGO_PKG_VERSION"))),
        );
        Self {
            limits: connection_limits::Behaviour::new(limits),
            kad: Toggle::from((!client).then_some(kad)),
            identify,
            ping: ping::Behaviour::default(),
            stream: libp2p_stream::Behaviour::new(),
        }
    }
}
