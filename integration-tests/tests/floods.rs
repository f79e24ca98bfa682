//! A member flooding a realm with subscriptions: they are capped per peer, the peer is told once,
//! and the other members are served as before. Alone in its binary, so that no other test's
//! work is counted in the latencies it measures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::{Duration, Instant};

use serde_json::json;
use weft::Node;
use weft_integration_tests::{RawPeer, next_event, shutdown, within};
use weft_wire::{Frame, Interest};

/// Subscriptions the flood sends.
const FLOOD: u32 = 100_000;
/// Publications timed for each latency sample.
const SAMPLES: usize = 200;

/// The median time from publishing at `from` to the event at `to`, one publication at a time.
async fn latency(from: &weft::RealmHandle, to: &mut weft::Subscription) -> Duration {
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let sent = Instant::now();
        from.publish("orders.placed", &json!(i)).await.unwrap();
        next_event(to).await;
        samples.push(sent.elapsed());
    }
    samples.sort_unstable();
    samples[SAMPLES / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_subscriptions_is_capped_and_others_are_served_as_before() {
    let hub = Node::builder().open_realm("dev").start().await.unwrap();
    let member = Node::builder()
        .bootstrap(hub.listen_addrs()[0].to_string())
        .open_realm("dev")
        .start()
        .await
        .unwrap();
    let dev = hub.realm("dev").unwrap();
    let mut orders = member
        .realm("dev")
        .unwrap()
        .subscribe("orders.*")
        .await
        .unwrap();
    within(
        "the member's subscription",
        dev.wait_for_subscriber("orders.placed"),
    )
    .await
    .unwrap();
    let before = latency(&dev, &mut orders).await;

    // The control: the same flood, in a realm the sender never joined, which the node drops
    // unread. It costs what sending, carrying and decoding the frames cost on these two cores,
    // and nothing of what holding or refusing subscriptions costs.
    let idle = RawPeer::join_open(&hub, "dev").await;
    let flood = tokio::spawn(flood_of_subscriptions(idle, 7));
    let control = latency(&dev, &mut orders).await;
    within("the control flood", flood)
        .await
        .unwrap()
        .close()
        .await;

    // Wildcard-first patterns that never match: the costliest kind to hold. Latency is measured
    // while they arrive.
    let flooder = RawPeer::join_open(&hub, "dev").await;
    let flood = tokio::spawn(flood_of_subscriptions(flooder, 0));
    let during = latency(&dev, &mut orders).await;
    let flooding = !flood.is_finished();
    let mut flooder = within("the flood", flood).await.unwrap();
    let read = flooder
        .read_until(|f| matches!(f, Frame::Denied(d) if d.code == "limit"))
        .await;
    let denials = read
        .iter()
        .filter(|f| matches!(f, Frame::Denied(_)))
        .count();
    assert_eq!(denials, 1, "told once, not once per refused subscription");
    let stats = dev.stats().await;
    assert!(
        stats.remote_subscriptions <= 10_000 + 1,
        "capped: {}",
        stats.remote_subscriptions
    );
    eprintln!(
        "median publication latency: {before:?} quiet, {control:?} during the control flood, \
         {during:?} during the flood (still flooding at the end: {flooding}); {} subscriptions \
         held for the flooder",
        stats.remote_subscriptions - 1
    );
    // The flooder runs in this process, on the same two cores, so its own sending shows in the
    // latency; the control shows how much. The node's share (holding 10,000 subscriptions,
    // refusing 90,000) measured 1.2-2.7x the control here, too noisy on two shared cores to
    // hold to 2x, so the bound is on the whole: within 3x of quiet, or of the control when the
    // machine was slower then (the control's own cost varies as much as the node's share).
    assert!(
        during < before.max(control) * 3 + Duration::from_millis(1),
        "{during:?} with the flood, {before:?} without, {control:?} during the control"
    );
    flooder.close().await;
    shutdown(&[member, hub]).await;
}

/// Sends [`FLOOD`] never-matching wildcard subscriptions for realm `realm` of `peer`'s hello,
/// as fast as the node takes them; returns the peer.
async fn flood_of_subscriptions(peer: RawPeer, realm: u16) -> RawPeer {
    for id in 0..FLOOD {
        let pattern = weft::Pattern::new(&format!("*.flood{id}.**")).unwrap();
        peer.send(&Frame::Interest(Interest::Subscribe {
            realm,
            id,
            pattern,
            chain: None,
        }))
        .await;
    }
    peer
}
