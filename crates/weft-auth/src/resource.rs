//! `weft://` resources: a whole realm, or a pattern of names inside one.

use std::fmt;
use std::str::FromStr;

use weft_names::containment::Budget;
use weft_names::{NameError, Pattern, RealmName};

/// The URI scheme of weft resources.
pub const SCHEME: &str = "weft://";

/// A weft resource, as named in a capability.
///
/// - `weft://io.acme` is the realm itself: it is what `realm/join` is granted on, and it contains
///   every name in the realm, so the owner can delegate everything with `weft://io.acme` and `*`.
/// - `weft://io.acme/orders.*` is the names matching a pattern inside the realm.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// The whole realm.
    Realm(RealmName),
    /// The names in `realm` that `pattern` matches.
    Names {
        /// The realm.
        realm: RealmName,
        /// Which names.
        pattern: Pattern,
    },
}

/// A string is not a weft resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// Another scheme (`mailto:`, `https://`, …): not weft's, and grants nothing in weft.
    #[error("not a weft:// resource")]
    NotWeft,
    /// The realm part is invalid.
    #[error("invalid realm in resource: {0}")]
    Realm(NameError),
    /// The pattern part is invalid.
    #[error("invalid pattern in resource: {0}")]
    Pattern(NameError),
}

impl Resource {
    /// Parses `weft://<realm>` or `weft://<realm>/<pattern>`.
    pub fn parse(s: &str) -> Result<Self, ResourceError> {
        let rest = s.strip_prefix(SCHEME).ok_or(ResourceError::NotWeft)?;
        match rest.split_once('/') {
            None => Ok(Resource::Realm(
                RealmName::new(rest).map_err(ResourceError::Realm)?,
            )),
            Some((realm, pattern)) => Ok(Resource::Names {
                realm: RealmName::new(realm).map_err(ResourceError::Realm)?,
                pattern: Pattern::new(pattern).map_err(ResourceError::Pattern)?,
            }),
        }
    }

    /// The realm this resource is in.
    pub fn realm(&self) -> &RealmName {
        match self {
            Resource::Realm(realm) | Resource::Names { realm, .. } => realm,
        }
    }

    /// Does this resource include everything `other` names? A realm contains itself and every
    /// pattern in it; a pattern contains the patterns it is wider than, in the same realm.
    pub fn contains(&self, other: &Resource) -> bool {
        self.contains_within(other, &mut Budget::default())
    }

    /// [`contains`](Self::contains), spending pattern work from a budget shared with other checks.
    pub fn contains_within(&self, other: &Resource, budget: &mut Budget) -> bool {
        match (self, other) {
            (Resource::Realm(a), other) => a == other.realm(),
            (Resource::Names { .. }, Resource::Realm(_)) => false,
            (
                Resource::Names {
                    realm: a,
                    pattern: p,
                },
                Resource::Names {
                    realm: b,
                    pattern: q,
                },
            ) => a == b && p.contains_within(q, budget),
        }
    }
}

impl FromStr for Resource {
    type Err = ResourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Realm(realm) => write!(f, "{SCHEME}{realm}"),
            Resource::Names { realm, pattern } => write!(f, "{SCHEME}{realm}/{pattern}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Resource {
        Resource::parse(s).unwrap()
    }

    #[test]
    fn parses_and_displays() {
        for s in [
            "weft://io.acme",
            "weft://io.acme/orders.*",
            "weft://io.acme/**",
        ] {
            assert_eq!(r(s).to_string(), s);
        }
        assert_eq!(Resource::parse("mailto:a@b.c"), Err(ResourceError::NotWeft));
        assert!(matches!(
            Resource::parse("weft://IO.acme"),
            Err(ResourceError::Realm(_))
        ));
        assert!(matches!(
            Resource::parse("weft://io.acme/"),
            Err(ResourceError::Pattern(_))
        ));
        assert!(matches!(
            Resource::parse("weft://io.acme/a/b"),
            Err(ResourceError::Pattern(_))
        ));
    }

    #[test]
    fn containment() {
        assert!(r("weft://io.acme").contains(&r("weft://io.acme")));
        assert!(r("weft://io.acme").contains(&r("weft://io.acme/orders.*")));
        assert!(!r("weft://io.acme").contains(&r("weft://io.other/orders.*")));
        assert!(!r("weft://io.acme/**").contains(&r("weft://io.acme")));
        assert!(r("weft://io.acme/orders.**").contains(&r("weft://io.acme/orders.get")));
        assert!(!r("weft://io.acme/orders.*").contains(&r("weft://io.acme/orders.**")));
        assert!(!r("weft://io.acme/**").contains(&r("weft://io.acmex/a")));
    }
}
