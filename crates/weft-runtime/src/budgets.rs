//! Each peer's budget of cold chain verifications, kept across its sessions: a peer that
//! reconnects (or opens a new connection) does not get a fresh burst. Bounded: past the cap, the
//! peer seen longest ago is forgotten (identities are free, so this bounds memory, not an attacker
//! with many keys; the node-wide limits on connections and silent sessions do that).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;

use weft_auth::VerifyBudget;

/// Peers whose budgets are remembered at most.
pub(crate) const CAPACITY: usize = 4096;

/// Budgets by peer, oldest first.
#[derive(Debug)]
pub(crate) struct Budgets<P> {
    by_peer: HashMap<P, Arc<VerifyBudget>>,
    order: VecDeque<P>,
    capacity: usize,
}

impl<P: Eq + Hash + Clone> Budgets<P> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            by_peer: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// `peer`'s budget, what is left of it if the peer was seen before.
    pub(crate) fn of(&mut self, peer: &P) -> Arc<VerifyBudget> {
        if let Some(budget) = self.by_peer.get(peer) {
            return budget.clone();
        }
        if self.by_peer.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.by_peer.remove(&oldest);
        }
        let budget = Arc::new(VerifyBudget::default());
        self.by_peer.insert(peer.clone(), budget.clone());
        self.order.push_back(peer.clone());
        budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_keeps_its_budget_across_sessions_and_the_map_stays_bounded() {
        let mut budgets = Budgets::new(2);
        let first = budgets.of(&"a");
        assert!(
            Arc::ptr_eq(&first, &budgets.of(&"a")),
            "the same budget again"
        );
        budgets.of(&"b");
        budgets.of(&"c"); // forgets a, the oldest
        assert!(!Arc::ptr_eq(&first, &budgets.of(&"a")));
        assert_eq!(budgets.by_peer.len(), 2);
    }
}
