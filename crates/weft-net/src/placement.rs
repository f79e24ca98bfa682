//! The records this node provides, and when to walk to place each one next.
//!
//! Kademlia places a provider record by walking to the key's closest peers, then storing it
//! there, and the peers forget it [`PROVIDER_RECORD_TTL`](crate::PROVIDER_RECORD_TTL) later
//! unless it is placed again. Two schedules share this table:
//!
//! - **A record that was not placed** is placed again after [`FIRST`], then twice as long each
//!   time up to [`MAX`]. A walk that meets no peer (the node has no routing entry yet: a realm's
//!   first announcements are made at start, before the bootstrap connection is up) finishes at
//!   once and places the record nowhere; a walk that times out (each request may need a new
//!   connection, and a saturated mesh refuses some) never reaches its storing phase. Waiting for
//!   the republication instead left lookups missing the provider for minutes: in a 100-node mesh
//!   of 16 connections, a third of the records made while the mesh formed, and lookups of a
//!   procedure with 25 providers found 1 to 7 of them.
//! - **A placed record** is placed again about [`PROVIDER_REPUBLISH`](crate::PROVIDER_REPUBLISH)
//!   later, each key at its own time (`spread`), the first time anywhere within one period. libp2p-kad's own republication is one timer
//!   per node that walks for every key at once, and nodes started together (a cluster, a
//!   benchmark) then walk together: 1,100 walks within two seconds in a 100-node mesh, most
//!   needing new connections. Drawn apart, they stay apart.
//!
//! Its owner reports each walk's outcome (with the draw for its spread), takes the keys
//! [`due`](Placement::due), and starts their walks.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::behaviour::PROVIDER_REPUBLISH as REPUBLISH;
use crate::spread::{drawn, phased};

/// The first wait before placing a record again that reached no peer.
pub(crate) const FIRST: Duration = Duration::from_secs(2);
/// The longest wait for a record that reached no peer: well under [`REPUBLISH`].
pub(crate) const MAX: Duration = Duration::from_secs(60);

/// The keys this node provides whose records it placed or tried to.
#[derive(Debug)]
pub(crate) struct Placement<K> {
    keys: HashMap<K, Next>,
}

#[derive(Debug, Clone, Copy)]
struct Next {
    /// Walks in a row that failed to place it.
    failures: u32,
    /// Whether a walk placed it since the node began providing it.
    placed: bool,
    /// When to walk again; `None` while a walk is under way.
    at: Option<Instant>,
}

impl<K> Default for Placement<K> {
    fn default() -> Self {
        Self {
            keys: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> Placement<K> {
    /// A walk for `key` began: it is not due while the walk is under way.
    pub(crate) fn walking(&mut self, key: K) {
        self.keys
            .entry(key)
            .or_insert(Next {
                failures: 0,
                placed: false,
                at: None,
            })
            .at = None;
    }

    /// A walk to place `key`'s record ended at `now`, having stored it with a peer or not.
    /// `draw`, in `[0, 1]`, picks when a placed record is placed again: around [`REPUBLISH`],
    /// or anywhere within one the first time it was placed (see `spread`).
    pub(crate) fn walked(&mut self, key: K, placed: bool, now: Instant, draw: f64) {
        let next = self.keys.entry(key).or_insert(Next {
            failures: 0,
            placed: false,
            at: None,
        });
        let wait = if placed {
            next.failures = 0;
            if std::mem::replace(&mut next.placed, true) {
                drawn(REPUBLISH, draw)
            } else {
                phased(REPUBLISH, draw)
            }
        } else {
            let wait = FIRST
                .checked_mul(1 << next.failures.min(16))
                .unwrap_or(MAX)
                .min(MAX);
            next.failures = next.failures.saturating_add(1);
            wait
        };
        next.at = Some(now + wait);
    }

    /// The node no longer provides `key`.
    pub(crate) fn withdrawn(&mut self, key: &K) {
        self.keys.remove(key);
    }

    /// The keys to walk for again at `now`; each is not due again until its walk is reported.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        for (key, next) in &mut self.keys {
            if next.at.is_some_and(|at| at <= now) {
                next.at = None;
                due.push(key.clone());
            }
        }
        due
    }

    /// How many records reached no peer at their last walk.
    pub(crate) fn unplaced(&self) -> usize {
        self.keys.values().filter(|next| next.failures > 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spread::SPREAD;

    #[test]
    fn a_record_that_reached_no_peer_is_placed_again_ever_later() {
        let t = Instant::now();
        let mut placement = Placement::default();
        placement.walked("k", false, t, 0.5);
        assert!(placement.due(t + FIRST / 2).is_empty());
        assert_eq!(placement.due(t + FIRST), ["k"]);
        assert!(
            placement.due(t + 10 * MAX).is_empty(),
            "not again while its walk is under way"
        );
        let t = t + FIRST;
        placement.walked("k", false, t, 0.5);
        assert!(placement.due(t + FIRST).is_empty(), "twice as long now");
        assert_eq!(placement.due(t + 2 * FIRST), ["k"]);
        for _ in 0..20 {
            placement.walked("k", false, t, 0.5);
            placement.due(t + MAX);
        }
        placement.walked("k", false, t, 0.5);
        assert_eq!(placement.due(t + MAX), ["k"], "never longer than MAX");
        assert_eq!(placement.unplaced(), 1);
    }

    #[test]
    fn a_placed_record_is_placed_again_within_its_spread() {
        let t = Instant::now();
        let mut placement = Placement::default();
        placement.walked("early", true, t, 0.0);
        placement.walked("late", true, t, 1.0);
        placement.walked("wild", true, t, 7.0);
        assert_eq!(placement.unplaced(), 0);
        let first = REPUBLISH.mul_f64(SPREAD);
        assert!(
            placement
                .due(t + first - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(
            placement.due(t + first),
            ["early"],
            "the first time, anywhere within one period"
        );
        let latest = REPUBLISH.mul_f64(1.0 + SPREAD);
        assert!(
            placement
                .due(t + latest - Duration::from_millis(1))
                .is_empty()
        );
        let mut late = placement.due(t + latest);
        late.sort_unstable();
        assert_eq!(late, ["late", "wild"], "a draw past 1 counts as 1");

        let t = t + first;
        placement.walked("early", true, t, 0.0);
        let earliest = REPUBLISH.mul_f64(1.0 - SPREAD);
        assert!(
            placement
                .due(t + earliest - Duration::from_millis(1))
                .is_empty(),
            "later times around the period"
        );
        assert_eq!(placement.due(t + earliest), ["early"]);
    }

    #[test]
    fn placing_a_record_after_failures_returns_it_to_republication() {
        let t = Instant::now();
        let mut placement = Placement::default();
        for _ in 0..5 {
            placement.walked("k", false, t, 0.5);
        }
        placement.walked("k", true, t, 0.5);
        assert_eq!(placement.unplaced(), 0);
        assert!(placement.due(t + MAX).is_empty(), "not retried once placed");
        assert_eq!(placement.due(t + REPUBLISH), ["k"]);
        placement.walked("k", false, t + REPUBLISH, 0.5);
        assert!(
            placement.due(t + REPUBLISH + FIRST / 2).is_empty(),
            "a failure after a success starts from the first wait"
        );
        assert_eq!(placement.due(t + REPUBLISH + FIRST), ["k"]);
    }

    #[test]
    fn a_walk_under_way_or_a_withdrawn_record_is_not_due() {
        let t = Instant::now();
        let mut placement = Placement::default();
        placement.walked("walking", true, t, 0.5);
        placement.walking("walking");
        placement.walked("withdrawn", false, t, 0.5);
        placement.withdrawn(&"withdrawn");
        assert!(placement.due(t + 10 * REPUBLISH).is_empty());
        assert_eq!(placement.unplaced(), 0);
    }
}
