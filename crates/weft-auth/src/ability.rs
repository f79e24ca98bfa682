//! The five weft abilities and what granted ability strings cover.

use std::fmt;

use weft_ucan::ability_covers;

/// Something a principal can be allowed to do in a realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ability {
    /// `realm/join`: take part in the realm at all (granted on `weft://<realm>`).
    Join,
    /// `msg/publish`: publish to topics.
    Publish,
    /// `msg/subscribe`: subscribe to topic patterns.
    Subscribe,
    /// `rpc/call`: call procedures.
    Call,
    /// `rpc/advertise`: provide procedures.
    Advertise,
}

impl Ability {
    /// Every ability, in a fixed order.
    pub const ALL: [Ability; 5] = [
        Ability::Join,
        Ability::Publish,
        Ability::Subscribe,
        Ability::Call,
        Ability::Advertise,
    ];

    /// The ability's UCAN name.
    pub fn as_str(self) -> &'static str {
        match self {
            Ability::Join => "realm/join",
            Ability::Publish => "msg/publish",
            Ability::Subscribe => "msg/subscribe",
            Ability::Call => "rpc/call",
            Ability::Advertise => "rpc/advertise",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Ability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The weft abilities a granted ability string covers, as a bit set, so that a check at delivery
/// time is one AND instead of string comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AbilitySet(u8);

impl AbilitySet {
    /// What `granted` (`*`, `msg/*`, `rpc/call`, …) covers. Unknown abilities cover nothing.
    pub fn covered_by(granted: &str) -> Self {
        let bits = Ability::ALL
            .iter()
            .filter(|a| ability_covers(granted, a.as_str()))
            .fold(0, |bits, a| bits | a.bit());
        Self(bits)
    }

    /// Does the set include `ability`?
    pub fn contains(self, ability: Ability) -> bool {
        self.0 & ability.bit() != 0
    }

    /// True when the set covers nothing weft knows.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_their_children() {
        let all = AbilitySet::covered_by("*");
        assert!(Ability::ALL.iter().all(|a| all.contains(*a)));
        let msg = AbilitySet::covered_by("msg/*");
        assert!(msg.contains(Ability::Publish) && msg.contains(Ability::Subscribe));
        assert!(!msg.contains(Ability::Call) && !msg.contains(Ability::Join));
        let rpc = AbilitySet::covered_by("rpc/*");
        assert!(rpc.contains(Ability::Call) && rpc.contains(Ability::Advertise));
        assert!(!rpc.contains(Ability::Publish));
        let call = AbilitySet::covered_by("rpc/call");
        assert!(call.contains(Ability::Call) && !call.contains(Ability::Advertise));
        assert!(AbilitySet::covered_by("email/send").is_empty());
        assert!(AbilitySet::covered_by("realm/*").contains(Ability::Join));
    }
}
