//! Peers that refused a session outright (`Refused`: another wire version). Each is logged once,
//! and not asked for a session again for [`REFUSED_FOR`]: until one side is upgraded it would
//! refuse again. At most [`MAX_REMEMBERED`] are kept, so refusing keys cost bounded memory and
//! cannot push out each other's recent entries before the expired ones.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long a peer that refused a session is not asked for another.
pub(crate) const REFUSED_FOR: Duration = Duration::from_secs(600);
/// Peers remembered at most.
const MAX_REMEMBERED: usize = 1024;

/// When each peer last refused.
#[derive(Debug)]
pub(crate) struct Refusals<P> {
    at: HashMap<P, Instant>,
}

impl<P> Default for Refusals<P> {
    fn default() -> Self {
        Self { at: HashMap::new() }
    }
}

impl<P: Copy + Eq + Hash> Refusals<P> {
    /// Whether `peer` refused within [`REFUSED_FOR`] of `now`.
    pub(crate) fn recent(&self, peer: &P, now: Instant) -> bool {
        self.at
            .get(peer)
            .is_some_and(|at| now.saturating_duration_since(*at) < REFUSED_FOR)
    }

    /// `peer` refused at `now`. True if that is news (to be logged): it had not refused lately.
    pub(crate) fn refused(&mut self, peer: P, now: Instant) -> bool {
        let news = !self.recent(&peer, now);
        if news && self.at.len() >= MAX_REMEMBERED {
            // Expired ones first, then the oldest.
            self.at
                .retain(|_, at| now.saturating_duration_since(*at) < REFUSED_FOR);
            let oldest = self.at.iter().min_by_key(|(_, at)| **at).map(|(p, _)| *p);
            if self.at.len() >= MAX_REMEMBERED
                && let Some(oldest) = oldest
            {
                self.at.remove(&oldest);
            }
        }
        self.at.insert(peer, now);
        news
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.at.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_news_once_and_holds_for_its_time() {
        let t0 = Instant::now();
        let mut refusals = Refusals::default();
        assert!(!refusals.recent(&1, t0));
        assert!(refusals.refused(1, t0));
        assert!(!refusals.refused(1, t0 + Duration::from_secs(1)));
        assert!(refusals.recent(&1, t0 + REFUSED_FOR - Duration::from_secs(1)));
        assert!(!refusals.recent(&1, t0 + REFUSED_FOR + Duration::from_secs(1)));
        assert!(
            refusals.refused(1, t0 + 2 * REFUSED_FOR),
            "news again once it expired"
        );
    }

    #[test]
    fn the_peers_remembered_are_bounded_and_the_oldest_go_first() {
        let t0 = Instant::now();
        let mut refusals = Refusals::default();
        for peer in 0..MAX_REMEMBERED as u32 {
            refusals.refused(peer, t0 + Duration::from_millis(u64::from(peer)));
        }
        let later = t0 + Duration::from_secs(5);
        for peer in 10_000..10_100u32 {
            refusals.refused(peer, later);
        }
        assert_eq!(refusals.len(), MAX_REMEMBERED);
        // The oldest went, the newest stayed: a flood does not wipe what is recent.
        assert!(!refusals.recent(&0, later));
        assert!(refusals.recent(&(MAX_REMEMBERED as u32 - 1), later));
        assert!(refusals.recent(&10_099, later));
        // Expired entries go before any recent one.
        let much_later = t0 + REFUSED_FOR + Duration::from_secs(10);
        assert!(refusals.refused(20_000, much_later));
        assert_eq!(refusals.len(), 1);
    }
}
