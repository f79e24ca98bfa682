//! A caller flooding a provider with calls: it gets its share of handlers and no more.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::Duration;

use serde_json::json;
use weft::Node;
use weft_integration_tests::{RawPeer, shutdown, within};
use weft_wire::Frame;

/// The replies among `frames`, by call id.
fn replies(frames: &[Frame]) -> Vec<(u64, weft_wire::Outcome)> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Reply(reply) => Some((reply.id, reply.outcome.clone())),
            _ => None,
        })
        .collect()
}

fn is_fault(outcome: &weft_wire::Outcome, wanted: &str) -> bool {
    matches!(outcome, weft_wire::Outcome::Fault { code, .. } if code.code() == wanted)
}

/// A raw call to `procedure` in the raw peer's realm 0.
fn call(id: u64, procedure: &str, timeout_ms: u32) -> Frame {
    Frame::Call(weft_wire::Call {
        realm: 0,
        id,
        procedure: weft::Name::new(procedure).unwrap(),
        timeout_ms,
        payload: bytes::Bytes::from_static(b"{}"),
        chain: None,
    })
}

/// Reads from `caller` until `count` replies are in `received`.
async fn until_replies(caller: &mut RawPeer, received: &mut Vec<Frame>, count: usize) {
    while replies(received).len() < count {
        received.extend(caller.next_frames().await.expect("the provider's stream"));
    }
}

/// Another member of `provider`'s realm calls its `fast.echo`, and is answered: the member.
async fn served_meanwhile(provider: &Node) -> Node {
    let member = Node::builder()
        .bootstrap(provider.listen_addrs()[0].to_string())
        .open_realm("dev")
        .start()
        .await
        .unwrap();
    let theirs = member.realm("dev").unwrap();
    within(
        "the member sees the provider",
        theirs.wait_for_providers("fast.echo", 1),
    )
    .await
    .unwrap();
    assert_eq!(theirs.call("fast.echo", &json!(7)).await.unwrap(), json!(7));
    member
}

/// A caller flooding a provider gets its share of handlers and no more, and the others are
/// served meanwhile; a call is never served longer than the provider's maximum, whatever
/// timeout the caller asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_gets_its_share_of_handlers_and_calls_end_at_the_providers_maximum() {
    let mut limits = weft::Limits::default();
    limits.max_calls_per_peer = 4;
    limits.max_call_duration = Duration::from_millis(300);
    let provider = Node::builder()
        .open_realm("dev")
        .limits(limits)
        .start()
        .await
        .unwrap();
    // Never released: the slow calls run until the provider ends them.
    let (release, released) = tokio::sync::watch::channel(false);
    let dev = provider.realm("dev").unwrap();
    let _slow = dev
        .advertise("slow.wait", move |_ctx, _args| {
            let mut released = released.clone();
            async move {
                let _ = released.wait_for(|r| *r).await;
                Ok(json!("done"))
            }
        })
        .await
        .unwrap();
    let _fast = dev
        .advertise("fast.echo", |_ctx, args| async move { Ok(args) })
        .await
        .unwrap();

    let mut caller = RawPeer::join_open(&provider, "dev").await;
    // Ten slow calls that would each wait a minute: four run, six are refused at once.
    for id in 0..10 {
        caller.send(&call(id, "slow.wait", 60_000)).await;
    }
    let mut received = Vec::new();
    until_replies(&mut caller, &mut received, 6).await;
    let early = replies(&received);
    assert!(
        early.iter().all(|(_, outcome)| is_fault(outcome, "limit")),
        "{early:?}"
    );

    // Meanwhile another member is served.
    let member = served_meanwhile(&provider).await;

    // The four running calls end at the provider's maximum (300 ms), not the caller's minute.
    until_replies(&mut caller, &mut received, 10).await;
    let ended = replies(&received);
    let timed_out = ended.iter().filter(|(_, o)| is_fault(o, "timeout")).count();
    assert_eq!(timed_out, 4, "{ended:?}");
    drop(release);
    caller.close().await;
    shutdown(&[member, provider]).await;
}

/// Advertisements past a peer's cap are refused, and the peer is told once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertisements_past_a_peers_cap_are_refused_and_told_once() {
    let mut limits = weft::Limits::default();
    limits.max_procedures_per_peer = 50;
    let hub = Node::builder()
        .open_realm("dev")
        .limits(limits)
        .start()
        .await
        .unwrap();
    let mut raw = RawPeer::join_open(&hub, "dev").await;
    for i in 0..200 {
        raw.send(&Frame::Interest(weft_wire::Interest::Advertise {
            realm: 0,
            procedure: weft::Name::new(&format!("flood.p{i}")).unwrap(),
        }))
        .await;
    }
    // A goodbye behind them: its answer follows whatever the hub said about them.
    raw.send(&Frame::Bye).await;
    let read = raw.read_until(|f| *f == Frame::Bye).await;
    let denials: Vec<_> = read
        .iter()
        .filter_map(|f| match f {
            Frame::Denied(d) => Some(d.code.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(denials, ["limit"]);
    let dev = hub.realm("dev").unwrap();
    within(
        "the first 50 are held",
        dev.wait_for_providers("flood.p49", 1),
    )
    .await
    .unwrap();
    raw.close().await;
    hub.shutdown().await;
}

/// One caller runs at most a quarter of a realm's handlers at once; its further calls wait
/// their turn, and another caller is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_runs_at_most_its_share_and_waits_for_the_rest() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let mut limits = weft::Limits::default();
    limits.max_call_duration = Duration::from_millis(800);
    let provider = Node::builder()
        .open_realm("dev")
        .limits(limits)
        .start()
        .await
        .unwrap();
    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let dev = provider.realm("dev").unwrap();
    let _slow = {
        let (running, most) = (running.clone(), most.clone());
        dev.advertise("slow.wait", move |_ctx, _args| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(json!("done"))
            }
        })
        .await
        .unwrap()
    };
    let _fast = dev
        .advertise("fast.echo", |_ctx, args| async move { Ok(args) })
        .await
        .unwrap();
    let mut caller = RawPeer::join_open(&provider, "dev").await;
    for id in 0..300u64 {
        caller.send(&call(id, "slow.wait", 5_000)).await;
    }
    let member = served_meanwhile(&provider).await;
    let mut received = Vec::new();
    until_replies(&mut caller, &mut received, 300).await;
    let ok = replies(&received)
        .iter()
        .filter(|(_, o)| matches!(o, weft_wire::Outcome::Ok(_)))
        .count();
    assert_eq!(ok, 300, "every call ran, the later ones after waiting");
    assert_eq!(
        most.load(Ordering::SeqCst),
        256,
        "a quarter of the 1024 handlers at most"
    );
    caller.close().await;
    shutdown(&[member, provider]).await;
}
