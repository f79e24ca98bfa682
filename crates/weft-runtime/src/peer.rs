//! The `PeerConnection` actor: one per connected peer.
//!
//! Lifecycle: the `Supervisor` starts it when a peer connects (or when the peer's stream arrives first,
//! in which case it waits for [`Connected`]). It then opens its outbound stream, writes this node's
//! hello (digests only, see `core::handshake`) and waits for the peer's acknowledgement; the
//! writer task (on the network runtime) then drains the control lane and the publication queue.
//! The peer's inbound stream arrives as [`AttachInbound`]; its reader task decodes frames into
//! this actor. The actor stops when the inbound stream ends, on
//! [`Disconnected`], or after [`Leave`]; in `stopping` it tells the realms it joined and the node.
//!
//! Frames in: the peer's hello (answered with a join naming the realms both host), its join (each
//! realm in it is offered to the matching local `Membership` actor for admission, and nothing else is
//! processed until that is settled; the first admission sends our welcome), its welcome (its
//! agent and tags), then interest and publish frames, forwarded to the admitted realm's router. Frames for realms the peer was not admitted to
//! are dropped: a peer without a valid proof never sees a realm's traffic.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use futures::future::join_all;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use weft_auth::Realm;
use weft_identity::Did;
use weft_net::framed::{AcceptError, ReadError, accept, open_acknowledged, read_frames};
use weft_net::outbox::{Outbox, write_outbox};
use weft_net::{Multiaddr, Network, PeerId, Stream};
use weft_wire::{DEFAULT_MAX_FRAME, Decoder, Frame, Hello, Interest, Join, RealmIndex, Welcome};

use crate::core::departure::Departure;
use crate::core::handshake::{Greeting, Handshake, PeerTags};
use crate::core::inbound::{Step, next_step};
use crate::membership::Routes;
use crate::membership::{
    Admit, Membership, PeerLeft, RelayInterest, RemoteDelegation, RemoteRevoke,
};
use crate::registry::{Registry, RemoteAdvert, RemoteCall, RemoteReply};
use crate::router::{
    LostToSession, RemoteBatchIds, RemoteForward, RemoteInterest, RemotePublish, Router,
};
use crate::sender::{Activity, InFlight, PeerSender};
use crate::{PeerEvent, PeerInfo};

/// Batches (one per read: at most 64 KiB, or one large frame, and at most
/// [`MAX_BATCH_FRAMES`](weft_net::framed::MAX_BATCH_FRAMES) frames) buffered from a peer's reader
/// before it waits (back-pressure into QUIC).
const INBOUND_QUEUE: usize = 32;
/// Messages from this peer's frames (a batch of publications counts as one) queued at realm
/// actors and not yet handled, before the session stops reading it. Every kind of frame goes
/// through this one bound: actors' mailboxes take what `do_send` gives them whatever their size,
/// so this is what keeps a peer's flood in its own QUIC stream rather than in this node's memory.
const IN_FLIGHT: usize = 8;
/// How long a leaving session waits for its queue to flush and then for the peer to hang up.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// A peer welcomed us: it admitted us to a realm, and said who it is.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PeerGreeted {
    /// The peer.
    pub peer: PeerId,
    /// What it told about itself.
    pub info: PeerInfo,
}

/// A peer sent its hello: its session is no longer silent.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PeerSpoke {
    /// The peer.
    pub peer: PeerId,
}

/// This node admitted the peer to a realm (the first time in its session).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PeerAdmitted {
    /// The peer.
    pub peer: PeerId,
    /// It is this node's client (its hello said so, and a realm admitted it as one).
    pub client: bool,
}

/// What a peer told this node that the application hears: a refusal in one of its realms, or
/// of any session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PeerNotice {
    /// What to tell the application.
    pub event: PeerEvent,
}

/// A peer actor stopped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PeerGone {
    /// The peer.
    pub peer: PeerId,
    /// It said goodbye: do not redial.
    pub said_bye: bool,
    /// One side released the idle session to make room (`Frame::Release`): the peer is still
    /// up, and its connection, if still open, serves Kademlia until idle. Not redialed.
    pub released: bool,
    /// It was admitted to at least one realm: worth redialing.
    pub was_member: bool,
    /// It answered our stream with `Release`: it had no room for a session with us.
    pub no_room_there: bool,
    /// It was our client: it cannot be dialed, and comes back by itself if it wants to.
    pub client: bool,
    /// It hosts no realm of this node's: nothing to redial it for.
    pub shares_nothing: bool,
    /// It refused the session (`Refused`: another wire version): dialing it again would only
    /// be refused again.
    pub refused: bool,
    /// The session ended to start again at once on the connection, which stays: a stream of
    /// it was lost, or the peer started a new session. The node decides whether it does.
    pub restart: bool,
    /// A [`Rehome`] with the peer's new stream follows.
    pub hands_over: bool,
}

/// A peer's stream that started a new session of its own, handed back by the session it
/// replaces once that one has ended (after its [`PeerGone`]), to start the new one with.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Rehome {
    /// The peer.
    pub peer: PeerId,
    /// Its stream.
    pub stream: Stream,
}

/// Where a session reports on its peer: the node, as the messages it takes from sessions.
#[derive(Clone)]
pub struct Reports {
    /// The peer welcomed us.
    pub greeted: Recipient<PeerGreeted>,
    /// The peer said hello.
    pub spoke: Recipient<PeerSpoke>,
    /// This node admitted the peer to a realm.
    pub admitted: Recipient<PeerAdmitted>,
    /// The peer refused us somewhere.
    pub notices: Recipient<PeerNotice>,
    /// The session ended.
    pub gone: Recipient<PeerGone>,
    /// A stream for the session that replaces this one.
    pub rehome: Recipient<Rehome>,
}

impl std::fmt::Debug for Reports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reports").finish_non_exhaustive()
    }
}

/// One of this node's realms, as a connection needs it.
#[derive(Debug, Clone)]
pub struct RealmLink {
    /// The realm's identity.
    pub realm: Realm,
    /// Its actor.
    pub actor: Addr<Membership>,
    /// Its registry, where replies to this node's calls go.
    pub registry: Addr<Registry>,
    /// Where publications queued for a peer and never written are counted.
    pub losses: Recipient<LostToSession>,
}

/// The peer's weft stream towards us.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AttachInbound {
    /// The stream.
    pub stream: Stream,
}

/// The network reports the peer's connection established (every behaviour has seen it, so a
/// stream can be opened on it).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Connected;

/// The session cannot work (no stream could be opened): end it and close the connection.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Failed;

/// The network reports the peer gone.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Disconnected;

/// This node is shutting down: say goodbye, flush, stop.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave;

/// The session is idle and its place is wanted: tell the peer (`Frame::Release`), flush, stop,
/// and leave the connection to Kademlia.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Release;

/// The peer answered our stream with `Release`: it has no room for a session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct ReleasedByPeer;

/// The peer answered our stream with `Refused` (it speaks another wire version).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct RefusedByPeer {
    code: String,
    reason: String,
}

/// A connected peer.
pub struct PeerConnection {
    peer: PeerId,
    did: Did,
    addr: Multiaddr,
    network: Network,
    reports: Reports,
    links: Arc<Vec<RealmLink>>,
    handshake: Handshake,
    /// The peer's tags, once its welcome arrives; shared with the realms that admitted it.
    tags: PeerTags,
    sender: PeerSender,
    /// The writer has not been started yet.
    unopened: bool,
    writer: Option<tokio::task::JoinHandle<()>>,
    /// Dropped when the session ends, which stops the writer if its stream is still being
    /// opened: the stream belongs to this session, and must not reach the peer after it.
    opening: Option<tokio::sync::oneshot::Sender<()>>,
    /// Frames of a batch held back while the peer's hello is being settled, in arrival order.
    deferred: VecDeque<Frame>,
    /// Messages sent to realm actors and not yet handled.
    in_flight: Arc<InFlight>,
    routes: HashMap<RealmIndex, Routes>,
    admitted: Vec<Addr<Membership>>,
    /// The peer is our client (its hello says so): its subscriptions are also held in the mesh
    /// by the realm actors here.
    client: bool,
    /// The peer's run, from its hello (`core::sequence`).
    run: u64,
    /// The peer had no room for a session with us (`ReleasedByPeer`).
    no_room_there: bool,
    /// The realm actors that admitted the peer, by the peer's realm index.
    realm_actors: HashMap<RealmIndex, Addr<Membership>>,
    /// The cold verifications this peer's chains may cost, across all realms.
    budget: Arc<weft_auth::VerifyBudget>,
    said_bye: bool,
    /// This node said goodbye and waits for the peer's.
    leaving: bool,
    /// Fires when the peer's goodbye arrives while this node is leaving.
    bye_answered: Option<tokio::sync::oneshot::Sender<()>>,
    /// The network already reported the peer gone; nothing to close.
    disconnected: bool,
    /// The peer hosts none of this node's realms (it ended the session on that ground).
    shares_nothing: bool,
    /// One side released the session (`Frame::Release`): the connection is left open.
    released: bool,
    /// The peer refused the session (`Frame::Refused`).
    refused: bool,
    /// Inbound streams being read; the session ends when the last one does.
    inbound_streams: usize,
    /// Inbound streams attached so far: each reader knows its stream's number.
    streams_attached: u64,
    /// The number of the latest stream whose reader failed (rather than being finished by the
    /// peer); 0 if none did.
    stream_lost: Arc<AtomicU64>,
    /// It started in place of a member's session that ended to start again: its peer counts
    /// as a member if it fails before being admitted again.
    after_restart: bool,
    /// It ends to start again: the connection stays.
    restart: bool,
    /// When the network last reported one of the peer's connections closed, others staying.
    connection_dropped: Option<std::time::Instant>,
    /// A stream was lost, and the session waits for the network to say whether its connection
    /// went alone.
    awaiting_network: bool,
    /// Shared with the writer: the session ended to start again, so a stream acknowledged
    /// after that carries `Release` only, not this session's frames.
    restarting: Arc<AtomicBool>,
    /// The stream of the peer's new session, handed to the node once this one ended.
    replaced_by: Option<Stream>,
    /// The connection is known established; until then no outbound stream is opened (a stream
    /// requested earlier would make libp2p-stream dial a peer it is already connected to).
    connected: bool,
    /// How long the peer has to send its hello.
    hello_timeout: Duration,
}

impl std::fmt::Debug for PeerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConnection")
            .field("peer", &self.did)
            .finish_non_exhaustive()
    }
}

impl PeerConnection {
    /// A connection to `peer`, which will greet it as `greeting` says.
    #[allow(clippy::too_many_arguments)] // every field is needed, and a builder would only hide them
    pub fn new(
        peer: PeerId,
        did: Did,
        addr: Multiaddr,
        network: Network,
        reports: Reports,
        links: Arc<Vec<RealmLink>>,
        greeting: Arc<Greeting>,
        queue: usize,
    ) -> Self {
        Self {
            peer,
            did,
            addr,
            network,
            reports,
            links,
            handshake: Handshake::new(greeting, did),
            tags: PeerTags::default(),
            sender: PeerSender {
                outbox: Outbox::new(queue.max(16)),
                active: Activity::default(),
            },
            unopened: true,
            writer: None,
            opening: None,
            deferred: VecDeque::new(),
            in_flight: Arc::new(InFlight::default()),
            routes: HashMap::new(),
            admitted: Vec::new(),
            client: false,
            run: 0,
            no_room_there: false,
            realm_actors: HashMap::new(),
            budget: Arc::default(),
            said_bye: false,
            leaving: false,
            bye_answered: None,
            disconnected: false,
            refused: false,
            shares_nothing: false,
            released: false,
            inbound_streams: 0,
            streams_attached: 0,
            stream_lost: Arc::default(),
            after_restart: false,
            restart: false,
            connection_dropped: None,
            awaiting_network: false,
            restarting: Arc::default(),
            replaced_by: None,
            connected: false,
            hello_timeout: crate::Limits::default().hello_timeout,
        }
    }

    /// The peer's budget of cold verifications, shared with its other sessions.
    pub fn budget(mut self, budget: Arc<weft_auth::VerifyBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// How long the peer has to send its hello before the session ends.
    pub fn hello_timeout(mut self, timeout: Duration) -> Self {
        self.hello_timeout = timeout;
        self
    }

    /// The session starts in place of a member's session that ended to start again.
    pub fn after_restart(mut self, after: bool) -> Self {
        self.after_restart = after;
        self
    }

    /// Whether the session carried something since the last look: the node's budget reads it.
    pub(crate) fn activity(&self) -> Activity {
        self.sender.active.clone()
    }

    /// The session starts when the connection is known: created from a connection event, or
    /// from an inbound stream that overtook it and then told by [`Connected`].
    pub fn connected(mut self, connected: bool) -> Self {
        self.connected = connected;
        self
    }

    /// Opens the outbound stream (hello first, acknowledged) and starts the writer draining
    /// the queue. If the peer never acknowledges a stream, the session is given up.
    fn open_outbound(&mut self, ctx: &mut Context<Self>) {
        if !std::mem::take(&mut self.unopened) {
            return;
        }
        let outbox = self.sender.outbox.clone();
        let hello = match weft_net::framed::encode(
            &Frame::Hello(self.handshake.hello()),
            DEFAULT_MAX_FRAME,
        ) {
            Ok(hello) => hello,
            Err(e) => {
                warn!(peer = %self.did, error = %e, "our hello does not fit a frame; dropping the peer");
                outbox.abandon();
                return ctx.stop();
            }
        };
        let (network, peer, did, me) = (self.network.clone(), self.peer, self.did, ctx.address());
        let links = self.links.clone();
        let restarting = self.restarting.clone();
        let (opening, ended) = tokio::sync::oneshot::channel();
        self.opening = Some(opening);
        let ended = async move {
            let _ = ended.await;
        };
        self.writer = Some(self.network.spawn(async move {
            match open_acknowledged(&network, peer, &hello, ended).await {
                Ok(opened) if restarting.load(Ordering::Acquire) => {
                    // Acknowledged after the session ended to start again: the peer's session
                    // for it ends without closing the connection, and the next one gets the
                    // frames.
                    debug!(peer = %did.short(), "stream acknowledged after the session ended");
                    outbox.abandon();
                    report_lost(&outbox, &links);
                    let mut writer = opened.writer;
                    if let Ok(release) =
                        weft_net::framed::encode(&Frame::Release, DEFAULT_MAX_FRAME)
                    {
                        let _ = futures::AsyncWriteExt::write_all(&mut writer, &release).await;
                    }
                    let _ = futures::AsyncWriteExt::close(&mut writer).await;
                }
                Ok(opened) => {
                    let _reader = opened.reader;
                    let watched = outbox.clone();
                    let written = write_outbox(opened.writer, outbox).await;
                    report_lost(&watched, &links);
                    if let Err(e) = written {
                        // Nothing more can reach the peer on this session: it ends rather than
                        // silently lose what it sends. A peer that does not read loses its
                        // connection; otherwise the session decides (`WriterLost`).
                        if watched.overflowed() {
                            warn!(peer = %did, error = %e, "closing the connection of a peer that does not read");
                            let _ = network.disconnect(peer).await;
                        } else {
                            debug!(peer = %did.short(), error = %e, "writer stopped");
                            me.do_send(WriterLost);
                        }
                    }
                }
                Err(weft_net::NetError::Released) => {
                    debug!(peer = %did.short(), "the peer has no room for a session");
                    outbox.abandon();
                    report_lost(&outbox, &links);
                    me.do_send(ReleasedByPeer);
                }
                Err(weft_net::NetError::Abandoned) => {
                    debug!(peer = %did.short(), "the session ended before its stream opened");
                    outbox.abandon();
                    report_lost(&outbox, &links);
                }
                Err(weft_net::NetError::Refused { code, reason }) => {
                    debug!(peer = %did.short(), %code, %reason, "the peer refused the session");
                    outbox.abandon();
                    report_lost(&outbox, &links);
                    me.do_send(RefusedByPeer { code, reason });
                }
                Err(e) => {
                    warn!(peer = %did, error = %e, "cannot open a stream; dropping the peer");
                    metrics::counter!("weft_sessions_closed_total", "reason" => "unopened")
                        .increment(1);
                    outbox.abandon();
                    report_lost(&outbox, &links);
                    me.do_send(Failed);
                }
            }
        }));
    }

    /// Queues a control frame; one that cannot be encoded (our own, so a bug) is logged.
    fn send_control(&self, frame: &Frame) {
        match weft_net::framed::encode(frame, DEFAULT_MAX_FRAME) {
            Ok(bytes) => self.sender.send_control(&bytes),
            Err(e) => warn!(peer = %self.did, error = %e, "cannot encode a control frame"),
        }
    }

    /// The peer broke the greeting's order: it is not speaking weft, so the session ends.
    fn broke_greeting(
        &mut self,
        e: crate::core::handshake::HandshakeError,
        ctx: &mut Context<Self>,
    ) {
        warn!(peer = %self.did, error = %e, "closing the connection of a peer that broke the greeting");
        ctx.stop();
    }

    fn handle_hello(&mut self, hello: Hello, ctx: &mut Context<Self>) {
        let (client, run) = (hello.client, hello.run);
        match self.handshake.on_hello(hello) {
            Ok(Some(join)) => {
                self.client = client;
                self.run = run;
                self.send_control(&Frame::Join(join));
                self.reports.spoke.do_send(PeerSpoke { peer: self.peer });
            }
            Ok(None) => {
                debug!(peer = %self.did.short(), "the peer's hello again, on a reopened stream")
            }
            Err(e) => self.broke_greeting(e, ctx),
        }
    }

    fn handle_join(&mut self, join: Join, ctx: &mut Context<Self>) {
        let claims = match self.handshake.on_join(join) {
            Ok(claims) => claims,
            Err(e) => return self.broke_greeting(e, ctx),
        };
        if self.handshake.shares_nothing(&claims) {
            // No goodbye: that would make the peer forget this node in the DHT too. The
            // connection stays for Kademlia, and closes once idle (`limits.idle_timeout`).
            debug!(peer = %self.did.short(), "no realm in common: the session ends");
            self.shares_nothing = true;
            ctx.stop();
            return;
        }
        let mut admissions = Vec::new();
        for claim in claims {
            let Some(link) = self.links.get(claim.link) else {
                continue;
            };
            let admit = Admit {
                index: claim.index,
                peer: self.peer,
                did: self.did,
                chains: claim.chains,
                tags: self.tags.clone(),
                sender: self.sender.clone(),
                client: self.client,
                budget: self.budget.clone(),
                run: self.run,
            };
            let actor = link.actor.clone();
            let index = claim.index;
            admissions.push(async move { (index, actor.clone(), actor.send(admit).await) });
        }
        // Nothing else from this peer is handled until its realms are settled: an interest frame
        // right behind the join must find its route.
        ctx.wait(
            join_all(admissions)
                .into_actor(self)
                .map(|results, act, _ctx| {
                    let was_admitted = !act.admitted.is_empty();
                    for (index, actor, result) in results {
                        match result {
                            Ok(Ok(routes)) => {
                                act.routes.insert(index, routes);
                                act.realm_actors.insert(index, actor.clone());
                                act.admitted.push(actor);
                            }
                            Ok(Err(e)) => act.sender.send_denial(index, e.code(), e.to_string()),
                            Err(e) => debug!(error = %e, "realm actor gone during admission"),
                        }
                    }
                    if !was_admitted && !act.admitted.is_empty() {
                        act.reports.admitted.do_send(PeerAdmitted {
                            peer: act.peer,
                            client: act.client,
                        });
                    }
                    // Who this node is, only to a peer that has shown it belongs to one of its
                    // realms.
                    if !act.admitted.is_empty()
                        && let Some(welcome) = act.handshake.on_admitted()
                    {
                        act.send_control(&Frame::Welcome(welcome));
                    }
                }),
        );
    }

    fn handle_welcome(&mut self, welcome: Welcome, ctx: &mut Context<Self>) {
        let welcome = match self.handshake.on_welcome(welcome) {
            Ok(welcome) => welcome,
            Err(e) => return self.broke_greeting(e, ctx),
        };
        self.tags.set(welcome.tags.clone());
        self.reports.greeted.do_send(PeerGreeted {
            peer: self.peer,
            info: PeerInfo {
                did: self.did,
                agent: welcome.agent,
                tags: welcome.tags,
                addr: self.addr.to_string(),
            },
        });
    }
}

/// Whether the peer's inbound side, all its streams read, ended by a failure: the latest stream
/// attached (numbered from 1) failed. A peer that opened another stream and finished it ended
/// the session itself, whatever became of the one before.
fn ended_by_loss(latest: u64, latest_lost: u64) -> bool {
    latest != 0 && latest_lost == latest
}

/// Tells each realm how many of its publications queued for this peer will never reach it.
fn report_lost(outbox: &Outbox, links: &[RealmLink]) {
    for (index, frames) in outbox.take_lost().iter() {
        if let Some(link) = links.get(usize::from(index)) {
            link.losses.do_send(LostToSession { frames });
        }
    }
}

impl Actor for PeerConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.connected {
            self.open_outbound(ctx);
        }
        // Identities are free: a connection that never says hello holds memory for nothing.
        ctx.run_later(self.hello_timeout, |act, ctx| {
            if !act.handshake.heard() {
                debug!(peer = %act.did.short(), "no hello in time; closing the connection");
                metrics::counter!("weft_sessions_closed_total", "reason" => "hello_timeout")
                    .increment(1);
                ctx.stop();
            }
        });
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        self.restarting.store(self.restart, Ordering::Release);
        self.opening = None;
        // The writer ends with the session: it flushes what is queued and closes the stream;
        // one that never started releases whoever waits for room.
        if self.unopened {
            self.sender.outbox.abandon();
            report_lost(&self.sender.outbox, &self.links);
        } else {
            self.sender.outbox.close();
        }
        // The weft session is the connection's purpose: when it ends, so do the peer's
        // connections. Otherwise a half-dead connection would linger, and the next connection to
        // the peer would not be its first, so no new session would start. A peer that shares no
        // realm needs no session ever: its connection serves Kademlia until it is idle.
        if !self.disconnected && !self.shares_nothing && !self.released && !self.restart {
            let (network, peer) = (self.network.clone(), self.peer);
            self.network.spawn(async move {
                let _ = network.disconnect(peer).await;
            });
        }
        for realm in &self.admitted {
            realm.do_send(PeerLeft {
                peer: self.peer,
                how: Departure::of(self.said_bye, self.released && !self.restart),
            });
        }
        self.reports.gone.do_send(PeerGone {
            peer: self.peer,
            said_bye: self.said_bye,
            released: self.released,
            was_member: !self.admitted.is_empty() || self.after_restart,
            no_room_there: self.no_room_there,
            client: self.client,
            shares_nothing: self.shares_nothing,
            refused: self.refused,
            restart: self.restart,
            hands_over: self.replaced_by.is_some(),
        });
        // After `PeerGone`, so that the node has let this session go when the stream arrives.
        if let Some(stream) = self.replaced_by.take() {
            self.reports.rehome.do_send(Rehome {
                peer: self.peer,
                stream,
            });
        }
        Running::Stop
    }
}

/// Starts reading the peer's stream into this actor.
impl Handler<AttachInbound> for PeerConnection {
    type Result = ();

    fn handle(&mut self, msg: AttachInbound, ctx: &mut Context<Self>) {
        if self.ending() {
            // A new session's stream, come while this one ends: kept (the latest only) for the
            // session that follows, which the node starts with it once this one is gone.
            self.replaced_by = Some(msg.stream);
            return;
        }
        if self.handshake.joined() && self.restartable() {
            debug!(peer = %self.did.short(), "the peer started a new session; this one ends for it");
            self.restart = true;
            self.replaced_by = Some(msg.stream);
            return self.end_for_restart(ctx);
        }
        let (sink, mut frames) = mpsc::channel(INBOUND_QUEUE);
        self.streams_attached += 1;
        let number = self.streams_attached;
        let lost = self.stream_lost.clone();
        let network = self.network.clone();
        let (peer, did) = (self.peer, self.did);
        self.network.spawn(async move {
            let inbound = match accept(msg.stream).await {
                Ok(inbound) => inbound,
                // Told in its own version; the connection goes at the hello timeout.
                Err(e @ AcceptError::Version { .. }) => {
                    return debug!(peer = %did.short(), error = %e, "peer of another wire version refused");
                }
                Err(e) => return debug!(peer = %did.short(), error = %e, "inbound stream lost while accepting"),
            };
            let decoder = Decoder::new(DEFAULT_MAX_FRAME);
            match read_frames(inbound.reader, inbound.read, sink, decoder).await {
                Ok(()) => {}
                Err(ReadError::Io(e)) => {
                    debug!(peer = %did.short(), error = %e, "stream lost");
                    lost.fetch_max(number, Ordering::Release);
                }
                Err(e) => {
                    // A peer breaking the protocol loses its connection; nobody else is affected.
                    warn!(peer = %did, error = %e, "closing the connection of a peer that sent a bad frame");
                    let _ = network.disconnect(peer).await;
                }
            }
        });
        self.inbound_streams += 1;
        ctx.add_stream(futures::stream::poll_fn(move |cx| frames.poll_recv(cx)));
    }
}

/// Continues a batch held back while the peer's hello was being settled.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Resume;

impl Handler<Resume> for PeerConnection {
    type Result = ();

    fn handle(&mut self, _msg: Resume, ctx: &mut Context<Self>) {
        self.drain(ctx);
    }
}

/// Takes one read's worth of frames from the peer.
impl StreamHandler<Vec<Frame>> for PeerConnection {
    fn handle(&mut self, frames: Vec<Frame>, ctx: &mut Context<Self>) {
        // Frames still held back go first: order per peer is kept across batches.
        self.deferred.extend(frames);
        self.drain(ctx);
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // A replaced stream (the peer opened another) must not end the session.
        self.inbound_streams = self.inbound_streams.saturating_sub(1);
        let lost = self.stream_lost.load(Ordering::Acquire);
        if self.inbound_streams == 0 && ended_by_loss(self.streams_attached, lost) {
            return self.lost(ctx);
        }
        self.stop_when_read(ctx);
    }
}

impl PeerConnection {
    /// Dispatches held frames in order. Consecutive publications of one realm go to its router as
    /// one message. Stops while the context waits (a hello's admissions, a full router) and
    /// resumes after it.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        while !ctx.waiting() && ctx.state() == ActorState::Running {
            match next_step(&mut self.deferred) {
                Some(Step::Publishes(realm, publishes)) => {
                    self.forward_publishes(realm, publishes, ctx)
                }
                Some(Step::Frame(frame)) => self.dispatch(frame, ctx),
                None => break,
            }
        }
        if ctx.waiting() && !self.deferred.is_empty() {
            ctx.notify(Resume);
        }
        self.stop_when_read(ctx);
    }

    /// The session is ending, or about to: it takes no new stream.
    fn ending(&self) -> bool {
        self.restart || self.released || self.leaving || self.said_bye
    }

    /// A member's session, which may end to start again in place of itself (the node decides
    /// whether it does: `core::budget::Sessions::restart`).
    fn restartable(&self) -> bool {
        !self.admitted.is_empty() && !self.ending()
    }

    /// A stream of the session failed: nothing more comes from the peer on it, or reaches it.
    /// If the connection under it closed while another stays up (two nodes that dialed each
    /// other at once keep one connection of the two), a member's session ends without closing
    /// the connection, telling the peer with `Release` where it still can (a lost stream of its
    /// own may not have shown yet), and the node starts a new one on it at once. Otherwise the
    /// session ends with the connection, as any other.
    ///
    /// The stream's error shows before the network has processed its connection's close, so
    /// the session waits for the network's word: [`ConnectionDropped`] (another connection
    /// stays), [`Disconnected`] (none does), or neither within [`FLUSH_TIMEOUT`] (no connection
    /// closed: the stream alone failed), when the network is asked.
    fn lost(&mut self, ctx: &mut Context<Self>) {
        if self.awaiting_network {
            return;
        }
        if !self.restartable() {
            return self.end(ctx);
        }
        if self
            .connection_dropped
            .is_some_and(|at| at.elapsed() < FLUSH_TIMEOUT)
        {
            return self.restart_in_place(ctx);
        }
        self.awaiting_network = true;
        ctx.run_later(FLUSH_TIMEOUT, |act, ctx| {
            if !std::mem::take(&mut act.awaiting_network) || !act.restartable() {
                return;
            }
            let (network, peer) = (act.network.clone(), act.peer);
            ctx.wait(
                async move { network.is_connected(peer).await.unwrap_or(false) }
                    .into_actor(act)
                    .map(|connected, act, ctx| {
                        if connected && act.restartable() {
                            act.restart_in_place(ctx);
                        } else {
                            act.end(ctx);
                        }
                    }),
            );
        });
    }

    /// Ends the session to start again on the connection that stays.
    fn restart_in_place(&mut self, ctx: &mut Context<Self>) {
        debug!(peer = %self.did.short(), "a stream of the session was lost, the connection stays: starting it again");
        self.restart = true;
        if let Ok(restart) = weft_net::framed::encode(&Frame::Restart, DEFAULT_MAX_FRAME) {
            self.sender.send_control(&restart);
        }
        self.sender.outbox.close();
        self.end_for_restart(ctx);
    }

    /// Ends a session that is to start again once the peer's stream has ended too and what
    /// was read from it is handled (the peer ends its own session in turn, so its last frames
    /// are not lost), or after [`FLUSH_TIMEOUT`].
    fn end_for_restart(&mut self, ctx: &mut Context<Self>) {
        if self.inbound_streams == 0 {
            return self.drain(ctx);
        }
        ctx.run_later(FLUSH_TIMEOUT, |_, ctx| ctx.stop());
    }

    /// Ends the session: once what was read is handled if nothing more can be read, else now.
    fn end(&mut self, ctx: &mut Context<Self>) {
        if self.inbound_streams == 0 {
            self.drain(ctx);
        } else {
            ctx.stop();
        }
    }

    /// Ends the session once its last inbound stream has ended and every frame read from it has
    /// been handled (frames held back behind a wait are not dropped).
    fn stop_when_read(&mut self, ctx: &mut Context<Self>) {
        if self.inbound_streams == 0
            && self.deferred.is_empty()
            && !ctx.waiting()
            && ctx.state() == ActorState::Running
        {
            ctx.stop();
        }
    }

    /// Hands a run of publications to their realm's router.
    fn forward_publishes(
        &mut self,
        realm: RealmIndex,
        publishes: Vec<weft_wire::Publish>,
        ctx: &mut Context<Self>,
    ) {
        let peer = self.peer;
        self.hand_to_router(realm, ctx, |ticket| RemotePublish {
            peer,
            publishes,
            ticket,
        });
    }

    /// Hands the realm's router a message of this peer's, made with a ticket that counts it
    /// against the session's limit; a full mailbox pauses the session until it takes it.
    fn hand_to_router<M>(
        &mut self,
        realm: RealmIndex,
        ctx: &mut Context<Self>,
        msg: impl FnOnce(crate::sender::Ticket) -> M,
    ) where
        M: Message<Result = ()> + Send + 'static,
        Router: Handler<M>,
    {
        let Some(router) = self.routes.get(&realm).map(|r| &r.router) else {
            return;
        };
        match router.try_send(msg(self.in_flight.ticket())) {
            Ok(()) => {}
            Err(SendError::Full(msg)) => {
                ctx.wait(router.send(msg).into_actor(self).map(|_, _, _| ()));
            }
            Err(SendError::Closed(_)) => {}
        }
        self.pace(ctx);
    }

    /// Hands a member's offer or want of forwarded batches (`core::repair`) to its realm's router.
    fn hand_batch_ids(
        &mut self,
        batches: weft_wire::BatchIds,
        want: bool,
        ctx: &mut Context<Self>,
    ) {
        let peer = self.peer;
        self.hand_to_router(batches.realm, ctx, |ticket| RemoteBatchIds {
            peer,
            want,
            ids: batches.ids,
            ticket,
        });
    }

    /// The realm actors are behind with this peer's messages: stop reading it until they catch
    /// up, so the back-pressure reaches the sender through QUIC and what one peer can have
    /// queued here stays bounded.
    fn pace(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.count() >= IN_FLIGHT {
            let in_flight = self.in_flight.clone();
            ctx.wait(
                async move { in_flight.below(IN_FLIGHT).await }
                    .into_actor(self)
                    .map(|(), _, _| ()),
            );
        }
    }

    /// Acts on one frame other than a publication.
    fn dispatch(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        match frame {
            Frame::Hello(hello) => self.handle_hello(hello, ctx),
            Frame::Join(join) => self.handle_join(join, ctx),
            Frame::Welcome(welcome) => self.handle_welcome(welcome, ctx),
            Frame::Interest(interest) => {
                let Some(routes) = self.routes.get(&interest.realm()) else {
                    return;
                };
                match interest {
                    Interest::Advertise { procedure, .. } => {
                        routes.registry.do_send(RemoteAdvert {
                            peer: self.peer,
                            procedure,
                            provides: true,
                            ticket: self.in_flight.ticket(),
                        });
                    }
                    Interest::Unadvertise { procedure, .. } => {
                        routes.registry.do_send(RemoteAdvert {
                            peer: self.peer,
                            procedure,
                            provides: false,
                            ticket: self.in_flight.ticket(),
                        });
                    }
                    subscription => {
                        if let Some(realm) = self
                            .realm_actors
                            .get(&subscription.realm())
                            .filter(|_| self.client)
                        {
                            realm.do_send(RelayInterest {
                                peer: self.peer,
                                interest: subscription.clone(),
                                ticket: self.in_flight.ticket(),
                            });
                        }
                        routes.router.do_send(RemoteInterest {
                            peer: self.peer,
                            interest: subscription,
                            ticket: self.in_flight.ticket(),
                        });
                    }
                }
            }
            Frame::Call(call) => {
                if let Some(routes) = self.routes.get(&call.realm) {
                    self.sender.active.touch();
                    routes.registry.do_send(RemoteCall {
                        peer: self.peer,
                        call,
                        ticket: self.in_flight.ticket(),
                    });
                }
            }
            Frame::Reply(reply) => {
                // Only a member's replies answer anything: a stranger's keep nothing busy.
                if !self.admitted.is_empty() {
                    self.sender.active.touch();
                }
                if let Some(link) = self.links.get(usize::from(reply.realm)) {
                    link.registry.do_send(RemoteReply {
                        peer: self.peer,
                        reply,
                        ticket: self.in_flight.ticket(),
                    });
                }
            }
            Frame::Publish(publish) => self.forward_publishes(publish.realm, vec![publish], ctx),
            Frame::Forward(forward) => {
                let (peer, realm) = (self.peer, forward.realm);
                self.hand_to_router(realm, ctx, |ticket| RemoteForward {
                    peer,
                    forward,
                    ticket,
                });
            }
            Frame::Have(batches) => self.hand_batch_ids(batches, false, ctx),
            Frame::Want(batches) => self.hand_batch_ids(batches, true, ctx),
            // Only a realm we named to the peer can be refused: anything else is noise it made up.
            Frame::Denied(denial) if !self.handshake.named(denial.realm) => {
                debug!(peer = %self.did.short(), index = denial.realm, "denial for a realm we did not name ignored");
            }
            Frame::Denied(denial) => {
                let realm = self
                    .links
                    .get(usize::from(denial.realm))
                    .map(|l| l.realm.to_string())
                    .unwrap_or_default();
                warn!(peer = %self.did, %realm, code = ?denial.code, reason = ?denial.reason, "peer refused us in a realm");
                self.reports.notices.do_send(PeerNotice {
                    event: PeerEvent::Denied {
                        did: self.did,
                        realm,
                        code: denial.code,
                        reason: denial.reason,
                    },
                });
            }
            Frame::Refused(refusal) => {
                warn!(peer = %self.did, code = ?refusal.code, reason = ?refusal.reason, "peer refused the connection");
                ctx.stop();
            }
            Frame::Bye => {
                info!(peer = %self.did.short(), "peer is leaving");
                self.said_bye = true;
                if self.leaving {
                    if let Some(answered) = self.bye_answered.take() {
                        let _ = answered.send(());
                    }
                } else if let Ok(bye) = weft_net::framed::encode(&Frame::Bye, DEFAULT_MAX_FRAME) {
                    // The answer follows everything this node sent the peer, calls included
                    // (they travel on the data lane, which the control lane would overtake):
                    // once the peer has it, it has answered all of them, and may hang up. A full
                    // data lane takes nothing more; the control lane still carries the answer.
                    if !self.sender.send(&bye).queued {
                        self.sender.send_control(&bye);
                    }
                }
            }
            Frame::Release => {
                // The peer finishes its stream next, which ends this session; the connection
                // stays for Kademlia.
                debug!(peer = %self.did.short(), "peer released the session");
                self.released = true;
                self.sender.outbox.close();
            }
            // Ending already, its own way (both sides may lose a stream at once).
            Frame::Restart if self.ending() => {}
            // Not a release: the peer had room, and wants the session, on a new stream.
            Frame::Restart if self.restartable() => {
                debug!(peer = %self.did.short(), "the peer starts the session again; so does this side");
                self.restart = true;
                self.sender.outbox.close();
                self.end_for_restart(ctx);
            }
            Frame::Restart => {
                // No member's session to start again: it ends, and the connection stays for
                // the peer's next stream, as after a release.
                debug!(peer = %self.did.short(), "peer ended a session that is not to start again");
                self.released = true;
                self.sender.outbox.close();
            }
            Frame::Revoke(revoke) => {
                if let Some(realm) = self.realm_actors.get(&revoke.realm) {
                    realm.do_send(RemoteRevoke {
                        peer: self.peer,
                        record: revoke.record,
                        ticket: self.in_flight.ticket(),
                    });
                }
            }
            Frame::Delegate(delegation) => {
                // Only a client acts through this node; a member acts under its own chains.
                let realm = self
                    .realm_actors
                    .get(&delegation.realm)
                    .filter(|_| self.client);
                match realm {
                    Some(realm) => {
                        // Nothing more of the client's is read until the delegation is kept:
                        // the publications and calls that follow it go under it.
                        let taken = realm.send(RemoteDelegation {
                            peer: self.peer,
                            chains: delegation.chains,
                            ticket: self.in_flight.ticket(),
                        });
                        ctx.wait(taken.into_actor(self).map(|_, _, _| ()));
                    }
                    None => {
                        debug!(peer = %self.did.short(), "delegation from a member or for no realm ignored");
                    }
                }
            }
            // Only ever sent back on a stream we opened, never on the one we read.
            Frame::Accepted => debug!(peer = %self.did.short(), "unexpected Accepted ignored"),
        }
        if ctx.state() == ActorState::Running && !ctx.waiting() {
            self.pace(ctx);
        }
    }
}

/// Tells the peer its idle session is released, lets the writer flush (bounded), stops.
impl Handler<Release> for PeerConnection {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Release, _ctx: &mut Context<Self>) -> Self::Result {
        self.released = true;
        if let Ok(release) = weft_net::framed::encode(&Frame::Release, DEFAULT_MAX_FRAME) {
            self.sender.send_control(&release);
        }
        self.sender.outbox.close();
        let writer = self.writer.take();
        Box::pin(
            async move {
                if let Some(writer) = writer {
                    let _ = tokio::time::timeout(FLUSH_TIMEOUT, writer).await;
                }
            }
            .into_actor(self)
            .map(|(), _act, ctx| ctx.stop()),
        )
    }
}

/// The peer refused our stream for want of room: the session ends, the connection stays.
/// Tells the node, and ends a session the peer will not have.
impl Handler<RefusedByPeer> for PeerConnection {
    type Result = ();

    fn handle(&mut self, msg: RefusedByPeer, ctx: &mut Context<Self>) {
        self.refused = true;
        self.reports.notices.do_send(PeerNotice {
            event: PeerEvent::Refused {
                did: self.did,
                code: msg.code,
                reason: msg.reason,
            },
        });
        ctx.stop();
    }
}

impl Handler<ReleasedByPeer> for PeerConnection {
    type Result = ();

    fn handle(&mut self, _msg: ReleasedByPeer, ctx: &mut Context<Self>) {
        self.released = true;
        self.no_room_there = true;
        ctx.stop();
    }
}

/// The writer stopped on an error: nothing more reaches the peer on this session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct WriterLost;

impl Handler<WriterLost> for PeerConnection {
    type Result = ();

    fn handle(&mut self, _msg: WriterLost, ctx: &mut Context<Self>) {
        if ctx.state() == ActorState::Running {
            self.lost(ctx);
        }
    }
}

/// Ends a session that cannot work; `stopping` closes the connection.
impl Handler<Failed> for PeerConnection {
    type Result = ();

    fn handle(&mut self, _msg: Failed, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Opens the outbound stream once the connection is established.
impl Handler<Connected> for PeerConnection {
    type Result = ();

    fn handle(&mut self, _msg: Connected, ctx: &mut Context<Self>) {
        self.connected = true;
        self.open_outbound(ctx);
    }
}

/// The network reports one of the peer's connections closed, others staying.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ConnectionDropped;

impl Handler<ConnectionDropped> for PeerConnection {
    type Result = ();

    fn handle(&mut self, _msg: ConnectionDropped, ctx: &mut Context<Self>) {
        self.connection_dropped = Some(std::time::Instant::now());
        if std::mem::take(&mut self.awaiting_network) && self.restartable() {
            self.restart_in_place(ctx);
        }
    }
}

/// Stops the actor: the connection is gone.
impl Handler<Disconnected> for PeerConnection {
    type Result = ();

    fn handle(&mut self, _msg: Disconnected, ctx: &mut Context<Self>) {
        self.disconnected = true;
        ctx.stop();
    }
}

/// Says goodbye and waits for the peer's answer, then flushes the queue and waits for the peer
/// to hang up (all bounded), then stops.
///
/// The answer is what makes leaving lose no call: the peer sends it behind every frame it sent
/// before it saw our goodbye, so until it arrives this session still answers the peer's calls
/// (refused as `notFound` by a leaving registry, which the caller may try elsewhere).
impl Handler<Leave> for PeerConnection {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Leave, _ctx: &mut Context<Self>) -> Self::Result {
        self.leaving = true;
        let (answered, answer) = tokio::sync::oneshot::channel();
        if self.said_bye || self.unopened {
            // The peer left first, or was never greeted: nobody to wait for.
            let _ = answered.send(());
        } else {
            self.bye_answered = Some(answered);
        }
        if let Ok(bye) = weft_net::framed::encode(&Frame::Bye, DEFAULT_MAX_FRAME) {
            self.sender.send_control(&bye);
        }
        let deadline = tokio::time::Instant::now() + FLUSH_TIMEOUT;
        Box::pin(
            async move {
                let _ = tokio::time::timeout_at(deadline, answer).await;
            }
            .into_actor(self)
            .then(move |(), act, _ctx| {
                act.sender.outbox.close();
                let writer = act.writer.take();
                async move {
                // Nothing was ever sent: nothing to wait for.
                let Some(writer) = writer else { return false };
                let _ = tokio::time::timeout_at(deadline, writer).await;
                // The writer has only queued the stream's end: QUIC may still hold data the peer
                // has not received, and closing the connection now would discard it (a burst's
                // last publications were lost this way). The peer hangs up once it has read our
                // stream to its end, and `Disconnected` stops this actor before the deadline.
                tokio::time::sleep_until(deadline).await;
                true
                }
                .into_actor(act)
            })
            .map(|waited_out, act, ctx| {
                if waited_out {
                    debug!(peer = %act.did.short(), "peer did not hang up in time; unsent data may be lost");
                }
                ctx.stop();
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::ended_by_loss;

    #[test]
    fn the_latest_stream_says_how_the_peer_ended() {
        assert!(!ended_by_loss(0, 0), "no stream, nothing lost");
        assert!(!ended_by_loss(1, 0), "finished by the peer");
        assert!(ended_by_loss(1, 1));
        assert!(
            !ended_by_loss(2, 1),
            "an older stream failed, the latest was finished"
        );
        assert!(
            ended_by_loss(2, 2),
            "the latest failed, whatever the older did"
        );
    }
}
