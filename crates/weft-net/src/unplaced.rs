//! Records this node provides that reached no peer, and when to place each again.
//!
//! Kademlia places a provider record by walking to the key's closest peers, then storing it
//! there. A walk that meets no peer (the node has no routing entry yet: a realm's first
//! announcements are made at start, before the bootstrap connection is up) finishes at once and
//! places the record nowhere; a walk that times out (each request may need a new connection,
//! and a saturated mesh refuses some) never reaches its storing phase. Either way the record
//! would wait for the network's republication, minutes later, and lookups meanwhile miss the
//! provider: in a 100-node mesh of 16 connections, a third of the records made while the mesh
//! formed, and lookups of a procedure with 25 providers found 1 to 7 of them.
//!
//! So a record that was not placed is placed again, after [`FIRST`], then twice as long each
//! time up to [`MAX`], until a walk places it or the node stops providing the key. Its owner
//! reports each walk's outcome, takes the keys [`due`](Unplaced::due), and starts their walks.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The first wait before placing a record again.
pub(crate) const FIRST: Duration = Duration::from_secs(2);
/// The longest wait: well under the network's republication, which it stands in for.
pub(crate) const MAX: Duration = Duration::from_secs(60);

/// The keys whose record reached no peer yet.
#[derive(Debug)]
pub(crate) struct Unplaced<K> {
    keys: HashMap<K, Retry>,
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    /// Walks that failed to place it.
    failures: u32,
    /// When to walk again; `None` while a walk is under way.
    at: Option<Instant>,
}

impl<K> Default for Unplaced<K> {
    fn default() -> Self {
        Self {
            keys: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> Unplaced<K> {
    /// A walk to place `key`'s record ended at `now`, having stored it with a peer or not.
    pub(crate) fn walked(&mut self, key: K, placed: bool, now: Instant) {
        if placed {
            self.keys.remove(&key);
            return;
        }
        let retry = self.keys.entry(key).or_insert(Retry {
            failures: 0,
            at: None,
        });
        let wait = FIRST
            .checked_mul(1 << retry.failures.min(16))
            .unwrap_or(MAX)
            .min(MAX);
        retry.failures = retry.failures.saturating_add(1);
        retry.at = Some(now + wait);
    }

    /// The node no longer provides `key`.
    pub(crate) fn withdrawn(&mut self, key: &K) {
        self.keys.remove(key);
    }

    /// The keys to walk for again at `now`; each is not due again until its walk is reported.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        for (key, retry) in &mut self.keys {
            if retry.at.is_some_and(|at| at <= now) {
                retry.at = None;
                due.push(key.clone());
            }
        }
        due
    }

    /// How many records wait to be placed.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_that_reached_no_peer_is_placed_again_ever_later() {
        let t = Instant::now();
        let mut unplaced = Unplaced::default();
        unplaced.walked("k", false, t);
        assert!(unplaced.due(t + FIRST / 2).is_empty());
        assert_eq!(unplaced.due(t + FIRST), ["k"]);
        assert!(
            unplaced.due(t + 10 * MAX).is_empty(),
            "not again while its walk is under way"
        );
        let t = t + FIRST;
        unplaced.walked("k", false, t);
        assert!(unplaced.due(t + FIRST).is_empty(), "twice as long now");
        assert_eq!(unplaced.due(t + 2 * FIRST), ["k"]);
        for _ in 0..20 {
            unplaced.walked("k", false, t);
            unplaced.due(t + MAX);
        }
        unplaced.walked("k", false, t);
        assert_eq!(unplaced.due(t + MAX), ["k"], "never longer than MAX");
    }

    #[test]
    fn a_placed_or_withdrawn_record_is_forgotten() {
        let t = Instant::now();
        let mut unplaced = Unplaced::default();
        unplaced.walked("placed", false, t);
        unplaced.walked("withdrawn", false, t);
        unplaced.walked("fine", true, t);
        assert_eq!(
            unplaced.len(),
            2,
            "a walk that placed it leaves nothing to do"
        );
        unplaced.walked("placed", true, t);
        unplaced.withdrawn(&"withdrawn");
        assert_eq!(unplaced.len(), 0);
        assert!(unplaced.due(t + MAX).is_empty());
    }
}
