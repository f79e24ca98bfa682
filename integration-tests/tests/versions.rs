//! Peers of another wire version, over real QUIC on 127.0.0.1: each side learns why the other
//! will not talk, once, instead of a session failing silently after its retries.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::Duration;

use bytes::BytesMut;
use futures::{AsyncReadExt, AsyncWriteExt};
use weft::{Keypair, Node, PeerEvent};
use weft_integration_tests::{RawPeer, shutdown, within};
use weft_net::{NetConfig, NetEvent, Network};
use weft_wire::{Decoder, Frame, HEADER_LEN, Hello, Refusal, WIRE_VERSION};

/// Reads one frame from `reader` (a refusal reads whatever its version).
async fn read_frame<R: futures::AsyncRead + Unpin>(reader: &mut R) -> Frame {
    let decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 256];
    loop {
        if let Some(frame) = decoder.decode(&mut buf).expect("a frame it can read") {
            return frame;
        }
        let n = reader.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the stream ended before a whole frame");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A hello as a node of wire version `version` would send it.
fn hello_of_version(version: u8) -> Vec<u8> {
    let frame = Frame::Hello(Hello {
        realms: Vec::new(),
        client: false,
        run: 1,
    });
    let mut bytes = Vec::new();
    weft_wire::encode(&frame, weft_wire::DEFAULT_MAX_FRAME, &mut bytes).unwrap();
    bytes[HEADER_LEN - 1] = version;
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_wire_version_is_told_both_versions() {
    weft_integration_tests::logs();
    let node = Node::builder().open_realm("dev").start().await.unwrap();
    let newer = WIRE_VERSION + 1;
    let (raw, _events, thread) =
        Network::start(NetConfig::loopback(Keypair::generate().unwrap())).unwrap();
    let peer = within("dial", raw.dial(node.listen_addrs()[0].clone()))
        .await
        .unwrap();
    let stream = within("open stream", raw.open_stream(peer)).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    writer.write_all(&hello_of_version(newer)).await.unwrap();
    writer.flush().await.unwrap();

    let answer = within("the node's answer", read_frame(&mut reader)).await;
    let Frame::Refused(Refusal { code, reason }) = answer else {
        panic!("expected a refusal, got {answer:?}");
    };
    assert_eq!(code, "incompatibleVersion");
    assert_eq!(
        reason,
        format!("this node speaks wire version {WIRE_VERSION}, the peer {newer}")
    );
    raw.shutdown().await;
    thread.join();

    // Nothing is harmed for a peer of this version.
    let member = RawPeer::join_open(&node, "dev").await;
    member.close().await;
    shutdown(&[node]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refused_for_its_version_tells_the_application_and_does_not_try_again() {
    weft_integration_tests::logs();
    // A peer of a newer version that refuses every stream, as this code would.
    let (raw, mut events, thread) =
        Network::start(NetConfig::loopback(Keypair::generate().unwrap())).unwrap();
    let addr = within("the raw peer listens", async {
        loop {
            if let Some(NetEvent::Listening { addr }) = events.recv().await {
                break addr;
            }
        }
    })
    .await;
    let newer = WIRE_VERSION + 1;
    let refusal = Refusal {
        code: "incompatibleVersion".into(),
        reason: format!("this node speaks wire version {newer}, the peer {WIRE_VERSION}"),
    };

    let node = Node::builder()
        .open_realm("dev")
        .bootstrap(addr.to_string())
        .start()
        .await
        .unwrap();
    let mut told = node.peer_events();
    let stream = within("the node's stream", async {
        loop {
            if let Some(NetEvent::InboundStream { stream, .. }) = events.recv().await {
                break stream;
            }
        }
    })
    .await;
    let (mut reader, mut writer) = stream.split();
    let hello = within("the node's hello", read_frame(&mut reader)).await;
    assert!(matches!(hello, Frame::Hello(_)), "{hello:?}");
    let refused = weft_wire::encode_refusal(&refusal, newer).unwrap();
    writer.write_all(&refused).await.unwrap();
    writer.close().await.unwrap();

    let event = within("the application is told", async {
        loop {
            if let Ok(event @ PeerEvent::Refused { .. }) = told.recv().await {
                break event;
            }
        }
    })
    .await;
    let PeerEvent::Refused { code, reason, .. } = event else {
        unreachable!()
    };
    assert_eq!((code, reason), (refusal.code, refusal.reason));
    // A node that did not understand would open another stream 20 ms later, and five more.
    let again = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            if let Some(NetEvent::InboundStream { .. }) = events.recv().await {
                break;
            }
        }
    })
    .await;
    assert!(again.is_err(), "the node opened another stream");

    shutdown(&[node]).await;
    raw.shutdown().await;
    thread.join();
}
