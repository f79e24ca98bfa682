//! A realm's members, each in a numbered slot.
//!
//! A publication's targets name peers by slot, so fanning out to a peer costs an index rather
//! than hashing and comparing its peer ID (38 bytes, in a 64-byte multihash). Slots are reused
//! after a member leaves; whoever holds targets by slot removes a member's before its slot can
//! be given to another.

use std::collections::HashMap;
use std::hash::Hash;

/// A member's slot.
pub(crate) type Slot = u32;

/// Members (`M`) by slot, and slots by peer (`P`).
#[derive(Debug)]
pub(crate) struct Slots<P, M> {
    slots: Vec<Option<M>>,
    by_peer: HashMap<P, Slot>,
    free: Vec<Slot>,
}

impl<P, M> Default for Slots<P, M> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            by_peer: HashMap::new(),
            free: Vec::new(),
        }
    }
}

impl<P: Eq + Hash, M> Slots<P, M> {
    /// The member in `slot`.
    pub(crate) fn get(&self, slot: Slot) -> Option<&M> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The member in `slot`, to change.
    pub(crate) fn get_mut(&mut self, slot: Slot) -> Option<&mut M> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// `peer`'s slot and membership.
    pub(crate) fn by_peer(&self, peer: &P) -> Option<(Slot, &M)> {
        let slot = *self.by_peer.get(peer)?;
        self.get(slot).map(|member| (slot, member))
    }

    /// `peer`'s slot, if it is a member.
    pub(crate) fn slot(&self, peer: &P) -> Option<Slot> {
        self.by_peer.get(peer).copied()
    }

    /// Admits `peer` (again: a member that reconnects keeps its slot) and returns its slot.
    pub(crate) fn insert(&mut self, peer: P, member: M) -> Slot {
        let slot = match self.by_peer.get(&peer) {
            Some(slot) => *slot,
            None => {
                let slot = self.free.pop().unwrap_or_else(|| {
                    self.slots.push(None);
                    // Realms are bounded far below 2^32 members by connections.
                    Slot::try_from(self.slots.len() - 1).unwrap_or(Slot::MAX)
                });
                self.by_peer.insert(peer, slot);
                slot
            }
        };
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            *entry = Some(member);
        }
        slot
    }

    /// Removes `peer`; its slot and membership, if it was a member.
    pub(crate) fn remove(&mut self, peer: &P) -> Option<(Slot, M)> {
        let slot = self.by_peer.remove(peer)?;
        let member = self.slots.get_mut(slot as usize).and_then(Option::take);
        self.free.push(slot);
        member.map(|member| (slot, member))
    }

    /// How many members there are.
    pub(crate) fn len(&self) -> usize {
        self.by_peer.len()
    }

    /// Every member's slot.
    pub(crate) fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.by_peer.values().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_kept_on_readmission_and_reused_after_leaving() {
        let mut members: Slots<&str, u8> = Slots::default();
        let sa = members.insert("a", 1);
        let sb = members.insert("b", 2);
        assert_ne!(sa, sb);
        assert_eq!(
            members.insert("a", 3),
            sa,
            "a reconnecting member keeps its slot"
        );
        assert_eq!(members.get(sa), Some(&3));
        assert_eq!(members.remove(&"a"), Some((sa, 3)));
        assert_eq!(members.get(sa), None);
        assert_eq!(members.insert("c", 4), sa, "a freed slot is reused");
        assert_eq!(members.len(), 2);
        assert_eq!(members.by_peer(&"b"), Some((sb, &2)));
    }
}
