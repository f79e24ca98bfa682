//! The calls this node makes in one realm, from the moment the caller is authorized to the
//! moment the call has an outcome: which provider each goes to, what happens to it when a reply,
//! a departure or a deadline arrives, and when it may be tried elsewhere.
//!
//! The rules:
//! - A provider is chosen by the call's [`Strategy`] among those known, skipping those the call
//!   may not use: this node when the caller holds no grant here, or when the call is passed on for
//!   a peer (it was checked for that peer, not for this node); a member, when a member's call is
//!   passed on (only clients' procedures are, see [`relay`](crate::core::relay)). A client that knows no
//!   provider sends the call to its access node, which knows more.
//! - A call goes to a second provider only when it provably never ran on the first: the call
//!   could not even be queued, or the provider answered `notFound`. Once sent, a lost connection
//!   ends the call `unavailable`, never a second run.
//! - With no provider known, the procedure's DHT records are looked up once (not by a client,
//!   whose access node does that) and the call waits for a provider to be announced, until its
//!   deadline. A call passed on for a client gives up a little earlier, so that the client hears
//!   `notFound` before its own deadline.
//!
//! # Driving it
//!
//! [`Calls`] owns no socket and reads no clock. Its owner:
//! 1. feeds it inputs: [`start`](Calls::start) a call, and `handle_*` the events that concern
//!    calls (a frame could not be queued, a reply, a provider announced, a member joined or left,
//!    time passed);
//! 2. after each input, takes its outputs with [`poll`](Calls::poll) until `None`, acting on each
//!    (sending a frame may fail: that is the input [`handle_unsent`](Calls::handle_unsent), whose
//!    outputs the same loop takes);
//! 3. arranges to call [`handle_timeout`](Calls::handle_timeout) at
//!    [`poll_timeout`](Calls::poll_timeout), whenever that changes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use bytes::Bytes;
use weft_auth::Grant;
use weft_names::Name;
use weft_wire::WireChain;

use crate::core::providers::{Provider, Providers, Strategy};
use crate::core::relay::{self, Origin};
use crate::error::CallError;

/// How long before a relayed call's deadline this node stops waiting for a provider, so that its
/// `notFound` reaches the caller in time.
pub(crate) const RELAY_MARGIN: Duration = Duration::from_millis(200);
/// Longest deadline a call may carry (the wire's `u32` milliseconds, about 49 days).
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_millis(u32::MAX as u64);

/// A call's identifier here, and on the wire in its `Call` frame and the provider's `Reply`.
pub(crate) type CallId = u64;

/// A call to make.
#[derive(Debug, Clone)]
pub(crate) struct NewCall<P> {
    /// The procedure.
    pub(crate) procedure: Name,
    /// The arguments.
    pub(crate) payload: Bytes,
    /// How long the caller waits (capped at [`MAX_TIMEOUT`]).
    pub(crate) timeout: Duration,
    /// How to pick among providers.
    pub(crate) strategy: Strategy,
    /// Sent with the call: the only chain the provider checks it under.
    pub(crate) chain: Option<WireChain>,
    /// Why this node's caller may call the procedure here; `None` for a call passed on for a
    /// peer, which never runs here.
    pub(crate) grant: Option<Grant>,
    /// For whom the call is passed on, if it is.
    pub(crate) relay: Option<Origin<P>>,
    /// A uniform sample for [`Strategy::Random`].
    pub(crate) random: u64,
}

/// What the owner of [`Calls`] must do next.
#[derive(Debug)]
pub(crate) enum CallEvent<P> {
    /// Queue `call` for `to`. If it cannot be queued, report [`Calls::handle_unsent`].
    Send {
        /// The call, and the frame's `id`.
        id: CallId,
        /// The provider (or the access node).
        to: P,
        /// The procedure.
        procedure: Name,
        /// The arguments.
        payload: Bytes,
        /// The time left, for the frame's `timeout_ms`.
        timeout: Duration,
        /// The chain to send with it.
        chain: Option<WireChain>,
    },
    /// Run this node's own handler; the call is the owner's from now on.
    RunLocal {
        /// The call.
        id: CallId,
        /// The procedure.
        procedure: Name,
        /// The arguments.
        payload: Bytes,
        /// The caller's grant.
        grant: Grant,
        /// When the caller stops waiting.
        deadline: Instant,
    },
    /// Look the procedure's providers up in the DHT (those found are dialed; their
    /// advertisements come back as [`Calls::handle_provider`]).
    LookUp {
        /// The procedure.
        procedure: Name,
    },
    /// The call is over.
    Done {
        /// The call.
        id: CallId,
        /// Its outcome.
        result: Result<Bytes, CallError>,
    },
}

/// What the calls core needs to know of a member: the registry keeps its own per-member
/// state in the same entry, so the realm's members are held once here.
pub(crate) trait Member {
    /// It is a client of this node.
    fn client(&self) -> bool;
}

/// A member known only by whether it is a client.
impl Member for bool {
    fn client(&self) -> bool {
        *self
    }
}

/// The calls in progress, and the providers they choose from.
#[derive(Debug)]
pub(crate) struct Calls<P, M = bool> {
    /// This node is a client: what it does not serve goes to its access node.
    client: bool,
    providers: Providers<P>,
    /// The realm's members here. Ordered maps here and below: the same inputs give the same
    /// outputs in the same order.
    members: BTreeMap<P, M>,
    calls: BTreeMap<CallId, Call<P>>,
    /// When each call gives up, soonest first.
    timers: BTreeSet<(Instant, CallId)>,
    events: VecDeque<CallEvent<P>>,
    next_id: CallId,
}

#[derive(Debug)]
struct Call<P> {
    procedure: Name,
    payload: Bytes,
    strategy: Strategy,
    chain: Option<WireChain>,
    grant: Option<Grant>,
    relay: Option<Origin<P>>,
    random: u64,
    deadline: Instant,
    /// When the call stops waiting for a provider.
    give_up: Instant,
    /// Providers that answered `notFound`, or where it could not be queued: it never ran there.
    skip: Vec<P>,
    /// How many of `skip` could not be reached at all.
    unreachable: usize,
    /// The DHT was asked already.
    looked_up: bool,
    state: State<P>,
    /// The instant its timer is set for.
    timer: Instant,
}

#[derive(Debug, Clone, PartialEq)]
enum State<P> {
    /// Sent to `to` (through the access node if `via_access`), waiting for the reply.
    Sent { to: P, via_access: bool },
    /// No provider yet.
    Waiting,
}

impl<P: Clone + Ord + Hash + std::fmt::Debug, M: Member> Calls<P, M> {
    /// No call yet; `client` if this node is a client.
    pub(crate) fn new(client: bool) -> Self {
        Self {
            client,
            providers: Providers::new(),
            members: BTreeMap::new(),
            calls: BTreeMap::new(),
            timers: BTreeSet::new(),
            events: VecDeque::new(),
            next_id: 1,
        }
    }

    /// The providers known. A change that adds one is reported with
    /// [`handle_provider`](Self::handle_provider).
    pub(crate) fn providers(&self) -> &Providers<P> {
        &self.providers
    }

    /// The providers, to change.
    pub(crate) fn providers_mut(&mut self) -> &mut Providers<P> {
        &mut self.providers
    }

    /// Calls in progress.
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether a call to `procedure` still waits for a provider: a lookup that found none is
    /// worth making again, since a record just placed may not have reached the peers asked.
    pub(crate) fn waiting_for(&self, procedure: &Name) -> bool {
        self.calls
            .values()
            .any(|call| matches!(call.state, State::Waiting) && call.procedure == *procedure)
    }

    /// Starts a call at `now`.
    pub(crate) fn start(&mut self, request: NewCall<P>, now: Instant) -> CallId {
        let id = self.next_id;
        self.next_id += 1;
        let timeout = request.timeout.min(MAX_TIMEOUT);
        let deadline = now + timeout;
        // Waiting for a client, leave its answer the time to travel back: a client told
        // `notFound` before its own deadline knows what happened; one that times out does not.
        let give_up = match request.relay {
            Some(_) => deadline - (timeout / 10).min(RELAY_MARGIN),
            None => deadline,
        };
        self.calls.insert(
            id,
            Call {
                procedure: request.procedure,
                payload: request.payload,
                strategy: request.strategy,
                chain: request.chain,
                grant: request.grant,
                relay: request.relay,
                random: request.random,
                deadline,
                give_up,
                skip: Vec::new(),
                unreachable: 0,
                looked_up: false,
                state: State::Waiting,
                timer: deadline,
            },
        );
        self.dispatch(id, now);
        id
    }

    /// The next thing to do, if any.
    pub(crate) fn poll(&mut self) -> Option<CallEvent<P>> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// The call `id` could not be queued for its provider: it never left, so another may take it.
    pub(crate) fn handle_unsent(&mut self, id: CallId, now: Instant) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let State::Sent { to, .. } = std::mem::replace(&mut call.state, State::Waiting) {
            call.skip.push(to);
            call.unreachable += 1;
        }
        self.dispatch(id, now);
    }

    /// `from` answered call `id`. A reply from anyone but the peer the call went to is ignored.
    pub(crate) fn handle_reply(
        &mut self,
        from: &P,
        id: CallId,
        result: Result<Bytes, CallError>,
        now: Instant,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let State::Sent { to, via_access } = &call.state else {
            return;
        };
        if to != from {
            return;
        }
        // `notFound` means it never ran there; the access node tried every provider it knows.
        let retry =
            matches!(result, Err(CallError::NotFound(_))) && !*via_access && now < call.deadline;
        if retry {
            call.skip.push(from.clone());
            call.state = State::Waiting;
            self.dispatch(id, now);
        } else {
            self.finish(id, result);
        }
    }

    /// A provider of `procedure` was announced: calls waiting for one go now (a client's, whatever
    /// their procedure: its access node may have come).
    pub(crate) fn handle_provider(&mut self, procedure: &Name, now: Instant) {
        let client = self.client;
        self.wake(|call| client || call.procedure == *procedure, now);
    }

    /// The member `peer`, if it is one.
    pub(crate) fn member(&self, peer: &P) -> Option<&M> {
        self.members.get(peer)
    }

    /// The member `peer`, to change what the caller keeps in it.
    pub(crate) fn member_mut(&mut self, peer: &P) -> Option<&mut M> {
        self.members.get_mut(peer)
    }

    /// The realm's members here.
    pub(crate) fn members(&self) -> impl Iterator<Item = (&P, &M)> {
        self.members.iter()
    }

    /// `peer` was admitted to the realm, as `member`.
    pub(crate) fn handle_member_joined(&mut self, peer: P, member: M, now: Instant) {
        self.members.insert(peer, member);
        if self.client {
            // The access node is here: calls waiting for it can go.
            self.wake(|_| true, now);
        }
    }

    /// Dispatches again the waiting calls `which` selects.
    fn wake(&mut self, which: impl Fn(&Call<P>) -> bool, now: Instant) {
        let woken: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, call)| call.state == State::Waiting && which(call))
            .map(|(id, _)| *id)
            .collect();
        for id in woken {
            self.dispatch(id, now);
        }
    }

    /// `peer` left the realm: what it provided goes, and calls sent to it end `unavailable`
    /// (they may have run there).
    pub(crate) fn handle_member_left(&mut self, peer: &P) {
        self.members.remove(peer);
        self.providers.remove_peer(peer);
        let lost: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, call)| matches!(&call.state, State::Sent { to, .. } if to == peer))
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.finish(
                id,
                Err(CallError::Unavailable(
                    "the connection to the provider was lost".into(),
                )),
            );
        }
    }

    /// Time has come to `now`: calls past their deadline end, `timeout` if they were sent and
    /// `notFound` if they were still waiting for a provider.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(call) = self.calls.get(&id) else {
                continue;
            };
            let result = match call.state {
                State::Sent { .. } => Err(CallError::Timeout),
                State::Waiting => Err(CallError::NotFound(call.procedure.to_string())),
            };
            self.finish(id, result);
        }
    }

    /// Sends call `id` to a provider it may use, runs it here, or makes it wait.
    fn dispatch(&mut self, id: CallId, now: Instant) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let mut exclude: Vec<Provider<P>> = self
            .providers
            .of(&call.procedure)
            .iter()
            .filter(|p| !self.may_use(call, p))
            .cloned()
            .collect();
        exclude.extend(call.skip.iter().cloned().map(Provider::Remote));
        let (procedure, strategy, random) = (call.procedure.clone(), call.strategy, call.random);
        let chosen = self
            .providers
            .choose(&procedure, strategy, random, &exclude)
            .map(|provider| (provider, false))
            .or_else(|| {
                self.access_node(id, &exclude)
                    .map(|peer| (Provider::Remote(peer), true))
            });
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        match chosen {
            Some((Provider::Remote(to), via_access)) => {
                let timeout = call.deadline.saturating_duration_since(now);
                if timeout.is_zero() {
                    return self.finish(id, Err(CallError::Timeout));
                }
                call.state = State::Sent {
                    to: to.clone(),
                    via_access,
                };
                let event = CallEvent::Send {
                    id,
                    to,
                    procedure: call.procedure.clone(),
                    payload: call.payload.clone(),
                    timeout,
                    chain: call.chain.clone(),
                };
                let deadline = call.deadline;
                self.set_timer(id, deadline);
                self.events.push_back(event);
            }
            Some((Provider::Local, _)) => {
                // `may_use` let it through, so the caller holds a grant here.
                let Some(call) = self.remove(id) else {
                    return;
                };
                if let Some(grant) = call.grant {
                    self.events.push_back(CallEvent::RunLocal {
                        id,
                        procedure: call.procedure,
                        payload: call.payload,
                        grant,
                        deadline: call.deadline,
                    });
                }
            }
            None if call.unreachable > 0 => {
                let why = format!(
                    "{} provider(s) of {} could not be reached",
                    call.unreachable, call.procedure
                );
                self.finish(id, Err(CallError::Unavailable(why)));
            }
            // A member called this node for a client's procedure that is gone: it finds
            // another provider faster than this node could.
            None if call.relay == Some(Origin::Member) => {
                let what = call.procedure.to_string();
                self.finish(id, Err(CallError::NotFound(what)));
            }
            None if now >= call.give_up => {
                let what = call.procedure.to_string();
                self.finish(id, Err(CallError::NotFound(what)));
            }
            None => {
                call.state = State::Waiting;
                if !self.client && !call.looked_up {
                    call.looked_up = true;
                    self.events.push_back(CallEvent::LookUp {
                        procedure: call.procedure.clone(),
                    });
                }
                let give_up = call.give_up;
                self.set_timer(id, give_up);
            }
        }
    }

    /// May `call` use `provider`? A call passed on never runs here, and follows the
    /// [`relay`] rules; one of this node's own runs here only with a grant.
    fn may_use(&self, call: &Call<P>, provider: &Provider<P>) -> bool {
        match provider {
            Provider::Local => call.grant.is_some() && call.relay.is_none(),
            Provider::Remote(peer) => call.relay.as_ref().is_none_or(|origin| {
                let client = self.members.get(peer).is_some_and(M::client);
                relay::call_to(origin, peer, client)
            }),
        }
    }

    /// A client's way out: its access node (a member not ruled out).
    fn access_node(&self, id: CallId, exclude: &[Provider<P>]) -> Option<P> {
        let call = self.calls.get(&id)?;
        if !self.client || call.relay.is_some() {
            return None;
        }
        self.members
            .keys()
            .find(|peer| !exclude.contains(&Provider::Remote((*peer).clone())))
            .cloned()
    }

    fn set_timer(&mut self, id: CallId, at: Instant) {
        if let Some(call) = self.calls.get_mut(&id) {
            self.timers.remove(&(call.timer, id));
            call.timer = at;
            self.timers.insert((at, id));
        }
    }

    fn remove(&mut self, id: CallId) -> Option<Call<P>> {
        let call = self.calls.remove(&id)?;
        self.timers.remove(&(call.timer, id));
        Some(call)
    }

    fn finish(&mut self, id: CallId, result: Result<Bytes, CallError>) {
        if self.remove(id).is_some() {
            self.events.push_back(CallEvent::Done { id, result });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn request(timeout: Duration) -> NewCall<&'static str> {
        NewCall {
            procedure: name("get"),
            payload: Bytes::from_static(b"{}"),
            timeout,
            strategy: Strategy::RoundRobin,
            chain: None,
            grant: Some(Grant::Open),
            relay: None,
            random: 0,
        }
    }

    /// A node that knows `providers` of `get`, each a member.
    fn calls(providers: &[&'static str]) -> Calls<&'static str> {
        let now = Instant::now();
        let mut calls = Calls::new(false);
        for peer in providers {
            calls.handle_member_joined(*peer, false, now);
            calls
                .providers_mut()
                .add(name("get"), Provider::Remote(*peer));
        }
        calls
    }

    fn events(calls: &mut Calls<&'static str>) -> Vec<CallEvent<&'static str>> {
        std::iter::from_fn(|| calls.poll()).collect()
    }

    /// The one event: a send, to whom.
    fn sent_to(calls: &mut Calls<&'static str>) -> &'static str {
        match events(calls).as_slice() {
            [CallEvent::Send { to, .. }] => to,
            other => panic!("expected one send, got {other:?}"),
        }
    }

    fn done(calls: &mut Calls<&'static str>) -> Result<Bytes, CallError> {
        match events(calls).pop() {
            Some(CallEvent::Done { result, .. }) => result,
            other => panic!("expected an outcome, got {other:?}"),
        }
    }

    #[test]
    fn a_reply_from_the_provider_ends_the_call_and_one_from_anyone_else_does_not() {
        let now = Instant::now();
        let mut calls = calls(&["a"]);
        let id = calls.start(request(SECOND), now);
        assert_eq!(sent_to(&mut calls), "a");
        calls.handle_reply(&"b", id, Ok(Bytes::from_static(b"forged")), now);
        assert!(calls.poll().is_none(), "an impostor's reply is ignored");
        calls.handle_reply(&"a", id, Ok(Bytes::from_static(b"1")), now);
        assert_eq!(done(&mut calls), Ok(Bytes::from_static(b"1")));
        assert_eq!(calls.len(), 0);
        assert_eq!(calls.poll_timeout(), None, "no timer left behind");
        calls.handle_reply(&"a", id, Ok(Bytes::new()), now);
        assert!(calls.poll().is_none(), "a duplicate reply is ignored");
    }

    #[test]
    fn not_found_goes_to_the_next_provider_and_unavailable_does_not() {
        let now = Instant::now();
        let mut calls = calls(&["a", "b"]);
        let id = calls.start(request(SECOND), now);
        let first = sent_to(&mut calls);
        calls.handle_reply(&first, id, Err(CallError::NotFound("get".into())), now);
        let second = sent_to(&mut calls);
        assert_ne!(first, second, "never twice to one that did not have it");
        calls.handle_reply(&second, id, Err(CallError::NotFound("get".into())), now);
        assert!(
            matches!(events(&mut calls).as_slice(), [CallEvent::LookUp { .. }]),
            "no provider left: it looks for others and waits"
        );
        calls.handle_timeout(now + SECOND);
        assert!(matches!(done(&mut calls), Err(CallError::NotFound(_))));

        let id = calls.start(request(SECOND), now);
        let to = sent_to(&mut calls);
        let lost = Err(CallError::Unavailable("stopping".into()));
        calls.handle_reply(&to, id, lost.clone(), now);
        assert_eq!(done(&mut calls), lost, "it may have run: not tried again");
    }

    #[test]
    fn a_call_that_could_not_be_queued_goes_elsewhere_or_fails_unavailable() {
        let now = Instant::now();
        let mut calls = calls(&["a", "b"]);
        let id = calls.start(request(SECOND), now);
        let first = sent_to(&mut calls);
        calls.handle_unsent(id, now);
        assert_ne!(sent_to(&mut calls), first);
        calls.handle_unsent(id, now);
        assert!(
            matches!(done(&mut calls), Err(CallError::Unavailable(why)) if why.contains("2 provider(s)"))
        );
    }

    #[test]
    fn with_no_provider_it_looks_up_once_waits_and_goes_when_one_is_announced() {
        let now = Instant::now();
        let mut calls = calls(&[]);
        let id = calls.start(request(SECOND), now);
        assert!(calls.waiting_for(&name("get")));
        assert!(!calls.waiting_for(&name("other")));
        assert!(
            matches!(events(&mut calls).as_slice(), [CallEvent::LookUp { procedure }] if procedure.as_str() == "get")
        );
        assert_eq!(calls.poll_timeout(), Some(now + SECOND));
        calls.handle_provider(&name("other"), now);
        assert!(
            calls.poll().is_none(),
            "another procedure's provider wakes nothing"
        );

        let later = now + SECOND / 2;
        calls.handle_member_joined("a", false, later);
        calls
            .providers_mut()
            .add(name("get"), Provider::Remote("a"));
        calls.handle_provider(&name("get"), later);
        match events(&mut calls).as_slice() {
            [CallEvent::Send { to, timeout, .. }] => {
                assert_eq!(*to, "a");
                assert_eq!(*timeout, SECOND / 2, "with the time left");
            }
            other => panic!("{other:?}"),
        }
        assert!(!calls.waiting_for(&name("get")), "sent: no longer waiting");
        calls.handle_reply(&"a", id, Err(CallError::NotFound("get".into())), later);
        assert!(
            events(&mut calls).is_empty(),
            "waits again, without a second lookup"
        );
        calls.handle_timeout(now + SECOND);
        assert!(matches!(done(&mut calls), Err(CallError::NotFound(_))));
    }

    #[test]
    fn deadlines_end_calls_timeout_once_sent_and_not_found_while_waiting() {
        let now = Instant::now();
        let mut calls = calls(&["a"]);
        let sent = calls.start(request(SECOND), now);
        let _ = events(&mut calls);
        calls.providers_mut().remove_peer(&"a");
        let waiting = calls.start(request(2 * SECOND), now);
        let _ = events(&mut calls);
        calls.handle_timeout(now + SECOND - Duration::from_millis(1));
        assert!(calls.poll().is_none(), "not yet");
        calls.handle_timeout(now + 2 * SECOND);
        let outcomes: Vec<_> = events(&mut calls)
            .into_iter()
            .map(|e| match e {
                CallEvent::Done { id, result } => (id, result.map_err(|e| e.code().to_owned())),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            outcomes,
            vec![
                (sent, Err("timeout".to_owned())),
                (waiting, Err("notFound".to_owned()))
            ]
        );
    }

    #[test]
    fn a_departed_providers_calls_end_unavailable() {
        let now = Instant::now();
        let mut calls = calls(&["a", "b"]);
        let id = calls.start(request(SECOND), now);
        let to = sent_to(&mut calls);
        calls.handle_member_left(&to);
        assert!(matches!(done(&mut calls), Err(CallError::Unavailable(_))));
        let _ = id;
        assert_eq!(calls.providers().of(&name("get")).len(), 1);
    }

    #[test]
    fn each_strategy_picks_as_it_says() {
        let now = Instant::now();
        let mut calls = calls(&["a", "b", "c"]);
        calls.providers_mut().add(name("get"), Provider::Local);
        let mut pick = |strategy, random| {
            let mut r = request(SECOND);
            r.strategy = strategy;
            r.random = random;
            let id = calls.start(r, now);
            let picked = match events(&mut calls).pop() {
                Some(CallEvent::Send { to, .. }) => to,
                Some(CallEvent::RunLocal { .. }) => "local",
                other => panic!("{other:?}"),
            };
            calls.handle_reply(&picked, id, Ok(Bytes::new()), now);
            let _ = events(&mut calls);
            picked
        };
        let round: Vec<_> = (0..4).map(|_| pick(Strategy::RoundRobin, 0)).collect();
        assert_eq!(round, ["a", "b", "c", "local"]);
        assert_eq!(pick(Strategy::First, 0), "a");
        assert_eq!(pick(Strategy::Random, 2), "c");
        assert_eq!(pick(Strategy::LocalFirst, 0), "local");
    }

    #[test]
    fn a_call_passed_on_never_runs_here_and_a_members_only_reaches_clients() {
        let now = Instant::now();
        let mut calls = calls(&["member"]);
        calls.handle_member_joined("client", true, now);
        calls
            .providers_mut()
            .add(name("get"), Provider::Remote("client"));
        calls.providers_mut().add(name("get"), Provider::Local);
        let mut relayed = request(SECOND);
        relayed.grant = None;
        relayed.relay = Some(Origin::Member);
        for _ in 0..3 {
            let id = calls.start(relayed.clone(), now);
            assert_eq!(sent_to(&mut calls), "client");
            calls.handle_reply(&"client", id, Ok(Bytes::new()), now);
            let _ = events(&mut calls);
        }
        // The client's procedure goes: a member's call is refused at once, the member has others.
        calls.handle_member_left(&"client");
        let _ = calls.start(relayed, now);
        assert!(matches!(done(&mut calls), Err(CallError::NotFound(_))));

        // A client's call goes anywhere but back to the client, never here.
        let mut from_client = request(10 * SECOND);
        from_client.grant = None;
        from_client.relay = Some(Origin::Client("member"));
        let _ = calls.start(from_client, now);
        assert!(
            matches!(events(&mut calls).as_slice(), [CallEvent::LookUp { .. }]),
            "waits: neither back to its client nor here"
        );
        assert_eq!(
            calls.poll_timeout(),
            Some(now + 10 * SECOND - RELAY_MARGIN),
            "gives up early enough for the client to hear"
        );
    }

    #[test]
    fn a_client_sends_what_it_does_not_serve_to_its_access_node_and_does_not_look_up() {
        let now = Instant::now();
        let mut calls: Calls<&'static str> = Calls::new(true);
        let id = calls.start(request(SECOND), now);
        assert!(
            calls.poll().is_none(),
            "no access node yet, no lookup either"
        );
        calls.handle_member_joined("access", false, now);
        assert_eq!(sent_to(&mut calls), "access");
        calls.handle_reply(&"access", id, Err(CallError::NotFound("get".into())), now);
        assert!(
            matches!(done(&mut calls), Err(CallError::NotFound(_))),
            "the access node tried every provider it knows"
        );
    }

    #[test]
    fn a_local_provider_runs_only_with_a_grant() {
        let now = Instant::now();
        let mut calls = calls(&[]);
        calls.providers_mut().add(name("get"), Provider::Local);
        let id = calls.start(request(SECOND), now);
        assert!(matches!(
            events(&mut calls).as_slice(),
            [CallEvent::RunLocal { id: run, .. }] if *run == id
        ));
        assert_eq!(calls.len(), 0, "the owner has it now");
        let mut no_grant = request(SECOND);
        no_grant.grant = None;
        let _ = calls.start(no_grant, now);
        assert!(matches!(
            events(&mut calls).as_slice(),
            [CallEvent::LookUp { .. }]
        ));
    }
}
