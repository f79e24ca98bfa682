//! Three networks over real QUIC on 127.0.0.1: discovery through the DHT, then frames over a weft
//! stream, in order. Every wait is on an event, bounded by a timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::timeout;
use weft_names::Name;
use weft_net::framed::{encode, read_frames};
use weft_net::outbox::{Outbox, write_outbox};
use weft_net::{Multiaddr, NetEvent, Network, PeerId};
use weft_wire::{DEFAULT_MAX_FRAME, Decoder, Frame, Publish};

mod common;
use common::LIMIT;

async fn start(bootstrap: Vec<Multiaddr>) -> (Network, mpsc::Receiver<NetEvent>, Multiaddr) {
    let mut config = common::loopback();
    config.bootstrap = bootstrap;
    common::start(config).await
}

async fn wait_connected(events: &mut mpsc::Receiver<NetEvent>, peer: PeerId) {
    loop {
        if let NetEvent::PeerConnected { peer: p, .. } =
            timeout(LIMIT, events.recv()).await.unwrap().unwrap()
            && p == peer
        {
            return;
        }
    }
}

fn publish(seq: u64) -> Frame {
    Frame::Publish(Publish {
        realm: 0,
        topic: Name::new("orders.placed").unwrap(),
        seq,
        payload: vec![seq as u8; 100].into(),
        chain: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_found_through_the_dht_receives_frames_in_order() {
    let (a, _a_events, a_addr) = start(vec![]).await;
    let (b, mut b_events, _) = start(vec![a_addr.clone()]).await;
    let (c, mut c_events, _) = start(vec![a_addr.clone()]).await;
    wait_connected(&mut b_events, a.peer_id()).await;
    // A lookup from a node that knows no peer yet finds nothing: C must have joined through A.
    wait_connected(&mut c_events, a.peer_id()).await;

    let key = vec![3u8; 32]; // shaped as a membership key: a node stores no other
    timeout(LIMIT, b.provide(key.clone()))
        .await
        .unwrap()
        .unwrap();
    let providers = timeout(LIMIT, c.find_providers(key))
        .await
        .unwrap()
        .unwrap();
    assert!(providers.contains(&b.peer_id()), "{providers:?}");

    let stream = timeout(LIMIT, c.open_stream(b.peer_id()))
        .await
        .unwrap()
        .unwrap();
    let outbox = Outbox::new(128);
    let writer = outbox.clone();
    c.spawn(async move {
        write_outbox(stream, writer).await.unwrap();
    });
    for seq in 0..100 {
        let frame = encode(&publish(seq), DEFAULT_MAX_FRAME).unwrap();
        assert!(outbox.push(&frame).queued);
    }
    outbox.close();

    let inbound = loop {
        match timeout(LIMIT, b_events.recv()).await.unwrap().unwrap() {
            NetEvent::InboundStream { peer, stream } if peer == c.peer_id() => break stream,
            _ => continue,
        }
    };
    let (sink, mut frames) = mpsc::channel(8);
    b.spawn(async move {
        read_frames(inbound, bytes::BytesMut::new(), sink, Decoder::default())
            .await
            .unwrap();
    });
    let mut received = Vec::new();
    while received.len() < 100 {
        received.extend(timeout(LIMIT, frames.recv()).await.unwrap().unwrap());
    }
    assert_eq!(received, (0..100).map(publish).collect::<Vec<_>>());
    assert!(
        timeout(LIMIT, frames.recv()).await.unwrap().is_none(),
        "clean end of stream"
    );

    for net in [a, b, c] {
        net.shutdown().await;
    }
}

/// A peer that left on purpose is forgotten as a provider of the keys named, and only those:
/// this node stops handing its records to others who look them up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_a_departed_provider_drops_its_records() {
    let (a, _a_events, a_addr) = start(vec![]).await;
    let (b, mut b_events, _) = start(vec![a_addr.clone()]).await;
    wait_connected(&mut b_events, a.peer_id()).await;
    // Keys shaped as weft's (a membership key is 32 bytes): a node stores no other.
    let (forgotten, kept) = (vec![1u8; 32], vec![2u8; 32]);
    for key in [&forgotten, &kept] {
        timeout(LIMIT, b.provide(key.clone()))
            .await
            .unwrap()
            .unwrap();
        // The provide query ends before its record has surely reached A.
        timeout(LIMIT, async {
            while !a
                .stored_providers(key.clone())
                .await
                .unwrap()
                .contains(&b.peer_id())
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
    }
    b.shutdown().await;
    a.forget(b.peer_id(), vec![forgotten.clone()]).await;

    assert_eq!(a.stored_providers(forgotten.clone()).await.unwrap(), vec![]);
    assert_eq!(
        a.stored_providers(kept.clone()).await.unwrap(),
        vec![b.peer_id()],
        "only the keys named are forgotten"
    );
    // A newcomer, which knows nothing of B, asks A and hears nothing of it.
    let (d, mut d_events, _) = start(vec![a_addr]).await;
    wait_connected(&mut d_events, a.peer_id()).await;
    let found = timeout(LIMIT, d.find_providers(forgotten))
        .await
        .unwrap()
        .unwrap();
    assert!(!found.contains(&b.peer_id()), "{found:?}");
    for net in [a, d] {
        net.shutdown().await;
    }
}

/// A record provided before the node knows any peer reaches no one; it is placed again once
/// the node has a peer, rather than at the network's republication minutes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_provided_alone_is_placed_once_a_peer_is_known() {
    let (a, _a_events, a_addr) = start(vec![]).await;
    let (b, _b_events, _) = start(vec![]).await;
    let key = vec![4u8; 32]; // shaped as a membership key: a node stores no other
    timeout(LIMIT, b.provide(key.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        timeout(LIMIT, b.dial(a_addr)).await.unwrap().unwrap(),
        a.peer_id()
    );
    timeout(LIMIT, async {
        while !a
            .stored_providers(key.clone())
            .await
            .unwrap()
            .contains(&b.peer_id())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the record reached A");
    for net in [a, b] {
        net.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialing_nothing_fails_with_an_error() {
    let (a, _events, _) = start(vec![]).await;
    // A port nobody listens on: QUIC handshakes time out or are refused; either way, an error.
    let err = timeout(
        LIMIT,
        a.dial("/ip4/127.0.0.1/udp/9/quic-v1".parse().unwrap()),
    )
    .await
    .unwrap();
    assert!(err.is_err());
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_questions_about_its_dht_and_refuses_malformed_ones() {
    use weft_net::inspect::{DhtAnswer, DhtQuestion};
    let (a, _a_events, a_addr) = start(vec![]).await;
    let (b, mut b_events, _) = start(vec![a_addr.clone()]).await;
    wait_connected(&mut b_events, a.peer_id()).await;
    let key = vec![3u8; 32];
    timeout(LIMIT, b.provide(key.clone()))
        .await
        .unwrap()
        .unwrap();
    // A third node, knowing neither, asks A.
    let (c, _c_events, _) = start(vec![]).await;
    let a_id = timeout(LIMIT, c.dial(a_addr)).await.unwrap().unwrap();
    let ask = |question| {
        let c = c.clone();
        async move {
            timeout(LIMIT, c.ask_dht(a_id, &question))
                .await
                .unwrap()
                .unwrap()
        }
    };

    let DhtAnswer::Stats(figures) = ask(DhtQuestion::Stats).await else {
        panic!("not stats");
    };
    assert!(figures.known_nodes >= 1, "{figures:?}");
    assert!(figures.buckets >= 1, "{figures:?}");
    assert!(figures.connected_peers >= 2, "B and C: {figures:?}");
    assert_eq!(figures.keys_provided, 0, "A provides nothing: {figures:?}");

    let found = timeout(LIMIT, async {
        loop {
            if let DhtAnswer::Providers(found) =
                ask(DhtQuestion::Providers { key: key.clone() }).await
                && !found.is_empty()
            {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(PeerId::from_bytes(&found[0].peer).unwrap(), b.peer_id());
    assert!(!found[0].addresses.is_empty(), "A knows where B is");

    // A key longer than any weft key is refused, and A goes on answering.
    let long = ask(DhtQuestion::Providers { key: vec![0; 65] }).await;
    assert!(
        matches!(&long, DhtAnswer::Failed(reason) if reason.contains("malformed")),
        "{long:?}"
    );
    assert!(matches!(ask(DhtQuestion::Stats).await, DhtAnswer::Stats(_)));
    for net in [a, b, c] {
        net.shutdown().await;
    }
}

/// A peer without room refuses a session as its stream arrives, before reading the hello, and
/// stops reading. The opener's hello may then fail to send, but the refusal is the answer: it
/// ends the attempts, instead of each failing the same way until they run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_sent_before_the_hello_is_read_is_the_answer() {
    let (a, _a_events, _) = start(vec![]).await;
    let (b, mut b_events, b_addr) = start(vec![]).await;
    let peer = timeout(LIMIT, a.dial(b_addr)).await.unwrap().unwrap();
    let refused = tokio::spawn(async move {
        let mut refused = 0;
        while let Some(event) = b_events.recv().await {
            if let NetEvent::InboundStream { stream, .. } = event {
                refused += 1;
                let _ = weft_net::framed::refuse_released(stream).await;
            }
        }
        refused
    });
    // Larger than QUIC's stream window: the write can only end once the peer reads, which it
    // never does, so it fails when the peer stops the stream.
    let hello = bytes::Bytes::from(vec![0u8; 32 << 20]);
    let opened = timeout(
        LIMIT,
        weft_net::framed::open_acknowledged(&a, peer, &hello, std::future::pending()),
    )
    .await
    .expect("answered within the limit");
    assert!(
        matches!(opened, Err(weft_net::NetError::Released)),
        "{:?}",
        opened.map(|_| ())
    );
    for net in [a, b] {
        net.shutdown().await;
    }
    let streams = timeout(LIMIT, refused).await.unwrap().unwrap();
    assert!(streams >= 1, "the refusal came from the peer");
}

/// A session that ends while its stream waits for the peer's acknowledgement opens no other:
/// a stream opened for it afterwards would reach the peer as a new session's, carrying the
/// old session's frames. (The attempt under way runs to its timeout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_stops_when_the_session_ends() {
    let (a, _a_events, _) = start(vec![]).await;
    let (b, mut b_events, b_addr) = start(vec![]).await;
    let peer = timeout(LIMIT, a.dial(b_addr)).await.unwrap().unwrap();
    let (arrived, first) = tokio::sync::oneshot::channel();
    // B takes streams and never acknowledges one: the opener would wait, then open again.
    let held = tokio::spawn(async move {
        let (mut held, mut arrived) = (Vec::new(), Some(arrived));
        while let Some(event) = b_events.recv().await {
            if let NetEvent::InboundStream { stream, .. } = event {
                held.push(stream);
                if let Some(arrived) = arrived.take() {
                    let _ = arrived.send(());
                }
            }
        }
        held.len()
    });
    let hello = encode(&Frame::Bye, DEFAULT_MAX_FRAME).unwrap();
    let ended = async move {
        let _ = first.await;
    };
    let opened = timeout(
        LIMIT,
        weft_net::framed::open_acknowledged(&a, peer, &hello, ended),
    )
    .await
    .expect("ended within the limit");
    assert!(
        matches!(opened, Err(weft_net::NetError::Abandoned)),
        "{:?}",
        opened.map(|_| ())
    );
    for net in [a, b] {
        net.shutdown().await;
    }
    let streams = timeout(LIMIT, held).await.unwrap().unwrap();
    assert_eq!(streams, 1, "no stream was opened after the session ended");
}
