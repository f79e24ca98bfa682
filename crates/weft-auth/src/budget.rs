//! How many chains one source (a peer) may have verified cold: a token bucket.
//!
//! A chain not yet in the authorizer's cache costs an Ed25519 verification per token. A peer that
//! sends endless distinct chains (forged tokens pass the free checks by naming the owner as
//! issuer) would otherwise make the node verify without end. Each source gets a bucket; a cold
//! verification takes a token; tokens come back at a steady rate. A chain found in the cache costs
//! nothing. Time is an argument (seconds, as every authorization takes it).

use std::sync::Mutex;
use std::sync::PoisonError;

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
        }
    }

    /// Takes one cold verification at `now` (Unix seconds); `false` when none is left.
    pub fn take(&self, now: u64) -> bool {
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
    fn a_clock_going_back_refills_nothing() {
        let budget = VerifyBudget::new(1, 10);
        assert!(budget.take(50));
        assert!(!budget.take(40));
    }
}
