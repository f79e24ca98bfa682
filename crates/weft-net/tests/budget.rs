//! The connection budget over real QUIC on 127.0.0.1: a connection under a session that is
//! still being decided is not the one a newcomer's connection takes the place of.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::{Duration, Instant};

use futures::AsyncWriteExt;
use tokio::time::timeout;
use weft_net::NetEvent;

mod common;
use common::LIMIT;

/// The age from which a peer's new connection may take the place of a connection without a
/// session (`budget::MIN_AGE`), with a margin.
const PAST_MIN_AGE: Duration = Duration::from_millis(1100);

/// A node whose runtime has not yet taken up a peer's weft stream (a busy node) keeps that
/// peer's connection when a newcomer needs room, and lets an older one without a stream go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_stream_awaits_its_session_is_spared() {
    let mut config = common::loopback();
    config.max_connections = 2;
    let (target, mut events, addr) = common::start(config).await;
    let (a, _a_events, _) = common::start(common::loopback()).await;
    let (b, _b_events, _) = common::start(common::loopback()).await;
    let (c, _c_events, _) = common::start(common::loopback()).await;

    let peer = timeout(LIMIT, a.dial(addr.clone())).await.unwrap().unwrap();
    timeout(LIMIT, b.dial(addr.clone())).await.unwrap().unwrap();
    let full = Instant::now();
    // A opens a weft stream; the target's application takes it and decides nothing.
    let mut stream = timeout(LIMIT, a.open_stream(peer)).await.unwrap().unwrap();
    stream.write_all(b"hello").await.unwrap();
    stream.flush().await.unwrap();
    let _held = timeout(LIMIT, async {
        loop {
            match events.recv().await {
                Some(NetEvent::InboundStream { peer, stream }) if peer == a.peer_id() => {
                    break stream;
                }
                Some(_) => {}
                None => panic!("the target's network stopped"),
            }
        }
    })
    .await
    .unwrap();

    // Both connections are old enough to be let go for a newcomer's.
    tokio::time::sleep(PAST_MIN_AGE.saturating_sub(full.elapsed())).await;
    timeout(LIMIT, c.dial(addr)).await.unwrap().unwrap();
    let gone = timeout(LIMIT, async {
        loop {
            match events.recv().await {
                Some(NetEvent::PeerDisconnected { peer }) => break peer,
                Some(_) => {}
                None => panic!("the target's network stopped"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(gone, b.peer_id(), "B's connection made room, not A's");
    assert!(target.is_connected(a.peer_id()).await.unwrap());
    for net in [a, b, c, target] {
        net.shutdown().await;
    }
}
