//! When a realm's calls look their procedure's providers up in the DHT.
//!
//! A call that knows no provider asks for a lookup. Those found are dialed, and a provider's
//! advertisement, once its session is admitted, wakes the call. But a lookup can find none (a
//! record just placed has not reached the peers it asks) or only providers that refuse a
//! session for room. So while a call still waits, the lookup is made again, up to
//! [`AGAIN`] more times (the network skips providers that refused this node lately, and dials
//! others). Calls that wait for one procedure together share one such round: a hundred calls
//! made at once cost the walks of one.
//!
//! Drive it: [`start`](Lookups::start) when a call asks, look up if it says so; when that
//! lookup ends, [`ended`](Lookups::ended) says whether to look again after a pause; at the end
//! of that pause, [`again`](Lookups::again) says whether a call still wants it.

use std::collections::HashMap;

use weft_names::Name;

/// Lookups made again in one round, while a call still waits.
pub(crate) const AGAIN: u32 = 3;

/// The rounds of lookups under way, by procedure: how many more each may make.
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    rounds: HashMap<Name, u32>,
}

impl Lookups {
    /// A call to `procedure` wants its providers: whether to look them up now (false when a
    /// round for it is under way, which the call shares).
    pub(crate) fn start(&mut self, procedure: &Name) -> bool {
        if self.rounds.contains_key(procedure) {
            return false;
        }
        self.rounds.insert(procedure.clone(), AGAIN);
        true
    }

    /// A lookup of `procedure` ended, and a call to it still waits or not: whether to look
    /// again after a pause. Otherwise the round is over.
    pub(crate) fn ended(&mut self, procedure: &Name, waiting: bool) -> bool {
        match self.rounds.get_mut(procedure) {
            Some(left) if waiting && *left > 0 => {
                *left -= 1;
                true
            }
            _ => {
                self.rounds.remove(procedure);
                false
            }
        }
    }

    /// The pause after a lookup of `procedure` is over: whether to look again, if a call still
    /// waits. Otherwise the round is over.
    pub(crate) fn again(&mut self, procedure: &Name, waiting: bool) -> bool {
        if !waiting {
            self.rounds.remove(procedure);
        }
        waiting && self.rounds.contains_key(procedure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get() -> Name {
        Name::new("get").unwrap()
    }

    #[test]
    fn calls_waiting_together_share_one_round() {
        let mut lookups = Lookups::default();
        assert!(lookups.start(&get()));
        assert!(
            !lookups.start(&get()),
            "the second call shares the first's round"
        );
        assert!(
            lookups.start(&Name::new("put").unwrap()),
            "another procedure"
        );
    }

    #[test]
    fn a_round_looks_again_while_a_call_waits_then_ends() {
        let mut lookups = Lookups::default();
        lookups.start(&get());
        for _ in 0..AGAIN {
            assert!(lookups.ended(&get(), true));
            assert!(lookups.again(&get(), true));
        }
        assert!(!lookups.ended(&get(), true), "at most AGAIN more lookups");
        assert!(lookups.start(&get()), "a later call starts a new round");
    }

    #[test]
    fn a_round_ends_once_no_call_waits() {
        let mut lookups = Lookups::default();
        lookups.start(&get());
        assert!(
            !lookups.ended(&get(), false),
            "answered: no need to look again"
        );
        assert!(lookups.start(&get()));
        assert!(lookups.ended(&get(), true));
        assert!(!lookups.again(&get(), false), "answered during the pause");
        assert!(lookups.start(&get()), "the round is over");
    }
}
