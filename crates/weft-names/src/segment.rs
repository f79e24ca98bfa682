//! One segment of a pattern: what matching and containment both walk.

use std::fmt;

/// One segment of a pattern.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// Matches exactly this segment.
    Literal(Box<str>),
    /// `*`: matches exactly one segment, whatever it is.
    One,
    /// `**`: matches zero or more segments.
    Many,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Literal(l) => f.write_str(l),
            Segment::One => f.write_str("*"),
            Segment::Many => f.write_str("**"),
        }
    }
}
