//! Reconnect delays: exponential growth, a ceiling, full jitter, an optional attempt limit.
//!
//! Sans-IO: the caller supplies the randomness (a number in `[0, 1)`) and does the waiting, so the
//! schedule is tested exactly.

use std::time::Duration;

/// How reconnection backs off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Ceiling for any delay.
    pub max: Duration,
    /// Growth factor per attempt (≥ 1).
    pub multiplier: f64,
    /// Fraction of each delay that is randomised, in `[0, 1]`: 0 is none, 1 is "full jitter".
    pub jitter: f64,
    /// Give up after this many attempts; `None` retries forever.
    pub max_attempts: Option<u32>,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.5,
            max_attempts: None,
        }
    }
}

/// The retry state of one connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
}

impl Backoff {
    /// A fresh schedule.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self { policy, attempt: 0 }
    }

    /// The delay before the next attempt, or `None` when attempts are exhausted. `random` is a
    /// uniform sample in `[0, 1)`: the delay is `base × (1 − jitter × random)`, where `base` grows
    /// by `multiplier` per attempt up to `max`.
    pub fn next_delay(&mut self, random: f64) -> Option<Duration> {
        if self
            .policy
            .max_attempts
            .is_some_and(|max| self.attempt >= max)
        {
            return None;
        }
        let exponent = i32::try_from(self.attempt).unwrap_or(i32::MAX);
        let base =
            self.policy.initial.as_secs_f64() * self.policy.multiplier.max(1.0).powi(exponent);
        let base = base.min(self.policy.max.as_secs_f64());
        let jitter = self.policy.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        self.attempt = self.attempt.saturating_add(1);
        Some(Duration::from_secs_f64(base * (1.0 - jitter)))
    }

    /// Attempts made since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// A connection succeeded: start over.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Option<Duration>) -> u128 {
        d.unwrap().as_millis()
    }

    #[test]
    fn grows_caps_and_resets() {
        let policy = BackoffPolicy {
            jitter: 0.0,
            max: Duration::from_millis(500),
            ..Default::default()
        };
        let mut b = Backoff::new(policy);
        let delays: Vec<u128> = (0..6).map(|_| ms(b.next_delay(0.7))).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500, 500]);
        b.reset();
        assert_eq!(ms(b.next_delay(0.0)), 100);
    }

    #[test]
    fn jitter_only_shortens() {
        let mut b = Backoff::new(BackoffPolicy {
            jitter: 1.0,
            ..Default::default()
        });
        assert_eq!(ms(b.next_delay(0.0)), 100);
        assert_eq!(ms(b.next_delay(0.5)), 100, "half of 200");
        assert_eq!(ms(b.next_delay(0.999_999)), 0);
    }

    #[test]
    fn attempts_run_out() {
        let mut b = Backoff::new(BackoffPolicy {
            max_attempts: Some(2),
            ..Default::default()
        });
        assert!(b.next_delay(0.1).is_some());
        assert!(b.next_delay(0.1).is_some());
        assert_eq!(b.next_delay(0.1), None);
        assert_eq!(b.attempts(), 2);
    }
}
