//! Which session makes room for a new one. A node holds at most [`session_cap`] sessions, below
//! its connection budget, so that Kademlia's short connections always find room. Past it, a new
//! session takes the place of another, released with a `Release` frame (the peer stays up and in
//! its realms, and reconnects when it has something to send): first one whose peer this node has
//! not admitted to any realm though it had time to be (identities are free, and a stranger's
//! sessions must not hold members' places), then the session idle longest. A session is idle
//! once nothing but keep-alives crossed it for a while (`limits.idle_session`, 30 s by default);
//! a client's is never released (this node is its only way into the mesh). With nothing to let
//! go, the new one is refused.
//!
//! The supervisor drives it: [`Sessions::start`] when a session is to start (it answers what to
//! release, or that there is no room), [`Sessions::active`] from its sweep of the sessions'
//! activity flags, [`Sessions::keep`] once a client is admitted, [`Sessions::admitted`] once
//! it is admitted to a realm, [`Sessions::end`] when a session ends, and [`Sessions::released`]
//! when a session was released (by either side), after which [`Sessions::cooling`] says not to
//! start one with that peer for the sake of membership alone for a while.
//! [`Sessions::restart`] when a session ends to start again in place of itself, which says
//! whether it may.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Sessions a node holds within `max_connections` connections, and at least one. The rest is
/// Kademlia's: a quarter of the budget, and at least 8 or half of it, so that a small budget
/// still leaves a query (and a provider record's replicas, see `weft-net`) room to work.
pub(crate) fn session_cap(max_connections: u32) -> usize {
    let max = usize::try_from(max_connections).unwrap_or(usize::MAX);
    let kademlia = (max / 4).max((max / 2).min(8));
    max.saturating_sub(kademlia).max(1)
}

/// How long a peer a session was released with is not asked for a session just to make up
/// the mesh: as long as membership lookups leave it alone (`weft-net`'s `RELEASED_FOR`).
pub(crate) const COOLING: Duration = Duration::from_secs(2 * 60);
/// Released peers remembered at most; past it the oldest is forgotten.
pub(crate) const MAX_COOLING: usize = 1024;
/// How long after a session with a peer started again in place of the last one (a stream of
/// it was lost while the connection stayed, or the peer started a new one) the next session
/// with that peer may not: it then ends as any other, connection and all. A peer that keeps
/// losing streams, or starting sessions, costs a session's handshake at most this often.
pub(crate) const RESTART_EVERY: Duration = Duration::from_secs(30);

/// What [`Sessions::start`] asks of the caller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Room<P> {
    /// The session starts.
    Free,
    /// The session starts in place of this one, to be released.
    Release(P),
    /// No room: the new session is refused.
    Full,
}

#[derive(Debug)]
struct Held {
    /// When it started.
    started: Instant,
    /// When it last carried something (or started).
    active: Instant,
    /// Never released: a client's.
    keep: bool,
    /// Its peer is a member of one of this node's realms.
    admitted: bool,
}

/// The sessions held, with when each was last active.
#[derive(Debug)]
pub(crate) struct Sessions<P> {
    cap: usize,
    /// How long a session carries nothing before it may be released.
    idle_after: Duration,
    /// How long a peer has to be admitted before its session may be released.
    grace: Duration,
    held: HashMap<P, Held>,
    /// Peers a session was released with, and when, oldest first.
    cooling: VecDeque<(P, Instant)>,
    /// Peers a session started again with, and when, oldest first.
    restarts: VecDeque<(P, Instant)>,
}

impl<P: Copy + Eq + Hash + Ord> Sessions<P> {
    /// At most `cap` sessions; one that carried nothing for `idle_after`, or whose peer was not
    /// admitted within `grace`, may be released.
    pub(crate) fn new(cap: usize, idle_after: Duration, grace: Duration) -> Self {
        Self {
            cap: cap.max(1),
            idle_after,
            grace,
            held: HashMap::new(),
            cooling: VecDeque::new(),
            restarts: VecDeque::new(),
        }
    }

    /// The session to release for a new one at `now`, if any.
    fn victim(&self, now: Instant) -> Option<P> {
        let stranger = self
            .held
            .iter()
            .filter(|(_, h)| {
                !h.keep && !h.admitted && now.saturating_duration_since(h.started) >= self.grace
            })
            .min_by_key(|(p, h)| (h.started, **p))
            .map(|(p, _)| *p);
        // Idle longest first; among equals, the lowest peer, so the choice is reproducible.
        stranger.or_else(|| {
            self.held
                .iter()
                .filter(|(_, h)| {
                    !h.keep && now.saturating_duration_since(h.active) >= self.idle_after
                })
                .min_by_key(|(p, h)| (h.active, **p))
                .map(|(p, _)| *p)
        })
    }

    /// A session with `peer` is to start at `now`. Unless refused ([`Room::Full`]) it is held
    /// from now on, and whatever [`Room::Release`] names is no longer.
    pub(crate) fn start(&mut self, peer: P, now: Instant) -> Room<P> {
        if self.held.contains_key(&peer) {
            return Room::Free;
        }
        let room = if self.held.len() < self.cap {
            Room::Free
        } else {
            match self.victim(now) {
                Some(victim) => {
                    self.held.remove(&victim);
                    Room::Release(victim)
                }
                None => return Room::Full,
            }
        };
        self.held.insert(
            peer,
            Held {
                started: now,
                active: now,
                keep: false,
                admitted: false,
            },
        );
        room
    }

    /// `peer`'s session carried something since the last sweep, which ran at `now`.
    pub(crate) fn active(&mut self, peer: &P, now: Instant) {
        if let Some(held) = self.held.get_mut(peer) {
            held.active = now;
        }
    }

    /// `peer` is an admitted client of this node: its session is never released, unless half
    /// the sessions are kept already (then it is released when idle, as a member's is), so
    /// that clients cannot take every place.
    pub(crate) fn keep(&mut self, peer: &P) {
        let kept = self.held.values().filter(|h| h.keep).count();
        if kept >= self.cap / 2 {
            return;
        }
        if let Some(held) = self.held.get_mut(peer) {
            held.keep = true;
        }
    }

    /// `peer` was admitted to one of this node's realms.
    pub(crate) fn admitted(&mut self, peer: &P) {
        if let Some(held) = self.held.get_mut(peer) {
            held.admitted = true;
        }
    }

    /// A session with `peer` was released at `now`, by either side.
    pub(crate) fn released(&mut self, peer: P, now: Instant) {
        self.cooling.retain(|(p, _)| *p != peer);
        if self.cooling.len() >= MAX_COOLING {
            self.cooling.pop_front();
        }
        self.cooling.push_back((peer, now));
    }

    /// Whether a session with `peer` was released less than [`COOLING`] before `now`: a node
    /// short of members does not start one on a connection Kademlia made with it (the peer
    /// would release it, or another, again).
    pub(crate) fn cooling(&mut self, peer: &P, now: Instant) -> bool {
        while self
            .cooling
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= COOLING)
        {
            self.cooling.pop_front();
        }
        self.cooling.iter().any(|(p, _)| p == peer)
    }

    /// `peer`'s session ended at `now` to start again in place of itself: whether it may,
    /// recorded if so. It may unless the session was released to make room (no longer held:
    /// starting again would take a place once more, from another) or another started again in
    /// place of itself less than [`RESTART_EVERY`] before. Call before [`Sessions::end`].
    pub(crate) fn restart(&mut self, peer: P, now: Instant) -> bool {
        while self
            .restarts
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= RESTART_EVERY)
        {
            self.restarts.pop_front();
        }
        if !self.held.contains_key(&peer) || self.restarts.iter().any(|(p, _)| *p == peer) {
            return false;
        }
        if self.restarts.len() >= MAX_COOLING {
            self.restarts.pop_front();
        }
        self.restarts.push_back((peer, now));
        true
    }

    /// Whether a session with `peer` is held (not ended, nor released to make room).
    pub(crate) fn holds(&self, peer: &P) -> bool {
        self.held.contains_key(peer)
    }

    /// `peer`'s session ended.
    pub(crate) fn end(&mut self, peer: &P) {
        self.held.remove(peer);
    }

    /// Sessions held.
    /// Every session this node may hold is held: a new one would release one or be refused.
    pub(crate) fn full(&self) -> bool {
        self.held.len() >= self.cap
    }

    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE_AFTER: Duration = Duration::from_secs(30);
    const GRACE: Duration = Duration::from_secs(5);

    /// `cap` sessions whose peers are admitted as soon as they start.
    fn sessions(cap: usize) -> Sessions<u32> {
        Sessions::new(cap, IDLE_AFTER, GRACE)
    }

    fn start(sessions: &mut Sessions<u32>, peer: u32, now: Instant) -> Room<u32> {
        let room = sessions.start(peer, now);
        sessions.admitted(&peer);
        room
    }

    #[test]
    fn kademlia_keeps_a_share_of_the_connections() {
        assert_eq!(session_cap(1024), 768, "a quarter");
        assert_eq!(session_cap(64), 48);
        assert_eq!(session_cap(16), 8, "8 at least");
        assert_eq!(session_cap(8), 4, "half of a small budget");
        assert_eq!(session_cap(6), 3);
        assert_eq!(session_cap(1), 1);
        assert_eq!(session_cap(0), 1);
    }

    #[test]
    fn sessions_start_freely_below_the_cap() {
        let now = Instant::now();
        let mut sessions = sessions(2);
        assert_eq!(start(&mut sessions, 1, now), Room::Free);
        assert!(!sessions.full());
        assert_eq!(start(&mut sessions, 2, now), Room::Free);
        assert_eq!(start(&mut sessions, 2, now), Room::Free, "already held");
        assert_eq!(sessions.len(), 2);
        assert!(sessions.full(), "a new one would have to take a place");
    }

    #[test]
    fn past_the_cap_the_session_idle_longest_makes_room() {
        let t0 = Instant::now();
        let mut sessions = sessions(3);
        start(&mut sessions, 1, t0);
        start(&mut sessions, 2, t0);
        start(&mut sessions, 3, t0);
        let later = t0 + IDLE_AFTER + Duration::from_secs(5);
        sessions.active(&1, t0 + Duration::from_secs(5)); // 1 carried something after the others
        assert_eq!(
            start(&mut sessions, 4, later),
            Room::Release(2),
            "2 and 3 tie: the lower"
        );
        assert_eq!(start(&mut sessions, 5, later), Room::Release(3));
        assert_eq!(
            start(&mut sessions, 6, later),
            Room::Release(1),
            "idle too by now"
        );
        assert_eq!(sessions.len(), 3);
    }

    #[test]
    fn a_session_that_carried_something_lately_is_not_released() {
        let t0 = Instant::now();
        let mut sessions = sessions(1);
        start(&mut sessions, 1, t0);
        let soon = t0 + IDLE_AFTER - Duration::from_secs(1);
        assert_eq!(
            start(&mut sessions, 2, soon),
            Room::Full,
            "1 is not idle yet"
        );
        assert_eq!(sessions.len(), 1, "the refused one is not held");
        sessions.active(&1, soon);
        assert_eq!(start(&mut sessions, 2, soon + IDLE_AFTER / 2), Room::Full);
        assert_eq!(
            start(&mut sessions, 2, soon + IDLE_AFTER),
            Room::Release(1),
            "idle since its last activity"
        );
    }

    #[test]
    fn clients_are_kept_up_to_half_the_sessions() {
        let t0 = Instant::now();
        let mut held = sessions(4);
        for peer in 1..=3 {
            start(&mut held, peer, t0);
            held.keep(&peer);
        }
        start(&mut held, 4, t0);
        let later = t0 + IDLE_AFTER * 2;
        assert_eq!(
            start(&mut held, 5, later),
            Room::Release(3),
            "the third client is not kept"
        );
        assert_eq!(start(&mut held, 6, later), Room::Release(4));
        assert_eq!(start(&mut held, 7, later), Room::Full, "two clients kept");
    }

    #[test]
    fn a_clients_session_is_never_released() {
        let t0 = Instant::now();
        let mut sessions = sessions(2);
        start(&mut sessions, 1, t0);
        sessions.keep(&1);
        start(&mut sessions, 2, t0);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(start(&mut sessions, 3, later), Room::Release(2));
        assert_eq!(
            start(&mut sessions, 4, later),
            Room::Full,
            "1 is kept, 3 is new"
        );
        sessions.end(&1);
        assert_eq!(start(&mut sessions, 4, later), Room::Free);
    }

    #[test]
    fn a_stranger_past_its_grace_goes_before_any_member() {
        let t0 = Instant::now();
        let mut held = sessions(2);
        start(&mut held, 1, t0); // a member, idle for ages below
        assert_eq!(held.start(2, t0), Room::Free); // never admitted
        let later = t0 + IDLE_AFTER * 2;
        assert_eq!(start(&mut held, 3, later), Room::Release(2));
        // Within its grace, a new peer is not a stranger yet: the idle member goes.
        let mut held = sessions(2);
        start(&mut held, 1, t0);
        assert_eq!(held.start(2, later - GRACE / 2), Room::Free);
        assert_eq!(start(&mut held, 3, later), Room::Release(1));
    }

    #[test]
    fn a_released_peer_cools_for_a_while() {
        let t0 = Instant::now();
        let mut held = sessions(2);
        held.released(7, t0);
        assert!(held.cooling(&7, t0 + COOLING / 2));
        assert!(!held.cooling(&8, t0));
        assert!(!held.cooling(&7, t0 + COOLING), "cooled");
        for peer in 0..u32::try_from(MAX_COOLING).unwrap() + 1 {
            held.released(peer, t0);
        }
        assert!(
            !held.cooling(&0, t0),
            "the oldest is forgotten past the bound"
        );
        assert!(held.cooling(&1, t0));
    }

    #[test]
    fn a_session_starts_again_in_place_of_itself_once_in_a_while() {
        let t0 = Instant::now();
        let mut held = sessions(4);
        for peer in [7, 8] {
            start(&mut held, peer, t0);
        }
        assert!(held.restart(7, t0));
        assert!(!held.restart(7, t0 + RESTART_EVERY / 2), "once in a while");
        assert!(held.restart(8, t0), "another peer is not held back");
        assert!(held.restart(7, t0 + RESTART_EVERY));
        assert!(
            !held.restart(9, t0),
            "not held: released to make room, or never started"
        );
    }

    #[test]
    fn the_peers_that_started_again_are_bounded() {
        let t0 = Instant::now();
        let cap = MAX_COOLING + 1;
        let mut held = sessions(cap);
        for peer in 0..u32::try_from(cap).unwrap() {
            start(&mut held, peer, t0);
            assert!(held.restart(peer, t0));
        }
        assert!(
            held.restart(0, t0),
            "the oldest is forgotten past the bound"
        );
        // That pushed out the next oldest (1); the one after is still remembered.
        assert!(!held.restart(2, t0));
    }
}
