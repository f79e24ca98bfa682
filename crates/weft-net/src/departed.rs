//! Peers not to dial from DHT records for a while: those that said goodbye, and those a dial to
//! failed.
//!
//! Provider records outlive the nodes that wrote them (a record stays at the nodes that store it
//! until it expires). Without this memory every lookup would dial every departed member again,
//! each dial costing a handshake timeout, and a newcomer would spend its patience on the dead.
//! Time is an argument, so the rules are tested without a clock.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long a peer that said goodbye is not dialed from DHT records.
pub(crate) const DEPARTED_FOR: Duration = Duration::from_secs(10 * 60);
/// How long a peer whose dial failed is not dialed again from DHT records.
pub(crate) const UNREACHABLE_FOR: Duration = Duration::from_secs(60);
/// How long membership lookups leave alone a peer a session with was released (by either
/// side) to make room: four times what makes a session idle, so that full nodes are not asked
/// again and again.
pub(crate) const RELEASED_FOR: Duration = Duration::from_secs(2 * 60);
/// Peers remembered at once; past this the oldest entry is forgotten first.
pub(crate) const CAPACITY: usize = 4096;

/// Peers to skip, each until an instant. Bounded: at most `capacity` entries.
#[derive(Debug)]
pub(crate) struct Departed<P> {
    until: HashMap<P, Instant>,
    /// Insertion order, for eviction; may hold peers already removed (skipped when evicting).
    order: VecDeque<P>,
    capacity: usize,
}

impl<P: Eq + Hash + Clone> Departed<P> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            until: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Skips `peer` until `now + for_how_long` (or longer, if it was already skipped longer).
    pub(crate) fn mark(&mut self, peer: P, now: Instant, for_how_long: Duration) {
        let until = now + for_how_long;
        if let Some(existing) = self.until.get_mut(&peer) {
            *existing = (*existing).max(until);
            return;
        }
        while self.until.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.until.remove(&oldest);
        }
        self.until.insert(peer.clone(), until);
        self.order.push_back(peer);
        // Removed peers leave stale entries in `order`; compact when they dominate.
        if self.order.len() > 2 * self.capacity {
            let until = &self.until;
            self.order.retain(|p| until.contains_key(p));
        }
    }

    /// The peer is back (it connected): dial it like any other.
    pub(crate) fn clear(&mut self, peer: &P) {
        self.until.remove(peer);
    }

    /// Is `peer` to be skipped at `now`? Forgets it once its time is up.
    pub(crate) fn contains(&mut self, peer: &P, now: Instant) -> bool {
        match self.until.get(peer) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.until.remove(peer);
                false
            }
            None => false,
        }
    }

    /// Peers remembered (expired ones included until they are looked up or evicted).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.until.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_until_the_time_is_up() {
        let t0 = Instant::now();
        let mut departed = Departed::new(8);
        departed.mark(1, t0, Duration::from_secs(10));
        assert!(departed.contains(&1, t0));
        assert!(departed.contains(&1, t0 + Duration::from_secs(9)));
        assert!(!departed.contains(&1, t0 + Duration::from_secs(10)));
        assert_eq!(departed.len(), 0, "forgotten once looked up after its time");
        assert!(!departed.contains(&2, t0));
    }

    #[test]
    fn a_longer_mark_wins_and_clear_forgets() {
        let t0 = Instant::now();
        let mut departed = Departed::new(8);
        departed.mark(1, t0, Duration::from_secs(600));
        departed.mark(1, t0, Duration::from_secs(60));
        assert!(departed.contains(&1, t0 + Duration::from_secs(120)));
        departed.clear(&1);
        assert!(!departed.contains(&1, t0));
    }

    #[test]
    fn bounded_oldest_first() {
        let t0 = Instant::now();
        let mut departed = Departed::new(3);
        for peer in 0..10 {
            departed.mark(peer, t0, Duration::from_secs(60));
            assert!(departed.len() <= 3);
        }
        assert!(!departed.contains(&0, t0));
        assert!(departed.contains(&9, t0));
        assert!(departed.contains(&7, t0));
    }

    #[test]
    fn cleared_entries_do_not_grow_the_order() {
        let t0 = Instant::now();
        let mut departed = Departed::new(4);
        for peer in 0..1000 {
            departed.mark(peer, t0, Duration::from_secs(60));
            departed.clear(&peer);
        }
        assert!(departed.order.len() <= 8, "{}", departed.order.len());
    }
}
