//! Grants that last: a peer's subscription, advertisement or membership, authorized once when it
//! began and relied on afterwards. Each lasts only as long as the chain it rests on: it is due
//! for a new check once that chain has expired (beyond the clock leeway), and every one is due
//! after a revocation. Time and the revocation epoch are arguments, so the rule is tested
//! without a clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use weft_auth::{AuthError, Authorizer, Grant};

/// How often the actors holding standing grants look for those that are due: a grant ends at
/// most this long after its chain does.
pub(crate) const SWEEP: Duration = Duration::from_secs(1);

/// Standing grants by key, each with what the holder needs to check it again.
#[derive(Debug)]
pub(crate) struct Standing<K, V> {
    grants: HashMap<K, (V, Option<u64>)>,
    /// The revocation epoch the grants were last checked at.
    epoch: u64,
}

impl<K, V> Default for Standing<K, V> {
    fn default() -> Self {
        Self {
            grants: HashMap::new(),
            epoch: 0,
        }
    }
}

impl<K: Eq + Hash + Clone, V> Standing<K, V> {
    /// Records (or renews) a grant that was just authorized.
    pub(crate) fn insert(&mut self, key: K, value: V, grant: &Grant) {
        self.grants.insert(key, (value, expiry(grant)));
    }

    /// The grant ended for another reason (withdrawn, the peer left).
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.grants.remove(key).map(|(value, _)| value)
    }

    /// Keeps only the grants `keep` accepts.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.grants.retain(|key, _| keep(key));
    }

    /// What a grant rests on.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.grants.get(key).map(|(value, _)| value)
    }

    /// The grants to check again at `now`: all of them when a token was revoked since the last
    /// call (`epoch` moved), otherwise those whose chain expired more than `leeway` seconds ago.
    pub(crate) fn due(&mut self, now: u64, leeway: u64, epoch: u64) -> Vec<K> {
        let revoked = epoch != self.epoch;
        self.epoch = epoch;
        self.grants
            .iter()
            .filter(|(_, (_, expires))| {
                revoked || expires.is_some_and(|exp| exp.saturating_add(leeway) < now)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Checks again every grant that is [`due`](Self::due): one that `check` still allows is
    /// renewed (with the expiry of what allows it now), one it refuses is removed and returned
    /// with the reason, for the holder to tell the peer and count.
    pub(crate) fn sweep(
        &mut self,
        now: u64,
        leeway: u64,
        epoch: u64,
        mut check: impl FnMut(&K, &V) -> Result<Grant, AuthError>,
    ) -> Vec<(K, V, AuthError)> {
        let mut ended = Vec::new();
        for key in self.due(now, leeway, epoch) {
            let Some((value, expires)) = self.grants.get_mut(&key) else {
                continue;
            };
            match check(&key, value) {
                Ok(grant) => *expires = expiry(&grant),
                Err(e) => {
                    if let Some((value, _)) = self.grants.remove(&key) {
                        ended.push((key, value, e));
                    }
                }
            }
        }
        ended
    }

    /// [`sweep`](Self::sweep) at `now` (Unix seconds), with `authorizer`'s leeway and
    /// revocations.
    pub(crate) fn sweep_under(
        &mut self,
        authorizer: &Authorizer,
        now: u64,
        check: impl FnMut(&K, &V) -> Result<Grant, AuthError>,
    ) -> Vec<(K, V, AuthError)> {
        let (leeway, epoch) = (authorizer.leeway(), authorizer.revocation_epoch());
        self.sweep(now, leeway, epoch, check)
    }

    /// How many grants stand.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.grants.len()
    }
}

/// When a grant stops holding by itself: the leaf's `exp`; never for the owner or an open realm.
fn expiry(grant: &Grant) -> Option<u64> {
    match grant {
        Grant::Delegated { expires_at, .. } => *expires_at,
        // Open, owner, and any kind of grant added later that rests on no chain.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiring(at: Option<u64>) -> Grant {
        // Only the expiry matters here; the rest is what any delegated grant carries.
        let resource = "weft://io.acme/orders.*".parse().unwrap();
        Grant::Delegated {
            chain: weft_ucan::Cid::compute(b"a token", weft_ucan::HashAlg::Sha2_256),
            resource: std::sync::Arc::new(resource),
            ability: "msg/subscribe".into(),
            expires_at: at,
        }
    }

    #[test]
    fn due_once_expired_beyond_the_leeway() {
        let mut standing = Standing::default();
        standing.insert("sub", (), &expiring(Some(100)));
        standing.insert("forever", (), &expiring(None));
        standing.insert("owner", (), &Grant::Owner);
        assert!(standing.due(100, 60, 0).is_empty());
        assert!(standing.due(160, 60, 0).is_empty(), "within the leeway");
        assert_eq!(standing.due(161, 60, 0), ["sub"]);
        // Renewed by a longer chain: not due any more.
        standing.insert("sub", (), &expiring(Some(1_000)));
        assert!(standing.due(161, 60, 0).is_empty());
    }

    #[test]
    fn a_revocation_makes_every_grant_due_once() {
        let mut standing = Standing::default();
        standing.insert(1, (), &expiring(None));
        standing.insert(2, (), &Grant::Owner);
        let mut due = standing.due(0, 60, 1);
        due.sort_unstable();
        assert_eq!(due, [1, 2]);
        assert!(
            standing.due(0, 60, 1).is_empty(),
            "checked at this epoch already"
        );
    }

    #[test]
    fn a_sweep_renews_what_still_holds_and_ends_the_rest() {
        let mut standing = Standing::default();
        standing.insert("renewed", 1, &expiring(Some(10)));
        standing.insert("ended", 2, &expiring(Some(10)));
        standing.insert("not due", 3, &expiring(Some(1_000)));
        let ended = standing.sweep(100, 0, 0, |key, _| match *key {
            "renewed" => Ok(expiring(Some(500))),
            _ => Err(AuthError::Unauthorized("expired".into())),
        });
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].0, ended[0].1), ("ended", 2));
        assert_eq!(standing.get(&"renewed"), Some(&1));
        assert!(standing.due(400, 0, 0).is_empty(), "renewed until 500");
        assert_eq!(standing.get(&"not due"), Some(&3));
        assert_eq!(standing.get(&"ended"), None);
    }

    #[test]
    fn removed_and_filtered_grants_are_gone() {
        let mut standing = Standing::default();
        for key in 0..4 {
            standing.insert(key, key * 10, &expiring(Some(0)));
        }
        assert_eq!(standing.remove(&0), Some(0));
        standing.retain(|key| *key != 1);
        assert_eq!(standing.get(&2), Some(&20));
        assert_eq!(standing.len(), 2);
        let mut due = standing.due(100, 0, 0);
        due.sort_unstable();
        assert_eq!(due, [2, 3]);
    }
}
