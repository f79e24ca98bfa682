//! Forwarding between members: when a publication is forwarded, to whom, and what was seen.
//!
//! A publisher delivers directly to the subscribers it holds a session with. Where sessions are
//! scarce (this node, or a peer, had to refuse or release one for room within
//! [`SCARCE_FOR`]), that may not be all of them, so its publications also go into an overlay:
//! the realm's member sessions. So does a publication no member with a session here wants once
//! the realm is past the mesh size ([`to_overlay`]). Each member passes a batch on once, to the members whose
//! interests match and to up to [`DEGREE`] others allowed to subscribe to its topic, for at
//! most [`HOPS`] hops. A batch holds publications of one topic, signed by their publisher
//! (`weft_wire::forward`): a forwarder can drop it but not change it, and every node checks the
//! signature and the publisher's `realm/join` and `msg/publish` before it delivers or passes
//! anything on.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use weft_wire::ForwardId;

/// Hops a batch may take after its first: enough to cross a random overlay of degree 3 or more
/// among thousands of members, few enough to bound a loop the duplicate filter missed.
pub(crate) const HOPS: u8 = 10;
/// Members a batch is passed on to besides those whose interests match.
pub(crate) const DEGREE: usize = 6;
/// Members tried as relays per batch: those that may not read its topic are skipped, and the
/// work of trying is bounded.
pub(crate) const RELAYS_TRIED: usize = 4 * DEGREE;
/// A batch signed longer ago than this (plus [`LEEWAY`]) is refused (`signed_at`, Unix
/// seconds).
pub(crate) const MAX_AGE: u64 = 30;
/// How far the publisher's clock may be from this node's, either way.
pub(crate) const LEEWAY: u64 = 60;
/// How long a batch's id is remembered: past it, the age limit refuses a replay.
const REMEMBER: Duration = Duration::from_secs(MAX_AGE + 2 * LEEWAY + 30);
/// Most ids remembered: a flood of valid batches pushes the oldest out early, and then the
/// sequence numbers still keep a replay from being delivered twice.
const MAX_SEEN: usize = 64 * 1024;
/// A publisher's batch is sealed once its payloads reach this many bytes.
pub(crate) const BATCH_BYTES: usize = 256 * 1024;

/// Does a publication of this node's, or of a client's it relays, go into the overlay?
/// Always while sessions are `scarce`. Past the mesh size (`resolving`), subscribers are
/// found through DHT records, which a lookup can miss in a large realm; a publication that
/// reached no member directly then goes into the overlay too, rather than nowhere. Below the
/// mesh size every member holds a session here, so a publication nobody took is wanted by
/// nobody.
pub(crate) fn to_overlay(scarce: bool, resolving: bool, reached_a_member: bool) -> bool {
    scarce || (resolving && !reached_a_member)
}

/// Providers a lookup of subscribers or publishers that a publication waits for dials while
/// sessions are scarce. More could only get a session by pushing another out: each dial costs a
/// QUIC and TLS handshake on both sides, and the overlay reaches them anyway.
pub(crate) const DIALS_WHEN_SCARCE: usize = 2;

/// How many of the providers a lookup of subscribers or publishers dials, or `None` if it is not
/// made. While sessions are `scarce` the overlay reaches whom a lookup would find, so a lookup
/// no publication waits for (not `waited_for`: a bucket's refresh, a subscription's lookup of
/// its publishers) is skipped: it costs a Kademlia walk, and a session with a peer it found
/// could only push another out, most often one of the overlay's links, whose loss is what then
/// costs deliveries. Otherwise a lookup dials every live
/// provider it finds, up to the network's bound per lookup.
pub(crate) fn dials_per_lookup(scarce: bool, waited_for: bool) -> Option<usize> {
    match (scarce, waited_for) {
        (false, _) => Some(usize::MAX),
        (true, true) => Some(DIALS_WHEN_SCARCE),
        (true, false) => None,
    }
}

/// Is a batch signed at `signed_at` recent enough to take at `now` (Unix seconds)?
pub(crate) fn recent(signed_at: u64, now: u64) -> bool {
    signed_at.saturating_add(MAX_AGE + LEEWAY) >= now && signed_at <= now.saturating_add(LEEWAY)
}

/// The ids of the batches this node took, for a while: each is passed on and delivered once.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    at: HashMap<ForwardId, Instant>,
    order: VecDeque<(Instant, ForwardId)>,
}

impl Seen {
    /// Was the batch `id` taken already?
    pub(crate) fn contains(&mut self, id: &ForwardId, now: Instant) -> bool {
        self.expire(now);
        self.at.contains_key(id)
    }

    /// Records the batch `id` as taken (only once it verified: a forged copy must not keep the
    /// real one out).
    pub(crate) fn insert(&mut self, id: ForwardId, now: Instant) {
        self.expire(now);
        if self.at.insert(id, now).is_none() {
            self.order.push_back((now, id));
        }
        while self.order.len() > MAX_SEEN {
            if let Some((_, old)) = self.order.pop_front() {
                self.at.remove(&old);
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, id)) = self.order.front() {
            if now.saturating_duration_since(*at) < REMEMBER {
                break;
            }
            self.at.remove(id);
            self.order.pop_front();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.at.len()
    }
}

/// Sessions are scarce on a node from a refusal or release for room (a mark) until
/// `hold` has passed without another: meanwhile lookups that only refresh are not made and
/// publications go into the overlay too. A spell that comes back within `hold` of its lapse
/// (the lookups it held back filled the sessions again) is held twice as long the next time,
/// up to [`MAX_SCARCE_FOR`]; a node calm for twice its `hold` goes back to [`SCARCE_FOR`].
/// Without that, every node of a realm whose sessions settle just below their budget lapses
/// together, looks up every bucket at once, and is pushed back into scarcity by its own
/// lookups: a storm of handshakes every [`SCARCE_FOR`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spells {
    last: Option<Instant>,
    hold: Duration,
}

/// How long sessions stay scarce after a mark, at first.
pub(crate) const SCARCE_FOR: Duration = Duration::from_secs(120);
/// The longest a spell is held after its last mark.
pub(crate) const MAX_SCARCE_FOR: Duration = Duration::from_secs(32 * 60);
/// How long publications still go into the overlay once a spell lapses: the lookups it held
/// back are made again, and until their sessions are in place a publication sent only directly
/// could miss a subscriber.
pub(crate) const EASING: Duration = Duration::from_secs(60);

impl Default for Spells {
    fn default() -> Self {
        Self {
            last: None,
            hold: SCARCE_FOR,
        }
    }
}

impl Spells {
    /// A session was refused or released for room at `now`.
    pub(crate) fn mark(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let since = now.saturating_duration_since(last);
            if since >= self.hold.saturating_mul(2) {
                self.hold = SCARCE_FOR;
            } else if since >= self.hold {
                self.hold = self.hold.saturating_mul(2).min(MAX_SCARCE_FOR);
            }
        }
        self.last = Some(self.last.map_or(now, |last| last.max(now)));
    }

    /// Until when sessions are scarce (lookups that only refresh are held back), and until
    /// when publications go into the overlay: scarce, or eased out of it lately. `None`: never
    /// marked.
    pub(crate) fn until(&self) -> Option<(Instant, Instant)> {
        let last = self.last?;
        Some((last + self.hold, last + self.hold.saturating_add(EASING)))
    }

    /// Whether sessions are scarce at `now`.
    pub(crate) fn scarce(&self, now: Instant) -> bool {
        self.until().is_some_and(|(scarce, _)| now < scarce)
    }

    /// Whether publications go into the overlay at `now`.
    pub(crate) fn forwarding(&self, now: Instant) -> bool {
        self.until().is_some_and(|(_, forwarding)| now < forwarding)
    }
}

/// The node's [`Spells`], shared by the supervisor, which marks them when a session is refused
/// or released for room on either side, and by the DHT front and the realms' routers, which
/// read them. A router reads them once per message: its reads take no lock.
#[derive(Debug)]
pub(crate) struct Scarcity {
    start: Instant,
    spells: Mutex<Spells>,
    /// Milliseconds after `start` until which sessions are scarce, and publications forwarded,
    /// as of the last mark (0: never marked).
    scarce_until: AtomicU64,
    forwarding_until: AtomicU64,
}

impl Scarcity {
    pub(crate) fn new(start: Instant) -> Self {
        Self {
            start,
            spells: Mutex::default(),
            scarce_until: AtomicU64::new(0),
            forwarding_until: AtomicU64::new(0),
        }
    }

    pub(crate) fn mark(&self, now: Instant) {
        // Nothing panics while holding it; were it poisoned, its value would still be whole.
        let mut spells = self.spells.lock().unwrap_or_else(PoisonError::into_inner);
        spells.mark(now);
        if let Some((scarce, forwarding)) = spells.until() {
            self.scarce_until.store(self.ms(scarce), Ordering::Relaxed);
            self.forwarding_until
                .store(self.ms(forwarding), Ordering::Relaxed);
        }
    }

    pub(crate) fn scarce(&self, now: Instant) -> bool {
        self.ms(now) < self.scarce_until.load(Ordering::Relaxed)
    }

    pub(crate) fn forwarding(&self, now: Instant) -> bool {
        self.ms(now) < self.forwarding_until.load(Ordering::Relaxed)
    }

    fn ms(&self, at: Instant) -> u64 {
        millis(at.saturating_duration_since(self.start))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whom a batch goes to next: every candidate whose interests match (an authorized
/// subscription covers the batch's topic), and up to [`DEGREE`] of the others that `may_read`
/// says may subscribe to it, tried in an order the batch's id picks so that batches spread
/// over the overlay; at most [`RELAYS_TRIED`] are tried. `from` (the member it came from) and
/// `publisher` never get it back.
pub(crate) fn next_hops<S: Copy + PartialEq>(
    candidates: &[(S, bool)],
    from: Option<S>,
    publisher: Option<S>,
    id: &ForwardId,
    mut may_read: impl FnMut(S) -> bool,
) -> Vec<S> {
    let eligible = |s: &S| Some(*s) != from && Some(*s) != publisher;
    let mut hops: Vec<S> = candidates
        .iter()
        .filter(|(s, interested)| *interested && eligible(s))
        .map(|(s, _)| *s)
        .collect();
    let others: Vec<S> = candidates
        .iter()
        .filter(|(s, interested)| !*interested && eligible(s))
        .map(|(s, _)| *s)
        .collect();
    if !others.is_empty() {
        let start = usize::from(u16::from_le_bytes([id[0], id[1]])) % others.len();
        let relays = others
            .iter()
            .cycle()
            .skip(start)
            .take(others.len().min(RELAYS_TRIED))
            .filter(|s| may_read(**s))
            .take(DEGREE);
        hops.extend(relays);
    }
    hops
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    #[test]
    fn lookups_are_skipped_or_dial_few_while_sessions_are_scarce() {
        assert_eq!(dials_per_lookup(true, true), Some(DIALS_WHEN_SCARCE));
        assert_eq!(dials_per_lookup(true, false), None, "a refresh waits");
        assert_eq!(dials_per_lookup(false, false), Some(usize::MAX));
        assert_eq!(dials_per_lookup(false, true), Some(usize::MAX));
    }

    #[test]
    fn publications_go_into_the_overlay_while_scarce_or_past_the_mesh_size_when_nobody_took_them() {
        // (scarce, resolving, reached a member) -> into the overlay
        let cases = [
            (false, false, false, false), // a full mesh: nobody took it because nobody wants it
            (false, false, true, false),
            (false, true, true, false), // past the mesh size, delivered directly
            (false, true, false, true), // past the mesh size, its lookup found nobody
            (true, false, false, true),
            (true, true, true, true),
        ];
        for (scarce, resolving, reached, expected) in cases {
            assert_eq!(
                to_overlay(scarce, resolving, reached),
                expected,
                "scarce {scarce}, resolving {resolving}, reached {reached}"
            );
        }
    }

    #[test]
    fn a_batch_is_taken_within_its_age_and_the_clock_leeway() {
        assert!(recent(T0, T0));
        assert!(recent(T0 - MAX_AGE - LEEWAY, T0), "a clock behind ours");
        assert!(!recent(T0 - MAX_AGE - LEEWAY - 1, T0), "too old: a replay");
        assert!(recent(T0 + LEEWAY, T0), "a clock ahead of ours");
        assert!(!recent(T0 + LEEWAY + 1, T0));
        assert!(!recent(u64::MAX, T0));
    }

    #[test]
    fn an_id_is_remembered_until_its_batch_is_too_old_to_take() {
        let start = Instant::now();
        let mut seen = Seen::default();
        assert!(!seen.contains(&[1; 16], start));
        seen.insert([1; 16], start);
        seen.insert([1; 16], start);
        assert!(seen.contains(&[1; 16], start + Duration::from_secs(MAX_AGE + 2 * LEEWAY)));
        assert!(!seen.contains(&[1; 16], start + REMEMBER));
        assert_eq!(seen.len(), 0);
    }

    #[test]
    fn the_ids_remembered_are_bounded() {
        let start = Instant::now();
        let mut seen = Seen::default();
        for i in 0..MAX_SEEN as u32 + 10 {
            let mut id = [0; 16];
            id[..4].copy_from_slice(&i.to_le_bytes());
            seen.insert(id, start);
        }
        assert_eq!(seen.len(), MAX_SEEN);
        assert!(!seen.contains(&[0; 16], start), "the oldest went first");
    }

    #[test]
    fn scarcity_lasts_its_while_after_the_last_mark() {
        let start = Instant::now();
        let mut spells = Spells::default();
        assert!(!spells.scarce(start) && !spells.forwarding(start));
        let at = start + Duration::from_secs(5);
        spells.mark(at);
        spells.mark(start);
        assert!(spells.scarce(at + SCARCE_FOR - Duration::from_millis(1)));
        assert!(
            !spells.scarce(at + SCARCE_FOR),
            "an earlier mark does not undo a later one"
        );
        assert!(
            spells.forwarding(at + SCARCE_FOR),
            "publications are forwarded while the lookups held back are made"
        );
        assert!(!spells.forwarding(at + SCARCE_FOR + EASING));
    }

    #[test]
    fn the_shared_scarcity_answers_as_its_spells() {
        let start = Instant::now();
        let shared = Scarcity::new(start);
        let mut spells = Spells::default();
        assert!(!shared.scarce(start) && !shared.forwarding(start));
        let marks = [5, 130, 200, 700, 1500];
        for mark in marks.map(Duration::from_secs) {
            shared.mark(start + mark);
            spells.mark(start + mark);
            for after in [0, 60, 119, 120, 179, 180, 239, 240, 300, 479, 480, 600] {
                let at = start + mark + Duration::from_secs(after);
                assert_eq!(shared.scarce(at), spells.scarce(at), "{mark:?} + {after} s");
                assert_eq!(
                    shared.forwarding(at),
                    spells.forwarding(at),
                    "{mark:?} + {after} s"
                );
            }
        }
    }

    #[test]
    fn a_spell_that_comes_back_soon_after_its_lapse_is_held_longer() {
        let start = Instant::now();
        let mut spells = Spells::default();
        spells.mark(start);
        let mut lapse = start + SCARCE_FOR;
        let mut hold = SCARCE_FOR;
        for _ in 0..8 {
            assert!(!spells.scarce(lapse));
            // The lookups made at the lapse fill the sessions again.
            let back = lapse + Duration::from_secs(10);
            spells.mark(back);
            hold = (hold * 2).min(MAX_SCARCE_FOR);
            assert!(spells.scarce(back + hold - Duration::from_millis(1)));
            lapse = back + hold;
        }
        assert_eq!(hold, MAX_SCARCE_FOR, "bounded");
        assert!(!spells.scarce(lapse));
    }

    #[test]
    fn marks_within_a_spell_keep_its_hold_and_a_calm_node_goes_back_to_the_first() {
        let start = Instant::now();
        let mut spells = Spells::default();
        spells.mark(start);
        let again = start + SCARCE_FOR / 2;
        spells.mark(again);
        assert!(spells.scarce(again + SCARCE_FOR - Duration::from_millis(1)));
        assert!(
            !spells.scarce(again + SCARCE_FOR),
            "within its spell: not doubled"
        );

        let back = start + SCARCE_FOR + Duration::from_secs(1);
        let mut doubled = Spells::default();
        doubled.mark(start);
        doubled.mark(back);
        assert!(doubled.scarce(back + SCARCE_FOR), "came back soon: doubled");
        let calm = back + 2 * 2 * SCARCE_FOR;
        doubled.mark(calm);
        assert!(doubled.scarce(calm + SCARCE_FOR - Duration::from_millis(1)));
        assert!(
            !doubled.scarce(calm + SCARCE_FOR),
            "calm for twice its hold: the first again"
        );
    }

    #[test]
    fn a_batch_goes_to_the_interested_and_a_few_others_never_back() {
        let id = [0; 16];
        let candidates: Vec<(u32, bool)> = (0..20).map(|s| (s, s % 5 == 0)).collect();
        let hops = next_hops(&candidates, Some(5), Some(7), &id, |_| true);
        for s in [0, 10, 15] {
            assert!(hops.contains(&s), "interested {s} gets it");
        }
        assert!(!hops.contains(&5) && !hops.contains(&7));
        assert_eq!(hops.len(), 3 + DEGREE);
        let mut unique = hops.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), hops.len(), "each once");

        // Another batch takes other members first.
        let other = next_hops(&candidates, Some(5), Some(7), &[9; 16], |_| true);
        assert_ne!(hops, other);

        // Fewer candidates than the degree: all of them.
        let few = [(1u32, false), (2, false)];
        assert_eq!(next_hops(&few, Some(1), None, &id, |_| true), vec![2]);
        assert!(next_hops::<u32>(&[], None, None, &id, |_| true).is_empty());
    }

    #[test]
    fn a_relay_must_be_allowed_to_read_the_topic_and_the_trying_is_bounded() {
        let id = [0; 16];
        let candidates: Vec<(u32, bool)> = (0..100).map(|s| (s, s == 50)).collect();
        let mut tried = 0;
        let hops = next_hops(&candidates, None, None, &id, |s| {
            tried += 1;
            s % 2 == 0
        });
        assert!(
            hops.contains(&50),
            "interested: its subscription was authorized"
        );
        assert!(hops.iter().all(|s| s % 2 == 0), "{hops:?}");
        assert_eq!(hops.len(), 1 + DEGREE);
        assert!(tried <= RELAYS_TRIED);

        let mut tried = 0;
        let none = next_hops(&candidates, None, None, &id, |_| {
            tried += 1;
            false
        });
        assert_eq!(none, vec![50], "no reader: only the interested");
        assert_eq!(tried, RELAYS_TRIED);
    }
}
