//! Kademlia as libp2p-kad runs it, for the simulator: 64-bit ids under the XOR metric, k-buckets
//! of 20, iterative walks with `parallelism` requests in flight that end once the
//! `replication` closest peers heard have answered, provider records placed at those peers, and
//! answers of at most `replication` providers, in turns, as weft's store gives them and
//! libp2p-kad cuts them (`weft-net`'s `store.rs`). Routing tables are built converged: every bucket holds up to 20 peers drawn from
//! its range of the id space, as a long-running node's would.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::links::{Links, Rng, UNANSWERED};

/// Peers per k-bucket, and closer peers per answer.
pub(crate) const K: usize = 20;

/// A key's position in the id space.
pub(crate) fn position(bytes: &[u8]) -> u64 {
    let digest = Sha256::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A key's providers as one node holds them.
#[derive(Debug, Default)]
struct Held {
    providers: Vec<u32>,
    turn: usize,
}

/// What a walk cost and found.
#[derive(Debug, Default, Clone)]
pub(crate) struct Walk {
    /// The closest peers that answered, nearest first, at most `replication`.
    pub(crate) closest: Vec<u32>,
    /// Providers heard of (a provider walk only), each once.
    pub(crate) providers: Vec<u32>,
    /// Requests and answers sent.
    pub(crate) messages: u64,
    /// Peers asked.
    pub(crate) asked: usize,
    /// Connections opened for it.
    pub(crate) dials: u64,
    /// How long it took.
    pub(crate) took: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Waiting,
    Answered,
    Failed,
}

/// Every node's Kademlia: ids, routing tables and stores.
#[derive(Debug)]
pub(crate) struct Dht {
    ids: Vec<u64>,
    tables: Vec<Vec<u32>>,
    stores: Vec<HashMap<u64, Held>>,
    replication: usize,
    parallelism: usize,
    max_providers: usize,
}

impl Dht {
    /// `nodes` nodes with converged routing tables.
    pub(crate) fn new(
        nodes: usize,
        replication: usize,
        parallelism: usize,
        max_providers: usize,
        rng: &mut Rng,
    ) -> Self {
        let ids: Vec<u64> = (0..nodes)
            .map(|i| position(format!("node {i}").as_bytes()))
            .collect();
        let mut sorted: Vec<(u64, u32)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        sorted.sort_unstable();
        let tables = ids
            .iter()
            .map(|&id| Self::table(id, &sorted, rng))
            .collect();
        Self {
            ids,
            tables,
            stores: (0..nodes).map(|_| HashMap::new()).collect(),
            replication: replication.max(1),
            parallelism: parallelism.max(1),
            max_providers,
        }
    }

    /// A converged routing table for `id`: for each bucket (the peers whose distance from `id`
    /// has its highest bit at `b`), up to [`K`] of them spread over the bucket's range.
    fn table(id: u64, sorted: &[(u64, u32)], rng: &mut Rng) -> Vec<u32> {
        let mut table = Vec::new();
        for b in 0..64u32 {
            let low = ((id >> b) ^ 1) << b;
            let high = low | ((1u64 << b) - 1);
            let start = sorted.partition_point(|(x, _)| *x < low);
            let end = sorted.partition_point(|(x, _)| *x <= high);
            let range = &sorted[start..end];
            if range.len() <= K {
                table.extend(range.iter().map(|(_, i)| *i));
            } else {
                let offset = rng.below(range.len());
                let step = range.len() / K;
                table.extend((0..K).map(|j| range[(offset + j * step) % range.len()].1));
            }
        }
        table
    }

    /// The `count` peers of `node`'s table closest to `target`, nearest first.
    fn closest(&self, node: u32, target: u64, count: usize) -> Vec<u32> {
        let mut by_distance: Vec<(u64, u32)> = self.tables[node as usize]
            .iter()
            .map(|&p| (self.ids[p as usize] ^ target, p))
            .collect();
        if by_distance.len() > count {
            by_distance.select_nth_unstable(count);
            by_distance.truncate(count);
        }
        by_distance.sort_unstable();
        by_distance.into_iter().map(|(_, p)| p).collect()
    }

    /// The `count` nodes of all, not crashed, closest to `target`: what a walk should find.
    #[cfg(test)]
    pub(crate) fn truly_closest(&self, links: &Links, target: u64, count: usize) -> Vec<u32> {
        let mut all: Vec<(u64, u32)> = (0..self.ids.len())
            .filter_map(|i| u32::try_from(i).ok())
            .filter(|i| !links.crashed(*i))
            .map(|i| (self.ids[i as usize] ^ target, i))
            .collect();
        all.sort_unstable();
        all.into_iter().take(count).map(|(_, i)| i).collect()
    }

    /// Walks from `from` towards `key`, asking for its providers if `providers`.
    pub(crate) fn walk(&mut self, links: &mut Links, from: u32, key: u64, providers: bool) -> Walk {
        let mut walk = Walk::default();
        let dials_before = links.dials;
        let mut heard: Vec<u32> = Vec::new();
        if providers {
            self.answer_providers(from, key, &mut heard);
        }
        let mut candidates: Vec<(u64, u32, State)> = self
            .closest(from, key, K)
            .into_iter()
            .map(|p| (self.ids[p as usize] ^ key, p, State::New))
            .collect();
        let mut answers: BinaryHeap<Reverse<(Duration, u32, bool)>> = BinaryHeap::new();
        let mut now = Duration::ZERO;
        let mut in_flight = 0;
        loop {
            while in_flight < self.parallelism {
                let Some(next) = self.next_to_ask(&candidates) else {
                    break;
                };
                let peer = candidates[next].1;
                candidates[next].2 = State::Waiting;
                in_flight += 1;
                walk.messages += 1;
                walk.asked += 1;
                match links.reach(from, peer) {
                    Some(open) => {
                        let at = now + open + links.one_way() + links.one_way();
                        answers.push(Reverse((at, peer, true)));
                    }
                    None => answers.push(Reverse((now + UNANSWERED, peer, false))),
                }
            }
            let Some(Reverse((at, peer, answered))) = answers.pop() else {
                break;
            };
            now = at;
            in_flight -= 1;
            let Some(slot) = candidates.iter().position(|c| c.1 == peer) else {
                continue;
            };
            if !answered {
                candidates[slot].2 = State::Failed;
                continue;
            }
            candidates[slot].2 = State::Answered;
            walk.messages += 1;
            if providers {
                self.answer_providers(peer, key, &mut heard);
            }
            for closer in self.closest(peer, key, K) {
                if closer != from && !candidates.iter().any(|c| c.1 == closer) {
                    candidates.push((self.ids[closer as usize] ^ key, closer, State::New));
                }
            }
            candidates.sort_unstable_by_key(|c| c.0);
        }
        walk.closest = candidates
            .iter()
            .filter(|c| c.2 == State::Answered)
            .take(self.replication)
            .map(|c| c.1)
            .collect();
        heard.sort_unstable();
        heard.dedup();
        walk.providers = heard;
        walk.dials = links.dials - dials_before;
        walk.took = now;
        walk
    }

    /// The nearest candidate not yet asked among the `replication` nearest that did not fail,
    /// as libp2p's closest-peers iterator picks it.
    fn next_to_ask(&self, candidates: &[(u64, u32, State)]) -> Option<usize> {
        candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.2 != State::Failed)
            .take(self.replication)
            .find(|(_, c)| c.2 == State::New)
            .map(|(i, _)| i)
    }

    /// Places `from`'s provider record for `key`: a walk to the key's closest peers, then a
    /// record to each of the `replication` closest that answered (and one in its own store).
    pub(crate) fn provide(&mut self, links: &mut Links, from: u32, key: u64) -> Walk {
        let mut walk = self.walk(links, from, key, false);
        self.store(from, key, from);
        let dials_before = links.dials;
        let mut last = Duration::ZERO;
        for &peer in &walk.closest {
            match links.reach(from, peer) {
                Some(open) => {
                    walk.messages += 1;
                    self.store(peer, key, from);
                    last = last.max(open + links.one_way());
                }
                None => last = last.max(UNANSWERED),
            }
        }
        walk.dials += links.dials - dials_before;
        walk.took += last;
        walk
    }

    fn store(&mut self, at: u32, key: u64, provider: u32) {
        let held = self.stores[at as usize].entry(key).or_insert_with(|| Held {
            providers: Vec::new(),
            // Each node's turns start elsewhere, as a real node's do: the holders of a key
            // answer every walk together, and in step they would all name the same providers.
            turn: (self.ids[at as usize] ^ key) as usize,
        });
        if !held.providers.contains(&provider) && held.providers.len() < self.max_providers {
            held.providers.push(provider);
        }
    }

    /// What `node` answers for `key`'s providers: `replication` of them, a different part of
    /// the list each time.
    fn answer_providers(&mut self, node: u32, key: u64, into: &mut Vec<u32>) {
        if let Some(held) = self.stores[node as usize].get_mut(&key) {
            let len = held.providers.len();
            if len == 0 {
                return;
            }
            let answer = self.replication;
            let start = if len > answer {
                held.turn = held.turn.wrapping_add(1);
                held.turn.wrapping_mul(answer) % len
            } else {
                0
            };
            into.extend(
                held.providers
                    .iter()
                    .cycle()
                    .skip(start)
                    .take(len.min(answer)),
            );
        }
    }

    /// Forgets crashed nodes: the records they placed expired, and every routing table
    /// dropped them after requests to them failed (or a refresh found others).
    pub(crate) fn forget(&mut self, gone: &[bool]) {
        let gone = |p: &u32| gone.get(*p as usize).copied().unwrap_or(false);
        for store in &mut self.stores {
            for held in store.values_mut() {
                held.providers.retain(|p| !gone(p));
            }
        }
        for table in &mut self.tables {
            table.retain(|p| !gone(p));
        }
    }

    /// Provider records `node` holds for others.
    pub(crate) fn records(&self, node: u32) -> usize {
        self.stores[node as usize]
            .values()
            .map(|held| held.providers.iter().filter(|p| **p != node).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dht(nodes: usize) -> (Dht, Links) {
        let mut rng = Rng::new(3);
        (
            Dht::new(nodes, 8, 2, 200, &mut rng),
            Links::new(nodes, 16, Duration::from_millis(10), 0.0, 5),
        )
    }

    #[test]
    fn a_walk_finds_the_keys_closest_nodes() {
        let (mut dht, mut links) = dht(2_000);
        for k in 0..20u32 {
            let key = position(&k.to_be_bytes());
            let from = k * 97 % 2_000;
            let walk = dht.walk(&mut links, from, key, false);
            let mut truly = dht.truly_closest(&links, key, 9);
            truly.retain(|p| *p != from);
            truly.truncate(8);
            assert_eq!(walk.closest, truly, "key {k}");
            assert!(walk.asked < 40, "{walk:?}");
        }
    }

    #[test]
    fn a_provided_key_is_found_from_anywhere_and_a_crashed_provider_is_still_named() {
        let (mut dht, mut links) = dht(1_000);
        let key = position(b"orders.get");
        dht.provide(&mut links, 7, key);
        dht.provide(&mut links, 9, key);
        for from in [0, 100, 500, 999] {
            assert_eq!(dht.walk(&mut links, from, key, true).providers, vec![7, 9]);
        }
        links.crash(7);
        assert_eq!(dht.walk(&mut links, 0, key, true).providers, vec![7, 9]);
        let mut gone = vec![false; 1_000];
        gone[7] = true;
        dht.forget(&gone);
        assert_eq!(dht.walk(&mut links, 0, key, true).providers, vec![9]);
    }

    #[test]
    fn a_walk_steps_around_crashed_nodes_at_the_cost_of_timeouts() {
        let (mut dht, mut links) = dht(1_000);
        let key = position(b"k");
        let closest = dht.truly_closest(&links, key, 3);
        for node in &closest {
            links.crash(*node);
        }
        let walk = dht.walk(&mut links, 500, key, false);
        assert!(walk.closest.iter().all(|p| !closest.contains(p)));
        assert_eq!(walk.closest, {
            let mut live = dht.truly_closest(&links, key, 9);
            live.retain(|p| *p != 500);
            live.truncate(8);
            live
        });
        assert!(walk.took >= UNANSWERED, "{walk:?}");
    }

    #[test]
    fn answers_name_every_provider_in_turns() {
        let (mut dht, _) = dht(10);
        for p in 0..50 {
            dht.store(1, 42, p);
        }
        let mut heard = Vec::new();
        for _ in 0..7 {
            dht.answer_providers(1, 42, &mut heard);
        }
        heard.sort_unstable();
        heard.dedup();
        assert_eq!(heard.len(), 50);
        assert_eq!(dht.records(1), 49, "its own is not another's");
    }
}
