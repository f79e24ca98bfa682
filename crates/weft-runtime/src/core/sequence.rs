//! Per-publisher numbering: each publication delivered at most once, in order along any one
//! path.
//!
//! Each publisher numbers its publications per realm, anew in each run (a number its hello
//! and its signed batches carry, which grows from one start to the next). A receiver keeps, per
//! publisher, its latest run and which of the last [`WINDOW`] numbers it delivered. A
//! publication is delivered if its number is new, even after a higher one: a copy forwarded
//! through other members takes another path than a direct one, and may arrive later. It is
//! dropped if it was delivered already, is older than the window, or belongs to an earlier run.
//!
//! Gaps are not losses: a publisher sends each publication only to the members subscribed to
//! its topic, so a member sees gaps wherever it was not. Losses are counted where they happen,
//! at the sender. A publisher is remembered across its sessions (so a forwarded copy of what
//! came directly is not taken again once the session ended), up to [`MAX_PUBLISHERS`], the
//! least recently heard going first.

use std::collections::HashMap;
use std::hash::Hash;

/// How far behind the highest number a late publication is still taken.
pub(crate) const WINDOW: u64 = 4096;
const WORDS: usize = (WINDOW / 64) as usize;
/// Publishers remembered per realm.
pub(crate) const MAX_PUBLISHERS: usize = 4096;

/// What to do with a received publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sequenced {
    /// Deliver it; `missed` numbers were skipped to reach it (0 when in order or late).
    Deliver {
        /// How many sequence numbers were skipped.
        missed: u64,
    },
    /// Drop it: delivered already, or of an earlier run.
    Duplicate,
    /// Drop it: more than [`WINDOW`] numbers behind the highest delivered, so whether it was
    /// delivered is no longer known. A loss, unless it is an old duplicate.
    TooLate,
}

/// One publisher's run, its highest number, and which of the [`WINDOW`] numbers up to it were
/// delivered: number `n`'s mark is bit `n % WINDOW`, so moving ahead clears only the marks of
/// the numbers passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    run: u64,
    last: u64,
    seen: [u64; WORDS],
}

impl Window {
    fn first(run: u64, seq: u64) -> Self {
        let mut window = Self {
            run,
            last: seq,
            seen: [0; WORDS],
        };
        window.mark(seq);
        window
    }

    fn take(&mut self, seq: u64) -> Sequenced {
        if seq > self.last {
            let ahead = seq - self.last;
            match ahead >= WINDOW {
                true => self.seen = [0; WORDS],
                false => self.clear(self.last + 1, seq),
            }
            self.last = seq;
            self.mark(seq);
            return Sequenced::Deliver { missed: ahead - 1 };
        }
        if self.last - seq >= WINDOW {
            return Sequenced::TooLate;
        }
        if self.marked(seq) {
            return Sequenced::Duplicate;
        }
        self.mark(seq);
        Sequenced::Deliver { missed: 0 }
    }

    fn place(seq: u64) -> (usize, u64) {
        let at = seq % WINDOW;
        ((at / 64) as usize, at % 64)
    }

    fn mark(&mut self, seq: u64) {
        let (word, bit) = Self::place(seq);
        if let Some(w) = self.seen.get_mut(word) {
            *w |= 1 << bit;
        }
    }

    fn marked(&self, seq: u64) -> bool {
        let (word, bit) = Self::place(seq);
        self.seen.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// Clears the marks of `from..=to`, fewer than [`WINDOW`] numbers: a word at a time.
    fn clear(&mut self, from: u64, to: u64) {
        let mut seq = from;
        while seq <= to {
            let (word, bit) = Self::place(seq);
            let count = (64 - bit).min(to - seq + 1);
            let mask = match count {
                64 => u64::MAX,
                _ => ((1 << count) - 1) << bit,
            };
            if let Some(w) = self.seen.get_mut(word) {
                *w &= !mask;
            }
            seq += count;
        }
    }
}

/// Per publisher, its latest run and the numbers delivered in it.
#[derive(Debug, Clone)]
pub(crate) struct Sequencer<P> {
    windows: HashMap<P, (Window, u64)>,
    /// Counts runs finished, to tell which publisher was heard least recently.
    clock: u64,
    max: usize,
}

impl<P> Default for Sequencer<P> {
    fn default() -> Self {
        Self {
            windows: HashMap::new(),
            clock: 0,
            max: MAX_PUBLISHERS,
        }
    }
}

impl<P: Eq + Hash> Sequencer<P> {
    /// No publisher seen yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Decides on publication `seq` of run `run` from `publisher`. The first one seen from a
    /// publisher (or from a later run of it) is delivered whatever its number: a subscriber that
    /// joins late has missed nothing it asked for.
    #[cfg(test)]
    pub(crate) fn handle(&mut self, publisher: P, run: u64, seq: u64) -> Sequenced {
        let mut sequence = self.run(&publisher, run);
        let decision = sequence.handle(seq);
        self.finish(publisher, sequence);
        decision
    }

    /// Starts deciding on a run of publications from one publisher in its run `run` (a batch
    /// from its connection, or a forwarded batch) with one lookup; [`finish`](Self::finish)
    /// records where it ended.
    pub(crate) fn run(&self, publisher: &P, run: u64) -> SequenceRun {
        SequenceRun {
            run,
            window: self.windows.get(publisher).map(|(window, _)| *window),
            delivered: false,
        }
    }

    /// Records the end of `sequence`, started by [`run`](Self::run) for `publisher`. One that
    /// delivered nothing changes nothing, not even how recently the publisher was heard.
    pub(crate) fn finish(&mut self, publisher: P, sequence: SequenceRun) {
        let (Some(window), true) = (sequence.window, sequence.delivered) else {
            return;
        };
        self.clock += 1;
        self.windows.insert(publisher, (window, self.clock));
        if self.windows.len() > self.max {
            // Once in a while, not on every insertion: the least recently heard eighth goes.
            let mut heard: Vec<u64> = self.windows.values().map(|(_, at)| *at).collect();
            let cut = heard.len() / 8;
            let (_, threshold, _) = heard.select_nth_unstable(cut);
            let threshold = *threshold;
            self.windows.retain(|_, (_, at)| *at > threshold);
        }
    }

    /// `publisher` opened a session in its run `run`: what its hello says is its run, whatever
    /// was heard before (its clock may have gone back since a later-numbered run).
    pub(crate) fn session(&mut self, publisher: &P, run: u64) {
        if self
            .windows
            .get(publisher)
            .is_some_and(|(window, _)| window.run != run)
        {
            self.windows.remove(publisher);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.windows.len()
    }
}

/// A publisher's numbering while a run of its publications is decided; see [`Sequencer::run`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct SequenceRun {
    run: u64,
    window: Option<Window>,
    delivered: bool,
}

impl SequenceRun {
    /// Decides on publication `seq`, as [`Sequencer::handle`] does.
    pub(crate) fn handle(&mut self, seq: u64) -> Sequenced {
        let decision = match &mut self.window {
            Some(window) if window.run == self.run => window.take(seq),
            Some(window) if window.run > self.run => Sequenced::Duplicate,
            // None, or a later run: the publisher started again.
            _ => {
                self.window = Some(Window::first(self.run, seq));
                Sequenced::Deliver { missed: 0 }
            }
        };
        self.delivered |= matches!(decision, Sequenced::Deliver { .. });
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_duplicates_and_gaps() {
        let mut s = Sequencer::new();
        assert_eq!(s.handle("a", 1, 5), Sequenced::Deliver { missed: 0 });
        assert_eq!(s.handle("a", 1, 6), Sequenced::Deliver { missed: 0 });
        assert_eq!(s.handle("a", 1, 6), Sequenced::Duplicate);
        assert_eq!(s.handle("a", 1, 9), Sequenced::Deliver { missed: 2 });
        assert_eq!(
            s.handle("b", 1, 1),
            Sequenced::Deliver { missed: 0 },
            "publishers are independent"
        );
    }

    #[test]
    fn a_late_copy_is_delivered_once_within_the_window() {
        let mut s = Sequencer::new();
        assert_eq!(s.handle("a", 1, 100), Sequenced::Deliver { missed: 0 });
        assert_eq!(s.handle("a", 1, 103), Sequenced::Deliver { missed: 2 });
        assert_eq!(
            s.handle("a", 1, 101),
            Sequenced::Deliver { missed: 0 },
            "late"
        );
        assert_eq!(s.handle("a", 1, 101), Sequenced::Duplicate);
        assert_eq!(s.handle("a", 1, 100), Sequenced::Duplicate);
        assert_eq!(s.handle("a", 1, 102), Sequenced::Deliver { missed: 0 });
        // The marks move with the highest number, across words.
        assert_eq!(
            s.handle("a", 1, 103 + 70),
            Sequenced::Deliver { missed: 69 }
        );
        assert_eq!(s.handle("a", 1, 101), Sequenced::Duplicate);
        assert_eq!(s.handle("a", 1, 103), Sequenced::Duplicate);
        assert_eq!(s.handle("a", 1, 104), Sequenced::Deliver { missed: 0 });
        assert_eq!(s.handle("a", 1, 104), Sequenced::Duplicate);
        // Past the window: too late to tell.
        assert_eq!(
            s.handle("a", 1, 173 + WINDOW),
            Sequenced::Deliver { missed: WINDOW - 1 }
        );
        assert_eq!(s.handle("a", 1, 173), Sequenced::TooLate);
        assert_eq!(s.handle("a", 1, 174), Sequenced::Deliver { missed: 0 });
        // A jump of the whole window clears every mark.
        let far = 173 + 3 * WINDOW;
        assert_eq!(
            s.handle("a", 1, far),
            Sequenced::Deliver {
                missed: 2 * WINDOW - 1
            }
        );
        assert_eq!(s.handle("a", 1, far - WINDOW), Sequenced::TooLate);
        assert_eq!(s.handle("a", 1, far - 1), Sequenced::Deliver { missed: 0 });
        assert_eq!(
            s.handle("a", 1, far - WINDOW + 1),
            Sequenced::Deliver { missed: 0 }
        );
    }

    #[test]
    fn every_offset_of_the_window_is_marked_once() {
        for jump in [1, 2, 63, 64, 65, 127, 128, 500, 4000, WINDOW - 1] {
            let mut s = Sequencer::new();
            for seq in 0..=40 {
                s.handle("a", 1, seq);
            }
            assert_eq!(
                s.handle("a", 1, 40 + jump),
                Sequenced::Deliver { missed: jump - 1 }
            );
            for seq in 0..=40 + jump {
                let behind = 40 + jump - seq;
                let expected = match (seq > 40 && seq < 40 + jump, behind < WINDOW) {
                    (_, false) => Sequenced::TooLate,
                    (true, true) => Sequenced::Deliver { missed: 0 },
                    (false, true) => Sequenced::Duplicate,
                };
                assert_eq!(s.handle("a", 1, seq), expected, "jump {jump}, seq {seq}");
            }
        }
    }

    #[test]
    fn a_session_says_which_run_is_current_even_an_earlier_numbered_one() {
        let mut s = Sequencer::new();
        assert_eq!(s.handle("a", 9, 500), Sequenced::Deliver { missed: 0 });
        assert_eq!(
            s.handle("a", 5, 1),
            Sequenced::Duplicate,
            "an earlier run's"
        );
        s.session(&"a", 5);
        assert_eq!(
            s.handle("a", 5, 1),
            Sequenced::Deliver { missed: 0 },
            "its clock went back"
        );
        s.session(&"a", 5);
        assert_eq!(
            s.handle("a", 5, 1),
            Sequenced::Duplicate,
            "the same run goes on"
        );
    }

    #[test]
    fn a_new_run_starts_afresh_and_an_old_one_is_dropped() {
        let mut s = Sequencer::new();
        assert_eq!(s.handle("a", 1, 500), Sequenced::Deliver { missed: 0 });
        assert_eq!(
            s.handle("a", 2, 1),
            Sequenced::Deliver { missed: 0 },
            "restarted"
        );
        assert_eq!(s.handle("a", 2, 2), Sequenced::Deliver { missed: 0 });
        assert_eq!(s.handle("a", 1, 501), Sequenced::Duplicate, "the old run's");
        assert_eq!(s.handle("a", 2, 1), Sequenced::Duplicate);
    }

    #[test]
    fn a_sequence_decides_like_one_at_a_time_and_is_recorded() {
        let mut s = Sequencer::new();
        assert_eq!(s.handle("a", 1, 3), Sequenced::Deliver { missed: 0 });
        let mut run = s.run(&"a", 1);
        assert_eq!(run.handle(3), Sequenced::Duplicate);
        assert_eq!(run.handle(4), Sequenced::Deliver { missed: 0 });
        assert_eq!(run.handle(7), Sequenced::Deliver { missed: 2 });
        assert_eq!(run.handle(5), Sequenced::Deliver { missed: 0 });
        s.finish("a", run);
        assert_eq!(s.handle("a", 1, 7), Sequenced::Duplicate, "the end is kept");
        let empty = s.run(&"b", 1);
        s.finish("b", empty);
        assert_eq!(
            s.handle("b", 1, 9),
            Sequenced::Deliver { missed: 0 },
            "an empty sequence records nothing"
        );
    }

    #[test]
    fn the_publishers_remembered_are_bounded_the_least_recently_heard_going() {
        let mut s = Sequencer::new();
        for p in 0..MAX_PUBLISHERS as u32 {
            s.handle(p, 1, 1);
        }
        s.handle(0, 1, 2);
        s.handle(MAX_PUBLISHERS as u32, 1, 1);
        assert!(s.len() <= MAX_PUBLISHERS && s.len() > MAX_PUBLISHERS / 2);
        assert_eq!(
            s.handle(0, 1, 2),
            Sequenced::Duplicate,
            "heard lately: kept"
        );
        assert_eq!(
            s.handle(1, 1, 1),
            Sequenced::Deliver { missed: 0 },
            "forgotten"
        );
    }
}
