//! The swarm event loop. It translates and does nothing else: a command becomes one swarm call,
//! with its reply kept under the connection or query id; a swarm event becomes a [`NetEvent`] or
//! completes a pending reply. Unknown ids (late or duplicate events) are logged and ignored.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, autonat, dcutr, identify, kad, mdns, relay};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::addresses::{self, Announced};
use crate::behaviour::{Behaviour, BehaviourEvent, Options};
use crate::departed::{self, Departed};
use crate::events::{NetEvent, WEFT_PROTOCOL};
use crate::identity::{libp2p_keypair, peer_did};
use crate::interface::{Bound, Interface};
use crate::lan::Lan;
use crate::paths::{Arrival, Held, Path, Paths};
use crate::placement::Placement;
use crate::reach::{Reach, Reachability};
use crate::refresh::{self, Refresh};
use crate::stored::{self, Stored};
use crate::{NetConfig, NetError};

/// Concurrent QUIC streams per connection, each direction.
const MAX_STREAMS: u32 = 32;
/// Commands queued towards the driver before senders wait.
const COMMAND_CAPACITY: usize = 256;
/// How often peers' expired provider records are removed from the store.
const STORE_SWEEP: Duration = Duration::from_secs(30);
/// How often this node's records are looked at for those due to be placed again, and its
/// routing table for whether a refresh is due.
const PLACE_TICK: Duration = Duration::from_secs(1);
/// How long a node closing down waits for its connections' closes to go out.
const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// Providers one lookup dials at most: a key with many stale records costs a bounded number of
/// handshakes, and the periodic lookups reach the rest. Enough for a publisher to reach a
/// bucket's subscribers in one lookup, as nothing forwards to those it does not reach.
pub(crate) const MAX_DIALS_PER_LOOKUP: usize = 64;

pub(crate) enum Command {
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetError>>,
    },
    Provide {
        key: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    StopProviding {
        key: Vec<u8>,
        reply: oneshot::Sender<()>,
    },
    FindProviders {
        key: Vec<u8>,
        /// Providers found to dial at most (and never more than [`MAX_DIALS_PER_LOOKUP`]).
        dial: usize,
        /// Neither dial nor want peers that released a session lately.
        skip_released: bool,
        reply: oneshot::Sender<Result<HashSet<PeerId>, NetError>>,
    },
    Disconnect {
        peer: PeerId,
        reply: oneshot::Sender<()>,
    },
    IsConnected {
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    Forget {
        peer: PeerId,
        keys: Vec<Vec<u8>>,
    },
    /// `peer` has a weft session (`open`) or no longer: the budget does not evict a session's
    /// connection.
    Session {
        peer: PeerId,
        open: bool,
    },
    /// `peer` opened a weft stream: the budget spares its connection while the node decides on
    /// the session.
    StreamArrived {
        peer: PeerId,
    },
    /// A session with `peer` was released to make room.
    Released {
        peer: PeerId,
    },
    StoredProviders {
        key: Vec<u8>,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Stats {
        reply: oneshot::Sender<DhtStats>,
    },
    /// What [`NatStatus`] says now; the peers only for `asker` on this host (or the node).
    Nat {
        asker: Option<PeerId>,
        reply: oneshot::Sender<NatStatus>,
    },
    /// The addresses this node knows for `peers`: from its routing table, else from the
    /// provider records it stores for `key`.
    AddressesOf {
        key: Vec<u8>,
        peers: Vec<PeerId>,
        reply: oneshot::Sender<Vec<(PeerId, Vec<Multiaddr>)>>,
    },
    /// Stops, closing every connection first so that peers know at once.
    Close,
    /// Stops as a crash would: peers find out when their connections time out.
    Shutdown,
}

/// The DHT as this node sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DhtStats {
    /// Peers in the Kademlia routing table.
    pub routing_table: usize,
    /// Peers with at least one open connection.
    pub connected_peers: usize,
    /// Keys this node announces as a provider.
    pub provided_keys: usize,
    /// Non-empty k-buckets of the routing table.
    pub buckets: usize,
    /// Other nodes' provider records this node stores.
    pub records_stored: usize,
    /// Connections this node dialed since it started: Kademlia's walks dial most of them.
    pub dials: u64,

    /// Queries started since the node started (provide, find providers, refresh).
    pub queries: u64,
    /// Of those, how many failed or timed out.
    pub failed_queries: u64,
}

/// Whether this node can be reached from outside, how, and how it reaches its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatStatus {
    /// What AutoNAT's tests say.
    pub reachability: Reachability,
    /// Addresses other nodes dialed this node back at.
    pub public_addrs: Vec<Multiaddr>,
    /// Addresses through the relays this node holds a slot on.
    pub relayed_addrs: Vec<Multiaddr>,
    /// Those relays.
    pub relays: Vec<PeerId>,
    /// Connected peers and the path to each: only for the node itself, or a client of it on its
    /// own host (who a node talks to is not every peer's business).
    pub peers: Vec<(PeerId, crate::paths::Path)>,
    /// Connected peers reached directly.
    pub direct_peers: usize,
    /// Connected peers reached only through a relay.
    pub relayed_peers: usize,
}

/// How often held relayed connections and relay reservations are looked at.
const NAT_TICK: Duration = Duration::from_secs(1);

type FindReply = oneshot::Sender<Result<HashSet<PeerId>, NetError>>;

/// A provider lookup under way: what it found, who to answer, how many providers it dialed.
struct Find {
    found: HashSet<PeerId>,
    reply: FindReply,
    dials: usize,
    /// Dials it may make.
    dial_limit: usize,
    /// Skips peers that released a session lately.
    skip_released: bool,
}

pub(crate) struct Driver {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    bootstrap: Vec<Multiaddr>,
    /// The listen addresses, each with `/p2p/<own id>`, for the driver and for those who
    /// follow them as they change.
    listening: watch::Sender<Vec<Multiaddr>>,
    pending_dials: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, NetError>>>,
    /// The start-up dials of bootstrap addresses, whose failure is reported.
    bootstrap_dials: HashMap<ConnectionId, Multiaddr>,
    pending_provides: HashMap<kad::QueryId, oneshot::Sender<Result<(), NetError>>>,
    pending_finds: HashMap<kad::QueryId, Find>,
    /// Providers a lookup dialed: their connections are wanted.
    wanted_dials: HashSet<ConnectionId>,
    /// Connected peers a lookup found, to report wanted.
    to_want: Vec<PeerId>,
    /// Peers a lookup wanted while a dial to them was already under way (Kademlia's, say):
    /// the connection that dial makes is wanted.
    wanted_peers: HashSet<PeerId>,
    /// Peers not to dial from DHT records for now.
    departed: Departed<PeerId>,
    /// Peers membership lookups leave alone for now: a session with them was released.
    released: Departed<PeerId>,
    /// A client starts no DHT queries of its own.
    client: bool,
    /// When to refresh the routing table (Kademlia's bootstrap): first once a peer is known.
    refresh: Refresh,
    queries: u64,
    failed_queries: u64,
    dials: u64,
    /// This node's listen addresses as announced to peers.
    announced: Announced,
    /// Connections whose remote address is loopback: their peers' loopback addresses are usable.
    loopback_connections: HashMap<ConnectionId, PeerId>,
    /// Peers' provider records in the store, bounded.
    stored: Stored,
    /// When to place each of this node's records again: soon if it reached no peer,
    /// minutes later if it did.
    placement: Placement<kad::RecordKey>,
    /// Peers found on the LAN by mDNS, and which to dial.
    lan: Lan,
    /// Reachability, and the relays this node holds a slot on.
    reach: Reach,
    /// Each connection's path, relayed connections held back, and the peers announced.
    paths: Paths,
}

impl Driver {
    #[allow(clippy::type_complexity)]
    pub(crate) fn new(
        config: NetConfig,
    ) -> Result<
        (
            Self,
            mpsc::Sender<Command>,
            libp2p_stream::Control,
            PeerId,
            mpsc::Receiver<NetEvent>,
        ),
        NetError,
    > {
        let keypair = libp2p_keypair(&config.keypair);
        let query_timeout = config.query_timeout;
        let limits = libp2p::connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(config.max_incoming_handshakes))
            .with_max_established_per_peer(Some(crate::config::MAX_CONNECTIONS_PER_PEER));
        let idle = config.idle_timeout;
        let liveness_ms = u32::try_from(config.liveness.as_millis())
            .unwrap_or(u32::MAX)
            .max(300);
        let interface = config
            .interface
            .as_deref()
            .map(Interface::lookup)
            .transpose()?;
        if config.mdns && interface.is_some() {
            // libp2p's mDNS listens on port 5353 of every interface, whatever the node's own.
            return Err(NetError::Start(
                "mDNS cannot be kept to one interface: give either mdns or an interface".into(),
            ));
        }
        let listen = match &interface {
            Some(interface) => interface.bind(&config.listen)?,
            None => config.listen.clone(),
        };
        // Peers on other hosts cannot dial a node that listens on loopback only: nothing to test,
        // and no NAT to cross (no relay client, no hole punching).
        let autonat = listen.iter().any(|a| !addresses::is_loopback(a));
        let autonat_server = interface.is_none() && addresses::has_public_address(&listen);
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_other_transport(|key| {
                let mut quic = libp2p::quic::Config::new(key);
                quic.max_idle_timeout = liveness_ms;
                quic.keep_alive_interval = Duration::from_millis(u64::from(liveness_ms / 3));
                // quinn sizes per-connection stream state by this limit, and keeps state for
                // every stream slot used up to it. A weft connection needs a handful at once
                // (its two streams, identify, ping and a few Kademlia requests); libp2p's 256
                // cost each peer about 20 KiB more, growing as short Kademlia streams came
                // and went.
                quic.max_concurrent_stream_limit = MAX_STREAMS;
                Bound::new(libp2p::quic::tokio::Transport::new(quic), interface)
            })
            .map_err(|e| NetError::Start(e.to_string()))?
            // Relayed connections are secured and multiplexed as QUIC's own are not: with TLS
            // (the same libp2p-tls) and yamux.
            .with_relay_client(libp2p::tls::Config::new, libp2p::yamux::Config::default)
            .map_err(|e| NetError::Start(e.to_string()))?
            .with_behaviour(|key, relay_client| {
                let options = Options {
                    query_timeout,
                    client: config.client,
                    limits,
                    max_connections: config.max_connections,
                    mdns: config.mdns,
                    relay: config.relay,
                    autonat,
                    autonat_server,
                };
                Behaviour::new(key, relay_client, options).map_err(|e| format!("mDNS: {e}").into())
            })
            .map_err(|e| NetError::Start(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build();
        for addr in &listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Start(format!("listen on {addr}: {e}")))?;
        }
        let peer_id = *swarm.local_peer_id();
        let mut control = swarm.behaviour().stream.new_control();
        let (events_tx, events_rx) = mpsc::channel(config.event_capacity.max(1));
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_CAPACITY);

        // One acceptor for weft streams, for the life of the runtime: libp2p-stream drops
        // incoming streams once its backlog (65, patched) waits for the acceptor.
        let mut incoming = control
            .accept(WEFT_PROTOCOL)
            .map_err(|e| NetError::Start(format!("accept {WEFT_PROTOCOL}: {e}")))?;
        let inbound = events_tx.clone();
        // Weak: the driver stops once every `Network` handle is gone.
        let arrived = commands_tx.downgrade();
        tokio::spawn(async move {
            while let Some((peer, stream)) = incoming.next().await {
                // Before the runtime sees it: that can take a while on a busy node.
                let Some(commands) = arrived.upgrade() else {
                    break;
                };
                if commands
                    .send(Command::StreamArrived { peer })
                    .await
                    .is_err()
                {
                    break;
                }
                drop(commands);
                if inbound
                    .send(NetEvent::InboundStream { peer, stream })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });

        let driver = Self {
            swarm,
            commands: commands_rx,
            events: events_tx,
            bootstrap: config.bootstrap,
            listening: watch::Sender::new(Vec::new()),
            pending_dials: HashMap::new(),
            bootstrap_dials: HashMap::new(),
            wanted_dials: HashSet::new(),
            to_want: Vec::new(),
            wanted_peers: HashSet::new(),
            pending_provides: HashMap::new(),
            pending_finds: HashMap::new(),
            departed: Departed::new(departed::CAPACITY),
            released: Departed::new(departed::CAPACITY),
            client: config.client,
            refresh: Refresh::default(),
            queries: 0,
            failed_queries: 0,
            dials: 0,
            announced: Announced::default(),
            loopback_connections: HashMap::new(),
            placement: Placement::default(),
            stored: Stored::new(
                crate::behaviour::MAX_STORED_KEYS - stored::RESERVED_OWN_KEYS,
                crate::behaviour::MAX_PROVIDERS_PER_KEY,
            ),
            lan: Lan::default(),
            reach: Reach::default(),
            paths: Paths::default(),
        };
        Ok((driver, commands_tx, control, peer_id, events_rx))
    }

    pub(crate) async fn run(mut self) {
        for addr in std::mem::take(&mut self.bootstrap) {
            let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    self.bootstrap_dials.insert(id, addr);
                }
                Err(e) => {
                    warn!(%addr, error = %e, "cannot dial bootstrap peer");
                    let event = NetEvent::BootstrapFailed {
                        addr,
                        error: e.to_string(),
                    };
                    if self.emit(event).await.is_err() {
                        return;
                    }
                }
            }
        }
        let mut sweep = tokio::time::interval(STORE_SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut nat_tick = tokio::time::interval(NAT_TICK);
        nat_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut place_tick = tokio::time::interval(PLACE_TICK);
        place_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = sweep.tick() => self.remove_expired_records(),
                _ = place_tick.tick() => {
                    self.place_again();
                    if !self.client && self.refresh.due(Instant::now(), rand::random()) {
                        self.refresh();
                    }
                }
                _ = nat_tick.tick() => {
                    if self.on_nat_tick().await.is_err() {
                        break;
                    }
                }
                command = self.commands.recv() => match command {
                    Some(Command::Close) => {
                        self.close_all().await;
                        break;
                    }
                    Some(Command::Shutdown) | None => break,
                    Some(command) => self.handle_command(command),
                },
                event = self.swarm.select_next_some() => {
                    if self.handle_event(event).await.is_err() {
                        break; // the node dropped its event receiver: nobody is listening
                    }
                }
            }
        }
        debug!("network driver stopped");
    }

    /// Closes every connection and drives the swarm until they are closed (or [`CLOSE_GRACE`]
    /// passed), so that each peer is told now rather than at its idle timeout: a peer left with
    /// a dead connection would open its streams on it, and wait.
    async fn close_all(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let closed = async {
            while self.swarm.connected_peers().next().is_some() {
                // Nothing is reported any more: the node is going away.
                let _ = self.swarm.select_next_some().await;
            }
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, closed).await;
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Dial { addr, reply } => {
                let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.pending_dials.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial(format!("{addr}: {e}"))));
                    }
                }
            }
            Command::Provide { key, reply } => {
                self.count_query("provide");
                let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() else {
                    let _ = reply.send(Err(NetError::Dht("a client provides nothing".into())));
                    return;
                };
                let key = kad::RecordKey::from(key);
                match kad.start_providing(key.clone()) {
                    Ok(query) => {
                        self.walking_towards(&key);
                        self.placement.walking(key);
                        self.pending_provides.insert(query, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dht(e.to_string())));
                    }
                }
            }
            Command::StopProviding { key, reply } => {
                let key = kad::RecordKey::from(key);
                self.placement.withdrawn(&key);
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    kad.stop_providing(&key);
                }
                let _ = reply.send(());
            }
            Command::FindProviders {
                key,
                dial,
                skip_released,
                reply,
            } => {
                self.count_query("find_providers");
                let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() else {
                    // A client looks nothing up: its access node does.
                    let _ = reply.send(Ok(HashSet::new()));
                    return;
                };
                let key = kad::RecordKey::from(key);
                let query = kad.get_providers(key.clone());
                self.walking_towards(&key);
                self.pending_finds.insert(
                    query,
                    Find {
                        found: HashSet::new(),
                        reply,
                        dials: 0,
                        dial_limit: dial.min(MAX_DIALS_PER_LOOKUP),
                        skip_released,
                    },
                );
            }
            Command::Disconnect { peer, reply } => {
                let _ = self.swarm.disconnect_peer_id(peer);
                let _ = reply.send(());
            }
            Command::IsConnected { peer, reply } => {
                let _ = reply.send(self.swarm.is_connected(&peer));
            }
            Command::Forget { peer, keys } => {
                // It left on purpose: its records here and its routing entry only lead to dials
                // that time out.
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    kad.remove_peer(&peer);
                    for key in keys {
                        self.stored.forget(&key, &peer);
                        kad::store::RecordStore::remove_provider(
                            kad.store_mut(),
                            &key.into(),
                            &peer,
                        );
                    }
                }
                self.departed
                    .mark(peer, Instant::now(), departed::DEPARTED_FOR);
            }
            Command::Released { peer } => {
                self.released
                    .mark(peer, Instant::now(), departed::RELEASED_FOR);
            }
            Command::StreamArrived { peer } => {
                self.swarm.behaviour_mut().budget.stream_arrived(peer);
            }
            Command::Session { peer, open } => {
                // A peer already gone would otherwise stay marked.
                let open = open && self.swarm.is_connected(&peer);
                self.swarm.behaviour_mut().budget.session(peer, open);
                if open {
                    // It holds a session with this node again: it has room, lookups need not
                    // leave it alone any more.
                    self.released.clear(&peer);
                }
            }
            Command::StoredProviders { key, reply } => {
                let stored = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .as_mut()
                    .map_or_else(Vec::new, |kad| {
                        kad::store::RecordStore::providers(kad.store_mut(), &key.into())
                            .into_iter()
                            .map(|record| record.provider)
                            .collect()
                    });
                let _ = reply.send(stored);
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            Command::Nat { asker, reply } => {
                let on_host = asker
                    .is_none_or(|asker| self.loopback_connections.values().any(|p| *p == asker));
                let _ = reply.send(self.nat_status(on_host));
            }
            Command::AddressesOf { key, peers, reply } => {
                let _ = reply.send(self.addresses_of(key, peers));
            }
            Command::Close | Command::Shutdown => {}
        }
    }

    /// Err only when the event receiver is gone.
    async fn handle_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> Result<(), ()> {
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                let own = *self.swarm.local_peer_id();
                // A relayed address is what the relay says it is: only a few, through it, to
                // this node, are taken (see `Reach::relayed_addr`).
                if crate::reach::is_relayed(&address)
                    && (self.client || !self.reach.relayed_addr(listener_id, &address, &own))
                {
                    debug!(%address, "relayed address not taken");
                    return Ok(());
                }
                // Provider records only carry confirmed external addresses; without this, peers
                // finding us through the DHT would have no address to dial.
                if !self.client {
                    let change = self.announced.listening(address.clone());
                    for gone in change.remove {
                        self.swarm.remove_external_address(&gone);
                    }
                    if let Some(added) = change.add {
                        self.swarm.add_external_address(added);
                    }
                }
                // A relayed address ends with this node's own `/p2p/` already.
                let full = address
                    .clone()
                    .with_p2p(own)
                    .unwrap_or_else(|_| address.with(Protocol::P2p(own)));
                if self.listening.borrow().contains(&full) {
                    return Ok(());
                }
                info!(addr = %full, "listening");
                self.listening.send_modify(|addrs| addrs.push(full.clone()));
                self.emit(NetEvent::Listening { addr: full }).await?;
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let addr = endpoint.get_remote_address().clone();
                let wanted = self.wanted_dials.remove(&connection_id)
                    | self.wanted_peers.remove(&peer_id)
                    || self.pending_dials.contains_key(&connection_id)
                    || self.bootstrap_dials.contains_key(&connection_id);
                let dialer = endpoint.is_dialer();
                if dialer {
                    self.dials += 1;
                }
                if addresses::is_loopback(&addr) {
                    self.loopback_connections.insert(connection_id, peer_id);
                }
                if peer_did(&peer_id).is_none() {
                    // weft names peers by their Ed25519 key; any other key gets nothing here.
                    debug!(peer = %peer_id, "not an Ed25519 peer; disconnected");
                    metrics::counter!("weft_connections_refused_total", "reason" => "key")
                        .increment(1);
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    if let Some(reply) = self.pending_dials.remove(&connection_id) {
                        let _ = reply.send(Err(NetError::Dial("not an Ed25519 peer".into())));
                    }
                    return Ok(());
                }
                if endpoint.is_dialer()
                    && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
                {
                    kad.add_address(&peer_id, addr.clone());
                }
                if wanted {
                    // Its session is about to start: not a connection to make room with.
                    self.swarm.behaviour_mut().budget.session(peer_id, true);
                }
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                self.bootstrap_dials.remove(&connection_id);
                self.departed.clear(&peer_id);
                if !self.client && self.refresh.connected(Instant::now(), rand::random()) {
                    self.refresh();
                }
                // An inbound relayed connection names its peer as `/p2p/PEER` alone: it is the
                // local address, the relayed one listened on, that shows the relay.
                let relayed = match &endpoint {
                    libp2p::core::ConnectedPoint::Dialer { address, .. } => {
                        crate::reach::is_relayed(address)
                    }
                    libp2p::core::ConnectedPoint::Listener {
                        local_addr,
                        send_back_addr,
                    } => {
                        crate::reach::is_relayed(local_addr)
                            || crate::reach::is_relayed(send_back_addr)
                    }
                };
                let path = if relayed { Path::Relayed } else { Path::Direct };
                let (arrival, close) = self.paths.established(
                    connection_id,
                    (peer_id, &addr),
                    path,
                    (wanted, dialer),
                    Instant::now(),
                );
                for relayed in close {
                    debug!(peer = %peer_id, "direct path up: relayed connection closed");
                    self.swarm.close_connection(relayed);
                }
                match arrival {
                    Arrival::Announce { wanted } => {
                        self.announce(peer_id, addr, wanted, dialer).await?;
                    }
                    Arrival::Known if wanted => {
                        self.emit(NetEvent::PeerWanted { peer: peer_id }).await?;
                    }
                    Arrival::Known => {}
                    Arrival::Hold => {
                        debug!(peer = %peer_id, %addr, "relayed: held while hole punching is tried");
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                self.loopback_connections.remove(&connection_id);
                // A peer refused for its key, or whose relayed connection was held back, was
                // never reported connected.
                let gone = self.paths.closed(connection_id, num_established);
                if num_established == 0 {
                    self.swarm.behaviour_mut().budget.session(peer_id, false);
                    self.reach.relay_gone(&peer_id);
                }
                if gone {
                    debug!(peer = %peer_id, ?cause, "peer disconnected");
                    metrics::gauge!("weft_connected_peers").decrement(1);
                    self.emit(NetEvent::PeerDisconnected { peer: peer_id })
                        .await?;
                } else if num_established > 0 {
                    self.emit(NetEvent::ConnectionDropped { peer: peer_id })
                        .await?;
                }
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                if matches!(error, libp2p::swarm::ListenError::Denied { .. }) {
                    debug!(%error, "incoming connection refused");
                    metrics::counter!("weft_connections_refused_total", "reason" => "limit")
                        .increment(1);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                debug!(?peer_id, %error, "outgoing connection failed");
                self.wanted_dials.remove(&connection_id);
                if let Some(peer) = peer_id
                    && !self.swarm.is_connected(&peer)
                {
                    self.wanted_peers.remove(&peer);
                }
                // Refused by this node's own budget: the peer may well be reachable.
                let ours = matches!(error, libp2p::swarm::DialError::Denied { .. });
                if let Some(peer) = peer_id
                    && !ours
                    && !self.swarm.is_connected(&peer)
                {
                    self.departed
                        .mark(peer, Instant::now(), departed::UNREACHABLE_FOR);
                }
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial(error.to_string())));
                }
                if let Some(addr) = self.bootstrap_dials.remove(&connection_id) {
                    warn!(%addr, %error, "bootstrap peer unreachable");
                    self.emit(NetEvent::BootstrapFailed {
                        addr,
                        error: error.to_string(),
                    })
                    .await?;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                connection_id,
                peer_id,
                info,
            })) => {
                // identify does not feed Kademlia by itself. A peer on another host cannot be
                // reached at its loopback addresses.
                let on_loopback = self.loopback_connections.contains_key(&connection_id);
                // Where the peer sees this node, over a direct connection: tested by AutoNAT
                // as it is, and at this node's listen port (a NAT that keeps ports maps that
                // one), if `Reach` takes them.
                if !self.paths.is_relayed(&connection_id) {
                    let candidates =
                        addresses::seen_at(&info.observed_addr, &self.listening.borrow());
                    for candidate in candidates {
                        if Reach::punchable(&candidate)
                            && let Some(dcutr) = self.swarm.behaviour_mut().dcutr.as_mut()
                        {
                            dcutr.candidate(&candidate);
                        }
                        if self.reach.offer(&candidate)
                            && let Some(probe) = self.swarm.behaviour_mut().autonat.as_mut()
                        {
                            debug!(addr = %candidate, "to be tested by AutoNAT");
                            probe.candidate(&candidate);
                        }
                    }
                }
                // A relay is reached where it says it listens, at the IP this connection came
                // from: a peer naming another host's address would have this node dial that.
                let remote_ip = self
                    .paths
                    .remote(&connection_id)
                    .and_then(|a| a.iter().next());
                if !self.client && info.protocols.contains(&relay::HOP_PROTOCOL_NAME) {
                    let direct = addresses::usable(info.listen_addrs.clone(), on_loopback)
                        .into_iter()
                        .find(|a| {
                            !crate::reach::is_relayed(a)
                                && remote_ip.is_some()
                                && a.iter().next() == remote_ip
                        });
                    if let Some(addr) = direct {
                        self.reach.relay_seen(peer_id, addr);
                    }
                }
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    let usable = addresses::usable(info.listen_addrs, on_loopback);
                    // What it says now replaces what it said before: a peer pushing new
                    // addresses again and again must not grow its routing entry, which every
                    // answer naming it carries. Added first, so that the entry never empties.
                    let known: Vec<Multiaddr> = kad
                        .kbucket(peer_id)
                        .and_then(|bucket| {
                            bucket
                                .iter()
                                .find(|entry| entry.node.key.preimage() == &peer_id)
                                .map(|entry| entry.node.value.iter().cloned().collect())
                        })
                        .unwrap_or_default();
                    let (add, remove) = addresses::replace(&known, usable, peer_id);
                    for addr in add {
                        kad.add_address(&peer_id, addr);
                    }
                    for old in &remove {
                        kad.remove_address(&peer_id, old);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                stats,
            })) => {
                self.handle_query(id, result, &stats, step.last);
                for peer in std::mem::take(&mut self.to_want) {
                    self.emit(NetEvent::PeerWanted { peer }).await?;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::AddProvider {
                        record: Some(record),
                    },
            })) => {
                let provider = record.provider;
                let expires = record
                    .expires
                    .unwrap_or_else(|| Instant::now() + crate::behaviour::PROVIDER_RECORD_TTL);
                if let Err(refused) = self.stored.admit(record.key.as_ref(), provider, expires) {
                    debug!(peer = %provider, reason = refused.reason(), "provider record refused");
                    metrics::counter!("weft_dht_records_refused_total", "reason" => refused.reason())
                        .increment(1);
                    return Ok(());
                }
                let on_loopback = self.loopback_connections.values().any(|p| *p == provider);
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
                    && let Err(e) = crate::behaviour::store_provider(kad, record, on_loopback)
                {
                    debug!(error = ?e, "provider record not stored");
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                self.on_lan(found);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(autonat::v2::client::Event {
                tested_addr,
                server,
                result,
                ..
            })) => {
                let reachable = result.is_ok();
                debug!(addr = %tested_addr, %server, reachable, "AutoNAT test");
                let outcome = if reachable {
                    "reachable"
                } else {
                    "unreachable"
                };
                metrics::counter!("weft_nat_tests_total", "result" => outcome).increment(1);
                self.reach.tested(tested_addr, reachable, Instant::now());
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            })) => {
                let outcome = if result.is_ok() { "direct" } else { "failed" };
                metrics::counter!("weft_hole_punches_total", "result" => outcome).increment(1);
                match result {
                    // The held relayed connection was closed when the direct one came up; one
                    // already announced may carry the session, and is left to its peer.
                    Ok(_) => info!(peer = %remote_peer_id, "hole punched: direct path"),
                    Err(error) => {
                        info!(peer = %remote_peer_id, %error, "hole punching failed: staying relayed");
                        if let Some(held) = self.paths.punch_failed(&remote_peer_id) {
                            self.announce_held(held).await?;
                        }
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
                relay::client::Event::ReservationReqAccepted {
                    relay_peer_id,
                    renewal,
                    ..
                },
            )) => {
                if !renewal {
                    info!(relay = %relay_peer_id, "relay slot reserved");
                    // The slot lives on this connection: not one to make room with.
                    self.swarm
                        .behaviour_mut()
                        .budget
                        .session(relay_peer_id, true);
                }
                self.reach.held(relay_peer_id);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                reason,
            } => {
                debug!(?addresses, ?reason, "listener closed");
                for gone in &addresses {
                    self.forget_listen_addr(gone);
                }
                self.reach.listener_closed(listener_id, Instant::now());
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.forget_listen_addr(&address);
            }
            // weft uses no value records: a peer's is dropped unread (and unlogged: it may be
            // large).
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::InboundRequest {
                request: kad::InboundRequest::PutRecord { .. },
            })) => {}
            other => debug!(event = ?other, "swarm event"),
        }
        Ok(())
    }

    /// Removes peers' provider records that expired: libp2p's store would drop them only when
    /// their key is asked for.
    /// Tells the node of a peer now connected.
    async fn announce(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        wanted: bool,
        dialer: bool,
    ) -> Result<(), ()> {
        debug!(%peer, %addr, "peer connected");
        metrics::gauge!("weft_connected_peers").increment(1);
        metrics::counter!("weft_connections_total").increment(1);
        self.emit(NetEvent::PeerConnected {
            peer,
            addr,
            wanted,
            dialer,
        })
        .await
    }

    /// Tells the node of a peer reached only through a relay, once hole punching failed or ran
    /// out of time.
    async fn announce_held(&mut self, held: Held) -> Result<(), ()> {
        if !self.swarm.is_connected(&held.peer) {
            return Ok(());
        }
        debug!(peer = %held.peer, "relayed path");
        self.announce(held.peer, held.addr, held.wanted, held.dialer)
            .await
    }

    /// Held relayed connections whose time is up are announced; a node found unreachable asks
    /// relays for a slot.
    async fn on_nat_tick(&mut self) -> Result<(), ()> {
        let now = Instant::now();
        for held in self.paths.expired(now) {
            self.announce_held(held).await?;
        }
        let asks = self.reach.slots_to_ask(now);
        for listener in asks.give_up {
            self.swarm.remove_listener(listener);
        }
        for (relay, circuit) in asks.ask {
            match self.swarm.listen_on(circuit.clone()) {
                Ok(listener) => {
                    debug!(%relay, addr = %circuit, "asking a relay for a slot");
                    self.reach.asked(relay, listener, now);
                }
                Err(error) => debug!(%relay, %error, "cannot ask a relay for a slot"),
            }
        }
        if !self.client && self.reach.provide_now(now) {
            self.provide_again();
        }
        if self.reach.stranded(now) {
            warn!(
                "this node is behind a NAT or firewall and knows no relay: peers outside its \
                 network cannot reach it (start a reachable node with --relay, and bootstrap \
                 from it)"
            );
        }
        Ok(())
    }

    /// Provides every key again, so that the records peers hold carry this node's addresses as
    /// they are now (a relayed one just added): republication alone would take minutes.
    fn provide_again(&mut self) {
        let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() else {
            return;
        };
        let keys: Vec<kad::RecordKey> = kad::store::RecordStore::provided(kad.store_mut())
            .map(|record| record.key.clone())
            .collect();
        let mut started = Vec::new();
        for key in keys {
            if kad.start_providing(key.clone()).is_ok() {
                started.push(key);
            }
        }
        for key in started {
            self.walking_towards(&key);
            self.placement.walking(key);
            self.count_query("provide");
        }
    }

    /// A listen address is gone (a relay slot, say): no longer announced or reported.
    fn forget_listen_addr(&mut self, address: &Multiaddr) {
        self.swarm.remove_external_address(address);
        let own = *self.swarm.local_peer_id();
        let full = address.clone().with(Protocol::P2p(own));
        self.listening.send_if_modified(|addrs| {
            let before = addrs.len();
            addrs.retain(|a| a != &full && a != address);
            addrs.len() != before
        });
    }

    /// The listen addresses from now on: a wildcard listener learns its interfaces' one at a
    /// time, after it started.
    pub(crate) fn watch_listen_addrs(&self) -> watch::Receiver<Vec<Multiaddr>> {
        self.listening.subscribe()
    }

    /// The node's reachability; with `peers`, the path to each peer as well.
    fn nat_status(&self, peers: bool) -> NatStatus {
        let (direct_peers, relayed_peers) = self.paths.counts();
        NatStatus {
            reachability: self.reach.reachability(),
            public_addrs: self.reach.public_addrs(),
            relayed_addrs: self
                .listening
                .borrow()
                .iter()
                .filter(|a| crate::reach::is_relayed(a))
                .cloned()
                .collect(),
            relays: self.reach.relays_held(),
            peers: if peers { self.paths.all() } else { Vec::new() },
            direct_peers,
            relayed_peers,
        }
    }

    /// Peers found on the LAN: their addresses go to the routing table, and a node with no
    /// connection yet dials a few of them (as it would its bootstrap peers); Kademlia finds the
    /// rest from the first connection.
    fn on_lan(&mut self, found: Vec<(PeerId, Multiaddr)>) {
        let own = *self.swarm.local_peer_id();
        let alone = self.swarm.connected_peers().next().is_none();
        let plan = self.lan.discovered(found, &own, alone, Instant::now());
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            for (peer, addresses) in &plan.learn {
                for addr in addresses {
                    kad.add_address(peer, addr.clone());
                }
            }
        }
        for peer in plan.dial {
            let addresses = plan
                .learn
                .iter()
                .find(|(p, _)| *p == peer)
                .map(|(_, a)| a.clone())
                .unwrap_or_default();
            let opts = DialOpts::peer_id(peer)
                .addresses(addresses)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                // Its session starts as a bootstrap peer's would.
                Ok(()) => {
                    self.wanted_dials.insert(id);
                    debug!(%peer, "dialing a peer found on the LAN");
                }
                Err(e) => debug!(%peer, error = %e, "cannot dial a peer found on the LAN"),
            }
        }
    }

    fn remove_expired_records(&mut self) {
        let expired = self.stored.expired(Instant::now());
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            for (key, provider) in expired {
                kad::store::RecordStore::remove_provider(kad.store_mut(), &key.into(), &provider);
            }
        }
    }

    /// Refreshes the routing table (see `refresh`): a walk to this node's own key, and one
    /// into each farther bucket no walk of this node went into lately.
    fn refresh(&mut self) {
        let now = Instant::now();
        let me = *self.swarm.local_peer_id();
        let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() else {
            return;
        };
        let filled: Vec<u32> = kad
            .kbuckets()
            .filter_map(|bucket| bucket.range().0.ilog2())
            .collect();
        if filled.is_empty() {
            // No peer to ask: Kademlia bootstraps by itself as peers are added.
            return;
        }
        let local = kad::KBucketKey::from(me);
        kad.get_closest_peers(me);
        let mut walks = 1;
        for bucket in self.refresh.stale(filled, now) {
            if let Some(key) = refresh::key_in(&local, bucket, rand::random) {
                kad.get_closest_peers(key);
                self.refresh.walked_into(Some(bucket), now);
                walks += 1;
            }
        }
        for _ in 0..walks {
            self.count_query("refresh");
        }
    }

    /// A walk towards `key` begins: its bucket needs no refresh walk for a while.
    fn walking_towards(&mut self, key: &kad::RecordKey) {
        let local = kad::KBucketKey::from(*self.swarm.local_peer_id());
        let bucket = refresh::bucket_of(&local, key.to_vec());
        self.refresh.walked_into(bucket, Instant::now());
    }

    /// Walks again for this node's records that are due: those that reached no peer, and
    /// those placed long enough ago.
    fn place_again(&mut self) {
        metrics::gauge!("weft_dht_unplaced_records").set(self.placement.unplaced() as f64);
        let due = self.placement.due(Instant::now());
        if due.is_empty() {
            return;
        }
        let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() else {
            return;
        };
        // A key withdrawn while its walk was under way came back as unplaced: not placed again.
        let provided: HashSet<kad::RecordKey> = kad::store::RecordStore::provided(kad.store_mut())
            .map(|record| record.key.clone())
            .collect();
        let mut started = Vec::new();
        for key in due {
            if !provided.contains(&key) {
                self.placement.withdrawn(&key);
                continue;
            }
            match kad.start_providing(key.clone()) {
                Ok(_) => started.push(key),
                Err(e) => {
                    debug!(error = %e, "cannot place a provider record again");
                    self.placement.withdrawn(&key);
                }
            }
        }
        for key in started {
            self.walking_towards(&key);
            self.count_query("provide");
        }
    }

    fn count_query(&mut self, kind: &'static str) {
        self.queries += 1;
        metrics::counter!("weft_dht_queries_total", "kind" => kind).increment(1);
    }

    fn count_failure(&mut self, kind: &'static str) {
        self.failed_queries += 1;
        metrics::counter!("weft_dht_query_failures_total", "kind" => kind).increment(1);
    }

    fn stats(&mut self) -> DhtStats {
        let (routing_table, buckets, provided_keys) = match self.swarm.behaviour_mut().kad.as_mut()
        {
            Some(kad) => {
                let sizes: Vec<usize> = kad.kbuckets().map(|bucket| bucket.num_entries()).collect();
                (
                    sizes.iter().sum(),
                    sizes.iter().filter(|n| **n > 0).count(),
                    kad::store::RecordStore::provided(kad.store_mut()).count(),
                )
            }
            None => (0, 0, 0),
        };
        DhtStats {
            routing_table,
            connected_peers: self.swarm.connected_peers().count(),
            provided_keys,
            buckets,
            records_stored: self.stored.len(),
            dials: self.dials,
            queries: self.queries,
            failed_queries: self.failed_queries,
        }
    }

    fn addresses_of(&mut self, key: Vec<u8>, peers: Vec<PeerId>) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() else {
            return peers.into_iter().map(|p| (p, Vec::new())).collect();
        };
        let mut known: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
        for bucket in kad.kbuckets() {
            for entry in bucket.iter() {
                let peer = *entry.node.key.preimage();
                if peers.contains(&peer) {
                    known.insert(peer, entry.node.value.iter().cloned().collect());
                }
            }
        }
        for record in kad::store::RecordStore::providers(kad.store_mut(), &key.into()) {
            known.entry(record.provider).or_insert(record.addresses);
        }
        peers
            .into_iter()
            .map(|peer| {
                let addresses = known.remove(&peer).unwrap_or_default();
                (peer, addresses)
            })
            .collect()
    }

    fn handle_query(
        &mut self,
        id: kad::QueryId,
        result: kad::QueryResult,
        stats: &kad::QueryStats,
        last: bool,
    ) {
        let failed = match &result {
            kad::QueryResult::StartProviding(r) => r.is_err().then_some("provide"),
            kad::QueryResult::GetProviders(r) => r.is_err().then_some("find_providers"),
            kad::QueryResult::Bootstrap(r) => r.is_err().then_some("bootstrap"),
            kad::QueryResult::GetClosestPeers(r) => r.is_err().then_some("refresh"),
            _ => None,
        };
        if let Some(kind) = failed {
            self.count_failure(kind);
        }
        if let kad::QueryResult::StartProviding(result) = &result {
            // A walk that met no peer, or timed out before its storing phase, placed nothing.
            let (key, placed) = match result {
                Ok(kad::AddProviderOk { key }) => (key, stats.num_successes() > 0),
                Err(kad::AddProviderError::Timeout { key }) => (key, false),
            };
            if !placed {
                debug!(
                    requests = stats.num_requests(),
                    "a provider record reached no peer"
                );
            }
            self.placement
                .walked(key.clone(), placed, Instant::now(), rand::random());
        }
        match result {
            kad::QueryResult::StartProviding(result) => match self.pending_provides.remove(&id) {
                Some(reply) => {
                    let _ =
                        reply.send(result.map(|_| ()).map_err(|e| NetError::Dht(e.to_string())));
                }
                None => debug!(?id, "provide result for no pending query"),
            },
            kad::QueryResult::GetProviders(result) => {
                if let Ok(kad::GetProvidersOk::FoundProviders { key, providers }) = result {
                    let me = *self.swarm.local_peer_id();
                    let now = Instant::now();
                    let Some(find) = self.pending_finds.get_mut(&id) else {
                        debug!(?id, "providers for no pending query");
                        return;
                    };
                    let (departed, released) = (&mut self.departed, &mut self.released);
                    let live: Vec<PeerId> = providers
                        .into_iter()
                        .filter(|p| {
                            *p != me
                                && stored::may_provide(key.as_ref(), p)
                                && !departed.contains(p, now)
                                && !(find.skip_released && released.contains(p, now))
                        })
                        .collect();
                    for peer in &live {
                        if find.dials >= find.dial_limit {
                            break;
                        }
                        if find.found.contains(peer) {
                            continue;
                        }
                        if self.swarm.is_connected(peer) {
                            // Connected for Kademlia, perhaps, with no session yet: wanting it
                            // costs no dial, so it does not count against the limit.
                            if find.dial_limit > 0 {
                                self.to_want.push(*peer);
                            }
                            continue;
                        }
                        let opts = DialOpts::peer_id(*peer)
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build();
                        let connection = opts.connection_id();
                        match self.swarm.dial(opts) {
                            Ok(()) => {
                                find.dials += 1;
                                self.wanted_dials.insert(connection);
                            }
                            Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {
                                // A dial is under way already: its connection is wanted.
                                self.wanted_peers.insert(*peer);
                                find.dials += 1;
                            }
                            Err(e) => debug!(%peer, error = %e, "cannot dial provider"),
                        }
                    }
                    find.found.extend(live);
                }
                // A timeout still answers with what was found; the final step closes the query.
                if last && let Some(find) = self.pending_finds.remove(&id) {
                    let _ = find.reply.send(Ok(find.found));
                }
            }
            _ => {}
        }
    }

    /// Hands `event` to the node. The future holds a sender, not the driver, so that the
    /// driver's own future stays `Send` (the swarm is not `Sync`) and can run on a shared runtime.
    fn emit(&self, event: NetEvent) -> impl Future<Output = Result<(), ()>> + Send + 'static {
        let events = self.events.clone();
        async move { events.send(event).await.map_err(|_| ()) }
    }
}
