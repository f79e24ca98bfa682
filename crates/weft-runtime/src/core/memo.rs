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
    use std::cell::Cell;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    /// Runs `check`, counting the decisions it takes.
    fn check(
        memo: &mut PublishMemo,
        decisions: &Cell<u32>,
        topic: &str,
        (second, epoch, own_chain): (u64, u64, bool),
        allow: bool,
    ) -> bool {
        memo.check(&name(topic), second, epoch, own_chain, || {
            decisions.set(decisions.get() + 1);
            match allow {
                true => Ok(()),
                false => Err(AuthError::Unauthorized("no".into())),
            }
        })
        .is_ok()
    }

    #[test]
    fn one_decision_per_topic_per_second_until_a_revocation() {
        let (mut memo, decisions) = (PublishMemo::default(), Cell::new(0));
        for _ in 0..5 {
            assert!(check(
                &mut memo,
                &decisions,
                "orders.placed",
                (10, 0, false),
                true
            ));
        }
        assert_eq!(decisions.get(), 1);
        assert!(check(
            &mut memo,
            &decisions,
            "orders.placed",
            (11, 0, false),
            true
        ));
        assert_eq!(decisions.get(), 2, "a new second decides again");
        assert!(check(
            &mut memo,
            &decisions,
            "orders.placed",
            (11, 1, false),
            true
        ));
        assert_eq!(decisions.get(), 3, "so does a revocation");
        assert!(check(
            &mut memo,
            &decisions,
            "orders.shipped",
            (11, 1, false),
            true
        ));
        assert!(check(
            &mut memo,
            &decisions,
            "orders.placed",
            (11, 1, false),
            true
        ));
        assert_eq!(decisions.get(), 5, "only the last topic is remembered");
    }

    #[test]
    fn a_refusal_is_never_remembered_and_forgets_the_last_allowed() {
        let (mut memo, decisions) = (PublishMemo::default(), Cell::new(0));
        assert!(check(
            &mut memo,
            &decisions,
            "orders.placed",
            (10, 0, false),
            true
        ));
        assert!(!check(
            &mut memo,
            &decisions,
            "payroll.run",
            (10, 0, false),
            false
        ));
        assert!(!check(
            &mut memo,
            &decisions,
            "payroll.run",
            (10, 0, false),
            false
        ));
        assert_eq!(decisions.get(), 3);
        assert!(check(
            &mut memo,
            &decisions,
            "orders.placed",
            (10, 0, false),
            true
        ));
        assert_eq!(decisions.get(), 4);
    }

    #[test]
    fn a_publication_with_its_own_chain_is_always_decided_and_never_remembered() {
        let (mut memo, decisions) = (PublishMemo::default(), Cell::new(0));
        assert!(check(
            &mut memo,
            &decisions,
            "orders.placed",
            (10, 0, true),
            true
        ));
        assert!(check(
            &mut memo,
            &decisions,
            "orders.placed",
            (10, 0, true),
            true
        ));
        assert_eq!(decisions.get(), 2);
        assert!(check(
            &mut memo,
            &decisions,
            "orders.placed",
            (10, 0, false),
            true
        ));
        assert_eq!(
            decisions.get(),
            3,
            "its answer did not speak for the publisher's chains"
        );
        assert!(!check(
            &mut memo,
            &decisions,
            "orders.placed",
            (10, 0, true),
            false
        ));
        assert_eq!(decisions.get(), 4);
    }
}
