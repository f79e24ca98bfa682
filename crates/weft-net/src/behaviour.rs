//! The composed libp2p behaviour: stock behaviours only, no hand-written connection handler.

use std::num::NonZeroUsize;
use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, autonat, connection_limits, dcutr, identify, identity, kad, mdns, ping, relay,
};

use crate::chosen::Chosen;
use crate::store::Store;

/// Kademlia under weft's name: weft meshes never mix with the public IPFS DHT.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/weft/kad/1.0.0");
/// Identify's protocol-version field (the identify wire protocol itself stays `/ipfs/id/1.0.0`).
pub const IDENTIFY_VERSION: &str = "/weft/id/1.0.0";
/// Providers remembered per key (libp2p keeps 20). A node answers a lookup with 20 of them, a
/// different 20 each time (see `store.rs`). Past this many, a key's new providers are refused
/// until old records expire.
pub const MAX_PROVIDERS_PER_KEY: usize = 200;
/// The largest Kademlia message sent or taken. A reply names at most 20 providers, whose
/// addresses [`store_provider`] trims to 4 of at most 128 bytes (under 11 KiB in all), and 20
/// closer peers with the addresses learnt for them, 4 at a time from each identify message.
/// libp2p's default of 16 KiB would leave those little room; a reply over the limit is dropped
/// whole by the asker.
pub const MAX_KAD_MESSAGE: usize = 64 * 1024;
/// Keys with provider records a node stores, its own and its peers' (libp2p's default): with
/// [`MAX_PROVIDERS_PER_KEY`] records of at most about 0.5 KiB each, the store stays under
/// 100 MiB whatever peers send.
pub const MAX_STORED_KEYS: usize = 1024;
/// How long a provider record lives at the nodes that store it: a member that is gone without
/// withdrawing (it crashed) is forgotten this long after its last republication, instead of the
/// 48 h libp2p defaults to.
pub const PROVIDER_RECORD_TTL: Duration = Duration::from_secs(12 * 60);
/// How often a node republishes the records it provides, on average (each key at its own time,
/// see `placement`): twice within their lifetime, so one lost republication does not lose the
/// record. Each republication is a Kademlia walk, and at a small connection budget nearly every
/// peer a walk asks is a new connection: every 2 minutes, republications were half of the walks
/// of a mesh of 100 nodes at 16 connections, and would alone take more handshakes a second at
/// 1,000 nodes than 2 cores make.
pub const PROVIDER_REPUBLISH: Duration = Duration::from_secs(5 * 60);

/// Stores a peer's provider record, as Kademlia would have, but with at most 4 of its addresses,
/// each at most 128 bytes: whoever asks for the key is sent them, and a provider announcing
/// hundreds of addresses would otherwise push every reply naming it past [`MAX_KAD_MESSAGE`],
/// hiding the key's other providers. Its loopback addresses are kept only if this node reaches
/// it over loopback (`on_loopback`), as for any peer's addresses.
pub(crate) fn store_provider(
    kad: &mut kad::Behaviour<Store>,
    mut record: kad::ProviderRecord,
    on_loopback: bool,
) -> Result<(), kad::store::Error> {
    record.addresses = crate::addresses::usable(record.addresses, on_loopback);
    kad::store::RecordStore::add_provider(kad.store_mut(), record)
}

/// Kademlia's fan-out within a budget of `max_connections`: how many of a key's closest peers
/// a query converges on (and a provider record is sent to), and how many peers it asks at once.
/// libp2p's 20 and 3 need about 20 connections at once to place one record; a node allowed 8
/// would evict the connections its own requests are waiting on: a record goes to at most half
/// the budget's worth of peers, and a query asks an eighth of it at once (1 to 3).
pub fn kad_fan_out(max_connections: u32) -> (NonZeroUsize, NonZeroUsize) {
    let budget = usize::try_from(max_connections).unwrap_or(usize::MAX);
    let replication = (budget / 2).clamp(2, 20);
    let parallelism = (budget / 8).clamp(1, 3);
    (
        NonZeroUsize::new(replication).unwrap_or(NonZeroUsize::MIN),
        NonZeroUsize::new(parallelism).unwrap_or(NonZeroUsize::MIN),
    )
}

/// How often a node asks the LAN for peers once its first queries are answered. libp2p's five
/// minutes would leave a node that missed the first replies alone that long; every node on the
/// LAN answers each query, so a query a minute from each of 100 nodes is about 170 packets a
/// second, which a LAN carries without notice.
pub(crate) const MDNS_QUERY_INTERVAL: Duration = Duration::from_secs(60);

/// What a relay (`--relay`) lends to nodes that cannot be reached directly. Relayed circuits
/// carry the sessions of nodes behind NATs that hole punching cannot open (endpoint-dependent
/// mappings), so they last longer and carry more than libp2p's defaults (2 minutes, 128 KiB),
/// which are meant for coordination only; what a relay spends is still bounded: at most
/// [`RELAY_CIRCUITS`] circuits of [`RELAY_CIRCUIT_BYTES`] each.
pub const RELAY_RESERVATIONS: usize = 128;
/// Circuits a relay carries at once.
pub const RELAY_CIRCUITS: usize = 64;
/// Circuits a relay carries at once for one peer.
pub const RELAY_CIRCUITS_PER_PEER: usize = 8;
/// How long a circuit lasts before the relay closes it (the two nodes then open another).
pub const RELAY_CIRCUIT_DURATION: Duration = Duration::from_secs(30 * 60);
/// Bytes a circuit carries before the relay closes it.
pub const RELAY_CIRCUIT_BYTES: u64 = 64 * 1024 * 1024;
/// How often AutoNAT tests the addresses offered since (libp2p's default is 5 s; each address
/// is tested once, and each test costs a server a dial).
pub const AUTONAT_PROBE_INTERVAL: Duration = Duration::from_secs(15);

/// Which of the optional behaviours a node runs, and their bounds.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) query_timeout: Duration,
    /// A client: no Kademlia, no AutoNAT, no hole punching.
    pub(crate) client: bool,
    pub(crate) limits: connection_limits::ConnectionLimits,
    pub(crate) max_connections: u32,
    /// Find peers on the LAN by mDNS.
    pub(crate) mdns: bool,
    /// Serve as a relay.
    pub(crate) relay: bool,
    /// Test this node's reachability with AutoNAT (pointless for a node on loopback only).
    pub(crate) autonat: bool,
    /// Dial peers back for their AutoNAT tests: only a node with a public-looking address,
    /// which is what peers need, and never one bound to an interface (a dial-back leaves from a
    /// socket of its own).
    pub(crate) autonat_server: bool,
}

/// Connection limits, Kademlia, identify, ping, mDNS, NAT traversal and weft's streams.
#[derive(NetworkBehaviour)]
#[allow(missing_debug_implementations)] // the stock behaviours do not all implement Debug
pub(crate) struct Behaviour {
    /// Refuses connections past the configured limits, before any other behaviour sees them.
    pub(crate) limits: connection_limits::Behaviour,
    /// Holds at most `max_connections`, letting connections without a session go first.
    pub(crate) budget: crate::budget::Budget,
    /// Peer routing and realm membership records; absent on a client, which reaches the realm
    /// through its access node alone (Kademlia would otherwise bootstrap from it, find the
    /// other nodes and connect to them).
    pub(crate) kad: Toggle<kad::Behaviour<Store>>,
    /// Learns peers' listen addresses (fed to `kad`) and agents.
    pub(crate) identify: identify::Behaviour,
    /// Liveness.
    pub(crate) ping: ping::Behaviour,
    /// Peers on the local network, by multicast DNS; only with `mdns` (off by default).
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    /// Lends relayed circuits to nodes behind NATs; only with `relay`.
    pub(crate) relay: Toggle<relay::Behaviour>,
    /// Reserves slots on relays, and dials and accepts relayed connections; only where AutoNAT
    /// runs (a node on loopback alone has no NAT to cross, and every connection would carry
    /// its handler for nothing).
    pub(crate) relay_client: Toggle<relay::client::Behaviour>,
    /// Turns relayed connections into direct ones by hole punching, offering the peer the
    /// addresses the driver chooses; only where AutoNAT runs.
    pub(crate) dcutr: Toggle<Chosen<dcutr::Behaviour>>,
    /// Asks peers to dial this node back at addresses it was seen at (those the driver offers).
    pub(crate) autonat: Toggle<Chosen<autonat::v2::client::Behaviour>>,
    /// Dials peers back for their AutoNAT tests.
    pub(crate) autonat_server: Toggle<autonat::v2::server::Behaviour>,
    /// weft's own framed streams.
    pub(crate) stream: libp2p_stream::Behaviour,
}

impl Behaviour {
    /// Builds the behaviour for `key`, with Kademlia in server mode from the start: mesh nodes
    /// serve the DHT without waiting for an external address to be confirmed. A client has no
    /// Kademlia: no node adds it to its routing table, and nobody dials it back once it has gone.
    /// With `mdns`, the node also finds peers by mDNS, which fails only if its socket cannot be
    /// opened.
    pub(crate) fn new(
        key: &identity::Keypair,
        relay_client: relay::client::Behaviour,
        options: Options,
    ) -> std::io::Result<Self> {
        let Options {
            query_timeout,
            client,
            limits,
            max_connections,
            ..
        } = options;
        let peer_id = key.public().to_peer_id();
        let store = kad::store::MemoryStore::with_config(
            peer_id,
            kad::store::MemoryStoreConfig {
                max_providers_per_key: MAX_PROVIDERS_PER_KEY,
                max_provided_keys: MAX_STORED_KEYS,
                ..Default::default()
            },
        );
        let mut config = kad::Config::new(KAD_PROTOCOL);
        config.set_query_timeout(query_timeout);
        config.set_max_packet_size(MAX_KAD_MESSAGE);
        let (replication, parallelism) = kad_fan_out(max_connections);
        config.set_replication_factor(replication);
        config.set_parallelism(parallelism);
        // Peers' provider records reach the store only through the driver, which trims their
        // addresses first; weft uses no value records, so peers' are never stored.
        config.set_record_filtering(kad::StoreInserts::FilterBoth);
        config.set_provider_record_ttl(Some(PROVIDER_RECORD_TTL));
        // weft-net places its records again itself, each key at its own time (`placement`).
        config.set_provider_publication_interval(None);
        // And refreshes its routing table itself, at a time of its own (`refresh`).
        config.set_periodic_bootstrap_interval(None);
        let mut kad = kad::Behaviour::with_config(
            peer_id,
            Store::new(store, &peer_id, replication.get()),
            config,
        );
        kad.set_mode(Some(kad::Mode::Server));
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_VERSION.to_owned(), key.public())
                .with_agent_version(format!("weft/{}", env!("CARGO_PKG_VERSION")))
                // A relayed address that comes and goes reaches peers' routing tables at once.
                .with_push_listen_addr_updates(true),
        );
        let mdns = if options.mdns {
            let config = mdns::Config {
                query_interval: MDNS_QUERY_INTERVAL,
                ..Default::default()
            };
            Some(mdns::tokio::Behaviour::new(config, peer_id)?)
        } else {
            None
        };
        Ok(Self {
            limits: connection_limits::Behaviour::new(limits),
            budget: crate::budget::Budget::new(max_connections),
            kad: Toggle::from((!client).then_some(kad)),
            identify,
            ping: ping::Behaviour::default(),
            mdns: Toggle::from(mdns),
            relay: Toggle::from(
                options
                    .relay
                    .then(|| relay::Behaviour::new(peer_id, relay_config())),
            ),
            relay_client: Toggle::from((!client && options.autonat).then_some(relay_client)),
            dcutr: Toggle::from(
                (!client && options.autonat).then(|| Chosen::new(dcutr::Behaviour::new(peer_id))),
            ),
            autonat: Toggle::from((!client && options.autonat).then(|| {
                Chosen::new(autonat::v2::client::Behaviour::new(
                    rand::make_rng(),
                    autonat::v2::client::Config::default()
                        .with_probe_interval(AUTONAT_PROBE_INTERVAL),
                ))
            })),
            autonat_server: Toggle::from(
                (!client && options.autonat_server).then(autonat::v2::server::Behaviour::default),
            ),
            stream: libp2p_stream::Behaviour::new(),
        })
    }
}

/// A relay's limits (see [`RELAY_CIRCUITS`]); libp2p's rate limits per peer and per IP stay.
fn relay_config() -> relay::Config {
    relay::Config {
        max_reservations: RELAY_RESERVATIONS,
        max_circuits: RELAY_CIRCUITS,
        max_circuits_per_peer: RELAY_CIRCUITS_PER_PEER,
        max_circuit_duration: RELAY_CIRCUIT_DURATION,
        max_circuit_bytes: RELAY_CIRCUIT_BYTES,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use futures::StreamExt;
    use libp2p::kad::store::RecordStore;
    use libp2p::kad::{GetProvidersOk, QueryResult, RecordKey};
    use libp2p::swarm::SwarmEvent;
    use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder};

    use super::*;

    fn swarm() -> Swarm<Behaviour> {
        let limits = connection_limits::ConnectionLimits::default();
        SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_quic()
            .with_relay_client(libp2p::tls::Config::new, libp2p::yamux::Config::default)
            .unwrap()
            .with_behaviour(|key, relay_client| {
                let options = Options {
                    query_timeout: Duration::from_secs(10),
                    client: false,
                    limits,
                    max_connections: 1024,
                    mdns: false,
                    relay: false,
                    autonat: false,
                    autonat_server: false,
                };
                Behaviour::new(key, relay_client, options).unwrap()
            })
            .unwrap()
            .build()
    }

    async fn listen(swarm: &mut Swarm<Behaviour>) -> Multiaddr {
        swarm
            .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
            .unwrap();
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    }

    /// Runs `swarms`, storing the provider records peers send as the driver does, until
    /// `done` says so, asked with the first swarm after each of its events (and the event,
    /// unless it was a record stored).
    async fn run(
        swarms: &mut [&mut Swarm<Behaviour>],
        mut done: impl FnMut(&mut Swarm<Behaviour>, Option<BehaviourEvent>) -> bool,
    ) {
        let run = async {
            loop {
                let events = swarms
                    .iter_mut()
                    .enumerate()
                    .map(|(i, s)| Box::pin(async move { (i, s.select_next_some().await) }));
                let ((i, event), ..) = futures::future::select_all(events).await;
                let SwarmEvent::Behaviour(event) = event else {
                    continue;
                };
                let event = match event {
                    BehaviourEvent::Kad(kad::Event::InboundRequest {
                        request:
                            kad::InboundRequest::AddProvider {
                                record: Some(record),
                            },
                    }) => {
                        let kad = swarms[i].behaviour_mut().kad.as_mut().unwrap();
                        store_provider(kad, record, true).unwrap();
                        None
                    }
                    other => Some(other),
                };
                if i == 0 && done(swarms[0], event) {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("within 20 s");
    }

    /// Providers announcing as many long addresses as libp2p lets them (20 each): the node that
    /// stores their records keeps the few usable ones, so its answer to a lookup names every
    /// provider. Kept whole, the answer would pass the message limit and the asker would drop
    /// it, losing every provider of the key with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn providers_announcing_long_addresses_do_not_hide_a_key() {
        let (mut store, mut asker) = (swarm(), swarm());
        let at = listen(&mut store).await;
        let store_id = *store.local_peer_id();
        let key = RecordKey::new(&"weft/test/crowded");
        let mut providers = Vec::new();
        for i in 0..20 {
            let mut provider = swarm();
            // The address it listens on, and 19 of about 250 bytes each, as a DNS name may be.
            let real = listen(&mut provider).await;
            provider.add_external_address(real);
            for j in 0..19 {
                let host = format!("{i}-{j}-{}", "x".repeat(200));
                let fake = format!("/dns4/{host}.example/udp/4001/quic-v1");
                provider.add_external_address(fake.parse().unwrap());
            }
            let kad = provider.behaviour_mut().kad.as_mut().unwrap();
            kad.add_address(&store_id, at.clone());
            kad.start_providing(key.clone()).unwrap();
            providers.push(provider);
        }
        let mut swarms: Vec<&mut Swarm<Behaviour>> = vec![&mut store];
        swarms.extend(providers.iter_mut());
        run(&mut swarms, |store, _| {
            let kad = store.behaviour_mut().kad.as_mut().unwrap();
            kad.store_mut().providers(&key).len() == 20
        })
        .await;
        let expected: HashSet<PeerId> = providers.iter().map(|p| *p.local_peer_id()).collect();
        let kept = store
            .behaviour_mut()
            .kad
            .as_mut()
            .unwrap()
            .store_mut()
            .providers(&key);
        assert!(
            kept.iter().all(|r| r.addresses.len() == 1),
            "only the one it listens on is kept: {:?}",
            kept.iter().map(|r| r.addresses.clone()).collect::<Vec<_>>()
        );

        let kad = asker.behaviour_mut().kad.as_mut().unwrap();
        kad.add_address(&store_id, at);
        kad.get_providers(key.clone());
        let mut found = HashSet::new();
        let mut swarms: Vec<&mut Swarm<Behaviour>> = vec![&mut asker, &mut store];
        swarms.extend(providers.iter_mut());
        run(&mut swarms, |_, event| {
            let Some(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                result: QueryResult::GetProviders(result),
                step,
                ..
            })) = event
            else {
                return false;
            };
            if let Ok(GetProvidersOk::FoundProviders { providers, .. }) = result {
                found.extend(providers);
            }
            step.last
        })
        .await;
        assert_eq!(found, expected);
    }

    #[test]
    fn kademlias_fan_out_fits_the_connection_budget() {
        let fan_out = |max| {
            let (replication, parallelism) = super::kad_fan_out(max);
            (replication.get(), parallelism.get())
        };
        assert_eq!(
            fan_out(1024),
            (20, 3),
            "libp2p's defaults when connections are plenty"
        );
        assert_eq!(fan_out(64), (20, 3));
        assert_eq!(fan_out(16), (8, 2));
        assert_eq!(fan_out(8), (4, 1));
        assert_eq!(fan_out(1), (2, 1));
    }
}
