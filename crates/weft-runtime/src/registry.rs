//! The `Registry` actor: the procedures of one realm, and the calls to them.
//!
//! Inbound:
//! - [`Advertise`] / [`Unadvertise`] from the application: `rpc/advertise` is authorized with this
//!   node's own chains; the procedure is announced to every member (a control frame) and in the
//!   DHT.
//! - [`CallProcedure`] from the application: `rpc/call` is checked locally, then the call is the
//!   calls core's (`core::calls`): which provider it goes to, when it may be
//!   tried elsewhere, how long it waits for a provider, and when it ends. This actor only sends
//!   what the core asks, runs local handlers, asks the DHT, and wakes the core at its deadlines.
//! - Clients (`core::relay`): a node that is a client sends every call it does not serve
//!   itself to its access node. The access node passes its clients' calls on to any provider it
//!   knows, and other members' calls on to its clients' procedures, which it advertises to the
//!   members (and in the DHT) as its own while a client provides them.
//! - [`Withdraw`] when the node shuts down: its procedures are withdrawn from every member, calls
//!   that still arrive are answered `notFound` (so their callers try another provider), and the
//!   handlers running finish before the node says goodbye.
//! - [`RemoteCall`] from a `PeerConnection`: the caller's `rpc/call` is authorized with the chains
//!   it presented **before** the handler runs; the handler runs on the network runtime under the
//!   caller's deadline (it is dropped when the deadline passes) and a panic becomes an error reply.
//! - [`RemoteReply`] goes to the calls core; [`RemoteAdvert`] records a peer's (authorized)
//!   procedure; `MemberJoined` / `MemberLeft` track the realm's members (the core ends a departed
//!   member's calls `Unavailable`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tracing::{Instrument, debug};
use weft_auth::{Action, AuthError, Chain, Grant};
use weft_identity::Did;
use weft_names::Name;
use weft_net::{Network, PeerId};
use weft_wire::{DEFAULT_MAX_FRAME, Fault, Frame, Interest, Outcome, Reply};

use crate::core::calls::{CallEvent, CallId, Calls, NewCall};
use crate::core::caps::{Cap, Verdict, count_refusal};
use crate::core::chains::ChainCache;
use crate::core::keys::procedure_key;
use crate::core::lookups::Lookups;
use crate::core::providers::{Provider, Strategy};
use crate::core::relay::Origin;
use crate::core::seat::Seat;
use crate::core::standing::Standing;
use crate::dht::{Dht, FindProviders, ForgetProvider, Provide, StopProviding};
use crate::members::Admitted;
use crate::router::{MemberJoined, MemberLeft};
use crate::telemetry::{self, CallMetrics};
use crate::waiters::Waiters;
use crate::{AdvertiseError, CallError, HandlerError, unix_now};

/// Handlers running at once for peers; past this, calls are answered `unavailable` at once.
const MAX_CONCURRENT_HANDLERS: usize = 1024;

/// A procedure's implementation: called with the context and the arguments, returns the result.
pub type ProcedureHandler = Arc<
    dyn Fn(CallContext, Bytes) -> BoxFuture<'static, Result<Bytes, HandlerError>> + Send + Sync,
>;

/// What a handler knows about the call it serves.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The caller, as proven by the transport (this node's own DID for local calls).
    pub caller: Did,
    /// The procedure called.
    pub procedure: Name,
    /// Why the caller may call it (the verified capability).
    pub grant: Grant,
    /// The caller node's tags.
    pub tags: Arc<Vec<(String, String)>>,
    /// When the caller stops waiting; the handler is dropped at this point.
    pub deadline: Instant,
}

/// Provide `procedure` in the realm.
#[derive(Message)]
#[rtype(result = "Result<(), AdvertiseError>")]
pub struct Advertise {
    /// The procedure.
    pub procedure: Name,
    /// Its implementation.
    pub handler: ProcedureHandler,
}

impl std::fmt::Debug for Advertise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Advertise")
            .field("procedure", &self.procedure)
            .finish_non_exhaustive()
    }
}

/// Stop providing `procedure`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unadvertise {
    /// The procedure.
    pub procedure: Name,
}

/// Call `procedure` with `payload`.
#[derive(Debug, Message, Clone)]
#[rtype(result = "Result<Bytes, CallError>")]
pub struct CallProcedure {
    /// The procedure.
    pub procedure: Name,
    /// The arguments.
    pub payload: Bytes,
    /// How long to wait for the reply.
    pub timeout: Duration,
    /// How to pick among providers.
    pub strategy: Strategy,
    /// A chain to act under for this call only, instead of this node's chains.
    pub chain: Option<Chain>,
    /// How the registry has routed the call so far; the default for a new call.
    pub route: Route,
}

/// For whom the registry routes a call: the application's (the default), or a peer's.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// Passed on for a peer: its `rpc/call` was checked, and this node's own is not needed.
    relay: Option<Origin<PeerId>>,
}

/// The node is leaving: withdraw this node's procedures, refuse new calls, and resolve once the
/// handlers running have finished (or `timeout` has passed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Withdraw {
    /// How long to wait for running handlers.
    pub timeout: Duration,
}

/// Resolves once at least `count` providers of `procedure` are known (this node included).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AwaitProviders {
    /// The procedure.
    pub procedure: Name,
    /// How many providers.
    pub count: usize,
    /// Fires when reached (dropped if the registry stops).
    pub reply: oneshot::Sender<()>,
}

/// A call from a peer.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteCall {
    /// The caller's peer.
    pub peer: PeerId,
    /// The call.
    pub call: weft_wire::Call,
    /// Counts the message against its session's limit until it is handled.
    pub ticket: crate::sender::Ticket,
}

/// A reply from a peer we called.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteReply {
    /// The provider's peer.
    pub peer: PeerId,
    /// The reply.
    pub reply: Reply,
    /// Counts the message against its session's limit until it is handled.
    pub ticket: crate::sender::Ticket,
}

/// A peer advertised (or withdrew) a procedure.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteAdvert {
    /// The peer.
    pub peer: PeerId,
    /// The procedure.
    pub procedure: Name,
    /// Advertised (`true`) or withdrawn.
    pub provides: bool,
    /// Counts the message against its session's limit until it is handled.
    pub ticket: crate::sender::Ticket,
}

/// A member as the registry holds it, in the calls core's table.
#[derive(Debug)]
struct Member {
    record: Arc<Admitted>,
    /// Its calls this node is running, waiting to run, or passing on, and their payload bytes.
    calls: Arc<InFlightCalls>,
    /// Its calls running here: a caller runs at most [`RUNNING_SHARE`] handlers at once.
    running: Arc<tokio::sync::Semaphore>,
    /// Its procedures here, against their cap.
    procedure_cap: Cap,
}

impl std::ops::Deref for Member {
    type Target = Admitted;

    fn deref(&self) -> &Admitted {
        &self.record
    }
}

impl crate::core::calls::Member for Member {
    fn client(&self) -> bool {
        self.record.client
    }
}

/// Providers of a procedure a lookup connects to: enough for the strategies and a failover,
/// without a connection to every provider of a popular procedure.
const PROVIDERS_DIALED: usize = 3;
/// How long after a provider lookup a call that still waits looks again.
const LOOKUP_AGAIN: Duration = Duration::from_secs(1);

/// Handlers one caller runs at once in a realm: a quarter of them, so that no caller can keep
/// the others waiting. Its further calls wait for one of its own to end.
const RUNNING_SHARE: usize = MAX_CONCURRENT_HANDLERS / 4;
/// Payload bytes of one caller's calls in flight here at most (one call always fits).
const MAX_PAYLOAD_IN_FLIGHT: usize = 16 * 1024 * 1024;

/// One peer's calls in flight here: how many, and their payloads' bytes.
#[derive(Debug, Default)]
struct InFlightCalls {
    state: std::sync::Mutex<(usize, usize)>,
}

/// One call of a peer in flight here (run, waiting or relayed), counted until it is answered.
struct CallSlot {
    calls: Arc<InFlightCalls>,
    bytes: usize,
}

impl CallSlot {
    /// A slot, if the peer has fewer than `limit` calls in flight and room for `bytes` more.
    fn take(calls: &Arc<InFlightCalls>, limit: usize, bytes: usize) -> Option<Self> {
        let mut state = calls
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (count, held) = *state;
        let fits = count == 0 || held + bytes <= MAX_PAYLOAD_IN_FLIGHT;
        if count >= limit || !fits {
            return None;
        }
        *state = (count + 1, held + bytes);
        Some(Self {
            calls: calls.clone(),
            bytes,
        })
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        let mut state = self
            .calls
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.0 = state.0.saturating_sub(1);
        state.1 = state.1.saturating_sub(self.bytes);
    }
}

/// The realm's procedures and calls.
pub struct Registry {
    /// The realm, and this node's identity and authority in it.
    seat: Arc<Seat>,
    /// Chains carried by callers' frames, parsed.
    chain_cache: ChainCache,
    network: Network,
    dht: Addr<Dht>,
    local: HashMap<Name, ProcedureHandler>,
    /// This node's calls, the providers they choose from, and the realm's members.
    calls: Calls<PeerId, Member>,
    /// Where each call's outcome goes.
    outcomes: HashMap<CallId, oneshot::Sender<Result<Bytes, CallError>>>,
    /// When the calls core is woken next.
    timer: Option<(Instant, SpawnHandle)>,
    /// The rounds of provider lookups under way.
    lookups: Lookups,
    /// `wait_for_providers` callers, by procedure and count.
    awaiting_count: Waiters<(Name, usize)>,
    /// Bounds the handlers running for peers.
    handler_slots: Arc<tokio::sync::Semaphore>,
    metrics: Arc<CallMetrics>,
    /// This node is a client: calls it does not serve go to its access node.
    client: bool,
    /// The node is shutting down: nothing more is served.
    leaving: bool,
    /// Peers' advertisements, which end when the chain they rest on does.
    adverts: Standing<(PeerId, Name), ()>,
    /// Procedures one peer may advertise here.
    max_procedures: usize,
    /// Calls of one peer run or relayed here at once.
    max_calls: usize,
    /// Longest a call is served.
    max_call_duration: Duration,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("realm", &self.seat.realm)
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// The registry of the realm `seat` names.
    pub(crate) fn new(seat: Arc<Seat>, network: Network, dht: Addr<Dht>) -> Self {
        Self {
            chain_cache: ChainCache::default(),
            network,
            dht,
            local: HashMap::new(),
            calls: Calls::new(false),
            outcomes: HashMap::new(),
            timer: None,
            lookups: Lookups::default(),
            awaiting_count: Waiters::default(),
            handler_slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_HANDLERS)),
            metrics: Arc::new(CallMetrics::new(seat.realm.name())),
            seat,
            client: false,
            leaving: false,
            adverts: Standing::default(),
            max_procedures: crate::Limits::default().max_procedures_per_peer,
            max_calls: crate::Limits::default().max_calls_per_peer,
            max_call_duration: crate::Limits::default().max_call_duration,
        }
    }

    /// Applies the per-peer caps and the longest call served.
    pub fn limits(mut self, limits: &crate::Limits) -> Self {
        self.max_procedures = limits.max_procedures_per_peer;
        self.max_calls = limits.max_calls_per_peer;
        self.max_call_duration = limits.max_call_duration;
        self
    }

    /// Marks this node as a client: calls it does not serve go to its access node, and it
    /// announces nothing in the DHT.
    pub fn client(mut self, client: bool) -> Self {
        self.client = client;
        self.calls = Calls::new(client);
        self
    }

    /// Sends an interest frame to every member but clients (they send every call to us).
    fn announce(&self, interest: Interest) {
        if let Ok(bytes) = weft_net::framed::encode(&Frame::Interest(interest), DEFAULT_MAX_FRAME) {
            for member in self.calls.members().map(|(_, m)| m).filter(|m| !m.client) {
                member.sender.send_control(&bytes);
            }
        }
    }

    /// Does this node offer `procedure` to the members: it serves it, or one of its clients does?
    fn offers(&self, procedure: &Name) -> bool {
        if self.leaving {
            return false;
        }
        self.calls
            .providers()
            .of(procedure)
            .iter()
            .any(|p| match p {
                Provider::Local => self.local.contains_key(procedure),
                Provider::Remote(peer) => self.calls.member(peer).is_some_and(|m| m.client),
            })
    }

    /// After a change to `procedure`'s providers: tells the members (and the DHT) if this node
    /// now offers it, or no longer does. `offered` is [`offers`](Self::offers) before the change.
    fn offer_changed(&mut self, procedure: &Name, offered: bool) {
        let offers = self.offers(procedure);
        if offers == offered {
            return;
        }
        let key = procedure_key(&self.seat.realm, procedure);
        if offers {
            self.announce(Interest::Advertise {
                realm: self.seat.index,
                procedure: procedure.clone(),
            });
            if !self.client {
                self.dht.do_send(Provide { key });
            }
        } else {
            self.announce(Interest::Unadvertise {
                realm: self.seat.index,
                procedure: procedure.clone(),
            });
            if !self.client {
                self.dht.do_send(StopProviding { key });
            }
        }
    }

    /// The chains a call acts under: its own chain alone if it has one (a gateway calling for a
    /// client must not lend the client its own authority), else this node's.
    fn chains_with(&self, extra: Option<&Chain>) -> Vec<Chain> {
        match extra {
            Some(chain) => vec![chain.clone()],
            None => self.seat.chains.to_vec(),
        }
    }

    /// A provider of `procedure` was announced: calls and `wait_for_providers` waiting for one
    /// go on.
    fn provider_appeared(&mut self, procedure: &Name, ctx: &mut Context<Self>) {
        self.calls.handle_provider(procedure, Instant::now());
        self.drive(ctx);
        let providers = self.calls.providers();
        self.awaiting_count
            .wake(|(p, count)| providers.of(p).len() >= *count);
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(16 * 1024);
        ctx.run_interval(crate::core::standing::SWEEP, |act, _ctx| act.sweep());
    }
}

/// Authorizes and registers a local procedure, then announces it.
impl Handler<Advertise> for Registry {
    type Result = Result<(), AdvertiseError>;

    fn handle(&mut self, msg: Advertise, ctx: &mut Context<Self>) -> Self::Result {
        let action = Action::Advertise(&msg.procedure);
        self.seat
            .authorizer
            .authorize_any(
                &self.seat.realm,
                &self.seat.chains,
                &self.seat.did,
                action,
                unix_now(),
            )
            .map_err(AdvertiseError::Unauthorized)?;
        if self.local.contains_key(&msg.procedure) {
            return Err(AdvertiseError::AlreadyProvided(msg.procedure.to_string()));
        }
        let offered = self.offers(&msg.procedure);
        self.local.insert(msg.procedure.clone(), msg.handler);
        self.calls
            .providers_mut()
            .add(msg.procedure.clone(), Provider::Local);
        self.offer_changed(&msg.procedure, offered);
        self.provider_appeared(&msg.procedure, ctx);
        Ok(())
    }
}

/// Withdraws a local procedure everywhere.
impl Handler<Unadvertise> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Unadvertise, _ctx: &mut Context<Self>) {
        let offered = self.offers(&msg.procedure);
        if self.local.remove(&msg.procedure).is_some() {
            self.calls
                .providers_mut()
                .remove(&msg.procedure, &Provider::Local);
            self.offer_changed(&msg.procedure, offered);
        }
    }
}

/// Authorizes the call and hands it to the calls core; see the module doc for what happens next.
impl Handler<CallProcedure> for Registry {
    type Result = ResponseFuture<Result<Bytes, CallError>>;

    fn handle(&mut self, msg: CallProcedure, ctx: &mut Context<Self>) -> Self::Result {
        // A relayed call's caller was checked where it arrived; the provider checks this node.
        let grant = match msg.route.relay {
            Some(_) => None,
            None => {
                let chains = self.chains_with(msg.chain.as_ref());
                let action = Action::Call(&msg.procedure);
                match self.seat.authorizer.authorize_any(
                    &self.seat.realm,
                    &chains,
                    &self.seat.did,
                    action,
                    unix_now(),
                ) {
                    Ok(grant) => Some(grant),
                    Err(e) => {
                        return Box::pin(
                            async move { Err(CallError::Unauthorized(e.to_string())) },
                        );
                    }
                }
            }
        };
        let request = NewCall {
            procedure: msg.procedure,
            payload: msg.payload,
            timeout: msg.timeout,
            strategy: msg.strategy,
            // A client's call passed on goes under the client's delegation where that allows it
            // (chosen where it arrived), else under this node's own chains.
            chain: msg.chain.as_ref().map(crate::core::chains::wire_chain),
            grant,
            relay: msg.route.relay,
            random: getrandom::u64().unwrap_or(0),
        };
        let id = self.calls.start(request, Instant::now());
        let (reply, result) = oneshot::channel();
        self.outcomes.insert(id, reply);
        self.drive(ctx);
        Box::pin(async move {
            result
                .await
                .unwrap_or_else(|_| Err(CallError::Unavailable("node stopping".into())))
        })
    }
}

impl Registry {
    /// Does what the calls core asks, until it asks nothing more, then sets its timer.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        while let Some(event) = self.calls.poll() {
            match event {
                CallEvent::Send {
                    id,
                    to,
                    procedure,
                    payload,
                    timeout,
                    chain,
                } => {
                    let call = Frame::Call(weft_wire::Call {
                        realm: self.seat.index,
                        id,
                        procedure,
                        // Rounded up: a sub-millisecond timeout must not arrive as "already past".
                        timeout_ms: u32::try_from(timeout.as_millis())
                            .unwrap_or(u32::MAX)
                            .max(1),
                        payload,
                        chain,
                    });
                    // Arguments over the frame limit: no provider can take them.
                    let queued = self.calls.member(&to).is_some_and(|member| {
                        weft_net::framed::encode(&call, DEFAULT_MAX_FRAME)
                            .is_ok_and(|bytes| member.sender.send(&bytes).queued)
                    });
                    if !queued {
                        self.calls.handle_unsent(id, Instant::now());
                    }
                }
                CallEvent::RunLocal {
                    id,
                    procedure,
                    payload,
                    grant,
                    deadline,
                } => {
                    let Some(reply) = self.outcomes.remove(&id) else {
                        continue;
                    };
                    let run = self.call_local(procedure, payload, grant, deadline);
                    self.network.spawn(async move {
                        let _ = reply.send(run.await);
                    });
                }
                CallEvent::LookUp { procedure } => {
                    if self.lookups.start(&procedure) {
                        self.look_up(procedure, ctx);
                    }
                }
                CallEvent::Done { id, result } => {
                    if let Some(reply) = self.outcomes.remove(&id) {
                        let _ = reply.send(result);
                    }
                }
            }
        }
        self.arm_timer(ctx);
    }

    /// Looks up the providers of `procedure` for the calls waiting for one. Providers found are
    /// dialed, their sessions admit them, and their advertisements wake the calls. While a call
    /// still waits, the lookup is made again [`LOOKUP_AGAIN`] later (`core::lookups`).
    fn look_up(&mut self, procedure: Name, ctx: &mut Context<Self>) {
        let lookup = self.dht.send(FindProviders {
            key: procedure_key(&self.seat.realm, &procedure),
            dial: PROVIDERS_DIALED,
            // Providers that just refused this node for room are left for others found.
            skip_released: true,
        });
        ctx.spawn(lookup.into_actor(self).map(move |_found, act, ctx| {
            let waiting = act.calls.waiting_for(&procedure);
            if !act.lookups.ended(&procedure, waiting) {
                return;
            }
            ctx.run_later(LOOKUP_AGAIN, move |act, ctx| {
                let waiting = act.calls.waiting_for(&procedure);
                if act.lookups.again(&procedure, waiting) {
                    act.look_up(procedure, ctx);
                }
            });
        }));
    }

    /// Wakes the core when its next deadline comes, if that is sooner than the wake-up set.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(at) = self.calls.poll_timeout() else {
            return;
        };
        if let Some((armed, _)) = self.timer
            && armed <= at
        {
            return;
        }
        if let Some((_, handle)) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        let after = at.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(after, |act, ctx| {
            act.timer = None;
            act.calls.handle_timeout(Instant::now());
            act.drive(ctx);
        });
        self.timer = Some((at, handle));
    }

    /// Runs this node's own handler, with this node as the caller.
    fn call_local(
        &self,
        procedure: Name,
        payload: Bytes,
        grant: Grant,
        deadline: Instant,
    ) -> impl Future<Output = Result<Bytes, CallError>> + Send + 'static {
        let handler = self.local.get(&procedure).cloned();
        let context = CallContext {
            caller: self.seat.did,
            procedure: procedure.clone(),
            grant,
            tags: Arc::new(Vec::new()),
            deadline,
        };
        let network = self.network.clone();
        async move {
            let Some(handler) = handler else {
                return Err(CallError::NotFound(procedure.to_string()));
            };
            result_of(run(&network, handler, context, payload, deadline).await)
        }
    }
}

/// Runs a handler on the network runtime under a deadline: its own task, so a panic is caught,
/// and dropped when the deadline passes.
async fn run(
    network: &Network,
    handler: ProcedureHandler,
    context: CallContext,
    payload: Bytes,
    deadline: Instant,
) -> Outcome {
    let task = network.spawn(handler(context, payload));
    let abort = task.abort_handle();
    match tokio::time::timeout_at(deadline.into(), task).await {
        Ok(Ok(Ok(bytes))) => Outcome::Ok(bytes),
        Ok(Ok(Err(e))) => Outcome::Err {
            code: e.code,
            message: e.message,
        },
        Ok(Err(e)) if e.is_panic() => Outcome::Err {
            code: "panic".into(),
            message: "the handler panicked".into(),
        },
        Ok(Err(e)) => fault(Fault::Unavailable, e.to_string()),
        Err(_) => {
            abort.abort();
            fault(Fault::Timeout, "the caller's deadline passed")
        }
    }
}

fn fault(code: Fault, message: impl Into<String>) -> Outcome {
    Outcome::Fault {
        code,
        message: message.into(),
    }
}

/// A served call's outcome, as a metric label.
fn served_outcome(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Ok(_) => "ok",
        Outcome::Err { .. } => "remote_error",
        Outcome::Fault { code, .. } => match code {
            Fault::NotFound => "not_found",
            Fault::Unauthorized => "unauthorized",
            Fault::Timeout => "timeout",
            Fault::Unavailable | Fault::Limit => "unavailable",
        },
    }
}

/// A call's result as a reply frame's outcome: what a relayed call tells its caller.
fn outcome_of(result: Result<Bytes, CallError>) -> Outcome {
    match result {
        Ok(bytes) => Outcome::Ok(bytes),
        Err(CallError::Remote { code, message }) => Outcome::Err { code, message },
        Err(e) => fault(e.fault().unwrap_or(Fault::Unavailable), e.detail()),
    }
}

/// A handler's error is always `Remote`; only the runtime's faults map to the other kinds.
fn result_of(outcome: Outcome) -> Result<Bytes, CallError> {
    match outcome {
        Outcome::Ok(bytes) => Ok(bytes),
        Outcome::Err { code, message } => Err(CallError::Remote { code, message }),
        Outcome::Fault { code, message } => Err(CallError::from_fault(code, message)),
    }
}

/// Authorizes a peer's call, then runs the handler and sends the reply.
impl Handler<RemoteCall> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RemoteCall, ctx: &mut Context<Self>) {
        let Some(member) = self.calls.member(&msg.peer) else {
            debug!(peer = %msg.peer, "call from a non-member dropped");
            return;
        };
        let call = msg.call;
        let sender = member.sender.clone();
        let (realm, id) = (call.realm, call.id);
        let calls = self.metrics.clone();
        let reply = move |outcome: Outcome| {
            calls.served(served_outcome(&outcome));
            // A handler's error may say anything: cut to what the caller's decoder accepts.
            let outcome = weft_wire::bounded_outcome(outcome);
            let encoded = weft_net::framed::encode(
                &Frame::Reply(Reply { realm, id, outcome }),
                DEFAULT_MAX_FRAME,
            )
            .or_else(|e| {
                let too_large = fault(
                    Fault::Unavailable,
                    format!("the result cannot be sent: {e}"),
                );
                weft_net::framed::encode(
                    &Frame::Reply(Reply {
                        realm,
                        id,
                        outcome: too_large,
                    }),
                    DEFAULT_MAX_FRAME,
                )
            });
            // Replies go on the control lane: the handler has run, so its outcome must not be
            // dropped by a full publication queue.
            if let Ok(bytes) = encoded {
                sender.send_control(&bytes);
            }
        };
        let action = Action::Call(&call.procedure);
        // A chain sent with the call is the only one it acts under; without one, those the caller
        // presented at admission.
        let acting = crate::core::roster::Credentials::acting(&member.record);
        let allowed = crate::core::authority::authorize_member(
            &self.seat.authorizer,
            &mut self.chain_cache,
            &self.seat.realm,
            call.chain.as_ref(),
            acting,
            action,
            unix_now(),
        );
        let grant = match allowed {
            Ok(grant) => grant,
            Err(e) => {
                debug!(caller = %member.did.short(), procedure = %call.procedure, error = %e, "call refused");
                return reply(fault(Fault::Unauthorized, e.to_string()));
            }
        };
        if self.leaving {
            // Never run: the caller may try another provider.
            return reply(fault(
                Fault::NotFound,
                format!("{} is leaving", self.seat.did),
            ));
        }
        // Run here or passed on, the call counts against its caller until it is answered.
        let Some(caller_slot) = CallSlot::take(&member.calls, self.max_calls, call.payload.len())
        else {
            count_refusal("calls");
            return reply(fault(
                Fault::Limit,
                format!(
                    "more than {} calls of this peer in flight here",
                    self.max_calls
                ),
            ));
        };
        let Some(handler) = self.local.get(&call.procedure).cloned() else {
            let origin = match member.client {
                true => Origin::Client(msg.peer),
                false => Origin::Member,
            };
            // A member reaches this node for its clients' procedures only; a client for any.
            if origin == Origin::Member && !self.offers(&call.procedure) {
                return reply(fault(
                    Fault::NotFound,
                    format!("{} is not provided here", call.procedure),
                ));
            }
            // A client's call goes on under its delegation where that allows it: the provider
            // checks the client's authority as delegated to this node (`core::delegation`).
            let under = match origin {
                Origin::Client(_) => member.record.delegation().and_then(|delegation| {
                    let action = Action::Call(&call.procedure);
                    delegation
                        .chain_for(&self.seat, &member.record.budget, action, unix_now())
                        .map(|chosen| chosen.chain.clone())
                }),
                Origin::Member => None,
            };
            let relayed = CallProcedure {
                procedure: call.procedure.clone(),
                payload: call.payload.clone(),
                timeout: Duration::from_millis(u64::from(call.timeout_ms)),
                strategy: Strategy::RoundRobin,
                chain: under,
                route: Route {
                    relay: Some(origin),
                },
            };
            let me = ctx.address();
            self.network.spawn(async move {
                let result = me
                    .send(relayed)
                    .await
                    .unwrap_or_else(|_| Err(CallError::Unavailable("node stopping".into())));
                drop(caller_slot);
                reply(outcome_of(result));
            });
            return;
        };
        // The caller's timeout, but no longer than this node serves any call.
        let deadline = Instant::now()
            + Duration::from_millis(u64::from(call.timeout_ms)).min(self.max_call_duration);
        let context = CallContext {
            caller: member.did,
            procedure: call.procedure.clone(),
            grant,
            tags: member.tags.get(),
            deadline,
        };
        let (slots, running) = (self.handler_slots.clone(), member.running.clone());
        let network = self.network.clone();
        let payload = call.payload.clone();
        let span = tracing::debug_span!(
            target: telemetry::TARGET,
            "serve",
            realm = %self.seat.realm.name(),
            procedure = %call.procedure,
            caller = %member.did,
        );
        self.network.spawn(
            async move {
                // Past its share, a caller's call waits for one of its own to end, within its
                // deadline; then it needs one of the realm's handlers.
                let outcome = match tokio::time::timeout_at(deadline.into(), running.acquire_owned()).await {
                    Err(_) => fault(Fault::Timeout, "the caller's deadline passed while its other calls ran"),
                    Ok(Err(_)) => fault(Fault::Unavailable, "the provider is stopping"),
                    Ok(Ok(turn)) => match slots.try_acquire_owned() {
                        Err(_) => fault(
                            Fault::Unavailable,
                            "the provider is at its limit of concurrent calls",
                        ),
                        Ok(slot) => {
                            let outcome = run(&network, handler, context, payload, deadline).await;
                            drop((slot, turn));
                            outcome
                        }
                    },
                };
                drop(caller_slot);
                tracing::debug!(target: telemetry::TARGET, outcome = served_outcome(&outcome), "served");
                reply(outcome);
            }
            .instrument(span),
        );
    }
}

/// The procedures this node provides in the realm.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Name>")]
pub struct LocalProcedures;

/// Lists local procedures, sorted.
impl Handler<LocalProcedures> for Registry {
    type Result = MessageResult<LocalProcedures>;

    fn handle(&mut self, _msg: LocalProcedures, _ctx: &mut Context<Self>) -> Self::Result {
        let mut names: Vec<Name> = self.local.keys().cloned().collect();
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        MessageResult(names)
    }
}

/// Answers at once if enough providers are known, or when they are.
impl Handler<AwaitProviders> for Registry {
    type Result = ();

    fn handle(&mut self, msg: AwaitProviders, _ctx: &mut Context<Self>) {
        let ready = self.calls.providers().of(&msg.procedure).len() >= msg.count;
        self.awaiting_count
            .wait((msg.procedure, msg.count), msg.reply, ready);
    }
}

/// Hands a reply to the calls core.
impl Handler<RemoteReply> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RemoteReply, ctx: &mut Context<Self>) {
        // The core ignores a reply to no call of ours, and one from a peer the call did not go to.
        let result = result_of(msg.reply.outcome);
        self.calls
            .handle_reply(&msg.peer, msg.reply.id, result, Instant::now());
        self.drive(ctx);
    }
}

/// Records a peer's procedure once `rpc/advertise` is authorized.
impl Handler<RemoteAdvert> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RemoteAdvert, ctx: &mut Context<Self>) {
        let provided = self
            .calls
            .providers()
            .of(&msg.procedure)
            .contains(&Provider::Remote(msg.peer));
        let held = self.calls.providers().count_of(&msg.peer);
        let Some(member) = self.calls.member_mut(&msg.peer) else {
            return;
        };
        if msg.provides
            && !provided
            && let Verdict::Refuse { tell } = member.procedure_cap.admit(held)
        {
            count_refusal("procedures");
            if tell {
                let limit = member.procedure_cap.limit();
                member.sender.send_denial(
                    member.index,
                    "limit",
                    format!(
                        "at most {limit} procedures per peer in {}; more are refused",
                        self.seat.realm
                    ),
                );
            }
            return;
        }
        let Some(member) = self.calls.member(&msg.peer) else {
            return;
        };
        let offered = self.offers(&msg.procedure);
        if !msg.provides {
            self.adverts.remove(&(msg.peer, msg.procedure.clone()));
            self.calls
                .providers_mut()
                .remove(&msg.procedure, &Provider::Remote(msg.peer));
            self.offer_changed(&msg.procedure, offered);
            return;
        }
        let action = Action::Advertise(&msg.procedure);
        match self.seat.authorizer.authorize_any_from(
            &self.seat.realm,
            &member.chains,
            &member.did,
            action,
            unix_now(),
            &member.budget,
        ) {
            Ok(grant) => {
                self.adverts
                    .insert((msg.peer, msg.procedure.clone()), (), &grant);
                self.calls
                    .providers_mut()
                    .add(msg.procedure.clone(), Provider::Remote(msg.peer));
                self.offer_changed(&msg.procedure, offered);
                self.provider_appeared(&msg.procedure, ctx);
            }
            Err(e) => {
                debug!(peer = %member.did.short(), procedure = %msg.procedure, error = %e, "advertisement refused")
            }
        }
    }
}

/// Records an admitted member and sends it this node's procedures.
impl Handler<MemberJoined> for Registry {
    type Result = ();

    fn handle(&mut self, msg: MemberJoined, ctx: &mut Context<Self>) {
        let member = msg.member;
        // A peer that reconnects starts afresh: what it provided before is re-announced.
        self.forget_member(&member.peer);
        // A client sends every call here: it needs no advertisements.
        if !member.client {
            for procedure in self
                .calls
                .providers()
                .procedures()
                .filter(|p| self.offers(p))
            {
                let advert = Frame::Interest(Interest::Advertise {
                    realm: self.seat.index,
                    procedure: procedure.clone(),
                });
                if let Ok(bytes) = weft_net::framed::encode(&advert, DEFAULT_MAX_FRAME) {
                    member.sender.send_control(&bytes);
                }
            }
        }
        let peer = member.peer;
        let member = Member {
            record: member,
            calls: Arc::default(),
            running: Arc::new(tokio::sync::Semaphore::new(RUNNING_SHARE)),
            procedure_cap: Cap::new(self.max_procedures),
        };
        // A client's calls waiting for its access node can go.
        self.calls
            .handle_member_joined(peer, member, Instant::now());
        self.drive(ctx);
    }
}

/// Forgets a departed member: its procedures, and its pending calls fail `Unavailable`.
impl Handler<MemberLeft> for Registry {
    type Result = ();

    fn handle(&mut self, msg: MemberLeft, ctx: &mut Context<Self>) {
        if msg.how.records_stale() && !self.client {
            // It left, or is no longer served here: its procedure records here would only
            // lead lookups to it.
            let keys: Vec<Vec<u8>> = self
                .calls
                .providers()
                .procedures_of(&msg.peer)
                .iter()
                .map(|procedure| procedure_key(&self.seat.realm, procedure))
                .collect();
            if !keys.is_empty() {
                self.dht.do_send(ForgetProvider {
                    peer: msg.peer,
                    keys,
                });
            }
        }
        self.forget_member(&msg.peer);
        self.calls.handle_member_left(&msg.peer);
        self.drive(ctx);
    }
}

/// Keeps the error type in one place for callers that only see codes.
impl From<AuthError> for CallError {
    fn from(e: AuthError) -> Self {
        CallError::Unauthorized(e.to_string())
    }
}

impl Registry {
    /// Removes what `peer` provided, withdrawing from the members what this node offered only
    /// for it.
    fn forget_member(&mut self, peer: &PeerId) {
        self.adverts.retain(|(p, _)| p != peer);
        let procedures = self.calls.providers().procedures_of(peer);
        let offered: Vec<bool> = procedures.iter().map(|p| self.offers(p)).collect();
        self.calls.providers_mut().remove_peer(peer);
        // Still a member while its offers are recomputed: `offers` must see it gone as a provider.
        for (procedure, offered) in procedures.iter().zip(offered) {
            self.offer_changed(procedure, offered);
        }
    }
}

/// Withdraws this node's procedures and waits for the handlers running.
impl Handler<Withdraw> for Registry {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Withdraw, _ctx: &mut Context<Self>) -> Self::Result {
        let offered: Vec<Name> = self
            .calls
            .providers()
            .procedures()
            .filter(|p| self.offers(p))
            .cloned()
            .collect();
        self.leaving = true;
        for procedure in &offered {
            self.offer_changed(procedure, true);
        }
        let slots = self.handler_slots.clone();
        Box::pin(async move {
            // Every slot free means no handler is running; new calls are refused meanwhile.
            let all = u32::try_from(MAX_CONCURRENT_HANDLERS).unwrap_or(u32::MAX);
            let _ = tokio::time::timeout(msg.timeout, slots.acquire_many(all)).await;
        })
    }
}

impl Registry {
    /// Ends the peers' advertisements whose chain expired or was revoked: calls stop going
    /// there, the peer is told, and the end is counted.
    fn sweep(&mut self) {
        let (calls, authorizer, realm) = (&self.calls, &self.seat.authorizer, &self.seat.realm);
        let now = unix_now();
        let ended = self
            .adverts
            .sweep_under(authorizer, now, |(peer, procedure), ()| {
                let member = calls
                    .member(peer)
                    .ok_or_else(|| AuthError::Unauthorized("no longer a member".into()))?;
                let action = Action::Advertise(procedure);
                authorizer.authorize_any(realm, &member.chains, &member.did, action, now)
            });
        for ((peer, procedure), (), e) in ended {
            if let Some(member) = self.calls.member(&peer) {
                let reason = format!("advertisement of {procedure} ended: {e}");
                debug!(peer = %member.did.short(), %reason, "standing grant ended");
                member.sender.send_denial(member.index, e.code(), reason);
            }
            telemetry::grant_ended(self.seat.realm.name(), "advertisement", e.code());
            let offered = self.offers(&procedure);
            self.calls
                .providers_mut()
                .remove(&procedure, &Provider::Remote(peer));
            self.offer_changed(&procedure, offered);
        }
    }
}
