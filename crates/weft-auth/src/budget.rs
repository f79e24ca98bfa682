//! How many chains one source (a peer) may have verified cold: a token bucket.
//!
//! A chain not yet in the authorizer's cache costs an Ed25519 verification per token. A peer that
//! sends endless distinct chains (forged tokens pass the free checks by naming the owner as
//! issuer) would otherwise make the node verify without end. Each source gets a bucket; a cold
//! verification takes a token; tokens come back at a steady rate. A chain found in the cache costs
//! nothing. Time is an argument (seconds, as every authorization takes it).

use std::sync::PoisonError;
use std::sync::{Arc, Mutex};

/// Cold verifications a source may start at once.
pub const VERIFY_BURST: u32 = 256;
/// Cold verifications a source regains per second.
pub const VERIFY_PER_SECOND: u32 = 64;

/// One source's allowance of cold verifications. Shared (`&self`) by every actor that authorizes
/// for that source.
#[derive(Debug)]
pub struct VerifyBudget {
    bucket: Mutex<Bucket>,
    burst: u32,
    per_second: u32,
    /// A budget shared with other sources, which every verification also draws on.
    parent: Option<Arc<VerifyBudget>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: u32,
    /// The second the bucket was last refilled.
    at: u64,
}

impl VerifyBudget {
    /// A full bucket of `burst`, refilled at `per_second`.
    pub fn new(burst: u32, per_second: u32) -> Self {
        Self {
            bucket: Mutex::new(Bucket {
                tokens: burst,
                at: 0,
            }),
            burst,
            per_second,
            parent: None,
        }
    }

    /// A source's own bucket within `parent`, shared with other sources: a verification needs a
    /// token from both, so one source cannot spend the others' share.
    pub fn within(parent: Arc<VerifyBudget>, burst: u32, per_second: u32) -> Self {
        Self {
            parent: Some(parent),
            ..Self::new(burst, per_second)
        }
    }

    /// Takes one cold verification at `now` (Unix seconds); `false` when none is left, here or
    /// in the budget this one is within.
    pub fn take(&self, now: u64) -> bool {
        if !self.take_own(now) {
            return false;
        }
        match &self.parent {
            Some(parent) if !parent.take(now) => {
                // Refused above: the token taken here goes back.
                let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
                bucket.tokens = (bucket.tokens + 1).min(self.burst);
                false
            }
            _ => true,
        }
    }

    fn take_own(&self, now: u64) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        if now > bucket.at {
            let elapsed = u32::try_from(now - bucket.at).unwrap_or(u32::MAX);
            let refill = elapsed.saturating_mul(self.per_second);
            bucket.tokens = bucket.tokens.saturating_add(refill).min(self.burst);
            bucket.at = now;
        }
        if bucket.tokens == 0 {
            return false;
        }
        bucket.tokens -= 1;
        true
    }
}

impl Default for VerifyBudget {
    fn default() -> Self {
        Self::new(VERIFY_BURST, VERIFY_PER_SECOND)
    }
}

/// Budgets by source, kept across a source's sessions or requests, so that coming back does not
/// buy a fresh burst. Bounded: past `capacity`, the source seen longest ago is forgotten.
/// Identities are free and addresses are not, so this bounds memory; the limits on connections
/// (or a shared parent budget) bound an attacker with many sources.
pub struct Budgets<K> {
    by_source: std::collections::HashMap<K, Arc<VerifyBudget>>,
    order: std::collections::VecDeque<K>,
    capacity: usize,
    make: Box<dyn Fn() -> VerifyBudget + Send + Sync>,
}

impl<K> std::fmt::Debug for Budgets<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets")
            .field("sources", &self.by_source.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<K: Eq + std::hash::Hash + Clone> Budgets<K> {
    /// At most `capacity` sources, each given `make()` when first seen.
    pub fn new(capacity: usize, make: impl Fn() -> VerifyBudget + Send + Sync + 'static) -> Self {
        Self {
            by_source: std::collections::HashMap::new(),
            order: std::collections::VecDeque::new(),
            capacity: capacity.max(1),
            make: Box::new(make),
        }
    }

    /// `source`'s budget: what is left of it if it was seen before.
    pub fn of(&mut self, source: &K) -> Arc<VerifyBudget> {
        if let Some(budget) = self.by_source.get(source) {
            return budget.clone();
        }
        if self.by_source.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.by_source.remove(&oldest);
        }
        let budget = Arc::new((self.make)());
        self.by_source.insert(source.clone(), budget.clone());
        self.order.push_back(source.clone());
        budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_a_steady_rate() {
        let budget = VerifyBudget::new(3, 2);
        assert!((0..3).all(|_| budget.take(100)));
        assert!(!budget.take(100), "the burst is spent");
        assert!(budget.take(101) && budget.take(101));
        assert!(!budget.take(101), "two a second");
        assert!(
            (0..3).all(|_| budget.take(1_000)),
            "refilled up to the burst"
        );
        assert!(!budget.take(1_000));
    }

    #[test]
    fn a_source_within_a_shared_budget_spends_neither_past_its_own() {
        let shared = Arc::new(VerifyBudget::new(5, 0));
        let greedy = VerifyBudget::within(shared.clone(), 2, 0);
        let modest = VerifyBudget::within(shared.clone(), 2, 0);
        assert!(greedy.take(1) && greedy.take(1));
        assert!(!greedy.take(1), "its own bucket is spent");
        assert!(modest.take(1) && modest.take(1), "the shared one is not");
        let third = VerifyBudget::within(shared.clone(), 9, 0);
        assert!(third.take(1));
        assert!(!third.take(1), "the shared bucket is spent");
        assert!(third.take_own(1), "and what the refusal took is given back");
    }

    #[test]
    fn a_source_keeps_its_budget_and_the_map_stays_bounded() {
        let mut budgets = Budgets::new(2, VerifyBudget::default);
        let first = budgets.of(&"a");
        assert!(
            Arc::ptr_eq(&first, &budgets.of(&"a")),
            "the same budget again"
        );
        budgets.of(&"b");
        budgets.of(&"c"); // forgets a, the oldest
        assert!(!Arc::ptr_eq(&first, &budgets.of(&"a")));
        assert_eq!(budgets.by_source.len(), 2);
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let budget = VerifyBudget::new(1, 10);
        assert!(budget.take(50));
        assert!(!budget.take(40));
    }
}
