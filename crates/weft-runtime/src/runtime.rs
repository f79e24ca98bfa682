//! Starting and stopping a node, and the handles applications hold.
//!
//! Threads: the network runs on its own thread (`weft-net`, a 2-worker tokio runtime). The actors
//! run on an actix system thread (`weft-actors`), plus one arbiter per core for the realms'
//! routers. Handles are `Send + Sync` and work from any async runtime: every call is a message to
//! an actor (publications share one per batch, through the realm's lane), awaited through a
//! oneshot.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use actix::prelude::*;
use bytes::Bytes;
use futures::future::Either;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::Instrument;
use weft_auth::{Authorizer, Realm as AuthRealm};
use weft_identity::Did;
use weft_names::{Name, Pattern};
use weft_net::{Multiaddr, NetEvent, NetThread, Network, PeerId};
use weft_wire::RealmJoin;

use crate::core::chains::wire_chain;
use crate::core::handshake::Greeting;
use crate::dht::Dht;
use crate::lane::{Publish, PublishLane};
use crate::local::{LocalEvents, local_queue};
use crate::node::{ListenAddrs, Node, Peers, Shutdown};
use crate::peer::RealmLink;
use crate::realm::{LocalSubscriptions, Realm, Routes, SpreadRevocation, Subscribe, Unsubscribe};
use crate::registry::{
    Advertise, AwaitProviders, CallProcedure, LocalProcedures, ProcedureHandler, Registry,
    Unadvertise,
};
use crate::revocations::RevocationLog;
use crate::router::{AwaitMembers, AwaitSubscriber, Router, Stats};
use crate::telemetry::{self, CallMetrics};
use crate::{
    AdvertiseError, CallError, Event, NodeConfig, PeerEvent, PeerInfo, PublishError, RealmStats,
    StartError, Strategy, SubscribeError,
};

/// Where peer arrivals and departures arrive (a broadcast receiver: a slow reader skips ahead
/// and is told how many events it missed).
pub type PeerEvents = broadcast::Receiver<PeerEvent>;

/// A running node.
pub struct NodeHandle {
    node: Addr<Node>,
    did: Did,
    peer_id: PeerId,
    listen: Vec<Multiaddr>,
    realms: Vec<RealmHandle>,
    peer_events: broadcast::Sender<PeerEvent>,
    /// Shared with every realm, router and registry of the node: revocations apply everywhere.
    authorizer: Arc<Authorizer>,
    /// Subscribed before the actors started, so the first `peer_events()` misses nothing.
    first_events: Mutex<Option<PeerEvents>>,
    network: Network,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    net_thread: Mutex<Option<NetThread>>,
    /// Where new revocation records are kept for the next run.
    revocation_log: RevocationLog,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("did", &self.did)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// A realm on a running node: publish and subscribe here.
#[derive(Clone)]
pub struct RealmHandle {
    realm: AuthRealm,
    actor: Addr<Realm>,
    router: Addr<Router>,
    /// Publications on their way to `router`.
    lane: PublishLane,
    registry: Addr<Registry>,
    subscriber_queue: usize,
    subscriber_queue_bytes: usize,
    calls: Arc<CallMetrics>,
    own_did: Did,
    authorizer: Arc<Authorizer>,
}

impl std::fmt::Debug for RealmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealmHandle")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// A live subscription: a stream of [`Event`]s. Dropping it unsubscribes, here and at every peer.
#[derive(Debug)]
pub struct Subscription {
    id: u32,
    events: LocalEvents,
    realm: Addr<Realm>,
}

struct Built {
    node: Addr<Node>,
    realms: Vec<RealmHandle>,
    authorizer: Arc<Authorizer>,
}

impl NodeHandle {
    /// Starts the network and the actors, and returns once every listener is up.
    pub async fn start(config: NodeConfig) -> Result<NodeHandle, StartError> {
        for (i, a) in config.realms.iter().enumerate() {
            if config.realms[..i].iter().any(|b| b.realm == a.realm) {
                return Err(StartError::DuplicateRealm(a.realm.to_string()));
            }
        }
        let did = config.net.keypair.did();
        let expected_listeners = config.net.listen.len();
        let revocation_log = RevocationLog::new(config.revocations_file.clone());
        let mut net = config.net.clone();
        net.max_connections = config.limits.max_connections;
        net.max_incoming_handshakes = config.limits.max_incoming_handshakes;
        let (network, events, net_thread) = Network::start(net)?;
        let network_handle = network.clone();
        let peer_id = network.peer_id();
        let (peer_events, first_events) = broadcast::channel(256);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let peer_events_for_actors = peer_events.clone();
        let thread = std::thread::Builder::new()
            .name("weft-actors".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                let arbiters = system.block_on(async move {
                    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                    let arbiters: Vec<Arbiter> = (0..cores).map(|_| Arbiter::new()).collect();
                    let built = build(
                        config,
                        network,
                        events,
                        expected_listeners,
                        peer_events_for_actors,
                        &arbiters,
                    );
                    if ready_tx.send(built).is_ok() {
                        let _ = stop_rx.await;
                    }
                    for arbiter in &arbiters {
                        arbiter.stop();
                    }
                    System::current().stop();
                    arbiters
                });
                // The routers and registries live on the arbiters: once their threads are
                // joined, nothing of this node handles a message any more.
                for arbiter in arbiters {
                    let _ = arbiter.join();
                }
            })
            .map_err(|e| StartError::Actors(e.to_string()))?;
        let built = ready_rx
            .await
            .map_err(|_| StartError::Actors("the actor thread died while starting".into()))??;
        let (listen_tx, listen_rx) = oneshot::channel();
        built.node.do_send(ListenAddrs { reply: listen_tx });
        let listen = listen_rx
            .await
            .map_err(|_| StartError::Actors("the node stopped while starting".into()))?;
        Ok(NodeHandle {
            node: built.node,
            did,
            peer_id,
            listen,
            realms: built.realms,
            peer_events,
            authorizer: built.authorizer,
            first_events: Mutex::new(Some(first_events)),
            network: network_handle,
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
            net_thread: Mutex::new(Some(net_thread)),
            revocation_log,
        })
    }

    /// This node's DID.
    pub fn did(&self) -> Did {
        self.did
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Where this node listens, each address ending in `/p2p/<peer-id>`.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen
    }

    /// The realms this node hosts, in configuration order.
    pub fn realms(&self) -> &[RealmHandle] {
        &self.realms
    }

    /// The first realm with this name.
    pub fn realm(&self, name: &str) -> Option<RealmHandle> {
        self.realms
            .iter()
            .find(|r| r.realm.name().as_str() == name)
            .cloned()
    }

    /// Peer arrivals, departures and refusals: the first call sees every event since the node
    /// started, later calls see events from then on.
    pub fn peer_events(&self) -> PeerEvents {
        let first = self.first_events.lock().ok().and_then(|mut f| f.take());
        first.unwrap_or_else(|| self.peer_events.subscribe())
    }

    /// Revokes a token by CID: every chain through it stops authorizing anything on this node,
    /// in every realm, from the next action on.
    pub fn revoke(&self, cid: weft_ucan::Cid) {
        self.authorizer.revoke(cid);
    }

    /// Applies a signed revocation record (UCAN 0.10): once its signature verifies, every chain
    /// in which the revoked token sits below (or is) a token the record's issuer issued stops
    /// authorizing anything on this node; standing grants resting on one end within a second.
    /// The record is kept in the node's revocations file and passed on to every realm's members
    /// (they apply and pass it on in turn); `true` when it was new here.
    pub fn apply_revocation(
        &self,
        record: &weft_ucan::Revocation,
    ) -> Result<bool, weft_auth::AuthError> {
        let new = self.authorizer.apply(record)?;
        if new {
            self.revocation_log.append(record);
            for realm in &self.realms {
                realm.actor.do_send(SpreadRevocation {
                    record: record.clone(),
                });
            }
        }
        Ok(new)
    }

    /// Every address the node listens on now: a wildcard listener (`0.0.0.0`) reports one per
    /// interface, after start too. Empty once the node has stopped.
    pub async fn current_listen_addrs(&self) -> Vec<Multiaddr> {
        self.network.listen_addrs().await.unwrap_or_default()
    }

    /// How long past its `exp` a token still holds here, in seconds (the clock leeway).
    pub fn clock_leeway(&self) -> u64 {
        self.authorizer.leeway()
    }

    /// Is the node still running (not shut down, aborted or crashed)?
    pub fn is_running(&self) -> bool {
        self.node.connected()
    }

    /// The DHT's routing table and query counts (all zero once the node has stopped).
    pub async fn dht_stats(&self) -> weft_net::DhtStats {
        self.network.dht_stats().await.unwrap_or_default()
    }

    /// Peers connected now (those that completed the handshake).
    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.node.send(Peers).await.unwrap_or_default()
    }

    /// Says goodbye to every peer, flushes, and stops every thread of the node. Peers do not try
    /// to reconnect to a node that said goodbye.
    pub async fn shutdown(&self) {
        let _ = self.node.send(Shutdown).await;
        self.stop_threads().await;
    }

    /// Stops at once, as a crash would: no goodbye, nothing flushed. Peers see the connection
    /// drop and start reconnecting. For tests and for stopping a node that is stuck.
    pub async fn abort(&self) {
        self.network.shutdown().await;
        self.stop_threads().await;
    }

    /// Stops the actor system and waits for both threads to end (sockets closed, tasks gone).
    async fn stop_threads(&self) {
        let stop = self.stop.lock().ok().and_then(|mut s| s.take());
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        let net_thread = self.net_thread.lock().ok().and_then(|mut t| t.take());
        // Joining blocks briefly while the threads wind down: do it on a thread of its own and
        // await the result, so this works from any async runtime.
        let (joined, done) = oneshot::channel();
        std::thread::spawn(move || {
            if let Some(thread) = thread {
                let _ = thread.join();
            }
            if let Some(net_thread) = net_thread {
                net_thread.join();
            }
            let _ = joined.send(());
        });
        let _ = done.await;
    }
}

impl RealmHandle {
    /// The realm.
    pub fn realm(&self) -> &AuthRealm {
        &self.realm
    }

    /// Publishes `payload` to `topic`. The publication is queued to the realm's router when this
    /// is *called*, in call order; the returned future resolves once it is authorized and handed
    /// to local subscriptions and peers' send queues (under [`Congestion::Block`](crate::Congestion),
    /// once those queues are below half full again). So a caller may keep several in flight and
    /// await them later without reordering anything.
    ///
    /// With a `chain`, the publication is authorized by it alone, here and at every receiver (a
    /// gateway publishing for a client that delegated to this node); otherwise by the node's own.
    pub fn publish(
        &self,
        topic: &Name,
        payload: Bytes,
        chain: Option<weft_auth::Chain>,
    ) -> impl Future<Output = Result<(), PublishError>> + Send + 'static + use<> {
        let span = tracing::debug_span!(
            target: telemetry::TARGET,
            "publish",
            realm = %self.realm.name(),
            %topic,
            bytes = payload.len(),
        );
        let request = self.lane.push(Publish {
            topic: topic.clone(),
            payload,
            chain,
        });
        let published = async move {
            let backlog = request.await.map_err(|_| PublishError::Stopped)??;
            // Only under `Congestion::Block`: peers this publication left half full or more.
            for peer in backlog {
                peer.drained().await;
            }
            Ok(())
        };
        // Entering a disabled span on every poll is measurable at a million publications a
        // second: instrument only when someone listens.
        if span.is_disabled() {
            Either::Left(published)
        } else {
            Either::Right(published.instrument(span))
        }
    }

    /// Subscribes to `pattern`. Once this returns, the subscription is registered here and its
    /// announcement is queued to every member of the realm. With a `chain`, the subscription is
    /// authorized by it alone, here and at every publisher, like [`publish`](Self::publish).
    pub async fn subscribe(
        &self,
        pattern: &Pattern,
        chain: Option<weft_auth::Chain>,
    ) -> Result<Subscription, SubscribeError> {
        let (sink, events) = local_queue(self.subscriber_queue, self.subscriber_queue_bytes);
        let id = self
            .actor
            .send(Subscribe {
                pattern: pattern.clone(),
                sink,
                chain,
            })
            .await
            .map_err(|_| SubscribeError::Stopped)??;
        Ok(Subscription {
            id,
            events,
            realm: self.actor.clone(),
        })
    }

    /// Resolves once a peer has an authorized subscription matching `topic`: the moment a
    /// publication to it would reach someone beyond this node. `false` if the node stopped.
    pub async fn wait_for_subscriber(&self, topic: &Name) -> bool {
        let (reply, fired) = oneshot::channel();
        self.router.do_send(AwaitSubscriber {
            topic: topic.clone(),
            reply,
        });
        fired.await.is_ok()
    }

    /// Resolves once this node has admitted at least `count` peers to the realm (each peer
    /// decides on its own whether to admit this node; see [`PeerEvent::Denied`]). `false` if the node stopped.
    pub async fn wait_for_members(&self, count: usize) -> bool {
        let (reply, fired) = oneshot::channel();
        self.router.do_send(AwaitMembers { count, reply });
        fired.await.is_ok()
    }

    /// Provides `procedure` with `handler` until the returned registration is dropped.
    pub async fn advertise(
        &self,
        procedure: &Name,
        handler: ProcedureHandler,
    ) -> Result<Registration, AdvertiseError> {
        self.registry
            .send(Advertise {
                procedure: procedure.clone(),
                handler,
            })
            .await
            .map_err(|_| AdvertiseError::Stopped)??;
        Ok(Registration {
            procedure: procedure.clone(),
            registry: self.registry.clone(),
        })
    }

    /// Calls `procedure` with `payload`; see [`Registry`] for provider choice and retries.
    pub async fn call(
        &self,
        procedure: &Name,
        payload: Bytes,
        timeout: std::time::Duration,
        strategy: Strategy,
        chain: Option<weft_auth::Chain>,
    ) -> Result<Bytes, CallError> {
        let call = CallProcedure {
            procedure: procedure.clone(),
            payload,
            timeout,
            strategy,
            chain,
            route: Default::default(),
        };
        let span = tracing::info_span!(
            target: telemetry::TARGET,
            "call",
            realm = %self.realm.name(),
            %procedure,
        );
        let started = std::time::Instant::now();
        let result = self
            .registry
            .send(call)
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| Err(CallError::Unavailable("the node has stopped".into())));
        let outcome = telemetry::call_outcome(&result);
        let elapsed = started.elapsed();
        self.calls.called(outcome, elapsed);
        span.in_scope(|| {
            tracing::debug!(target: telemetry::TARGET, outcome, elapsed_us = elapsed.as_micros() as u64, "call ended");
        });
        result
    }

    /// Checks, as this node's routers would, whether this node acting under `chain` alone may
    /// take `action` here: the same cache and the same revocations. For a gateway vetting a
    /// client's delegation before acting under it.
    pub fn authorize(
        &self,
        chain: &weft_auth::Chain,
        action: weft_auth::Action<'_>,
    ) -> Result<weft_auth::Grant, weft_auth::AuthError> {
        self.authorizer.authorize(
            &self.realm,
            Some(chain),
            &self.own_did,
            action,
            crate::unix_now(),
        )
    }

    /// How long past its `exp` a token still holds here, in seconds (the clock leeway).
    pub fn clock_leeway(&self) -> u64 {
        self.authorizer.leeway()
    }

    /// Could a revocation record by `issuer` revoke anything here (see
    /// [`Authorizer::may_revoke`](weft_auth::Authorizer::may_revoke))?
    pub fn may_revoke(&self, issuer: &Did) -> bool {
        self.authorizer.may_revoke(&self.realm, issuer)
    }

    /// [`authorize`](Self::authorize), verifying a chain not yet in the cache only while
    /// `budget` allows (refused with `limit` otherwise).
    pub fn authorize_within(
        &self,
        chain: &weft_auth::Chain,
        action: weft_auth::Action<'_>,
        budget: &weft_auth::VerifyBudget,
    ) -> Result<weft_auth::Grant, weft_auth::AuthError> {
        self.authorizer.authorize_from(
            &self.realm,
            Some(chain),
            &self.own_did,
            action,
            crate::unix_now(),
            budget,
        )
    }

    /// The patterns this node subscribes to here, one per live subscription.
    pub async fn local_subscriptions(&self) -> Vec<Pattern> {
        self.actor
            .send(LocalSubscriptions)
            .await
            .unwrap_or_default()
    }

    /// The procedures this node provides here.
    pub async fn local_procedures(&self) -> Vec<Name> {
        self.registry
            .send(LocalProcedures)
            .await
            .unwrap_or_default()
    }

    /// Resolves once at least `count` providers of `procedure` are known here (this node's own
    /// included). `false` if the node stopped.
    pub async fn wait_for_providers(&self, procedure: &Name, count: usize) -> bool {
        let (reply, fired) = oneshot::channel();
        self.registry.do_send(AwaitProviders {
            procedure: procedure.clone(),
            count,
            reply,
        });
        fired.await.is_ok()
    }

    /// The realm's counters on this node.
    pub async fn stats(&self) -> RealmStats {
        self.router.send(Stats).await.unwrap_or_default()
    }
}

/// A provided procedure; dropping it withdraws the procedure here and at every peer.
#[derive(Debug)]
pub struct Registration {
    procedure: Name,
    registry: Addr<Registry>,
}

impl Registration {
    /// The procedure provided.
    pub fn procedure(&self) -> &Name {
        &self.procedure
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.do_send(Unadvertise {
            procedure: self.procedure.clone(),
        });
    }
}

impl Subscription {
    /// The next event, or `None` once the node has stopped.
    pub async fn next(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.events.poll_next(cx)).await
    }

    /// The next event if one is already queued, without waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        self.events.try_next()
    }

    /// Events dropped because this subscription's queue was full.
    pub fn dropped(&self) -> u64 {
        self.events.dropped()
    }
}

impl futures::Stream for Subscription {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Event>> {
        self.events.poll_next(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.realm.do_send(Unsubscribe { id: self.id });
    }
}

/// Starts the actors, on the actix system thread.
fn build(
    config: NodeConfig,
    network: Network,
    events: mpsc::Receiver<NetEvent>,
    expected_listeners: usize,
    peer_events: broadcast::Sender<PeerEvent>,
    arbiters: &[Arbiter],
) -> Result<Built, StartError> {
    let own_did = config.net.keypair.did();
    let client = config.net.client;
    let authorizer = Arc::new(Authorizer::new().with_leeway(config.clock_leeway.as_secs()));
    for record in &config.revocations {
        authorizer.apply(record).map_err(StartError::Revocation)?;
    }
    let dht = Dht::new(network.clone()).start();
    let mut links = Vec::new();
    let mut realms = Vec::new();
    let mut joins = Vec::new();
    for (i, realm_config) in config.realms.into_iter().enumerate() {
        let index = u16::try_from(i).map_err(|_| StartError::Actors("too many realms".into()))?;
        let chains = Arc::new(realm_config.chains);
        let realm = realm_config.realm;
        let router = {
            let (realm, authorizer, chains) = (realm.clone(), authorizer.clone(), chains.clone());
            let (max_payload, congestion) = (config.max_payload, config.congestion);
            let max_subscriptions = config.limits.max_subscriptions_per_peer;
            let arbiter = &arbiters[i % arbiters.len().max(1)];
            Router::start_in_arbiter(&arbiter.handle(), move |_| {
                Router::new(realm, index, authorizer, own_did, chains, max_payload)
                    .congestion(congestion)
                    .client(client)
                    .max_subscriptions(max_subscriptions)
            })
        };
        let registry = {
            let (realm, authorizer, chains, network, dht) = (
                realm.clone(),
                authorizer.clone(),
                chains.clone(),
                network.clone(),
                dht.clone(),
            );
            let limits = config.limits.clone();
            let arbiter = &arbiters[i % arbiters.len().max(1)];
            Registry::start_in_arbiter(&arbiter.handle(), move |_| {
                Registry::new(realm, index, authorizer, own_did, chains, network, dht)
                    .client(client)
                    .limits(&limits)
            })
        };
        let actor = Realm::new(
            realm.clone(),
            index,
            authorizer.clone(),
            own_did,
            chains.clone(),
            Routes {
                router: router.clone(),
                registry: registry.clone(),
            },
            dht.clone(),
        )
        .client(client)
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
        realms.push(RealmHandle {
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
        realms: joins,
    });
    let node = Node::new(
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
    .limits(&config.limits)
    .start();
    Ok(Built {
        node,
        realms,
        authorizer,
    })
}
