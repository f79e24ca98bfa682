//! Per-publisher ordering: at most once, in order, no duplicates.
//!
//! Each publisher numbers its publications per realm. A receiver keeps the highest number seen per
//! publisher and accepts only higher ones: a replayed or duplicated publication is dropped, and a
//! jump forward is accepted with the skipped count reported. The router does not count skips as
//! losses: a publisher sends each publication only to the members subscribed to its topic, so a
//! member sees gaps wherever it was not. Losses are counted where they happen, at the sender.

use std::collections::HashMap;
use std::hash::Hash;

/// What to do with a received publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sequenced {
    /// Deliver it; `missed` publications before it never arrived (0 when in order).
    Deliver {
        /// How many sequence numbers were skipped.
        missed: u64,
    },
    /// Drop it: this number (or a later one) was already delivered.
    Duplicate,
}

/// Highest sequence number seen, per publisher.
#[derive(Debug, Clone)]
pub(crate) struct Sequencer<P> {
    last: HashMap<P, u64>,
}

impl<P> Default for Sequencer<P> {
    fn default() -> Self {
        Self {
            last: HashMap::new(),
        }
    }
}

impl<P: Eq + Hash> Sequencer<P> {
    /// No publisher seen yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Decides on publication `seq` from `publisher`. The first one seen from a publisher is
    /// delivered whatever its number: a subscriber that joins late has missed nothing it asked for.
    #[cfg(test)]
    pub(crate) fn handle(&mut self, publisher: P, seq: u64) -> Sequenced {
        let mut run = self.run(&publisher);
        let decision = run.handle(seq);
        self.finish(publisher, run);
        decision
    }

    /// Starts deciding on a run of publications from one publisher (a batch from its
    /// connection) with one lookup; [`finish`](Self::finish) records where it ended.
    pub(crate) fn run(&self, publisher: &P) -> SequenceRun {
        SequenceRun {
            last: self.last.get(publisher).copied(),
        }
    }

    /// Records the end of `run`, started by [`run`](Self::run) for `publisher`.
    pub(crate) fn finish(&mut self, publisher: P, run: SequenceRun) {
        if let Some(last) = run.last {
            self.last.insert(publisher, last);
        }
    }

    /// Forgets a publisher (it left; a restarted publisher starts its numbering again).
    pub(crate) fn forget(&mut self, publisher: &P) {
        self.last.remove(publisher);
    }
}

/// A publisher's numbering while a run of its publications is decided; see [`Sequencer::run`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct SequenceRun {
    last: Option<u64>,
}

impl SequenceRun {
    /// Decides on publication `seq`, as [`Sequencer::handle`] does.
    pub(crate) fn handle(&mut self, seq: u64) -> Sequenced {
        match self.last {
            None => {
                self.last = Some(seq);
                Sequenced::Deliver { missed: 0 }
            }
            Some(last) if seq > last => {
                self.last = Some(seq);
                Sequenced::Deliver {
                    missed: seq - last - 1,
                }
            }
            Some(_) => Sequenced::Duplicate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_duplicates_and_gaps() {
        let mut s = Sequencer::new();
        assert_eq!(s.handle("a", 5), Sequenced::Deliver { missed: 0 });
        assert_eq!(s.handle("a", 6), Sequenced::Deliver { missed: 0 });
        assert_eq!(s.handle("a", 6), Sequenced::Duplicate);
        assert_eq!(s.handle("a", 4), Sequenced::Duplicate);
        assert_eq!(s.handle("a", 9), Sequenced::Deliver { missed: 2 });
        assert_eq!(
            s.handle("b", 1),
            Sequenced::Deliver { missed: 0 },
            "publishers are independent"
        );
        s.forget(&"a");
        assert_eq!(s.handle("a", 1), Sequenced::Deliver { missed: 0 });
    }

    #[test]
    fn a_run_decides_like_one_at_a_time_and_is_recorded() {
        let mut s = Sequencer::new();
        assert_eq!(s.handle("a", 3), Sequenced::Deliver { missed: 0 });
        let mut run = s.run(&"a");
        assert_eq!(run.handle(3), Sequenced::Duplicate);
        assert_eq!(run.handle(4), Sequenced::Deliver { missed: 0 });
        assert_eq!(run.handle(7), Sequenced::Deliver { missed: 2 });
        assert_eq!(run.handle(5), Sequenced::Duplicate);
        s.finish("a", run);
        assert_eq!(
            s.handle("a", 7),
            Sequenced::Duplicate,
            "the run's end is kept"
        );
        let empty = s.run(&"b");
        s.finish("b", empty);
        assert_eq!(
            s.handle("b", 1),
            Sequenced::Deliver { missed: 0 },
            "an empty run records nothing"
        );
    }
}
