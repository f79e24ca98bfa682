//! One publication's way to its subscribers: directly over the publisher's sessions, and, where
//! `forward::to_overlay` says so, as a batch through the members' sessions, each member passing
//! it on as `forward::next_hops` picks, for at most `forward::HOPS` hops, a second copy dropped
//! on arrival. The router's interest tables are a bit per topic here.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use weft_wire::ForwardId;

use super::links::Links;
use crate::core::forward::{self, HOPS};

/// What one publication cost and reached.
#[derive(Debug, Default, Clone)]
pub(crate) struct Delivery {
    /// Subscribers (not crashed) whose interest covers the topic.
    pub(crate) expected: usize,
    /// Of those, how many got it.
    pub(crate) delivered: usize,
    /// Publications and batches sent.
    pub(crate) messages: u64,
    /// Copies that arrived where one had arrived already, and were dropped.
    pub(crate) suppressed: u64,
    /// When each subscriber got it.
    pub(crate) latencies: Vec<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Carried {
    Publication,
    Batch { from: u32, hops: u8 },
}

/// Messages on their way, in the order they arrive.
#[derive(Debug, Default)]
struct Wire {
    arrivals: BinaryHeap<Reverse<(Duration, u64, u32, Carried)>>,
    sent: u64,
}

impl Wire {
    fn send(
        &mut self,
        links: &mut Links,
        at: Duration,
        to: u32,
        carried: Carried,
        delivery: &mut Delivery,
    ) {
        delivery.messages += 1;
        self.sent += 1;
        let arrives = at + links.one_way();
        self.arrivals
            .push(Reverse((arrives, self.sent, to, carried)));
    }
}

/// Delivers a publication of `publisher`'s to the topic whose bit is `topic` in `interests`,
/// into the overlay as well if `overlay`.
pub(crate) fn publish(
    links: &mut Links,
    interests: &[u8],
    topic: u8,
    publisher: u32,
    overlay: bool,
    id: &ForwardId,
) -> Delivery {
    let bit = 1u8 << topic;
    let wants = |node: u32| interests[node as usize] & bit != 0;
    let mut delivery = Delivery {
        expected: (0..links.nodes())
            .filter_map(|i| u32::try_from(i).ok())
            .filter(|i| !links.crashed(*i) && wants(*i))
            .count(),
        ..Delivery::default()
    };
    let mut got = vec![false; links.nodes()];
    let mut seen = vec![false; links.nodes()];
    let mut wire = Wire::default();

    if wants(publisher) {
        got[publisher as usize] = true;
        delivery.delivered += 1;
        delivery.latencies.push(Duration::ZERO);
    }
    let sessions: Vec<u32> = links.sessions(publisher).collect();
    for &peer in &sessions {
        if wants(peer) {
            wire.send(
                links,
                Duration::ZERO,
                peer,
                Carried::Publication,
                &mut delivery,
            );
        }
    }
    if overlay {
        seen[publisher as usize] = true;
        // Members that want it had it directly: the batch is for those beyond them.
        let candidates: Vec<(u32, bool)> = sessions.iter().map(|s| (*s, false)).collect();
        for next in forward::next_hops(&candidates, None, None, id, |_| true) {
            let batch = Carried::Batch {
                from: publisher,
                hops: HOPS,
            };
            wire.send(links, Duration::ZERO, next, batch, &mut delivery);
        }
    }

    while let Some(Reverse((at, _, to, carried))) = wire.arrivals.pop() {
        if links.crashed(to) {
            continue;
        }
        let fresh = !got[to as usize] && wants(to);
        match carried {
            Carried::Publication => {
                if fresh {
                    got[to as usize] = true;
                    delivery.delivered += 1;
                    delivery.latencies.push(at);
                } else {
                    delivery.suppressed += 1;
                }
            }
            Carried::Batch { from, hops } => {
                if seen[to as usize] {
                    delivery.suppressed += 1;
                    continue;
                }
                seen[to as usize] = true;
                if fresh {
                    got[to as usize] = true;
                    delivery.delivered += 1;
                    delivery.latencies.push(at);
                }
                let candidates: Vec<(u32, bool)> =
                    links.sessions(to).map(|s| (s, wants(s))).collect();
                let next: Vec<u32> = match hops.checked_sub(1) {
                    Some(_) => {
                        forward::next_hops(&candidates, Some(from), Some(publisher), id, |_| true)
                    }
                    None => candidates
                        .iter()
                        .filter(|(s, interested)| *interested && *s != from && *s != publisher)
                        .map(|(s, _)| *s)
                        .collect(),
                };
                for peer in next {
                    let batch = Carried::Batch {
                        from: to,
                        hops: hops.saturating_sub(1),
                    };
                    wire.send(links, at, peer, batch, &mut delivery);
                }
            }
        }
    }
    delivery
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring of `n` nodes, each in session with its two neighbours.
    fn ring(n: u32) -> Links {
        let mut links = Links::new(n as usize, 16, Duration::from_millis(10), 0.0, 1);
        for i in 0..n {
            links.open_session(i, (i + 1) % n, 8);
        }
        links
    }

    #[test]
    fn direct_sessions_reach_only_the_publishers_neighbours() {
        let mut links = ring(10);
        let interests = vec![1u8; 10];
        let d = publish(&mut links, &interests, 0, 0, false, &[0; 16]);
        assert_eq!((d.expected, d.delivered, d.messages), (10, 3, 2));
    }

    #[test]
    fn the_overlay_reaches_every_subscriber_within_its_hops_and_drops_second_copies() {
        let mut links = ring(16);
        let interests: Vec<u8> = (0..16).map(|i| u8::from(i % 2 == 0)).collect();
        let d = publish(&mut links, &interests, 0, 0, true, &[0; 16]);
        assert_eq!(d.delivered, d.expected);
        // Through members that do not want it, a batch goes at most HOPS hops.
        let mut interests = vec![0u8; 40];
        interests[8] = 1;
        interests[20] = 1;
        let far = publish(&mut ring(40), &interests, 0, 0, true, &[0; 16]);
        assert_eq!(
            (far.expected, far.delivered),
            (2, 1),
            "node 20 is past {HOPS} hops"
        );
    }

    #[test]
    fn a_crashed_member_holds_back_what_only_it_would_have_passed_on() {
        let mut links = ring(8);
        links.crash(4);
        let d = publish(&mut links, &[1u8; 8], 0, 0, true, &[0; 16]);
        assert_eq!(d.expected, 7);
        assert_eq!(d.delivered, 7, "the other way round");
        let mut line = Links::new(4, 16, Duration::from_millis(10), 0.0, 1);
        line.open_session(0, 1, 8);
        line.open_session(1, 2, 8);
        line.open_session(2, 3, 8);
        line.crash(2);
        let cut = publish(&mut line, &[1, 1, 1, 1], 0, 0, true, &[0; 16]);
        assert_eq!((cut.expected, cut.delivered), (3, 2));
    }
}
