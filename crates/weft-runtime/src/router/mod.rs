//! The `Router` actor: every publication of a realm flows through it.
//!
//! Inbound:
//! - `Publish`es from the application, taken from the realm's lane on each `Drain`:
//!   authorized against this node's own chains, numbered, then delivered to local subscriptions
//!   and sent once to each peer with a matching interest.
//! - [`RemotePublish`] from a `PeerConnection`: authorized (`msg/publish` of the sender, with the
//!   chains it presented) **before** delivery, de-duplicated and ordered per publisher, then
//!   delivered to local subscriptions, and relayed as `core::relay` says: a member's
//!   publications to this node's clients, a client's to every peer that asked.
//! - [`RemoteForward`] from a `PeerConnection`: a batch signed by its publisher, passed on by
//!   members where sessions are scarce (`forwarding.rs`, `core::forward`); [`RemoteBatchIds`]:
//!   a member's offer of batches, or its want of those offered (`repairs.rs`, `core::repair`).
//!
//! A node that is itself a client sends every publication to its access node, which routes it.
//! - [`RemoteInterest`] from a `PeerConnection`: a peer's subscription, authorized
//!   (`msg/subscribe`) before it is routed to.
//! - [`MemberJoined`] / [`MemberLeft`] from the `Realm` actor; [`AddLocal`] / [`RemoveLocal`] for
//!   the application's subscriptions; [`Stats`].
//!
//! Outbound: frames to peers' outboxes, and events to subscription queues a batch per message
//! (`local.rs`), both bounded; what does not fit is dropped and counted in [`RealmStats`].
//!
//! One router per realm, started on one of the node's arbiters; it stops with the actor system.

mod forwarding;
mod repairs;

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::debug;
use weft_auth::Action;
use weft_names::{Name, Pattern};
use weft_net::PeerId;
use weft_wire::{DEFAULT_MAX_FRAME, Frame, Interest};

use crate::core::authority::authorize_member;
use crate::core::caps::{Verdict, count_refusal};
use crate::core::chains::ChainCache;
use crate::core::delegation::LastChoice;
use crate::core::departure::Departure;
use crate::core::memo::PublishMemo;
use crate::core::parked::Parked;
use crate::core::pubsub::{Route, Routing, Target, Unrouted};
use crate::core::relay::{self, Origin};
use crate::core::resolve::{Publishing, Record, Step};
use crate::core::roster::Credentials as _;
use crate::core::seat::Seat;
use crate::core::slots::Slot;
use crate::core::standing::Standing;
use crate::dht::Dht;
use crate::lane::{Drain, Publish, Published};
use crate::local::LocalSink;
use crate::members::Member;
use crate::telemetry::RealmCounters;
use crate::waiters::Waiters;
use crate::{Congestion, Event, Interests, PublishError, RealmStats, unix_now};

use forwarding::Forwarding;
pub use forwarding::RemoteForward;
pub use repairs::RemoteBatchIds;

/// Publications taken from the lane per `Drain`: a flood from the application is handled in
/// stretches, with the router's other messages in between.
const DRAIN_BATCH: usize = 1024;
/// An encoding buffer larger than this (a large payload) is not kept for the next publication.
const KEEP_ENCODED: usize = 64 * 1024;

/// Publications received from a peer, in the order it sent them (one read's worth).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemotePublish {
    /// The sender, as authenticated by the transport.
    pub peer: PeerId,
    /// The frames.
    pub publishes: Vec<weft_wire::Publish>,
    /// Counts the batch against its session's limit until the router is done with it.
    pub ticket: crate::sender::Ticket,
}

/// A peer's subscription changed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteInterest {
    /// The peer.
    pub peer: PeerId,
    /// What changed.
    pub interest: Interest,
    /// Counts the message against its session's limit until it is handled.
    pub ticket: crate::sender::Ticket,
}

/// A peer was admitted to the realm.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct MemberJoined {
    /// The member.
    pub(crate) member: Arc<crate::members::Admitted>,
}

/// A peer left the realm (disconnected).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct MemberLeft {
    /// The peer.
    pub peer: PeerId,
    /// How: whether it may come back, and whether its records here still hold.
    pub how: Departure,
}

/// Publications this realm queued for a member were never written: its session ended first.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LostToSession {
    /// How many.
    pub frames: u64,
}

/// The application subscribed (already authorized by the realm actor).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AddLocal {
    /// Subscription id.
    pub id: u32,
    /// Which topics.
    pub pattern: Pattern,
    /// Where events go.
    pub sink: LocalSink,
}

/// The application unsubscribed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoveLocal {
    /// Subscription id.
    pub id: u32,
}

/// The realm is past the mesh size here: publications are announced in the DHT, and their
/// subscribers looked up, from now on.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct ResolveThroughDht;

/// Current counters.
#[derive(Debug, Message)]
#[rtype(result = "RealmStats")]
pub struct Stats;

/// Resolves once at least `count` peers are members of the realm.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AwaitMembers {
    /// How many.
    pub count: usize,
    /// Fires when reached (dropped if the router stops).
    pub reply: tokio::sync::oneshot::Sender<()>,
}

/// Resolves once some peer has an authorized subscription matching `topic`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AwaitSubscriber {
    /// The topic a publisher is about to use.
    pub topic: Name,
    /// Fires when a matching remote subscription exists (dropped if the router stops).
    pub reply: tokio::sync::oneshot::Sender<()>,
}

/// The realm's router.
pub struct Router {
    /// The realm, and this node's identity and authority in it.
    seat: Arc<Seat>,
    max_payload: usize,
    congestion: Congestion,
    /// Where publications go: members, subscriptions, sequences, absent members.
    routing: Routing<PeerId, Member>,
    locals: HashMap<u32, LocalSink>,
    /// Local subscriptions with events gathered and not yet flushed.
    gathering: Vec<u32>,
    /// The last publication's encoding buffer, reused.
    encoded: Vec<u8>,
    /// The last publication's targets, the vector reused.
    targets: Vec<Target>,
    /// A `Drain`'s answers, held until its events are flushed; the vector reused.
    answers: Vec<(oneshot::Sender<Published>, Published)>,
    /// The last topic this node was allowed to publish to under its own chains, and when.
    own_memo: PublishMemo,
    /// The clock in seconds, read once per `Drain` rather than on every publication: tokens
    /// are checked to the second with a 60 s leeway, and a stretch takes microseconds.
    now: u64,
    counters: RealmCounters,
    /// Chains carried by peers' frames, parsed.
    chain_cache: ChainCache,
    /// The chain of a client's delegation its last publication was relayed under.
    delegated: LastChoice,
    /// `wait_for_subscriber` callers, by topic.
    waiting_subscriber: Waiters<Name>,
    /// `wait_for_members` callers, by count.
    waiting_members: Waiters<usize>,
    /// The DHT records of the buckets this node publishes to.
    publishing: Publishing,
    /// Publications whose sending to peers waits for their buckets' first lookups.
    parked: Parked<Pending, PeerId>,
    /// A timer is set to let waiting publications go by then.
    release_at: Option<std::time::Instant>,
    /// Where they are announced and looked up (none for a client: its access node does it).
    dht: Option<Addr<Dht>>,
    /// Subscriptions one peer may hold.
    max_subscriptions: usize,
    /// Peers' subscriptions, by slot and id, with the pattern and the chain sent with each: they
    /// end when the chain they rest on does.
    subscriptions: Standing<(Slot, u32), (Pattern, Option<weft_wire::WireChain>)>,
    /// Publications passed between members where sessions are scarce (`core::forward`).
    forwarding: Forwarding,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("realm", &self.seat.realm)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Router {
    /// The router of the realm `seat` names.
    pub(crate) fn new(seat: Arc<Seat>, max_payload: usize) -> Self {
        let counters = RealmCounters::new(seat.realm.name());
        let realm_id = weft_wire::forward_realm_id(seat.realm.name(), seat.realm.owner());
        Self {
            forwarding: Forwarding::new(realm_id),
            seat,
            max_payload,
            congestion: Congestion::default(),
            routing: Routing::new(false),
            locals: HashMap::new(),
            gathering: Vec::new(),
            encoded: Vec::new(),
            targets: Vec::new(),
            answers: Vec::new(),
            own_memo: PublishMemo::default(),
            now: unix_now(),
            counters,
            chain_cache: ChainCache::default(),
            delegated: LastChoice::default(),
            waiting_subscriber: Waiters::default(),
            waiting_members: Waiters::default(),
            publishing: Publishing::default(),
            parked: Parked::default(),
            release_at: None,
            dht: None,
            subscriptions: Standing::default(),
            max_subscriptions: crate::Limits::default().max_subscriptions_per_peer,
        }
    }

    /// Subscriptions one peer may hold here.
    pub fn max_subscriptions(mut self, max: usize) -> Self {
        self.max_subscriptions = max;
        self
    }

    /// Signs this node's publications with `key` for the overlay, into which they go while
    /// `scarcity` says sessions are scarce (a client has no overlay: its access node forwards).
    pub(crate) fn forwarding(
        mut self,
        key: Arc<weft_identity::Keypair>,
        scarcity: Arc<crate::core::forward::Scarcity>,
        run: u64,
    ) -> Self {
        self.forwarding = self.forwarding.with(key, scarcity, run);
        self
    }

    /// Marks this node as a client: its access node (its one member) is sent every publication.
    pub fn client(mut self, client: bool) -> Self {
        self.routing = Routing::new(client);
        self
    }

    /// Announces and looks up this node's publications through `dht` (a client has none).
    pub(crate) fn dht(mut self, dht: Option<Addr<Dht>>) -> Self {
        self.dht = dht;
        self
    }

    /// What publishing does when a peer's queue fills up.
    pub fn congestion(mut self, congestion: Congestion) -> Self {
        self.congestion = congestion;
        self
    }

    /// Adds `event` to the batch local subscription `id` receives at the next
    /// [`flush_locals`](Self::flush_locals).
    fn deliver_local(&mut self, id: u32, event: Event) {
        if let Some(sink) = self.locals.get_mut(&id)
            && sink.push(event)
        {
            self.gathering.push(id);
        }
    }

    /// Hands every local subscription the events gathered for it since the last flush. Called at
    /// the end of each message that delivers, so nothing waits for a later one.
    fn flush_locals(&mut self) {
        for id in self.gathering.drain(..) {
            if let Some(sink) = self.locals.get_mut(&id) {
                let flushed = sink.flush();
                self.counters.delivered(flushed.delivered);
                self.counters.dropped_slow_subscriber(flushed.dropped);
            }
        }
    }
}

/// Does some peer hold a subscription matching `topic`?
fn has_remote_subscriber(interests: &Interests<Target>, topic: &Name) -> bool {
    interests
        .targets(topic)
        .iter()
        .any(|t| matches!(t, Target::Peer(_)))
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Publications arrive in bursts from several peers; a deep mailbox absorbs them.
        ctx.set_mailbox_capacity(16 * 1024);
        ctx.run_interval(crate::core::standing::SWEEP, |act, ctx| act.sweep(ctx));
        ctx.run_interval(crate::core::repair::ROUND, |act, _| act.offer_repairs());
    }
}

/// A publication waiting to be sent to peers (`core::parked`).
#[derive(Debug)]
enum Pending {
    /// This node's own: numbered when sent, as a receiver takes a lower number than the last
    /// it had from this node for a duplicate.
    Own {
        topic: Name,
        payload: bytes::Bytes,
        chain: Option<weft_auth::Chain>,
    },
    /// One of its client's, relayed.
    Relayed {
        origin: Origin<PeerId>,
        publish: weft_wire::Publish,
    },
}

impl Router {
    /// Reads whether sessions are scarce now, and tells the publishing half whether its
    /// lookups are held back (its publications go into the overlay meanwhile, and a little
    /// longer: `forward::EASING`).
    fn refresh_forwarding(&mut self) {
        self.forwarding.refresh();
        self.publishing.overlay(self.forwarding.scarce, unix_now());
    }

    /// Makes the DHT requests the publications asked for. A lookup that publications wait for
    /// lets them go when it ends.
    fn resolve(&mut self, ctx: &mut Context<Self>) {
        while let Some(step) = self.publishing.poll() {
            let Some(dht) = &self.dht else { continue };
            match step {
                // Other lookups are not made while sessions are scarce (`Dht`,
                // `forward::dials_per_lookup`): looked up again at the bucket's next refresh.
                Step::LookUp(Record::Subscribers(bucket)) if self.parked.holding() => {
                    let record = Record::Subscribers(bucket);
                    let lookup = crate::dht::look_up(dht, &self.seat.realm, &record);
                    let Record::Subscribers(bucket) = record else {
                        continue;
                    };
                    ctx.spawn(lookup.into_actor(self).map(move |found, act, ctx| {
                        let found = found.unwrap_or_default();
                        act.parked
                            .looked_up(&bucket, found, std::time::Instant::now());
                        act.release(ctx);
                    }));
                }
                step => crate::dht::resolve(dht, &self.seat.realm, step),
            }
        }
        if self.parked.holding() {
            self.release(ctx);
        }
    }

    /// Sends the waiting publications that may go, and sets a timer for the next one.
    fn release(&mut self, ctx: &mut Context<Self>) {
        self.refresh_forwarding();
        let now = std::time::Instant::now();
        loop {
            let (members, interests) = (self.routing.members(), self.routing.interests());
            let ready = |found: &[PeerId], topic: &Name| {
                found.iter().all(|peer| members.by_peer(peer).is_some())
                    && has_remote_subscriber(interests, topic)
            };
            let Some(pending) = self.parked.next(now, ready) else {
                break;
            };
            self.send_pending(pending);
        }
        self.seal_forward();
        if let Some(deadline) = self.parked.deadline()
            && self.release_at.is_none_or(|at| deadline < at)
        {
            self.release_at = Some(deadline);
            ctx.run_later(deadline.saturating_duration_since(now), |act, ctx| {
                act.release_at = None;
                act.release(ctx);
            });
        }
    }

    /// Sends a publication that waited to the peers that want it now.
    fn send_pending(&mut self, pending: Pending) {
        let mut targets = std::mem::take(&mut self.targets);
        match pending {
            Pending::Own {
                topic,
                payload,
                chain,
            } => {
                self.routing.interests().targets_into(&topic, &mut targets);
                let seq = self.routing.take_seq();
                // Its sending already succeeded as far as its publisher knows: a full queue
                // drops and counts, as for any.
                let _ = self.send_own(&topic, &payload, chain.as_ref(), seq, &targets);
            }
            Pending::Relayed { origin, publish } => {
                self.routing
                    .interests()
                    .targets_into(&publish.topic, &mut targets);
                self.relay(&origin, &publish, &targets);
            }
        }
        targets.clear();
        self.targets = targets;
    }
}

impl Router {
    /// Ends the peers' subscriptions whose chain expired or was revoked: the routes go, the
    /// peer is told, and the end is counted.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        self.refresh_forwarding();
        self.routing.expire(std::time::Instant::now());
        self.publishing.tick(unix_now());
        self.resolve(ctx);
        let (members, authorizer, realm) = (
            self.routing.members(),
            &self.seat.authorizer,
            &self.seat.realm,
        );
        let cache = &mut self.chain_cache;
        let now = unix_now();
        let ended =
            self.subscriptions
                .sweep_under(authorizer, now, |(slot, _), (pattern, chain)| {
                    let member = members.get(*slot).ok_or_else(|| {
                        weft_auth::AuthError::Unauthorized("no longer a member".into())
                    })?;
                    let acting = member.record.acting().without_budget();
                    let action = Action::Subscribe(pattern);
                    authorize_member(
                        authorizer,
                        cache,
                        realm,
                        chain.as_ref(),
                        acting,
                        action,
                        now,
                    )
                });
        for ((slot, id), (pattern, _), e) in ended {
            self.routing.unsubscribe(slot, id);
            if let Some(member) = self.routing.members().get(slot) {
                let reason = format!("subscription {id} to {pattern} ended: {e}");
                debug!(peer = %member.did.short(), %reason, "standing grant ended");
                member.sender.send_denial(member.index, e.code(), reason);
            }
            crate::telemetry::grant_ended(self.seat.realm.name(), "subscription", e.code());
        }
    }
}

/// Takes every publication the application queued, in order, and answers each.
impl Handler<Drain> for Router {
    type Result = ();

    fn handle(&mut self, mut msg: Drain, ctx: &mut Context<Self>) {
        let Some(lane) = msg.take() else {
            return;
        };
        self.now = unix_now();
        self.refresh_forwarding();
        let (queued, more) = lane.take(DRAIN_BATCH);
        let mut answers = std::mem::take(&mut self.answers);
        for queued in queued {
            let published = self.publish(queued.publish);
            answers.push((queued.reply, published));
        }
        // A publication is answered once its local subscribers have it.
        self.flush_locals();
        for (reply, published) in answers.drain(..) {
            // The caller may have dropped its future: nobody to tell.
            let _ = reply.send(published);
        }
        self.answers = answers;
        self.seal_forward();
        self.resolve(ctx);
        if more {
            // Through the mailbox, behind what arrived meanwhile: peers' publications get their
            // turn, and the rest of the flood gets its own.
            ctx.address().do_send(Drain::again(lane));
        }
    }
}

impl Router {
    /// Authorizes, numbers and fans out a local publication.
    fn publish(&mut self, msg: Publish) -> Published {
        if msg.payload.len() > self.max_payload {
            return Err(PublishError::TooLarge {
                len: msg.payload.len(),
                max: self.max_payload,
            });
        }
        let now = self.now;
        // This node's own chains never change, so a decision for a topic holds for the rest of
        // the second unless something is revoked.
        let epoch = self.seat.authorizer.revocation_epoch();
        let (authorizer, realm, own_did) =
            (&self.seat.authorizer, &self.seat.realm, &self.seat.did);
        let chains = match &msg.chain {
            Some(chain) => std::slice::from_ref(chain),
            None => self.seat.chains.as_slice(),
        };
        let allowed = self
            .own_memo
            .check(&msg.topic, now, epoch, msg.chain.is_some(), || {
                let action = Action::Publish(&msg.topic);
                authorizer
                    .authorize_any(realm, chains, own_did, action, now)
                    .map(drop)
            });
        if let Err(e) = allowed {
            self.counters.denied();
            return Err(PublishError::Unauthorized(e));
        }
        self.counters.published();
        let fresh = self.publishing.publish(&msg.topic, now);
        let mut targets = std::mem::take(&mut self.targets);
        let (seq, route) = self.routing.route_local(&msg.topic, &mut targets);
        self.counters.dropped_peer_gone(route.missed);
        for target in &targets {
            if let Target::Local(id) = target {
                let event = Event {
                    topic: msg.topic.clone(),
                    payload: msg.payload.clone(),
                    publisher: self.seat.did,
                };
                self.deliver_local(*id, event);
            }
        }
        // While forwarding, the overlay reaches the subscribers a lookup would find: nothing
        // waits for one.
        let wait = !fresh.is_empty() && !self.forwarding.on;
        let sent = if !wait && !self.parked.holding() {
            self.send_own(&msg.topic, &msg.payload, msg.chain.as_ref(), seq, &targets)
        } else {
            let bytes = msg.payload.len();
            let pending = Pending::Own {
                topic: msg.topic.clone(),
                payload: msg.payload,
                chain: msg.chain,
            };
            let now = std::time::Instant::now();
            for overflow in self.parked.hold(&msg.topic, pending, bytes, fresh, now) {
                self.send_pending(overflow);
            }
            // Queued: as far as its publisher knows, sent (a full queue later drops and counts).
            Ok(Vec::new())
        };
        targets.clear();
        self.targets = targets;
        sent
    }

    /// Sends this node's publication numbered `seq` to the peers among `targets`, encoded once.
    fn send_own(
        &mut self,
        topic: &Name,
        payload: &bytes::Bytes,
        chain: Option<&weft_auth::Chain>,
        seq: u64,
        targets: &[Target],
    ) -> Published {
        if self.to_overlay(targets) {
            self.gather_forward(topic, payload, seq, chain);
        }
        // Encoded once, on the first peer that wants it, into a buffer kept for the next one.
        let mut encoded = std::mem::take(&mut self.encoded);
        encoded.clear();
        let mut backlog = Vec::new();
        for target in targets {
            let Target::Peer(slot) = target else {
                continue;
            };
            let Some(member) = self.routing.members().get(*slot) else {
                continue;
            };
            if encoded.is_empty() {
                let frame = Frame::Publish(weft_wire::Publish {
                    realm: self.seat.index,
                    topic: topic.clone(),
                    seq,
                    payload: payload.clone(),
                    chain: chain.map(crate::core::chains::wire_chain),
                });
                // Bounded by max_payload above, so only a misconfiguration fails here.
                weft_wire::encode(&frame, DEFAULT_MAX_FRAME, &mut encoded).map_err(|_| {
                    PublishError::TooLarge {
                        len: payload.len(),
                        max: DEFAULT_MAX_FRAME,
                    }
                })?;
            }
            let pushed = member.sender.send_publication(&encoded, self.seat.index);
            if !pushed.queued {
                self.counters.not_queued(pushed);
            }
            if self.congestion == Congestion::Block && pushed.congested {
                backlog.push(member.sender.clone());
            }
        }
        if encoded.capacity() <= KEEP_ENCODED {
            self.encoded = encoded;
        }
        Ok(backlog)
    }
}

/// Authorizes each of a peer's publications, then delivers it locally once and in order.
impl Handler<RemotePublish> for Router {
    type Result = ();

    fn handle(&mut self, msg: RemotePublish, ctx: &mut Context<Self>) {
        let Some((_, member)) = self.routing.members().by_peer(&msg.peer) else {
            debug!(peer = %msg.peer, "publications from a non-member dropped");
            return;
        };
        let publisher = member.record.clone();
        let did = publisher.did;
        let origin = match member.client {
            true => Origin::Client(msg.peer),
            false => Origin::Member,
        };
        self.refresh_forwarding();
        // A run of publications to one topic under the hello's chains is one decision: a batch
        // is one read's worth, microseconds apart, and the chains and topic are the same.
        let mut memo = PublishMemo::default();
        let now = unix_now();
        let mut targets = std::mem::take(&mut self.targets);
        let mut sequence = self.routing.begin_batch(&msg.peer, publisher.run);
        let mut accepted = false;
        let check = relay::checks_publisher(self.routing.client());
        for mut publish in msg.publishes {
            let topic = &publish.topic;
            let epoch = self.seat.authorizer.revocation_epoch();
            let (authorizer, cache, realm) = (
                &self.seat.authorizer,
                &mut self.chain_cache,
                &self.seat.realm,
            );
            let frame_chain = publish.chain.as_ref();
            let allowed = memo.check(topic, now, epoch, frame_chain.is_some(), || {
                if !check {
                    return Ok(());
                }
                let acting = publisher.acting();
                let action = Action::Publish(topic);
                authorize_member(authorizer, cache, realm, frame_chain, acting, action, now)
                    .map(drop)
            });
            if let Err(e) = allowed {
                self.counters.denied();
                debug!(peer = %did.short(), %topic, error = %e, "publication refused");
                continue;
            }
            let routed = self
                .routing
                .route_remote(&mut sequence, publish.seq, topic, &mut targets);
            if !self.count_routed(routed) {
                continue;
            }
            accepted = true;
            let mut relay_now = true;
            if let Origin::Client(_) = origin {
                // In the mesh for its client: the topic's subscribers are found as for its own,
                // and its publications wait for them as this node's own do.
                let fresh = self.publishing.publish(topic, now);
                let wait = !fresh.is_empty() && !self.forwarding.on;
                if wait || self.parked.holding() {
                    let pending = Pending::Relayed {
                        origin,
                        publish: publish.clone(),
                    };
                    let bytes = publish.payload.len();
                    let at = std::time::Instant::now();
                    let overflow = self.parked.hold(topic, pending, bytes, fresh, at);
                    relay_now = false;
                    for pending in overflow {
                        self.send_pending(pending);
                    }
                }
            }
            if relay_now {
                self.relay(&origin, &publish, &targets);
            }
            let mut locals = targets
                .drain(..)
                .filter_map(|target| match target {
                    Target::Local(id) => Some(id),
                    Target::Peer(_) => None,
                })
                .peekable();
            while let Some(id) = locals.next() {
                // The last subscriber takes the payload itself: cloning a freshly decoded
                // `Bytes` allocates its shared header.
                let payload = if locals.peek().is_some() {
                    publish.payload.clone()
                } else {
                    std::mem::take(&mut publish.payload)
                };
                let event = Event {
                    topic: topic.clone(),
                    payload,
                    publisher: did,
                };
                self.deliver_local(id, event);
            }
        }
        if accepted {
            // An authorized publication is what makes the session worth keeping (`core::budget`).
            publisher.sender.active.touch();
        }
        self.routing.end_batch(msg.peer, sequence);
        self.targets = targets;
        self.flush_locals();
        self.seal_forward();
        self.resolve(ctx);
    }
}

impl Router {
    /// Counts a peer's publication as received, with the deliveries absent members miss, or
    /// as why it goes nowhere. True if it is to be delivered.
    fn count_routed(&mut self, routed: Result<Route, Unrouted>) -> bool {
        match routed {
            Ok(route) => {
                self.counters.received();
                self.counters.dropped_peer_gone(route.missed);
                true
            }
            Err(unrouted) => {
                self.counters.unrouted(unrouted);
                false
            }
        }
    }

    /// Sends a peer's publication on to the peers among `targets` that [`relay::publish_to`]
    /// allows, numbered as this node's own: a peer sees one sequence from this node, whoever
    /// published. A client's goes under its delegation where that allows it, and the receiver
    /// checks the client's authority as delegated to this node (`core::delegation`); otherwise
    /// under this node's own chains, and the receiver checks this node may publish.
    fn relay(&mut self, origin: &Origin<PeerId>, publish: &weft_wire::Publish, targets: &[Target]) {
        let under = match origin {
            Origin::Client(client) => self.delegated_chain(client, &publish.topic),
            Origin::Member => None,
        };
        let mut encoded = std::mem::take(&mut self.encoded);
        encoded.clear();
        let mut seq = None;
        for target in targets {
            let Target::Peer(slot) = target else {
                continue;
            };
            if self.routing.relays_to(origin, *slot).is_none() {
                continue;
            }
            if encoded.is_empty() {
                let seq = *seq.get_or_insert_with(|| self.routing.take_seq());
                let frame = |chain| {
                    Frame::Publish(weft_wire::Publish {
                        realm: self.seat.index,
                        topic: publish.topic.clone(),
                        seq,
                        payload: publish.payload.clone(),
                        chain,
                    })
                };
                let delegated = frame(under.as_ref().map(|(_, wire)| wire.clone()));
                if weft_wire::encode(&delegated, DEFAULT_MAX_FRAME, &mut encoded).is_err() {
                    // A payload near the limit leaves no room for the chain: it goes under
                    // this node's own chains, as any publication arrived within the limit.
                    encoded.clear();
                    metrics::counter!("weft_delegations_unsent_total").increment(1);
                    if weft_wire::encode(&frame(None), DEFAULT_MAX_FRAME, &mut encoded).is_err() {
                        break;
                    }
                }
            }
            let Some(member) = self.routing.members().get(*slot) else {
                continue;
            };
            let pushed = member.sender.send_publication(&encoded, self.seat.index);
            if !pushed.queued {
                self.counters.not_queued(pushed);
            }
        }
        if encoded.capacity() <= KEEP_ENCODED {
            self.encoded = encoded;
        }
        if let Origin::Client(_) = origin
            && self.to_overlay(targets)
        {
            // Into the overlay under the chain it goes to members under directly.
            let seq = seq.unwrap_or_else(|| self.routing.take_seq());
            let chain = under.as_ref().map(|(chain, _)| chain);
            self.gather_forward(&publish.topic, &publish.payload, seq, chain);
        }
    }

    /// The chain of `client`'s delegation this node relays its publication to `topic` under,
    /// if one allows it.
    fn delegated_chain(
        &mut self,
        client: &PeerId,
        topic: &Name,
    ) -> Option<(weft_auth::Chain, weft_wire::WireChain)> {
        let (_, member) = self.routing.members().by_peer(client)?;
        let delegation = member.record.delegation()?;
        let (seat, budget) = (&self.seat, &member.record.budget);
        let (now, epoch) = (unix_now(), seat.authorizer.revocation_epoch());
        self.delegated.choose(&delegation, topic, now, epoch, || {
            delegation
                .chain_for(seat, budget, Action::Publish(topic), now)
                .map(|chosen| (chosen.chain.clone(), chosen.wire.clone()))
        })
    }
}

/// Counts what a member's ended session never wrote.
impl Handler<LostToSession> for Router {
    type Result = ();

    fn handle(&mut self, msg: LostToSession, _ctx: &mut Context<Self>) {
        self.counters.dropped_session_ended(msg.frames);
    }
}

/// Routes to a peer's subscription once it is authorized.
impl Handler<RemoteInterest> for Router {
    type Result = ();

    fn handle(&mut self, msg: RemoteInterest, ctx: &mut Context<Self>) {
        let Some(slot) = self.routing.members().slot(&msg.peer) else {
            return;
        };
        if let Interest::Subscribe { id, .. } | Interest::Unsubscribe { id, .. } = &msg.interest {
            self.routing.announced(&msg.peer, *id);
        }
        if let Interest::Subscribe { id, .. } = &msg.interest {
            let target = Target::Peer(slot);
            let replaces = self.routing.interests().holds(&target, *id);
            let held = self.routing.interests().count(&target);
            if let Some(member) = self.routing.members_mut().get_mut(slot)
                && !replaces
                && let Verdict::Refuse { tell } = member.subscription_cap.admit(held)
            {
                count_refusal("subscriptions");
                if tell {
                    let limit = member.subscription_cap.limit();
                    debug!(peer = %member.did.short(), limit, "subscriptions refused past the cap");
                    member.sender.send_denial(
                        member.index,
                        "limit",
                        format!(
                            "at most {limit} subscriptions per peer in {}; more are refused",
                            self.seat.realm
                        ),
                    );
                }
                return;
            }
        }
        let Some(member) = self.routing.members().get(slot) else {
            return;
        };
        match msg.interest {
            Interest::Subscribe {
                id, pattern, chain, ..
            } => {
                let action = Action::Subscribe(&pattern);
                let acting = member.record.acting();
                let allowed = authorize_member(
                    &self.seat.authorizer,
                    &mut self.chain_cache,
                    &self.seat.realm,
                    chain.as_ref(),
                    acting,
                    action,
                    unix_now(),
                );
                match allowed {
                    Ok(grant) => {
                        self.subscriptions
                            .insert((slot, id), (pattern.clone(), chain), &grant);
                        self.routing.subscribe(slot, id, pattern);
                        let interests = self.routing.interests();
                        self.waiting_subscriber
                            .wake(|topic| has_remote_subscriber(interests, topic));
                        if self.parked.holding() {
                            self.release(ctx);
                        }
                    }
                    Err(e) => {
                        debug!(peer = %member.did.short(), %pattern, error = %e, "subscription refused")
                    }
                }
            }
            Interest::Unsubscribe { id, .. } => {
                self.routing.unsubscribe(slot, id);
                self.subscriptions.remove(&(slot, id));
            }
            // Procedures are the registry's; the session routes them there.
            Interest::Advertise { .. } | Interest::Unadvertise { .. } => {}
        }
    }
}

/// Records an admitted peer.
impl Handler<MemberJoined> for Router {
    type Result = ();

    fn handle(&mut self, msg: MemberJoined, _ctx: &mut Context<Self>) {
        let peer = msg.member.peer;
        // A reconnecting peer starts a new connection: its old subscriptions' grants go with
        // them.
        if let Some(slot) = self.routing.members().slot(&peer) {
            self.subscriptions.retain(|(s, _)| *s != slot);
        }
        let member = Member {
            record: msg.member,
            subscription_cap: crate::core::caps::Cap::new(self.max_subscriptions),
        };
        self.routing.join(peer, member, std::time::Instant::now());
        let members = self.routing.members().len();
        self.counters.members(members);
        self.waiting_members.wake(|count| members >= *count);
    }
}

/// Forgets a departed peer and its subscriptions.
impl Handler<MemberLeft> for Router {
    type Result = ();

    fn handle(&mut self, msg: MemberLeft, _ctx: &mut Context<Self>) {
        // Its subscriptions go before its slot can be given to another peer.
        let now = std::time::Instant::now();
        if let Some((slot, _)) = self.routing.leave(&msg.peer, msg.how.abrupt(), now) {
            self.subscriptions.retain(|(s, _)| *s != slot);
            self.forwarding.forget(slot);
        }
        self.counters.members(self.routing.members().len());
    }
}

/// Adds a local subscription.
impl Handler<AddLocal> for Router {
    type Result = ();

    fn handle(&mut self, msg: AddLocal, _ctx: &mut Context<Self>) {
        self.routing.add_local(msg.id, msg.pattern);
        self.locals.insert(msg.id, msg.sink);
    }
}

/// Removes a local subscription.
impl Handler<RemoveLocal> for Router {
    type Result = ();

    fn handle(&mut self, msg: RemoveLocal, _ctx: &mut Context<Self>) {
        self.routing.remove_local(msg.id);
        self.locals.remove(&msg.id);
    }
}

/// Answers at once if a remote subscriber exists, or when one arrives.
impl Handler<ResolveThroughDht> for Router {
    type Result = ();

    fn handle(&mut self, _msg: ResolveThroughDht, ctx: &mut Context<Self>) {
        self.refresh_forwarding();
        self.publishing.activate(unix_now());
        self.resolve(ctx);
    }
}

impl Handler<AwaitSubscriber> for Router {
    type Result = ();

    fn handle(&mut self, msg: AwaitSubscriber, ctx: &mut Context<Self>) {
        // Waiting to publish: the topic's subscribers are looked for as if it had published.
        self.refresh_forwarding();
        self.publishing.publish(&msg.topic, unix_now());
        self.resolve(ctx);
        let ready = has_remote_subscriber(self.routing.interests(), &msg.topic);
        self.waiting_subscriber.wait(msg.topic, msg.reply, ready);
    }
}

/// Answers at once if enough members are in, or when they are.
impl Handler<AwaitMembers> for Router {
    type Result = ();

    fn handle(&mut self, msg: AwaitMembers, _ctx: &mut Context<Self>) {
        let ready = self.routing.members().len() >= msg.count;
        self.waiting_members.wait(msg.count, msg.reply, ready);
    }
}

/// Reports the counters.
impl Handler<Stats> for Router {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _msg: Stats, _ctx: &mut Context<Self>) -> Self::Result {
        let mut stats = self.counters.snapshot();
        let (members, interests) = (self.routing.members(), self.routing.interests());
        stats.members = members.len() as u64;
        stats.remote_subscriptions = members
            .slots()
            .map(|slot| interests.patterns(&Target::Peer(slot)).count() as u64)
            .sum();
        MessageResult(stats)
    }
}
