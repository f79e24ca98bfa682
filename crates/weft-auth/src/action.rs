//! One action a principal wants to take, as the router asks about it.

use weft_names::{Name, Pattern};

use crate::{Ability, Resource};

/// An action in a realm: the ability and the name (or pattern) it applies to.
///
/// Typed so that only meaningful pairs can be asked: one joins a realm, publishes to a topic,
/// subscribes to a pattern, calls or advertises a procedure.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Take part in the realm (`realm/join` on `weft://<realm>`).
    Join,
    /// Publish to a topic (`msg/publish`).
    Publish(&'a Name),
    /// Subscribe to a pattern (`msg/subscribe`); the capability's pattern must contain it.
    Subscribe(&'a Pattern),
    /// Call a procedure (`rpc/call`).
    Call(&'a Name),
    /// Advertise a procedure (`rpc/advertise`).
    Advertise(&'a Name),
}

impl Action<'_> {
    /// The ability the action needs.
    pub fn ability(&self) -> Ability {
        match self {
            Action::Join => Ability::Join,
            Action::Publish(_) => Ability::Publish,
            Action::Subscribe(_) => Ability::Subscribe,
            Action::Call(_) => Ability::Call,
            Action::Advertise(_) => Ability::Advertise,
        }
    }

    /// Is the action inside `resource`, which is known to be in the right realm?
    pub(crate) fn within(&self, resource: &Resource) -> bool {
        match (resource, self) {
            (Resource::Realm(_), _) => true,
            (Resource::Names { .. }, Action::Join) => false,
            (Resource::Names { pattern, .. }, Action::Subscribe(wanted)) => {
                pattern.contains(wanted)
            }
            (
                Resource::Names { pattern, .. },
                Action::Publish(name) | Action::Call(name) | Action::Advertise(name),
            ) => pattern.matches(name),
        }
    }

    /// A short description for errors: `msg/publish on orders.placed`.
    pub fn describe(&self) -> String {
        match self {
            Action::Join => Ability::Join.to_string(),
            Action::Publish(n) | Action::Call(n) | Action::Advertise(n) => {
                format!("{} on {n}", self.ability())
            }
            Action::Subscribe(p) => format!("{} on {p}", self.ability()),
        }
    }
}
