//! Realm names: reverse-DNS namespaces such as `io.acme`.

use std::fmt;
use std::str::FromStr;

use crate::NameError;

/// Longest realm name, in bytes.
pub const MAX_REALM_LEN: usize = 128;
/// Most dot-separated segments in a realm name.
pub const MAX_REALM_SEGMENTS: usize = 8;

/// A realm name: 1–8 segments of `[a-z0-9_-]+` joined by `.`, at most 128 bytes.
///
/// Realm names are lower case so that two spellings never name two realms. A name alone does not
/// identify a realm: its owner DID does too (see the capability layer).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RealmName(Box<str>);

impl RealmName {
    /// Parses and validates a realm name.
    pub fn new(s: &str) -> Result<Self, NameError> {
        const KIND: &str = "realm";
        if s.is_empty() {
            return Err(NameError::Empty { kind: KIND });
        }
        if s.len() > MAX_REALM_LEN {
            return Err(NameError::TooLong {
                kind: KIND,
                len: s.len(),
                max: MAX_REALM_LEN,
            });
        }
        for (index, segment) in s.split('.').enumerate() {
            if index >= MAX_REALM_SEGMENTS {
                return Err(NameError::TooManySegments {
                    kind: KIND,
                    max: MAX_REALM_SEGMENTS,
                });
            }
            if segment.is_empty() {
                return Err(NameError::EmptySegment { kind: KIND, index });
            }
            if let Some(ch) = segment
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
            {
                return Err(NameError::InvalidChar {
                    kind: KIND,
                    segment: segment.to_owned(),
                    ch,
                    allowed: "a-z 0-9 _ -",
                });
            }
        }
        Ok(Self(s.into()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RealmName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for RealmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RealmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RealmName({})", self.0)
    }
}

impl AsRef<str> for RealmName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_reverse_dns() {
        for ok in ["io", "io.acme", "io.acme.eu-west_1", "a.b.c.d.e.f.g.h", "0"] {
            assert_eq!(RealmName::new(ok).map(|r| r.to_string()), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn rejects_bad_realms_with_the_rule_broken() {
        assert_eq!(RealmName::new(""), Err(NameError::Empty { kind: "realm" }));
        assert!(matches!(
            RealmName::new("io..acme"),
            Err(NameError::EmptySegment { index: 1, .. })
        ));
        assert!(matches!(
            RealmName::new("io.acme."),
            Err(NameError::EmptySegment { index: 2, .. })
        ));
        assert!(matches!(
            RealmName::new("Io.acme"),
            Err(NameError::InvalidChar { ch: 'I', .. })
        ));
        assert!(matches!(
            RealmName::new("io/acme"),
            Err(NameError::InvalidChar { ch: '/', .. })
        ));
        assert!(matches!(
            RealmName::new("a.b.c.d.e.f.g.h.i"),
            Err(NameError::TooManySegments { .. })
        ));
        let long = "a".repeat(MAX_REALM_LEN + 1);
        assert!(matches!(
            RealmName::new(&long),
            Err(NameError::TooLong { .. })
        ));
        assert!(RealmName::new(&"a".repeat(MAX_REALM_LEN)).is_ok());
    }
}
