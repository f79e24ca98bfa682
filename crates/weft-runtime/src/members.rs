//! A realm's members as the router holds them: each in a numbered slot.
//!
//! A publication's targets name peers by slot, so fanning out to a peer costs an index rather
//! than hashing and comparing its peer ID (38 bytes, in a 64-byte multihash). Slots are reused
//! after a member leaves; the router removes a member's subscriptions before its slot can be
//! given to another.

use std::collections::HashMap;
use std::sync::Arc;

use weft_auth::{Chain, VerifyBudget};
use weft_identity::Did;
use weft_net::PeerId;
use weft_wire::RealmIndex;

use crate::core::handshake::PeerTags;
use crate::sender::PeerSender;

/// A member's slot.
pub(crate) type Slot = u32;

/// A peer admitted to a realm, as every actor of the realm sees it: made once, at admission, and
/// shared, so the realm, its router and its registry hold the same record. What each of them
/// keeps besides (caps, calls in flight) sits next to it in that actor's own table.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) peer: PeerId,
    /// Its DID, proven by the transport.
    pub(crate) did: Did,
    /// The chains it presented for this realm, parsed.
    pub(crate) chains: Arc<Vec<Chain>>,
    /// Its tags, once its welcome arrives.
    pub(crate) tags: PeerTags,
    pub(crate) sender: PeerSender,
    /// A client of this node: what it publishes is relayed to the realm, what the realm
    /// publishes is relayed to it, and every call it does not serve itself comes here.
    pub(crate) client: bool,
    /// The realm's index in its hello (what a `Denied` to it names).
    pub(crate) index: RealmIndex,
    /// The cold verifications its chains may cost, shared by its session's realms.
    pub(crate) budget: Arc<VerifyBudget>,
}

/// A member as the router holds it.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) record: Arc<Admitted>,
    /// Its subscriptions here, against their cap.
    pub(crate) subscription_cap: crate::core::caps::Cap,
}

impl std::ops::Deref for Member {
    type Target = Admitted;

    fn deref(&self) -> &Admitted {
        &self.record
    }
}

/// Members by slot, and slots by peer.
#[derive(Debug, Default)]
pub(crate) struct Members {
    slots: Vec<Option<Member>>,
    by_peer: HashMap<PeerId, Slot>,
    free: Vec<Slot>,
}

impl Members {
    /// The member in `slot`.
    pub(crate) fn get(&self, slot: Slot) -> Option<&Member> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The member in `slot`, to change.
    pub(crate) fn get_mut(&mut self, slot: Slot) -> Option<&mut Member> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// `peer`'s slot and membership.
    pub(crate) fn by_peer(&self, peer: &PeerId) -> Option<(Slot, &Member)> {
        let slot = *self.by_peer.get(peer)?;
        self.get(slot).map(|member| (slot, member))
    }

    /// `peer`'s slot, if it is a member.
    pub(crate) fn slot(&self, peer: &PeerId) -> Option<Slot> {
        self.by_peer.get(peer).copied()
    }

    /// Admits `peer` (again: a member that reconnects keeps its slot) and returns its slot.
    pub(crate) fn insert(&mut self, peer: PeerId, member: Member) -> Slot {
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

    /// Removes `peer`; its slot, if it was a member.
    pub(crate) fn remove(&mut self, peer: &PeerId) -> Option<Slot> {
        let slot = self.by_peer.remove(peer)?;
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            *entry = None;
        }
        self.free.push(slot);
        Some(slot)
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
    use weft_identity::Keypair;

    fn member() -> Member {
        Member {
            record: Arc::new(Admitted {
                peer: PeerId::random(),
                did: Keypair::generate().unwrap().did(),
                chains: Arc::new(Vec::new()),
                tags: PeerTags::default(),
                sender: PeerSender::detached(),
                client: false,
                index: 0,
                budget: Arc::default(),
            }),
            subscription_cap: crate::core::caps::Cap::new(8),
        }
    }

    #[test]
    fn slots_are_kept_on_readmission_and_reused_after_leaving() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut members = Members::default();
        let sa = members.insert(a, member());
        let sb = members.insert(b, member());
        assert_ne!(sa, sb);
        assert_eq!(
            members.insert(a, member()),
            sa,
            "a reconnecting member keeps its slot"
        );
        assert_eq!(members.len(), 2);
        assert_eq!(members.remove(&a), Some(sa));
        assert!(members.get(sa).is_none() && members.by_peer(&a).is_none());
        assert_eq!(members.insert(c, member()), sa, "a freed slot is reused");
        assert_eq!(members.by_peer(&c).map(|(slot, _)| slot), Some(sa));
        assert_eq!(members.remove(&a), None, "removing twice is harmless");
        let mut slots: Vec<Slot> = members.slots().collect();
        slots.sort_unstable();
        assert_eq!(slots, {
            let mut v = vec![sa, sb];
            v.sort_unstable();
            v
        });
    }
}
