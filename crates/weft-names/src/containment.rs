//! Does every name one pattern (`inner`) matches also match another (`outer`)?
//!
//! The search looks for a counterexample: a name of 1–32 segments that `inner` matches and
//! `outer` does not. Two facts keep it small.
//!
//! 1. Whatever `inner`'s wildcards stand for may as well be a segment neither pattern names
//!    (written `#` here): putting `#` in place of a segment never helps `outer` match, since its
//!    literals cannot match `#` and its wildcards match anything. So `inner` is walked as a
//!    generator of names over its own literals and `#`, where the only choice is how many `#` each
//!    `**` stands for, and only `outer` needs a set of automaton states.
//! 2. Those sets stay small: once a `**` of `outer` is reached it stays reachable, and every
//!    earlier state can only lead to acceptance through it, so the earlier states are dropped.
//!
//! The walk is breadth-first by length (a `**` standing for nothing costs none), so a (position,
//! state set) is first reached by its shortest prefix; and a state set containing one already
//! reached at the same position is skipped, since more states never help a counterexample.
//!
//! Inclusion for patterns of literals, `*` and `**` is coNP-complete in general (Martens, Neven
//! and Schwentick, "Complexity of decision problems for simple regular expressions", 2004), so no
//! exact method is polynomial on every input. This one visits a few dozen states for the patterns
//! people write; a pair that would need more work than [`BUDGET`] is answered [`Outcome::TooComplex`],
//! which [`Pattern::contains`](crate::Pattern::contains) reads as "no": a delegation too
//! intricate to check is refused, never allowed unchecked.

use std::collections::VecDeque;

use crate::name::MAX_SEGMENTS;
use crate::segment::Segment;

/// What visiting a state costs, in [`BUDGET`] units, against one unit per state set compared:
/// about the ratio of their times.
const STATE_COST: usize = 16;

/// Work the search does at most, counted as states visited plus state sets compared. At the
/// name limits this bounds a check to tens of microseconds (`docs/benchmarks.md`, "Pattern
/// containment"); the patterns people write need a few dozen.
pub const BUDGET: usize = 40 * 1024;

/// Work left for checks that share one bound: all the pairs of resources compared while one
/// chain is verified, say, so a chain of many pathological pairs costs no more than a few.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    left: usize,
}

impl Budget {
    /// `work` units, in [`BUDGET`]'s measure.
    pub fn new(work: usize) -> Self {
        Self { left: work }
    }

    /// Nothing is left: every further check is answered [`Outcome::TooComplex`].
    pub fn is_spent(&self) -> bool {
        self.left == 0
    }
}

/// One check's worth.
impl Default for Budget {
    fn default() -> Self {
        Self::new(BUDGET)
    }
}

/// The answer of [`search`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every name `inner` matches, `outer` matches.
    Contained,
    /// Some name `inner` matches, `outer` does not.
    NotContained,
    /// Not decided within the budget.
    TooComplex,
}

/// Decides whether `outer` matches every name `inner` matches (both at most 32 segments), spending
/// from `budget` the work it does.
pub fn search(outer: &[Segment], inner: &[Segment], budget: &mut Budget) -> Outcome {
    let mut work = 0;
    let outcome = walk(outer, inner, budget.left, &mut work);
    budget.left = budget.left.saturating_sub(work);
    outcome
}

fn walk(outer: &[Segment], inner: &[Segment], limit: usize, work: &mut usize) -> Outcome {
    let (mut one, mut many) = (0u64, 0u64);
    for (i, segment) in outer.iter().enumerate().take(MAX_SEGMENTS) {
        match segment {
            Segment::One => one |= 1 << i,
            Segment::Many => many |= 1 << i,
            Segment::Literal(_) => {}
        }
    }
    let accept = 1u64 << outer.len().min(MAX_SEGMENTS);
    // The outer states each inner segment advances: its own literal and `*`; `#` only `*`.
    let advances: Vec<u64> = inner
        .iter()
        .map(|segment| match segment {
            Segment::Literal(l) => one | literal_mask(outer, l),
            Segment::One | Segment::Many => one,
        })
        .collect();
    let step = |states: u64, advance: u64| {
        canonical(
            closure(((states & advance) << 1) | (states & many), many),
            many,
        )
    };

    let mut queue: VecDeque<(usize, usize, u64)> =
        VecDeque::from([(0, 0, canonical(closure(1, many), many))]);
    // Per inner position, the minimal state sets reached with at least one segment; and those
    // reached with none (only at the start, through `**` standing for nothing).
    let mut reached: Vec<Vec<u64>> = vec![Vec::new(); inner.len() + 1];
    let mut reached_empty: Vec<(usize, u64)> = Vec::new();
    while let Some((at, len, states)) = queue.pop_front() {
        // Checked before the comparisons too: a skipped state costs them all the same.
        if *work > limit {
            return Outcome::TooComplex;
        }
        if len == 0 {
            *work += reached_empty.len();
            if reached_empty.contains(&(at, states)) {
                continue;
            }
            reached_empty.push((at, states));
        } else {
            let kept = &mut reached[at];
            *work += 2 * kept.len();
            if kept.iter().any(|&k| subset(k, states)) {
                continue;
            }
            kept.retain(|&k| !subset(states, k));
            kept.push(states);
        }
        *work += STATE_COST;
        if *work > limit {
            return Outcome::TooComplex;
        }
        let Some(segment) = inner.get(at) else {
            if len >= 1 && states & accept == 0 {
                return Outcome::NotContained;
            }
            continue;
        };
        let longer = len < MAX_SEGMENTS;
        match segment {
            Segment::Many => {
                queue.push_front((at + 1, len, states));
                if longer {
                    queue.push_back((at, len + 1, step(states, one)));
                }
            }
            _ if longer => queue.push_back((at + 1, len + 1, step(states, advances[at]))),
            _ => {}
        }
    }
    Outcome::Contained
}

/// Is every state of `a` in `b`?
fn subset(a: u64, b: u64) -> bool {
    a & b == a
}

/// The outer positions holding the literal `l`.
fn literal_mask(outer: &[Segment], l: &str) -> u64 {
    outer
        .iter()
        .enumerate()
        .take(MAX_SEGMENTS)
        .filter(|(_, s)| matches!(s, Segment::Literal(m) if **m == *l))
        .fold(0, |mask, (i, _)| mask | 1 << i)
}

/// Adds the states reachable through `**` standing for nothing.
fn closure(mut states: u64, many: u64) -> u64 {
    loop {
        let more = states | ((states & many) << 1);
        if more == states {
            return states;
        }
        states = more;
    }
}

/// Drops the states before the last `**` reached: they lead to acceptance only through it.
fn canonical(states: u64, many: u64) -> u64 {
    match states & many {
        0 => states,
        reached => {
            let last = 63 - reached.leading_zeros();
            states & !((1u64 << last) - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pattern;

    fn outcome(outer: &str, inner: &str) -> Outcome {
        let (outer, inner) = (Pattern::new(outer).unwrap(), Pattern::new(inner).unwrap());
        search(outer.segments(), inner.segments(), &mut Budget::default())
    }

    #[test]
    fn decides_by_cases() {
        // `b` followed by anything at all is `b` followed by at least one segment when the name
        // ends in `a`, whatever `**` stands for.
        assert_eq!(outcome("**.b.*.**", "b.**.a"), Outcome::Contained);
        assert_eq!(outcome("**.b.*.**", "b.**"), Outcome::NotContained);
        assert_eq!(outcome("**.*", "*.**"), Outcome::Contained);
        assert_eq!(outcome("*.*.**", "**"), Outcome::NotContained);
    }

    #[test]
    fn the_reported_blow_up_is_instant() {
        // `x.**` delegated as `x.**.a.*.*…` with 29 `*`: hours for the subset construction.
        let inner = format!("x.**.a{}", ".*".repeat(29));
        assert_eq!(outcome("x.**", &inner), Outcome::Contained);
        assert_eq!(outcome("x.*.**", &inner), Outcome::Contained);
        assert_eq!(outcome("x.a.**", &inner), Outcome::NotContained);
    }

    #[test]
    fn hard_pairs_at_the_name_limits_are_still_decided() {
        // 32 segments each, literals and wildcards alternating: hundreds of state sets.
        let outer = format!("**{}", ".a.*".repeat(15));
        let inner = "a.**.".repeat(16);
        let inner = inner.trim_end_matches('.');
        assert_eq!(outcome(&outer, inner), Outcome::NotContained);
        let inner = format!("**{}.a", ".a.*".repeat(15));
        assert_eq!(outcome(&outer, &inner), Outcome::NotContained);
        assert_eq!(outcome(&inner, &inner), Outcome::Contained);
    }

    #[test]
    fn a_pathological_pair_is_refused_within_the_budget() {
        // Found by searching for the pair that makes this method work hardest.
        let outer = "**.*.a.*.*.*.*.*.*.*.*.*.*.*.*.*.a.b.a.b.a.*.a.*.*.a.*.b.a.*.a";
        let inner =
            "a.**.a.**.a.**.a.**.a.**.a.**.a.**.a.**.a.**.a.*.**.a.**.a.**.a.**.a.**.a.**.*";
        assert_eq!(outcome(outer, inner), Outcome::TooComplex);
        assert!(
            !Pattern::new(outer)
                .unwrap()
                .contains(&Pattern::new(inner).unwrap())
        );
    }

    #[test]
    fn a_shared_budget_runs_out_and_then_refuses() {
        let outer = Pattern::new(&format!("**{}", ".a.*".repeat(15))).unwrap();
        let inner = Pattern::new("a.**.".repeat(16).trim_end_matches('.')).unwrap();
        let mut budget = Budget::default();
        // Each of these costs about half a check's budget.
        let first = search(outer.segments(), inner.segments(), &mut budget);
        assert_eq!(first, Outcome::NotContained);
        assert!(!budget.is_spent());
        let mut outcomes = Vec::new();
        while !budget.is_spent() {
            outcomes.push(search(outer.segments(), inner.segments(), &mut budget));
        }
        assert_eq!(outcomes.last(), Some(&Outcome::TooComplex));
        let cheap = Pattern::new("orders.**").unwrap();
        let narrow = Pattern::new("orders.*").unwrap();
        assert_eq!(
            search(cheap.segments(), narrow.segments(), &mut budget),
            Outcome::TooComplex,
            "nothing is decided once the budget is spent"
        );
    }
}
