//! The handles applications hold: a running node, its realms, subscriptions and registrations.
//!
//! Handles are `Send + Sync` and work from any async runtime: every call is a message to an
//! actor (publications share one per batch, through the realm's lane), awaited through a
//! oneshot. Starting a node is `start.rs`'s (`NodeHandle::start`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use actix::prelude::*;
use bytes::Bytes;
use futures::future::Either;
use tokio::sync::{broadcast, oneshot};
use tracing::Instrument;
use weft_auth::{Authorizer, Realm};
use weft_identity::Did;
use weft_names::{Name, Pattern};
use weft_net::{Multiaddr, NetThread, Network};
use weft_wire::inspect::{DhtAnswer, DhtFigures, DhtQuestion};

use crate::lane::{Publish, PublishLane};
use crate::local::{LocalEvents, local_queue};
use crate::membership::{LocalSubscriptions, Membership, SpreadRevocation, Subscribe, Unsubscribe};
use crate::registry::{
    Advertise, AwaitProviders, CallProcedure, LocalProcedures, ProcedureHandler, Registry,
    Unadvertise,
};
use crate::revocations::RevocationLog;
use crate::router::{AwaitMembers, AwaitSubscriber, Router, Stats};
use crate::supervisor::{Peers, Shutdown, Supervisor};
use crate::telemetry::{self, CallMetrics};
use crate::{
    AdvertiseError, CallError, Event, PeerEvent, PeerInfo, PublishError, RealmStats, Strategy,
    SubscribeError, TopicPeers,
};

/// Where peer arrivals and departures arrive (a broadcast receiver: a slow reader skips ahead
/// and is told how many events it missed).
pub type PeerEvents = broadcast::Receiver<PeerEvent>;
/// The node's listen addresses as they change (`changed().await`, then `borrow_and_update()`).
pub type ListenAddrWatch = tokio::sync::watch::Receiver<Vec<Multiaddr>>;

/// A running node.
pub struct NodeHandle {
    pub(crate) node: Addr<Supervisor>,
    pub(crate) did: Did,
    pub(crate) listen: Vec<Multiaddr>,
    pub(crate) realms: Vec<RealmRuntime>,
    pub(crate) peer_events: broadcast::Sender<PeerEvent>,
    /// Shared with every realm, router and registry of the node: revocations apply everywhere.
    pub(crate) authorizer: Arc<Authorizer>,
    /// Subscribed before the actors started, so the first `peer_events()` misses nothing.
    pub(crate) first_events: Mutex<Option<PeerEvents>>,
    pub(crate) network: Network,
    pub(crate) stop: Mutex<Option<oneshot::Sender<()>>>,
    pub(crate) thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub(crate) net_thread: Mutex<Option<NetThread>>,
    /// Where new revocation records are kept for the next run.
    pub(crate) revocation_log: RevocationLog,
    /// Whether sessions were refused or released for room lately (`core::forward`).
    pub(crate) scarcity: Arc<crate::core::forward::Scarcity>,
    /// The threads the node runs on, when shared: kept as long as the node.
    pub(crate) _shared: Option<crate::SharedRuntime>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("did", &self.did)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// A realm on a running node, in bytes: publish, subscribe, advertise and call here. The `weft`
/// facade's `RealmHandle` wraps it with typed (JSON) payloads.
#[derive(Clone)]
pub struct RealmRuntime {
    pub(crate) realm: Realm,
    pub(crate) actor: Addr<Membership>,
    pub(crate) router: Addr<Router>,
    /// Publications on their way to `router`.
    pub(crate) lane: PublishLane,
    pub(crate) registry: Addr<Registry>,
    pub(crate) subscriber_queue: usize,
    pub(crate) subscriber_queue_bytes: usize,
    pub(crate) calls: Arc<CallMetrics>,
    pub(crate) own_did: Did,
    pub(crate) authorizer: Arc<Authorizer>,
}

impl std::fmt::Debug for RealmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealmRuntime")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// A live subscription: a stream of [`Event`]s. Dropping it unsubscribes, here and at every peer.
#[derive(Debug)]
pub struct Subscription {
    id: u32,
    events: LocalEvents,
    realm: Addr<Membership>,
}

/// A provider the DHT names, with the addresses known for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtProvider {
    /// Its identity.
    pub did: Did,
    /// Its addresses, as the node that looked it up knows them (possibly none).
    pub addresses: Vec<Multiaddr>,
}

/// Providers found, by identity (peers that are not Ed25519 keys have none), in its order.
fn named(found: impl IntoIterator<Item = (weft_net::PeerId, Vec<Multiaddr>)>) -> Vec<DhtProvider> {
    let mut providers: Vec<DhtProvider> = found
        .into_iter()
        .filter_map(|(peer, addresses)| {
            Some(DhtProvider {
                did: weft_net::peer_did(&peer)?,
                addresses,
            })
        })
        .collect();
    providers.sort_by_key(|p| p.did);
    providers
}

/// An answer that is not the one asked for, as an error.
fn unanswered(answer: DhtAnswer) -> weft_net::NetError {
    match answer {
        DhtAnswer::Busy => weft_net::NetError::Dht("the node is busy answering others".into()),
        // The asked node chose these words: printable characters only, and not many.
        DhtAnswer::Failed(reason) => weft_net::NetError::Dht(
            reason
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect(),
        ),
        _ => weft_net::NetError::Dht("the node answered another question".into()),
    }
}

impl NodeHandle {
    /// This node's DID.
    pub fn did(&self) -> Did {
        self.did
    }

    /// Where this node listens, each address ending in `/p2p/<peer-id>`.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen
    }

    /// The realms this node hosts, in configuration order.
    pub fn realms(&self) -> &[RealmRuntime] {
        &self.realms
    }

    /// The first realm with this name.
    pub fn realm(&self, name: &str) -> Option<RealmRuntime> {
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
        self.network.listen_addrs()
    }

    /// The listen addresses as they change (see `weft_net::Network::watch_listen_addrs`).
    pub fn watch_listen_addrs(&self) -> ListenAddrWatch {
        self.network.watch_listen_addrs()
    }

    /// How long past its `exp` a token still holds here, in seconds (the clock leeway).
    pub fn clock_leeway(&self) -> u64 {
        self.authorizer.leeway()
    }

    /// Is the node still running (not shut down, aborted or crashed)?
    pub fn is_running(&self) -> bool {
        self.node.connected()
    }

    /// Whether this node forwards its publications through the realms' members now: a session
    /// was refused or released for room, on this node or by a peer, lately (two minutes at
    /// first, longer when scarcity keeps coming back), so its sessions may not reach every
    /// subscriber.
    pub fn forwarding(&self) -> bool {
        self.scarcity.forwarding(std::time::Instant::now())
    }

    /// The DHT's routing table and query counts (all zero once the node has stopped).
    pub async fn dht_stats(&self) -> weft_net::DhtStats {
        self.network.dht_stats().await.unwrap_or_default()
    }

    /// Looks up in the DHT the nodes that provide `procedure` in `realm`, with the addresses
    /// this node knows for them (one Kademlia query, dialing none of them). `None` if this node
    /// has no such realm.
    pub async fn dht_lookup(
        &self,
        realm: &str,
        procedure: &weft_names::Name,
    ) -> Option<Result<Vec<DhtProvider>, weft_net::NetError>> {
        let realm = self.realm(realm)?;
        let key = crate::core::keys::procedure_key(&realm.realm, procedure);
        Some(self.network.locate_providers(key).await.map(named))
    }

    /// Whether this node can be reached from outside, its relays, and the path to each peer.
    pub async fn nat_status(&self) -> Result<crate::NatReport, weft_net::NetError> {
        Ok(self.network.nat_status().await?.into())
    }

    /// Asks the node at `addr` (dialed for it) whether it can be reached, and how it reaches
    /// its peers.
    pub async fn ask_nat(&self, addr: Multiaddr) -> Result<crate::NatReport, weft_net::NetError> {
        match self.ask_dht(addr, &DhtQuestion::Nat).await? {
            DhtAnswer::Nat(figures) => Ok(figures.into()),
            other => Err(unanswered(other)),
        }
    }

    /// Asks the node at `addr` (dialed for it) for its DHT's figures.
    pub async fn ask_dht_stats(&self, addr: Multiaddr) -> Result<DhtFigures, weft_net::NetError> {
        match self.ask_dht(addr, &DhtQuestion::Stats).await? {
            DhtAnswer::Stats(figures) => Ok(figures),
            other => Err(unanswered(other)),
        }
    }

    /// Asks the node at `addr` (dialed for it) to look up the providers of `procedure` in
    /// `realm`, whether or not it hosts the realm: the DHT is shared by every realm.
    pub async fn ask_dht_lookup(
        &self,
        addr: Multiaddr,
        realm: &Realm,
        procedure: &Name,
    ) -> Result<Vec<DhtProvider>, weft_net::NetError> {
        let key = crate::core::keys::procedure_key(realm, procedure);
        match self.ask_dht(addr, &DhtQuestion::Providers { key }).await? {
            DhtAnswer::Providers(found) => Ok(named(found.into_iter().filter_map(|p| {
                let peer = weft_net::PeerId::from_bytes(&p.peer).ok()?;
                let addresses = p.addresses.into_iter();
                Some((
                    peer,
                    addresses
                        .filter_map(|a| Multiaddr::try_from(a).ok())
                        .collect(),
                ))
            }))),
            other => Err(unanswered(other)),
        }
    }

    async fn ask_dht(
        &self,
        addr: Multiaddr,
        question: &DhtQuestion,
    ) -> Result<DhtAnswer, weft_net::NetError> {
        let peer = self.network.reach(addr).await?;
        self.network.ask_dht(peer, question).await
    }

    /// Looks up in the DHT, without dialing anyone, the nodes that announce themselves as
    /// publishers and as subscribers in the buckets of `topic` in `realm` (one Kademlia query
    /// per bucket and side). `None` if this node has no such realm.
    pub async fn dht_topic(
        &self,
        realm: &str,
        topic: &Name,
    ) -> Option<Result<TopicPeers, weft_net::NetError>> {
        let realm = &self.realm(realm)?.realm;
        let mut found = TopicPeers::default();
        for bucket in crate::core::keys::buckets_of(topic) {
            let sides = [
                (crate::core::keys::publication_key(realm, bucket), true),
                (crate::core::keys::subscription_key(realm, bucket), false),
            ];
            for (key, publishers) in sides {
                let peers = match self.network.find_providers_dialing(key, 0).await {
                    Ok(peers) => peers,
                    Err(e) => return Some(Err(e)),
                };
                let side = match publishers {
                    true => &mut found.publishers,
                    false => &mut found.subscribers,
                };
                side.extend(peers.iter().filter_map(weft_net::peer_did));
            }
        }
        for side in [&mut found.publishers, &mut found.subscribers] {
            side.sort();
            side.dedup();
        }
        Some(Ok(found))
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

impl RealmRuntime {
    /// The realm.
    pub fn realm(&self) -> &Realm {
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
