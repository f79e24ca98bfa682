//! Each gateway request proves possession: its Bearer token is a fresh, short-lived invocation
//! the client signed for this request, and this gateway accepts each one once.
//!
//! The client's token to the gateway travels on with the action it authorizes (every receiving
//! node checks the chain again), so every member of the realm sees it. Were it reusable, any of
//! them could act with the client's rights through the gateway. So the token must name a nonce,
//! live at most [`MAX_LIFETIME`] seconds, and is remembered until it expires: what a member
//! captured from a frame has been used already. Time is an argument; the rules are tested without
//! a clock.
//!
//! With a journal (`HttpConfig::replay_journal`) the guard outlives a restart: each accepted
//! token is written down before its request is served, and read back at start.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use tracing::warn;
use weft::Cid;

use crate::journal::Journal;

/// The longest a request's token may live, in seconds from now.
pub const MAX_LIFETIME: u64 = 300;
/// Tokens remembered at once: a request rate this high for [`MAX_LIFETIME`] (over 300 a
/// second, sustained) is refused beyond it until some expire.
pub const CAPACITY: usize = 100_000;

/// Why a request's token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Replay {
    /// The token names no nonce.
    #[error("the Bearer token names no nonce (nnc): sign a fresh one per request")]
    NoNonce,
    /// The token lives too long, or forever.
    #[error("the Bearer token must expire within {MAX_LIFETIME} s (it is signed per request)")]
    TooLong,
    /// This token was accepted before.
    #[error("this Bearer token was used already: sign a fresh one per request")]
    Used,
    /// Too many tokens are live at once.
    #[error("too many requests at once; try again shortly")]
    Full,
}

/// The tokens accepted and not yet expired.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: HashSet<Cid>,
    /// The same tokens by expiry, to forget them when they can no longer be used anyway.
    by_expiry: BTreeMap<u64, Vec<Cid>>,
    /// Where accepted tokens are written down for the next run, if anywhere.
    journal: Option<Journal>,
}

impl ReplayGuard {
    /// A guard that remembers, in the journal at `path`, what it accepted, and starts with what
    /// the journal holds that is still live at `now`.
    pub fn with_journal(path: &Path, now: u64, leeway: u64) -> std::io::Result<Self> {
        let (journal, live) = Journal::open(path, now, leeway)?;
        let mut guard = Self::default();
        for (cid, exp) in live {
            if guard.seen.insert(cid) {
                guard.by_expiry.entry(exp).or_default().push(cid);
            }
        }
        guard.journal = Some(journal);
        Ok(guard)
    }

    /// Accepts the token `cid` (with nonce `nonce` and expiry `exp`) at `now`, once; `leeway` is
    /// the clock skew tokens are allowed.
    pub fn accept(
        &mut self,
        cid: Cid,
        nonce: Option<&str>,
        exp: Option<u64>,
        now: u64,
        leeway: u64,
    ) -> Result<(), Replay> {
        if nonce.is_none_or(str::is_empty) {
            return Err(Replay::NoNonce);
        }
        let exp = match exp {
            Some(exp) if exp <= now.saturating_add(MAX_LIFETIME + leeway) => exp,
            _ => return Err(Replay::TooLong),
        };
        self.forget_expired(now, leeway);
        if self.seen.contains(&cid) {
            return Err(Replay::Used);
        }
        if self.seen.len() >= CAPACITY {
            return Err(Replay::Full);
        }
        self.seen.insert(cid);
        self.by_expiry.entry(exp).or_default().push(cid);
        self.write_down(cid, exp);
        Ok(())
    }

    /// Journals an accepted token. A failing disk is logged, not fatal: the token is still
    /// refused again for this run, only a restart would forget it.
    fn write_down(&mut self, cid: Cid, exp: u64) {
        let Some(journal) = &mut self.journal else {
            return;
        };
        let written = if journal.wants_rewrite(self.seen.len()) {
            let live = self
                .by_expiry
                .iter()
                .flat_map(|(exp, cids)| cids.iter().map(move |cid| (*cid, *exp)))
                .collect::<Vec<_>>();
            journal.rewrite(live.into_iter())
        } else {
            journal.record(&cid, exp)
        };
        if let Err(e) = written {
            warn!(error = %e, "cannot write the replay journal: a restart would forget this token");
        }
    }

    /// Tokens that expired more than `leeway` ago cannot be used again anyway.
    fn forget_expired(&mut self, now: u64, leeway: u64) {
        let horizon = now.saturating_sub(leeway);
        let live = self.by_expiry.split_off(&horizon);
        for cid in std::mem::replace(&mut self.by_expiry, live)
            .into_values()
            .flatten()
        {
            self.seen.remove(&cid);
        }
    }

    /// Tokens remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u8) -> Cid {
        Cid::compute(&[n], weft::ucan::HashAlg::Sha2_256)
    }

    #[test]
    fn once_each_with_a_nonce_and_a_short_life() {
        let mut guard = ReplayGuard::default();
        assert_eq!(
            guard.accept(cid(1), Some("n"), Some(1_100), 1_000, 60),
            Ok(())
        );
        assert_eq!(
            guard.accept(cid(1), Some("n"), Some(1_100), 1_001, 60),
            Err(Replay::Used)
        );
        assert_eq!(
            guard.accept(cid(2), None, Some(1_100), 1_000, 60),
            Err(Replay::NoNonce)
        );
        assert_eq!(
            guard.accept(cid(2), Some("n"), None, 1_000, 60),
            Err(Replay::TooLong)
        );
        assert_eq!(
            guard.accept(cid(2), Some("n"), Some(1_000 + 361), 1_000, 60),
            Err(Replay::TooLong)
        );
        assert_eq!(
            guard.accept(cid(2), Some("n"), Some(1_360), 1_000, 60),
            Ok(())
        );
    }

    #[test]
    fn expired_tokens_are_forgotten() {
        let mut guard = ReplayGuard::default();
        guard
            .accept(cid(1), Some("n"), Some(1_100), 1_000, 0)
            .unwrap();
        guard
            .accept(cid(2), Some("n"), Some(1_300), 1_000, 0)
            .unwrap();
        assert_eq!(guard.len(), 2);
        guard
            .accept(cid(3), Some("n"), Some(1_400), 1_200, 0)
            .unwrap();
        assert_eq!(guard.len(), 2, "the first expired and was forgotten");
    }

    #[test]
    fn a_journal_remembers_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.log");
        let mut guard = ReplayGuard::with_journal(&path, 1_000, 60).unwrap();
        guard
            .accept(cid(1), Some("n"), Some(1_100), 1_000, 60)
            .unwrap();
        drop(guard);

        let mut restarted = ReplayGuard::with_journal(&path, 1_010, 60).unwrap();
        assert_eq!(
            restarted.accept(cid(1), Some("n"), Some(1_100), 1_010, 60),
            Err(Replay::Used)
        );
        assert_eq!(
            restarted.accept(cid(2), Some("n"), Some(1_100), 1_010, 60),
            Ok(())
        );
        let mut without = ReplayGuard::default();
        assert_eq!(
            without.accept(cid(1), Some("n"), Some(1_100), 1_010, 60),
            Ok(()),
            "the journal is what remembers: without it the token would pass again"
        );
    }
}
