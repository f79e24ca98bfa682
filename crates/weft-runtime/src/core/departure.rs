//! How a member's session ended, and what each way of ending says about the peer: whether it
//! is still up, and whether what it subscribed to is owed to it while it is away.

/// How a member's session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// It said goodbye: it is leaving the mesh.
    Left,
    /// Its membership ended here (a standing grant expired or was revoked): it may be up, but
    /// this node no longer serves it.
    Ended,
    /// One side released the idle session to make room: the peer is up, in its realms, and
    /// reached through other members meanwhile.
    Released,
    /// Without a word: the connection or a stream of it failed. It may come back.
    Lost,
}

impl Departure {
    /// How a session ended, from what its end carried: the peer's goodbye, a `Release` from
    /// either side, or neither.
    pub fn of(said_bye: bool, released: bool) -> Self {
        match (said_bye, released) {
            (true, _) => Departure::Left,
            (false, true) => Departure::Released,
            (false, false) => Departure::Lost,
        }
    }

    /// What its subscriptions match is counted as missed until it is back (`core::absent`):
    /// only a peer that went without a word may be back soon expecting it.
    pub fn abrupt(self) -> bool {
        self == Departure::Lost
    }

    /// Its provider records and routing entry here only lead lookups to a peer that will not
    /// serve them. A released peer is still up and still provides: forgetting it would hide
    /// a live provider from every lookup that passes through this node.
    pub fn records_stale(self) -> bool {
        matches!(self, Departure::Left | Departure::Ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_goodbye_outweighs_a_release() {
        assert_eq!(Departure::of(true, true), Departure::Left);
        assert_eq!(Departure::of(true, false), Departure::Left);
        assert_eq!(Departure::of(false, true), Departure::Released);
        assert_eq!(Departure::of(false, false), Departure::Lost);
    }

    #[test]
    fn a_released_peer_keeps_its_records_and_is_owed_nothing() {
        let released = Departure::Released;
        assert!(!released.records_stale(), "it is up and still provides");
        assert!(!released.abrupt(), "other members carry its subscriptions");
    }

    #[test]
    fn only_a_peer_lost_without_a_word_is_owed_what_it_missed() {
        assert!(Departure::Lost.abrupt());
        assert!(
            !Departure::Lost.records_stale(),
            "it may be back in a moment"
        );
        for gone in [Departure::Left, Departure::Ended] {
            assert!(!gone.abrupt());
            assert!(gone.records_stale());
        }
    }
}
