//! The `Supervisor` actor: the node's lifecycle and its view of the network.
//!
//! Inbound: the network's [`NetEvent`] stream (attached in `started`, so it ends with the actor);
//! [`PeerGreeted`] / [`PeerGone`] from peer actors; [`ListenAddrs`], [`Peers`] and [`Shutdown`]
//! from the node's handle.
//!
//! It starts a `PeerConnection` per connected peer and hands it the peer's inbound stream. When a
//! peer that was a realm member (or a bootstrap peer) is lost without saying goodbye, it redials
//! it on a [`Backoff`] schedule with jitter; the new connection's hello and admission re-announce
//! every subscription, so applications never resubscribe. Peer arrivals and departures are
//! broadcast to the application as [`PeerEvent`]s.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::future::join_all;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};
use weft_auth::Budgets;
use weft_net::{Multiaddr, NetEvent, Network, PeerId, peer_did};

use crate::core::bare::Bare;
use crate::core::budget::{Room, Sessions, session_cap};
use crate::core::forward::Scarcity;
use crate::core::handshake::Greeting;
use crate::core::keys::{membership_key, membership_shard_key};
use crate::core::redial::{Ended, Next, Redials};
use crate::core::refusals::Refusals;
use crate::core::rendezvous;
use crate::core::silent::Silent;
use crate::peer::{
    AttachInbound, Connected, ConnectionDropped, Disconnected, Failed, Leave, PeerAdmitted,
    PeerConnection, PeerGone, PeerGreeted, PeerNotice, PeerSpoke, RealmLink, Rehome, Release,
    Reports,
};
use crate::registry::Withdraw;
use crate::sender::Activity;
use crate::{Backoff, BackoffPolicy, PeerEvent, PeerInfo};

/// Peers whose verification budgets are remembered at most.
const BUDGETS: usize = 4096;

/// How long a shutdown waits for peers to flush.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// How often the sessions' activity flags are read for the budget, at most: a session counts as
/// active from the sweep after it carried something.
const ACTIVITY_SWEEP: Duration = Duration::from_secs(5);

/// The listen addresses, once every configured listener is up.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ListenAddrs {
    /// Where to send them.
    pub reply: oneshot::Sender<Vec<Multiaddr>>,
}

/// The peers that welcomed us.
#[derive(Debug, Message)]
#[rtype(result = "Vec<PeerInfo>")]
pub struct Peers;

/// Say goodbye to every peer, flush, stop the network.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// A redial attempt is due.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Redial {
    peer: PeerId,
}

struct PeerEntry {
    actor: Addr<PeerConnection>,
    addr: Multiaddr,
    info: Option<PeerInfo>,
    active: Activity,
    /// The network reported the peer gone: its session is not started again in place.
    disconnected: bool,
}

/// Why no session was started.
#[derive(Debug, PartialEq, Eq)]
enum NoSession {
    /// The budget has no room: every session is a client's or carried something lately.
    NoRoom,
    /// The peer cannot have one (this node is a client of another, or the key is not Ed25519).
    Unfit,
}

/// The node.
pub struct Supervisor {
    network: Network,
    events: Option<mpsc::Receiver<NetEvent>>,
    links: Arc<Vec<RealmLink>>,
    greeting: Arc<Greeting>,
    peer_queue: usize,
    peers: HashMap<PeerId, PeerEntry>,
    /// Connected peers without a session (`core::bare`).
    bare: Bare<PeerId, Multiaddr>,
    /// The sessions within the connection budget (`core::budget`).
    sessions: Sessions<PeerId>,
    /// Peers whose session ended to start again and did not: the stream it hands over is
    /// dropped. Taken by that [`Rehome`], which follows at once.
    no_rehome: HashSet<PeerId>,
    /// How often the sessions' activity is read.
    activity_sweep: Duration,
    /// Realms holding fewer members than they dial: while any does, every connection starts a
    /// session, as a member found through Kademlia's own traffic is one it wants.
    short_realms: Arc<AtomicUsize>,
    /// Marked whenever a session is refused or released for room: realms forward meanwhile.
    scarcity: Arc<Scarcity>,
    /// Peers that refused a session (another wire version): logged once, not asked again.
    refused_by: Refusals<PeerId>,
    listen: Vec<Multiaddr>,
    expected_listeners: usize,
    listen_waiters: Vec<oneshot::Sender<Vec<Multiaddr>>>,
    bootstrap: Vec<Multiaddr>,
    reconnect: BackoffPolicy,
    /// Lost peers being dialed again.
    redials: Redials<PeerId, Multiaddr>,
    /// While the node has no peer at all, its bootstrap peers are dialed on this schedule: one
    /// that is down when the node starts is reached once it comes up.
    rebootstrap: Backoff,
    /// A `Rebootstrap` is scheduled.
    rebootstrapping: bool,
    /// This node is a client: it keeps one session, with its access node.
    client: bool,
    peer_events: broadcast::Sender<PeerEvent>,
    stopping: bool,
    /// Sessions whose peer has not said hello yet, capped.
    silent: Silent<PeerId>,
    /// Peers' budgets of cold verifications, across their sessions: a peer that reconnects does
    /// not get a fresh burst.
    budgets: Budgets<PeerId>,
    /// How long a new session waits for its peer's hello.
    hello_timeout: Duration,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A node over a started network.
    #[allow(clippy::too_many_arguments)] // the node is where configuration converges
    pub fn new(
        network: Network,
        events: mpsc::Receiver<NetEvent>,
        links: Arc<Vec<RealmLink>>,
        greeting: Arc<Greeting>,
        peer_queue: usize,
        expected_listeners: usize,
        bootstrap: Vec<Multiaddr>,
        reconnect: BackoffPolicy,
        peer_events: broadcast::Sender<PeerEvent>,
    ) -> Self {
        Self {
            network,
            events: Some(events),
            links,
            greeting,
            peer_queue,
            peers: HashMap::new(),
            bare: Bare::new(crate::Limits::default().max_silent_peers),
            sessions: Sessions::new(
                session_cap(crate::Limits::default().max_connections),
                crate::Limits::default().idle_session,
                crate::Limits::default().hello_timeout,
            ),
            no_rehome: HashSet::new(),
            activity_sweep: ACTIVITY_SWEEP,
            listen: Vec::new(),
            expected_listeners,
            listen_waiters: Vec::new(),
            bootstrap,
            reconnect,
            redials: Redials::new(reconnect),
            rebootstrap: Backoff::new(reconnect),
            rebootstrapping: false,
            client: false,
            peer_events,
            stopping: false,
            silent: Silent::new(crate::Limits::default().max_silent_peers),
            short_realms: Arc::default(),
            scarcity: Arc::new(Scarcity::new(Instant::now())),
            refused_by: Refusals::default(),
            budgets: Budgets::new(BUDGETS, weft_auth::VerifyBudget::default),
            hello_timeout: crate::Limits::default().hello_timeout,
        }
    }

    /// Applies the limits on silent sessions.
    pub fn limits(mut self, limits: &crate::Limits) -> Self {
        self.silent = Silent::new(limits.max_silent_peers);
        self.bare = Bare::new(limits.max_silent_peers);
        self.sessions = Sessions::new(
            session_cap(limits.max_connections),
            limits.idle_session,
            limits.hello_timeout,
        );
        // A quarter of the idle time, so that a busy session never looks idle.
        self.activity_sweep =
            (limits.idle_session / 4).clamp(Duration::from_millis(10), ACTIVITY_SWEEP);
        self.hello_timeout = limits.hello_timeout;
        self
    }

    /// Starts a session on every connection while `short` (realms short of members) is not 0.
    pub(crate) fn short_of_members(mut self, short: Arc<AtomicUsize>) -> Self {
        self.short_realms = short;
        self
    }

    /// Where to mark that sessions are scarce (shared with the realms' routers).
    pub(crate) fn scarcity(mut self, scarcity: Arc<Scarcity>) -> Self {
        self.scarcity = scarcity;
        self
    }

    /// Marks this node as a client: it keeps a session with its access node only.
    pub fn client(mut self, client: bool) -> Self {
        self.client = client;
        self
    }

    /// The session of `peer`, started if needed. `connected` says whether the connection event
    /// was seen (see [`Connected`]); `after_restart`, whether it starts in place of a member's
    /// session that ended to start again.
    fn connect_peer(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        connected: bool,
        after_restart: bool,
        ctx: &mut Context<Self>,
    ) -> Result<Addr<PeerConnection>, NoSession> {
        if let Some(entry) = self.peers.get(&peer) {
            return Ok(entry.actor.clone());
        }
        if self.client && !self.peers.is_empty() {
            // Nobody dials a client on purpose: this is not the node it is attached to.
            debug!(%peer, "a client talks to its access node only; connection closed");
            let network = self.network.clone();
            self.network
                .spawn(async move { network.disconnect(peer).await });
            return Err(NoSession::Unfit);
        }
        let Some(did) = peer_did(&peer) else {
            debug!(%peer, "not an Ed25519 peer; ignored");
            return Err(NoSession::Unfit);
        };
        if !self.make_room(peer) {
            // The connection still serves Kademlia, held like any without a session, and is
            // no longer spared for one.
            self.hold_bare(peer, addr, false, ctx);
            self.network.session(peer, false);
            return Err(NoSession::NoRoom);
        }
        self.network.session(peer, true);
        let actor = PeerConnection::new(
            peer,
            did,
            addr.clone(),
            self.network.clone(),
            Reports {
                greeted: ctx.address().recipient(),
                spoke: ctx.address().recipient(),
                admitted: ctx.address().recipient(),
                notices: ctx.address().recipient(),
                gone: ctx.address().recipient(),
                rehome: ctx.address().recipient(),
            },
            self.links.clone(),
            self.greeting.clone(),
            self.peer_queue,
        )
        .connected(connected)
        .after_restart(after_restart)
        .hello_timeout(self.hello_timeout)
        .budget(self.budgets.of(&peer));
        let active = actor.activity();
        let actor = actor.start();
        self.peers.insert(
            peer,
            PeerEntry {
                actor: actor.clone(),
                addr,
                info: None,
                active,
                disconnected: false,
            },
        );
        if let Some(evicted) = self.silent.started(peer)
            && let Some(entry) = self.peers.get(&evicted)
        {
            debug!(peer = %evicted, "too many silent peers; letting the oldest go");
            metrics::counter!("weft_sessions_closed_total", "reason" => "silent").increment(1);
            entry.actor.do_send(Failed);
        }
        self.count_silent();
        Ok(actor)
    }

    /// A peer opened a weft stream: its session takes it, started for it if need be, unless
    /// there is no room.
    fn inbound_stream(&mut self, peer: PeerId, stream: weft_net::Stream, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        // The stream can overtake the connection event: both come from different tasks.
        let (addr, connected) = match self.take_bare(&peer) {
            Some(addr) => (addr, true),
            None => (
                self.peers
                    .get(&peer)
                    .map(|e| e.addr.clone())
                    .unwrap_or_else(Multiaddr::empty),
                false,
            ),
        };
        let fresh = !self.peers.contains_key(&peer);
        match self.connect_peer(peer, addr, connected, false, ctx) {
            Ok(actor) => {
                actor.do_send(AttachInbound { stream });
                if fresh && !connected {
                    // The connection event is behind this stream, or never comes: a
                    // peer that reconnects before its last connection here closed (a
                    // client restarted with the same key) is connected already.
                    let network = self.network.clone();
                    self.network.spawn(async move {
                        if network.is_connected(peer).await.unwrap_or(false) {
                            actor.do_send(Connected);
                        }
                    });
                }
            }
            // Told, so that it neither waits for an answer nor tries again at once.
            Err(NoSession::NoRoom) => {
                self.network.spawn(async move {
                    if let Err(e) = weft_net::framed::refuse_released(stream).await {
                        debug!(%peer, error = %e, "could not refuse a stream");
                    }
                });
            }
            Err(NoSession::Unfit) => {}
        }
    }

    /// Room for a session with `peer` within the budget: made by releasing the session idle
    /// longest if need be. False if there is none (`core::budget`).
    fn make_room(&mut self, peer: PeerId) -> bool {
        if self.client {
            return true; // one session, with its access node
        }
        match self.sessions.start(peer, Instant::now()) {
            Room::Free => true,
            Room::Release(idle) => {
                debug!(peer = %idle, "releasing the session idle longest to make room");
                metrics::counter!("weft_sessions_closed_total", "reason" => "released")
                    .increment(1);
                if let Some(entry) = self.peers.get(&idle) {
                    entry.actor.do_send(Release);
                }
                true
            }
            Room::Full => {
                debug!(%peer, "no room for another session");
                // Every session is busy or new: whoever this is, it cannot be reached directly.
                self.scarcity.mark(Instant::now());
                metrics::counter!("weft_sessions_refused_total", "reason" => "budget").increment(1);
                false
            }
        }
    }

    /// Notes which sessions carried something since the last sweep.
    fn sweep_activity(&mut self) {
        let now = Instant::now();
        for (peer, entry) in &self.peers {
            if entry.active.take() {
                self.sessions.active(peer, now);
            }
        }
        metrics::gauge!("weft_sessions").set(self.sessions.len() as f64);
        if self.sessions.full() && !self.client {
            // A subscriber found now could not be given a session without losing another.
            self.scarcity.mark(now);
        }
        let forwarding = self.scarcity.forwarding(now);
        metrics::gauge!("weft_forwarding").set(if forwarding { 1.0 } else { 0.0 });
    }

    /// Keeps a connection without a session (`core::bare`): closes what it evicts, and this
    /// one at the hello timeout if no session started by then.
    fn hold_bare(&mut self, peer: PeerId, addr: Multiaddr, dialer: bool, ctx: &mut Context<Self>) {
        let held = self.bare.hold(peer, addr, dialer);
        if let Some(evicted) = held.evicted {
            debug!(peer = %evicted, "too many connections without a session; letting the oldest go");
            metrics::counter!("weft_sessions_closed_total", "reason" => "silent").increment(1);
            self.disconnect(evicted);
        }
        if let Some(hold) = held.timer {
            ctx.run_later(self.hello_timeout, move |act, _ctx| {
                if act.bare.expire(&peer, hold) {
                    debug!(%peer, "no session by the hello timeout; connection closed");
                    act.disconnect(peer);
                }
            });
        }
    }

    /// A connection without a session, no longer held as such.
    fn take_bare(&mut self, peer: &PeerId) -> Option<Multiaddr> {
        self.bare.take(peer)
    }

    fn disconnect(&self, peer: PeerId) {
        let network = self.network.clone();
        self.network
            .spawn(async move { network.disconnect(peer).await });
    }

    fn count_silent(&self) {
        metrics::gauge!("weft_silent_peers").set(self.silent.len() as f64);
    }

    fn is_bootstrap(&self, addr: &Multiaddr) -> bool {
        let endpoint = |a: &Multiaddr| {
            a.to_string()
                .split("/p2p/")
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        self.bootstrap.iter().any(|b| endpoint(b) == endpoint(addr))
    }

    /// Acts on what the redial schedule says about `peer`.
    fn schedule_redial(&self, peer: PeerId, next: Option<Next>, ctx: &mut Context<Self>) {
        match next {
            Some(Next::After(delay)) => {
                let attempt = self.redials.attempts(&peer);
                debug!(%peer, ?delay, attempt, "redial scheduled");
                ctx.notify_later(Redial { peer }, delay);
            }
            Some(Next::GiveUp { attempts }) => {
                warn!(%peer, "giving up reconnecting after {attempts} attempts");
            }
            None => {}
        }
    }
}

/// A uniform sample in [0, 1) for jitter; without OS randomness, no jitter.
fn random_unit() -> f64 {
    getrandom::u64()
        .map(|r| (r >> 11) as f64 / (1u64 << 53) as f64)
        .unwrap_or(0.0)
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(mut events) = self.events.take() {
            ctx.add_stream(futures::stream::poll_fn(move |cx| events.poll_recv(cx)));
        }
        ctx.run_interval(self.activity_sweep, |act, _ctx| act.sweep_activity());
        // The network dials the bootstrap peers once at start; they are dialed again only once
        // that fails or the node ends up alone (dialing again while the first dial is under way
        // would open a second connection to the same peer).
    }
}

/// Dials the bootstrap peers again if the node is alone.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Rebootstrap;

impl Supervisor {
    /// Starts the bootstrap schedule, unless it runs already or there is nothing to dial.
    fn start_rebootstrap(&mut self, ctx: &mut Context<Self>) {
        if !self.rebootstrapping && !self.stopping && !self.bootstrap.is_empty() {
            self.rebootstrap = Backoff::new(self.reconnect);
            self.schedule_rebootstrap(ctx);
        }
    }

    fn schedule_rebootstrap(&mut self, ctx: &mut Context<Self>) {
        match self.rebootstrap.next_delay(random_unit()) {
            Some(delay) => {
                self.rebootstrapping = true;
                ctx.notify_later(Rebootstrap, delay);
            }
            None => warn!(
                attempts = self.rebootstrap.attempts(),
                "giving up dialing the bootstrap peers"
            ),
        }
    }
}

impl Handler<Rebootstrap> for Supervisor {
    type Result = ();

    fn handle(&mut self, _msg: Rebootstrap, ctx: &mut Context<Self>) {
        self.rebootstrapping = false;
        if self.stopping || !self.peers.is_empty() {
            // Not alone: lost peers are the redial schedule's business, and being left alone
            // starts this schedule again.
            return;
        }
        debug!(
            attempt = self.rebootstrap.attempts(),
            "alone: dialing the bootstrap peers again"
        );
        for addr in self.bootstrap.clone() {
            let network = self.network.clone();
            ctx.spawn(
                async move { (network.dial(addr.clone()).await, addr) }
                    .into_actor(self)
                    .map(|(result, addr), act, _ctx| {
                        if let Err(e) = result {
                            debug!(%addr, error = %e, "bootstrap peer unreachable");
                            let _ = act.peer_events.send(PeerEvent::Unreachable {
                                addr: addr.to_string(),
                                error: e.to_string(),
                            });
                        }
                    }),
            );
        }
        self.schedule_rebootstrap(ctx);
    }
}

/// Translates network events into peer actors and bookkeeping.
impl StreamHandler<NetEvent> for Supervisor {
    fn handle(&mut self, event: NetEvent, ctx: &mut Context<Self>) {
        match event {
            NetEvent::Listening { addr } => {
                self.listen.push(addr);
                if self.listen.len() >= self.expected_listeners {
                    for waiter in self.listen_waiters.drain(..) {
                        let _ = waiter.send(self.listen.clone());
                    }
                }
            }
            NetEvent::PeerConnected {
                peer,
                addr,
                wanted,
                dialer,
            } => {
                self.redials.connected(&peer);
                let refused = self.refused_by.recent(&peer, Instant::now());
                match self.peers.get_mut(&peer) {
                    // Its inbound stream came first and started the session, which waits for
                    // this before opening its own stream.
                    Some(entry) => {
                        entry.addr = addr;
                        entry.actor.do_send(Connected);
                    }
                    None if !self.stopping
                        && !refused
                        && (wanted
                            || (self.short_realms.load(Ordering::Relaxed) > 0
                                && !self.sessions.cooling(&peer, Instant::now()))) =>
                    {
                        let _ = self.connect_peer(peer, addr, true, false, ctx);
                    }
                    // Not dialed for weft: a session starts if the peer opens one, or if this
                    // node finds it wanted. Otherwise the connection closes once idle.
                    None if !self.stopping => self.hold_bare(peer, addr, dialer, ctx),
                    None => {}
                }
            }
            NetEvent::PeerWanted { peer } => {
                let refused = self.refused_by.recent(&peer, Instant::now());
                if self.stopping || refused || self.peers.contains_key(&peer) {
                    return;
                }
                if let Some(addr) = self.take_bare(&peer) {
                    let _ = self.connect_peer(peer, addr, true, false, ctx);
                }
            }
            NetEvent::BootstrapFailed { addr, error } => {
                self.start_rebootstrap(ctx);
                let _ = self.peer_events.send(PeerEvent::Unreachable {
                    addr: addr.to_string(),
                    error,
                });
            }
            NetEvent::PeerDisconnected { peer } => {
                self.take_bare(&peer);
                if let Some(entry) = self.peers.get_mut(&peer) {
                    entry.disconnected = true;
                    entry.actor.do_send(Disconnected);
                }
            }
            NetEvent::ConnectionDropped { peer } => {
                if let Some(entry) = self.peers.get(&peer) {
                    entry.actor.do_send(ConnectionDropped);
                }
            }
            NetEvent::InboundStream { peer, stream } => self.inbound_stream(peer, stream, ctx),
            _ => {}
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        debug!("network event stream ended");
    }
}

/// Records a greeted peer and tells the application.
impl Handler<PeerGreeted> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: PeerGreeted, _ctx: &mut Context<Self>) {
        if let Some(entry) = self.peers.get_mut(&msg.peer) {
            info!(
                target: crate::telemetry::TARGET,
                peer = %msg.info.did,
                agent = ?msg.info.agent,
                addr = %msg.info.addr,
                "peer up"
            );
            entry.info = Some(msg.info.clone());
            // No receiver is not an error: the application may not be listening.
            let _ = self.peer_events.send(PeerEvent::Up(msg.info));
        }
    }
}

/// A peer is no longer silent.
impl Handler<PeerSpoke> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: PeerSpoke, _ctx: &mut Context<Self>) {
        self.silent.remove(&msg.peer);
        self.count_silent();
    }
}

/// A session's peer is a member of one of this node's realms now.
impl Handler<PeerAdmitted> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: PeerAdmitted, _ctx: &mut Context<Self>) {
        self.sessions.admitted(&msg.peer);
        // Only once admitted: a hello's word alone would hold a place for good.
        if msg.client {
            self.sessions.keep(&msg.peer);
        }
    }
}

/// Tells the application what a peer told us.
impl Handler<PeerNotice> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: PeerNotice, _ctx: &mut Context<Self>) {
        if let PeerEvent::Refused { did, code, reason } = &msg.event
            && let Some(peer) = weft_net::did_peer(did)
        {
            // Once per peer: a peer of another version stays so until one of them is upgraded.
            if self.refused_by.refused(peer, Instant::now()) {
                warn!(peer = %did, %code, %reason, "peer refused a session");
            }
        }
        let _ = self.peer_events.send(msg.event);
    }
}

/// Forgets a peer and, if it was worth it, starts redialing it.
impl Handler<PeerGone> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: PeerGone, ctx: &mut Context<Self>) {
        self.silent.remove(&msg.peer);
        self.count_silent();
        let Some(entry) = self.peers.remove(&msg.peer) else {
            return;
        };
        let mut msg = msg;
        let held = self.sessions.holds(&msg.peer);
        let restart = msg.restart
            && !self.stopping
            && !entry.disconnected
            && self.sessions.restart(msg.peer, Instant::now());
        self.sessions.end(&msg.peer);
        if restart {
            // The connection stays, and so does the budget's hold on it: the next session
            // starts on it now.
            metrics::counter!("weft_sessions_closed_total", "reason" => "restarted").increment(1);
            if let Some(info) = &entry.info {
                info!(target: crate::telemetry::TARGET, peer = %info.did, "peer down, its session starting again");
                let _ = self.peer_events.send(PeerEvent::Down { did: info.did });
            }
            let _ = self.connect_peer(msg.peer, entry.addr, true, true, ctx);
            return;
        }
        if msg.restart {
            // Not started again. The stream it hands over, if any, goes with it.
            if msg.hands_over {
                self.no_rehome.insert(msg.peer);
            }
            if !held {
                // Released to make room meanwhile: it ends as released, connection kept.
                msg.released = true;
            } else if !entry.disconnected && !self.stopping {
                // Past the bound: it ends as any other, connection and all.
                let (network, peer) = (self.network.clone(), msg.peer);
                self.network
                    .spawn(async move { network.disconnect(peer).await });
            }
        }
        self.network.session(msg.peer, false);
        if msg.released {
            let (network, peer) = (self.network.clone(), msg.peer);
            self.network
                .spawn(async move { network.released(peer).await });
        }
        if msg.released {
            self.sessions.released(msg.peer, Instant::now());
        }
        // A member's session (released by either side), or one we could not get, ended for
        // room: some subscriber may be out of reach. A stranger's `Release` says nothing.
        if msg.released && (msg.was_member || msg.no_room_there) {
            self.scarcity.mark(Instant::now());
        }
        if msg.released && !self.stopping {
            // The connection stays open for Kademlia: held as any without a session, so that a
            // lookup wanting the peer, or the peer's own stream, starts a session on it again.
            self.hold_bare(msg.peer, entry.addr.clone(), false, ctx);
        }
        // A peer that shares no realm, or released the session, is up, and its connection
        // still serves the DHT: no need to knock on the bootstrap peers again for it.
        if self.peers.is_empty() && !msg.shares_nothing && !msg.released {
            self.start_rebootstrap(ctx);
        }
        if let Some(info) = &entry.info {
            info!(target: crate::telemetry::TARGET, peer = %info.did, said_bye = msg.said_bye, "peer down");
            let _ = self.peer_events.send(PeerEvent::Down { did: info.did });
        }
        if msg.said_bye && !self.stopping {
            // Its DHT records here would only send lookups to a node that is gone.
            let shard = weft_net::peer_did(&msg.peer).map(|did| rendezvous::shard_of(&did));
            let keys = self
                .links
                .iter()
                .flat_map(|l| {
                    let base = membership_key(&l.realm);
                    let sharded = shard.map(|shard| membership_shard_key(&l.realm, shard));
                    std::iter::once(base).chain(sharded)
                })
                .collect();
            let network = self.network.clone();
            let peer = msg.peer;
            self.network
                .spawn(async move { network.forget(peer, keys).await });
        }
        // A peer that refused us (another wire version) would refuse again: not redialed,
        // bootstrap peer or not.
        if self.stopping || msg.refused {
            self.redials.forget(&msg.peer);
            return;
        }
        let ended = Ended {
            shares_nothing: msg.shares_nothing,
            // A released peer is up: it is dialed again when something needs it, not on a
            // schedule.
            said_bye: msg.said_bye || msg.released,
            was_member: msg.was_member,
            client: msg.client,
            bootstrap: self.is_bootstrap(&entry.addr),
        };
        let addr = Some(entry.addr).filter(|a| !a.is_empty());
        let next = self.redials.gone(msg.peer, addr, ended, random_unit());
        self.schedule_redial(msg.peer, next, ctx);
    }
}

/// Starts the session a peer's new stream asks for, once the one it replaces has ended.
impl Handler<Rehome> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Rehome, ctx: &mut Context<Self>) {
        if !self.no_rehome.remove(&msg.peer) {
            self.inbound_stream(msg.peer, msg.stream, ctx);
        }
    }
}

/// Dials a lost peer; on failure, schedules the next attempt.
impl Handler<Redial> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Redial, ctx: &mut Context<Self>) {
        if self.stopping || self.peers.contains_key(&msg.peer) {
            return;
        }
        let Some(addr) = self.redials.due(&msg.peer).cloned() else {
            return;
        };
        let network = self.network.clone();
        ctx.spawn(
            async move { network.dial(addr).await }
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(_) => info!(peer = %msg.peer, "reconnected"),
                    Err(e) => {
                        debug!(peer = %msg.peer, error = %e, "redial failed");
                        let next = act.redials.failed(msg.peer, random_unit());
                        act.schedule_redial(msg.peer, next, ctx);
                    }
                }),
        );
    }
}

/// Answers once every configured listener reported its address.
impl Handler<ListenAddrs> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ListenAddrs, _ctx: &mut Context<Self>) {
        if self.listen.len() >= self.expected_listeners {
            let _ = msg.reply.send(self.listen.clone());
        } else {
            self.listen_waiters.push(msg.reply);
        }
    }
}

/// Lists greeted peers.
impl Handler<Peers> for Supervisor {
    type Result = MessageResult<Peers>;

    fn handle(&mut self, _msg: Peers, _ctx: &mut Context<Self>) -> Self::Result {
        let peers = self.peers.values().filter_map(|entry| {
            let mut info = entry.info.clone()?;
            // A session started by the peer's stream can be greeted before the connection event
            // brings its address; the node's entry has it by now.
            if !entry.addr.is_empty() {
                info.addr = entry.addr.to_string();
            }
            Some(info)
        });
        MessageResult(peers.collect())
    }
}

/// Graceful shutdown: goodbye to every peer, bounded flush, then the network stops.
impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Shutdown, _ctx: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        self.redials = Redials::new(self.reconnect);
        // Procedures first: members stop choosing this node, calls already here finish and
        // their replies leave before the goodbye.
        let withdrawn: Vec<_> = self
            .links
            .iter()
            .map(|l| {
                l.registry.send(Withdraw {
                    timeout: SHUTDOWN_TIMEOUT,
                })
            })
            .collect();
        let peers: Vec<_> = self.peers.values().map(|e| e.actor.clone()).collect();
        let network = self.network.clone();
        Box::pin(
            async move {
                let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, join_all(withdrawn)).await;
                let leaving = peers.iter().map(|peer| peer.send(Leave));
                let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, join_all(leaving)).await;
                network.close().await;
            }
            .into_actor(self),
        )
    }
}
