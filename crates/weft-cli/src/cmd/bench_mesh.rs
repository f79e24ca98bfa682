//! `weft bench mesh`: N nodes in this one process over QUIC on 127.0.0.1, in one owned realm
//! (each node holds the owner's grant, and every admission, publication and call is checked as
//! in production), with exact and wildcard subscribers and providers spread over them; then
//! publications and calls from nodes picked at random (the same every run). Contract §6,
//! `docs/contract.md`.
//!
//! Roles, by a node's index `i`: every third node subscribes to `mesh.t{i mod 8}`, every fifth
//! (from the second) to `mesh.*`, every fourth (from the third) provides `mesh.echo`. A node is
//! started every 20 ms, bootstrapping from one started before it.
//!
//! Lookups: the procedure's providers looked up in the DHT from random nodes that do not
//! provide it, one Kademlia query each, timed; `lookups_ok` counts those that found one.
//!
//! The nodes share one network runtime and one actor system (`weft::SharedRuntime`): threads
//! do not grow with N. Each node is otherwise a whole weft node: its own key, QUIC endpoint,
//! Kademlia, connection budget and actors.
//!
//! Converged: in a full mesh, every node holds every other as a member and knows every
//! provider; past the mesh size, every node holds a member and has found a subscriber of each
//! topic (as a first publication would look them up). Either way, every node routes to every
//! other node's subscriptions, or forwards through the overlay (`Node::forwarding`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use tokio::sync::Mutex;
use weft::{Builder, Chain, Keypair, Limits, Node, Pattern};

use crate::error::CliError;

const REALM: &str = "bench.mesh";
const TOPICS: usize = 8;
const ECHO: &str = "mesh.echo";
/// Between one node's start and the next.
const START_EVERY: Duration = Duration::from_millis(20);
/// How long the idle mesh's CPU use is measured over, once converged.
const IDLE_WINDOW: Duration = Duration::from_secs(5);
/// Deliveries are counted once none arrived for this long after the last publication...
const SETTLE: Duration = Duration::from_secs(3);
/// ...or this long after it at most.
const SETTLE_AT_MOST: Duration = Duration::from_secs(60);
/// Each call's deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// DHT lookups timed, at most (and no more than calls).
const LOOKUPS: u64 = 50;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MeshBench {
    pub(crate) nodes: usize,
    pub(crate) connections: Option<u32>,
    pub(crate) mesh_members: Option<usize>,
    pub(crate) publications: u64,
    pub(crate) calls: u64,
    /// How long to wait for every node to know every other's subscriptions and providers.
    pub(crate) converge_within: Duration,
    /// How long to leave the converged mesh alone before measuring its idle CPU use: nodes
    /// look for members fast at first, then every minute.
    pub(crate) settle: Duration,
    pub(crate) json: bool,
}

/// The node's roles.
fn exact_topic(i: usize) -> Option<String> {
    i.is_multiple_of(3).then(|| format!("mesh.t{}", i % TOPICS))
}

fn wildcard(i: usize) -> bool {
    i % 5 == 1
}

fn provides(i: usize) -> bool {
    i % 4 == 2
}

/// A fixed pseudo-random sequence (xorshift64): runs are comparable.
struct Picks(u64);

impl Picks {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % below.max(1) as u64).unwrap_or(0)
    }
}

/// Deliveries seen, by publication: how often each arrived at each subscription.
type Seen = Arc<Mutex<HashMap<(usize, u64), u32>>>;

pub(crate) async fn run(bench: MeshBench) -> Result<(), CliError> {
    let n = bench.nodes.max(2);
    let mut picks = Picks(0x9E37_79B9_7F4A_7C15);
    let owner = Keypair::generate()?;
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    let mut addrs: Vec<String> = Vec::with_capacity(n);
    let mut limits = Limits::default();
    if let Some(max_connections) = bench.connections {
        limits.max_connections = max_connections;
    }
    if let Some(members) = bench.mesh_members {
        limits.mesh_members = members;
    }
    let mesh_members = limits.mesh_size();
    // Past the mesh size, no node waits to hold every other as a member.
    let full_mesh = n - 1 <= mesh_members;
    let shared = weft::SharedRuntime::new().map_err(weft::Error::from)?;
    for i in 0..n {
        let key = Keypair::generate()?;
        let mut builder = Node::builder()
            .shared(&shared)
            .key(key.clone())
            .listen("127.0.0.1:0")
            .realm(REALM, owner.did())
            .ucan(REALM, grant(&owner, &key)?);
        builder = builder.limits(limits.clone());
        if i > 0 {
            builder = builder.bootstrap(addrs[picks.next(i)].clone());
        }
        let node = builder.start().await?;
        addrs.push(
            node.listen_addrs()
                .first()
                .map(ToString::to_string)
                .unwrap_or_default(),
        );
        nodes.push(node);
        tokio::time::sleep(START_EVERY).await;
    }
    let started = Instant::now();

    let seen: Seen = Arc::default();
    let mut subscriptions: Vec<Pattern> = Vec::new();
    let mut registrations = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let realm = realm_of(node)?;
        let patterns = exact_topic(i)
            .into_iter()
            .chain(wildcard(i).then(|| "mesh.*".to_owned()));
        for pattern in patterns {
            let mut subscription = realm.subscribe(&pattern).await?;
            let index = subscriptions.len();
            subscriptions.push(Pattern::new(&pattern).map_err(weft::Error::from)?);
            let seen = seen.clone();
            tokio::spawn(async move {
                while let Some(event) = subscription.next().await {
                    let Ok(k) = <[u8; 8]>::try_from(event.payload.as_ref()) else {
                        continue;
                    };
                    *seen
                        .lock()
                        .await
                        .entry((index, u64::from_be_bytes(k)))
                        .or_default() += 1;
                }
            });
        }
        if provides(i) {
            let echo: weft::ProcedureHandler =
                Arc::new(|_, payload: Bytes| Box::pin(async move { Ok(payload) }));
            let registration = realm.advertise_bytes(ECHO, echo).await?;
            registrations.push(registration);
        }
    }

    let subscribers: Vec<usize> = (0..n)
        .map(|i| usize::from(exact_topic(i).is_some()) + usize::from(wildcard(i)))
        .collect();
    let converged = converge(&nodes, &subscribers, full_mesh, bench.converge_within).await?;
    let converged_ms = converged.then(|| started.elapsed().as_millis());
    // What the mesh costs while nothing is published or called: liveness, discovery, the DHT.
    // Over the whole settling time too, since walks repeated every few minutes may fall into,
    // or miss, a window of seconds.
    let settle_began = cpu_ticks();
    tokio::time::sleep(bench.settle).await;
    let settle_cpu_percent = settle_began
        .zip(cpu_ticks())
        .and_then(|(began, now)| cpu_percent(now.saturating_sub(began), bench.settle));
    let idle_cpu_percent = idle_cpu(IDLE_WINDOW).await;
    // The fewest members a node held as publishing began: a node of a large realm holding one
    // or two is in a partition of the overlay, and its publications reach almost no one.
    let mut members_fewest = u64::MAX;
    for node in &nodes {
        members_fewest = members_fewest.min(realm_of(node)?.stats().await.members);
    }

    let mut expected = 0u64;
    let mut expected_by: Vec<u64> = vec![0; subscriptions.len()];
    for k in 0..bench.publications {
        let from = picks.next(n);
        let topic = format!("mesh.t{}", picks.next(TOPICS));
        let name = weft::Name::new(&topic).map_err(weft::Error::from)?;
        for (index, pattern) in subscriptions.iter().enumerate() {
            if pattern.matches(&name) {
                expected += 1;
                expected_by[index] += 1;
            }
        }
        realm_of(&nodes[from])?
            .publish_bytes(&topic, Bytes::copy_from_slice(&k.to_be_bytes()))
            .await?;
    }
    let deadline = Instant::now() + SETTLE_AT_MOST;
    let mut last = (0, Instant::now());
    let (delivered, duplicates) = loop {
        let (delivered, duplicates) = {
            let seen = seen.lock().await;
            let delivered = seen.len() as u64;
            let duplicates: u64 = seen.values().map(|c| u64::from(c.saturating_sub(1))).sum();
            (delivered, duplicates)
        };
        let now = Instant::now();
        if delivered > last.0 {
            last = (delivered, now);
        }
        let quiet = now.duration_since(last.1) >= SETTLE;
        if delivered >= expected || quiet || now >= deadline {
            break (delivered, duplicates);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Subscriptions that missed some publication: one node cut off, or losses spread thin.
    let short = {
        let seen = seen.lock().await;
        let mut got = vec![0u64; subscriptions.len()];
        for (index, _) in seen.keys() {
            got[*index] += 1;
        }
        (0..subscriptions.len())
            .filter(|index| got[*index] < expected_by[*index])
            .count()
    };

    let mut calls_ok = 0u64;
    let mut latencies = Vec::new();
    // Calls that failed, by the contract's code: which part of finding a provider gave out.
    let mut call_errors: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..bench.calls {
        let realm = realm_of(&nodes[picks.next(n)])?;
        let options = weft::CallOptions::default().timeout(CALL_TIMEOUT);
        let t = Instant::now();
        match realm
            .call_bytes(ECHO, Bytes::from_static(b"ping"), options)
            .await
        {
            Ok(_) => {
                calls_ok += 1;
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
            }
            Err(weft::Error::Call(e)) => *call_errors.entry(e.code().to_owned()).or_default() += 1,
            Err(e) => return Err(e.into()),
        }
    }
    // DHT lookups of the procedure from random nodes that do not provide it (a lookup names
    // the others), each one Kademlia query.
    let askers: Vec<usize> = (0..n).filter(|i| !provides(*i)).collect();
    let mut lookups = Vec::new();
    // How many of the providers each lookup found: records a lookup misses are calls that
    // crowd onto the providers it does find.
    let mut found_counts = Vec::new();
    for _ in 0..bench.calls.min(LOOKUPS) {
        let asker = askers[picks.next(askers.len())];
        let t = Instant::now();
        let found = nodes[asker].dht_lookup(REALM, ECHO).await;
        let elapsed = t.elapsed().as_secs_f64() * 1e3;
        let found = found.map_or(0, |providers| providers.len());
        found_counts.push(found as f64);
        if found > 0 {
            lookups.push(elapsed);
        }
    }
    let (lookup_found_p50, _) = quantiles(&mut found_counts);
    let (call_p50, call_p99) = quantiles(&mut latencies);
    let (lookup_p50, lookup_p99) = quantiles(&mut lookups);

    let mut max_connections = 0;
    let mut counted = weft::RealmStats::default();
    let mut forwarding = 0;
    let (mut dials, mut dht_queries) = (0, 0);
    for node in &nodes {
        let dht = node.dht_stats().await;
        max_connections = max_connections.max(dht.connected_peers);
        dials += dht.dials;
        dht_queries += dht.queries;
        forwarding += usize::from(node.forwarding());
        let stats = realm_of(node)?.stats().await;
        counted.forwarded += stats.forwarded;
        counted.forward_refused += stats.forward_refused;
        counted.forward_repaired += stats.forward_repaired;
        counted.dropped_slow_peer += stats.dropped_slow_peer;
        counted.dropped_slow_subscriber += stats.dropped_slow_subscriber;
        counted.dropped_peer_gone += stats.dropped_peer_gone;
        counted.dropped_session_ended += stats.dropped_session_ended;
        counted.dropped_too_late += stats.dropped_too_late;
        counted.dropped_unforwardable += stats.dropped_unforwardable;
        counted.denied += stats.denied;
        counted.duplicates += stats.duplicates;
    }
    let rss_kib_per_node = status_field("VmRSS:").map(|kib| kib / n as u64);
    let threads = status_field("Threads:");
    drop(registrations);
    for node in &nodes {
        node.shutdown().await;
    }

    let mut out = json!({
        "bench": "mesh",
        "nodes": n,
        "connections_limit": bench.connections,
        "mesh_members": mesh_members,
        "converged_ms": converged_ms,
        "max_connections_per_node": max_connections,
        "rss_kib_per_node": rss_kib_per_node,
        "idle_cpu_percent": idle_cpu_percent,
        "threads": threads,
        "published": bench.publications,
        "expected_deliveries": expected,
        "delivered": delivered,
        "duplicates": duplicates,
        "subscriptions_short": short,
        "members_fewest": members_fewest,
        "calls": bench.calls,
        "calls_ok": calls_ok,
        "call_errors": call_errors,
        "call_p50_ms": call_p50,
        "call_p99_ms": call_p99,
        "lookups_ok": lookups.len(),
        "lookup_p50_ms": lookup_p50,
        "lookup_p99_ms": lookup_p99,
        "providers": (0..n).filter(|i| provides(*i)).count(),
        "lookup_found_p50": lookup_found_p50,
        // What the DHT cost over the whole run, summed over the nodes.
        "dht_queries": dht_queries,
        "dials": dials,
        "run_ms": started.elapsed().as_millis(),
        // Where deliveries went, summed over the nodes (`RealmStats`).
        "nodes_forwarding": forwarding,
        "batches_forwarded": counted.forwarded,
        "batches_refused": counted.forward_refused,
        "batches_repaired": counted.forward_repaired,
        "dropped": {
            "slow_peer": counted.dropped_slow_peer,
            "slow_subscriber": counted.dropped_slow_subscriber,
            "peer_gone": counted.dropped_peer_gone,
            "session_ended": counted.dropped_session_ended,
            "too_late": counted.dropped_too_late,
            "unforwardable": counted.dropped_unforwardable,
            "denied": counted.denied,
            "duplicates_suppressed": counted.duplicates,
        },
    });
    // One more field would take the macro above past its recursion limit.
    if let Some(fields) = out.as_object_mut() {
        fields.insert("settle_cpu_percent".into(), json!(settle_cpu_percent));
    }
    if bench.json {
        println!("{out}");
    } else {
        println!(
            "mesh of {n}: converged in {}, {max_connections} connections at most per node, {} KiB per node; {delivered}/{expected} deliveries ({duplicates} duplicates); {}/{} calls",
            converged_ms.map_or("(not within the limit)".to_owned(), |ms| format!("{ms} ms")),
            rss_kib_per_node.map_or("?".to_owned(), |k| k.to_string()),
            calls_ok,
            bench.calls,
        );
    }
    Ok(())
}

/// The owner's grant to `node` of everything the bench does, for a day.
fn grant(owner: &Keypair, node: &Keypair) -> Result<Chain, CliError> {
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 86_400;
    let mut builder = Builder::new(owner, node.did())
        .expires_at(expires)
        .claim(format!("weft://{REALM}"), "realm/join");
    for ability in ["msg/publish", "msg/subscribe", "rpc/call", "rpc/advertise"] {
        builder = builder.claim(format!("weft://{REALM}/**"), ability);
    }
    Ok(Chain::new(builder.build()?, []))
}

/// The median and 99th percentile of `samples` (milliseconds), to two decimals.
fn quantiles(samples: &mut [f64]) -> (Option<f64>, Option<f64>) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round().max(0.0) as usize;
        samples.get(i).map(|ms| (ms * 100.0).round() / 100.0)
    };
    (at(0.5), at(0.99))
}

fn realm_of(node: &Node) -> Result<weft::RealmHandle, CliError> {
    node.realm(REALM)
        .ok_or_else(|| CliError::Failed("bench realm missing".into()))
}

/// Waits until every node routes to every other node's subscriptions (`subscribers[i]` of
/// them at node `i`) and, in a `full_mesh`, has every other as a member and knows every
/// provider but itself; returns whether that happened within `limit`. Past the mesh size, a
/// node first waits for a subscriber of each topic, which looks up the topics' subscribers as
/// a first publication would; calls find their providers when they are made.
async fn converge(
    nodes: &[Node],
    subscribers: &[usize],
    full_mesh: bool,
    limit: Duration,
) -> Result<bool, CliError> {
    let providers = (0..nodes.len()).filter(|i| provides(*i)).count();
    let total: usize = subscribers.iter().sum();
    let all = async {
        for (i, node) in nodes.iter().enumerate() {
            let realm = realm_of(node)?;
            if full_mesh {
                realm.wait_for_members(nodes.len() - 1).await?;
                let others = providers - usize::from(provides(i));
                if others > 0 {
                    realm.wait_for_providers(ECHO, others).await?;
                }
            } else {
                realm.wait_for_members(1).await?;
                for t in 0..TOPICS {
                    let topic = format!("mesh.t{t}");
                    // A forwarding node reaches the subscribers through the overlay.
                    tokio::select! {
                        found = realm.wait_for_subscriber(&topic) => found?,
                        () = forwarding(node) => {}
                    }
                }
            }
            // Every other node's subscriptions routed here, unless this node forwards through
            // the overlay (it cannot hold a session with every subscriber).
            let held = (total - subscribers[i]) as u64;
            while realm.stats().await.remote_subscriptions < held && !node.forwarding() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok::<(), CliError>(())
    };
    match tokio::time::timeout(limit, all).await {
        Ok(result) => result.map(|()| true),
        Err(_) => Ok(false),
    }
}

/// Resolves once `node` forwards through the overlay.
async fn forwarding(node: &Node) {
    while !node.forwarding() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A number from this process's `/proc/self/status` (Linux): `VmRSS:` in KiB, `Threads:`.
fn status_field(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The CPU this process used over `window`, in percent of one core (Linux).
async fn idle_cpu(window: Duration) -> Option<f64> {
    let before = cpu_ticks()?;
    tokio::time::sleep(window).await;
    cpu_percent(cpu_ticks()?.saturating_sub(before), window)
}

/// `used` clock ticks over `window`, in percent of one core, to a tenth; `None` over no time.
fn cpu_percent(used: u64, window: Duration) -> Option<f64> {
    if window.is_zero() {
        return None;
    }
    // The kernel counts in USER_HZ, 100 a second on Linux.
    let percent = used as f64 / (window.as_secs_f64() * 100.0) * 100.0;
    Some((percent * 10.0).round() / 10.0)
}

/// User and system time of this process so far, in clock ticks, from `/proc/self/stat`.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: the fields that follow start after its `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
