//! Which of a realm's DHT records this node announces and looks up, so that publishers and the
//! subscribers of their topics find each other without every member connecting to every other.
//!
//! Topics are grouped in buckets (`keys::bucket`, `keys::buckets_of`). A node that holds a
//! subscription in the mesh announces itself under the subscription's bucket and looks up the
//! bucket's publishers; a node that publishes announces itself under each bucket of the topic
//! and looks up their subscribers. Lookups dial what they find; the session's admission and the
//! interests it carries do the rest, so these records are hints and never authority. Each side
//! looks again every [`REFRESH`] while the bucket is in use, which finds whoever came since.
//!
//! Drive either half the same way: its inputs (`add`/`remove`, or `publish`), `tick` every few
//! seconds, then `poll` until it yields nothing, turning each [`Step`] into a DHT request.

use std::collections::{HashMap, VecDeque};

use weft_names::{Name, Pattern};

use crate::core::keys::{bucket, buckets_of};

/// How often, in seconds, a bucket in use is looked up again.
pub(crate) const REFRESH: u64 = 30;
/// Buckets a node announces itself as a publisher in at once: a publisher to ever new topics
/// withdraws from the bucket it used least recently rather than announcing without end.
pub(crate) const MAX_PUBLISHED_BUCKETS: usize = 64;
/// Buckets a node announces itself as a subscriber in at once: past it, a subscription is
/// announced under a shorter prefix of its bucket (down to the root), which every publisher of
/// a matching topic still looks up. With the publishing side, well under the 256 slots a node's
/// DHT store keeps for its own keys.
pub(crate) const MAX_SUBSCRIBED_BUCKETS: usize = 64;
/// New buckets a publisher starts using per second, after a burst of [`NEW_BUCKET_BURST`]:
/// each costs an announcement and a lookup, and a client relayed here may publish to ever new
/// topics. Past it, a publication goes to the subscribers already known, and its buckets are
/// taken up at a later publication.
pub(crate) const NEW_BUCKETS_PER_SECOND: u64 = 8;
pub(crate) const NEW_BUCKET_BURST: u64 = 64;
/// Seconds without a publication after which a publisher withdraws from a bucket: its record
/// would otherwise be placed again at every republication (the network's, every 5 min) for as
/// long as the node runs. A publication there later announces it again, as the first one did.
pub(crate) const PUBLISHER_IDLE: u64 = 5 * 60;

/// Which record a [`Step`] is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Record {
    /// Subscribers of a bucket.
    Subscribers(String),
    /// Publishers to a bucket.
    Publishers(String),
}

/// A DHT request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Announce this node under the record.
    Provide(Record),
    /// Withdraw this node's announcement.
    StopProviding(Record),
    /// Look the record's providers up (and connect to them).
    LookUp(Record),
}

/// The requests one half makes: none until it is activated.
#[derive(Debug, Default)]
struct Requests {
    active: bool,
    steps: VecDeque<Step>,
}

impl Requests {
    fn emit(&mut self, step: Step) {
        if self.active {
            self.steps.push_back(step);
        }
    }

    /// Activates, announcing as `announce` and looking up as `look` each of `buckets`, in
    /// order; false if active already.
    fn activate(
        &mut self,
        mut buckets: Vec<&String>,
        announce: fn(String) -> Record,
        look: fn(String) -> Record,
    ) -> bool {
        if self.active {
            return false;
        }
        self.active = true;
        buckets.sort_unstable();
        for bucket in buckets {
            self.announce(bucket, announce, look);
        }
        true
    }

    /// Announces this node under `bucket` as `announce`, then looks it up as `look`.
    fn announce(
        &mut self,
        bucket: &str,
        announce: fn(String) -> Record,
        look: fn(String) -> Record,
    ) {
        self.emit(Step::Provide(announce(bucket.to_owned())));
        self.emit(Step::LookUp(look(bucket.to_owned())));
    }

    /// Looks up `due` again, as `look`, in order.
    fn look_up(&mut self, mut due: Vec<&String>, look: fn(String) -> Record) {
        due.sort_unstable();
        for bucket in due {
            self.emit(Step::LookUp(look(bucket.clone())));
        }
    }
}

/// The subscriber's half: the buckets of the subscriptions this node holds in the mesh (its
/// own, and its clients').
#[derive(Debug, Default)]
pub(crate) struct Subscribed {
    /// Subscriptions held, by pattern: the bucket the pattern counts in, and how many.
    patterns: HashMap<Pattern, (String, usize)>,
    /// Patterns counting in each bucket, and when the bucket's publishers were last looked up.
    buckets: HashMap<String, (usize, u64)>,
    requests: Requests,
}

impl Subscribed {
    /// A subscription to `pattern` is held, at `now` (Unix seconds).
    pub(crate) fn add(&mut self, pattern: &Pattern, now: u64) {
        if let Some((_, count)) = self.patterns.get_mut(pattern) {
            *count += 1;
            return;
        }
        let bucket = self.bucket_for(pattern);
        self.patterns.insert(pattern.clone(), (bucket.clone(), 1));
        if let Some((count, _)) = self.buckets.get_mut(&bucket) {
            *count += 1;
            return;
        }
        self.requests
            .emit(Step::Provide(Record::Subscribers(bucket.clone())));
        self.requests
            .emit(Step::LookUp(Record::Publishers(bucket.clone())));
        self.buckets.insert(bucket, (1, now));
    }

    /// A subscription to `pattern` is no longer held.
    pub(crate) fn remove(&mut self, pattern: &Pattern) {
        let Some((bucket, count)) = self.patterns.get_mut(pattern) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        let bucket = std::mem::take(bucket);
        self.patterns.remove(pattern);
        let Some((count, _)) = self.buckets.get_mut(&bucket) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.buckets.remove(&bucket);
            self.requests
                .emit(Step::StopProviding(Record::Subscribers(bucket)));
        }
    }

    /// Where a new pattern counts: its bucket if announced already or if there is room, else
    /// the longest shorter prefix that is announced, or the root. It stays there while held.
    fn bucket_for(&self, pattern: &Pattern) -> String {
        let full = bucket(pattern);
        if self.buckets.contains_key(&full) || self.buckets.len() < MAX_SUBSCRIBED_BUCKETS {
            return full;
        }
        let mut prefix = full.as_str();
        while let Some((shorter, _)) = prefix.rsplit_once('.') {
            if self.buckets.contains_key(shorter) {
                return shorter.to_owned();
            }
            prefix = shorter;
        }
        if self.buckets.contains_key(prefix) {
            return prefix.to_owned();
        }
        String::new()
    }

    /// Looks again for the publishers of every bucket not looked up for [`REFRESH`].
    pub(crate) fn tick(&mut self, now: u64) {
        let mut due: Vec<&String> = Vec::new();
        for (bucket, (_, looked)) in &mut self.buckets {
            if now.saturating_sub(*looked) >= REFRESH {
                *looked = now;
                due.push(bucket);
            }
        }
        self.requests.look_up(due, Record::Publishers);
    }

    /// The next request, if any.
    pub(crate) fn poll(&mut self) -> Option<Step> {
        self.requests.steps.pop_front()
    }

    /// From now on, at `now`, makes the requests, starting with an announcement and a lookup
    /// of every bucket held. Until then buckets are only counted: a node connected to every
    /// member of its realm needs no records to find them.
    pub(crate) fn activate(&mut self, now: u64) {
        let held = self.buckets.keys().collect();
        if self
            .requests
            .activate(held, Record::Subscribers, Record::Publishers)
        {
            for (_, looked) in self.buckets.values_mut() {
                *looked = now;
            }
        }
    }
}

/// The publisher's half: the buckets this node publishes to.
#[derive(Debug, Default)]
pub(crate) struct Publishing {
    /// Buckets published to: when last, and when their subscribers were last looked up.
    buckets: HashMap<String, Used>,
    /// The last topic seen, and when: a run of publications to one topic costs one comparison.
    last: Option<(Name, u64)>,
    /// Counts publications seen, to order buckets by last use.
    uses: u64,
    /// New buckets that may still be taken up, and when that was last topped up (none yet: 0).
    allowance: (u64, u64),
    /// Publications go into the overlay, which reaches every subscriber: buckets are recorded
    /// but neither announced nor looked up.
    overlay: bool,
    requests: Requests,
}

#[derive(Debug, Clone, Copy)]
struct Used {
    /// When it was last published to (Unix seconds), and as which use.
    published: u64,
    use_: u64,
    looked: u64,
    /// This node is announced under it (and so withdraws from it).
    announced: bool,
}

impl Publishing {
    /// This node publishes to `topic` at `now` (Unix seconds): the first time in a bucket, it
    /// announces itself there and looks the bucket's subscribers up. Returns the buckets whose
    /// subscribers this starts looking up (none until [`Publishing::activate`]): their
    /// publications may wait for the lookup (`core::parked`).
    pub(crate) fn publish(&mut self, topic: &Name, now: u64) -> Vec<String> {
        let mut fresh = Vec::new();
        if self
            .last
            .as_ref()
            .is_some_and(|(last, at)| *at == now && last == topic)
        {
            return fresh;
        }
        self.uses += 1;
        let buckets = buckets_of(topic);
        let mut all_known = true;
        for bucket in &buckets {
            if let Some(used) = self.buckets.get_mut(*bucket) {
                used.published = now;
                used.use_ = self.uses;
                continue;
            }
            if !self.take_allowance(now) {
                all_known = false;
                continue;
            }
            if self.buckets.len() >= MAX_PUBLISHED_BUCKETS {
                self.forget_least_recent(&buckets);
            }
            let announce = self.requests.active && !self.overlay;
            self.buckets.insert(
                (*bucket).to_owned(),
                Used {
                    published: now,
                    use_: self.uses,
                    looked: now,
                    announced: announce,
                },
            );
            if announce {
                self.requests
                    .announce(bucket, Record::Publishers, Record::Subscribers);
                fresh.push((*bucket).to_owned());
            }
        }
        // A topic whose buckets could not all be taken up is looked at again next time.
        self.last = all_known.then(|| (topic.clone(), now));
        fresh
    }

    /// From now on, at `now`, makes the requests, starting with an announcement and a lookup
    /// of every bucket published to. Until then buckets are only recorded.
    pub(crate) fn activate(&mut self, now: u64) {
        if self.requests.active {
            return;
        }
        self.requests.active = true;
        self.announce_unannounced(now);
    }

    /// Whether publications go into the overlay, at `now`. While they do, the overlay reaches
    /// whoever a bucket's lookup would find: new buckets are neither announced nor looked up,
    /// which would cost a Kademlia walk and a new connection per step, each time. Once they no
    /// longer do, those buckets are announced and looked up as at a first publication.
    /// Announcements made before stay: they expire with the network's records.
    pub(crate) fn overlay(&mut self, on: bool, now: u64) {
        let off_now = self.overlay && !on;
        self.overlay = on;
        if off_now {
            self.announce_unannounced(now);
        }
    }

    /// Announces and looks up, in order, the buckets not announced yet, unless publications go
    /// into the overlay or the requests are not active.
    fn announce_unannounced(&mut self, now: u64) {
        if self.overlay || !self.requests.active {
            return;
        }
        let mut due: Vec<(&String, &mut Used)> = self
            .buckets
            .iter_mut()
            .filter(|(_, used)| !used.announced)
            .collect();
        due.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (bucket, used) in due {
            used.announced = true;
            used.looked = now;
            self.requests
                .announce(bucket, Record::Publishers, Record::Subscribers);
        }
    }

    /// Whether the realm is past the mesh size here, and subscribers are found through the DHT.
    pub(crate) fn resolving(&self) -> bool {
        self.requests.active
    }

    /// Takes one new bucket from the allowance, topped up at [`NEW_BUCKETS_PER_SECOND`].
    fn take_allowance(&mut self, now: u64) -> bool {
        let (left, at) = &mut self.allowance;
        if *at == 0 {
            *left = NEW_BUCKET_BURST;
        } else {
            let gained = now
                .saturating_sub(*at)
                .saturating_mul(NEW_BUCKETS_PER_SECOND);
            *left = left.saturating_add(gained).min(NEW_BUCKET_BURST);
        }
        *at = now.max(1);
        if *left == 0 {
            return false;
        }
        *left -= 1;
        true
    }

    /// Looks again for the subscribers of each bucket published to since its last lookup and
    /// not looked up for [`REFRESH`]; a bucket not published to for that long is looked up
    /// again at its next publication only. Withdraws from buckets not published to for
    /// [`PUBLISHER_IDLE`].
    pub(crate) fn tick(&mut self, now: u64) {
        let requests = &mut self.requests;
        self.buckets.retain(|bucket, used| {
            let idle = now.saturating_sub(used.published) >= PUBLISHER_IDLE;
            if idle && used.announced {
                requests.emit(Step::StopProviding(Record::Publishers(bucket.clone())));
            }
            !idle
        });
        if self.overlay {
            return;
        }
        let mut due: Vec<&String> = Vec::new();
        for (bucket, used) in &mut self.buckets {
            if used.announced
                && now.saturating_sub(used.looked) >= REFRESH
                && used.published > used.looked
            {
                used.looked = now;
                due.push(bucket);
            }
        }
        self.requests.look_up(due, Record::Subscribers);
    }

    /// The next request, if any.
    pub(crate) fn poll(&mut self) -> Option<Step> {
        self.requests.steps.pop_front()
    }

    /// Withdraws from the bucket used least recently, never the root (every topic's) nor one
    /// of `keep` (the topic being published).
    fn forget_least_recent(&mut self, keep: &[&str]) {
        let oldest = self
            .buckets
            .iter()
            .filter(|(bucket, _)| !bucket.is_empty() && !keep.contains(&bucket.as_str()))
            .min_by(|(a, x), (b, y)| x.use_.cmp(&y.use_).then(a.cmp(b)))
            .map(|(bucket, _)| bucket.clone());
        if let Some(bucket) = oldest
            && let Some(used) = self.buckets.remove(&bucket)
            && used.announced
        {
            self.requests
                .emit(Step::StopProviding(Record::Publishers(bucket)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscribed() -> Subscribed {
        let mut s = Subscribed::default();
        s.activate(0);
        s
    }

    fn publishing() -> Publishing {
        let mut p = Publishing::default();
        p.activate(0);
        p
    }

    fn pattern(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn drain(next: impl FnMut() -> Option<Step>) -> Vec<Step> {
        std::iter::from_fn(next).collect()
    }

    /// What `drain` gives, in a stable order: steps of one tick come in a hash map's order.
    fn drain_sorted(next: impl FnMut() -> Option<Step>) -> Vec<Step> {
        let mut steps = drain(next);
        steps.sort_by_key(|s| format!("{s:?}"));
        steps
    }

    fn subs(bucket: &str) -> Record {
        Record::Subscribers(bucket.into())
    }

    fn pubs(bucket: &str) -> Record {
        Record::Publishers(bucket.into())
    }

    /// A publisher's announcement and lookup of each of `buckets`, in order.
    fn announced(buckets: &[&str]) -> Vec<Step> {
        buckets
            .iter()
            .flat_map(|b| [Step::Provide(pubs(b)), Step::LookUp(subs(b))])
            .collect()
    }

    #[test]
    fn a_subscriber_announces_its_bucket_once_and_withdraws_with_its_last_subscription() {
        let mut s = subscribed();
        s.add(&pattern("orders.eu.*"), 100);
        assert_eq!(
            drain(|| s.poll()),
            [
                Step::Provide(subs("orders.eu")),
                Step::LookUp(pubs("orders.eu"))
            ]
        );
        s.add(&pattern("orders.eu.paris"), 100);
        assert!(drain(|| s.poll()).is_empty(), "same bucket: nothing new");
        s.remove(&pattern("orders.eu.*"));
        assert!(
            drain(|| s.poll()).is_empty(),
            "one subscription still holds it"
        );
        s.remove(&pattern("orders.eu.paris"));
        assert_eq!(drain(|| s.poll()), [Step::StopProviding(subs("orders.eu"))]);
        s.remove(&pattern("orders.eu.paris"));
        assert!(drain(|| s.poll()).is_empty(), "a second removal is nothing");
    }

    #[test]
    fn a_subscriber_looks_for_publishers_again_every_refresh() {
        let mut s = subscribed();
        s.add(&pattern("**"), 100);
        drain(|| s.poll());
        s.tick(100 + REFRESH - 1);
        assert!(drain(|| s.poll()).is_empty());
        s.tick(100 + REFRESH);
        assert_eq!(drain(|| s.poll()), [Step::LookUp(pubs(""))]);
        s.tick(100 + REFRESH + 1);
        assert!(
            drain(|| s.poll()).is_empty(),
            "not again before the next refresh"
        );
    }

    #[test]
    fn a_publisher_announces_and_looks_up_each_bucket_of_a_topic_once() {
        let mut p = publishing();
        p.publish(&name("orders.eu.paris"), 100);
        let steps = drain(|| p.poll());
        for bucket in ["", "orders", "orders.eu"] {
            assert!(steps.contains(&Step::Provide(pubs(bucket))), "{bucket}");
            assert!(steps.contains(&Step::LookUp(subs(bucket))), "{bucket}");
        }
        assert_eq!(steps.len(), 6);
        p.publish(&name("orders.eu.paris"), 100);
        p.publish(&name("orders.eu.lyon"), 101);
        assert!(drain(|| p.poll()).is_empty(), "buckets known");
        p.publish(&name("orders.us.nyc"), 101);
        assert_eq!(
            drain(|| p.poll()),
            [
                Step::Provide(pubs("orders.us")),
                Step::LookUp(subs("orders.us"))
            ]
        );
    }

    #[test]
    fn a_publisher_looks_again_only_at_buckets_it_still_publishes_to() {
        let mut p = publishing();
        p.publish(&name("a.b"), 100);
        p.publish(&name("x"), 100);
        drain(|| p.poll());
        p.publish(&name("a.b"), 100 + REFRESH);
        p.tick(100 + REFRESH);
        let steps = drain_sorted(|| p.poll());
        assert_eq!(
            steps,
            [
                Step::LookUp(subs("")),
                Step::LookUp(subs("a")),
                Step::LookUp(subs("a.b"))
            ],
            "x was not published to since"
        );
    }

    #[test]
    fn a_publisher_withdraws_from_buckets_it_stopped_publishing_to_and_comes_back() {
        let mut p = publishing();
        p.publish(&name("a.b"), 100);
        p.publish(&name("x"), 100);
        drain(|| p.poll());
        p.publish(&name("a.c"), 100 + PUBLISHER_IDLE - 1);
        p.tick(100 + PUBLISHER_IDLE - 1);
        let steps = drain(|| p.poll());
        assert!(
            !steps.iter().any(|s| matches!(s, Step::StopProviding(_))),
            "nothing idle for long enough yet: {steps:?}"
        );
        p.tick(100 + PUBLISHER_IDLE);
        let steps = drain_sorted(|| p.poll());
        assert_eq!(
            steps,
            [
                Step::StopProviding(pubs("a.b")),
                Step::StopProviding(pubs("x"))
            ],
            "the root and a, published to since, stay"
        );
        // Publishing there again announces it again, and the publication waits for the lookup.
        let fresh = p.publish(&name("a.b"), 100 + PUBLISHER_IDLE + 1);
        assert_eq!(fresh, ["a.b"]);
        assert_eq!(
            drain(|| p.poll()),
            [Step::Provide(pubs("a.b")), Step::LookUp(subs("a.b"))]
        );
    }

    #[test]
    fn a_publisher_that_stopped_altogether_withdraws_the_root_too() {
        let mut p = publishing();
        p.publish(&name("a"), 100);
        drain(|| p.poll());
        p.tick(100 + PUBLISHER_IDLE);
        let steps = drain_sorted(|| p.poll());
        assert_eq!(
            steps,
            [
                Step::StopProviding(pubs("")),
                Step::StopProviding(pubs("a"))
            ]
        );
        assert_eq!(p.publish(&name("a"), 100 + PUBLISHER_IDLE), ["", "a"]);
    }

    #[test]
    fn a_publisher_into_the_overlay_announces_and_looks_up_nothing_until_it_stops() {
        let mut p = publishing();
        p.overlay(true, 100);
        assert!(p.publish(&name("a.b"), 100).is_empty(), "nothing waits");
        p.tick(100 + REFRESH);
        p.publish(&name("a.b"), 100 + REFRESH + 1);
        p.tick(100 + 2 * REFRESH + 1);
        assert_eq!(drain(|| p.poll()), [], "neither announced nor looked up");
        // Out of the overlay: announced and looked up as at a first publication, in order.
        p.overlay(false, 200);
        assert_eq!(drain(|| p.poll()), announced(&["", "a", "a.b"]));
        p.overlay(false, 201);
        p.publish(&name("a.b"), 202);
        assert_eq!(drain(|| p.poll()), [], "announced once");
    }

    #[test]
    fn announcements_made_before_the_overlay_stay_and_only_they_are_withdrawn() {
        let mut p = publishing();
        p.publish(&name("a"), 100);
        drain(|| p.poll());
        p.overlay(true, 101);
        p.publish(&name("x"), 101);
        assert_eq!(drain(|| p.poll()), [], "x is only recorded");
        p.tick(101 + PUBLISHER_IDLE);
        assert_eq!(
            drain_sorted(|| p.poll()),
            [
                Step::StopProviding(pubs("")),
                Step::StopProviding(pubs("a"))
            ],
            "x was never announced: nothing to withdraw"
        );
        p.overlay(false, 102 + PUBLISHER_IDLE);
        assert_eq!(
            drain(|| p.poll()),
            [],
            "idle buckets are gone, not announced"
        );
    }

    #[test]
    fn a_publisher_activated_while_in_the_overlay_announces_once_it_leaves_it() {
        let mut p = Publishing::default();
        p.publish(&name("a"), 100);
        p.overlay(true, 100);
        p.activate(100);
        assert_eq!(drain(|| p.poll()), []);
        p.overlay(false, 110);
        assert_eq!(drain(|| p.poll()), announced(&["", "a"]));
    }

    #[test]
    fn a_publisher_to_ever_new_topics_keeps_a_bounded_set_of_announcements() {
        let mut p = publishing();
        // One topic a second, within the rate of new buckets.
        for i in 0..MAX_PUBLISHED_BUCKETS + 10 {
            p.publish(&name(&format!("t{i}.x")), 100 + i as u64);
        }
        let steps = drain(|| p.poll());
        let provided = steps
            .iter()
            .filter(|s| matches!(s, Step::Provide(_)))
            .count();
        let withdrawn: Vec<&Step> = steps
            .iter()
            .filter(|s| matches!(s, Step::StopProviding(_)))
            .collect();
        assert_eq!(provided - withdrawn.len(), MAX_PUBLISHED_BUCKETS);
        assert_eq!(
            withdrawn[0],
            &Step::StopProviding(pubs("t0")),
            "the least recent goes first"
        );
        assert!(
            !withdrawn.contains(&&Step::StopProviding(pubs(""))),
            "the root, which every topic uses, stays"
        );
    }

    #[test]
    fn new_buckets_are_taken_up_at_a_bounded_rate() {
        let mut p = publishing();
        let new = |p: &mut Publishing| {
            drain(|| p.poll())
                .iter()
                .filter(|s| matches!(s, Step::Provide(_)))
                .count() as u64
        };
        for i in 0..200 {
            p.publish(&name(&format!("n{i}")), 100);
        }
        assert_eq!(
            new(&mut p),
            NEW_BUCKET_BURST,
            "a burst, then nothing this second"
        );
        p.publish(&name("late"), 101);
        assert_eq!(new(&mut p), 1, "a second later there is room again");
        // A topic refused for now is taken up at a later publication.
        for i in 0..NEW_BUCKET_BURST {
            p.publish(&name(&format!("m{i}")), 110);
        }
        drain(|| p.poll());
        p.publish(&name("again"), 110);
        assert_eq!(new(&mut p), 0);
        p.publish(&name("again"), 112);
        assert_eq!(new(&mut p), 1, "not skipped as already seen");
    }

    #[test]
    fn past_its_cap_a_subscription_counts_under_a_shorter_prefix_until_it_ends() {
        let mut s = subscribed();
        for i in 0..MAX_SUBSCRIBED_BUCKETS - 1 {
            s.add(&pattern(&format!("b{i}")), 100);
        }
        s.add(&pattern("a.b"), 100);
        drain(|| s.poll());
        // Full: `a.b.c`'s own bucket is `a.b`, announced already; `a.x.y` falls back to the
        // root, as nothing shorter of it is announced.
        s.add(&pattern("a.b.c"), 100);
        assert!(drain(|| s.poll()).is_empty());
        s.add(&pattern("a.x.y"), 100);
        assert_eq!(
            drain(|| s.poll()),
            [Step::Provide(subs("")), Step::LookUp(pubs(""))]
        );
        // Room made by another bucket ending does not move what is held: `a.x.y` still counts
        // in the root and withdraws it when it ends.
        s.remove(&pattern("b0"));
        drain(|| s.poll());
        s.remove(&pattern("a.x.y"));
        assert_eq!(drain(|| s.poll()), [Step::StopProviding(subs(""))]);
        s.remove(&pattern("a.b.c"));
        assert!(drain(|| s.poll()).is_empty(), "a.b still held");
        s.remove(&pattern("a.b"));
        assert_eq!(drain(|| s.poll()), [Step::StopProviding(subs("a.b"))]);
    }

    #[test]
    fn nothing_is_asked_of_the_dht_until_activated_then_everything_held_is() {
        let mut s = Subscribed::default();
        s.add(&pattern("orders.*"), 100);
        s.add(&pattern("x.y"), 100);
        s.remove(&pattern("x.y"));
        s.tick(100 + REFRESH);
        assert!(drain(|| s.poll()).is_empty());
        s.activate(200);
        assert_eq!(
            drain(|| s.poll()),
            [Step::Provide(subs("orders")), Step::LookUp(pubs("orders"))]
        );
        s.activate(201);
        assert!(drain(|| s.poll()).is_empty(), "once");

        let mut p = Publishing::default();
        p.publish(&name("a.b"), 100);
        assert!(drain(|| p.poll()).is_empty());
        p.activate(200);
        let steps = drain_sorted(|| p.poll());
        assert_eq!(steps.len(), 6, "{steps:?}");
        p.tick(200 + REFRESH);
        assert!(drain(|| p.poll()).is_empty(), "looked up at activation");
    }
}
