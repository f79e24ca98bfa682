//! The `Membership` actor: who is in a realm, and what this node subscribes to in it.
//!
//! Inbound:
//! - [`Admit`] from a `PeerConnection` whose peer's hello names this realm: the peer's
//!   `realm/join` is authorized with the chains it presented; if admitted, the router learns of it
//!   and the peer is sent every current local subscription.
//! - [`PeerLeft`] when that connection ends.
//! - [`Subscribe`] / [`Unsubscribe`] from the application: authorized (`msg/subscribe` with this
//!   node's own chains), registered with the router, and announced to every member at once.
//!
//! - [`RelayInterest`] from a client's session: a client's subscription is held in the mesh by
//!   this node, its access point, so publications from other members reach it here.
//!
//! Outbound: [`router`](crate::router) messages, interest frames to members, and DHT commands: on
//! start the realm's membership key is provided, then looked up on a widening schedule so new
//! members are found (the network dials them; their hello brings them here). A node that is
//! itself a client does neither: its access node is its way into the realm.
//!
//! Clients (peers whose hello says so) are members too, but the mesh is not theirs to hear about:
//! interest frames go to the other members only, and a client's subscriptions are announced to
//! them as this node's own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;
use tracing::{debug, info, warn};
use weft_auth::{AuthError, Chain, Realm, VerifyBudget};
use weft_identity::{Did, Keypair};
use weft_names::Pattern;
use weft_net::PeerId;
use weft_wire::{DEFAULT_MAX_FRAME, Delegation, Frame, Interest, RealmIndex, WireChain};

use crate::core::authority::Admission;
use crate::core::delegation;
use crate::core::departure::Departure;
use crate::core::discovery::{self, Company, Discovery};
use crate::core::handshake::PeerTags;
use crate::core::keys::{membership_key, membership_shard_key};
use crate::core::rendezvous::{self, Lookup, Rendezvous};
use crate::core::roster::{Revoked, Roster, To};
use crate::core::seat::Seat;
use crate::dht::{Dht, FindProviders, Provide};
use crate::local::LocalSink;
use crate::members::Admitted;
use crate::registry::Registry;
use crate::revocations::RevocationLog;
use crate::router::{AddLocal, MemberJoined, MemberLeft, RemoveLocal, ResolveThroughDht, Router};
use crate::sender::PeerSender;
use crate::{SubscribeError, unix_now};

/// Where an admitted member's frames for this realm go.
#[derive(Debug, Clone)]
pub struct Routes {
    /// Publications and subscriptions.
    pub router: Addr<Router>,
    /// Procedures, calls and replies.
    pub registry: Addr<Registry>,
}

/// A peer asks to take part in the realm.
#[derive(Debug, Message)]
#[rtype(result = "Result<Routes, AuthError>")]
pub struct Admit {
    /// The realm's index in the peer's hello.
    pub index: RealmIndex,
    /// The peer.
    pub peer: PeerId,
    /// Its DID, proven by the transport.
    pub did: Did,
    /// The chains it presented for this realm.
    pub chains: Vec<WireChain>,
    /// Its tags, once its welcome arrives.
    pub tags: PeerTags,
    /// Its send queue.
    pub sender: PeerSender,
    /// It is a client of this node (its hello says so).
    pub client: bool,
    /// The cold verifications its chains may cost, shared by every realm of its session.
    pub budget: Arc<VerifyBudget>,
    /// Its run, from its hello.
    pub run: u64,
}

/// A client's subscription changed: this node subscribes (or unsubscribes) in the mesh for it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RelayInterest {
    /// The client.
    pub peer: PeerId,
    /// Its `Subscribe` or `Unsubscribe` (other kinds are ignored).
    pub interest: Interest,
    /// Counts the message against its session's limit until it is handled.
    pub ticket: crate::sender::Ticket,
}

/// A client delegated to this node, its access node, what it may do in the realm.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteDelegation {
    /// The client.
    pub peer: PeerId,
    /// Its chains, each issued by it to this node.
    pub chains: Vec<WireChain>,
    /// Counts the message against its session's limit until it is handled.
    pub ticket: crate::sender::Ticket,
}

/// A member sent a revocation record.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteRevoke {
    /// The member.
    pub peer: PeerId,
    /// The record, as sent.
    pub record: String,
    /// Counts the message against its session's limit until it is handled.
    pub ticket: crate::sender::Ticket,
}

/// This node applied a new revocation record itself: pass it on to the members.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SpreadRevocation {
    /// The record.
    pub record: weft_ucan::Revocation,
}

/// A member's connection ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PeerLeft {
    /// The peer.
    pub peer: PeerId,
    /// How its session ended.
    pub how: Departure,
}

/// The application subscribes; returns the subscription id.
#[derive(Debug, Message)]
#[rtype(result = "Result<u32, SubscribeError>")]
pub struct Subscribe {
    /// Which topics.
    pub pattern: Pattern,
    /// Where events go.
    pub sink: LocalSink,
    /// A chain to subscribe under instead of the node's own (see `RealmRuntime::subscribe`).
    pub chain: Option<Chain>,
}

/// The application's subscription ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// Subscription id.
    pub id: u32,
}

/// The patterns this node subscribes to in the realm.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Pattern>")]
pub struct LocalSubscriptions;

/// Wakes the discovery loop.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Discover;

/// A realm hosted by this node: the shell around its [`Roster`].
pub struct Membership {
    roster: Roster<PeerId, Arc<Admitted>>,
    /// The realm, and this node's identity and chains in it.
    seat: Arc<Seat>,
    /// This node's key, if it is a client: it delegates to its access node what it may do
    /// (`core::delegation`).
    delegating: Option<Arc<Keypair>>,
    router: Addr<Router>,
    registry: Addr<Registry>,
    dht: Addr<Dht>,
    /// This node is a client: it neither provides the membership key nor looks for members.
    client: bool,
    /// Members dialed from the realm's membership records at most (`Limits::mesh_members`).
    mesh_members: usize,
    /// This node holds `mesh_members` members or more, and so resolves subscriptions and
    /// publications through the DHT.
    resolving: bool,
    /// Realms of this node holding fewer members than they dial: while any does, every
    /// connection starts a session (see `Supervisor`). Whether this realm counts in it.
    short: (Arc<AtomicUsize>, bool),
    /// Where new revocation records are kept for the next run.
    revocation_log: RevocationLog,
    discovery: Discovery,
    /// Which membership records it looks up next, and whether it announced under the base key.
    rendezvous: Rendezvous,
    /// The shard key it announces itself under.
    shard_key: Vec<u8>,
    /// The next membership lookup, once scheduled.
    next_discovery: Option<SpawnHandle>,
    /// `weft_local_subscriptions{realm}`.
    subscription_gauge: metrics::Gauge,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("realm", self.roster.realm())
            .field("members", &self.roster.len())
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// The membership of the realm `seat` names.
    pub(crate) fn new(seat: Arc<Seat>, routes: Routes, dht: Addr<Dht>) -> Self {
        let Routes { router, registry } = routes;
        let realm_name = seat.realm.name().as_str().to_owned();
        let shard = rendezvous::shard_of(&seat.did);
        let shard_key = membership_shard_key(&seat.realm, shard);
        Self {
            roster: Roster::new(seat.clone()),
            seat,
            delegating: None,
            router,
            registry,
            dht,
            client: false,
            mesh_members: crate::Limits::default().mesh_members,
            resolving: false,
            short: (Arc::default(), false),
            revocation_log: RevocationLog::default(),
            discovery: Discovery::default(),
            // Lookups of shards start after its own, which its own announcement covers.
            rendezvous: Rendezvous::new(shard.wrapping_add(1)),
            shard_key,
            next_discovery: None,
            subscription_gauge: metrics::gauge!("weft_local_subscriptions", "realm" => realm_name),
        }
    }

    /// Marks this node as a client: it neither announces nor looks up the realm in the DHT.
    pub fn client(mut self, client: bool) -> Self {
        self.client = client;
        self
    }

    /// As a client, delegates to its access node under `key` what it may do in the realm, once
    /// admitted and every `delegation::RENEW` after.
    pub(crate) fn delegating(mut self, key: Option<Arc<Keypair>>) -> Self {
        self.delegating = key;
        self
    }

    /// Dials at most `members` of the realm's members from its membership records.
    pub(crate) fn mesh_members(mut self, members: usize) -> Self {
        self.mesh_members = members;
        self
    }

    /// Counts this realm in `short` while it holds fewer members than it dials.
    pub(crate) fn short_of_members(mut self, short: Arc<AtomicUsize>) -> Self {
        self.short = (short, false);
        self
    }

    /// Holds at most `max` subscriptions in the mesh for one client.
    pub(crate) fn max_subscriptions(mut self, max: usize) -> Self {
        self.roster = self.roster.max_relayed(max);
        self
    }

    /// Keeps the revocation records members send in this file, for the next run.
    pub fn revocations_file(mut self, file: Option<std::path::PathBuf>) -> Self {
        self.revocation_log = RevocationLog::new(file);
        self
    }

    fn realm(&self) -> &Realm {
        self.roster.realm()
    }

    /// The realm's members this node holds, clients aside.
    fn held(&self) -> usize {
        self.roster.recipients(&To::Members).count()
    }

    /// After a member came or went. While this node holds fewer members than it dials, the
    /// realm counts as short of members. Once it holds that many, not every member need be
    /// connected to every other: from then on its subscriptions and publications go through
    /// the DHT too. Below that, the realm is a full mesh and the records would find no one new.
    fn members_changed(&mut self) {
        let held = self.held();
        self.count_short(!self.client && held < self.mesh_members);
        if self.resolving || self.client || held < self.mesh_members {
            return;
        }
        self.resolving = true;
        debug!(realm = %self.realm().name(), held, "past the mesh size: resolving through the DHT");
        self.roster.resolve_through_dht(unix_now());
        self.router.do_send(ResolveThroughDht);
    }

    /// Where this node stands with the realm's members, for the pace of its lookups: once it
    /// held its mesh, it resolves through the DHT (`core::discovery`).
    fn company(&self) -> Company {
        Company::of(self.held(), self.mesh_members, self.resolving)
    }

    fn count_short(&mut self, short: bool) {
        let (count, counted) = &mut self.short;
        match (short, *counted) {
            (true, false) => count.fetch_add(1, Ordering::Relaxed),
            (false, true) => count.fetch_sub(1, Ordering::Relaxed),
            _ => return,
        };
        *counted = short;
    }

    /// As a client of an owned realm, delegates to its access node (its one member) what it
    /// may do there, for the next `delegation::LIFETIME`.
    fn delegate(&self) {
        for member in self.roster.recipients(&To::Members) {
            self.delegate_to(member);
        }
    }

    /// As a client of an owned realm, delegates to `member`, its access node, what it may do
    /// there, for the next `delegation::LIFETIME`.
    fn delegate_to(&self, member: &Admitted) {
        let Some(key) = &self.delegating else {
            return;
        };
        if self.realm().is_open() || member.client {
            return;
        }
        let chains = delegation::delegate(key, member.did, &self.seat.chains, unix_now());
        if chains.is_empty() {
            return;
        }
        let frame = Frame::Delegate(Delegation {
            realm: self.seat.index,
            chains,
        });
        // At most 16 chains of at most 32 proofs, a few hundred bytes each: within the frame
        // limit, short of chains no peer would take anyway.
        match weft_net::framed::encode(&frame, DEFAULT_MAX_FRAME) {
            Ok(bytes) => member.sender.send_control(&bytes),
            Err(e) => warn!(realm = %self.realm().name(), error = %e, "delegation not sent"),
        }
    }

    /// Sends what the roster decided to send.
    fn send_notices(&mut self) {
        while let Some(step) = self.roster.poll_dht() {
            // A client announces and looks up nothing: its access node does, for it.
            if !self.client {
                crate::dht::resolve(&self.dht, self.roster.realm(), step);
            }
        }
        while let Some(notice) = self.roster.poll() {
            // Interest and revocation frames are at most a few KiB: far below any frame limit.
            let Ok(bytes) = weft_net::framed::encode(&notice.frame, DEFAULT_MAX_FRAME) else {
                continue;
            };
            for member in self.roster.recipients(&notice.to) {
                member.sender.send_control(&bytes);
            }
        }
    }
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(crate::core::standing::SWEEP, |act, _ctx| act.sweep());
        if self.client {
            ctx.run_interval(delegation::RENEW, |act, _ctx| act.delegate());
            return;
        }
        if self.realm().is_open() {
            warn!(realm = %self.realm().name(), "realm is open: anyone may join and do anything (development only)");
        }
        self.dht.do_send(Provide {
            key: self.shard_key.clone(),
        });
        self.members_changed();
        self.send_notices();
        ctx.notify(Discover);
    }
}

impl Membership {
    /// Ends what rests on chains that expired or were revoked: memberships (the member's
    /// subscriptions and procedures go, it is told, and the end is counted; its session stays
    /// for its other realms), local subscriptions made under a chain of their own (their
    /// streams end), and subscriptions relayed for clients.
    fn sweep(&mut self) {
        let now = unix_now();
        let ended = self.roster.sweep(now);
        self.roster.refresh(now);
        let realm = self.realm().name().clone();
        for (id, pattern, e) in ended.subscriptions {
            info!(target: crate::telemetry::TARGET, %realm, id, %pattern, error = %e, "delegated subscription ended");
            crate::telemetry::grant_ended(&realm, "local_subscription", e.code());
            self.router.do_send(RemoveLocal { id });
        }
        for (member, e) in ended.members {
            let reason = format!("membership of {} ended: {e}", self.realm());
            warn!(peer = %member.did, %reason, "standing grant ended");
            crate::telemetry::grant_ended(&realm, "membership", e.code());
            // The peer is told once the router no longer counts it: what it then asks of this
            // node already sees it gone.
            let left = MemberLeft {
                peer: member.peer,
                how: Departure::Ended,
            };
            self.registry.do_send(left.clone());
            let left = self.router.send(left);
            let code = e.code();
            actix::spawn(async move {
                let _ = left.await;
                member.sender.send_denial(member.index, code, reason);
            });
        }
        self.subscription_gauge
            .set(self.roster.local_count() as f64);
        self.send_notices();
    }
}

/// Looks for members, then schedules the next look.
impl Handler<Discover> for Membership {
    type Result = ();

    fn handle(&mut self, _msg: Discover, ctx: &mut Context<Self>) {
        self.next_discovery = None; // this is it
        // Members past the mesh size are not dialed from here: the subscriptions, publications
        // and calls that need them find them.
        let dial = self.mesh_members.saturating_sub(self.held());
        let which = self.rendezvous.next();
        let key = match which {
            Lookup::Base => membership_key(self.realm()),
            Lookup::Shard(shard) => membership_shard_key(self.realm(), shard),
        };
        let lookup = self.dht.send(FindProviders {
            key: key.clone(),
            dial,
            skip_released: true,
        });
        ctx.spawn(lookup.into_actor(self).map(move |found, act, ctx| {
            let found = found.unwrap_or_default();
            if act.rendezvous.found(which, found.len()) {
                act.dht.do_send(Provide { key });
            }
            // Those found are being dialed; a member not yet connected is one to wait for.
            let new = found
                .iter()
                .filter(|p| act.roster.member(p).is_none())
                .count();
            debug!(realm = %act.realm().name(), ?which, found = found.len(), new, "membership lookup");
            let verdict = rendezvous::verdict(which, found.len(), new);
            let delay = act.discovery.next(act.company(), verdict);
            act.next_discovery = Some(ctx.notify_later(Discover, delay));
        }));
    }
}

/// Authorizes `realm/join` for a peer and, if allowed, makes it a member.
impl Handler<Admit> for Membership {
    type Result = Result<Routes, AuthError>;

    fn handle(&mut self, msg: Admit, _ctx: &mut Context<Self>) -> Self::Result {
        let admission = self
            .roster
            .admit(&msg.did, &msg.chains, &msg.budget, unix_now());
        let Admission { chains, grant } = match admission {
            Ok(admission) => admission,
            Err(e) => {
                warn!(realm = %self.realm().name(), peer = %msg.did, error = %e, "peer refused");
                return Err(e);
            }
        };
        info!(realm = %self.realm().name(), peer = %msg.did.short(), client = msg.client, "peer admitted");
        let member = Arc::new(Admitted {
            peer: msg.peer,
            did: msg.did,
            chains: Arc::new(chains),
            tags: msg.tags,
            sender: msg.sender,
            client: msg.client,
            index: msg.index,
            budget: msg.budget,
            run: msg.run,
            delegation: Default::default(),
        });
        // Ahead of anything this node, a client, asks of its access node: the publications the
        // router sends once it knows the member go on the data lane, behind this frame.
        self.delegate_to(&member);
        let joined = MemberJoined {
            member: member.clone(),
        };
        self.registry.do_send(joined.clone());
        self.router.do_send(joined);
        self.roster.join(msg.peer, member, &grant);
        self.members_changed();
        self.send_notices();
        Ok(Routes {
            router: self.router.clone(),
            registry: self.registry.clone(),
        })
    }
}

/// Forgets a departed member.
impl Handler<PeerLeft> for Membership {
    type Result = ();

    fn handle(&mut self, msg: PeerLeft, ctx: &mut Context<Self>) {
        if self.roster.leave(&msg.peer).is_none() {
            return;
        }
        self.send_notices();
        let left = MemberLeft {
            peer: msg.peer,
            how: msg.how,
        };
        self.registry.do_send(left.clone());
        self.router.do_send(left);
        self.members_changed();
        // Short again: look for members on the fast schedule, not a minute from now. A lookup
        // in flight schedules the next one itself, at the reset pace.
        if !self.client
            && self.company().short()
            && self.discovery.fell_short()
            && let Some(next) = self.next_discovery.take()
        {
            ctx.cancel_future(next);
            self.next_discovery = Some(ctx.notify_later(Discover, discovery::FIRST));
        }
    }
}

/// Authorizes and registers a local subscription, and announces it to every member.
impl Handler<Subscribe> for Membership {
    type Result = Result<u32, SubscribeError>;

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Context<Self>) -> Self::Result {
        let id = self
            .roster
            .subscribe(msg.pattern.clone(), msg.chain, unix_now())
            .map_err(SubscribeError::Unauthorized)?;
        // The router knows of it before any member can send to it.
        self.router.do_send(AddLocal {
            id,
            pattern: msg.pattern.clone(),
            sink: msg.sink,
        });
        self.send_notices();
        info!(target: crate::telemetry::TARGET, realm = %self.realm().name(), id, pattern = %msg.pattern, "subscribed");
        self.subscription_gauge
            .set(self.roster.local_count() as f64);
        Ok(id)
    }
}

/// Withdraws a local subscription everywhere.
impl Handler<Unsubscribe> for Membership {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _ctx: &mut Context<Self>) {
        if let Some(pattern) = self.roster.unsubscribe(msg.id) {
            info!(target: crate::telemetry::TARGET, realm = %self.realm().name(), id = msg.id, %pattern, "unsubscribed");
            self.subscription_gauge
                .set(self.roster.local_count() as f64);
            self.router.do_send(RemoveLocal { id: msg.id });
            self.send_notices();
        }
    }
}

/// Lists local subscriptions, sorted (one entry per subscription).
impl Handler<LocalSubscriptions> for Membership {
    type Result = MessageResult<LocalSubscriptions>;

    fn handle(&mut self, _msg: LocalSubscriptions, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.roster.local_patterns())
    }
}

/// Holds (or withdraws) a client's subscription in the mesh, once the client may subscribe.
impl Handler<RelayInterest> for Membership {
    type Result = ();

    fn handle(&mut self, msg: RelayInterest, _ctx: &mut Context<Self>) {
        if let Err(e) = self.roster.relay(&msg.peer, msg.interest, unix_now()) {
            debug!(client = %msg.peer, error = %e, "client subscription not relayed");
        }
        self.send_notices();
    }
}

/// Keeps what a client delegated to this node, and holds its subscriptions under it.
impl Handler<RemoteDelegation> for Membership {
    type Result = ();

    fn handle(&mut self, msg: RemoteDelegation, _ctx: &mut Context<Self>) {
        match self
            .roster
            .take_delegation(&msg.peer, msg.chains, unix_now())
        {
            Ok(chains) => {
                debug!(realm = %self.realm().name(), client = %msg.peer, chains, "delegation taken");
            }
            Err(e) => {
                debug!(realm = %self.realm().name(), client = %msg.peer, error = %e, "delegation refused");
                metrics::counter!("weft_delegations_refused_total", "code" => e.code())
                    .increment(1);
            }
        }
        self.send_notices();
    }
}

/// Applies a member's revocation record and, if it is new here, passes it on.
impl Handler<RemoteRevoke> for Membership {
    type Result = ();

    fn handle(&mut self, msg: RemoteRevoke, _ctx: &mut Context<Self>) {
        match self.roster.revoke(&msg.peer, &msg.record, unix_now()) {
            Revoked::Applied(record) => {
                info!(realm = %self.realm().name(), revoked = %record.revoked(), by = %record.issuer(), "revocation record applied");
                self.revocation_log.append(&record);
            }
            Revoked::Ignored => {}
            Revoked::Refused(why) => debug!(peer = %msg.peer, %why, "revocation record refused"),
        }
        self.send_notices();
    }
}

/// Passes on a record this node applied itself.
impl Handler<SpreadRevocation> for Membership {
    type Result = ();

    fn handle(&mut self, msg: SpreadRevocation, _ctx: &mut Context<Self>) {
        self.roster.spread(&msg.record, To::Members);
        self.send_notices();
    }
}
