//! Why a string is not a valid realm, name or pattern.

/// A string was rejected as a realm name, topic/procedure name or pattern.
///
/// Every variant says which rule was broken, so that a CLI or a remote peer gets an error that
/// points at the fix rather than a bare "invalid".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The string is empty.
    #[error("{kind} is empty")]
    Empty {
        /// What was being parsed (`realm`, `name`, `pattern`).
        kind: &'static str,
    },
    /// The string is longer than the limit for its kind.
    #[error("{kind} is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// What was being parsed.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The string has more dot-separated segments than allowed.
    #[error("{kind} has more than {max} segments")]
    TooManySegments {
        /// What was being parsed.
        kind: &'static str,
        /// The segment limit.
        max: usize,
    },
    /// A segment between dots is empty (`a..b`, `.a`, `a.`).
    #[error("{kind} has an empty segment at position {index}")]
    EmptySegment {
        /// What was being parsed.
        kind: &'static str,
        /// Zero-based position of the empty segment.
        index: usize,
    },
    /// A segment holds a character outside its alphabet.
    #[error("{kind} segment {segment:?} has invalid character {ch:?} (allowed: {allowed})")]
    InvalidChar {
        /// What was being parsed.
        kind: &'static str,
        /// The offending segment.
        segment: String,
        /// The first offending character.
        ch: char,
        /// A description of the allowed alphabet.
        allowed: &'static str,
    },
    /// A name (not a pattern) contains a wildcard.
    #[error("name {0:?} contains a wildcard; procedures and published topics use exact names")]
    Wildcard(String),
}
