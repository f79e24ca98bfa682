//! Starting a node: its threads, arbiters and actors, and how they are wired.
//!
//! Threads: the network runs on its own thread (`weft-net`, a 2-worker tokio runtime). The actors
//! run on an actix system thread (`weft-actors`), plus one arbiter per core for the realms'
//! routers and registries (`shared::ActorThreads`). A node on a `SharedRuntime` is built the
//! same way on that runtime's threads.

use std::sync::{Arc, Mutex};

use actix::prelude::*;
use actix_rt::ArbiterHandle;
use tokio::sync::{broadcast, mpsc, oneshot};
use weft_auth::Authorizer;
use weft_net::{NetEvent, Network};
use weft_wire::RealmJoin;

use crate::core::chains::wire_chain;
use crate::core::forward::Scarcity;
use crate::core::handshake::Greeting;
use crate::core::seat::Seat;
use crate::dht::Dht;
use crate::handle::{NodeHandle, RealmRuntime};
use crate::lane::PublishLane;
use crate::membership::{Membership, Routes};
use crate::peer::RealmLink;
use crate::registry::Registry;
use crate::revocations::RevocationLog;
use crate::router::Router;
use crate::shared::ActorThreads;
use crate::supervisor::{ListenAddrs, Supervisor};
use crate::telemetry::CallMetrics;
use crate::{NodeConfig, PeerEvent, StartError};

struct Built {
    node: Addr<Supervisor>,
    realms: Vec<RealmRuntime>,
    authorizer: Arc<Authorizer>,
    scarcity: Arc<Scarcity>,
}

impl NodeHandle {
    /// Starts the network and the actors, and returns once every listener is up: on threads of
    /// the node's own, or on `config.shared`'s.
    pub async fn start(config: NodeConfig) -> Result<NodeHandle, StartError> {
        for (i, a) in config.realms.iter().enumerate() {
            if config.realms[..i].iter().any(|b| b.realm == a.realm) {
                return Err(StartError::DuplicateRealm(a.realm.to_string()));
            }
        }
        let net = net_config(&config);
        match config.shared.clone() {
            Some(shared) => {
                let runtime = shared
                    .net()
                    .ok_or_else(|| StartError::Actors("the shared runtime is stopping".into()))?;
                let (network, events) = Network::start_on(net, runtime).await?;
                let actors = (shared.system(), shared.arbiters());
                Self::start_actors(config, network, events, actors, Threads::default()).await
            }
            None => {
                let (network, events, net_thread) = Network::start(net)?;
                let own = ActorThreads::spawn()?;
                let threads = Threads {
                    stop: Some(own.stop),
                    actors: Some(own.thread),
                    net: Some(net_thread),
                };
                let actors = (&own.system, own.arbiters.as_slice());
                Self::start_actors(config, network, events, actors, threads).await
            }
        }
    }

    /// Builds the node's actors on `actors` (the system's arbiter, and those for routers and
    /// registries), and returns once every listener is up.
    async fn start_actors(
        config: NodeConfig,
        network: Network,
        events: mpsc::Receiver<NetEvent>,
        (system, arbiters): (&ArbiterHandle, &[ArbiterHandle]),
        threads: Threads,
    ) -> Result<NodeHandle, StartError> {
        let did = config.net.keypair.did();
        let expected_listeners = config.net.listen.len();
        let revocation_log = RevocationLog::new(config.revocations_file.clone());
        let shared = config.shared.clone();
        let network_handle = network.clone();
        let (peer_events, first_events) = broadcast::channel(256);
        let (ready_tx, ready_rx) = oneshot::channel();
        let peer_events_for_actors = peer_events.clone();
        let arbiters = arbiters.to_vec();
        let spawned = system.spawn_fn(move || {
            let built = build(
                config,
                network,
                events,
                expected_listeners,
                peer_events_for_actors,
                &arbiters,
            );
            let _ = ready_tx.send(built);
        });
        if !spawned {
            return Err(StartError::Actors("the actor system stopped".into()));
        }
        let built = ready_rx
            .await
            .map_err(|_| StartError::Actors("the actor system stopped while starting".into()))??;
        let listen = listening(&built).await?;
        Ok(NodeHandle {
            node: built.node,
            did,
            listen,
            realms: built.realms,
            scarcity: built.scarcity,
            peer_events,
            authorizer: built.authorizer,
            first_events: Mutex::new(Some(first_events)),
            network: network_handle,
            stop: Mutex::new(threads.stop),
            thread: Mutex::new(threads.actors),
            net_thread: Mutex::new(threads.net),
            revocation_log,
            _shared: shared,
        })
    }
}

/// The threads a node owns, stopped with it; none on a shared runtime.
#[derive(Default)]
struct Threads {
    stop: Option<oneshot::Sender<()>>,
    actors: Option<std::thread::JoinHandle<()>>,
    net: Option<weft_net::NetThread>,
}

/// The network's part of `config`, with the node's limits applied.
fn net_config(config: &NodeConfig) -> weft_net::NetConfig {
    let mut net = config.net.clone();
    net.max_connections = config.limits.max_connections;
    net.max_incoming_handshakes = config.limits.max_incoming_handshakes;
    net
}

/// Waits until every listener of the node is up, and returns their addresses.
async fn listening(built: &Built) -> Result<Vec<weft_net::Multiaddr>, StartError> {
    let (listen_tx, listen_rx) = oneshot::channel();
    built.node.do_send(ListenAddrs { reply: listen_tx });
    listen_rx
        .await
        .map_err(|_| StartError::Actors("the node stopped while starting".into()))
}

/// Starts the actors, on the actix system thread.
fn build(
    config: NodeConfig,
    network: Network,
    events: mpsc::Receiver<NetEvent>,
    expected_listeners: usize,
    peer_events: broadcast::Sender<PeerEvent>,
    arbiters: &[ArbiterHandle],
) -> Result<Built, StartError> {
    let own_did = config.net.keypair.did();
    let client = config.net.client;
    let authorizer = Arc::new(Authorizer::new().with_leeway(config.clock_leeway.as_secs()));
    for record in &config.revocations {
        authorizer.apply(record).map_err(StartError::Revocation)?;
    }
    let scarcity = Arc::new(Scarcity::new(std::time::Instant::now()));
    let dht = Dht::new(network.clone()).scarcity(scarcity.clone()).start();
    let mesh_members = config.limits.mesh_size();
    let short_realms = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Nanoseconds since 1970: each start of this node numbers its publications in a run
    // later than the one before.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        });
    let key = Arc::new(config.net.keypair.clone());
    let mut links = Vec::new();
    let mut realms = Vec::new();
    let mut joins = Vec::new();
    for (i, realm_config) in config.realms.into_iter().enumerate() {
        let index = u16::try_from(i).map_err(|_| StartError::Actors("too many realms".into()))?;
        let chains = Arc::new(realm_config.chains);
        let realm = realm_config.realm;
        let seat = Seat::new(
            realm.clone(),
            index,
            authorizer.clone(),
            own_did,
            chains.clone(),
        );
        let router = {
            let seat = seat.clone();
            let resolver = (!client).then(|| dht.clone());
            let (max_payload, congestion) = (config.max_payload, config.congestion);
            let max_subscriptions = config.limits.max_subscriptions_per_peer;
            let arbiter = &arbiters[i % arbiters.len().max(1)];
            let (key, scarcity) = (key.clone(), scarcity.clone());
            Router::start_in_arbiter(arbiter, move |_| {
                let router = Router::new(seat, max_payload)
                    .dht(resolver)
                    .congestion(congestion)
                    .client(client)
                    .max_subscriptions(max_subscriptions);
                // A client's access node forwards for it.
                match client {
                    true => router,
                    false => router.forwarding(key, scarcity, run),
                }
            })
        };
        let registry = {
            let (seat, network, dht) = (seat.clone(), network.clone(), dht.clone());
            let limits = config.limits.clone();
            let arbiter = &arbiters[i % arbiters.len().max(1)];
            Registry::start_in_arbiter(arbiter, move |_| {
                Registry::new(seat, network, dht)
                    .client(client)
                    .limits(&limits)
            })
        };
        let actor = Membership::new(
            seat,
            Routes {
                router: router.clone(),
                registry: registry.clone(),
            },
            dht.clone(),
        )
        .client(client)
        .delegating(client.then(|| key.clone()))
        .mesh_members(mesh_members)
        .short_of_members(short_realms.clone())
        .max_subscriptions(config.limits.max_subscriptions_per_peer)
        .revocations_file(config.revocations_file.clone())
        .start();
        joins.push(RealmJoin {
            index,
            realm: realm.name().clone(),
            owner: realm.owner().copied(),
            chains: chains.iter().map(wire_chain).collect(),
        });
        links.push(RealmLink {
            realm: realm.clone(),
            actor: actor.clone(),
            registry: registry.clone(),
            losses: router.clone().recipient(),
        });
        let calls = Arc::new(CallMetrics::new(realm.name()));
        realms.push(RealmRuntime {
            realm,
            actor,
            lane: PublishLane::new(router.clone().recipient()),
            router,
            registry,
            subscriber_queue: config.subscriber_queue,
            subscriber_queue_bytes: config.subscriber_queue_bytes,
            calls,
            own_did,
            authorizer: authorizer.clone(),
        });
    }
    // The largest join this node can send names every realm: it must fit a frame and the
    // peers' limits, or no peer would ever hear of a realm.
    let widest = weft_wire::Frame::Join(weft_wire::Join {
        realms: joins.clone(),
    });
    widest
        .check_limits()
        .and_then(|()| weft_wire::encode(&widest, weft_wire::DEFAULT_MAX_FRAME, &mut Vec::new()))
        .map_err(StartError::TooLarge)?;
    let greeting = Arc::new(Greeting {
        own: own_did,
        agent: format!("weft/{}", env!("CARGO_PKG_VERSION")),
        tags: config.tags,
        client,
        run,
        realms: joins,
    });
    let node = Supervisor::new(
        network,
        events,
        Arc::new(links),
        greeting,
        config.peer_queue,
        expected_listeners,
        config.net.bootstrap,
        config.reconnect,
        peer_events,
    )
    .client(client)
    .short_of_members(short_realms)
    .scarcity(scarcity.clone())
    .limits(&config.limits)
    .start();
    Ok(Built {
        node,
        realms,
        authorizer,
        scarcity,
    })
}
