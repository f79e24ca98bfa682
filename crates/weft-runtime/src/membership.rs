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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tracing::{debug, info, warn};
use weft_auth::{Action, AuthError, Authorizer, Chain, Realm, VerifyBudget};
use weft_identity::Did;
use weft_names::Pattern;
use weft_net::PeerId;
use weft_wire::{DEFAULT_MAX_FRAME, Frame, Interest, RealmIndex, RevokeRecord, WireChain};

use crate::core::authority::Admission;
use crate::core::chains::ChainCache;
use crate::core::handshake::PeerTags;
use crate::core::keys::membership_key;
use crate::core::standing::Standing;
use crate::dht::{Dht, FindProviders, Provide};
use crate::local::LocalSink;
use crate::members::Admitted;
use crate::registry::Registry;
use crate::revocations::RevocationLog;
use crate::router::{AddLocal, MemberJoined, MemberLeft, RemoveLocal, Router};
use crate::sender::PeerSender;
use crate::{SubscribeError, unix_now};

/// First delay between membership lookups; it doubles up to [`DISCOVERY_ALONE_MAX`] or
/// [`DISCOVERY_MAX`].
const DISCOVERY_FIRST: Duration = Duration::from_millis(200);
/// Steady-state delay between membership lookups while the node has no member to talk to.
const DISCOVERY_ALONE_MAX: Duration = Duration::from_secs(10);
/// Steady-state delay once it has members: newcomers find *us* (their own lookups start fast),
/// so this only heals partitions, and each lookup costs every member a Kademlia request.
const DISCOVERY_MAX: Duration = Duration::from_secs(60);

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
    /// It said goodbye first: it left on purpose.
    pub said_bye: bool,
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

/// A realm hosted by this node.
pub struct Membership {
    realm: Realm,
    index: RealmIndex,
    authorizer: Arc<Authorizer>,
    own_did: Did,
    own_chains: Arc<Vec<Chain>>,
    router: Addr<Router>,
    registry: Addr<Registry>,
    dht: Addr<Dht>,
    /// The members, as every actor of the realm sees them.
    members: HashMap<PeerId, Arc<Admitted>>,
    /// Local subscriptions, with the chain each was made under if not the node's own: they are
    /// announced again, chain included, to every member that joins.
    subscriptions: HashMap<u32, (Pattern, Option<WireChain>)>,
    /// Clients' subscriptions held in the mesh by this node: (client, its id) → (our id, pattern).
    /// Our ids come from the same counter as local ones, so a member sees distinct ids.
    relayed: HashMap<(PeerId, u32), (u32, Pattern)>,
    /// Clients' chains, parsed once.
    chain_cache: ChainCache,
    /// This node is a client: it neither provides the membership key nor looks for members.
    client: bool,
    /// Memberships, which end when the `realm/join` chain they rest on does.
    memberships: Standing<PeerId, ()>,
    /// Local subscriptions made under a chain of their own (a gateway's client's), which end
    /// with it: the subscription's stream closes.
    delegated: Standing<u32, (Pattern, Chain)>,
    /// Where new revocation records are kept for the next run.
    revocation_log: RevocationLog,
    /// What each relayed subscription rests on (the chain sent with it, if any): it is withdrawn
    /// from the members when that ends.
    relayed_grants: Standing<(PeerId, u32), Option<WireChain>>,
    next_id: u32,
    discovery_delay: Duration,
    /// The next membership lookup, once scheduled.
    next_discovery: Option<SpawnHandle>,
    /// `weft_local_subscriptions{realm}`.
    subscription_gauge: metrics::Gauge,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("realm", &self.realm)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// The realm at `index` of this node's hello.
    pub fn new(
        realm: Realm,
        index: RealmIndex,
        authorizer: Arc<Authorizer>,
        own_did: Did,
        own_chains: Arc<Vec<Chain>>,
        routes: Routes,
        dht: Addr<Dht>,
    ) -> Self {
        let Routes { router, registry } = routes;
        let realm_name = realm.name().as_str().to_owned();
        Self {
            realm,
            index,
            authorizer,
            own_did,
            own_chains,
            router,
            registry,
            dht,
            members: HashMap::new(),
            subscriptions: HashMap::new(),
            relayed: HashMap::new(),
            chain_cache: ChainCache::default(),
            client: false,
            memberships: Standing::default(),
            delegated: Standing::default(),
            revocation_log: RevocationLog::default(),
            relayed_grants: Standing::default(),
            next_id: 1,
            discovery_delay: DISCOVERY_FIRST,
            next_discovery: None,
            subscription_gauge: metrics::gauge!("weft_local_subscriptions", "realm" => realm_name),
        }
    }

    /// Marks this node as a client: it neither announces nor looks up the realm in the DHT.
    pub fn client(mut self, client: bool) -> Self {
        self.client = client;
        self
    }

    /// Keeps the revocation records members send in this file, for the next run.
    pub fn revocations_file(mut self, file: Option<std::path::PathBuf>) -> Self {
        self.revocation_log = RevocationLog::new(file);
        self
    }

    /// A revocation record as a frame of this realm (records are at most 1 KiB: it fits).
    fn revoke_frame(&self, record: &weft_ucan::Revocation) -> Option<bytes::Bytes> {
        let frame = Frame::Revoke(RevokeRecord {
            realm: self.index,
            record: record.to_json(),
        });
        weft_net::framed::encode(&frame, DEFAULT_MAX_FRAME).ok()
    }

    /// Sends a revocation record to every member but clients and `except` (who sent it).
    fn spread_revocation(&self, record: &weft_ucan::Revocation, except: Option<PeerId>) {
        let Some(bytes) = self.revoke_frame(record) else {
            return;
        };
        for (peer, member) in &self.members {
            if !member.client && Some(*peer) != except {
                member.sender.send_control(&bytes);
            }
        }
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn interest_frame(&self, interest: Interest) -> Option<bytes::Bytes> {
        // Interest frames are a few hundred bytes: far below any frame limit.
        weft_net::framed::encode(&Frame::Interest(interest), DEFAULT_MAX_FRAME).ok()
    }

    /// Sends an interest frame to every member but clients.
    fn broadcast(&self, interest: Interest) {
        if let Some(bytes) = self.interest_frame(interest) {
            for member in self.members.values().filter(|m| !m.client) {
                member.sender.send_control(&bytes);
            }
        }
    }

    /// Withdraws every subscription held for `client`.
    fn drop_relayed(&mut self, client: &PeerId) {
        self.relayed_grants.retain(|(peer, _)| peer != client);
        let ended: Vec<(PeerId, u32)> = self
            .relayed
            .keys()
            .filter(|(peer, _)| peer == client)
            .copied()
            .collect();
        for key in ended {
            if let Some((id, _)) = self.relayed.remove(&key) {
                self.broadcast(Interest::Unsubscribe {
                    realm: self.index,
                    id,
                });
            }
        }
    }
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(crate::core::standing::SWEEP, |act, _ctx| act.sweep());
        if self.client {
            return;
        }
        if self.realm.is_open() {
            warn!(realm = %self.realm.name(), "realm is open: anyone may join and do anything (development only)");
        }
        self.dht.do_send(Provide {
            key: membership_key(&self.realm),
        });
        ctx.notify(Discover);
    }
}

impl Membership {
    /// Ends the local subscriptions made under a chain that expired or was revoked: the router
    /// drops the subscription's queue, which ends its stream, and the members are told.
    fn sweep_delegated(&mut self) {
        let (authorizer, realm, own_did) = (&self.authorizer, &self.realm, &self.own_did);
        let ended = self.delegated.sweep_now(authorizer, |_, (pattern, chain)| {
            let action = Action::Subscribe(pattern);
            authorizer.authorize(realm, Some(chain), own_did, action, unix_now())
        });
        for (id, (pattern, _), e) in ended {
            info!(target: crate::telemetry::TARGET, realm = %self.realm.name(), id, %pattern, error = %e, "delegated subscription ended");
            crate::telemetry::grant_ended(self.realm.name(), "local_subscription", e.code());
            self.end_subscription(id);
        }
    }

    /// Ends the memberships whose `realm/join` chain expired or was revoked: the member's
    /// subscriptions and procedures go, it is told, and the end is counted. Its session stays
    /// for its other realms.
    fn sweep(&mut self) {
        self.sweep_delegated();
        self.sweep_relayed();
        let (members, authorizer, realm) = (&self.members, &self.authorizer, &self.realm);
        let ended = self.memberships.sweep_now(authorizer, |peer, ()| {
            let member = members
                .get(peer)
                .ok_or_else(|| AuthError::Unauthorized("no longer a member".into()))?;
            authorizer.authorize_any(realm, &member.chains, &member.did, Action::Join, unix_now())
        });
        for (peer, (), e) in ended {
            let Some(member) = self.members.remove(&peer) else {
                continue;
            };
            let reason = format!("membership of {} ended: {e}", self.realm);
            warn!(peer = %member.did, %reason, "standing grant ended");
            crate::telemetry::grant_ended(self.realm.name(), "membership", e.code());
            if member.client {
                self.drop_relayed(&peer);
            }
            self.registry.do_send(MemberLeft {
                peer,
                abrupt: false,
            });
            // The peer is told once the router no longer counts it: what it then asks of this
            // node already sees it gone.
            let left = self.router.send(MemberLeft {
                peer,
                abrupt: false,
            });
            let code = e.code();
            actix::spawn(async move {
                let _ = left.await;
                member.sender.send_denial(member.index, code, reason);
            });
        }
    }
}

/// Looks for members, then schedules the next look.
impl Handler<Discover> for Membership {
    type Result = ();

    fn handle(&mut self, _msg: Discover, ctx: &mut Context<Self>) {
        self.next_discovery = None; // this is it
        let lookup = self.dht.send(FindProviders {
            key: membership_key(&self.realm),
        });
        ctx.spawn(lookup.into_actor(self).map(|found, act, ctx| {
            debug!(realm = %act.realm.name(), found = found.unwrap_or(0), "membership lookup");
            let delay = act.discovery_delay;
            let max = if act.members.is_empty() {
                DISCOVERY_ALONE_MAX
            } else {
                DISCOVERY_MAX
            };
            act.discovery_delay = (delay * 2).min(max);
            act.next_discovery = Some(ctx.notify_later(Discover, delay));
        }));
    }
}

/// Authorizes `realm/join` for a peer and, if allowed, makes it a member.
impl Handler<Admit> for Membership {
    type Result = Result<Routes, AuthError>;

    fn handle(&mut self, msg: Admit, _ctx: &mut Context<Self>) -> Self::Result {
        let admission = crate::core::authority::admit(
            &self.authorizer,
            &self.realm,
            &msg.did,
            &msg.chains,
            &msg.budget,
            unix_now(),
        );
        let Admission { chains, grant } = match admission {
            Ok(admission) => admission,
            Err(e) => {
                warn!(realm = %self.realm.name(), peer = %msg.did, error = %e, "peer refused");
                return Err(e);
            }
        };
        self.memberships.insert(msg.peer, (), &grant);
        info!(realm = %self.realm.name(), peer = %msg.did.short(), client = msg.client, "peer admitted");
        // A client sends everything to this node anyway: it needs none of our interests, nor
        // the revocations it must not act on (this node enforces them).
        if !msg.client {
            for record in self.authorizer.revocation_records() {
                if let Some(bytes) = self.revoke_frame(&record) {
                    msg.sender.send_control(&bytes);
                }
            }
            let relayed = self
                .relayed
                .values()
                .map(|(id, pattern)| (*id, pattern, None));
            let local = self
                .subscriptions
                .iter()
                .map(|(id, (pattern, chain))| (*id, pattern, chain.clone()));
            for (id, pattern, chain) in local.chain(relayed) {
                let subscribe = Interest::Subscribe {
                    realm: self.index,
                    id,
                    pattern: pattern.clone(),
                    chain,
                };
                if let Some(bytes) = self.interest_frame(subscribe) {
                    msg.sender.send_control(&bytes);
                }
            }
        }
        let member = Arc::new(Admitted {
            peer: msg.peer,
            did: msg.did,
            chains: Arc::new(chains),
            tags: msg.tags,
            sender: msg.sender,
            client: msg.client,
            index: msg.index,
            budget: msg.budget,
        });
        let joined = MemberJoined {
            member: member.clone(),
        };
        self.registry.do_send(joined.clone());
        self.router.do_send(joined);
        // A client that reconnects starts afresh: what it held before is withdrawn.
        self.drop_relayed(&msg.peer);
        self.members.insert(msg.peer, member);
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
        self.memberships.remove(&msg.peer);
        if let Some(member) = self.members.remove(&msg.peer) {
            if member.client {
                self.drop_relayed(&msg.peer);
            }
            let left = MemberLeft {
                peer: msg.peer,
                abrupt: !msg.said_bye,
            };
            self.registry.do_send(left.clone());
            self.router.do_send(left);
            // Alone again: look for members on the fast schedule, not a minute from now.
            if !self.client && self.members.is_empty() && self.discovery_delay > DISCOVERY_ALONE_MAX
            {
                self.discovery_delay = DISCOVERY_FIRST;
                // A lookup in flight schedules the next one itself, at the reset pace.
                if let Some(next) = self.next_discovery.take() {
                    ctx.cancel_future(next);
                    self.next_discovery = Some(ctx.notify_later(Discover, DISCOVERY_FIRST));
                }
            }
        }
    }
}

/// Authorizes and registers a local subscription, and announces it to every member.
impl Handler<Subscribe> for Membership {
    type Result = Result<u32, SubscribeError>;

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Context<Self>) -> Self::Result {
        let chains = match &msg.chain {
            Some(chain) => std::slice::from_ref(chain),
            None => self.own_chains.as_slice(),
        };
        let grant = self
            .authorizer
            .authorize_any(
                &self.realm,
                chains,
                &self.own_did,
                Action::Subscribe(&msg.pattern),
                unix_now(),
            )
            .map_err(SubscribeError::Unauthorized)?;
        let id = self.take_id();
        if let Some(chain) = &msg.chain {
            self.delegated
                .insert(id, (msg.pattern.clone(), chain.clone()), &grant);
        }
        let chain = msg.chain.as_ref().map(crate::core::chains::wire_chain);
        self.router.do_send(AddLocal {
            id,
            pattern: msg.pattern.clone(),
            sink: msg.sink,
        });
        self.broadcast(Interest::Subscribe {
            realm: self.index,
            id,
            pattern: msg.pattern.clone(),
            chain: chain.clone(),
        });
        info!(target: crate::telemetry::TARGET, realm = %self.realm.name(), id, pattern = %msg.pattern, "subscribed");
        self.subscriptions.insert(id, (msg.pattern, chain));
        self.subscription_gauge.set(self.subscriptions.len() as f64);
        Ok(id)
    }
}

/// Withdraws a local subscription everywhere.
impl Handler<Unsubscribe> for Membership {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _ctx: &mut Context<Self>) {
        self.delegated.remove(&msg.id);
        self.end_subscription(msg.id);
    }
}

impl Membership {
    /// Removes local subscription `id` here, at the router and at every member.
    fn end_subscription(&mut self, id: u32) {
        if let Some((pattern, _)) = self.subscriptions.remove(&id) {
            info!(target: crate::telemetry::TARGET, realm = %self.realm.name(), id, %pattern, "unsubscribed");
            self.subscription_gauge.set(self.subscriptions.len() as f64);
            self.router.do_send(RemoveLocal { id });
            self.broadcast(Interest::Unsubscribe {
                realm: self.index,
                id,
            });
        }
    }
}

/// Lists local subscriptions, sorted (one entry per subscription).
impl Handler<LocalSubscriptions> for Membership {
    type Result = MessageResult<LocalSubscriptions>;

    fn handle(&mut self, _msg: LocalSubscriptions, _ctx: &mut Context<Self>) -> Self::Result {
        let mut patterns: Vec<Pattern> = self
            .subscriptions
            .values()
            .map(|(p, _)| p.clone())
            .collect();
        patterns.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        MessageResult(patterns)
    }
}

/// Holds (or withdraws) a client's subscription in the mesh, once the client may subscribe.
impl Handler<RelayInterest> for Membership {
    type Result = ();

    fn handle(&mut self, msg: RelayInterest, _ctx: &mut Context<Self>) {
        let Some(member) = self.members.get(&msg.peer).filter(|m| m.client) else {
            return;
        };
        match msg.interest {
            Interest::Subscribe {
                id, pattern, chain, ..
            } => {
                // The router checks the same before delivering to the client; checking here too
                // keeps a client from making this node subscribe to what it may not read.
                let acting = crate::core::authority::Acting {
                    did: &member.did,
                    chains: &member.chains,
                    budget: Some(&member.budget),
                };
                let allowed = crate::core::authority::authorize_member(
                    &self.authorizer,
                    &mut self.chain_cache,
                    &self.realm,
                    chain.as_ref(),
                    acting,
                    Action::Subscribe(&pattern),
                    unix_now(),
                );
                let grant = match allowed {
                    Ok(grant) => grant,
                    Err(e) => {
                        debug!(client = %member.did.short(), %pattern, error = %e, "client subscription not relayed");
                        return;
                    }
                };
                self.relayed_grants.insert((msg.peer, id), chain, &grant);
                // An id already in use is replaced, as any subscription is.
                match self.relayed.get(&(msg.peer, id)) {
                    Some((_, held)) if *held == pattern => return,
                    Some(_) => self.drop_relayed_one(msg.peer, id),
                    None => {}
                }
                let ours = self.take_id();
                // Under this node's own chains: the members check that this node may subscribe.
                self.broadcast(Interest::Subscribe {
                    realm: self.index,
                    id: ours,
                    pattern: pattern.clone(),
                    chain: None,
                });
                self.relayed.insert((msg.peer, id), (ours, pattern));
            }
            Interest::Unsubscribe { id, .. } => {
                self.relayed_grants.remove(&(msg.peer, id));
                self.drop_relayed_one(msg.peer, id);
            }
            Interest::Advertise { .. } | Interest::Unadvertise { .. } => {}
        }
    }
}

impl Membership {
    /// Withdraws from the members the subscription held for `client` under its id `id`.
    fn drop_relayed_one(&mut self, client: PeerId, id: u32) {
        if let Some((ours, _)) = self.relayed.remove(&(client, id)) {
            self.broadcast(Interest::Unsubscribe {
                realm: self.index,
                id: ours,
            });
        }
    }

    /// Withdraws the relayed subscriptions whose client's chain ended (the client's own access
    /// node tells the client; the members only stop sending).
    fn sweep_relayed(&mut self) {
        let (members, relayed, authorizer, realm) =
            (&self.members, &self.relayed, &self.authorizer, &self.realm);
        let cache = &mut self.chain_cache;
        let ended = self
            .relayed_grants
            .sweep_now(authorizer, |(client, id), chain| {
                let (Some(member), Some((_, pattern))) =
                    (members.get(client), relayed.get(&(*client, *id)))
                else {
                    return Err(AuthError::Unauthorized("no longer relayed".into()));
                };
                let acting = crate::core::authority::Acting {
                    did: &member.did,
                    chains: &member.chains,
                    budget: None,
                };
                let action = Action::Subscribe(pattern);
                crate::core::authority::authorize_member(
                    authorizer,
                    cache,
                    realm,
                    chain.as_ref(),
                    acting,
                    action,
                    unix_now(),
                )
            });
        for ((client, id), _, _) in ended {
            self.drop_relayed_one(client, id);
        }
    }
}

/// Applies a member's revocation record and, if it is new here, passes it on.
impl Handler<RemoteRevoke> for Membership {
    type Result = ();

    fn handle(&mut self, msg: RemoteRevoke, _ctx: &mut Context<Self>) {
        let Some(member) = self.members.get(&msg.peer) else {
            return;
        };
        // A record costs a signature check unless it is known: the member's budget pays.
        let record = match weft_ucan::Revocation::parse(&msg.record) {
            Ok(record) => record,
            Err(e) => {
                return debug!(peer = %member.did.short(), error = %e, "revocation record unreadable");
            }
        };
        if !self.authorizer.may_revoke(&self.realm, record.issuer()) {
            return debug!(peer = %member.did.short(), by = %record.issuer(), "revocation record about nothing here dropped");
        }
        if !member.budget.take(unix_now()) {
            return debug!(peer = %member.did.short(), "revocation record dropped: verification budget spent");
        }
        match self.authorizer.apply(&record) {
            Ok(true) => {
                info!(realm = %self.realm.name(), revoked = %record.revoked(), by = %record.issuer(), "revocation record applied");
                self.revocation_log.append(&record);
                self.spread_revocation(&record, Some(msg.peer));
            }
            Ok(false) => {}
            Err(e) => debug!(peer = %member.did.short(), error = %e, "revocation record refused"),
        }
    }
}

/// Passes on a record this node applied itself.
impl Handler<SpreadRevocation> for Membership {
    type Result = ();

    fn handle(&mut self, msg: SpreadRevocation, _ctx: &mut Context<Self>) {
        self.spread_revocation(&msg.record, None);
    }
}
