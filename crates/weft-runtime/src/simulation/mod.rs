//! A realm of thousands of nodes, simulated: weft's decisions about DHT records, sessions and
//! forwarding (`core::resolve`, `core::forward`, `core::budget`, `core::keys`) driven over a
//! model of Kademlia and of the network, with simulated time, latency and loss, so that what
//! happens at 10,000 or 100,000 nodes can be counted without running them.
//!
//! The workload is `weft bench mesh`'s: one realm; node `i` subscribes to `mesh.t{i % 8}` if
//! `i % 3 == 0` and to `mesh.*` if `i % 5 == 1`, provides `mesh.echo` if `i % 4 == 2`; then
//! publications and calls from random nodes. Each node first takes up to the mesh size of
//! member sessions with random members (what its membership lookups give it), and announces
//! itself under the realm's membership key. Operations run one after another, each in its own
//! simulated time: the latencies reported are each operation's own.
//!
//! After the first round a share of the nodes crash. A second round runs before anyone has
//! noticed more than the closed connections (their records still name them), and a third once
//! the realm has healed, a record's lifetime later: the records of the crashed nodes expired,
//! the others refilled their member sessions, their resolvers looked up and withdrew as they do
//! over time, and spells of scarcity (`core::forward::Spells`) that nothing renewed lapsed.
//!
//! What it leaves out: the time nodes take to converge (tables start converged), clients, and
//! authorization (every node may do everything; `core::sim` covers admission and grants).

mod kademlia;
mod links;
mod overlay;

use std::time::{Duration, Instant};

use serde::Serialize;
use weft_auth::Realm;
use weft_names::{Name, Pattern, RealmName};

use crate::core::budget::session_cap;
use crate::core::forward::{self, Spells};
use crate::core::keys;
use crate::core::rendezvous::{self, Lookup, Rendezvous};
use crate::core::resolve::{Publishing, Record, Step, Subscribed};
use crate::settings::Limits;
use kademlia::{Dht, Walk, position};
use links::{Links, Rng};

/// Membership lookups a node short of members makes after everyone joined.
const DISCOVERY_ROUNDS: usize = 3;
/// Topics published to: `mesh.t0` to `mesh.t7`.
const TOPICS: u8 = 8;
const REALM: &str = "bench.mesh";
const PROCEDURE: &str = "mesh.echo";

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Nodes in the realm.
    pub nodes: usize,
    /// Each node's connection budget (`limits.max_connections`).
    pub connections: u32,
    /// Publications per round, from random nodes to random topics.
    pub publications: usize,
    /// Calls per round, from random nodes that do not provide the procedure.
    pub calls: usize,
    /// One-way latency of every link.
    pub latency: Duration,
    /// The chance that a packet is lost (and sent again after a probe timeout).
    pub loss: f64,
    /// The share of nodes that crash after the first round.
    pub churn: f64,
    /// Seeds every random choice: a run is the same every time.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: 1_000,
            connections: 16,
            publications: 100,
            calls: 100,
            latency: Duration::from_millis(20),
            loss: 0.01,
            churn: 0.1,
            seed: 1,
        }
    }
}

/// What a round of publications and calls reached.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SimRound {
    /// Deliveries due: subscribers (not crashed) of each publication's topic.
    pub expected_deliveries: usize,
    /// Deliveries made.
    pub delivered: usize,
    /// Publications and forwarded batches sent, per publication.
    pub messages_per_publication: f64,
    /// Kademlia requests and answers a publication caused (its records and lookups).
    pub dht_messages_per_publication: f64,
    /// Publication to subscriber, over every delivery.
    pub delivery_p50_ms: f64,
    /// Publication to subscriber, over every delivery.
    pub delivery_p99_ms: f64,
    /// Calls made.
    pub calls: usize,
    /// Calls whose lookup named a provider that answered.
    pub calls_ok: usize,
    /// Provider lookups of the procedure, each one walk.
    pub lookup_p50_ms: f64,
    /// Provider lookups of the procedure.
    pub lookup_p99_ms: f64,
    /// Call round trips, lookup included.
    pub call_p99_ms: f64,
    /// Nodes whose publications went into the overlay as the round began: short of sessions
    /// lately (`core::forward::Spells`).
    pub nodes_forwarding: usize,
}

/// The figures of a simulated run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SimReport {
    /// Nodes in the realm.
    pub nodes: usize,
    /// The connection budget.
    pub connections_limit: u32,
    /// Member sessions each node takes (the mesh size).
    pub mesh_members: usize,
    /// Connections any node held at the end, at most.
    pub max_connections_per_node: usize,
    /// Sessions any node held at the end, at most.
    pub max_sessions_per_node: usize,
    /// Nodes that ran short of sessions and forward their publications through the overlay,
    /// as the first round began.
    pub nodes_forwarding: usize,
    /// Nodes that, once everyone joined and looked for members, held no session at all.
    pub nodes_without_members: usize,
    /// Nodes that held fewer sessions than the mesh size then.
    pub nodes_short_of_members: usize,
    /// Publications per round.
    pub published: usize,
    /// The first round, every node up.
    pub round: SimRound,
    /// Kademlia walks made, records placed and lookups alike.
    pub walks: u64,
    /// Mean Kademlia requests and answers per walk.
    pub messages_per_walk: f64,
    /// Mean peers asked per walk.
    pub asked_per_walk: f64,
    /// Mean connections opened per walk: under a small budget, most peers a walk asks.
    pub dials_per_walk: f64,
    /// Provider records held for other nodes, mean per node.
    pub records_per_node: f64,
    /// Provider records held for other nodes, at most on one node.
    pub max_records_per_node: usize,
    /// Nodes that crashed after the first round.
    pub crashed: usize,
    /// The second round: right after the crashes.
    pub after_crash: SimRound,
    /// The third round: once records expired and member sessions were refilled.
    pub healed: SimRound,
    /// Wall-clock time the simulation took.
    pub wall_ms: u128,
}

/// Runs the simulation `config` describes.
pub fn simulate(config: &SimConfig) -> SimReport {
    let started = Instant::now();
    let mut sim = Sim::new(config);
    sim.join();
    let round = sim.round();
    let crashed = sim.crash();
    let after_crash = sim.round();
    sim.heal();
    let healed = sim.round();
    let (mut records, mut max_records) = (0usize, 0usize);
    for node in sim.live() {
        let held = sim.dht.records(node);
        records += held;
        max_records = max_records.max(held);
    }
    let live = sim.live().count().max(1);
    let walks = sim.walks.max(1);
    SimReport {
        nodes: config.nodes,
        connections_limit: config.connections,
        mesh_members: sim.mesh_size,
        max_connections_per_node: sim
            .live()
            .map(|n| sim.links.connections(n))
            .max()
            .unwrap_or(0),
        max_sessions_per_node: sim
            .live()
            .map(|n| sim.links.session_count(n))
            .max()
            .unwrap_or(0),
        nodes_forwarding: round.nodes_forwarding,
        nodes_without_members: sim.member_sessions.iter().filter(|s| **s == 0).count(),
        nodes_short_of_members: sim
            .member_sessions
            .iter()
            .filter(|s| **s < sim.mesh_size)
            .count(),
        published: config.publications,
        round,
        walks: sim.walks,
        messages_per_walk: sim.walk_messages as f64 / walks as f64,
        asked_per_walk: sim.walk_asked as f64 / walks as f64,
        dials_per_walk: sim.walk_dials as f64 / walks as f64,
        records_per_node: records as f64 / live as f64,
        max_records_per_node: max_records,
        crashed,
        after_crash,
        healed,
        wall_ms: started.elapsed().as_millis(),
    }
}

/// The simulated realm.
struct Sim {
    config: SimConfig,
    links: Links,
    dht: Dht,
    realm: Realm,
    rng: Rng,
    mesh_size: usize,
    session_cap: usize,
    /// Past the mesh size, members find each other through records.
    resolving: bool,
    /// A bit per topic the node's subscriptions cover.
    interests: Vec<u8>,
    subscribed: Vec<Subscribed>,
    publishing: Vec<Publishing>,
    /// When each node ran short of sessions (`core::forward::Spells`): while a spell lasts it
    /// dials few of what its lookups find, and a little longer forwards its publications.
    spells: Vec<Spells>,
    /// Simulated time: operations take none of it; healing takes a record's lifetime.
    now: Instant,
    /// When the simulation began, in simulated time.
    origin: Instant,
    walks: u64,
    walk_messages: u64,
    walk_asked: u64,
    walk_dials: u64,
    /// Kademlia messages since the counter was last taken.
    dht_messages: u64,
    /// Sessions each node held once everyone had joined and looked for members.
    member_sessions: Vec<usize>,
    rendezvous: Vec<Rendezvous>,
}

impl Sim {
    fn new(config: &SimConfig) -> Self {
        // Only durations from here count: any instant would do.
        let origin = Instant::now();
        let limits = Limits {
            max_connections: config.connections,
            ..Limits::default()
        };
        let budget = usize::try_from(config.connections).unwrap_or(usize::MAX);
        let (replication, parallelism) = weft_net::kad_fan_out(config.connections);
        let mut rng = Rng::new(config.seed);
        let dht = Dht::new(
            config.nodes,
            replication.get(),
            parallelism.get(),
            weft_net::MAX_PROVIDERS_PER_KEY,
            &mut rng,
        );
        let links = Links::new(
            config.nodes,
            budget,
            config.latency,
            config.loss,
            config.seed ^ 0x5eed,
        );
        let topics: Vec<Name> = (0..TOPICS)
            .filter_map(|t| Name::new(&format!("mesh.t{t}")).ok())
            .collect();
        let interests = (0..config.nodes)
            .map(|i| {
                patterns(i).iter().fold(0u8, |bits, pattern| {
                    topics
                        .iter()
                        .enumerate()
                        .filter(|(_, topic)| pattern.matches(topic))
                        .fold(bits, |bits, (t, _)| bits | (1 << t))
                })
            })
            .collect();
        let rendezvous = (0..config.nodes)
            .map(|_| Rendezvous::new(rng.next_u64().to_le_bytes()[0]))
            .collect();
        let realm = RealmName::new(REALM)
            .map(Realm::open)
            .unwrap_or_else(|_| unreachable_realm());
        Self {
            config: config.clone(),
            links,
            dht,
            realm,
            rng,
            mesh_size: limits.mesh_size(),
            session_cap: session_cap(config.connections),
            resolving: config.nodes > limits.mesh_size(),
            interests,
            subscribed: (0..config.nodes).map(|_| Subscribed::default()).collect(),
            publishing: (0..config.nodes).map(|_| Publishing::default()).collect(),
            spells: vec![Spells::default(); config.nodes],
            now: origin,
            origin,
            walks: 0,
            walk_messages: 0,
            walk_asked: 0,
            walk_dials: 0,
            dht_messages: 0,
            member_sessions: Vec::new(),
            rendezvous,
        }
    }

    /// A session between `a` and `b` was refused for room: both ran short, now.
    fn short_of_sessions(&mut self, a: u32, b: u32) {
        for node in [a, b] {
            if let Some(spells) = self.spells.get_mut(node as usize) {
                spells.mark(self.now);
            }
        }
    }

    /// Whether `node`'s lookups are held back now.
    fn scarce(&self, node: u32) -> bool {
        self.spells
            .get(node as usize)
            .is_some_and(|spells| spells.scarce(self.now))
    }

    /// Whether `node`'s publications go into the overlay now, whatever reached a subscriber.
    fn forwarding(&self, node: u32) -> bool {
        self.spells
            .get(node as usize)
            .is_some_and(|spells| spells.forwarding(self.now))
    }

    /// Simulated time as the resolver counts it, in seconds.
    fn seconds(&self) -> u64 {
        self.now.saturating_duration_since(self.origin).as_secs()
    }

    fn live(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.config.nodes)
            .filter_map(|i| u32::try_from(i).ok())
            .filter(|i| !self.links.crashed(*i))
    }

    fn count(&mut self, walk: &Walk) {
        self.walks += 1;
        self.walk_messages += walk.messages;
        self.walk_asked += walk.asked as u64;
        self.walk_dials += walk.dials;
        self.dht_messages += walk.messages;
    }

    /// Every node, in turn, looks its realm's members up and takes sessions with those found,
    /// announces itself as a member, and takes up its subscriptions and procedure, as the
    /// resolver and registry ask. Then each node short of members looks again, as its
    /// discovery loop would over the next minutes.
    fn join(&mut self) {
        let nodes: Vec<u32> = self.live().collect();
        for &node in &nodes {
            self.discover(node);
            let shard = rendezvous::shard_from(format!("node {node}").as_bytes());
            let key = position(&keys::membership_shard_key(&self.realm, shard));
            let walk = self.dht.provide(&mut self.links, node, key);
            self.count(&walk);
        }
        for _ in 0..DISCOVERY_ROUNDS {
            for &node in &nodes {
                if self.links.session_count(node) < self.mesh_size {
                    self.discover(node);
                }
            }
        }
        for &node in &nodes {
            for pattern in patterns(node as usize) {
                self.subscribed[node as usize].add(&pattern, 0);
            }
            if self.resolving {
                self.subscribed[node as usize].activate(0);
            }
            while let Some(step) = self.subscribed[node as usize].poll() {
                self.step(node, step);
            }
            if node % 4 == 2
                && let Ok(name) = Name::new(PROCEDURE)
            {
                let key = position(&keys::procedure_key(&self.realm, &name));
                let walk = self.dht.provide(&mut self.links, node, key);
                self.count(&walk);
            }
        }
        self.member_sessions = nodes.iter().map(|n| self.links.session_count(*n)).collect();
    }

    /// One membership lookup of `node`'s, as `core::rendezvous` picks it (and an announcement
    /// under the base key if it says so), and sessions with the members it found, in a random
    /// order, up to the mesh size. A member at its session cap refuses, and both are then short
    /// of sessions.
    fn discover(&mut self, node: u32) {
        let which = self.rendezvous[node as usize].next();
        let key = position(&match which {
            Lookup::Base => keys::membership_key(&self.realm),
            Lookup::Shard(shard) => keys::membership_shard_key(&self.realm, shard),
        });
        let walk = self.dht.walk(&mut self.links, node, key, true);
        self.count(&walk);
        let found: Vec<u32> = walk.providers.into_iter().filter(|p| *p != node).collect();
        if self.rendezvous[node as usize].found(which, found.len()) {
            let walk = self.dht.provide(&mut self.links, node, key);
            self.count(&walk);
        }
        let mut found: Vec<u32> = found
            .into_iter()
            .filter(|p| !self.links.has_session(node, *p))
            .collect();
        for i in (1..found.len()).rev() {
            let j = self.rng.below(i + 1);
            found.swap(i, j);
        }
        for peer in found {
            if self.links.session_count(node) >= self.mesh_size {
                break;
            }
            if !self.links.open_session(node, peer, self.session_cap) && !self.links.crashed(peer) {
                self.short_of_sessions(node, peer);
            }
        }
    }

    /// Takes member sessions with random live members up to the mesh size: what a healed
    /// realm's discovery ends with.
    fn fill_members(&mut self, node: u32) {
        let n = self.config.nodes;
        let mut tries = 0;
        while self.links.session_count(node) < self.mesh_size && tries < 8 * self.mesh_size {
            tries += 1;
            let peer = u32::try_from(self.rng.below(n)).unwrap_or(0);
            if peer == node || self.links.crashed(peer) || self.links.has_session(node, peer) {
                continue;
            }
            if !self.links.open_session(node, peer, self.session_cap) {
                self.short_of_sessions(node, peer);
            }
        }
    }

    /// One DHT request of a resolver's.
    fn step(&mut self, node: u32, step: Step) {
        match step {
            Step::Provide(record) => {
                let key = self.key(&record);
                let walk = self.dht.provide(&mut self.links, node, key);
                self.count(&walk);
            }
            // Withdrawing removes only the local copy; the others expire.
            Step::StopProviding(_) => {}
            Step::LookUp(record) => {
                // A node that forwards skips refreshes: the overlay reaches whom they would find.
                let Some(dials) = forward::dials_per_lookup(self.scarce(node), false) else {
                    return;
                };
                let key = self.key(&record);
                let walk = self.dht.walk(&mut self.links, node, key, true);
                self.count(&walk);
                for peer in walk
                    .providers
                    .into_iter()
                    .filter(|p| *p != node)
                    .take(dials)
                {
                    if self.links.has_session(node, peer) || self.links.crashed(peer) {
                        continue;
                    }
                    if !self.links.open_session(node, peer, self.session_cap) {
                        // Refused for room, on one side or the other: both are short of sessions.
                        self.short_of_sessions(node, peer);
                    }
                }
            }
        }
    }

    fn key(&self, record: &Record) -> u64 {
        position(&match record {
            Record::Subscribers(bucket) => keys::subscription_key(&self.realm, bucket),
            Record::Publishers(bucket) => keys::publication_key(&self.realm, bucket),
        })
    }

    /// Publications and calls from random live nodes.
    fn round(&mut self) -> SimRound {
        let live: Vec<u32> = self.live().collect();
        let mut round = SimRound {
            nodes_forwarding: live.iter().filter(|n| self.forwarding(**n)).count(),
            ..SimRound::default()
        };
        let (mut messages, mut latencies) = (0u64, Vec::new());
        self.dht_messages = 0;
        for p in 0..self.config.publications {
            let publisher = live[self.rng.below(live.len())];
            let topic = u8::try_from(self.rng.below(usize::from(TOPICS))).unwrap_or(0);
            let Ok(name) = Name::new(&format!("mesh.t{topic}")) else {
                continue;
            };
            let now = self.seconds();
            let publishing = &mut self.publishing[publisher as usize];
            if self.resolving {
                publishing.activate(now);
            }
            publishing.publish(&name, now);
            while let Some(step) = self.publishing[publisher as usize].poll() {
                self.step(publisher, step);
            }
            let reached = self
                .links
                .sessions(publisher)
                .any(|s| self.interests[s as usize] & (1 << topic) != 0);
            let overlay = forward::to_overlay(self.forwarding(publisher), self.resolving, reached);
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
            id[8..].copy_from_slice(&(p as u64).to_le_bytes());
            let delivery = overlay::publish(
                &mut self.links,
                &self.interests,
                topic,
                publisher,
                overlay,
                &id,
            );
            round.expected_deliveries += delivery.expected;
            round.delivered += delivery.delivered;
            messages += delivery.messages;
            latencies.extend(delivery.latencies);
        }
        let published = self.config.publications.max(1) as f64;
        round.messages_per_publication = messages as f64 / published;
        round.dht_messages_per_publication = self.dht_messages as f64 / published;
        (round.delivery_p50_ms, round.delivery_p99_ms) = quantiles(&mut latencies);

        let callers: Vec<u32> = live.iter().copied().filter(|n| n % 4 != 2).collect();
        let procedure = Name::new(PROCEDURE)
            .map(|name| position(&keys::procedure_key(&self.realm, &name)))
            .unwrap_or_default();
        let (mut lookups, mut calls) = (Vec::new(), Vec::new());
        for _ in 0..self.config.calls {
            let caller = callers[self.rng.below(callers.len())];
            let walk = self.dht.walk(&mut self.links, caller, procedure, true);
            self.count(&walk);
            lookups.push(walk.took);
            round.calls += 1;
            // The caller tries the providers found in turn, as a strategy moves past an
            // unavailable one; a crashed one costs a connection attempt that times out.
            let mut took = walk.took;
            for provider in walk
                .providers
                .iter()
                .copied()
                .filter(|p| *p != caller)
                .take(3)
            {
                match self.links.reach(caller, provider) {
                    Some(open) => {
                        took += open + self.links.one_way() + self.links.one_way();
                        round.calls_ok += 1;
                        break;
                    }
                    None => took += links::UNANSWERED,
                }
            }
            calls.push(took);
        }
        (round.lookup_p50_ms, round.lookup_p99_ms) = quantiles(&mut lookups);
        round.call_p99_ms = quantiles(&mut calls).1;
        round
    }

    /// Crashes the configured share of the nodes; returns how many.
    fn crash(&mut self) -> usize {
        let n = self.config.nodes;
        let count = ((n as f64) * self.config.churn).round() as usize;
        let mut crashed = 0;
        while crashed < count.min(n.saturating_sub(2)) {
            let node = u32::try_from(self.rng.below(n)).unwrap_or(0);
            if !self.links.crashed(node) {
                self.links.crash(node);
                crashed += 1;
            }
        }
        crashed
    }

    /// The crashed nodes' records expire and the others refill their member sessions: a
    /// record's lifetime passes, long enough for a spell of scarcity that nothing renewed to
    /// lapse.
    fn heal(&mut self) {
        self.now += weft_net::PROVIDER_RECORD_TTL;
        let now = self.seconds();
        let gone: Vec<bool> = (0..self.config.nodes)
            .map(|i| u32::try_from(i).is_ok_and(|i| self.links.crashed(i)))
            .collect();
        self.dht.forget(&gone);
        let live: Vec<u32> = self.live().collect();
        for &node in &live {
            self.fill_members(node);
        }
        // What the resolvers did meanwhile: subscriptions looked their publishers up again,
        // publishers withdrew from the buckets they stopped publishing to.
        for &node in &live {
            self.subscribed[node as usize].tick(now);
            while let Some(step) = self.subscribed[node as usize].poll() {
                self.step(node, step);
            }
            self.publishing[node as usize].tick(now);
            while let Some(step) = self.publishing[node as usize].poll() {
                self.step(node, step);
            }
        }
    }
}

/// The patterns node `i` subscribes to.
fn patterns(i: usize) -> Vec<Pattern> {
    let mut patterns = Vec::new();
    if i.is_multiple_of(3) {
        patterns.extend(Pattern::new(&format!("mesh.t{}", i % usize::from(TOPICS))).ok());
    }
    if i % 5 == 1 {
        patterns.extend(Pattern::new("mesh.*").ok());
    }
    patterns
}

/// The benchmark realm's name is valid; were it not, any realm would do for counting.
fn unreachable_realm() -> Realm {
    Realm::open(
        RealmName::new("r").unwrap_or_else(|_| unreachable!("a one-letter realm name is valid")),
    )
}

/// The median and 99th percentile of `samples`, in milliseconds.
fn quantiles(samples: &mut [Duration]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        (samples[i].as_secs_f64() * 1e5).round() / 100.0
    };
    (at(0.5), at(0.99))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_nodes_of_sixteen_connections_deliver_everything_and_answer_every_call() {
        let config = SimConfig {
            nodes: 10_000,
            publications: 10,
            calls: 20,
            ..SimConfig::default()
        };
        let report = simulate(&config);
        let r = &report.round;
        assert!(r.expected_deliveries > 10 * 2_000, "{report:?}");
        // Through members that want nothing, a batch goes at most `forward::HOPS` hops: a
        // handful of subscribers sit further than that from every publisher's path.
        let most = |r: &SimRound| r.delivered * 1_000 >= r.expected_deliveries * 999;
        assert!(most(r), "{report:?}");
        assert_eq!(r.calls_ok, r.calls, "{report:?}");
        assert_eq!(report.nodes_without_members, 0, "{report:?}");
        assert!(report.max_connections_per_node <= 16, "{report:?}");
        assert!(
            report.max_sessions_per_node <= session_cap(16),
            "{report:?}"
        );
        assert!(report.records_per_node > 0.0, "{report:?}");
        // A walk asks about log2(N / replication) peers, plus the replication ones.
        assert!(report.asked_per_walk < 30.0, "{report:?}");
        assert_eq!(report.crashed, 1_000);
        assert!(most(&report.after_crash), "{report:?}");
        assert!(most(&report.healed), "{report:?}");
        assert_eq!(report.healed.calls_ok, report.healed.calls, "{report:?}");
        // Spells of scarcity lapse unless renewed: once healed, fewer nodes forward, and a
        // publisher that no longer does still reaches every subscriber.
        assert!(
            report.healed.nodes_forwarding < report.round.nodes_forwarding,
            "{report:?}"
        );
        // Right after the crashes, walks wait on crashed nodes; once healed, they no longer do.
        assert!(report.after_crash.lookup_p99_ms >= 10_000.0, "{report:?}");
        assert!(report.healed.lookup_p99_ms < 10_000.0, "{report:?}");
    }

    #[test]
    fn a_run_is_the_same_every_time() {
        let config = SimConfig {
            nodes: 500,
            publications: 5,
            calls: 5,
            ..SimConfig::default()
        };
        let (a, b) = (simulate(&config), simulate(&config));
        assert_eq!(a.round, b.round);
        assert_eq!(a.after_crash, b.after_crash);
        assert_eq!(a.walks, b.walks);
    }

    #[test]
    fn a_realm_within_the_mesh_size_needs_no_overlay_and_no_lookups_to_deliver() {
        let config = SimConfig {
            nodes: 20,
            connections: 64,
            publications: 10,
            calls: 5,
            churn: 0.0,
            ..SimConfig::default()
        };
        let report = simulate(&config);
        assert_eq!(report.round.delivered, report.round.expected_deliveries);
        assert_eq!(report.nodes_forwarding, 0);
        assert_eq!(report.round.dht_messages_per_publication, 0.0, "{report:?}");
    }
}
