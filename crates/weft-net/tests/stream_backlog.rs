//! A burst of inbound weft streams is accepted whole, from the patched libp2p-stream
//! (`patches/`).
//!
//! libp2p-stream hands inbound streams to their acceptor through a channel of one slot, and
//! drops a stream that arrives while the slot is taken: one that comes before the acceptor's
//! task has run again since the last. The patch gives the channel a backlog. If a libp2p
//! upgrade leaves the patch behind, or the patched source loses it, these tests fail; the
//! burst test alone shows the effect but, without the patch, fails only about half the time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use futures::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use weft_net::NetEvent;

mod common;
use common::{LIMIT, loopback, start};

/// Streams opened at once: a connection carries at most 32 each way (`MAX_STREAMS`).
const BURST: usize = 24;
/// Bursts, one after the other: whether a burst lands in one turn of the connection's task
/// depends on scheduling, and several make it all but certain that one does.
const BURSTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_of_a_burst_is_accepted() {
    let (a, _a_events, _) = start(loopback()).await;
    let (b, mut b_events, b_addr) = start(loopback()).await;
    let peer = timeout(LIMIT, a.dial(b_addr)).await.unwrap().unwrap();

    // B echoes one byte on each stream it accepts.
    let echo = tokio::spawn(async move {
        let mut accepted = 0;
        while let Some(event) = b_events.recv().await {
            if let NetEvent::InboundStream { mut stream, .. } = event {
                accepted += 1;
                tokio::spawn(async move {
                    let mut byte = [0u8; 1];
                    if stream.read_exact(&mut byte).await.is_ok() {
                        let _ = stream.write_all(&byte).await;
                        let _ = stream.close().await;
                    }
                });
            }
        }
        accepted
    });

    for burst in 0..BURSTS {
        let answers = (0..BURST).map(|i| {
            let a = a.clone();
            async move {
                let mut stream = a.open_stream(peer).await?;
                let byte = [u8::try_from(i).unwrap()];
                let io = |e: std::io::Error| weft_net::NetError::Stream {
                    peer: peer.to_string(),
                    reason: e.to_string(),
                };
                stream.write_all(&byte).await.map_err(io)?;
                let mut back = [0u8; 1];
                stream.read_exact(&mut back).await.map_err(io)?;
                Ok::<_, weft_net::NetError>(back == byte)
            }
        });
        let answered = timeout(LIMIT, futures::future::join_all(answers))
            .await
            .expect("every stream answered or failed");
        let lost: Vec<_> = answered
            .iter()
            .enumerate()
            .filter(|(_, answer)| !matches!(answer, Ok(true)))
            .collect();
        assert!(
            lost.is_empty(),
            "burst {burst}: streams not echoed: {lost:?}"
        );
    }

    for net in [a, b] {
        net.shutdown().await;
    }
    let accepted = timeout(LIMIT, echo).await.unwrap().unwrap();
    assert_eq!(accepted, BURST * BURSTS);
}

/// Cargo applies the patch only while libp2p depends on this very release of libp2p-stream.
#[test]
fn libp2p_stream_is_built_from_patches() {
    let lock = include_str!("../../../Cargo.lock");
    let packages: Vec<&str> = lock
        .split("[[package]]")
        .filter(|p| p.contains("\nname = \"libp2p-stream\"\n"))
        .collect();
    assert_eq!(packages.len(), 1, "one libp2p-stream in Cargo.lock");
    assert!(
        !packages[0].contains("source ="),
        "libp2p-stream comes from a registry, not from patches/: {}",
        packages[0]
    );
}

/// The patched line itself: a copy of the crate taken again from crates.io would lose it.
#[test]
fn the_patched_source_has_the_backlog() {
    let shared = include_str!("../../../patches/libp2p-stream/src/shared.rs");
    assert!(shared.contains("mpsc::channel(ACCEPT_BACKLOG)"));
}
