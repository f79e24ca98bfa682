//! When to look for a realm's members again: fast while the node is alone (a new node wants
//! company soon) or while lookups still find members it is not connected to, slowly once they
//! find no one new (newcomers find *it*, since their own lookups start fast; these only heal
//! partitions, and each costs every member a Kademlia request), and fast again once it is alone
//! again.

use std::time::Duration;

/// The first delay between membership lookups; it doubles up to [`ALONE_MAX`] or [`MAX`].
pub(crate) const FIRST: Duration = Duration::from_millis(200);
/// The steady delay while the node has no member to talk to.
pub(crate) const ALONE_MAX: Duration = Duration::from_secs(10);
/// The steady delay once it has members.
pub(crate) const MAX: Duration = Duration::from_secs(60);

/// The pace of one realm's membership lookups.
///
/// Call [`next`](Self::next) when a lookup ends, and wait what it returns before the next one;
/// call [`alone`](Self::alone) when the last member leaves.
///
/// With members, the delay doubles only while lookups find someone new; one that finds no one
/// new jumps to [`MAX`]: a mesh of 40 nodes that kept doubling spent most of a core on lookups
/// for a minute after it had converged.
#[derive(Debug)]
pub(crate) struct Discovery {
    delay: Duration,
}

impl Default for Discovery {
    fn default() -> Self {
        Self { delay: FIRST }
    }
}

impl Discovery {
    /// A lookup ended, having found a member this node was not connected to (`found_new`) or
    /// not, and the node has members (`alone` false) or not: the delay until the next one.
    pub(crate) fn next(&mut self, alone: bool, found_new: bool) -> Duration {
        if !alone && !found_new {
            self.delay = MAX;
            return MAX;
        }
        let delay = self.delay;
        let max = if alone { ALONE_MAX } else { MAX };
        self.delay = (delay * 2).min(max);
        delay
    }

    /// The node has no member left. Returns whether a lookup already scheduled should be moved
    /// to [`FIRST`] from now: it was on the slow pace, which starts over.
    pub(crate) fn alone(&mut self) -> bool {
        if self.delay > ALONE_MAX {
            self.delay = FIRST;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_to_ten_seconds_alone_and_a_minute_with_members() {
        let mut discovery = Discovery::default();
        let alone: Vec<u64> = (0..9)
            .map(|_| discovery.next(true, false).as_millis() as u64)
            .collect();
        assert_eq!(
            alone,
            [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        let with_members: Vec<u64> = (0..5)
            .map(|_| discovery.next(false, true).as_secs())
            .collect();
        assert_eq!(with_members, [10, 20, 40, 60, 60]);
    }

    #[test]
    fn with_members_a_lookup_that_finds_no_one_new_slows_to_a_minute() {
        let mut discovery = Discovery::default();
        assert_eq!(discovery.next(false, true), FIRST);
        assert_eq!(
            discovery.next(false, true),
            2 * FIRST,
            "still finding members"
        );
        assert_eq!(discovery.next(false, false), MAX, "found no one new");
        assert_eq!(discovery.next(false, true), MAX, "and stays slow");
    }

    #[test]
    fn alone_again_the_pace_starts_over_but_only_from_the_slow_one() {
        let mut discovery = Discovery::default();
        assert!(!discovery.alone(), "already fast: nothing to move");
        discovery.next(false, false);
        assert!(discovery.alone());
        assert_eq!(discovery.next(true, false), FIRST);
        assert!(!discovery.alone());
    }
}
