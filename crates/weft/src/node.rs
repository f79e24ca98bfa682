//! The node: build it, start it, reach its realms.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use weft_auth::{Chain, Realm};
use weft_identity::{Did, Keypair};
use weft_names::{Name, Pattern, RealmName};
use weft_net::{DhtFigures, DhtStats, Multiaddr, NetConfig, parse_addr};
use weft_runtime::Limits;
use weft_runtime::NatReport;
use weft_runtime::{
    BackoffPolicy, CallContext, Congestion, DhtProvider, HandlerError, ListenAddrWatch, NodeConfig,
    NodeHandle, PeerEvents, PeerInfo, ProcedureHandler, RealmConfig, RealmRuntime, RealmStats,
    Registration, SharedRuntime, Strategy, Subscription, TopicPeers,
};

use crate::Error;

/// A running weft node. Cheap to share behind an `Arc`; [`shutdown`](Node::shutdown) stops it.
#[derive(Debug)]
pub struct Node {
    inner: NodeHandle,
}

/// Configures a [`Node`].
///
/// ```no_run
/// # async fn demo() -> Result<(), weft::Error> {
/// let node = weft::Node::builder()
///     .listen("127.0.0.1:0")
///     .open_realm("dev")
///     .tag("region", "eu")
///     .start()
///     .await?;
/// let dev = node.realm("dev").expect("configured above");
/// dev.publish("orders.placed", &serde_json::json!({"id": 1})).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct NodeBuilder {
    key: Option<Keypair>,
    listen: Vec<String>,
    bootstrap: Vec<String>,
    realms: Vec<(String, Option<Did>)>,
    chains: Vec<(String, Chain)>,
    tags: Vec<(String, String)>,
    reconnect: Option<BackoffPolicy>,
    idle_timeout: Option<Duration>,
    liveness: Option<Duration>,
    subscriber_queue: Option<usize>,
    subscriber_queue_bytes: Option<usize>,
    peer_queue: Option<usize>,
    congestion: Option<Congestion>,
    connect: Option<String>,
    interface: Option<String>,
    mdns: bool,
    relay: bool,
    clock_leeway: Option<Duration>,
    revocations: Vec<weft_ucan::Revocation>,
    revocations_file: Option<std::path::PathBuf>,
    limits: Option<Limits>,
    shared: Option<SharedRuntime>,
}

impl NodeBuilder {
    /// The node's key (its DID and PeerId). Default: a fresh key.
    pub fn key(mut self, key: Keypair) -> Self {
        self.key = Some(key);
        self
    }

    /// Listens on a multiaddr or `IP:PORT` (QUIC). Default: `127.0.0.1:0`.
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen.push(addr.into());
        self
    }

    /// Listens on, and dials from, only the addresses of network interface `name` (a WireGuard
    /// `wg0`, say). Listen addresses with an unspecified IP (`0.0.0.0:4001`) stand for each of
    /// the interface's addresses of that family; without any, the node listens on all of them
    /// at a free port. The node refuses to start if the interface is missing or has no address,
    /// or a listen address is not one of its own.
    pub fn interface(mut self, name: impl Into<String>) -> Self {
        self.interface = Some(name.into());
        self
    }

    /// Finds peers on the local network by multicast DNS, so nodes of one LAN form a mesh
    /// without a bootstrap address. Off by default: anyone on the LAN hears the node's
    /// addresses, and can answer with peers of their own (a few are taken at a time).
    pub fn mdns(mut self, on: bool) -> Self {
        self.mdns = on;
        self
    }

    /// Lends relayed circuits to nodes that cannot be reached directly (behind NATs), within
    /// documented bounds (`weft_net::RELAY_CIRCUITS` and the constants beside it). Off by
    /// default: a relay carries other nodes' traffic. Every node, relay or not, finds out
    /// whether it can be reached (AutoNAT), reserves a slot on relays it knows when it cannot,
    /// and turns relayed connections into direct ones by hole punching where the NATs allow.
    pub fn relay(mut self, on: bool) -> Self {
        self.relay = on;
        self
    }

    /// Dials this peer at start to join the mesh (multiaddr or `IP:PORT`).
    pub fn bootstrap(mut self, addr: impl Into<String>) -> Self {
        self.bootstrap.push(addr.into());
        self
    }

    /// Attaches to the node at `addr` as its client, the way a NATS client attaches to its
    /// server: for short-lived processes and applications that are not mesh nodes themselves.
    ///
    /// A client listens nowhere, provides no DHT records and is never dialed back, so coming and
    /// going leaves nothing behind. Its access node routes for it: the client's publications
    /// reach every matching subscriber of the realm, its subscriptions receive the realm's
    /// publications, its calls reach any provider the access node knows, and its procedures
    /// are offered to the realm by the access node. Members check the access node's authority
    /// for what it relays, and the access node checks the client's. Events relayed to a client
    /// name the access node as their publisher.
    pub fn connect(mut self, addr: impl Into<String>) -> Self {
        self.connect = Some(addr.into());
        self
    }

    /// How far clocks may disagree (default 60 s): a token holds this long past its `exp`. A
    /// peer's subscription, advertisement or membership ends once the chain it rests on has
    /// expired by more than this, or is revoked, and the peer is told.
    pub fn clock_leeway(mut self, leeway: Duration) -> Self {
        self.clock_leeway = Some(leeway);
        self
    }

    /// Applies these revocation records from the start (see [`Node::apply_revocation`]); a
    /// record that does not verify stops the node from starting.
    pub fn revocations(mut self, records: impl IntoIterator<Item = weft_ucan::Revocation>) -> Self {
        self.revocations.extend(records);
        self
    }

    /// Appends every revocation record this node learns afterwards (from its members, or
    /// [`Node::apply_revocation`]) to `file`, one JSON record per line: read it back with
    /// [`revocations`](Self::revocations) at the next start.
    pub fn revocations_file(mut self, file: impl Into<std::path::PathBuf>) -> Self {
        self.revocations_file = Some(file.into());
        self
    }

    /// Joins the realm `name` owned by `owner`.
    pub fn realm(mut self, name: impl Into<String>, owner: Did) -> Self {
        self.realms.push((name.into(), Some(owner)));
        self
    }

    /// Joins the open realm `name`: no owner, no checks. Development only.
    pub fn open_realm(mut self, name: impl Into<String>) -> Self {
        self.realms.push((name.into(), None));
        self
    }

    /// Acts under `chain` in the realm `name` (repeatable: one chain per capability is common).
    pub fn ucan(mut self, realm: impl Into<String>, chain: Chain) -> Self {
        self.chains.push((realm.into(), chain));
        self
    }

    /// A label shown to peers (`region=eu`).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// How lost peers are redialed.
    pub fn reconnect(mut self, policy: BackoffPolicy) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// How long an idle connection stays open.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// How fast a silent (crashed, partitioned) peer is declared gone. Default: 10 s.
    pub fn liveness(mut self, timeout: Duration) -> Self {
        self.liveness = Some(timeout);
        self
    }

    /// Events buffered per subscription before new ones are dropped (and counted). Default 4096.
    pub fn subscriber_queue(mut self, events: usize) -> Self {
        self.subscriber_queue = Some(events);
        self
    }

    /// Bytes (payloads and topics, plus about 100 bytes an event) buffered per subscription
    /// before new events are dropped (and counted). Default 16 MiB.
    pub fn subscriber_queue_bytes(mut self, bytes: usize) -> Self {
        self.subscriber_queue_bytes = Some(bytes);
        self
    }

    /// Frames (publications, calls, replies) queued per peer before new ones are dropped (and
    /// counted). Default 16384.
    pub fn peer_queue(mut self, frames: usize) -> Self {
        self.peer_queue = Some(frames);
        self
    }

    /// What publishing does when a peer cannot keep up: drop and count (the default), or slow
    /// the publisher down ([`Congestion::Block`]).
    pub fn congestion(mut self, congestion: Congestion) -> Self {
        self.congestion = Some(congestion);
        self
    }

    /// Bounds on what peers can make the node hold or do (connections, silent sessions, …).
    /// Default: [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Runs the node on threads shared with other nodes of this process rather than its own
    /// (see [`SharedRuntime`]: for nodes that live as long as it does, such as a benchmark's).
    pub fn shared(mut self, runtime: &SharedRuntime) -> Self {
        self.shared = Some(runtime.clone());
        self
    }

    /// Starts the node; returns once it listens.
    pub async fn start(self) -> Result<Node, Error> {
        let key = match self.key {
            Some(key) => key,
            None => Keypair::generate().map_err(|e| Error::Config(e.to_string()))?,
        };
        let mut net = NetConfig::loopback(key);
        if let Some(addr) = &self.connect {
            if !self.listen.is_empty() || !self.bootstrap.is_empty() {
                return Err(Error::Config(
                    "a client (connect) neither listens nor bootstraps: it attaches to one node"
                        .into(),
                ));
            }
            net.client = true;
            net.listen = Vec::new();
            net.bootstrap = vec![parse_addr(addr)?];
        } else if !self.listen.is_empty() {
            net.listen = self
                .listen
                .iter()
                .map(|a| parse_addr(a))
                .collect::<Result<_, _>>()?;
        } else if self.interface.is_some() {
            net.listen = ["0.0.0.0:0", "[::]:0"]
                .into_iter()
                .map(parse_addr)
                .collect::<Result<_, _>>()?;
        }
        if net.client && (self.interface.is_some() || self.mdns) {
            return Err(Error::Config(
                "a client (connect) attaches to one node: it takes no interface and no mDNS".into(),
            ));
        }
        if net.client && self.relay {
            return Err(Error::Config(
                "a client (connect) relays nothing: it attaches to one node".into(),
            ));
        }
        net.interface = self.interface;
        net.mdns = self.mdns;
        net.relay = self.relay;
        if !net.client {
            net.bootstrap = self
                .bootstrap
                .iter()
                .map(|a| parse_addr(a))
                .collect::<Result<_, _>>()?;
        }
        if let Some(idle) = self.idle_timeout {
            net.idle_timeout = idle;
        }
        if let Some(liveness) = self.liveness {
            net.liveness = liveness;
        }
        let mut config = NodeConfig::new(net);
        for (name, owner) in self.realms {
            let name = RealmName::new(&name)?;
            let realm = match owner {
                Some(owner) => Realm::owned(name, owner),
                None => Realm::open(name),
            };
            config.realms.push(RealmConfig {
                realm,
                chains: Vec::new(),
            });
        }
        for (name, chain) in self.chains {
            let realm = config
                .realms
                .iter_mut()
                .find(|r| r.realm.name().as_str() == name)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "a UCAN is given for realm {name:?}, which is not configured"
                    ))
                })?;
            realm.chains.push(chain);
        }
        config.tags = self.tags;
        if let Some(events) = self.subscriber_queue {
            config.subscriber_queue = events;
        }
        if let Some(bytes) = self.subscriber_queue_bytes {
            config.subscriber_queue_bytes = bytes;
        }
        if let Some(frames) = self.peer_queue {
            config.peer_queue = frames;
        }
        if let Some(congestion) = self.congestion {
            config.congestion = congestion;
        }
        if let Some(policy) = self.reconnect {
            config.reconnect = policy;
        }
        if let Some(leeway) = self.clock_leeway {
            config.clock_leeway = leeway;
        }
        if let Some(limits) = self.limits {
            config.limits = limits;
        }
        config.revocations = self.revocations;
        config.revocations_file = self.revocations_file;
        config.shared = self.shared;
        Ok(Node {
            inner: NodeHandle::start(config).await?,
        })
    }
}

impl Node {
    /// A builder with defaults: a fresh key, `127.0.0.1:0`, no realms.
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// This node's DID.
    pub fn did(&self) -> Did {
        self.inner.did()
    }

    /// Where this node listens, ready to give to others as `--bootstrap`.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        self.inner.listen_addrs()
    }

    /// Every realm this node was configured with, in configuration order.
    pub fn realms(&self) -> Vec<RealmHandle> {
        self.inner
            .realms()
            .iter()
            .map(|inner| RealmHandle {
                inner: inner.clone(),
            })
            .collect()
    }

    /// Every address the node listens on now (a `0.0.0.0` listener has one per interface, some
    /// of which may appear after start); [`listen_addrs`](Self::listen_addrs) is the first of
    /// each listener, as known at start.
    pub async fn current_listen_addrs(&self) -> Vec<Multiaddr> {
        self.inner.current_listen_addrs().await
    }

    /// Every address the node listens on, as it changes: wait on its `changed()` to learn of
    /// an interface's address that a `0.0.0.0` listener found after start, or of one that went
    /// away.
    pub fn watch_listen_addrs(&self) -> ListenAddrWatch {
        self.inner.watch_listen_addrs()
    }

    /// How long past its `exp` a token still holds here (the node's clock leeway).
    pub fn clock_leeway(&self) -> Duration {
        Duration::from_secs(self.inner.clock_leeway())
    }

    /// Is the node still running (not shut down or aborted)?
    pub fn is_running(&self) -> bool {
        self.inner.is_running()
    }

    /// Whether this node forwards its publications through the realms' members now: a session
    /// was refused or released for room, on this node or by a peer, lately (two minutes at
    /// first, longer when scarcity keeps coming back), so its own sessions may not reach every
    /// subscriber.
    pub fn forwarding(&self) -> bool {
        self.inner.forwarding()
    }

    /// The DHT as this node sees it: routing table size, provided keys, query counts.
    pub async fn dht_stats(&self) -> DhtStats {
        self.inner.dht_stats().await
    }

    /// The nodes the DHT names as providers of `procedure` in `realm`, found with one Kademlia
    /// lookup that dials none of them, with the addresses this node knows for each.
    pub async fn dht_lookup(
        &self,
        realm: &str,
        procedure: &str,
    ) -> Result<Vec<DhtProvider>, Error> {
        let procedure = Name::new(procedure)?;
        match self.inner.dht_lookup(realm, &procedure).await {
            Some(found) => Ok(found?),
            None => Err(Error::Config(format!("no realm {realm} on this node"))),
        }
    }

    /// Whether this node can be reached from outside its network (AutoNAT's tests), the
    /// relays it holds a slot on, and whether it reaches each peer directly or through a relay.
    pub async fn nat_status(&self) -> Result<NatReport, Error> {
        Ok(self.inner.nat_status().await?)
    }

    /// Asks the node at `addr` (`HOST:PORT` or a multiaddr) what [`Node::nat_status`] says
    /// there.
    pub async fn ask_nat(&self, addr: &str) -> Result<NatReport, Error> {
        let addr = parse_addr(addr)?;
        Ok(self.inner.ask_nat(addr).await?)
    }

    /// Asks the node at `addr` (`HOST:PORT` or a multiaddr) for its DHT's figures: what
    /// [`Node::dht_stats`] says there.
    pub async fn ask_dht_stats(&self, addr: &str) -> Result<DhtFigures, Error> {
        let addr = parse_addr(addr)?;
        Ok(self.inner.ask_dht_stats(addr).await?)
    }

    /// Asks the node at `addr` to look up the providers of `procedure` in `realm`
    /// (`NAME` for an open realm, `NAME=OWNER` for an owned one): what [`Node::dht_lookup`]
    /// finds there. The node need not host the realm.
    pub async fn ask_dht_lookup(
        &self,
        addr: &str,
        realm: &str,
        procedure: &str,
    ) -> Result<Vec<DhtProvider>, Error> {
        let addr = parse_addr(addr)?;
        let realm = match realm.split_once('=') {
            Some((name, owner)) => Realm::owned(
                RealmName::new(name)?,
                Did::parse(owner).map_err(|e| Error::Config(format!("realm owner: {e}")))?,
            ),
            None => Realm::open(RealmName::new(realm)?),
        };
        let procedure = Name::new(procedure)?;
        Ok(self.inner.ask_dht_lookup(addr, &realm, &procedure).await?)
    }

    /// The nodes the DHT names as publishers and subscribers of `topic`'s buckets in `realm`,
    /// found without dialing any of them: who a publication to `topic` would look for.
    pub async fn dht_topic(&self, realm: &str, topic: &str) -> Result<TopicPeers, Error> {
        let topic = Name::new(topic)?;
        match self.inner.dht_topic(realm, &topic).await {
            Some(found) => Ok(found?),
            None => Err(Error::Config(format!("no realm {realm} on this node"))),
        }
    }

    /// A realm this node was configured with.
    pub fn realm(&self, name: &str) -> Option<RealmHandle> {
        self.inner.realm(name).map(|inner| RealmHandle { inner })
    }

    /// Peer arrivals, departures and refusals: the first call sees every event since the node
    /// started, later calls see events from then on.
    pub fn peer_events(&self) -> PeerEvents {
        self.inner.peer_events()
    }

    /// Revokes a token by CID on this node: every chain through it stops authorizing anything
    /// here (revocation is per node; revoke on every node that must refuse it).
    pub fn revoke(&self, cid: weft_ucan::Cid) {
        self.inner.revoke(cid);
    }

    /// Applies a signed revocation record (`weft ucan revoke`, UCAN 0.10) on this node: every
    /// chain in which the revoked token sits below (or is) a token the record's issuer issued
    /// stops authorizing anything here, and standing grants resting on one end within a second.
    /// The record travels on to every member of this node's realms, which apply it and pass it
    /// on. A record that does not verify is refused; one whose issuer is in no chain revokes
    /// nothing. `true` when the record was new here.
    pub fn apply_revocation(&self, record: &weft_ucan::Revocation) -> Result<bool, Error> {
        self.inner
            .apply_revocation(record)
            .map_err(Error::Revocation)
    }

    /// Peers connected now.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.inner.peers().await
    }

    /// Says goodbye to every peer, flushes, and stops the node's threads.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await;
    }

    /// Stops at once, as a crash would: no goodbye, nothing flushed; peers will try to reconnect.
    pub async fn abort(&self) {
        self.inner.abort().await;
    }
}

/// How a call is made.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// How long to wait for the reply (also the provider's deadline). Default 5 s.
    pub timeout: Duration,
    /// How to pick among providers. Default round robin.
    pub strategy: Strategy,
    /// A UCAN chain to call under, for this call only and instead of the node's own chains (sent
    /// with the call; the provider checks it).
    pub chain: Option<Chain>,
}

impl Default for CallOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            strategy: Strategy::RoundRobin,
            chain: None,
        }
    }
}

impl CallOptions {
    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Calls under `chain` alone (for this call only).
    pub fn ucan(mut self, chain: Chain) -> Self {
        self.chain = Some(chain);
        self
    }
}

/// A realm on a running node.
#[derive(Debug, Clone)]
pub struct RealmHandle {
    inner: RealmRuntime,
}

impl RealmHandle {
    /// The realm (name and owner).
    pub fn realm(&self) -> &Realm {
        self.inner.realm()
    }

    /// Publishes `value` as JSON to `topic`.
    ///
    /// The publication is queued when this is called, in call order; the future resolves once it
    /// is authorized and handed to subscribers and peers. Several may be kept in flight.
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        value: &T,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static + use<T> {
        let queued = serde_json::to_vec(value)
            .map_err(Error::from)
            .map(|payload| self.publish_bytes(topic, payload));
        async move { queued?.await }
    }

    /// Publishes raw bytes to `topic`; queued when called, like [`publish`](Self::publish).
    pub fn publish_bytes<P: Into<Bytes>>(
        &self,
        topic: &str,
        payload: P,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static + use<P> {
        self.publish_bytes_with_ucan(topic, payload, None)
    }

    /// Publishes raw bytes to `topic` under `chain` alone, instead of this node's own chains: how
    /// a gateway publishes for a client that delegated to this node (the leaf's audience). Every
    /// receiver checks the chain, as for any publication.
    pub fn publish_bytes_with_ucan<P: Into<Bytes>>(
        &self,
        topic: &str,
        payload: P,
        chain: Option<Chain>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static + use<P> {
        // Publishing mostly repeats a topic: the cached parse spares an allocation each time.
        let queued =
            Name::new_cached(topic).map(|topic| self.inner.publish(&topic, payload.into(), chain));
        async move { Ok(queued?.await?) }
    }

    /// Subscribes to `pattern` (`orders.*`, `orders.**`, …). Dropping the subscription ends it.
    pub async fn subscribe(&self, pattern: &str) -> Result<Subscription, Error> {
        self.subscribe_with_ucan(pattern, None).await
    }

    /// Subscribes under `chain` alone (see [`publish_bytes_with_ucan`](Self::publish_bytes_with_ucan));
    /// every publisher checks the chain before routing to this subscription.
    pub async fn subscribe_with_ucan(
        &self,
        pattern: &str,
        chain: Option<Chain>,
    ) -> Result<Subscription, Error> {
        let pattern = Pattern::new(pattern)?;
        Ok(self.inner.subscribe(&pattern, chain).await?)
    }

    /// May this node, acting under `chain` alone, take `action` here? Decided exactly as its own
    /// routers decide (same cache, same revocations): how a gateway vets a client's delegation
    /// before acting under it with [`publish_bytes_with_ucan`](Self::publish_bytes_with_ucan),
    /// [`subscribe_with_ucan`](Self::subscribe_with_ucan) or [`CallOptions::ucan`].
    pub fn authorize(
        &self,
        chain: &Chain,
        action: weft_auth::Action<'_>,
    ) -> Result<weft_auth::Grant, weft_auth::AuthError> {
        self.inner.authorize(chain, action)
    }

    /// How long past its `exp` a token still holds here (the node's clock leeway).
    pub fn clock_leeway(&self) -> Duration {
        Duration::from_secs(self.inner.clock_leeway())
    }

    /// Could a revocation record by `issuer` revoke anything here: is it the realm's owner, or
    /// the issuer of a token in a chain this node has verified?
    pub fn may_revoke(&self, issuer: &Did) -> bool {
        self.inner.may_revoke(issuer)
    }

    /// [`authorize`](Self::authorize) for a source with a budget of cold verifications (a
    /// gateway's clients): a chain not yet verified is checked only while `budget` allows, and
    /// refused with `limit` otherwise.
    pub fn authorize_within(
        &self,
        chain: &Chain,
        action: weft_auth::Action<'_>,
        budget: &weft_auth::VerifyBudget,
    ) -> Result<weft_auth::Grant, weft_auth::AuthError> {
        self.inner.authorize_within(chain, action, budget)
    }

    /// The patterns this node subscribes to in the realm, one per live subscription.
    pub async fn local_subscriptions(&self) -> Vec<Pattern> {
        self.inner.local_subscriptions().await
    }

    /// The procedures this node provides in the realm.
    pub async fn local_procedures(&self) -> Vec<Name> {
        self.inner.local_procedures().await
    }

    /// Resolves once some peer subscribes to a pattern matching `topic` (and was authorized to):
    /// from then on, publications to `topic` reach it. Wrap it in a timeout to bound the wait.
    pub async fn wait_for_subscriber(&self, topic: &str) -> Result<(), Error> {
        let topic = Name::new(topic)?;
        if self.inner.wait_for_subscriber(&topic).await {
            Ok(())
        } else {
            Err(Error::Publish(weft_runtime::PublishError::Stopped))
        }
    }

    /// Provides `procedure`: each call runs `handler` with the call's context and its arguments
    /// as JSON, and the caller receives the JSON it returns (or its [`HandlerError`]). Handlers run
    /// concurrently, each dropped when its caller's deadline passes. Dropping the returned
    /// registration withdraws the procedure.
    pub async fn advertise<F, Fut>(
        &self,
        procedure: &str,
        handler: F,
    ) -> Result<Registration, Error>
    where
        F: Fn(CallContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let raw: ProcedureHandler = Arc::new(move |context, payload: Bytes| {
            let handler = handler.clone();
            Box::pin(async move {
                let args: Value = serde_json::from_slice(&payload).map_err(|e| {
                    HandlerError::new("bad_arguments", format!("arguments are not JSON: {e}"))
                })?;
                let result = handler(context, args).await?;
                serde_json::to_vec(&result)
                    .map(Bytes::from)
                    .map_err(|e| HandlerError::new("bad_result", e.to_string()))
            })
        });
        self.advertise_bytes(procedure, raw).await
    }

    /// Provides `procedure` with a handler over raw bytes.
    pub async fn advertise_bytes(
        &self,
        procedure: &str,
        handler: ProcedureHandler,
    ) -> Result<Registration, Error> {
        let procedure = Name::new(procedure)?;
        Ok(self.inner.advertise(&procedure, handler).await?)
    }

    /// Calls `procedure` with `args` as JSON and decodes the JSON result; default options
    /// (5 s timeout, round robin).
    pub async fn call<T: Serialize + ?Sized>(
        &self,
        procedure: &str,
        args: &T,
    ) -> Result<Value, Error> {
        self.call_with(procedure, args, CallOptions::default())
            .await
    }

    /// Calls `procedure` with options.
    pub async fn call_with<T: Serialize + ?Sized>(
        &self,
        procedure: &str,
        args: &T,
        options: CallOptions,
    ) -> Result<Value, Error> {
        let payload = serde_json::to_vec(args)?;
        let result = self.call_bytes(procedure, payload, options).await?;
        Ok(serde_json::from_slice(&result)?)
    }

    /// Calls `procedure` with raw bytes.
    pub async fn call_bytes(
        &self,
        procedure: &str,
        payload: impl Into<Bytes>,
        options: CallOptions,
    ) -> Result<Bytes, Error> {
        let procedure = Name::new(procedure)?;
        Ok(self
            .inner
            .call(
                &procedure,
                payload.into(),
                options.timeout,
                options.strategy,
                options.chain,
            )
            .await?)
    }

    /// Resolves once at least `count` providers of `procedure` are known to this node (itself
    /// included): from then on a call can be routed to that many.
    pub async fn wait_for_providers(&self, procedure: &str, count: usize) -> Result<(), Error> {
        let procedure = Name::new(procedure)?;
        if self.inner.wait_for_providers(&procedure, count).await {
            Ok(())
        } else {
            Err(Error::Call(weft_runtime::CallError::Unavailable(
                "the node has stopped".into(),
            )))
        }
    }

    /// Resolves once at least `count` peers are members of this realm with this node.
    pub async fn wait_for_members(&self, count: usize) -> Result<(), Error> {
        if self.inner.wait_for_members(count).await {
            Ok(())
        } else {
            Err(Error::Publish(weft_runtime::PublishError::Stopped))
        }
    }

    /// This realm's counters on this node (published, delivered, dropped, denied, …).
    pub async fn stats(&self) -> RealmStats {
        self.inner.stats().await
    }
}
