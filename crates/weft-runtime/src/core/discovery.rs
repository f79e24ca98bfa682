//! When to look for a realm's members again: fast while the node is short of company (alone,
//! or holding fewer members than it dials though it once held them all: its mesh broke) or
//! while lookups still find members it is not connected to; slowly once they find no one new
//! (newcomers find *it*, since their own lookups start fast; these only heal partitions, and
//! each costs every member a Kademlia request); and fast again once it falls short again.
//!
//! One lookup that finds no one new says little while a realm forms: its members' records are
//! still being placed, and walks fail when connections are scarce. In the 100-node benchmark,
//! two nodes whose first lookup found only the one member each held went to the slow pace and
//! held that one member for a minute, a partition of the overlay that nobody else healed: the
//! publications of either reached no one else. So a node still growing its mesh slows down
//! only after [`STRIKES`] lookups of the base key found no one new, and a node whose mesh broke
//! keeps looking every [`SHORT_MAX`] whatever its lookups find. A realm that never filled a
//! node's mesh (a small one) still ends at the slow pace, after a few more lookups.

use std::time::Duration;

use super::rendezvous::Verdict;

/// The first delay between membership lookups; it doubles up to [`SHORT_MAX`] or [`MAX`].
pub(crate) const FIRST: Duration = Duration::from_millis(200);
/// The steady delay while the node is alone or its mesh broke.
pub(crate) const SHORT_MAX: Duration = Duration::from_secs(10);
/// The steady delay once it has members.
pub(crate) const MAX: Duration = Duration::from_secs(60);
/// Lookups of the base key that found no one new before a node growing its mesh slows down
/// (inconclusive ones between them do not clear the count).
pub(crate) const STRIKES: u8 = 3;

/// Where a node stands with a realm's members when a lookup ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Company {
    /// No member.
    Alone,
    /// Fewer members than it dials, and it never held that many.
    Growing,
    /// Fewer members than it dials, though it once held that many: its mesh broke.
    Broken,
    /// As many members as it dials, or more.
    Whole,
}

impl Company {
    /// A node holding `held` members, dialing up to `mesh` of them, that held `mesh` before
    /// (`filled`) or not.
    pub(crate) fn of(held: usize, mesh: usize, filled: bool) -> Self {
        match (held, held >= mesh, filled) {
            (0, _, _) => Self::Alone,
            (_, true, _) => Self::Whole,
            (_, false, true) => Self::Broken,
            (_, false, false) => Self::Growing,
        }
    }

    /// Whether the node looks every [`SHORT_MAX`] at most, whatever lookups find.
    pub(crate) fn short(self) -> bool {
        matches!(self, Self::Alone | Self::Broken)
    }
}

/// The pace of one realm's membership lookups.
///
/// Call [`next`](Self::next) when a lookup ends, and wait what it returns before the next one;
/// call [`fell_short`](Self::fell_short) when the node becomes alone or its mesh breaks.
///
/// A node whose mesh is whole jumps to [`MAX`]: a mesh of 40 nodes that kept doubling spent
/// most of a core on lookups for a minute after it had converged.
#[derive(Debug)]
pub(crate) struct Discovery {
    delay: Duration,
    /// Lookups of the base key that found no one new while the node grew its mesh.
    strikes: u8,
}

impl Default for Discovery {
    fn default() -> Self {
        Self {
            delay: FIRST,
            strikes: 0,
        }
    }
}

impl Discovery {
    /// A lookup ended with the node in `company`, and said `verdict` of the realm: the delay
    /// until the next one. A node holding its mesh dials no one from the records, so its
    /// lookups only heal partitions and go at the slow pace whatever they find; one growing its
    /// mesh slows down after [`STRIKES`] lookups that named no one new, and the inconclusive
    /// ones between them (shards, failed walks) neither count nor clear the strikes.
    pub(crate) fn next(&mut self, company: Company, verdict: Verdict) -> Duration {
        self.strikes = match (company, verdict) {
            (Company::Growing, Verdict::NoOneNew) => self.strikes.saturating_add(1),
            (Company::Growing, Verdict::Inconclusive) => self.strikes,
            _ => 0,
        };
        let slow = match company {
            Company::Alone | Company::Broken => false,
            Company::Growing => self.strikes >= STRIKES,
            Company::Whole => true,
        };
        if slow {
            self.delay = MAX;
            return MAX;
        }
        let delay = self.delay;
        let max = if company.short() { SHORT_MAX } else { MAX };
        self.delay = (delay * 2).min(max);
        delay.min(max)
    }

    /// The node became alone, or its mesh broke. Returns whether a lookup already scheduled
    /// should be moved to [`FIRST`] from now: it was on the slow pace, which starts over.
    pub(crate) fn fell_short(&mut self) -> bool {
        if self.delay > SHORT_MAX {
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
    use Verdict::{Inconclusive, New, NoOneNew};

    fn millis(discovery: &mut Discovery, company: Company, verdict: Verdict, n: usize) -> Vec<u64> {
        (0..n)
            .map(|_| discovery.next(company, verdict).as_millis() as u64)
            .collect()
    }

    #[test]
    fn where_a_node_stands() {
        assert_eq!(Company::of(0, 4, true), Company::Alone);
        assert_eq!(Company::of(1, 4, false), Company::Growing);
        assert_eq!(Company::of(1, 4, true), Company::Broken);
        assert_eq!(Company::of(4, 4, false), Company::Whole);
        assert_eq!(Company::of(9, 4, true), Company::Whole);
        assert_eq!(Company::of(0, 0, false), Company::Alone);
    }

    #[test]
    fn the_delay_doubles_to_ten_seconds_alone_and_a_minute_while_finding_members() {
        let mut discovery = Discovery::default();
        assert_eq!(
            millis(&mut discovery, Company::Alone, NoOneNew, 9),
            [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        let growing: Vec<u64> = (0..5)
            .map(|_| discovery.next(Company::Growing, New).as_secs())
            .collect();
        assert_eq!(growing, [10, 20, 40, 60, 60]);
    }

    #[test]
    fn a_whole_mesh_whose_lookup_finds_no_one_new_slows_to_a_minute() {
        let mut discovery = Discovery::default();
        assert_eq!(discovery.next(Company::Growing, New), FIRST);
        assert_eq!(discovery.next(Company::Growing, New), 2 * FIRST);
        assert_eq!(
            discovery.next(Company::Whole, NoOneNew),
            MAX,
            "found no one new"
        );
        assert_eq!(discovery.next(Company::Growing, New), MAX, "and stays slow");
    }

    #[test]
    fn a_growing_mesh_slows_down_only_after_lookups_in_a_row_found_no_one_new() {
        let mut discovery = Discovery::default();
        assert_eq!(
            millis(&mut discovery, Company::Growing, NoOneNew, 2),
            [200, 400],
            "one lookup that finds no one new says little while a realm forms"
        );
        assert_eq!(
            discovery.next(Company::Growing, New).as_millis(),
            800,
            "someone new"
        );
        assert_eq!(
            millis(&mut discovery, Company::Growing, NoOneNew, 4),
            [1600, 3200, 60_000, 60_000],
            "the strikes count again from the lookup that found someone"
        );
    }

    #[test]
    fn shard_lookups_between_neither_count_as_strikes_nor_clear_them() {
        let mut discovery = Discovery::default();
        let turns = [
            NoOneNew,
            Inconclusive,
            NoOneNew,
            Inconclusive,
            NoOneNew,
            Inconclusive,
        ];
        let delays: Vec<u64> = turns
            .iter()
            .map(|v| discovery.next(Company::Growing, *v).as_millis() as u64)
            .collect();
        assert_eq!(delays, [200, 400, 800, 1600, 60_000, 60_000]);
    }

    #[test]
    fn a_broken_mesh_looks_every_ten_seconds_whatever_lookups_find() {
        let mut discovery = Discovery::default();
        discovery.next(Company::Whole, NoOneNew);
        assert!(discovery.fell_short(), "the mesh broke: start over");
        assert_eq!(
            millis(&mut discovery, Company::Broken, NoOneNew, 8),
            [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000],
        );
        assert_eq!(
            discovery.next(Company::Whole, NoOneNew),
            MAX,
            "whole again: slow"
        );
    }

    #[test]
    fn short_again_the_pace_starts_over_but_only_from_the_slow_one() {
        let mut discovery = Discovery::default();
        assert!(!discovery.fell_short(), "already fast: nothing to move");
        discovery.next(Company::Whole, NoOneNew);
        assert!(discovery.fell_short());
        assert_eq!(discovery.next(Company::Alone, NoOneNew), FIRST);
        assert!(!discovery.fell_short());
    }
}
