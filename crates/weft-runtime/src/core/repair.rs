//! Repairs to the overlay (`core::forward`): batches a member missed, offered by id and sent
//! when asked for.
//!
//! A batch crosses each link of the overlay once, so a member whose links dropped it (a session
//! that was closing, a full queue) would miss it for good, and one that holds a single session
//! has no second path. Each node therefore keeps the batches it took for a while ([`KEEP`]).
//! Once a [`ROUND`] it offers the ids of those younger than [`OFFER_FOR`] (`Frame::Have`) to
//! each member not known to have them: not the one it took a batch from, nor those it passed
//! the batch to or offered it to before, nor those that offered it here. A member asks for the
//! ones it has not taken (`Frame::Want`), and gets each at most once, with no hops left. This is
//! gossipsub's IHAVE and IWANT, on the members' own sessions.
//!
//! A batch of this node's that no member took (it had none, or every session it was passed to
//! was closing) is kept and offered for longer ([`UNREACHED_FOR`]), until a member has it: as a
//! NATS client holds what it publishes while it reconnects. An offer is not enough: it may go
//! to a session that is closing, as a node's sessions all are when it loses its members at
//! once, and a member told of a batch it never asks for has not got it. The first member to
//! ask for such a batch gets it with its hops, and passes it into the overlay as if it had
//! never been held back.
//!
//! Drive it in this order: [`Repair::keep`] each batch taken or sealed; [`Repair::offers`]
//! once a round; [`Repair::wanted`] for a member's offer, sending what it returns back as a
//! want; [`Repair::answer`] for a member's want; [`Repair::taken`] when a batch verifies;
//! [`Repair::forget`] a member that left.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use weft_names::Name;
use weft_wire::{Forward, ForwardId, MAX_BATCH_IDS};

/// How often a node offers the batches it took.
pub(crate) const ROUND: Duration = Duration::from_secs(1);
/// Batches younger than this are offered: a member whose session was replaced (a second or
/// two) still hears of them from its next one.
pub(crate) const OFFER_FOR: Duration = Duration::from_secs(3);
/// How long a batch is kept to answer wants: past its offers, by a round's worth of slack for
/// the want to come back, and no longer, since every node of a realm keeps what it took.
pub(crate) const KEEP: Duration = Duration::from_secs(5);
/// How long a batch no member has is kept and offered: a publisher cut off
/// from every member hands its batches to the first one it gets back. Well within the age a
/// receiver accepts (`forward::MAX_AGE`).
pub(crate) const UNREACHED_FOR: Duration = Duration::from_secs(30);
/// Bytes of batches kept at most per realm: a flood of large batches pushes the oldest out
/// early, so their repairs are lost, never the node's memory.
pub(crate) const KEPT_BYTES: usize = 1024 * 1024;
/// A batch asked for and not taken within this may be asked of the next member that offers it.
pub(crate) const ASK_AGAIN: Duration = Duration::from_secs(2);
/// Batches asked of one member and not yet taken, at most: a member offering made-up ids makes
/// this node remember at most this many of them.
pub(crate) const ASKED_PER_MEMBER: usize = 1024;
/// Bytes a kept batch costs besides its own: the entry, its ids in two indexes, its topic.
const ENTRY_BYTES: usize = 160;

/// A batch kept to answer wants.
#[derive(Debug)]
struct Kept<S> {
    forward: Forward,
    topic: Name,
    /// When it was kept.
    at: Instant,
    /// When a member first had it; none yet: unreached.
    reached: Option<Instant>,
    /// Members known to have it, or told of it: offered nothing more.
    known: Vec<S>,
    /// Members it was sent to for their want: sent nothing more.
    answered: Vec<S>,
}

impl<S: PartialEq> Kept<S> {
    /// Is it offered at `now`: young enough since a member first had it, or unreached and
    /// younger than [`UNREACHED_FOR`]?
    fn offered(&self, now: Instant) -> bool {
        match self.reached {
            Some(reached) => now.saturating_duration_since(reached) < OFFER_FOR,
            None => now.saturating_duration_since(self.at) < UNREACHED_FOR,
        }
    }

    /// Is it still kept at `now`?
    fn kept(&self, now: Instant) -> bool {
        match self.reached {
            Some(reached) => now.saturating_duration_since(reached) < KEEP,
            None => now.saturating_duration_since(self.at) < UNREACHED_FOR,
        }
    }

    /// `member` has it from `now`.
    fn known_to(&mut self, member: S, now: Instant) {
        self.told(member);
        self.reached.get_or_insert(now);
    }

    /// `member` is told of it: offered it no more, though it may not have it yet.
    fn told(&mut self, member: S) {
        if !self.known.contains(&member) {
            self.known.push(member);
        }
    }

    fn bytes(&self) -> usize {
        self.forward.batch.len()
            + self.forward.signature.len()
            + self.topic.as_str().len()
            + ENTRY_BYTES
    }
}

/// The batches a node keeps and offers, and those it asked for.
#[derive(Debug)]
pub(crate) struct Repair<S> {
    kept: HashMap<ForwardId, Kept<S>>,
    order: VecDeque<ForwardId>,
    bytes: usize,
    max_bytes: usize,
    /// Batches asked for: when, and of whom.
    asked: HashMap<ForwardId, (Instant, S)>,
    asked_order: VecDeque<(Instant, ForwardId)>,
    /// Entries of `asked` per member.
    asked_of: HashMap<S, usize>,
}

impl<S> Default for Repair<S> {
    fn default() -> Self {
        Self {
            kept: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_bytes: KEPT_BYTES,
            asked: HashMap::new(),
            asked_order: VecDeque::new(),
            asked_of: HashMap::new(),
        }
    }
}

impl<S: Copy + Eq + Hash> Repair<S> {
    /// Keeps at most `max_bytes` of batches.
    #[cfg(test)]
    fn with_max_bytes(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            ..Self::default()
        }
    }

    /// Keeps the batch `id` of `topic`, taken or sealed at `now`; the `known` members have it
    /// (it came from one, was passed to the others).
    pub(crate) fn keep(
        &mut self,
        id: ForwardId,
        forward: Forward,
        topic: Name,
        known: Vec<S>,
        now: Instant,
    ) {
        self.expire(now);
        if self.kept.contains_key(&id) {
            return;
        }
        let kept = Kept {
            forward,
            topic,
            at: now,
            reached: (!known.is_empty()).then_some(now),
            known,
            answered: Vec::new(),
        };
        let bytes = kept.bytes();
        if bytes > self.max_bytes {
            return;
        }
        self.bytes += bytes;
        self.kept.insert(id, kept);
        self.order.push_back(id);
        while self.bytes > self.max_bytes {
            self.drop_oldest();
        }
    }

    /// For each of `members`, the ids to offer it this round (at most [`MAX_BATCH_IDS`], the
    /// oldest first; the rest wait for the next round): batches a member first heard of less
    /// than [`OFFER_FOR`] ago (or none did yet) that it is not known to have, of topics `may_read` says it may subscribe to. Each is offered to
    /// a member once. Members with nothing to be offered are left out.
    pub(crate) fn offers(
        &mut self,
        members: &[S],
        mut may_read: impl FnMut(S, &Name) -> bool,
        now: Instant,
    ) -> Vec<(S, Vec<ForwardId>)> {
        self.expire(now);
        let mut offers = Vec::new();
        for &member in members {
            // Whether the member may read a topic, asked once per topic a round.
            let mut readable: Vec<(Name, bool)> = Vec::new();
            let mut ids = Vec::new();
            for id in &self.order {
                let Some(kept) = self.kept.get_mut(id) else {
                    continue;
                };
                if !kept.offered(now) || kept.known.contains(&member) {
                    continue;
                }
                let may = match readable.iter().find(|(topic, _)| *topic == kept.topic) {
                    Some((_, may)) => *may,
                    None => {
                        let may = may_read(member, &kept.topic);
                        readable.push((kept.topic.clone(), may));
                        may
                    }
                };
                if !may {
                    continue;
                }
                kept.told(member);
                ids.push(*id);
                if ids.len() == MAX_BATCH_IDS {
                    break;
                }
            }
            if !ids.is_empty() {
                offers.push((member, ids));
            }
        }
        offers
    }

    /// The offer of `ids` to `member` did not go out (its session no longer takes frames): it
    /// is offered them again while they are offered at all.
    pub(crate) fn not_offered(&mut self, member: S, ids: &[ForwardId]) {
        for id in ids {
            if let Some(kept) = self.kept.get_mut(id) {
                kept.known.retain(|m| *m != member);
            }
        }
    }

    /// Of the ids `from` offered, those to ask it for: not `taken` here, and not asked of
    /// another member within [`ASK_AGAIN`]. A kept batch it offered is known to it from now
    /// on. At most [`ASKED_PER_MEMBER`] are outstanding with one member.
    pub(crate) fn wanted(
        &mut self,
        from: S,
        ids: &[ForwardId],
        mut taken: impl FnMut(&ForwardId) -> bool,
        now: Instant,
    ) -> Vec<ForwardId> {
        self.expire(now);
        let mut wanted = Vec::new();
        for id in ids.iter().take(MAX_BATCH_IDS) {
            if let Some(kept) = self.kept.get_mut(id) {
                kept.known_to(from, now);
                continue;
            }
            if self.asked.contains_key(id) || taken(id) {
                continue;
            }
            let outstanding = self.asked_of.entry(from).or_default();
            if *outstanding >= ASKED_PER_MEMBER {
                break;
            }
            *outstanding += 1;
            self.asked.insert(*id, (now, from));
            self.asked_order.push_back((now, *id));
            wanted.push(*id);
        }
        wanted
    }

    /// The batches to send `to` for its want of `ids`: those kept, of topics `may_read` says
    /// it may subscribe to, not sent to it for a want before. Each has no hops left, but for one
    /// that no member had yet, which keeps its own.
    pub(crate) fn answer(
        &mut self,
        to: S,
        ids: &[ForwardId],
        mut may_read: impl FnMut(&Name) -> bool,
        now: Instant,
    ) -> Vec<Forward> {
        self.expire(now);
        let mut batches = Vec::new();
        for id in ids.iter().take(MAX_BATCH_IDS) {
            let Some(kept) = self.kept.get_mut(id) else {
                continue;
            };
            if !kept.kept(now) || kept.answered.contains(&to) || !may_read(&kept.topic) {
                continue;
            }
            let reached = kept.reached.is_some();
            kept.answered.push(to);
            kept.known_to(to, now);
            let mut forward = kept.forward.clone();
            // Passed on only to those of its members that want it, unless it reached no one
            // yet: then it goes into the overlay as sealed, as if it had never been held back.
            if reached {
                forward.hops = 0;
            }
            batches.push(forward);
        }
        batches
    }

    /// The batch `id` verified here, passed on by `from`: whether this node had asked `from`
    /// for it (a repair, rather than a copy that arrived by another path meanwhile).
    pub(crate) fn taken(&mut self, id: &ForwardId, from: S) -> bool {
        let Some((_, of)) = self.asked.remove(id) else {
            return false;
        };
        self.release(of);
        of == from
    }

    /// `member` left: whoever takes its place is not known to have anything.
    pub(crate) fn forget(&mut self, member: S) {
        for kept in self.kept.values_mut() {
            kept.known.retain(|m| *m != member);
            kept.answered.retain(|m| *m != member);
        }
        self.asked_of.remove(&member);
        self.asked.retain(|_, (_, of)| *of != member);
    }

    /// Lets go of batches kept past [`KEEP`] (or [`UNREACHED_FOR`]) and asks older than
    /// [`ASK_AGAIN`]. Batches go in the order they were kept: an unreached one holds those
    /// behind it, within the byte bound, until it goes.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(id) = self.order.front() {
            match self.kept.get(id) {
                Some(kept) if kept.kept(now) => break,
                _ => self.drop_oldest(),
            }
        }
        while let Some((at, id)) = self.asked_order.front() {
            if now.saturating_duration_since(*at) < ASK_AGAIN {
                break;
            }
            // An entry asked again later is the later ask's.
            if let Some((asked_at, of)) = self.asked.get(id).copied()
                && asked_at == *at
            {
                self.asked.remove(id);
                self.release(of);
            }
            self.asked_order.pop_front();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(id) = self.order.pop_front()
            && let Some(kept) = self.kept.remove(&id)
        {
            self.bytes -= kept.bytes();
        }
    }

    fn release(&mut self, member: S) {
        if let Some(outstanding) = self.asked_of.get_mut(&member) {
            *outstanding = outstanding.saturating_sub(1);
            if *outstanding == 0 {
                self.asked_of.remove(&member);
            }
        }
    }

    /// Batches kept.
    pub(crate) fn len(&self) -> usize {
        self.kept.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn batch(n: u8, bytes: usize) -> (ForwardId, Forward) {
        let forward = Forward {
            realm: 0,
            hops: 3,
            batch: Bytes::from(vec![n; bytes]),
            signature: Bytes::from_static(&[0; 64]),
        };
        (weft_wire::forward_id(&forward), forward)
    }

    fn topic(name: &str) -> Name {
        Name::new(name).unwrap()
    }

    #[test]
    fn a_batch_is_offered_once_to_each_member_not_known_to_have_it() {
        let now = Instant::now();
        let mut repair = Repair::default();
        let (id, forward) = batch(1, 100);
        // Came from 1, was passed to 2.
        repair.keep(id, forward, topic("a.b"), vec![1u32, 2], now);

        let offers = repair.offers(&[1, 2, 3, 4], |_, _| true, now + ROUND);
        assert_eq!(offers, vec![(3, vec![id]), (4, vec![id])]);
        assert!(
            repair
                .offers(&[1, 2, 3, 4], |_, _| true, now + 2 * ROUND)
                .is_empty(),
            "offered once"
        );
        // A member that joins later hears of it while it is young enough.
        assert_eq!(
            repair.offers(&[5], |_, _| true, now + 2 * ROUND),
            vec![(5, vec![id])]
        );
        assert!(repair.offers(&[6], |_, _| true, now + OFFER_FOR).is_empty());
    }

    #[test]
    fn only_members_that_may_read_a_topic_are_offered_its_batches_asked_once_per_topic() {
        let now = Instant::now();
        let mut repair = Repair::default();
        let (a1, f1) = batch(1, 10);
        let (a2, f2) = batch(2, 10);
        let (b1, f3) = batch(3, 10);
        repair.keep(a1, f1, topic("a"), vec![], now);
        repair.keep(a2, f2, topic("a"), vec![], now);
        repair.keep(b1, f3, topic("b"), vec![], now);
        let mut asked = Vec::new();
        let offers = repair.offers(
            &[7u32],
            |member, topic| {
                asked.push((member, topic.to_string()));
                topic.as_str() == "b"
            },
            now,
        );
        assert_eq!(offers, vec![(7, vec![b1])]);
        assert_eq!(asked, vec![(7, "a".to_owned()), (7, "b".to_owned())]);
    }

    #[test]
    fn a_member_asks_for_what_it_lacks_once_and_again_after_a_while() {
        let now = Instant::now();
        let mut repair: Repair<u32> = Repair::default();
        let (id, _) = batch(1, 10);
        let (had, _) = batch(2, 10);
        let taken = |x: &ForwardId| *x == had;
        assert_eq!(repair.wanted(1, &[id, had], taken, now), vec![id]);
        assert!(
            repair.wanted(2, &[id], taken, now).is_empty(),
            "asked of 1 already"
        );
        assert_eq!(
            repair.wanted(2, &[id], taken, now + ASK_AGAIN),
            vec![id],
            "1 did not send it in time"
        );
        assert!(repair.taken(&id, 2), "it was asked for");
        assert!(!repair.taken(&id, 2));
        assert!(!repair.taken(&had, 2));
        assert_eq!(repair.wanted(1, &[had], |_| false, now), vec![had]);
        assert!(!repair.taken(&had, 3), "another path was faster");
        assert!(repair.asked_of.is_empty());
    }

    #[test]
    fn a_member_offering_made_up_ids_is_asked_for_a_bounded_number() {
        let now = Instant::now();
        let mut repair: Repair<u32> = Repair::default();
        let mut asked = 0;
        for round in 0..8u32 {
            let ids: Vec<ForwardId> = (0..MAX_BATCH_IDS as u32)
                .map(|i| {
                    let mut id = [0; 16];
                    id[..4].copy_from_slice(&(round * 10_000 + i).to_le_bytes());
                    id
                })
                .collect();
            asked += repair.wanted(9, &ids, |_| false, now).len();
        }
        assert_eq!(asked, ASKED_PER_MEMBER);
        let (id, _) = batch(1, 10);
        assert_eq!(
            repair.wanted(3, &[id], |_| false, now),
            vec![id],
            "other members are still asked"
        );
        // Once the asks expire, the member is asked again.
        assert_eq!(
            repair
                .wanted(9, &[[0xff; 16]], |_| false, now + ASK_AGAIN)
                .len(),
            1
        );
        assert!(repair.asked.len() <= ASKED_PER_MEMBER + 1);
    }

    #[test]
    fn an_offer_of_a_kept_batch_makes_its_member_known_to_have_it() {
        let now = Instant::now();
        let mut repair = Repair::default();
        let (id, forward) = batch(1, 10);
        repair.keep(id, forward, topic("a"), vec![], now);
        assert!(repair.wanted(4u32, &[id], |_| false, now).is_empty());
        assert_eq!(
            repair.offers(&[4, 5], |_, _| true, now),
            vec![(5, vec![id])]
        );
    }

    #[test]
    fn a_want_is_answered_once_per_member_and_only_with_what_it_may_read() {
        let now = Instant::now();
        let mut repair = Repair::default();
        let (id, forward) = batch(1, 10);
        let (secret, hidden) = batch(2, 10);
        repair.keep(id, forward.clone(), topic("a"), vec![], now);
        repair.keep(secret, hidden, topic("secret"), vec![], now);
        let may_read = |t: &Name| t.as_str() != "secret";
        let unknown = [9; 16];
        assert_eq!(
            repair.answer(1u32, &[id, secret, unknown], may_read, now),
            vec![forward.clone()]
        );
        assert!(repair.answer(1, &[id, id], may_read, now).is_empty());
        // The first answer brought it to a member: the next go with no hops left.
        let passed = Forward { hops: 0, ..forward };
        assert_eq!(repair.answer(2, &[id, id], may_read, now), vec![passed]);
        // Answered members are not offered it either.
        assert!(repair.offers(&[1, 2], |_, t| may_read(t), now).is_empty());
    }

    #[test]
    fn batches_are_kept_for_a_while_and_within_a_byte_bound() {
        let now = Instant::now();
        let (one, f1) = batch(1, 1000);
        let size = 1000 + 64 + 1 + ENTRY_BYTES;
        let mut repair = Repair::with_max_bytes(2 * size);
        repair.keep(one, f1, topic("a"), vec![9], now);
        let (two, f2) = batch(2, 1000);
        repair.keep(two, f2, topic("a"), vec![9], now + ROUND);
        let (three, f3) = batch(3, 1000);
        repair.keep(three, f3, topic("a"), vec![9], now + ROUND);
        assert_eq!(repair.len(), 2, "the oldest went first");
        assert!(repair.answer(1u32, &[one], |_| true, now).is_empty());
        assert_eq!(repair.answer(1, &[two], |_| true, now).len(), 1);

        let (huge, f4) = batch(4, 3 * size);
        repair.keep(huge, f4, topic("a"), vec![9], now + ROUND);
        assert_eq!(repair.len(), 2, "larger than the bound: not kept");

        repair.expire(now + ROUND + KEEP);
        assert_eq!(repair.len(), 0);
        assert_eq!(repair.bytes, 0);
    }

    #[test]
    fn a_member_that_left_is_forgotten() {
        let now = Instant::now();
        let mut repair = Repair::default();
        let (id, forward) = batch(1, 10);
        repair.keep(id, forward, topic("a"), vec![3u32], now);
        let (other, _) = batch(2, 10);
        assert_eq!(repair.wanted(3, &[other], |_| false, now), vec![other]);
        repair.forget(3);
        assert_eq!(repair.offers(&[3], |_, _| true, now), vec![(3, vec![id])]);
        assert!(
            !repair.taken(&other, 3),
            "the ask of the member that left went"
        );
        assert!(repair.asked_of.is_empty());
    }

    #[test]
    fn a_batch_no_member_took_is_kept_until_one_has_it() {
        let now = Instant::now();
        let mut repair = Repair::default();
        let (id, forward) = batch(1, 10);
        repair.keep(id, forward, topic("a"), vec![], now);
        let back = now + Duration::from_secs(20);
        assert!(repair.offers(&[], |_, _| true, back).is_empty(), "alone");
        assert_eq!(repair.len(), 1);
        assert_eq!(
            repair.offers(&[1u32], |_, _| true, back),
            vec![(1, vec![id])],
            "the first member back hears of it"
        );
        let later = back + OFFER_FOR;
        assert_eq!(
            repair.offers(&[2], |_, _| true, later),
            vec![(2, vec![id])],
            "an offer is not a delivery: still offered to the next member"
        );
        let had = later + ROUND;
        let sent = repair.answer(1, &[id], |_| true, had);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].hops, 3,
            "it reached no one: into the overlay as sealed"
        );
        let sent = repair.answer(2, &[id], |_| true, had);
        assert_eq!(
            sent[0].hops, 0,
            "the next member passes it on only to those that want it"
        );
        let soon = had + OFFER_FOR - Duration::from_millis(1);
        assert_eq!(repair.offers(&[3], |_, _| true, soon), vec![(3, vec![id])]);
        assert!(repair.offers(&[4], |_, _| true, had + OFFER_FOR).is_empty());
        repair.expire(had + KEEP);
        assert_eq!(repair.len(), 0);

        let (never, forward) = batch(2, 10);
        repair.keep(never, forward, topic("a"), vec![], now);
        repair.expire(now + UNREACHED_FOR - Duration::from_millis(1));
        assert_eq!(repair.len(), 1);
        repair.expire(now + UNREACHED_FOR);
        assert_eq!(repair.len(), 0, "no member came back in time");
    }

    #[test]
    fn an_offer_that_did_not_go_out_is_made_again() {
        let now = Instant::now();
        let mut repair = Repair::default();
        let (id, forward) = batch(1, 10);
        repair.keep(id, forward, topic("a"), vec![9u32], now);
        let offers = repair.offers(&[1], |_, _| true, now);
        assert_eq!(offers, vec![(1, vec![id])]);
        repair.not_offered(1, &[id]);
        assert_eq!(
            repair.offers(&[1], |_, _| true, now + ROUND),
            vec![(1, vec![id])]
        );
        assert!(repair.offers(&[1], |_, _| true, now + 2 * ROUND).is_empty());
    }
}
