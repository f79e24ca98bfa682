//! The `Registry` actor: the procedures of one realm, and the calls to them.
//!
//! Inbound:
//! - [`Advertise`] / [`Unadvertise`] from the application: `rpc/advertise` is authorized with this
//!   node's own chains; the procedure is announced to every member (a control frame) and in the
//!   DHT.
//! - [`CallProcedure`] from the application: `rpc/call` is checked locally, a provider is chosen
//!   by [`Strategy`] among those known ([`Providers`]), and the call is sent with an id and the
//!   caller's timeout. A call is retried on another provider only when it provably never left
//!   (the provider's queue refused it); once sent, a lost connection is [`CallError::Unavailable`],
//!   never a second run. With no provider known yet, the procedure's DHT records are looked up
//!   (providers found are dialed) and the call waits, up to a second within its timeout, for one
//!   to be announced, then fails [`CallError::NotFound`].
//! - [`RemoteCall`] from a `PeerConnection`: the caller's `rpc/call` is authorized with the chains
//!   it presented **before** the handler runs; the handler runs on the network runtime under the
//!   caller's deadline (it is dropped when the deadline passes) and a panic becomes an error reply.
//! - [`RemoteReply`] completes a pending call; [`RemoteAdvert`] records a peer's (authorized)
//!   procedure; `MemberJoined` / `MemberLeft` track the realm's members (a departed member's
//!   pending calls fail `Unavailable`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tracing::{Instrument, debug};
use weft_auth::{Action, AuthError, Authorizer, Chain, Grant, Realm};
use weft_identity::Did;
use weft_names::Name;
use weft_net::{Network, PeerId};
use weft_wire::{DEFAULT_MAX_FRAME, Frame, Interest, Outcome, RealmIndex, Reply};

use crate::chains::ChainCache;
use crate::dht::{Dht, FindProviders, Provide, StopProviding};
use crate::peer::PeerSender;
use crate::providers::{Provider, Providers, Strategy};
use crate::router::{MemberJoined, MemberLeft};
use crate::telemetry::{self, CallMetrics};
use crate::waiters::Waiters;
use crate::{AdvertiseError, CallError, HandlerError, unix_now};

/// How long a call waits, at most, for a first provider of its procedure to be announced.
const PROVIDER_GRACE: Duration = Duration::from_secs(1);
/// Longest deadline a call may carry (the wire's `u32` milliseconds, about 49 days).
const MAX_TIMEOUT: Duration = Duration::from_millis(u32::MAX as u64);
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
    /// A chain to act under for this call only, in addition to this node's chains.
    pub chain: Option<Chain>,
    /// Set when this is the retry after waiting for a provider to appear.
    pub waited: bool,
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
}

/// A reply from a peer we called.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteReply {
    /// The provider's peer.
    pub peer: PeerId,
    /// The reply.
    pub reply: Reply,
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
}

struct Member {
    did: Did,
    chains: Arc<Vec<Chain>>,
    tags: Arc<Vec<(String, String)>>,
    sender: PeerSender,
}

struct Pending {
    peer: PeerId,
    reply: oneshot::Sender<Result<Bytes, CallError>>,
}

/// The realm's procedures and calls.
pub struct Registry {
    realm: Realm,
    index: RealmIndex,
    authorizer: Arc<Authorizer>,
    /// Chains carried by callers' frames, parsed.
    chain_cache: ChainCache,
    own_did: Did,
    own_chains: Arc<Vec<Chain>>,
    network: Network,
    dht: Addr<Dht>,
    local: HashMap<Name, ProcedureHandler>,
    providers: Providers<PeerId>,
    members: HashMap<PeerId, Member>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    /// Calls waiting for a first provider of their procedure.
    awaiting_provider: Waiters<Name>,
    /// `wait_for_providers` callers, by procedure and count.
    awaiting_count: Waiters<(Name, usize)>,
    /// Bounds the handlers running for peers.
    handler_slots: Arc<tokio::sync::Semaphore>,
    calls: Arc<CallMetrics>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("realm", &self.realm)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// The registry of `realm`, at `index` in this node's hello.
    #[allow(clippy::too_many_arguments)] // the realm's identity, authority and I/O handles
    pub fn new(
        realm: Realm,
        index: RealmIndex,
        authorizer: Arc<Authorizer>,
        own_did: Did,
        own_chains: Arc<Vec<Chain>>,
        network: Network,
        dht: Addr<Dht>,
    ) -> Self {
        Self {
            index,
            authorizer,
            chain_cache: ChainCache::default(),
            own_did,
            own_chains,
            network,
            dht,
            local: HashMap::new(),
            providers: Providers::new(),
            members: HashMap::new(),
            pending: HashMap::new(),
            next_id: 1,
            awaiting_provider: Waiters::default(),
            awaiting_count: Waiters::default(),
            handler_slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_HANDLERS)),
            calls: Arc::new(CallMetrics::new(realm.name())),
            realm,
        }
    }

    fn announce(&self, interest: Interest) {
        if let Ok(bytes) = weft_net::framed::encode(&Frame::Interest(interest), DEFAULT_MAX_FRAME) {
            for member in self.members.values() {
                member.sender.send_control(&bytes);
            }
        }
    }

    /// The chains a call acts under: its own chain alone if it has one (a gateway calling for a
    /// client must not lend the client its own authority), else this node's.
    fn chains_with(&self, extra: Option<&Chain>) -> Vec<Chain> {
        match extra {
            Some(chain) => vec![chain.clone()],
            None => self.own_chains.to_vec(),
        }
    }

    fn provider_appeared(&mut self, procedure: &Name) {
        self.awaiting_provider.wake(|p| p == procedure);
        let providers = &self.providers;
        self.awaiting_count
            .wake(|(p, count)| providers.of(p).len() >= *count);
    }
}

/// The DHT key under which providers of `procedure` in `realm` announce themselves.
pub fn procedure_key(realm: &Realm, procedure: &Name) -> Vec<u8> {
    let mut key = crate::realm::membership_key(realm);
    key.extend_from_slice(b"/rpc/");
    key.extend_from_slice(procedure.as_str().as_bytes());
    key
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(16 * 1024);
    }
}

/// Authorizes and registers a local procedure, then announces it.
impl Handler<Advertise> for Registry {
    type Result = Result<(), AdvertiseError>;

    fn handle(&mut self, msg: Advertise, _ctx: &mut Context<Self>) -> Self::Result {
        let action = Action::Advertise(&msg.procedure);
        self.authorizer
            .authorize_any(
                &self.realm,
                &self.own_chains,
                &self.own_did,
                action,
                unix_now(),
            )
            .map_err(AdvertiseError::Unauthorized)?;
        if self.local.contains_key(&msg.procedure) {
            return Err(AdvertiseError::AlreadyProvided(msg.procedure.to_string()));
        }
        self.local.insert(msg.procedure.clone(), msg.handler);
        self.providers.add(msg.procedure.clone(), Provider::Local);
        self.announce(Interest::Advertise {
            realm: self.index,
            procedure: msg.procedure.clone(),
        });
        self.dht.do_send(Provide {
            key: procedure_key(&self.realm, &msg.procedure),
        });
        self.provider_appeared(&msg.procedure);
        Ok(())
    }
}

/// Withdraws a local procedure everywhere.
impl Handler<Unadvertise> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Unadvertise, _ctx: &mut Context<Self>) {
        if self.local.remove(&msg.procedure).is_some() {
            self.providers.remove(&msg.procedure, &Provider::Local);
            self.dht.do_send(StopProviding {
                key: procedure_key(&self.realm, &msg.procedure),
            });
            self.announce(Interest::Unadvertise {
                realm: self.index,
                procedure: msg.procedure,
            });
        }
    }
}

/// Chooses a provider and sends the call; see the module doc for retries and waiting.
impl Handler<CallProcedure> for Registry {
    type Result = ResponseActFuture<Self, Result<Bytes, CallError>>;

    fn handle(&mut self, mut msg: CallProcedure, ctx: &mut Context<Self>) -> Self::Result {
        msg.timeout = msg.timeout.min(MAX_TIMEOUT);
        let action = Action::Call(&msg.procedure);
        let chains = self.chains_with(msg.chain.as_ref());
        let grant = match self.authorizer.authorize_any(
            &self.realm,
            &chains,
            &self.own_did,
            action,
            unix_now(),
        ) {
            Ok(grant) => grant,
            Err(e) => return Box::pin(fut::ready(Err(CallError::Unauthorized(e.to_string())))),
        };
        let random = getrandom::u64().unwrap_or(0);
        let mut unreachable: Vec<Provider<PeerId>> = Vec::new();
        loop {
            let Some(provider) =
                self.providers
                    .choose(&msg.procedure, msg.strategy, random, &unreachable)
            else {
                if !unreachable.is_empty() {
                    let why = format!(
                        "{} provider(s) of {} could not be reached",
                        unreachable.len(),
                        msg.procedure
                    );
                    return Box::pin(fut::ready(Err(CallError::Unavailable(why))));
                }
                if msg.waited {
                    return Box::pin(fut::ready(Err(CallError::NotFound(
                        msg.procedure.to_string(),
                    ))));
                }
                // A provider may be about to be announced (a new member's advertisements follow
                // its admission): wait for one, briefly and within the call's own timeout, then
                // try once more with the time that is left.
                // Providers this node is not connected to are found through the procedure's own
                // DHT records: the lookup dials them, their sessions admit them, and their
                // advertisements wake this call.
                let lookup = self.dht.send(FindProviders {
                    key: procedure_key(&self.realm, &msg.procedure),
                });
                ctx.spawn(
                    async move {
                        let _ = lookup.await;
                    }
                    .into_actor(self),
                );
                let (appeared, wait) = oneshot::channel();
                self.awaiting_provider
                    .wait(msg.procedure.clone(), appeared, false);
                let me = ctx.address();
                let started = Instant::now();
                let grace = PROVIDER_GRACE.min(msg.timeout);
                return Box::pin(
                    async move {
                        let _ = tokio::time::timeout(grace, wait).await;
                        let timeout = msg.timeout.saturating_sub(started.elapsed());
                        if timeout.is_zero() {
                            return Err(CallError::NotFound(msg.procedure.to_string()));
                        }
                        let retry = CallProcedure {
                            waited: true,
                            timeout,
                            ..msg
                        };
                        me.send(retry)
                            .await
                            .unwrap_or_else(|_| Err(CallError::Unavailable("node stopping".into())))
                    }
                    .into_actor(self),
                );
            };
            match provider {
                Provider::Local => return Box::pin(self.call_local(msg, grant).into_actor(self)),
                Provider::Remote(peer) => {
                    let Some(member) = self.members.get(&peer) else {
                        unreachable.push(Provider::Remote(peer));
                        continue;
                    };
                    let id = self.next_id;
                    let call = Frame::Call(weft_wire::Call {
                        realm: self.index,
                        id,
                        procedure: msg.procedure.clone(),
                        // Rounded up: a sub-millisecond timeout must not arrive as "already past".
                        timeout_ms: u32::try_from(msg.timeout.as_millis())
                            .unwrap_or(u32::MAX)
                            .max(1),
                        payload: msg.payload.clone(),
                        chain: msg.chain.as_ref().map(crate::runtime::wire_chain),
                    });
                    let Ok(bytes) = weft_net::framed::encode(&call, DEFAULT_MAX_FRAME) else {
                        return Box::pin(fut::ready(Err(CallError::Unavailable(
                            "arguments too large".into(),
                        ))));
                    };
                    // Not queued means never sent: the one case where another provider may try.
                    if !member.sender.send(&bytes).queued {
                        unreachable.push(Provider::Remote(peer));
                        continue;
                    }
                    self.next_id += 1;
                    let (reply, result) = oneshot::channel();
                    self.pending.insert(id, Pending { peer, reply });
                    let timeout = msg.timeout;
                    return Box::pin(
                        async move { tokio::time::timeout(timeout, result).await }
                            .into_actor(self)
                            .map(move |outcome, act, _ctx| {
                                act.pending.remove(&id);
                                match outcome {
                                    Ok(Ok(result)) => result,
                                    Ok(Err(_)) => {
                                        Err(CallError::Unavailable("the call was abandoned".into()))
                                    }
                                    Err(_) => Err(CallError::Timeout),
                                }
                            }),
                    );
                }
            }
        }
    }
}

impl Registry {
    /// Runs this node's own handler, with this node as the caller.
    fn call_local(
        &self,
        msg: CallProcedure,
        grant: Grant,
    ) -> impl Future<Output = Result<Bytes, CallError>> + 'static {
        let handler = self.local.get(&msg.procedure).cloned();
        let context = CallContext {
            caller: self.own_did,
            procedure: msg.procedure.clone(),
            grant,
            tags: Arc::new(Vec::new()),
            deadline: Instant::now() + msg.timeout,
        };
        let network = self.network.clone();
        async move {
            let Some(handler) = handler else {
                return Err(CallError::NotFound(msg.procedure.to_string()));
            };
            let deadline = context.deadline;
            result_of(run(&network, handler, context, msg.payload, deadline).await)
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
        Ok(Err(e)) => fault("unavailable", e.to_string()),
        Err(_) => {
            abort.abort();
            fault("timeout", "the caller's deadline passed")
        }
    }
}

fn fault(code: &str, message: impl Into<String>) -> Outcome {
    Outcome::Fault {
        code: code.into(),
        message: message.into(),
    }
}

/// A served call's outcome, as a metric label.
fn served_outcome(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Ok(_) => "ok",
        Outcome::Err { .. } => "remote_error",
        Outcome::Fault { code, .. } => match code.as_str() {
            "notFound" => "not_found",
            "unauthorized" => "unauthorized",
            "timeout" => "timeout",
            _ => "unavailable",
        },
    }
}

/// A handler's error is always `Remote`; only the runtime's faults map to the other kinds.
fn result_of(outcome: Outcome) -> Result<Bytes, CallError> {
    match outcome {
        Outcome::Ok(bytes) => Ok(bytes),
        Outcome::Err { code, message } => Err(CallError::Remote { code, message }),
        Outcome::Fault { code, message } => Err(match code.as_str() {
            "notFound" => CallError::NotFound(message),
            "unauthorized" => CallError::Unauthorized(message),
            "timeout" => CallError::Timeout,
            _ => CallError::Unavailable(message),
        }),
    }
}

/// Authorizes a peer's call, then runs the handler and sends the reply.
impl Handler<RemoteCall> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RemoteCall, _ctx: &mut Context<Self>) {
        let Some(member) = self.members.get(&msg.peer) else {
            debug!(peer = %msg.peer, "call from a non-member dropped");
            return;
        };
        let call = msg.call;
        let sender = member.sender.clone();
        let (realm, id) = (call.realm, call.id);
        let calls = self.calls.clone();
        let reply = move |outcome: Outcome| {
            calls.served(served_outcome(&outcome));
            let encoded = weft_net::framed::encode(
                &Frame::Reply(Reply { realm, id, outcome }),
                DEFAULT_MAX_FRAME,
            )
            .or_else(|e| {
                let too_large = fault("unavailable", format!("the result cannot be sent: {e}"));
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
        let allowed = crate::router::authorize_member(
            &self.authorizer,
            &mut self.chain_cache,
            &self.realm,
            call.chain.as_ref(),
            &member.chains,
            &member.did,
            action,
        );
        let grant = match allowed {
            Ok(grant) => grant,
            Err(e) => {
                debug!(caller = %member.did.short(), procedure = %call.procedure, error = %e, "call refused");
                return reply(fault("unauthorized", e.to_string()));
            }
        };
        let Some(handler) = self.local.get(&call.procedure).cloned() else {
            return reply(fault(
                "notFound",
                format!("{} is not provided here", call.procedure),
            ));
        };
        let deadline = Instant::now() + Duration::from_millis(u64::from(call.timeout_ms));
        let context = CallContext {
            caller: member.did,
            procedure: call.procedure.clone(),
            grant,
            tags: member.tags.clone(),
            deadline,
        };
        let Ok(slot) = self.handler_slots.clone().try_acquire_owned() else {
            return reply(fault(
                "unavailable",
                "the provider is at its limit of concurrent calls",
            ));
        };
        let network = self.network.clone();
        let payload = call.payload.clone();
        let span = tracing::debug_span!(
            target: telemetry::TARGET,
            "serve",
            realm = %self.realm.name(),
            procedure = %call.procedure,
            caller = %member.did,
        );
        self.network.spawn(
            async move {
                let outcome = run(&network, handler, context, payload, deadline).await;
                drop(slot);
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
        let ready = self.providers.of(&msg.procedure).len() >= msg.count;
        self.awaiting_count
            .wait((msg.procedure, msg.count), msg.reply, ready);
    }
}

/// Completes a pending call.
impl Handler<RemoteReply> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RemoteReply, _ctx: &mut Context<Self>) {
        match self.pending.remove(&msg.reply.id) {
            Some(pending) if pending.peer == msg.peer => {
                let _ = pending.reply.send(result_of(msg.reply.outcome));
            }
            Some(pending) => {
                // A reply to someone else's call: put it back, ignore the impostor.
                debug!(peer = %msg.peer, "reply for a call sent to another peer ignored");
                self.pending.insert(msg.reply.id, pending);
            }
            None => debug!(
                id = msg.reply.id,
                "reply to no pending call (late or duplicate)"
            ),
        }
    }
}

/// Records a peer's procedure once `rpc/advertise` is authorized.
impl Handler<RemoteAdvert> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RemoteAdvert, _ctx: &mut Context<Self>) {
        let Some(member) = self.members.get(&msg.peer) else {
            return;
        };
        if !msg.provides {
            self.providers
                .remove(&msg.procedure, &Provider::Remote(msg.peer));
            return;
        }
        let action = Action::Advertise(&msg.procedure);
        match self.authorizer.authorize_any(
            &self.realm,
            &member.chains,
            &member.did,
            action,
            unix_now(),
        ) {
            Ok(_) => {
                self.providers
                    .add(msg.procedure.clone(), Provider::Remote(msg.peer));
                self.provider_appeared(&msg.procedure);
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

    fn handle(&mut self, msg: MemberJoined, _ctx: &mut Context<Self>) {
        self.providers.remove_peer(&msg.peer);
        for procedure in self.local.keys() {
            let advert = Frame::Interest(Interest::Advertise {
                realm: self.index,
                procedure: procedure.clone(),
            });
            if let Ok(bytes) = weft_net::framed::encode(&advert, DEFAULT_MAX_FRAME) {
                msg.sender.send_control(&bytes);
            }
        }
        self.members.insert(
            msg.peer,
            Member {
                did: msg.did,
                chains: msg.chains,
                tags: msg.tags,
                sender: msg.sender,
            },
        );
    }
}

/// Forgets a departed member: its procedures, and its pending calls fail `Unavailable`.
impl Handler<MemberLeft> for Registry {
    type Result = ();

    fn handle(&mut self, msg: MemberLeft, _ctx: &mut Context<Self>) {
        self.members.remove(&msg.peer);
        self.providers.remove_peer(&msg.peer);
        let lost: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.peer == msg.peer)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            if let Some(pending) = self.pending.remove(&id) {
                let _ = pending.reply.send(Err(CallError::Unavailable(
                    "the connection to the provider was lost".into(),
                )));
            }
        }
    }
}

/// Keeps the error type in one place for callers that only see codes.
impl From<AuthError> for CallError {
    fn from(e: AuthError) -> Self {
        CallError::Unauthorized(e.to_string())
    }
}
