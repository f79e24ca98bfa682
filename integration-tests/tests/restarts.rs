//! A member's session that breaks while its connection stays starts again on that connection,
//! instead of taking the connection down: when one of its streams is lost (two nodes that
//! dialed each other at once keep one connection of the two, and the other may carry a
//! stream), when the peer says it starts again, and when the peer starts a new session. Once in
//! a while per peer: past that the session ends with its connection, as any other.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::Duration;

use weft::{Keypair, Node};
use weft_integration_tests::{RawPeer, within};
use weft_wire::Frame;

/// The node's stream to a member stops being read: the node's next write to it fails, and the
/// node greets the member again on a new stream over the same connection, and admits it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_session_whose_stream_is_lost_starts_again_on_its_connection() {
    let node = Node::builder().open_realm("dev").start().await.unwrap();
    let key = Keypair::generate().unwrap();
    let mut raw = RawPeer::join_open_as(&node, "dev", key.clone()).await;
    raw.stop_reading();
    // Each subscription here is a frame to the member: the first makes the raw peer drop the
    // stream it no longer reads, a later one finds the stream stopped.
    let realm = node.realm("dev").unwrap();
    let writes = tokio::spawn(async move {
        let mut held = Vec::new();
        for i in 0..500 {
            held.push(realm.subscribe(&format!("lost.t{i}")).await.unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        held
    });
    let greeting = raw.next_frames().await.expect("a new stream from the node");
    writes.abort();
    assert!(
        matches!(greeting.first(), Some(Frame::Hello(_))),
        "the new session starts with a hello: {greeting:?}"
    );
    assert!(
        !raw.hung_up(),
        "the session started again on the same connection"
    );
    // The member greets the new session in turn, and is admitted to it.
    raw.open_again().await;
    raw.greet_open(&node, "dev", &key).await;
    let welcomed = raw.read_until(|f| matches!(f, Frame::Welcome(_))).await;
    assert!(
        welcomed.iter().any(|f| matches!(f, Frame::Welcome(_))),
        "{welcomed:?}"
    );
    assert!(!raw.hung_up());
    raw.close().await;
    node.shutdown().await;
}

/// A member says its session starts again (`Restart`, as after losing a stream of it): the
/// node ends its side too, starts a new session on the same connection, admits the member on
/// it, and takes none of it for a lack of room: nothing counts as scarce, so its publications
/// do not go into the overlay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_starts_its_session_again_is_not_taken_for_a_release() {
    let node = Node::builder().open_realm("dev").start().await.unwrap();
    let key = Keypair::generate().unwrap();
    let mut raw = RawPeer::join_open_as(&node, "dev", key.clone()).await;
    assert!(!node.forwarding());

    raw.send(&Frame::Restart).await;
    raw.stop_reading();
    new_stream_until(&mut raw, "the node's new session greets", |f| {
        matches!(f, Frame::Hello(_))
    })
    .await;
    assert!(!raw.hung_up(), "on the same connection");
    raw.open_again().await;
    raw.greet_open(&node, "dev", &key).await;
    let welcomed = raw.read_until(|f| matches!(f, Frame::Welcome(_))).await;
    assert!(
        welcomed.iter().any(|f| matches!(f, Frame::Welcome(_))),
        "admitted again: {welcomed:?}"
    );
    assert!(
        !node.forwarding(),
        "a restart is no release: sessions are not scarce"
    );

    // Again at once: a member that keeps restarting its session loses its connection.
    raw.send(&Frame::Restart).await;
    raw.disconnected().await;
    raw.close().await;
    node.shutdown().await;
}

/// A member opens another stream and greets the node again, as a peer starting a new session
/// does: the node ends the old session without hanging up and admits the member on the new
/// one. A second new session within the bound ends the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_starting_a_new_session_is_admitted_again_then_bounded() {
    let node = Node::builder().open_realm("dev").start().await.unwrap();
    let key = Keypair::generate().unwrap();
    let mut raw = RawPeer::join_open_as(&node, "dev", key.clone()).await;

    raw.open_again().await;
    raw.greet_open(&node, "dev", &key).await;
    raw.stop_reading();
    let welcomed = new_stream_until(&mut raw, "welcomed on the new session", |f| {
        matches!(f, Frame::Welcome(_))
    })
    .await;
    assert!(
        welcomed.iter().any(|f| matches!(f, Frame::Welcome(_))),
        "{welcomed:?}"
    );
    assert!(
        !raw.hung_up(),
        "the new session runs on the same connection"
    );

    // Again at once: past the bound, a second join on a session is a broken greeting.
    raw.open_again().await;
    raw.greet_open(&node, "dev", &key).await;
    raw.disconnected().await;
    raw.close().await;
    node.shutdown().await;
}

/// Reads the node's next stream up to a frame that satisfies `wanted`, and checks that the
/// stream opens with the node's hello: a new session's.
async fn new_stream_until(
    raw: &mut RawPeer,
    what: &str,
    wanted: impl Fn(&Frame) -> bool,
) -> Vec<Frame> {
    let frames = within(what, raw.read_until(wanted)).await;
    assert!(
        matches!(frames.first(), Some(Frame::Hello(_))),
        "{what}: a new stream opens with the node's hello: {frames:?}"
    );
    frames
}
