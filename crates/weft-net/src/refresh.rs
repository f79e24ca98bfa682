//! When to refresh the routing table: Kademlia's bootstrap, a walk towards this node's own key
//! and then one into each bucket farther than its closest, so that the table keeps live peers
//! at every distance.
//!
//! libp2p-kad would refresh on one timer per node, [`EVERY`] after the last refresh began, and
//! nodes started together (a cluster, a benchmark) then refresh together for as long as they
//! run: at a small connection budget nearly every peer a walk asks is a new connection, and a
//! 100-node mesh of 16 connections made about 800 walks within seconds every 5 minutes, which
//! with the republications falling due with them saturated two cores. Here each refresh is due at a time drawn around [`EVERY`] after the
//! last (`spread`), so nodes started together drift apart at once. The first refresh is
//! made when the first connection is up (the routing table is empty before).

use std::time::{Duration, Instant};

use crate::spread::drawn;

/// How long after a refresh the next is due, on average (libp2p-kad's default).
pub(crate) const EVERY: Duration = Duration::from_secs(5 * 60);

/// When the routing table is next refreshed.
#[derive(Debug, Default)]
pub(crate) struct Refresh {
    /// `None` until the first refresh.
    next: Option<Instant>,
}

impl Refresh {
    /// A connection came up at `now`: whether to refresh now, as the first one does. `draw`, in
    /// `[0, 1]`, picks when the next falls, around [`EVERY`] (see `spread`).
    pub(crate) fn connected(&mut self, now: Instant, draw: f64) -> bool {
        if self.next.is_some() {
            return false;
        }
        self.next = Some(now + drawn(EVERY, draw));
        true
    }

    /// Whether a refresh is due at `now`; if so, the next is scheduled from `now`.
    pub(crate) fn due(&mut self, now: Instant, draw: f64) -> bool {
        if self.next.is_none_or(|next| now < next) {
            return false;
        }
        self.next = Some(now + drawn(EVERY, draw));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spread::SPREAD;

    #[test]
    fn the_first_connection_refreshes_and_the_next_falls_within_the_spread() {
        let t = Instant::now();
        let mut refresh = Refresh::default();
        assert!(
            !refresh.due(t + 10 * EVERY, 0.5),
            "nothing before a connection"
        );
        assert!(refresh.connected(t, 0.0));
        assert!(
            !refresh.connected(t, 0.0),
            "only the first connection refreshes"
        );
        let earliest = EVERY.mul_f64(1.0 - SPREAD);
        assert!(!refresh.due(t + earliest - Duration::from_millis(1), 1.0));
        assert!(refresh.due(t + earliest, 1.0));
        let t = t + earliest;
        let latest = EVERY.mul_f64(1.0 + SPREAD);
        assert!(!refresh.due(t + latest - Duration::from_millis(1), 0.5));
        assert!(refresh.due(t + latest, 0.5), "drawn late this time");
    }

    #[test]
    fn a_late_tick_schedules_from_when_it_came() {
        let t = Instant::now();
        let mut refresh = Refresh::default();
        refresh.connected(t, 0.5);
        let late = t + 3 * EVERY;
        assert!(refresh.due(late, 0.5));
        assert!(
            !refresh.due(late + EVERY / 2, 0.5),
            "one refresh for the missed ones"
        );
        assert!(refresh.due(late + EVERY, 0.5));
    }
}
