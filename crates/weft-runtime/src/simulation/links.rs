//! The simulated network: who is connected to whom under the connection budget, what a message
//! costs in time, and which nodes have crashed. QUIC is reliable, so a lost packet delays a
//! message (it is sent again after a probe timeout) rather than losing it; only a crashed node
//! leaves a message unanswered.

use std::time::Duration;

/// How long a request to a crashed node takes to be given up on (Kademlia's request timeout).
pub(crate) const UNANSWERED: Duration = Duration::from_secs(10);

/// A deterministic pseudo-random sequence (SplitMix64): a run is the same every time.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 if `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        // 53 bits of the draw as a fraction in [0, 1).
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// One end of a connection.
#[derive(Debug, Clone, Copy)]
struct End {
    peer: u32,
    /// When it was last used, for eviction of the least recently used.
    used: u64,
    /// It carries a session, and is never evicted.
    session: bool,
}

/// The links between nodes.
#[derive(Debug)]
pub(crate) struct Links {
    ends: Vec<Vec<End>>,
    crashed: Vec<bool>,
    budget: usize,
    latency: Duration,
    loss: f64,
    pub(crate) rng: Rng,
    /// A logical clock ordering uses, for eviction.
    uses: u64,
    /// Connections opened.
    pub(crate) dials: u64,
}

impl Links {
    pub(crate) fn new(
        nodes: usize,
        budget: usize,
        latency: Duration,
        loss: f64,
        seed: u64,
    ) -> Self {
        Self {
            ends: vec![Vec::new(); nodes],
            crashed: vec![false; nodes],
            budget: budget.max(1),
            latency,
            loss,
            rng: Rng::new(seed),
            uses: 0,
            dials: 0,
        }
    }

    pub(crate) fn nodes(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn crash(&mut self, node: u32) {
        self.crashed[node as usize] = true;
        let peers: Vec<u32> = self.ends[node as usize].iter().map(|e| e.peer).collect();
        for peer in peers {
            self.ends[peer as usize].retain(|e| e.peer != node);
        }
        self.ends[node as usize].clear();
    }

    pub(crate) fn crashed(&self, node: u32) -> bool {
        self.crashed[node as usize]
    }

    /// Connections `node` holds.
    pub(crate) fn connections(&self, node: u32) -> usize {
        self.ends[node as usize].len()
    }

    /// Peers `node` holds a session with.
    pub(crate) fn sessions(&self, node: u32) -> impl Iterator<Item = u32> + '_ {
        self.ends[node as usize]
            .iter()
            .filter(|e| e.session)
            .map(|e| e.peer)
    }

    pub(crate) fn session_count(&self, node: u32) -> usize {
        self.ends[node as usize]
            .iter()
            .filter(|e| e.session)
            .count()
    }

    pub(crate) fn has_session(&self, a: u32, b: u32) -> bool {
        self.ends[a as usize]
            .iter()
            .any(|e| e.peer == b && e.session)
    }

    /// One message's time on the wire, one way, from a connected node: the latency, plus a
    /// probe timeout (three round trips) each time a packet of it is lost.
    pub(crate) fn one_way(&mut self) -> Duration {
        let mut t = self.latency;
        while self.loss > 0.0 && self.rng.chance(self.loss) {
            t += self.latency * 6;
        }
        t
    }

    /// Uses the connection from `a` to `b`, opening it if there is none (one more round trip
    /// for the QUIC handshake), evicting each side's least recently used connection without
    /// a session to make room. Returns the time the opening took, or `None` if `b` crashed
    /// (found out after [`UNANSWERED`]).
    pub(crate) fn reach(&mut self, a: u32, b: u32) -> Option<Duration> {
        if self.crashed(b) {
            return None;
        }
        self.uses += 1;
        let now = self.uses;
        if let Some(end) = self.ends[a as usize].iter_mut().find(|e| e.peer == b) {
            end.used = now;
            if let Some(back) = self.ends[b as usize].iter_mut().find(|e| e.peer == a) {
                back.used = now;
            }
            return Some(Duration::ZERO);
        }
        self.dials += 1;
        self.make_room(a);
        self.make_room(b);
        self.ends[a as usize].push(End {
            peer: b,
            used: now,
            session: false,
        });
        self.ends[b as usize].push(End {
            peer: a,
            used: now,
            session: false,
        });
        let handshake = self.one_way() + self.one_way();
        Some(handshake)
    }

    /// Opens a session between `a` and `b` (connecting them), if both have room for one more
    /// within `session_cap`. False if either is full or `b` crashed.
    pub(crate) fn open_session(&mut self, a: u32, b: u32, session_cap: usize) -> bool {
        if a == b || self.crashed(a) || self.crashed(b) || self.has_session(a, b) {
            return false;
        }
        if self.session_count(a) >= session_cap || self.session_count(b) >= session_cap {
            return false;
        }
        if self.reach(a, b).is_none() {
            return false;
        }
        for (x, y) in [(a, b), (b, a)] {
            if let Some(end) = self.ends[x as usize].iter_mut().find(|e| e.peer == y) {
                end.session = true;
            }
        }
        true
    }

    /// Frees one connection of `node`'s if it is at its budget: the least recently used one
    /// without a session, closed at both ends.
    fn make_room(&mut self, node: u32) {
        let ends = &self.ends[node as usize];
        if ends.len() < self.budget {
            return;
        }
        let victim = ends
            .iter()
            .filter(|e| !e.session)
            .min_by_key(|e| e.used)
            .map(|e| e.peer);
        if let Some(peer) = victim {
            self.ends[node as usize].retain(|e| e.peer != peer);
            self.ends[peer as usize].retain(|e| e.peer != node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_evicts_the_least_recently_used_connection_without_a_session() {
        let mut links = Links::new(5, 2, Duration::from_millis(10), 0.0, 1);
        assert!(links.open_session(0, 1, 1));
        assert_eq!(links.reach(0, 2), Some(Duration::from_millis(20)));
        assert_eq!(links.reach(0, 2), Some(Duration::ZERO), "already connected");
        links.reach(0, 3);
        assert_eq!(links.connections(0), 2, "2 evicted, the session kept");
        assert!(links.has_session(0, 1));
        assert_eq!(links.connections(2), 0, "closed at both ends");
        assert_eq!(links.dials, 3);
        assert!(!links.open_session(0, 4, 1), "at its session cap");
    }

    #[test]
    fn a_crashed_node_is_unreachable_and_its_connections_are_gone() {
        let mut links = Links::new(3, 4, Duration::from_millis(1), 0.0, 1);
        links.open_session(0, 1, 2);
        links.crash(1);
        assert_eq!(links.reach(0, 1), None);
        assert_eq!(links.connections(0), 0);
    }

    #[test]
    fn loss_delays_a_message_rather_than_losing_it() {
        let mut links = Links::new(2, 4, Duration::from_millis(10), 0.5, 7);
        let times: Vec<Duration> = (0..100).map(|_| links.one_way()).collect();
        assert!(times.iter().all(|t| *t >= Duration::from_millis(10)));
        assert!(times.iter().any(|t| *t > Duration::from_millis(10)));
    }
}
