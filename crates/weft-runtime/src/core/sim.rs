//! Several nodes' cores wired together in memory, with simulated time: what quinn-proto's `Pair`
//! is to two endpoints, for a realm of nodes. Frames between nodes take a fixed latency, nothing
//! reads a clock, and a run is the same every time.
//!
//! Each node has the calls core the registry drives, and a stand-in for the registry's serving
//! side: it runs a procedure it provides (answering after a set time, or never), answers
//! `notFound` for one it does not, and passes a client's call on as an access node does, through
//! its own core, with the client as the relay origin. Nodes can crash (their peers see them leave
//! after a delay, as liveness would tell them) and procedures can be withdrawn.
//!
//! Each node also has the routing core the router drives: its subscriptions are announced to its
//! members (and again to each member that joins, as admission does), its publications go where
//! the core says, and a member's publications are delivered and relayed as the core says.
//!
//! Each node has the roster the membership actor drives, and its own authorizer: nodes hold
//! UCAN chains from the realm's owner, and are admitted to each other only with a grant to join.
//! A node checks a member's `msg/subscribe` before it routes to the subscription, as the router
//! does, a client's subscriptions are held in the mesh by its access node through the roster,
//! and every second each roster ends what rests on chains that expired. Simulated time maps to
//! Unix seconds from a fixed epoch, and keys come from fixed seeds, so a run is the same every
//! time.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use std::sync::Arc;

use bytes::Bytes;
use weft_auth::{Action, AuthError, Authorizer, Chain, Grant, Realm, VerifyBudget};
use weft_identity::{Did, Keypair};
use weft_names::{Name, Pattern, RealmName};
use weft_ucan::Builder;
use weft_wire::{Frame, Interest, WireChain};

use super::authority::authorize_member;
use super::calls::{CallEvent, CallId, Calls, NewCall};
use super::chains::{ChainCache, wire_chain};
use super::pubsub::{Routed, Routing, Target};
use super::roster::{Credentials, Roster, TestMember};
use super::seat::Seat;
use crate::core::providers::{Provider, Strategy};
use crate::core::relay::Origin;
use crate::error::CallError;

/// A node, by its index.
pub(crate) type NodeId = usize;

/// The Unix time simulated time starts at.
const EPOCH: u64 = 1_800_000_000;

/// What [`Sim::node`] grants: everything, for a day.
pub(crate) const EVERYTHING: &[(&str, &str)] = &[
    ("", "realm/join"),
    ("/**", "msg/publish"),
    ("/**", "msg/subscribe"),
];

/// How a node serves a procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Serve {
    /// Answers after this long.
    After(Duration),
    /// Never answers.
    Hang,
}

/// A member as a simulated router holds it.
#[derive(Debug)]
struct Peer {
    node: NodeId,
    client: bool,
}

/// A member as a simulated roster holds it.
type Member = TestMember;

impl Routed<NodeId> for Peer {
    fn peer(&self) -> &NodeId {
        &self.node
    }
    fn client(&self) -> bool {
        self.client
    }
    fn run(&self) -> u64 {
        1
    }
}

#[derive(Debug)]
struct Node {
    calls: Calls<NodeId>,
    routing: Routing<NodeId, Peer>,
    roster: Roster<NodeId, Member>,
    authorizer: Arc<Authorizer>,
    chain_cache: ChainCache,
    did: Did,
    /// The chains it presents to join.
    chains: Vec<WireChain>,
    /// Subscriptions of members it refused to route to.
    refused: usize,
    /// Publications delivered to this node's subscriptions: (subscription, publisher, topic).
    delivered: Vec<(u32, NodeId, String)>,
    /// Deliveries counted as missed because a member was gone.
    missed: usize,
    client: bool,
    up: bool,
    serves: HashMap<Name, Serve>,
    /// Calls this node ran for others: (caller, the caller's call id).
    ran: Vec<(NodeId, CallId)>,
    /// Calls this node passes on for a peer: its call → (the peer, the peer's call id).
    relaying: HashMap<CallId, (NodeId, CallId)>,
    /// Outcomes of this node's own calls.
    outcomes: HashMap<CallId, Result<Bytes, CallError>>,
    /// DHT lookups it asked for.
    lookups: usize,
}

#[derive(Debug)]
enum Input {
    Call {
        from: NodeId,
        id: CallId,
        procedure: Name,
        timeout: Duration,
    },
    Reply {
        from: NodeId,
        id: CallId,
        result: Result<Bytes, CallError>,
    },
    /// `peer` is seen gone.
    Left {
        peer: NodeId,
    },
    Subscribe {
        from: NodeId,
        id: u32,
        pattern: Pattern,
        chain: Option<WireChain>,
    },
    Unsubscribe {
        from: NodeId,
        id: u32,
    },
    Revoke {
        from: NodeId,
        record: String,
    },
    Publish {
        from: NodeId,
        /// Who published first (the client, for a publication its access node relays).
        publisher: NodeId,
        seq: u64,
        topic: Name,
    },
}

/// The simulated realm.
#[derive(Debug)]
pub(crate) struct Sim {
    start: Instant,
    now: Instant,
    /// The realm's owner, who grants everything in it.
    owner: Keypair,
    realm: Realm,
    /// The next roster sweep.
    next_sweep: Instant,
    latency: Duration,
    /// How long after a crash its peers notice.
    liveness: Duration,
    nodes: Vec<Node>,
    links: HashSet<(NodeId, NodeId)>,
    /// Inputs due, by (when, order of sending, to whom); the inputs themselves are in `inputs`
    /// (they are not `Ord`).
    queue: BinaryHeap<Reverse<(Instant, u64, NodeId)>>,
    inputs: HashMap<u64, Input>,
    next: u64,
}

impl Sim {
    /// An empty realm whose frames take `latency`, and whose nodes notice a crashed peer after
    /// `liveness`.
    pub(crate) fn new(latency: Duration, liveness: Duration) -> Self {
        let now = Instant::now();
        let owner = Keypair::from_seed(&[0xEE; 32]);
        let realm = Realm::owned(
            RealmName::new("io.acme").expect("a realm name"),
            owner.did(),
        );
        Self {
            start: now,
            now,
            owner,
            realm,
            next_sweep: now + super::standing::SWEEP,
            latency,
            liveness,
            nodes: Vec::new(),
            links: HashSet::new(),
            queue: BinaryHeap::new(),
            inputs: HashMap::new(),
            next: 0,
        }
    }

    /// Simulated time now.
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// Simulated time as Unix seconds.
    pub(crate) fn unix(&self) -> u64 {
        EPOCH + (self.now - self.start).as_secs()
    }

    /// Adds a node (a client of the nodes it connects to, if `client`) that may do anything in
    /// the realm for a day.
    pub(crate) fn node(&mut self, client: bool) -> NodeId {
        self.node_granted(client, EVERYTHING, Duration::from_secs(86_400))
    }

    /// Adds a node holding the owner's `grants` ((resource under the realm, ability)), which
    /// last `lasting` from now.
    pub(crate) fn node_granted(
        &mut self,
        client: bool,
        grants: &[(&str, &str)],
        lasting: Duration,
    ) -> NodeId {
        let index = self.nodes.len();
        let seed = u8::try_from(index).unwrap_or(u8::MAX);
        let key = Keypair::from_seed(&[seed; 32]);
        let expires = self.unix() + lasting.as_secs();
        let chains: Vec<Chain> = grants
            .iter()
            .map(|(resource, ability)| {
                let token = Builder::new(&self.owner, key.did())
                    .claim(format!("weft://io.acme{resource}"), *ability)
                    .expires_at(expires)
                    .build()
                    .expect("a token");
                Chain::new(token, [])
            })
            .collect();
        let wire = chains.iter().map(wire_chain).collect();
        let authorizer = Arc::new(Authorizer::new().with_leeway(0));
        let roster = Roster::new(Seat::new(
            self.realm.clone(),
            0,
            authorizer.clone(),
            key.did(),
            Arc::new(chains),
        ));
        self.nodes.push(Node {
            calls: Calls::new(client),
            routing: Routing::new(client),
            roster,
            authorizer,
            chain_cache: ChainCache::default(),
            did: key.did(),
            chains: wire,
            refused: 0,
            delivered: Vec::new(),
            missed: 0,
            client,
            up: true,
            serves: HashMap::new(),
            ran: Vec::new(),
            relaying: HashMap::new(),
            outcomes: HashMap::new(),
            lookups: 0,
        });
        index
    }

    /// Admits `a` and `b` to each other, and tells each what the other provides; unless one
    /// refuses the other (no grant to join), when neither is linked.
    pub(crate) fn connect(&mut self, a: NodeId, b: NodeId) -> Result<(), AuthError> {
        let unix = self.unix();
        let mut admissions = Vec::new();
        for (me, peer) in [(a, b), (b, a)] {
            let (did, chains) = (self.nodes[peer].did, &self.nodes[peer].chains);
            let budget = VerifyBudget::default();
            let admission = self.nodes[me].roster.admit(&did, chains, &budget, unix)?;
            admissions.push((me, peer, admission, budget));
        }
        self.links.insert((a.min(b), a.max(b)));
        let now = self.now;
        for (me, peer, admission, budget) in admissions {
            let client = self.nodes[peer].client;
            self.nodes[me].calls.handle_member_joined(peer, client, now);
            self.nodes[me]
                .routing
                .join(peer, Peer { node: peer, client }, now);
            let member = Member {
                node: peer,
                did: self.nodes[peer].did,
                chains: admission.chains,
                client,
                budget,
                delegation: Default::default(),
            };
            self.nodes[me].roster.join(peer, member, &admission.grant);
            self.notify(me);
            let offered: Vec<Name> = self.nodes[peer].serves.keys().cloned().collect();
            for procedure in offered {
                self.learn(me, peer, &procedure);
            }
        }
        self.settle();
        Ok(())
    }

    /// Sends what `node`'s roster decided to send.
    fn notify(&mut self, node: NodeId) {
        let at = self.now + self.latency;
        while let Some(notice) = self.nodes[node].roster.poll() {
            let mut to: Vec<NodeId> = self.nodes[node]
                .roster
                .recipients(&notice.to)
                .map(|m| m.node)
                .collect();
            to.sort_unstable();
            for peer in to {
                let input = match &notice.frame {
                    Frame::Interest(Interest::Subscribe {
                        id, pattern, chain, ..
                    }) => Input::Subscribe {
                        from: node,
                        id: *id,
                        pattern: pattern.clone(),
                        chain: chain.clone(),
                    },
                    Frame::Interest(Interest::Unsubscribe { id, .. }) => Input::Unsubscribe {
                        from: node,
                        id: *id,
                    },
                    Frame::Revoke(revoke) => Input::Revoke {
                        from: node,
                        record: revoke.record.clone(),
                    },
                    _ => continue,
                };
                self.push(at, peer, input);
            }
        }
    }

    /// `node` provides `procedure`, served as `serve`; its peers learn of it.
    pub(crate) fn provide(&mut self, node: NodeId, procedure: &str, serve: Serve) {
        let procedure = Name::new(procedure).expect("a procedure name");
        self.nodes[node].serves.insert(procedure.clone(), serve);
        self.nodes[node]
            .calls
            .providers_mut()
            .add(procedure.clone(), Provider::Local);
        for peer in self.peers(node) {
            self.learn(peer, node, &procedure);
        }
        self.settle();
    }

    /// `node` stops serving `procedure`, and its peers are not told: they still think it does,
    /// as when the withdrawal and a call cross.
    pub(crate) fn stop_serving_quietly(&mut self, node: NodeId, procedure: &str) {
        let procedure = Name::new(procedure).expect("a procedure name");
        self.nodes[node].serves.remove(&procedure);
    }

    /// `node` stops: nothing reaches it any more, and its peers see it leave after `liveness`.
    pub(crate) fn crash(&mut self, node: NodeId) {
        self.nodes[node].up = false;
        let at = self.now + self.liveness;
        for peer in self.peers(node) {
            self.push(at, peer, Input::Left { peer: node });
        }
    }

    /// `node` comes back after a crash, with nothing of its old sessions: it reconnects to
    /// `peers`, and what it provides is announced to them again, as a new session's admission
    /// and advertisements would.
    pub(crate) fn restart(&mut self, node: NodeId, peers: &[NodeId]) {
        self.nodes[node].up = true;
        for &peer in peers {
            self.connect(node, peer).expect("admitted again");
        }
    }

    /// `node` subscribes to `pattern`, if its chains let it: locally, and announced to its
    /// members (not to its clients, who send everything to it anyway). Returns the id.
    pub(crate) fn subscribe(&mut self, node: NodeId, pattern: &str) -> Result<u32, AuthError> {
        let pattern = Pattern::new(pattern).expect("a pattern");
        let unix = self.unix();
        let id = self.nodes[node]
            .roster
            .subscribe(pattern.clone(), None, unix)?;
        self.nodes[node].routing.add_local(id, pattern);
        self.notify(node);
        Ok(id)
    }

    /// `from` announces a subscription to `to` whatever its own chains say, as a hostile
    /// member's session would.
    pub(crate) fn announce(&mut self, from: NodeId, to: NodeId, id: u32, pattern: &str) {
        let input = Input::Subscribe {
            from,
            id,
            pattern: Pattern::new(pattern).expect("a pattern"),
            chain: None,
        };
        self.push(self.now + self.latency, to, input);
    }

    /// Subscriptions `node` refused to route to, for want of the member's `msg/subscribe`.
    pub(crate) fn refused(&self, node: NodeId) -> usize {
        self.nodes[node].refused
    }

    /// `owner` revokes the token `node` joined with, and tells `at` of it.
    pub(crate) fn revoke_join(&mut self, node: NodeId, at: NodeId) {
        let join = &self.nodes[node].chains[0];
        let token = weft_ucan::Token::parse(&join.leaf).expect("a token");
        let record = weft_ucan::Revocation::issue(&self.owner, &token);
        self.nodes[at]
            .authorizer
            .apply(&record)
            .expect("the owner may revoke");
        self.nodes[at]
            .roster
            .spread(&record, super::roster::To::Members);
        self.notify(at);
    }

    /// `node` publishes to `topic`.
    pub(crate) fn publish(&mut self, node: NodeId, topic: &str) {
        let topic = Name::new(topic).expect("a topic");
        let mut targets = Vec::new();
        let (seq, route) = self.nodes[node].routing.route_local(&topic, &mut targets);
        self.nodes[node].missed += route.missed;
        self.fan_out(node, node, seq, &topic, &targets);
    }

    /// What `node`'s subscriptions received: (subscription id, publisher, topic), in order.
    pub(crate) fn delivered(&self, node: NodeId) -> &[(u32, NodeId, String)] {
        &self.nodes[node].delivered
    }

    /// Deliveries `node` counted as missed because a member was gone.
    pub(crate) fn missed(&self, node: NodeId) -> usize {
        self.nodes[node].missed
    }

    /// Delivers to `node`'s local targets, and sends to its peer targets numbered `seq`.
    fn fan_out(
        &mut self,
        node: NodeId,
        publisher: NodeId,
        seq: u64,
        topic: &Name,
        targets: &[Target],
    ) {
        let at = self.now + self.latency;
        for target in targets {
            match *target {
                Target::Local(id) => {
                    self.nodes[node]
                        .delivered
                        .push((id, publisher, topic.to_string()));
                }
                Target::Peer(slot) => {
                    let Some(to) = self.nodes[node].routing.members().get(slot).map(|p| p.node)
                    else {
                        continue;
                    };
                    let input = Input::Publish {
                        from: node,
                        publisher,
                        seq,
                        topic: topic.clone(),
                    };
                    self.push(at, to, input);
                }
            }
        }
    }

    /// `node` calls `procedure`.
    pub(crate) fn call(
        &mut self,
        node: NodeId,
        procedure: &str,
        strategy: Strategy,
        timeout: Duration,
    ) -> CallId {
        let request = NewCall {
            procedure: Name::new(procedure).expect("a procedure name"),
            payload: Bytes::new(),
            timeout,
            strategy,
            chain: None,
            grant: Some(Grant::Open),
            relay: None,
            random: self.next,
        };
        let id = self.nodes[node].calls.start(request, self.now);
        self.settle();
        id
    }

    /// Runs until nothing is left to happen before `until`, then sets the clock to it.
    pub(crate) fn run_until(&mut self, until: Instant) {
        loop {
            let next_input = self.queue.peek().map(|Reverse((at, ..))| *at);
            let next_timer = self
                .nodes
                .iter()
                .filter(|n| n.up)
                .filter_map(|n| n.calls.poll_timeout())
                .min();
            let next_sweep = Some(self.next_sweep);
            let Some(at) = [next_input, next_timer, next_sweep]
                .into_iter()
                .flatten()
                .min()
            else {
                break;
            };
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            if at == self.next_sweep {
                self.next_sweep += super::standing::SWEEP;
                self.sweep();
            } else if next_input == Some(at)
                && let Some(Reverse((_, slot, to))) = self.queue.pop()
                && let Some(input) = self.inputs.remove(&slot)
            {
                self.deliver(to, input);
            } else {
                for node in 0..self.nodes.len() {
                    if self.nodes[node].up {
                        self.nodes[node].calls.handle_timeout(self.now);
                    }
                }
            }
            self.settle();
        }
        self.now = self.now.max(until);
    }

    /// Runs for `duration` of simulated time.
    pub(crate) fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        self.run_until(until);
    }

    /// The outcome of `node`'s call `id`, if it has one.
    pub(crate) fn outcome(&self, node: NodeId, id: CallId) -> Option<&Result<Bytes, CallError>> {
        self.nodes[node].outcomes.get(&id)
    }

    /// The calls `node` ran for others, as (caller, caller's id).
    pub(crate) fn ran(&self, node: NodeId) -> &[(NodeId, CallId)] {
        &self.nodes[node].ran
    }

    /// DHT lookups `node` asked for.
    pub(crate) fn lookups(&self, node: NodeId) -> usize {
        self.nodes[node].lookups
    }

    /// Every node's roster ends what rests on expired or revoked chains; a member whose
    /// membership ended is gone from the node's cores (it is told, and keeps its own view of
    /// the node: what it sends is then dropped, as a node drops what a non-member sends).
    fn sweep(&mut self) {
        let (now, unix) = (self.now, self.unix());
        for node in 0..self.nodes.len() {
            if !self.nodes[node].up {
                continue;
            }
            let ended = self.nodes[node].roster.sweep(unix);
            for (member, _) in ended.members {
                self.nodes[node].routing.leave(&member.node, false, now);
                self.nodes[node].calls.handle_member_left(&member.node);
            }
            for (id, ..) in ended.subscriptions {
                self.nodes[node].routing.remove_local(id);
            }
            self.notify(node);
        }
    }

    /// Whether `node` holds `peer` as a member.
    pub(crate) fn is_member(&self, node: NodeId, peer: NodeId) -> bool {
        self.nodes[node].roster.member(&peer).is_some()
    }

    /// The members `node` holds, as its roster, its routing core and its calls core each see
    /// them: the two cores are views of the roster, and must never differ from it.
    pub(crate) fn views(&self, node: NodeId) -> [BTreeSet<NodeId>; 3] {
        let node = &self.nodes[node];
        let routing = node.routing.members();
        [
            node.roster.peers().copied().collect(),
            routing
                .slots()
                .filter_map(|slot| routing.get(slot).map(|m| *m.peer()))
                .collect(),
            node.calls.members().map(|(peer, _)| *peer).collect(),
        ]
    }

    /// Calls still in progress at `node`.
    pub(crate) fn in_progress(&self, node: NodeId) -> usize {
        self.nodes[node].calls.len()
    }

    fn peers(&self, node: NodeId) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = self
            .links
            .iter()
            .filter_map(|&(a, b)| match (a == node, b == node) {
                (true, _) => Some(b),
                (_, true) => Some(a),
                _ => None,
            })
            .collect();
        peers.sort_unstable();
        peers
    }

    /// `me` learns that `peer` provides `procedure`. A client's procedures are advertised by its
    /// access node, not seen directly by the access node's other peers: enough here that the
    /// access node knows.
    fn learn(&mut self, me: NodeId, peer: NodeId, procedure: &Name) {
        let now = self.now;
        let calls = &mut self.nodes[me].calls;
        calls
            .providers_mut()
            .add(procedure.clone(), Provider::Remote(peer));
        calls.handle_provider(procedure, now);
    }

    fn push(&mut self, at: Instant, to: NodeId, input: Input) {
        let slot = self.next;
        self.next += 1;
        self.inputs.insert(slot, input);
        self.queue.push(Reverse((at, slot, to)));
    }

    /// Takes every node's outputs and acts on them, until none is left.
    fn settle(&mut self) {
        let mut busy = true;
        while busy {
            busy = false;
            for node in 0..self.nodes.len() {
                while let Some(event) = self.nodes[node].calls.poll() {
                    busy = true;
                    self.act(node, event);
                }
            }
        }
    }

    fn act(&mut self, node: NodeId, event: CallEvent<NodeId>) {
        let now = self.now;
        match event {
            CallEvent::Send {
                id,
                to,
                procedure,
                timeout,
                ..
            } => {
                if !self.nodes[node].up {
                    return;
                }
                // The queue takes it; whether it arrives is the network's business.
                let at = now + self.latency;
                if self.nodes[to].up {
                    self.push(
                        at,
                        to,
                        Input::Call {
                            from: node,
                            id,
                            procedure,
                            timeout,
                        },
                    );
                }
            }
            CallEvent::RunLocal { id, procedure, .. } => {
                let result = match self.nodes[node].serves.get(&procedure) {
                    Some(_) => Ok(Bytes::from(format!("{node}"))),
                    None => Err(CallError::NotFound(procedure.to_string())),
                };
                self.nodes[node].outcomes.insert(id, result);
            }
            CallEvent::LookUp { .. } => self.nodes[node].lookups += 1,
            CallEvent::Done { id, result } => match self.nodes[node].relaying.remove(&id) {
                Some((caller, their_id)) => {
                    let at = now + self.latency;
                    self.push(
                        at,
                        caller,
                        Input::Reply {
                            from: node,
                            id: their_id,
                            result,
                        },
                    );
                }
                None => {
                    self.nodes[node].outcomes.insert(id, result);
                }
            },
        }
    }

    fn deliver(&mut self, to: NodeId, input: Input) {
        if !self.nodes[to].up {
            return;
        }
        let now = self.now;
        match input {
            Input::Call {
                from,
                id,
                procedure,
                timeout,
            } => match self.nodes[to].serves.get(&procedure).copied() {
                Some(serve) => {
                    self.nodes[to].ran.push((from, id));
                    if let Serve::After(took) = serve
                        && took < timeout
                    {
                        let reply = Input::Reply {
                            from: to,
                            id,
                            result: Ok(Bytes::from(format!("{to}"))),
                        };
                        self.push(now + took + self.latency, from, reply);
                    }
                }
                // An access node passes its client's call on, through its own core.
                None if self.nodes[from].client => {
                    let request = NewCall {
                        procedure,
                        payload: Bytes::new(),
                        timeout,
                        strategy: Strategy::RoundRobin,
                        chain: None,
                        grant: None,
                        relay: Some(Origin::Client(from)),
                        random: id,
                    };
                    let mine = self.nodes[to].calls.start(request, now);
                    self.nodes[to].relaying.insert(mine, (from, id));
                }
                None => {
                    let reply = Input::Reply {
                        from: to,
                        id,
                        result: Err(CallError::NotFound(procedure.to_string())),
                    };
                    self.push(now + self.latency, from, reply);
                }
            },
            Input::Reply { from, id, result } => {
                self.nodes[to].calls.handle_reply(&from, id, result, now);
            }
            Input::Left { peer } => {
                self.links.remove(&(to.min(peer), to.max(peer)));
                self.nodes[to].calls.handle_member_left(&peer);
                self.nodes[to].routing.leave(&peer, true, now);
                self.nodes[to].roster.leave(&peer);
                self.notify(to);
            }
            Input::Subscribe {
                from,
                id,
                pattern,
                chain,
            } => {
                let unix = self.unix();
                let node = &mut self.nodes[to];
                node.routing.announced(&from, id);
                let Some(member) = node.roster.member(&from) else {
                    return;
                };
                let Some((slot, _)) = node.routing.members().by_peer(&from) else {
                    return;
                };
                // The router's check: routed only if the member may read what it asks for.
                let allowed = authorize_member(
                    &node.authorizer,
                    &mut node.chain_cache,
                    &self.realm,
                    chain.as_ref(),
                    member.acting(),
                    Action::Subscribe(&pattern),
                    unix,
                );
                if allowed.is_err() {
                    node.refused += 1;
                    return;
                }
                node.routing.subscribe(slot, id, pattern.clone());
                // A client's subscription is held in the mesh by its access node, as its own.
                let interest = Interest::Subscribe {
                    realm: 0,
                    id,
                    pattern,
                    chain,
                };
                if node.roster.relay(&from, interest, unix).is_ok() {
                    self.notify(to);
                }
            }
            Input::Unsubscribe { from, id } => {
                let unix = self.unix();
                let node = &mut self.nodes[to];
                node.routing.announced(&from, id);
                if let Some((slot, _)) = node.routing.members().by_peer(&from) {
                    node.routing.unsubscribe(slot, id);
                }
                let interest = Interest::Unsubscribe { realm: 0, id };
                if node.roster.relay(&from, interest, unix).is_ok() {
                    self.notify(to);
                }
            }
            Input::Revoke { from, record } => {
                let unix = self.unix();
                self.nodes[to].roster.revoke(&from, &record, unix);
                self.notify(to);
            }
            Input::Publish {
                from,
                publisher,
                seq,
                topic,
            } => {
                let routing = &mut self.nodes[to].routing;
                let Some((_, member)) = routing.members().by_peer(&from) else {
                    return;
                };
                let origin = match member.client {
                    true => Origin::Client(from),
                    false => Origin::Member,
                };
                let mut targets = Vec::new();
                let mut run = routing.begin_batch(&from, 1);
                let routed = routing.route_remote(&mut run, seq, &topic, &mut targets);
                routing.end_batch(from, run);
                let Ok(route) = routed else {
                    return;
                };
                self.nodes[to].missed += route.missed;
                // Delivered here, and relayed (numbered as this node's own) where the rules say.
                let relayed: Vec<Target> = targets
                    .iter()
                    .copied()
                    .filter(|t| match t {
                        Target::Local(_) => true,
                        Target::Peer(slot) => {
                            self.nodes[to].routing.relays_to(&origin, *slot).is_some()
                        }
                    })
                    .collect();
                let own = if relayed.iter().any(|t| matches!(t, Target::Peer(_))) {
                    self.nodes[to].routing.take_seq()
                } else {
                    0
                };
                self.fan_out(to, publisher, own, &topic, &relayed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SECOND: Duration = Duration::from_secs(1);

    /// A caller and three providers of `get`, all connected; 5 ms between any two.
    fn realm() -> (Sim, NodeId, [NodeId; 3]) {
        let mut sim = Sim::new(5 * MS, SECOND);
        let caller = sim.node(false);
        let providers = [sim.node(false), sim.node(false), sim.node(false)];
        for p in providers {
            sim.provide(p, "get", Serve::After(MS));
            sim.connect(caller, p).unwrap();
        }
        (sim, caller, providers)
    }

    fn answered_by(sim: &Sim, node: NodeId, id: CallId) -> String {
        match sim.outcome(node, id) {
            Some(Ok(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_strategy_over_three_providers() {
        let (mut sim, caller, [a, b, c]) = realm();
        let mut run = |strategy| {
            let id = sim.call(caller, "get", strategy, SECOND);
            sim.run_for(100 * MS);
            answered_by(&sim, caller, id)
        };
        let round: Vec<String> = (0..6).map(|_| run(Strategy::RoundRobin)).collect();
        let expect: Vec<String> = [a, b, c, a, b, c].iter().map(|n| n.to_string()).collect();
        assert_eq!(round, expect, "each in turn");
        let first: HashSet<String> = (0..3).map(|_| run(Strategy::First)).collect();
        assert_eq!(first.len(), 1, "always the first: {first:?}");
        let random: HashSet<String> = (0..12).map(|_| run(Strategy::Random)).collect();
        assert!(random.len() > 1, "spread: {random:?}");
    }

    #[test]
    fn a_call_round_trips_in_two_latencies_plus_the_handler() {
        let (mut sim, caller, _) = realm();
        let start = sim.now();
        let id = sim.call(caller, "get", Strategy::First, SECOND);
        sim.run_for(11 * MS - Duration::from_nanos(1));
        assert!(sim.outcome(caller, id).is_none(), "not before 5 + 1 + 5 ms");
        sim.run_for(Duration::from_nanos(1));
        assert!(sim.outcome(caller, id).is_some());
        assert_eq!(sim.now() - start, 11 * MS);
    }

    #[test]
    fn a_provider_that_stopped_serving_passes_the_call_on_without_running_it() {
        let (mut sim, caller, [a, b, c]) = realm();
        sim.stop_serving_quietly(a, "get");
        let id = sim.call(caller, "get", Strategy::First, SECOND);
        sim.run_for(100 * MS);
        let by = answered_by(&sim, caller, id);
        assert_ne!(by, a.to_string());
        let runs: usize = [a, b, c].iter().map(|n| sim.ran(*n).len()).sum();
        assert_eq!(runs, 1, "ran exactly once");
    }

    #[test]
    fn a_provider_that_crashes_mid_call_ends_it_unavailable_and_it_never_runs_twice() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let caller = sim.node(false);
        let (a, b) = (sim.node(false), sim.node(false));
        sim.provide(a, "get", Serve::After(10 * SECOND));
        sim.provide(b, "get", Serve::After(MS));
        sim.connect(caller, a).unwrap();
        sim.connect(caller, b).unwrap();
        let id = sim.call(caller, "get", Strategy::First, 30 * SECOND);
        sim.run_for(100 * MS);
        assert_eq!(sim.ran(a).len(), 1);
        sim.crash(a);
        sim.run_for(SECOND);
        assert!(
            matches!(
                sim.outcome(caller, id),
                Some(Err(CallError::Unavailable(_)))
            ),
            "{:?}",
            sim.outcome(caller, id)
        );
        assert!(
            sim.ran(b).is_empty(),
            "it may have run on a: not tried on b"
        );
        // The next call goes to b.
        let id = sim.call(caller, "get", Strategy::First, SECOND);
        sim.run_for(100 * MS);
        assert_eq!(answered_by(&sim, caller, id), b.to_string());
    }

    #[test]
    fn calls_reach_a_provider_again_once_it_is_back() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let caller = sim.node(false);
        let provider = sim.node(false);
        sim.provide(provider, "get", Serve::After(MS));
        sim.connect(caller, provider).unwrap();
        sim.crash(provider);
        sim.run_for(2 * SECOND);
        // Gone: a call waits for a provider, and gets one when the provider is back.
        let id = sim.call(caller, "get", Strategy::First, 10 * SECOND);
        sim.run_for(3 * SECOND);
        assert!(sim.outcome(caller, id).is_none(), "waiting");
        sim.restart(provider, &[caller]);
        sim.run_for(100 * MS);
        assert_eq!(answered_by(&sim, caller, id), provider.to_string());
        assert_eq!(sim.ran(provider).len(), 1);
    }

    #[test]
    fn a_provider_that_never_answers_times_out_at_the_deadline() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let caller = sim.node(false);
        let slow = sim.node(false);
        sim.provide(slow, "get", Serve::Hang);
        sim.connect(caller, slow).unwrap();
        let id = sim.call(caller, "get", Strategy::First, 2 * SECOND);
        sim.run_for(2 * SECOND - MS);
        assert!(sim.outcome(caller, id).is_none());
        sim.run_for(MS);
        assert_eq!(sim.outcome(caller, id), Some(&Err(CallError::Timeout)));
        assert_eq!(sim.in_progress(caller), 0);
    }

    #[test]
    fn a_call_with_no_provider_waits_for_one_within_its_deadline() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let caller = sim.node(false);
        let late = sim.node(false);
        sim.connect(caller, late).unwrap();
        let id = sim.call(caller, "get", Strategy::First, SECOND);
        let missed = sim.call(caller, "put", Strategy::First, SECOND);
        assert_eq!(sim.lookups(caller), 2, "each looked up once");
        sim.run_for(300 * MS);
        sim.provide(late, "get", Serve::After(MS));
        sim.run_for(100 * MS);
        assert_eq!(answered_by(&sim, caller, id), late.to_string());
        sim.run_for(SECOND);
        assert!(matches!(
            sim.outcome(caller, missed),
            Some(Err(CallError::NotFound(_)))
        ));
        assert_eq!(sim.lookups(caller), 2, "no second lookup");
    }

    #[test]
    fn a_clients_call_goes_through_its_access_node_to_a_provider_it_cannot_see() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let access = sim.node(false);
        let provider = sim.node(false);
        let client = sim.node(true);
        sim.provide(provider, "get", Serve::After(MS));
        sim.connect(access, provider).unwrap();
        let early = sim.call(client, "get", Strategy::First, SECOND);
        assert_eq!(sim.lookups(client), 0, "a client does not look up itself");
        sim.connect(client, access).unwrap();
        sim.run_for(100 * MS);
        assert_eq!(answered_by(&sim, client, early), provider.to_string());
        assert_eq!(
            sim.ran(provider),
            &[(access, 1)],
            "passed on once, by its access node"
        );

        // Nobody provides `put`: the access node gives up early enough for the client to hear
        // `notFound` rather than time out.
        let id = sim.call(client, "put", Strategy::First, SECOND);
        sim.run_for(SECOND);
        assert!(
            matches!(sim.outcome(client, id), Some(Err(CallError::NotFound(_)))),
            "{:?}",
            sim.outcome(client, id)
        );
    }

    /// The topics `node` received, in order.
    fn topics(sim: &Sim, node: NodeId) -> Vec<String> {
        sim.delivered(node)
            .iter()
            .map(|(_, _, t)| t.clone())
            .collect()
    }

    #[test]
    fn publications_and_wildcards_across_three_nodes() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let (a, b, c) = (sim.node(false), sim.node(false), sim.node(false));
        sim.connect(a, b).unwrap();
        sim.connect(a, c).unwrap();
        sim.connect(b, c).unwrap();
        sim.subscribe(a, "orders.*").unwrap();
        sim.subscribe(b, "orders.**").unwrap();
        sim.subscribe(c, "*.placed").unwrap();
        sim.run_for(100 * MS);
        for topic in [
            "orders.placed",
            "orders.eu.placed",
            "audit.placed",
            "orders.shipped",
        ] {
            sim.publish(c, topic);
        }
        sim.run_for(100 * MS);
        assert_eq!(topics(&sim, a), ["orders.placed", "orders.shipped"]);
        assert_eq!(
            topics(&sim, b),
            ["orders.placed", "orders.eu.placed", "orders.shipped"],
            "`**` takes any depth, in the order published"
        );
        assert_eq!(
            topics(&sim, c),
            ["orders.placed", "audit.placed"],
            "its own publications reach its own subscription, once"
        );
    }

    #[test]
    fn a_subscription_made_before_a_member_joins_reaches_it_at_admission() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let (a, b) = (sim.node(false), sim.node(false));
        sim.subscribe(a, "orders.*").unwrap();
        sim.connect(a, b).unwrap();
        sim.run_for(100 * MS);
        sim.publish(b, "orders.placed");
        sim.run_for(100 * MS);
        assert_eq!(topics(&sim, a), ["orders.placed"]);
    }

    #[test]
    fn a_clients_publications_and_subscriptions_go_through_its_access_node() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let (access, member, client) = (sim.node(false), sim.node(false), sim.node(true));
        sim.connect(access, member).unwrap();
        sim.connect(client, access).unwrap();
        let at_member = sim.subscribe(member, "orders.*").unwrap();
        let at_client = sim.subscribe(client, "audit.*").unwrap();
        let at_access = sim.subscribe(access, "orders.*").unwrap();
        sim.run_for(100 * MS);
        // The client's subscription is held in the mesh by its access node: the member sees the
        // access node's, so its publication reaches the client through the access node.
        sim.publish(client, "orders.placed");
        sim.publish(member, "audit.logged");
        sim.run_for(100 * MS);
        assert_eq!(
            sim.delivered(member),
            &[(at_member, client, "orders.placed".into())]
        );
        assert_eq!(
            sim.delivered(access),
            &[(at_access, client, "orders.placed".into())]
        );
        assert_eq!(
            sim.delivered(client),
            &[(at_client, member, "audit.logged".into())],
            "the member's reaches the client through its access node; its own is not sent back"
        );
        assert!(
            !topics(&sim, access).contains(&"audit.logged".to_owned()),
            "held for the client, not delivered to the access node's own subscriptions"
        );
    }

    #[test]
    fn what_a_crashed_member_misses_is_counted_until_it_is_back() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let (a, b) = (sim.node(false), sim.node(false));
        sim.connect(a, b).unwrap();
        sim.subscribe(b, "orders.*").unwrap();
        sim.run_for(100 * MS);
        sim.publish(a, "orders.placed");
        sim.run_for(100 * MS);
        assert_eq!(topics(&sim, b).len(), 1);

        sim.crash(b);
        sim.run_for(2 * SECOND);
        for _ in 0..3 {
            sim.publish(a, "orders.placed");
        }
        assert_eq!(sim.missed(a), 3, "counted, not silent");
        sim.restart(b, &[a]);
        sim.run_for(100 * MS);
        sim.publish(a, "orders.placed");
        sim.run_for(100 * MS);
        assert_eq!(sim.missed(a), 3, "announced again: nothing more missed");
        assert_eq!(topics(&sim, b).len(), 2, "1 before the crash, 1 after");
    }

    const DAY: Duration = Duration::from_secs(86_400);
    const JOIN: (&str, &str) = ("", "realm/join");

    #[test]
    fn a_node_without_a_grant_to_join_is_refused_and_hears_nothing() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let a = sim.node(false);
        let reader = sim.node_granted(false, &[("/**", "msg/subscribe")], DAY);
        assert!(sim.connect(a, reader).is_err(), "reading is not joining");
        sim.subscribe(reader, "orders.*").unwrap();
        sim.run_for(100 * MS);
        sim.publish(a, "orders.placed");
        sim.run_for(100 * MS);
        assert!(topics(&sim, reader).is_empty());
        assert!(!sim.is_member(a, reader) && !sim.is_member(reader, a));
    }

    #[test]
    fn a_subscription_past_the_members_grant_is_not_routed() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let a = sim.node(false);
        let narrow = sim.node_granted(false, &[JOIN, ("/orders.*", "msg/subscribe")], DAY);
        sim.connect(a, narrow).unwrap();
        assert!(
            sim.subscribe(narrow, "payroll.*").is_err(),
            "its own node refuses first"
        );
        let orders = sim.subscribe(narrow, "orders.*").unwrap();
        // A hostile session sends it anyway: the node that would deliver refuses it.
        sim.announce(narrow, a, orders + 1, "payroll.*");
        sim.run_for(100 * MS);
        assert_eq!(sim.refused(a), 1);
        sim.publish(a, "payroll.run");
        sim.publish(a, "orders.placed");
        sim.run_for(100 * MS);
        assert_eq!(topics(&sim, narrow), ["orders.placed"]);
    }

    #[test]
    fn a_member_whose_join_expires_is_dropped_and_hears_no_more() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let a = sim.node(false);
        let brief = sim.node_granted(false, EVERYTHING, 30 * SECOND);
        sim.connect(a, brief).unwrap();
        sim.subscribe(brief, "orders.*").unwrap();
        sim.run_for(100 * MS);
        sim.publish(a, "orders.placed");
        sim.run_for(100 * MS);
        assert_eq!(topics(&sim, brief).len(), 1);

        sim.run_for(29 * SECOND);
        assert!(sim.is_member(a, brief), "its grant still holds");
        sim.run_for(2 * SECOND);
        assert!(
            !sim.is_member(a, brief),
            "ended within a sweep of its expiry"
        );
        sim.publish(a, "orders.placed");
        sim.run_for(100 * MS);
        assert_eq!(topics(&sim, brief).len(), 1, "nothing after the end");
        assert_eq!(sim.missed(a), 0, "it left: nothing is owed to it");
    }

    #[test]
    fn a_revoked_member_is_dropped_by_every_node_told_of_it() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let (a, b, c) = (sim.node(false), sim.node(false), sim.node(false));
        sim.connect(a, b).unwrap();
        sim.connect(a, c).unwrap();
        sim.connect(b, c).unwrap();
        sim.subscribe(c, "orders.*").unwrap();
        sim.run_for(100 * MS);

        sim.revoke_join(c, a);
        sim.run_for(2 * SECOND);
        assert!(!sim.is_member(a, c), "a applied it");
        assert!(
            !sim.is_member(b, c),
            "b heard of it from a, and applied it too"
        );
        assert!(
            sim.is_member(a, b) && sim.is_member(b, a),
            "the others stay"
        );
        sim.publish(a, "orders.placed");
        sim.publish(b, "orders.placed");
        sim.run_for(100 * MS);
        assert!(topics(&sim, c).is_empty());
        // A node that joins later is told of the record too.
        let d = sim.node(false);
        sim.connect(a, d).unwrap();
        sim.run_for(100 * MS);
        assert!(sim.connect(d, c).is_err(), "d knows c's join is revoked");
    }

    /// Every node's routing and calls cores hold exactly the roster's members, through
    /// admission, a crash and a restart, an expired join and a revoked one.
    #[test]
    fn the_cores_hold_the_rosters_members_through_churn() {
        let mut sim = Sim::new(5 * MS, SECOND);
        let (a, b, c) = (sim.node(false), sim.node(false), sim.node(true));
        let brief = sim.node_granted(false, EVERYTHING, 10 * SECOND);
        let revoked = sim.node(false);
        for (x, y) in [
            (a, b),
            (a, c),
            (a, brief),
            (b, brief),
            (a, revoked),
            (b, revoked),
        ] {
            sim.connect(x, y).unwrap();
        }
        let nodes = [a, b, c, brief, revoked];
        let agree = |sim: &Sim, when: &str| {
            for node in nodes {
                let [roster, routing, calls] = sim.views(node);
                assert_eq!(roster, routing, "node {node}, {when}: routing");
                assert_eq!(roster, calls, "node {node}, {when}: calls");
            }
        };
        sim.run_for(100 * MS);
        agree(&sim, "after admission");
        assert_eq!(
            sim.views(a)[0].len(),
            4,
            "a holds all four, its client included"
        );

        sim.crash(b);
        sim.run_for(2 * SECOND);
        agree(&sim, "after a crash");
        assert!(!sim.is_member(a, b));
        sim.restart(b, &[a]);
        sim.run_for(100 * MS);
        agree(&sim, "after a restart");
        assert!(sim.is_member(a, b));

        sim.revoke_join(revoked, a);
        sim.run_for(12 * SECOND);
        agree(&sim, "after an expiry and a revocation");
        assert!(!sim.is_member(a, brief) && !sim.is_member(a, revoked));
        assert_eq!(sim.views(a)[0], BTreeSet::from([b, c]));
    }

    #[test]
    fn a_run_is_the_same_every_time() {
        let trace = || {
            let (mut sim, caller, [a, _, _]) = realm();
            sim.stop_serving_quietly(a, "get");
            let ids: Vec<CallId> = (0..20)
                .map(|i| {
                    let strategy = if i % 2 == 0 {
                        Strategy::Random
                    } else {
                        Strategy::RoundRobin
                    };
                    sim.call(caller, "get", strategy, SECOND)
                })
                .collect();
            sim.run_for(SECOND);
            ids.iter()
                .map(|id| format!("{:?}", sim.outcome(caller, *id)))
                .collect::<Vec<_>>()
        };
        assert_eq!(trace(), trace());
    }
}
