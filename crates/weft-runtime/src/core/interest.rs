//! Who wants which topics: the router's subscription table.
//!
//! A *target* is where a matching publication goes: a local subscription, or a remote peer that
//! declared interest. Each target holds any number of patterns under ids of its own; a publication
//! goes to a target once, however many of its patterns match, because a peer receives one copy and
//! fans out to its own subscribers.
//!
//! Patterns without wildcards are indexed by name, so a topic only exact subscriptions care about
//! costs one hash lookup; wildcard patterns are held in a trie of segments ([`crate::core::wildcards`]),
//! so a topic costs a walk along its segments whatever the number of patterns.

use std::collections::HashMap;
use std::hash::Hash;

use weft_names::{Name, Pattern};

use crate::core::wildcards::Wildcards;

/// Subscriptions by target, with an index of exact (wildcard-free) patterns.
#[derive(Debug, Clone)]
pub struct Interests<T> {
    /// Every target's patterns, by the target's own subscription id.
    by_target: HashMap<T, HashMap<u32, Pattern>>,
    /// Wildcard patterns, as a trie.
    wildcard: Wildcards<T>,
    /// Exact patterns: name → targets holding it (with how many of their ids name it).
    exact: HashMap<Name, HashMap<T, usize>>,
}

impl<T> Default for Interests<T> {
    fn default() -> Self {
        Self {
            by_target: HashMap::new(),
            wildcard: Wildcards::default(),
            exact: HashMap::new(),
        }
    }
}

impl<T: Clone + Eq + Hash> Interests<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// `target` subscribes to `pattern` under `id`; an existing `id` is replaced.
    pub fn insert(&mut self, target: T, id: u32, pattern: Pattern) {
        self.remove(&target, id);
        if pattern.is_exact() {
            let name = exact_name(&pattern);
            *self
                .exact
                .entry(name)
                .or_default()
                .entry(target.clone())
                .or_default() += 1;
        } else {
            self.wildcard.insert(&pattern, target.clone());
        }
        self.by_target
            .entry(target)
            .or_default()
            .insert(id, pattern);
    }

    /// Subscription `id` of `target` ends; returns its pattern if it existed.
    pub fn remove(&mut self, target: &T, id: u32) -> Option<Pattern> {
        let patterns = self.by_target.get_mut(target)?;
        let pattern = patterns.remove(&id)?;
        if patterns.is_empty() {
            self.by_target.remove(target);
        }
        if pattern.is_exact() {
            let name = exact_name(&pattern);
            if let Some(holders) = self.exact.get_mut(&name) {
                decrement(holders, target);
                if holders.is_empty() {
                    self.exact.remove(&name);
                }
            }
        } else {
            self.wildcard.remove(&pattern, target);
        }
        Some(pattern)
    }

    /// Removes every subscription of `target` (a peer left); returns how many there were.
    pub fn remove_target(&mut self, target: &T) -> usize {
        let ids: Vec<u32> = self
            .by_target
            .get(target)
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default();
        for id in &ids {
            self.remove(target, *id);
        }
        ids.len()
    }

    /// `target` holds a subscription under `id`.
    pub fn holds(&self, target: &T, id: u32) -> bool {
        self.by_target
            .get(target)
            .is_some_and(|patterns| patterns.contains_key(&id))
    }

    /// How many subscriptions `target` holds.
    pub fn count(&self, target: &T) -> usize {
        self.by_target.get(target).map_or(0, HashMap::len)
    }

    /// Every target with at least one pattern matching `topic`, each once.
    pub fn targets(&self, topic: &Name) -> Vec<T> {
        let mut out = Vec::new();
        self.targets_into(topic, &mut out);
        out
    }

    /// Like [`targets`](Self::targets), into `out` (cleared first): a router reuses one vector
    /// for every publication instead of allocating one each.
    pub fn targets_into(&self, topic: &Name, out: &mut Vec<T>) {
        out.clear();
        if let Some(holders) = self.exact.get(topic) {
            out.extend(holders.keys().cloned());
        }
        self.wildcard.matches_into(topic, out);
    }

    /// The patterns of `target`, by id.
    pub fn patterns(&self, target: &T) -> impl Iterator<Item = (u32, &Pattern)> {
        self.by_target
            .get(target)
            .into_iter()
            .flat_map(|p| p.iter().map(|(id, p)| (*id, p)))
    }

    /// Number of subscriptions across all targets.
    pub fn len(&self) -> usize {
        self.by_target.values().map(HashMap::len).sum()
    }

    /// True when nobody subscribes to anything.
    pub fn is_empty(&self) -> bool {
        self.by_target.is_empty()
    }
}

fn exact_name(pattern: &Pattern) -> Name {
    // An exact pattern is a valid name by construction: same grammar, no wildcard segment.
    Name::new(pattern.as_str())
        .unwrap_or_else(|_| unreachable!("exact pattern {pattern} is a name"))
}

fn decrement<T: Eq + Hash>(counts: &mut HashMap<T, usize>, key: &T) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }
    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }
    fn sorted(mut v: Vec<&'static str>) -> Vec<&'static str> {
        v.sort();
        v
    }

    #[test]
    fn each_target_gets_one_copy() {
        let mut t = Interests::new();
        t.insert("peer-a", 1, p("orders.*"));
        t.insert("peer-a", 2, p("orders.**"));
        t.insert("peer-b", 1, p("orders.placed"));
        t.insert("peer-c", 1, p("billing.**"));
        assert_eq!(sorted(t.targets(&n("orders.placed"))), ["peer-a", "peer-b"]);
        assert_eq!(t.targets(&n("billing.x")), ["peer-c"]);
        assert!(t.targets(&n("other")).is_empty());
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn unsubscribe_and_departure_withdraw() {
        let mut t = Interests::new();
        t.insert("a", 1, p("x.y"));
        t.insert("a", 2, p("x.*"));
        assert_eq!(t.remove(&"a", 2), Some(p("x.*")));
        assert_eq!(t.targets(&n("x.y")), ["a"]);
        assert_eq!(t.targets(&n("x.z")), Vec::<&str>::new());
        t.insert("a", 1, p("q"));
        assert!(
            t.targets(&n("x.y")).is_empty(),
            "re-using an id replaces its pattern"
        );
        assert_eq!(t.remove_target(&"a"), 1);
        assert!(t.is_empty());
        assert!(t.targets(&n("q")).is_empty());
        assert_eq!(t.remove(&"a", 9), None);
    }

    proptest! {
        /// The indexed table answers exactly what a naive scan over all subscriptions answers.
        #[test]
        fn agrees_with_a_naive_scan(
            ops in prop::collection::vec((0u8..4, 0u32..3, prop_oneof![Just("a"), Just("a.b"), Just("a.*"), Just("**"), Just("*.b"), Just("b")], any::<bool>()), 0..40),
            topic in prop_oneof![Just("a"), Just("a.b"), Just("b"), Just("c.b")],
        ) {
            let mut table = Interests::new();
            let mut naive: HashMap<(u8, u32), Pattern> = HashMap::new();
            for (target, id, pattern, insert) in ops {
                if insert {
                    table.insert(target, id, p(pattern));
                    naive.insert((target, id), p(pattern));
                } else {
                    prop_assert_eq!(table.remove(&target, id), naive.remove(&(target, id)));
                }
            }
            let topic = n(topic);
            let mut got = table.targets(&topic);
            got.sort();
            let mut want: Vec<u8> = naive.iter().filter(|(_, p)| p.matches(&topic)).map(|((t, _), _)| *t).collect();
            want.sort();
            want.dedup();
            prop_assert_eq!(got, want);
            prop_assert_eq!(table.len(), naive.len());
        }
    }
}
