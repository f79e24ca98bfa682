//! A connection whose last stream the application dropped closes once idle, from the patched
//! libp2p-swarm (`patches/`).
//!
//! libp2p keeps a connection open while any of its streams lives, and looks again only when its
//! connection task runs. A weft stream lives outside that task, so without the patch dropping it
//! woke nothing: the connection stayed open until ping's next round (every 15 s) or the next
//! request, however short its idle timeout. If a libp2p upgrade leaves the patch behind, these
//! tests fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::timeout;
use weft_net::{Multiaddr, NetEvent, Network};

mod common;
use common::LIMIT;

const IDLE: Duration = Duration::from_secs(1);
/// libp2p ping's interval: the event that woke the connection without the patch.
const PING_INTERVAL: Duration = Duration::from_secs(15);

async fn start() -> (Network, mpsc::Receiver<NetEvent>, Multiaddr) {
    let mut config = common::loopback();
    config.idle_timeout = IDLE;
    common::start(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closes_once_idle_after_its_streams_are_dropped() {
    let (a, mut a_events, _) = start().await;
    let (b, mut b_events, b_addr) = start().await;
    let peer = timeout(LIMIT, a.dial(b_addr)).await.unwrap().unwrap();

    // A short exchange that ends cleanly, as a refused session does: each side finishes its
    // half and reads the other's to its end.
    let mut outbound = timeout(LIMIT, a.open_stream(peer)).await.unwrap().unwrap();
    outbound.write_all(b"hello").await.unwrap();
    outbound.close().await.unwrap();
    let mut inbound = loop {
        if let NetEvent::InboundStream { stream, .. } =
            timeout(LIMIT, b_events.recv()).await.unwrap().unwrap()
        {
            break stream;
        }
    };
    let mut hello = Vec::new();
    timeout(LIMIT, inbound.read_to_end(&mut hello))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hello, b"hello");
    inbound.write_all(b"bye").await.unwrap();
    inbound.close().await.unwrap();
    let mut bye = Vec::new();
    timeout(LIMIT, outbound.read_to_end(&mut bye))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bye, b"bye");
    // Both halves are closed, so dropping the streams sends nothing. The pause lets the
    // connection's own traffic end first (the last acknowledgements, and Kademlia's automatic
    // bootstrap half a second after a new peer), so that the drops, outside libp2p's connection
    // task, are all that happens to it. It sets up the case; no outcome is waited on.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The connection lived through the exchange: what closes it below is the drops, not an
    // earlier idle spell (on a slow machine, between the dial and the stream).
    while let Ok(event) = a_events.try_recv() {
        assert!(
            !matches!(event, NetEvent::PeerDisconnected { peer: p } if p == peer),
            "the connection closed before the streams were dropped"
        );
    }
    drop(outbound);
    drop(inbound);

    // Idle from now: it closes after IDLE, long before ping would have woken it.
    timeout(PING_INTERVAL / 2, async {
        loop {
            if let NetEvent::PeerDisconnected { peer: p } = a_events.recv().await.unwrap()
                && p == peer
            {
                return;
            }
        }
    })
    .await
    .expect("the connection closed once idle, before ping's next round");
    for net in [a, b] {
        net.shutdown().await;
    }
}

/// Cargo applies the patch only while libp2p depends on this very release of libp2p-swarm.
#[test]
fn libp2p_swarm_is_built_from_patches() {
    let lock = include_str!("../../../Cargo.lock");
    let packages: Vec<&str> = lock
        .split("[[package]]")
        .filter(|p| p.contains("\nname = \"libp2p-swarm\"\n"))
        .collect();
    assert_eq!(packages.len(), 1, "one libp2p-swarm in Cargo.lock");
    assert!(
        !packages[0].contains("source ="),
        "libp2p-swarm comes from a registry, not from patches/: {}",
        packages[0]
    );
}
