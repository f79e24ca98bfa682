//! A flood of connections from fresh identities that never say hello, against a `weft node`
//! process: its memory stays bounded, and a real peer and `/health` are still served meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Killed, lines, wait_for};

const LIMIT: Duration = Duration::from_secs(60);
/// Connections the flood opens, each from a new identity.
const FLOOD: usize = 1000;
/// Handshakes the flood keeps in progress at once.
const AT_ONCE: usize = 50;
/// What the flood may add to the node's resident memory: the node lets go of silent sessions
/// past 256 (`limits.max_silent_peers`), so this holds however long the flood lasts.
const MEMORY_BOUND: u64 = 96 * 1024 * 1024;

/// Resident memory of `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// GET /health; returns how long the answer took.
fn health(http: SocketAddr) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&http, LIMIT).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: weft\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    started.elapsed()
}

/// A QUIC client config proving a fresh libp2p identity, as libp2p-quic dials.
fn fresh_identity() -> quinn::ClientConfig {
    let key = weft_net::identity::libp2p_keypair(&weft::Keypair::generate().unwrap());
    let tls = libp2p_tls::make_client_config(&key, None).unwrap();
    quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_leaves_memory_bounded_and_peers_served() {
    let mut node = Command::new(env!("CARGO_BIN_EXE_weft"))
        // Silent peers are let go only to make room: the hello timeout must not do it here.
        .args([
            "node",
            "--http",
            "127.0.0.1:0",
            "--hello-timeout",
            "5m",
            "--max-silent-peers",
            "256",
        ])
        .env_remove("WEFT_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, err) = (
        lines(node.stdout.take().unwrap()),
        lines(node.stderr.take().unwrap()),
    );
    let node = Killed(node);
    let pid = node.0.id();
    let addr = wait_for(&out, LIMIT, |l| l.starts_with("/ip4/127.0.0.1/udp/"));
    let http: SocketAddr = wait_for(&err, LIMIT, |l| l.starts_with("weft: http on http://"))
        .trim_start_matches("weft: http on http://")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let quic: SocketAddr = {
        let parts: Vec<&str> = addr.split('/').collect();
        format!("{}:{}", parts[2], parts[4]).parse().unwrap()
    };
    health(http);
    let before = rss(pid);

    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let flood = {
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            let mut refused = 0usize;
            let mut pending = tokio::task::JoinSet::new();
            for _ in 0..FLOOD {
                if pending.len() >= AT_ONCE
                    && let Some(done) = pending.join_next().await
                {
                    match done.unwrap() {
                        Ok(connection) => held.push(connection),
                        Err(_) => refused += 1,
                    }
                }
                let connecting = endpoint.connect_with(fresh_identity(), quic, "l").unwrap();
                pending.spawn(async move {
                    tokio::time::timeout(Duration::from_secs(10), connecting)
                        .await
                        .map_err(|_| ())?
                        .map_err(|_| ())
                });
            }
            while let Some(done) = pending.join_next().await {
                match done.unwrap() {
                    Ok(connection) => held.push(connection),
                    Err(_) => refused += 1,
                }
            }
            (held, refused)
        })
    };

    // Meanwhile: /health answers, and a real client joins.
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let probe = {
        let flooding = flooding.clone();
        std::thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            while flooding.load(std::sync::atomic::Ordering::Acquire) {
                slowest = slowest.max(health(http));
                std::thread::sleep(Duration::from_millis(50));
            }
            slowest
        })
    };
    let joined = Instant::now();
    let client = weft::Node::builder()
        .connect(addr.clone())
        .open_realm("dev")
        .start()
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, client.realm("dev").unwrap().wait_for_members(1))
        .await
        .expect("the client is admitted during the flood")
        .unwrap();
    let join_took = joined.elapsed();
    let (held, refused) = tokio::time::timeout(LIMIT, flood).await.unwrap().unwrap();
    flooding.store(false, std::sync::atomic::Ordering::Release);
    let slowest_health = probe.join().unwrap();
    let grown = rss(pid).saturating_sub(before);
    let still_open = held.iter().filter(|c| c.close_reason().is_none()).count();
    eprintln!(
        "flood of {FLOOD}: {} established, {refused} refused, {still_open} still open at the end; \
         node RSS +{} KiB; a client joined in {join_took:?}; slowest /health {slowest_health:?}",
        held.len(),
        grown / 1024,
    );
    assert!(
        still_open <= 256 + AT_ONCE,
        "silent sessions are capped: {still_open} open"
    );
    assert!(
        grown < MEMORY_BOUND,
        "the node grew by {} KiB",
        grown / 1024
    );
    // Well under the hello timeout (5 s): the client did not wait for silent ones to expire.
    assert!(
        join_took < Duration::from_secs(4),
        "joined in {join_took:?}"
    );
    assert!(
        slowest_health < Duration::from_secs(1),
        "/health took {slowest_health:?}"
    );
    client.shutdown().await;
    endpoint.close(0u32.into(), b"done");
    drop(held);
}
