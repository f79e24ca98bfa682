//! How a session hands on what a peer sent: frame by frame, in the order read, except that each
//! run of consecutive publications of one realm goes on as one batch. A batch is one message to
//! the router, one authorization per run of one topic, and one sequence lookup.

use std::collections::VecDeque;

use weft_wire::{Frame, Publish, RealmIndex};

/// The next thing to hand on.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// Consecutive publications of one realm, in order.
    Publishes(RealmIndex, Vec<Publish>),
    /// Any other frame.
    Frame(Frame),
}

/// Takes the next step off the front of `frames`, if there is one.
pub(crate) fn next_step(frames: &mut VecDeque<Frame>) -> Option<Step> {
    let first = match frames.pop_front()? {
        Frame::Publish(first) => first,
        other => return Some(Step::Frame(other)),
    };
    let realm = first.realm;
    let mut run = vec![first];
    while let Some(Frame::Publish(next)) = frames.front()
        && next.realm == realm
    {
        if let Some(Frame::Publish(next)) = frames.pop_front() {
            run.push(next);
        }
    }
    Some(Step::Publishes(realm, run))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use weft_names::Name;
    use weft_wire::Interest;

    fn publish(realm: RealmIndex, seq: u64) -> Publish {
        Publish {
            realm,
            topic: Name::new("orders.placed").unwrap(),
            seq,
            payload: Bytes::new(),
            chain: None,
        }
    }

    #[test]
    fn a_run_of_one_realm_goes_as_one_batch_and_anything_else_ends_it() {
        let unsubscribe = Frame::Interest(Interest::Unsubscribe { realm: 0, id: 1 });
        let mut frames: VecDeque<Frame> = [
            Frame::Publish(publish(0, 1)),
            Frame::Publish(publish(0, 2)),
            Frame::Publish(publish(1, 1)),
            Frame::Publish(publish(0, 3)),
            unsubscribe.clone(),
            Frame::Publish(publish(0, 4)),
        ]
        .into();
        let steps: Vec<Step> = std::iter::from_fn(|| next_step(&mut frames)).collect();
        assert_eq!(
            steps,
            [
                Step::Publishes(0, vec![publish(0, 1), publish(0, 2)]),
                Step::Publishes(1, vec![publish(1, 1)]),
                Step::Publishes(0, vec![publish(0, 3)]),
                Step::Frame(unsubscribe),
                Step::Publishes(0, vec![publish(0, 4)]),
            ],
            "in the order read"
        );
        assert!(frames.is_empty());
    }
}
