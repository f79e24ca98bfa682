//! A realm as authorization sees it: a name and the owner who is the root of all authority in it.

use std::fmt;

use weft_identity::Did;
use weft_names::RealmName;

/// A realm: its name and its owner.
///
/// Two realms with the same name and different owners are different realms. A realm without an
/// owner is open: anyone may join and do anything. That is for development only, which is why the
/// constructor says so.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Realm {
    name: RealmName,
    owner: Option<Did>,
}

impl Realm {
    /// A realm whose authority is rooted at `owner`.
    pub fn owned(name: RealmName, owner: Did) -> Self {
        Self {
            name,
            owner: Some(owner),
        }
    }

    /// An open realm: no owner, no checks. Development only.
    pub fn open(name: RealmName) -> Self {
        Self { name, owner: None }
    }

    /// The realm's name.
    pub fn name(&self) -> &RealmName {
        &self.name
    }

    /// The owner, or `None` for an open realm.
    pub fn owner(&self) -> Option<&Did> {
        self.owner.as_ref()
    }

    /// True when the realm has no owner and so checks nothing.
    pub fn is_open(&self) -> bool {
        self.owner.is_none()
    }
}

impl fmt::Display for Realm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            Some(owner) => write!(f, "{}={owner}", self.name),
            None => write!(f, "{} (open)", self.name),
        }
    }
}
