//! Publications whose sending to peers waits for their buckets' first lookups. Past the mesh
//! size, a node learns of a bucket's subscribers only through the lookup its first publication
//! there starts (`core::resolve`): sent at once, that publication (a one-shot `weft pub`'s only
//! one) would reach nobody. So its fan-out to peers waits, in order behind anything already
//! waiting, until the lookup found no one, or the peers it found are members and one of them
//! subscribes to the topic, or [`SETTLE`] after the lookup, or [`MAX_HOLD`] in all. Local
//! subscribers get it at once.
//!
//! The router drives it: [`Parked::hold`] for each publication while anything waits or its
//! topic starts a lookup, [`Parked::looked_up`] when a lookup ends, and [`Parked::next`] after
//! anything that may let the first one go (a lookup's end, a member or a subscription arriving,
//! the timer set for [`Parked::deadline`]).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use weft_names::Name;

/// How long publications wait, after a lookup found peers, for them to connect and subscribe.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);
/// How long a publication waits at most, whatever its lookups do.
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(5);
/// Publications waiting at most; past it (or [`MAX_HELD_BYTES`]) one is sent at once.
pub(crate) const MAX_HELD: usize = 1024;
/// Payload bytes waiting at most.
pub(crate) const MAX_HELD_BYTES: usize = 8 * 1024 * 1024;

/// Where a bucket's first lookup stands.
#[derive(Debug)]
enum Lookup<P> {
    Running,
    /// It found these peers, which have until then to connect and subscribe.
    Found {
        peers: Vec<P>,
        until: Instant,
    },
    /// It found no one (or what it found is in): nothing to wait for.
    Done,
}

#[derive(Debug)]
struct Held<T> {
    item: T,
    bytes: usize,
    topic: Name,
    /// The buckets whose first lookup it waits for.
    buckets: Vec<String>,
    /// It goes then, whatever its lookups do.
    until: Instant,
}

/// The waiting publications, in order, and the lookups they wait for.
#[derive(Debug)]
pub(crate) struct Parked<T, P> {
    queue: VecDeque<Held<T>>,
    lookups: HashMap<String, Lookup<P>>,
    bytes: usize,
}

impl<T, P> Default for Parked<T, P> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            lookups: HashMap::new(),
            bytes: 0,
        }
    }
}

impl<T, P> Parked<T, P> {
    /// Whether publications are waiting: then every new one waits behind them.
    pub(crate) fn holding(&self) -> bool {
        !self.queue.is_empty()
    }

    /// A publication to `topic` of `bytes` is to be sent to peers at `now`, behind those
    /// waiting; `fresh` are the buckets whose first lookup it starts. Call it only while
    /// publications wait or `fresh` is not empty. Past [`MAX_HELD`] or [`MAX_HELD_BYTES`], the
    /// first waiting ones are returned, to be sent at once, so that order holds.
    pub(crate) fn hold(
        &mut self,
        topic: &Name,
        item: T,
        bytes: usize,
        fresh: Vec<String>,
        now: Instant,
    ) -> Vec<T> {
        let mut overflow = Vec::new();
        while !self.queue.is_empty()
            && (self.queue.len() >= MAX_HELD || self.bytes + bytes > MAX_HELD_BYTES)
        {
            if let Some(held) = self.queue.pop_front() {
                self.bytes -= held.bytes;
                overflow.push(held.item);
            }
        }
        for bucket in &fresh {
            self.lookups
                .entry(bucket.clone())
                .or_insert(Lookup::Running);
        }
        self.bytes += bytes;
        self.queue.push_back(Held {
            item,
            bytes,
            topic: topic.clone(),
            buckets: fresh,
            until: now + MAX_HOLD,
        });
        overflow
    }

    /// `bucket`'s first lookup ended at `now`, finding `found`.
    pub(crate) fn looked_up(&mut self, bucket: &str, found: Vec<P>, now: Instant) {
        if let Some(lookup) = self.lookups.get_mut(bucket) {
            *lookup = if found.is_empty() {
                Lookup::Done
            } else {
                Lookup::Found {
                    peers: found,
                    until: now + SETTLE,
                }
            };
        }
    }

    /// The first waiting publication, if it may go at `now`. `ready(found, topic)` says whether
    /// the peers a lookup found are all in and one of them subscribes to `topic`.
    pub(crate) fn next(&mut self, now: Instant, ready: impl Fn(&[P], &Name) -> bool) -> Option<T> {
        let head = self.queue.front()?;
        let go = now >= head.until
            || head
                .buckets
                .iter()
                .all(|bucket| match self.lookups.get(bucket) {
                    None | Some(Lookup::Done) => true,
                    Some(Lookup::Running) => false,
                    Some(Lookup::Found { peers, until }) => {
                        now >= *until || ready(peers, &head.topic)
                    }
                });
        if !go {
            return None;
        }
        let held = self.queue.pop_front()?;
        self.bytes -= held.bytes;
        if self.queue.is_empty() {
            // Nothing waits for the lookups still known: a late answer is ignored.
            self.lookups.clear();
        }
        Some(held.item)
    }

    /// When the first waiting publication goes at the latest, if any waits: once its found
    /// peers' time is up, unless a lookup of its still runs (which wakes the caller when it
    /// ends), and at [`MAX_HOLD`] whatever happens.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let head = self.queue.front()?;
        let mut settled = None;
        for bucket in &head.buckets {
            match self.lookups.get(bucket) {
                Some(Lookup::Running) => return Some(head.until),
                Some(Lookup::Found { until, .. }) => {
                    settled = Some(settled.map_or(*until, |s: Instant| s.max(*until)));
                }
                None | Some(Lookup::Done) => {}
            }
        }
        Some(settled.map_or(head.until, |s| s.min(head.until)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn never(_: &[u32], _: &Name) -> bool {
        false
    }

    #[test]
    fn it_waits_for_its_lookup_and_those_behind_it_wait_in_order() {
        let mut parked: Parked<u32, u32> = Parked::default();
        let t0 = Instant::now();
        assert!(
            parked
                .hold(&topic("a.b"), 1, 10, vec!["a".into()], t0)
                .is_empty()
        );
        // Known bucket, but something waits: behind it.
        assert!(parked.hold(&topic("c"), 2, 10, vec![], t0).is_empty());
        assert_eq!(parked.next(t0, never), None, "the lookup runs");
        parked.looked_up("a", vec![], t0);
        assert_eq!(parked.next(t0, never), Some(1), "it found no one");
        assert_eq!(parked.next(t0, never), Some(2));
        assert!(!parked.holding());
    }

    #[test]
    fn found_peers_have_until_settle_to_connect_and_subscribe() {
        let mut parked: Parked<u32, u32> = Parked::default();
        let t0 = Instant::now();
        parked.hold(&topic("a.b"), 1, 10, vec!["a".into()], t0);
        parked.looked_up("a", vec![7], t0);
        assert_eq!(parked.deadline(), Some(t0 + SETTLE));
        assert_eq!(parked.next(t0, never), None);
        let subscribed = |peers: &[u32], t: &Name| peers == [7] && t.as_str() == "a.b";
        assert_eq!(parked.next(t0, subscribed), Some(1), "found and subscribed");

        parked.hold(&topic("x"), 2, 10, vec!["x".into()], t0);
        parked.looked_up("x", vec![8], t0);
        assert_eq!(parked.next(t0 + SETTLE, never), Some(2), "settled anyway");
    }

    #[test]
    fn while_a_lookup_runs_the_deadline_is_the_last_resort() {
        let mut parked: Parked<u32, u32> = Parked::default();
        let t0 = Instant::now();
        parked.hold(&topic("a.b"), 1, 10, vec!["a".into(), "a.b".into()], t0);
        parked.looked_up("a", vec![7], t0);
        // "a.b" still runs: its end wakes the router, so no timer before MAX_HOLD (one at
        // SETTLE would fire, find nothing to do, and be set again at once).
        assert_eq!(parked.deadline(), Some(t0 + MAX_HOLD));
        assert_eq!(parked.next(t0 + SETTLE, never), None);
        parked.looked_up("a.b", vec![], t0 + SETTLE);
        assert_eq!(parked.next(t0 + SETTLE, never), Some(1));
    }

    #[test]
    fn nothing_waits_longer_than_max_hold() {
        let mut parked: Parked<u32, u32> = Parked::default();
        let t0 = Instant::now();
        parked.hold(&topic("a"), 1, 10, vec!["a".into()], t0);
        assert_eq!(parked.deadline(), Some(t0 + MAX_HOLD));
        assert_eq!(
            parked.next(t0 + MAX_HOLD, never),
            Some(1),
            "the lookup hung"
        );
        // A late answer for a lookup nothing waits for is ignored.
        parked.looked_up("a", vec![1], t0 + MAX_HOLD);
        assert!(!parked.holding());
    }

    #[test]
    fn past_the_bounds_the_first_waiting_go_at_once_and_order_holds() {
        let mut parked: Parked<u32, u32> = Parked::default();
        let t0 = Instant::now();
        parked.hold(&topic("a"), 1, MAX_HELD_BYTES, vec!["a".into()], t0);
        assert_eq!(parked.hold(&topic("a"), 2, 1, vec![], t0), vec![1]);
        assert_eq!(parked.next(t0 + MAX_HOLD, never), Some(2));

        let mut parked: Parked<u32, u32> = Parked::default();
        for i in 0..MAX_HELD {
            let item = u32::try_from(i).unwrap();
            assert!(
                parked
                    .hold(&topic("a"), item, 1, vec!["a".into()], t0)
                    .is_empty()
            );
        }
        assert_eq!(parked.hold(&topic("a"), 9999, 1, vec![], t0), vec![0]);
    }
}
