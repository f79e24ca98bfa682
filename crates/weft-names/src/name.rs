//! Realm-relative topic and procedure names such as `orders.order_placed`.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use crate::NameError;

/// Longest topic or procedure name (and pattern), in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Most dot-separated segments in a name or pattern.
pub const MAX_SEGMENTS: usize = 32;

/// A topic or procedure name: 1–32 segments of `[A-Za-z0-9_-]+` joined by `.`, at most 256 bytes.
///
/// Names are exact: publications and procedure advertisements carry a `Name`, subscriptions and
/// capabilities carry a [`Pattern`](crate::Pattern) that may match many names.
///
/// Cloning is a reference count: a topic is cloned into every event and frame it travels in.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(std::sync::Arc<str>);

thread_local! {
    /// The last name [`Name::new_cached`] made on this thread.
    static LAST_NAME: RefCell<Option<Name>> = const { RefCell::new(None) };
}

impl Name {
    /// Parses and validates a name; wildcards are refused with [`NameError::Wildcard`].
    pub fn new(s: &str) -> Result<Self, NameError> {
        // Every publication's topic is parsed (by the publisher's API and by each receiver's
        // decoder): one pass over the bytes settles the common case; the detailed walk below
        // runs only to say what is wrong.
        if is_plain_name(s.as_bytes()) {
            return Ok(Self(s.into()));
        }
        validate(s, "name", |index, segment| {
            if segment == "*" || segment == "**" {
                return Err(NameError::Wildcard(s.to_owned()));
            }
            literal_segment("name", index, segment)
        })?;
        Ok(Self(s.into()))
    }

    /// [`Name::new`] for hot paths that see the same name over and over (publishing to a topic,
    /// decoding a stream of publications): a string equal to the last name this thread made
    /// here costs one comparison and a reference count, instead of validating and allocating
    /// again. Anything else is parsed as by `new` and becomes the thread's last name.
    pub fn new_cached(s: &str) -> Result<Self, NameError> {
        LAST_NAME
            .try_with(|last| {
                if let Some(name) = last.borrow().as_ref()
                    && name.as_str() == s
                {
                    return Ok(name.clone());
                }
                let name = Name::new(s)?;
                *last.borrow_mut() = Some(name.clone());
                Ok(name)
            })
            // The thread is being torn down and its cache is gone: parse without it.
            .unwrap_or_else(|_| Name::new(s))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The dot-separated segments, in order.
    pub fn segments(&self) -> std::str::Split<'_, char> {
        self.0.split('.')
    }
}

/// A valid name, decided in one pass: 1 to [`MAX_NAME_LEN`] bytes of `[A-Za-z0-9_-]` segments
/// joined by single dots, at most [`MAX_SEGMENTS`] of them. `false` only means "not certainly
/// valid": the full validation then decides and explains.
fn is_plain_name(bytes: &[u8]) -> bool {
    if bytes.is_empty() || bytes.len() > MAX_NAME_LEN {
        return false;
    }
    let mut segments = 1;
    let mut segment_len = 0;
    for &b in bytes {
        if b == b'.' {
            if segment_len == 0 {
                return false;
            }
            segments += 1;
            segment_len = 0;
        } else if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            segment_len += 1;
        } else {
            return false;
        }
    }
    segment_len > 0 && segments <= MAX_SEGMENTS
}

/// Checks length and segment count, then hands each segment to `check`.
pub(crate) fn validate(
    s: &str,
    kind: &'static str,
    mut check: impl FnMut(usize, &str) -> Result<(), NameError>,
) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if s.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            kind,
            len: s.len(),
            max: MAX_NAME_LEN,
        });
    }
    for (index, segment) in s.split('.').enumerate() {
        if index >= MAX_SEGMENTS {
            return Err(NameError::TooManySegments {
                kind,
                max: MAX_SEGMENTS,
            });
        }
        check(index, segment)?;
    }
    Ok(())
}

/// Validates one literal segment: `[A-Za-z0-9_-]+`.
pub(crate) fn literal_segment(
    kind: &'static str,
    index: usize,
    segment: &str,
) -> Result<(), NameError> {
    if segment.is_empty() {
        return Err(NameError::EmptySegment { kind, index });
    }
    match segment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        None => Ok(()),
        Some(ch) => Err(NameError::InvalidChar {
            kind,
            segment: segment.to_owned(),
            ch,
            allowed: "A-Z a-z 0-9 _ -",
        }),
    }
}

impl FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({})", self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The one-pass check never accepts what the full validation refuses, and accepts every
        /// name without wildcards that it allows.
        #[test]
        fn the_fast_check_agrees_with_the_full_one(s in "[a-c_.*-]{0,12}|[a-z.]{250,260}|(a\\.){30,34}a") {
            let full = validate(&s, "name", |index, segment| {
                if segment == "*" || segment == "**" {
                    return Err(NameError::Wildcard(s.clone()));
                }
                literal_segment("name", index, segment)
            })
            .is_ok();
            prop_assert_eq!(is_plain_name(s.as_bytes()), full, "{:?}", s);
        }
    }

    #[test]
    fn new_cached_agrees_with_new_and_reuses_the_last_name() {
        let first = Name::new_cached("orders.placed").unwrap();
        let again = Name::new_cached("orders.placed").unwrap();
        assert_eq!(first, Name::new("orders.placed").unwrap());
        assert!(
            std::sync::Arc::ptr_eq(&first.0, &again.0),
            "a repeat shares the name"
        );
        // Errors are the same as `new`'s and leave the cached name alone.
        assert_eq!(Name::new_cached("orders.*"), Name::new("orders.*"));
        assert_eq!(Name::new_cached(""), Name::new(""));
        let after = Name::new_cached("orders.placed").unwrap();
        assert!(std::sync::Arc::ptr_eq(&first.0, &after.0));
        // A different name replaces it.
        let other = Name::new_cached("orders.shipped").unwrap();
        assert_eq!(other.as_str(), "orders.shipped");
        assert!(!std::sync::Arc::ptr_eq(
            &first.0,
            &Name::new_cached("orders.placed").unwrap().0
        ));
    }

    #[test]
    fn accepts_names_from_the_contract() {
        for ok in [
            "orders.order_placed",
            "io.acme.orders.get_order",
            "A-b_9",
            "x",
        ] {
            assert_eq!(Name::new(ok).map(|n| n.to_string()), Ok(ok.to_owned()));
        }
        let n = Name::new("a.b.c").unwrap();
        assert_eq!(n.segments().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn rejects_wildcards_and_malformed_names() {
        assert!(matches!(Name::new("orders.*"), Err(NameError::Wildcard(_))));
        assert!(matches!(Name::new("**"), Err(NameError::Wildcard(_))));
        assert!(matches!(
            Name::new("a..b"),
            Err(NameError::EmptySegment { index: 1, .. })
        ));
        assert!(matches!(
            Name::new("a b"),
            Err(NameError::InvalidChar { ch: ' ', .. })
        ));
        assert!(matches!(
            Name::new("a.é"),
            Err(NameError::InvalidChar { ch: 'é', .. })
        ));
        assert!(matches!(Name::new(""), Err(NameError::Empty { .. })));
        let many = vec!["a"; MAX_SEGMENTS + 1].join(".");
        assert!(matches!(
            Name::new(&many),
            Err(NameError::TooManySegments { .. })
        ));
        assert!(Name::new(&vec!["a"; MAX_SEGMENTS].join(".")).is_ok());
        assert!(matches!(
            Name::new(&"a".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::TooLong { .. })
        ));
    }
}
