//! Per-publisher ordering: at most once, in order, no duplicates, gaps counted.
//!
//! Each publisher numbers its publications per realm. A receiver keeps the highest number seen per
//! publisher and accepts only higher ones: a replayed or duplicated publication is dropped, and a
//! jump forward is accepted with the skipped count reported, so loss is visible, never silent.

use std::collections::HashMap;
use std::hash::Hash;

/// What to do with a received publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequenced {
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
pub struct Sequencer<P> {
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
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides on publication `seq` from `publisher`. The first one seen from a publisher is
    /// delivered whatever its number: a subscriber that joins late has missed nothing it asked for.
    pub fn handle(&mut self, publisher: P, seq: u64) -> Sequenced {
        match self.last.get_mut(&publisher) {
            None => {
                self.last.insert(publisher, seq);
                Sequenced::Deliver { missed: 0 }
            }
            Some(last) if seq > *last => {
                let missed = seq - *last - 1;
                *last = seq;
                Sequenced::Deliver { missed }
            }
            Some(_) => Sequenced::Duplicate,
        }
    }

    /// Forgets a publisher (it left; a restarted publisher starts its numbering again).
    pub fn forget(&mut self, publisher: &P) {
        self.last.remove(publisher);
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
}
