//! Patterns over names: `*` stands for exactly one segment, `**` for zero or more, anywhere.
//!
//! Two questions are asked of patterns, at very different rates:
//! - [`Pattern::matches`]: does a published topic match a subscription (every delivery)? A linear
//!   two-pointer scan with one backtrack point, no allocation.
//! - [`Pattern::contains`]: does one pattern cover everything another can match (every UCAN
//!   delegation step and every subscribe authorization)? Exact language inclusion, decided by a
//!   bounded search ([`containment`]).

use std::fmt;
use std::str::FromStr;

use crate::containment;
use crate::name::{MAX_SEGMENTS, literal_segment, validate};
use crate::segment::Segment;
use crate::{Name, NameError};

/// A name pattern such as `orders.*`, `orders.**`, `*.order_placed` or `**`.
///
/// The grammar is a [`Name`]'s with `*` and `**` allowed as whole segments: 1–32 segments, at most
/// 256 bytes. A pattern without wildcards matches exactly one name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pattern {
    text: Box<str>,
    segments: Box<[Segment]>,
}

impl Pattern {
    /// Parses and validates a pattern.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let mut segments = Vec::new();
        validate(s, "pattern", |index, segment| {
            segments.push(match segment {
                "*" => Segment::One,
                "**" => Segment::Many,
                literal => {
                    literal_segment("pattern", index, literal)?;
                    Segment::Literal(literal.into())
                }
            });
            Ok(())
        })?;
        Ok(Self {
            text: s.into(),
            segments: segments.into(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// True when the pattern has no wildcard and so matches exactly one name.
    pub fn is_exact(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// Does `name` match this pattern?
    pub fn matches(&self, name: &Name) -> bool {
        // Names are validated to at most MAX_SEGMENTS segments, so a fixed array holds them all
        // and matching never allocates.
        let mut buf = [""; MAX_SEGMENTS];
        let mut len = 0;
        for segment in name.segments().take(MAX_SEGMENTS) {
            buf[len] = segment;
            len += 1;
        }
        self.matches_segments(&buf[..len])
    }

    /// Classic wildcard matching with a single backtrack point: `**` is the star, `*` the
    /// single-item wildcard. On a mismatch, the most recent `**` absorbs one more segment.
    fn matches_segments(&self, name: &[&str]) -> bool {
        let pat = &self.segments;
        let (mut p, mut n) = (0, 0);
        // (pattern index just after the last `**`, name index it has absorbed up to)
        let mut backtrack: Option<(usize, usize)> = None;
        while n < name.len() {
            match pat.get(p) {
                Some(Segment::Many) => {
                    backtrack = Some((p + 1, n));
                    p += 1;
                    continue;
                }
                Some(Segment::One) => {
                    p += 1;
                    n += 1;
                    continue;
                }
                Some(Segment::Literal(l)) if **l == *name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
            match backtrack {
                Some((after_many, absorbed)) => {
                    p = after_many;
                    n = absorbed + 1;
                    backtrack = Some((after_many, absorbed + 1));
                }
                None => return false,
            }
        }
        pat[p..].iter().all(|s| *s == Segment::Many)
    }

    /// Does this pattern match every name that `other` matches?
    ///
    /// This is the attenuation rule for capability resources: a delegation from `orders.**` to
    /// `orders.*` narrows, the reverse widens. The answer is exact for the name language (1–32
    /// segments), not a syntactic approximation: `**.*` contains `*.**`, and `**.b.*.**` contains
    /// `b.**.a` (by cases on what the `**` stands for), for instance. See [`containment`] for the
    /// method and its bound: a pair whose check would pass that bound is answered "no".
    pub fn contains(&self, other: &Pattern) -> bool {
        self.contains_within(other, &mut containment::Budget::default())
    }

    /// [`contains`](Self::contains), spending from a budget shared with other checks (see
    /// [`containment::Budget`]); once it is spent, the answer is "no".
    pub fn contains_within(&self, other: &Pattern, budget: &mut containment::Budget) -> bool {
        if self == other || self.segments.iter().all(|s| *s == Segment::Many) {
            return true;
        }
        if other.is_exact() {
            let name: Vec<&str> = other.text.split('.').collect();
            return self.matches_segments(&name);
        }
        containment::search(&self.segments, &other.segments, budget)
            == containment::Outcome::Contained
    }
}

impl From<Name> for Pattern {
    fn from(name: Name) -> Self {
        let segments = name
            .segments()
            .map(|s| Segment::Literal(s.into()))
            .collect();
        Self {
            text: name.as_str().into(),
            segments,
        }
    }
}

impl FromStr for Pattern {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({})", self.text)
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

    #[test]
    fn matches_the_contract_examples() {
        assert!(p("orders.*").matches(&n("orders.order_placed")));
        assert!(!p("orders.*").matches(&n("orders")));
        assert!(!p("orders.*").matches(&n("orders.a.b")));
        assert!(p("orders.**").matches(&n("orders")));
        assert!(p("orders.**").matches(&n("orders.a.b")));
        assert!(p("*.order_placed").matches(&n("orders.order_placed")));
        assert!(!p("*.order_placed").matches(&n("order_placed")));
        assert!(p("**").matches(&n("anything.at.all")));
        assert!(p("a.**.z").matches(&n("a.z")));
        assert!(p("a.**.z").matches(&n("a.b.c.z")));
        assert!(!p("a.**.z").matches(&n("a.b.c")));
        assert!(p("**.x.*").matches(&n("x.x.x")));
    }

    #[test]
    fn containment_narrows_never_widens() {
        assert!(p("orders.**").contains(&p("orders.*")));
        assert!(p("orders.*").contains(&p("orders.get")));
        assert!(p("orders.**").contains(&p("orders.get")));
        assert!(!p("orders.*").contains(&p("orders.**")));
        assert!(!p("orders.get").contains(&p("orders.*")));
        assert!(!p("orders.*").contains(&p("billing.get")));
        assert!(p("**").contains(&p("a.**.b")));
        // Equal languages written differently: a syntactic check gets this wrong.
        assert!(p("**.*").contains(&p("*.**")));
        assert!(p("*.**").contains(&p("**.*")));
        assert!(
            p("*.**").contains(&p("**")),
            "names have at least one segment"
        );
        assert!(!p("*.*.**").contains(&p("**")));
    }

    #[test]
    fn rejects_malformed_patterns() {
        assert!(matches!(
            Pattern::new("orders.***"),
            Err(NameError::InvalidChar { .. })
        ));
        assert!(matches!(
            Pattern::new("orders.*x"),
            Err(NameError::InvalidChar { .. })
        ));
        assert!(matches!(
            Pattern::new("orders."),
            Err(NameError::EmptySegment { .. })
        ));
        assert!(matches!(Pattern::new(""), Err(NameError::Empty { .. })));
    }

    /// A reference matcher written the obvious (exponential) way, to check the fast one.
    fn reference_match(pat: &[Segment], name: &[&str]) -> bool {
        match pat.split_first() {
            None => name.is_empty(),
            Some((Segment::Many, rest)) => {
                (0..=name.len()).any(|k| reference_match(rest, &name[k..]))
            }
            Some((Segment::One, rest)) => !name.is_empty() && reference_match(rest, &name[1..]),
            Some((Segment::Literal(l), rest)) => {
                name.first() == Some(&&**l) && reference_match(rest, &name[1..])
            }
        }
    }

    /// Every name over `{a, b, c}` with 1..=`max_len` segments. `c` never appears in the generated
    /// patterns, so it plays the part of "any other segment".
    fn all_names(max_len: usize) -> Vec<Name> {
        let mut out = Vec::new();
        let mut layer: Vec<String> = vec![String::new()];
        for _ in 0..max_len {
            let mut next = Vec::new();
            for prefix in &layer {
                for s in ["a", "b", "c"] {
                    next.push(if prefix.is_empty() {
                        s.to_owned()
                    } else {
                        format!("{prefix}.{s}")
                    });
                }
            }
            out.extend(next.iter().map(|s| n(s)));
            layer = next;
        }
        out
    }

    fn pattern_strategy(max: usize) -> impl Strategy<Value = Pattern> {
        prop::collection::vec(
            prop_oneof![Just("a"), Just("b"), Just("*"), Just("**")],
            1..=max,
        )
        .prop_map(|segs| p(&segs.join(".")))
    }

    proptest! {
        #[test]
        fn matches_agrees_with_reference(
            pat in pattern_strategy(5),
            name in prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..8),
        ) {
            let joined = n(&name.join("."));
            prop_assert_eq!(pat.matches(&joined), reference_match(pat.segments(), &name));
        }

        /// Containment agrees with brute force: `outer.contains(inner)` exactly when no name
        /// (over an alphabet with a segment neither pattern names, up to a length past both
        /// patterns) is matched by `inner` and not by `outer`.
        #[test]
        fn containment_agrees_with_brute_force(outer in pattern_strategy(4), inner in pattern_strategy(4)) {
            // Up to 8 segments: past both patterns' lengths, so a counterexample, if any, is
            // among them (checked exhaustively for every pair of such patterns when written).
            static NAMES: std::sync::OnceLock<Vec<Name>> = std::sync::OnceLock::new();
            let names = NAMES.get_or_init(|| all_names(8));
            let brute = names.iter().all(|name| !inner.matches(name) || outer.matches(name));
            prop_assert_eq!(outer.contains(&inner), brute, "{} contains {}?", outer, inner);
        }

        #[test]
        fn display_round_trips(pat in pattern_strategy(6)) {
            prop_assert_eq!(Pattern::new(&pat.to_string()), Ok(pat));
        }
    }
}
