//! When to refresh the routing table, and which buckets: a walk towards this node's own key,
//! and one into each farther bucket that no walk of this node went into lately, so that the
//! table keeps live peers at every distance without walking where lookups and records already
//! did.
//!
//! libp2p-kad would refresh on one timer per node, walking into every bucket each time, and
//! nodes started together (a cluster, a benchmark) would refresh together for as long as they
//! run: at a small connection budget nearly every peer a walk asks is a new connection. Here
//! each refresh is due at a time drawn around [`EVERY`] after the last, the first over a whole
//! period (`spread`), so nodes started together drift apart at once, and a bucket is walked
//! into only when no lookup or record placement of this node went there within [`EVERY`], as
//! go-libp2p-kad-dht refreshes only the buckets it has not queried lately. The first refresh is made when the first
//! connection is up (the routing table is empty before).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libp2p::kad::KBucketKey;

use crate::spread::{drawn, phased};

/// How long after a refresh the next is due, on average, and how long a walk into a bucket
/// keeps it fresh (go-libp2p-kad-dht's refresh period).
pub(crate) const EVERY: Duration = Duration::from_secs(10 * 60);

/// Random keys tried in search of one that falls into a bucket. Bucket `i` holds a random key
/// with odds 2^(i−256): every farther bucket a table of 1,000 peers fills (down to about 246)
/// is found within this many tries with odds of at least 98 %, at well under a millisecond.
const KEY_TRIES: usize = 4096;

/// When the routing table is next refreshed, and when walks last went into each bucket.
#[derive(Debug, Default)]
pub(crate) struct Refresh {
    /// `None` until the first refresh.
    next: Option<Instant>,
    /// When a walk of this node last went towards a key of each bucket (by index, 255 the
    /// farthest).
    walked: BTreeMap<u32, Instant>,
}

impl Refresh {
    /// A connection came up at `now`: whether to refresh now, as the first one does. `draw`, in
    /// `[0, 1]`, picks when the next falls, anywhere within one [`EVERY`] (see `spread`).
    pub(crate) fn connected(&mut self, now: Instant, draw: f64) -> bool {
        if self.next.is_some() {
            return false;
        }
        self.next = Some(now + phased(EVERY, draw));
        true
    }

    /// Whether a refresh is due at `now`; if so, the next is scheduled from `now`.
    pub(crate) fn due(&mut self, now: Instant, draw: f64) -> bool {
        if self.next.is_none_or(|next| now < next) {
            return false;
        }
        self.next = Some(now + drawn(EVERY, draw));
        true
    }

    /// A walk towards a key of `bucket` began at `now` (a lookup, a record placed, a refresh):
    /// the bucket needs no refresh walk of its own for [`EVERY`]. `None` is this node's own key.
    pub(crate) fn walked_into(&mut self, bucket: Option<u32>, now: Instant) {
        if let Some(bucket) = bucket {
            self.walked.insert(bucket, now);
        }
    }

    /// The buckets a refresh at `now` walks into besides this node's own key: of the `filled`
    /// ones (holding peers), every one farther than the nearest (which the walk to its own key
    /// reaches) that no walk went into within [`EVERY`].
    pub(crate) fn stale(&self, filled: impl IntoIterator<Item = u32>, now: Instant) -> Vec<u32> {
        let mut filled: Vec<u32> = filled.into_iter().collect();
        filled.sort_unstable();
        filled.dedup();
        filled
            .into_iter()
            .skip(1)
            .filter(|bucket| {
                self.walked
                    .get(bucket)
                    .is_none_or(|at| now.saturating_duration_since(*at) >= EVERY)
            })
            .collect()
    }
}

/// The bucket of `local`'s table a key `key` falls into (255 the farthest); `None` for `local`'s
/// own key.
pub(crate) fn bucket_of<T>(local: &KBucketKey<T>, key: Vec<u8>) -> Option<u32> {
    local.distance(&KBucketKey::new(key)).ilog2()
}

/// A key that falls into `bucket` of `local`'s table, from at most [`KEY_TRIES`] candidates
/// `draw` makes, or `None` if none of them does.
pub(crate) fn key_in<T>(
    local: &KBucketKey<T>,
    bucket: u32,
    mut draw: impl FnMut() -> [u8; 32],
) -> Option<Vec<u8>> {
    (0..KEY_TRIES)
        .map(|_| draw().to_vec())
        .find(|key| bucket_of(local, key.clone()) == Some(bucket))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spread::SPREAD;

    #[test]
    fn the_first_connection_refreshes_and_the_next_falls_within_the_spread() {
        let t = Instant::now();
        let mut refresh = Refresh::default();
        assert!(
            !refresh.due(t + 10 * EVERY, 0.5),
            "nothing before a connection"
        );
        assert!(refresh.connected(t, 0.0));
        assert!(
            !refresh.connected(t, 0.0),
            "only the first connection refreshes"
        );
        let earliest = EVERY.mul_f64(SPREAD);
        assert!(!refresh.due(t + earliest - Duration::from_millis(1), 1.0));
        assert!(
            refresh.due(t + earliest, 1.0),
            "the first drawn over a whole period"
        );
        let t = t + earliest;
        let latest = EVERY.mul_f64(1.0 + SPREAD);
        assert!(!refresh.due(t + latest - Duration::from_millis(1), 0.5));
        assert!(refresh.due(t + latest, 0.5), "drawn late this time");
    }

    #[test]
    fn a_late_tick_schedules_from_when_it_came() {
        let t = Instant::now();
        let mut refresh = Refresh::default();
        refresh.connected(t, 0.5);
        let late = t + 3 * EVERY;
        assert!(refresh.due(late, 0.5));
        assert!(
            !refresh.due(late + EVERY / 2, 0.5),
            "one refresh for the missed ones"
        );
        assert!(refresh.due(late + EVERY, 0.5));
    }

    #[test]
    fn only_buckets_no_walk_went_into_lately_are_refreshed() {
        let t = Instant::now();
        let mut refresh = Refresh::default();
        let filled = [250, 255, 252, 253, 254];
        assert_eq!(
            refresh.stale(filled, t),
            vec![252, 253, 254, 255],
            "all but the nearest, which the walk to the node's own key reaches"
        );
        refresh.walked_into(Some(255), t);
        refresh.walked_into(Some(253), t + EVERY / 2);
        refresh.walked_into(None, t);
        let later = t + EVERY;
        assert_eq!(refresh.stale(filled, later), vec![252, 254, 255]);
        assert_eq!(
            refresh.stale(filled, later - Duration::from_millis(1)),
            vec![252, 254]
        );
        assert!(refresh.stale([], later).is_empty());
        assert!(refresh.stale([200], later).is_empty());
    }

    #[test]
    fn a_key_found_for_a_bucket_falls_into_it() {
        let local = KBucketKey::new(vec![7u8; 32]);
        let mut seed = 0u64;
        let mut draw = || {
            seed = seed.wrapping_add(1);
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&seed.to_le_bytes());
            key
        };
        for bucket in [255, 250, 246] {
            let key = key_in(&local, bucket, &mut draw).expect("found within the tries");
            assert_eq!(bucket_of(&local, key), Some(bucket));
        }
        assert_eq!(
            key_in(&local, 10, &mut draw),
            None,
            "odds of 2^-246 are given up"
        );
        assert_eq!(bucket_of(&local, vec![7u8; 32]), None, "its own key");
    }
}
