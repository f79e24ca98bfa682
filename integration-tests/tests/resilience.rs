//! Connections drop; subscriptions survive: a node that loses a peer redials it with backoff, and
//! the new connection re-announces every subscription without the application doing anything.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::Duration;

use serde_json::{Value, json};
use weft::{BackoffPolicy, Keypair, Node, PeerEvent};
use weft_integration_tests::{next_event, shutdown, within};

fn fast_reconnect() -> BackoffPolicy {
    BackoffPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
        multiplier: 2.0,
        jitter: 0.5,
        max_attempts: None,
    }
}

fn port_of(addr: &str) -> String {
    let parts: Vec<&str> = addr.split('/').collect();
    let udp = parts.iter().position(|p| *p == "udp").unwrap();
    parts[udp + 1].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_receives_again_after_its_peer_crashes_and_restarts() {
    let key_a = Keypair::generate().unwrap();
    let a = Node::builder()
        .key(key_a.clone())
        .open_realm("dev")
        .start()
        .await
        .unwrap();
    let port = port_of(&a.listen_addrs()[0].to_string());
    let b = Node::builder()
        .bootstrap(a.listen_addrs()[0].to_string())
        .open_realm("dev")
        .reconnect(fast_reconnect())
        // A crashed peer sends no close: B notices from silence, within a second here.
        .liveness(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let mut b_events = b.peer_events();
    let mut orders = b.realm("dev").unwrap().subscribe("orders.*").await.unwrap();

    let dev = a.realm("dev").unwrap();
    within(
        "A learns of B's subscription",
        dev.wait_for_subscriber("orders.placed"),
    )
    .await
    .unwrap();
    dev.publish("orders.placed", &json!("before"))
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut orders).await.json::<Value>().unwrap(),
        json!("before")
    );

    // A crashes: no goodbye. B sees it go.
    a.abort().await;
    within("B sees A down", async {
        while !matches!(b_events.recv().await, Ok(PeerEvent::Down { did }) if did == key_a.did()) {}
    })
    .await;

    // A comes back with the same key on the same port; B redials it and re-announces.
    let a = Node::builder()
        .key(key_a.clone())
        .listen(format!("127.0.0.1:{port}"))
        .open_realm("dev")
        .start()
        .await
        .unwrap();
    let dev = a.realm("dev").unwrap();
    within(
        "B re-announced its subscription",
        dev.wait_for_subscriber("orders.placed"),
    )
    .await
    .unwrap();
    dev.publish("orders.placed", &json!("after")).await.unwrap();
    assert_eq!(
        next_event(&mut orders).await.json::<Value>().unwrap(),
        json!("after"),
        "same subscription, no resubscribe"
    );
    shutdown(&[a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_says_goodbye_is_not_redialed_and_its_subscriptions_are_withdrawn() {
    let a = Node::builder().open_realm("dev").start().await.unwrap();
    let b = Node::builder()
        .bootstrap(a.listen_addrs()[0].to_string())
        .open_realm("dev")
        .start()
        .await
        .unwrap();
    let mut a_events = a.peer_events();
    let _orders = b.realm("dev").unwrap().subscribe("orders.*").await.unwrap();
    let dev = a.realm("dev").unwrap();
    within(
        "A learns of B's subscription",
        dev.wait_for_subscriber("orders.placed"),
    )
    .await
    .unwrap();
    assert_eq!(dev.stats().await.remote_subscriptions, 1);

    let b_did = b.did();
    b.shutdown().await;
    within("A sees B leave", async {
        while !matches!(a_events.recv().await, Ok(PeerEvent::Down { did }) if did == b_did) {}
    })
    .await;
    let stats = dev.stats().await;
    assert_eq!(
        (stats.members, stats.remote_subscriptions),
        (0, 0),
        "withdrawn when the node left"
    );
    shutdown(&[a]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_peer_that_is_down_at_start_is_reached_once_it_is_up() {
    // Reserve an address for A, then free it: B starts while nothing answers there.
    let key_a = Keypair::generate().unwrap();
    let first = Node::builder()
        .key(key_a.clone())
        .open_realm("dev")
        .start()
        .await
        .unwrap();
    let addr = first.listen_addrs()[0].to_string();
    first.shutdown().await;

    let b = Node::builder()
        .bootstrap(addr.clone())
        .open_realm("dev")
        .reconnect(fast_reconnect())
        .start()
        .await
        .unwrap();
    // Only once B has given up on its first dial does A come up (a QUIC dial in progress would
    // otherwise still reach it).
    let mut b_events = b.peer_events();
    within("B's first dial fails", async {
        while !matches!(b_events.recv().await, Ok(PeerEvent::Unreachable { .. })) {}
    })
    .await;
    let a = Node::builder()
        .key(key_a)
        .listen(format!("127.0.0.1:{}", port_of(&addr)))
        .open_realm("dev")
        .start()
        .await
        .unwrap();
    within(
        "B reaches A, which came up after B started",
        b.realm("dev").unwrap().wait_for_members(1),
    )
    .await
    .unwrap();
    shutdown(&[a, b]).await;
}
