//! Subscription lifecycle and peer info, across nodes over QUIC on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use serde_json::{Value, json};
use weft::{Node, PeerEvent};
use weft_integration_tests::{next_event, shutdown, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_subscription_withdraws_it_at_the_publisher() {
    let a = Node::builder().open_realm("dev").start().await.unwrap();
    let b = Node::builder()
        .bootstrap(a.listen_addrs()[0].to_string())
        .open_realm("dev")
        .start()
        .await
        .unwrap();
    let dev_a = a.realm("dev").unwrap();
    let dev_b = b.realm("dev").unwrap();

    let orders = dev_b.subscribe("orders.*").await.unwrap();
    within(
        "A learns of orders.*",
        dev_a.wait_for_subscriber("orders.placed"),
    )
    .await
    .unwrap();
    drop(orders);
    // Interest frames travel in order on one lane: once A knows the next subscription, it has
    // processed the withdrawal of the first.
    let mut billing = dev_b.subscribe("billing.*").await.unwrap();
    within(
        "A learns of billing.*",
        dev_a.wait_for_subscriber("billing.paid"),
    )
    .await
    .unwrap();
    assert_eq!(
        dev_a.stats().await.remote_subscriptions,
        1,
        "orders.* was withdrawn"
    );

    dev_a
        .publish("orders.placed", &json!("nobody"))
        .await
        .unwrap();
    dev_a
        .publish("billing.paid", &json!("billing"))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut billing).await.json::<Value>().unwrap(),
        json!("billing")
    );
    assert_eq!(dev_a.stats().await.dropped_slow_peer, 0);
    shutdown(&[a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_see_each_others_tags_and_agent() {
    let a = Node::builder()
        .open_realm("dev")
        .tag("region", "eu")
        .tag("role", "edge")
        .start()
        .await
        .unwrap();
    let mut events = a.peer_events();
    let b = Node::builder()
        .bootstrap(a.listen_addrs()[0].to_string())
        .open_realm("dev")
        .tag("region", "us")
        .start()
        .await
        .unwrap();
    let info = within("A sees B up", async {
        loop {
            if let Ok(PeerEvent::Up(info)) = events.recv().await {
                break info;
            }
        }
    })
    .await;
    assert_eq!(info.did, b.did());
    assert_eq!(info.tags, vec![("region".to_owned(), "us".to_owned())]);
    assert!(info.agent.starts_with("weft/"), "{}", info.agent);
    let peers = a.peers().await;
    assert!(
        peers
            .iter()
            .any(|p| p.did == b.did() && p.tags == info.tags)
    );
    shutdown(&[a, b]).await;
}
