//! Wildcard subscriptions as a trie of segments, so that matching a topic costs a walk along its
//! segments rather than a test of every pattern: a peer holding thousands of patterns that never
//! match costs a publication nothing more than a peer holding one.
//!
//! Each edge is a literal segment, `*` or `**`. A topic is matched by a depth-first walk that
//! follows its segment's literal edge and the `*` edge one segment on, and a `**` edge zero or
//! more segments on. Each (node, position) pair is visited once, so however many `**` a pattern
//! holds the walk is bounded by the trie's nodes times the topic's segments.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use weft_names::{MAX_SEGMENTS, Name, Pattern, Segment};

#[derive(Debug, Clone)]
struct Node<T> {
    literal: HashMap<Box<str>, Node<T>>,
    one: Option<Box<Node<T>>>,
    many: Option<Box<Node<T>>>,
    /// Targets with a pattern ending here, with how many of their patterns do.
    here: HashMap<T, usize>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            literal: HashMap::new(),
            one: None,
            many: None,
            here: HashMap::new(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.one.is_none() && self.many.is_none() && self.here.is_empty()
    }
}

/// Wildcard patterns, by target.
#[derive(Debug, Clone)]
pub(crate) struct Wildcards<T> {
    root: Node<T>,
    /// Nodes in the trie: a walk visits at most this many times (segments + 1) states.
    nodes: usize,
}

impl<T> Default for Wildcards<T> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            nodes: 1,
        }
    }
}

impl<T: Clone + Eq + Hash> Wildcards<T> {
    /// `target` holds `pattern` once more.
    pub(crate) fn insert(&mut self, pattern: &Pattern, target: T) {
        let mut node = &mut self.root;
        for segment in pattern.segments() {
            let mut created = false;
            let mut create = || {
                created = true;
                Node::default()
            };
            node = match segment {
                Segment::Literal(literal) => {
                    node.literal.entry(literal.clone()).or_insert_with(create)
                }
                Segment::One => node.one.get_or_insert_with(|| Box::new(create())),
                Segment::Many => node.many.get_or_insert_with(|| Box::new(create())),
            };
            self.nodes += usize::from(created);
        }
        *node.here.entry(target).or_default() += 1;
    }

    /// `target` holds `pattern` once less; nodes left empty are pruned.
    pub(crate) fn remove(&mut self, pattern: &Pattern, target: &T) {
        self.nodes -= remove_at(&mut self.root, pattern.segments(), target);
    }

    /// Adds to `out` every target with a pattern matching `topic` that is not in `out` yet.
    pub(crate) fn matches_into(&self, topic: &Name, out: &mut Vec<T>) {
        if self.root.is_empty() {
            // No wildcard subscription at all, the common case of exact topics: no walk.
            return;
        }
        let mut segments: [&str; MAX_SEGMENTS] = [""; MAX_SEGMENTS];
        let mut len = 0;
        for segment in topic.segments().take(MAX_SEGMENTS) {
            segments[len] = segment;
            len += 1;
        }
        let mut walk = Walk {
            topic: &segments[..len],
            seen: HashSet::new(),
            out,
        };
        walk.visit(&self.root, 0);
    }
}

struct Walk<'a, 'o, T> {
    topic: &'a [&'a str],
    /// (node, position) pairs already visited below a `**`: the only place a walk can reach the
    /// same state twice. A set, since patterns made of wildcards alone reach many such states
    /// for any topic.
    seen: HashSet<(*const (), usize)>,
    out: &'o mut Vec<T>,
}

impl<T: Clone + Eq + Hash> Walk<'_, '_, T> {
    fn visit(&mut self, node: &Node<T>, at: usize) {
        if let Some(segment) = self.topic.get(at) {
            if let Some(next) = node.literal.get(*segment) {
                self.visit(next, at + 1);
            }
            if let Some(next) = &node.one {
                self.visit(next, at + 1);
            }
        } else {
            for target in node.here.keys() {
                if !self.out.contains(target) {
                    self.out.push(target.clone());
                }
            }
        }
        if let Some(next) = &node.many {
            for from in at..=self.topic.len() {
                let state = (std::ptr::from_ref::<Node<T>>(next).cast::<()>(), from);
                if self.seen.insert(state) {
                    self.visit(next, from);
                }
            }
        }
    }
}

/// Removes one hold of `target` at the end of `segments` below `node`; returns how many nodes
/// were pruned.
fn remove_at<T: Eq + Hash>(node: &mut Node<T>, segments: &[Segment], target: &T) -> usize {
    let Some((first, rest)) = segments.split_first() else {
        if let Some(count) = node.here.get_mut(target) {
            *count -= 1;
            if *count == 0 {
                node.here.remove(target);
            }
        }
        return 0;
    };
    match first {
        Segment::Literal(literal) => {
            let Some(child) = node.literal.get_mut(literal) else {
                return 0;
            };
            let pruned = remove_at(child, rest, target);
            if child.is_empty() {
                node.literal.remove(literal);
                return pruned + 1;
            }
            pruned
        }
        Segment::One | Segment::Many => {
            let slot = match first {
                Segment::One => &mut node.one,
                _ => &mut node.many,
            };
            let Some(child) = slot.as_mut() else {
                return 0;
            };
            let pruned = remove_at(child, rest, target);
            if child.is_empty() {
                *slot = None;
                return pruned + 1;
            }
            pruned
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

    fn matching(trie: &Wildcards<u8>, topic: &str) -> Vec<u8> {
        let mut out = Vec::new();
        trie.matches_into(&Name::new(topic).unwrap(), &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn wildcards_match_as_patterns_do() {
        let mut trie = Wildcards::default();
        trie.insert(&p("orders.*"), 1);
        trie.insert(&p("orders.**"), 2);
        trie.insert(&p("**.placed"), 3);
        trie.insert(&p("**"), 4);
        trie.insert(&p("*.*.x"), 5);
        assert_eq!(matching(&trie, "orders.placed"), [1, 2, 3, 4]);
        assert_eq!(
            matching(&trie, "orders"),
            [2, 4],
            "** matches zero segments"
        );
        assert_eq!(matching(&trie, "a.b.x"), [4, 5]);
        trie.remove(&p("**"), &4);
        trie.remove(&p("orders.**"), &2);
        assert_eq!(matching(&trie, "orders"), Vec::<u8>::new());
        for pattern in ["orders.*", "**.placed", "*.*.x"] {
            trie.remove(&p(pattern), &1);
            trie.remove(&p(pattern), &3);
            trie.remove(&p(pattern), &5);
        }
        assert!(trie.root.is_empty());
        assert_eq!(trie.nodes, 1, "every node pruned");
    }

    #[test]
    fn many_double_wildcards_stay_cheap() {
        // 16 `**` in a row: without the visited set the walk would try every way of splitting
        // the topic among them.
        let mut trie = Wildcards::default();
        let pattern = vec!["**"; 16].join(".") + ".z";
        trie.insert(&p(&pattern), 1);
        let topic = vec!["a"; 31].join(".");
        assert_eq!(matching(&trie, &topic), Vec::<u8>::new());
        assert_eq!(matching(&trie, &(topic + ".z")), [1]);
    }

    #[test]
    fn many_wildcard_only_patterns_match_as_each_would() {
        // Every pattern of up to 8 segments made of `*` and `**` alone: most reach any long
        // topic, so the walk meets the same (node, position) pairs again and again, and must
        // visit each once.
        let mut trie = Wildcards::default();
        let topic = Name::new(&vec!["a"; 32].join(".")).unwrap();
        let mut expected = 0;
        let mut target = 0u32;
        for bits in 1u32..256 {
            for len in 1..=8 {
                let segments: Vec<&str> = (0..len)
                    .map(|i| if bits & (1 << i) == 0 { "*" } else { "**" })
                    .collect();
                let pattern = p(&segments.join("."));
                expected += usize::from(pattern.matches(&topic));
                trie.insert(&pattern, target);
                target += 1;
            }
        }
        let mut out = Vec::new();
        trie.matches_into(&topic, &mut out);
        assert_eq!(out.len(), expected);
    }

    proptest! {
        /// The trie answers exactly what testing each pattern answers.
        #[test]
        fn agrees_with_testing_each_pattern(
            patterns in prop::collection::vec(
                (0u8..4, prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("*"), Just("**")], 1..5)),
                0..12,
            ),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            topic in prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..6),
        ) {
            let mut trie = Wildcards::default();
            let mut held: Vec<(u8, Pattern)> = Vec::new();
            for (target, segments) in &patterns {
                let pattern = p(&segments.join("."));
                trie.insert(&pattern, *target);
                held.push((*target, pattern));
            }
            for index in removed {
                if held.is_empty() {
                    break;
                }
                let (target, pattern) = held.remove(index.index(held.len()));
                trie.remove(&pattern, &target);
            }
            let topic = Name::new(&topic.join(".")).unwrap();
            let mut got = Vec::new();
            trie.matches_into(&topic, &mut got);
            got.sort_unstable();
            let mut want: Vec<u8> = held.iter().filter(|(_, p)| p.matches(&topic)).map(|(t, _)| *t).collect();
            want.sort_unstable();
            want.dedup();
            prop_assert_eq!(got, want);
        }
    }
}
