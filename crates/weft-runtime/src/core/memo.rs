//! A remembered "allowed" for one publisher's publications: the last topic it was allowed to
//! publish to, under the chains it holds, within one second of the clock and while no token has
//! been revoked since. A publisher streaming to one topic is then authorized once a second (or
//! once per batch read from a peer), not once per publication.
//!
//! Read the revocation epoch *before* deciding and pass that to [`PublishMemo::check`]: a
//! revocation racing the decision then voids what is remembered.

use weft_auth::AuthError;
use weft_names::Name;

/// The last allowed topic of one publisher, and when.
#[derive(Debug, Default)]
pub(crate) struct PublishMemo {
    last: Option<Remembered>,
}

#[derive(Debug, PartialEq, Eq)]
struct Remembered {
    topic: Name,
    second: u64,
    epoch: u64,
}

impl PublishMemo {
    /// Authorizes a publication to `topic` at `second` (Unix seconds), under revocation `epoch`:
    /// `decide` runs unless the same topic was allowed within the same second and epoch. A
    /// publication carrying a chain of its own (`own_chain`) is always decided, and its answer
    /// is not remembered: it speaks for that chain alone. A refusal forgets what was
    /// remembered.
    pub(crate) fn check(
        &mut self,
        topic: &Name,
        second: u64,
        epoch: u64,
        own_chain: bool,
        decide: impl FnOnce() -> Result<(), AuthError>,
    ) -> Result<(), AuthError> {
        let known = !own_chain
            && self.last.as_ref().is_some_and(|last| {
                last.second == second && last.epoch == epoch && last.topic == *topic
            });
        if known {
            return Ok(());
        }
        match decide() {
            Ok(()) => {
                if !own_chain {
                    self.last = Some(Remembered {
                        topic: topic.clone(),
                        second,
                        epoch,
                    });
                }
                Ok(())
            }
            Err(e) => {
                self.last = None;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memo, and how many decisions it asked for.
    #[derive(Default)]
    struct Probe {
        memo: PublishMemo,
        decisions: u32,
    }

    impl Probe {
        /// A publication to `topic` at `second` under `epoch`, carrying its own chain or not;
        /// `allow` is what a decision would say. Returns whether it is allowed.
        fn ask(
            &mut self,
            topic: &str,
            (second, epoch): (u64, u64),
            own_chain: bool,
            allow: bool,
        ) -> bool {
            let decisions = &mut self.decisions;
            let topic = Name::new(topic).unwrap();
            self.memo
                .check(&topic, second, epoch, own_chain, || {
                    *decisions += 1;
                    match allow {
                        true => Ok(()),
                        false => Err(AuthError::Unauthorized("no".into())),
                    }
                })
                .is_ok()
        }
    }

    const ALLOW: bool = true;
    const REFUSE: bool = false;
    const HELLO: bool = false;
    const OWN: bool = true;

    #[test]
    fn one_decision_per_topic_per_second_until_a_revocation() {
        let mut p = Probe::default();
        for _ in 0..5 {
            assert!(p.ask("orders.placed", (10, 0), HELLO, ALLOW));
        }
        assert_eq!(p.decisions, 1);
        assert!(p.ask("orders.placed", (11, 0), HELLO, ALLOW));
        assert_eq!(p.decisions, 2, "a new second decides again");
        assert!(p.ask("orders.placed", (11, 1), HELLO, ALLOW));
        assert_eq!(p.decisions, 3, "so does a revocation");
        assert!(p.ask("orders.shipped", (11, 1), HELLO, ALLOW));
        assert!(p.ask("orders.placed", (11, 1), HELLO, ALLOW));
        assert_eq!(p.decisions, 5, "only the last topic is remembered");
    }

    #[test]
    fn a_refusal_is_never_remembered_and_forgets_the_last_allowed() {
        let mut p = Probe::default();
        assert!(p.ask("orders.placed", (10, 0), HELLO, ALLOW));
        assert!(!p.ask("payroll.run", (10, 0), HELLO, REFUSE));
        assert!(!p.ask("payroll.run", (10, 0), HELLO, REFUSE));
        assert_eq!(p.decisions, 3);
        assert!(p.ask("orders.placed", (10, 0), HELLO, ALLOW));
        assert_eq!(p.decisions, 4);
    }

    #[test]
    fn a_publication_with_its_own_chain_is_always_decided_and_never_remembered() {
        let mut p = Probe::default();
        assert!(p.ask("orders.placed", (10, 0), OWN, ALLOW));
        assert!(p.ask("orders.placed", (10, 0), OWN, ALLOW));
        assert_eq!(p.decisions, 2);
        assert!(p.ask("orders.placed", (10, 0), HELLO, ALLOW));
        assert_eq!(
            p.decisions, 3,
            "its answer did not speak for the publisher's chains"
        );
        assert!(!p.ask("orders.placed", (10, 0), OWN, REFUSE));
        assert_eq!(p.decisions, 4);
    }
}
