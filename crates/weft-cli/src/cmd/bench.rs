//! `weft bench`: two processes, each its own node, over QUIC on loopback (contract §6,
//! `docs/contract.md`).
//!
//! The parent publishes; a child process (`weft bench-peer`) subscribes, timestamps the first and
//! last publication it receives, and reports. Throughput is what the subscriber saw: received
//! publications over the time between the first and the last.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use weft::Node;

use crate::cli::{BenchCommand, BenchPeerCommand};
use crate::error::CliError;

const REALM: &str = "bench";
const TOPIC: &str = "bench.data";
const RPC: &str = "bench.echo";
/// Publications in flight at once: enough to keep the router busy, few enough to stay bounded.
const WINDOW: usize = 1024;
/// The subscriber gives up when nothing arrives for this long.
const IDLE: Duration = Duration::from_secs(3);
/// Readiness of the child process, bounded.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) async fn run(cmd: BenchCommand) -> Result<(), CliError> {
    match cmd {
        BenchCommand::Pubsub {
            payload,
            messages,
            json,
        } => pubsub(payload, messages, json).await,
        BenchCommand::Rpc {
            payload,
            calls,
            concurrency,
            json,
        } => rpc(payload, calls, concurrency, json).await,
        BenchCommand::Mesh {
            nodes,
            connections,
            mesh_members,
            publications,
            calls,
            converge_within,
            settle,
            json,
        } => {
            let bench = super::bench_mesh::MeshBench {
                nodes,
                connections,
                mesh_members,
                publications,
                calls,
                converge_within: Duration::from_secs(converge_within),
                settle: Duration::from_secs(settle),
                json,
            };
            super::bench_mesh::run(bench).await
        }
        BenchCommand::Sim {
            nodes,
            connections,
            publications,
            calls,
            latency_ms,
            loss,
            churn,
            seed,
            json,
        } => {
            if !(0.0..1.0).contains(&loss) || !(0.0..=1.0).contains(&churn) {
                return Err(CliError::Usage(
                    "--loss must be in [0, 1) and --churn in [0, 1]".into(),
                ));
            }
            let config = weft::simulation::SimConfig {
                nodes: nodes.max(2),
                connections,
                publications,
                calls,
                latency: Duration::from_millis(latency_ms),
                loss,
                churn,
                seed,
            };
            let report = weft::simulation::simulate(&config);
            let mut out =
                serde_json::to_value(&report).map_err(|e| CliError::Failed(e.to_string()))?;
            out["bench"] = "sim".into();
            if json {
                println!("{out}");
            } else {
                println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            }
            Ok(())
        }
    }
}

async fn pubsub(payload: usize, messages: u64, as_json: bool) -> Result<(), CliError> {
    // The publisher goes at the subscriber's pace rather than outrunning QUIC and dropping: the
    // rate measured is one the mesh sustains, with nothing lost.
    let node = Node::builder()
        .listen("127.0.0.1:0")
        .congestion(weft::Congestion::Block)
        .open_realm(REALM)
        .start()
        .await?;
    let addr = node
        .listen_addrs()
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    let messages_arg = messages.to_string();
    let (mut child, mut lines) = spawn_peer(
        &[
            "bench-peer",
            "pubsub",
            "--connect",
            &addr,
            "--messages",
            &messages_arg,
        ],
        Stdio::null(),
    )?;

    let ready = tokio::time::timeout(READY_TIMEOUT, lines.recv()).await;
    if !matches!(ready, Ok(Some(ref l)) if l == "ready") {
        let _ = child.kill();
        return Err(CliError::Failed(
            "the subscriber process did not become ready".into(),
        ));
    }
    let realm = node
        .realm(REALM)
        .ok_or_else(|| CliError::Failed("bench realm missing".into()))?;
    if tokio::time::timeout(READY_TIMEOUT, realm.wait_for_subscriber(TOPIC))
        .await
        .is_err()
    {
        let _ = child.kill();
        return Err(CliError::Failed(
            "the subscription never reached the publisher".into(),
        ));
    }

    let body = Bytes::from(vec![0x5a; payload]);
    let started = Instant::now();
    let mut in_flight = std::collections::VecDeque::with_capacity(WINDOW);
    for _ in 0..messages {
        in_flight.push_back(realm.publish_bytes(TOPIC, body.clone()));
        if in_flight.len() >= WINDOW
            && let Some(oldest) = in_flight.pop_front()
        {
            oldest.await?;
        }
    }
    for pending in in_flight {
        pending.await?;
    }
    let publish_secs = started.elapsed().as_secs_f64();

    let report = tokio::time::timeout(IDLE + READY_TIMEOUT, lines.recv()).await;
    let _ = child.wait();
    let sent_dropped = realm.stats().await.dropped_slow_peer;
    node.shutdown().await;
    let report: Value = match report {
        Ok(Some(line)) => serde_json::from_str(&line)
            .map_err(|e| CliError::Failed(format!("bad subscriber report: {e}")))?,
        _ => {
            return Err(CliError::Failed(
                "the subscriber process did not report".into(),
            ));
        }
    };
    let received = report["received"].as_u64().unwrap_or(0);
    let elapsed_us = report["elapsed_us"].as_u64().unwrap_or(0).max(1);
    let msgs_per_sec = received as f64 * 1e6 / elapsed_us as f64;
    let mb_per_sec = msgs_per_sec * payload as f64 / 1e6;
    let out = json!({
        "bench": "pubsub",
        "payload": payload,
        "messages": messages,
        "received": received,
        "msgs_per_sec": msgs_per_sec.round(),
        "mb_per_sec": (mb_per_sec * 100.0).round() / 100.0,
    });
    if as_json {
        println!("{out}");
    } else {
        let received_dropped = report["dropped"].as_u64().unwrap_or(0);
        println!(
            "pubsub {payload} B: {received}/{messages} received, {msgs_per_sec:.0} msg/s, {mb_per_sec:.2} MB/s (publisher side: {:.0} msg/s; dropped: {sent_dropped} at the publisher's send queue, {received_dropped} at the subscriber's queue)",
            messages as f64 / publish_secs
        );
    }
    Ok(())
}

/// Calls a provider in another process `calls` times, `concurrency` at a time, timing each.
async fn rpc(
    payload: usize,
    calls: u64,
    concurrency: usize,
    as_json: bool,
) -> Result<(), CliError> {
    let node = Node::builder()
        .listen("127.0.0.1:0")
        .open_realm(REALM)
        .start()
        .await?;
    let addr = node
        .listen_addrs()
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    let (mut child, mut lines) =
        spawn_peer(&["bench-peer", "rpc", "--connect", &addr], Stdio::piped())?;
    let ready = tokio::time::timeout(READY_TIMEOUT, lines.recv()).await;
    let realm = node
        .realm(REALM)
        .ok_or_else(|| CliError::Failed("bench realm missing".into()))?;
    let known = tokio::time::timeout(READY_TIMEOUT, realm.wait_for_providers(RPC, 1)).await;
    if !matches!(ready, Ok(Some(ref l)) if l == "ready") || known.is_err() {
        let _ = child.kill();
        return Err(CliError::Failed(
            "the provider process did not become ready".into(),
        ));
    }

    let body = Bytes::from(vec![0x5a; payload]);
    let options = weft::CallOptions::default();
    let started = Instant::now();
    let mut latencies: Vec<u64> = Vec::with_capacity(usize::try_from(calls).unwrap_or(0));
    let mut in_flight = tokio::task::JoinSet::new();
    let mut issued = 0u64;
    while issued < calls || !in_flight.is_empty() {
        while issued < calls && in_flight.len() < concurrency.max(1) {
            let (realm, body, options) = (realm.clone(), body.clone(), options.clone());
            in_flight.spawn(async move {
                let t = Instant::now();
                realm
                    .call_bytes(RPC, body, options)
                    .await
                    .map(|_| t.elapsed())
            });
            issued += 1;
        }
        if let Some(done) = in_flight.join_next().await {
            let elapsed = done.map_err(|e| CliError::Failed(e.to_string()))??;
            latencies.push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        }
    }
    let total = started.elapsed().as_secs_f64();
    drop(child.stdin.take()); // the provider exits when its stdin closes
    let _ = child.wait();
    node.shutdown().await;

    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    let (p50, p99) = (at(0.50), at(0.99));
    let per_sec = calls as f64 / total;
    if as_json {
        println!(
            "{}",
            json!({ "bench": "rpc", "payload": payload, "calls": calls, "p50_us": p50, "p99_us": p99, "calls_per_sec": per_sec.round() })
        );
    } else {
        println!(
            "rpc {payload} B x{concurrency}: p50 {p50} µs, p99 {p99} µs, {per_sec:.0} calls/s"
        );
    }
    Ok(())
}

/// Starts this binary again as the benchmark's other process; its stdout lines arrive on the
/// returned channel (read by a thread, so waits on them can be bounded).
fn spawn_peer(
    args: &[&str],
    stdin: Stdio,
) -> Result<(std::process::Child, tokio::sync::mpsc::Receiver<String>), CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Failed(format!("cannot find the weft binary: {e}")))?;
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stdin(stdin)
        .spawn()
        .map_err(|e| {
            CliError::Failed(format!("cannot start the benchmark's second process: {e}"))
        })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| CliError::Failed("no output from the second process".into()))?;
    let (lines_tx, lines) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    Ok((child, lines))
}

pub(crate) async fn peer(cmd: BenchPeerCommand) -> Result<(), CliError> {
    let (connect, messages) = match cmd {
        BenchPeerCommand::Pubsub { connect, messages } => (connect, messages),
        BenchPeerCommand::Rpc { connect } => return rpc_peer(connect).await,
    };
    let node = Node::builder()
        .listen("127.0.0.1:0")
        .bootstrap(connect)
        .open_realm(REALM)
        .subscriber_queue(64 * 1024)
        .start()
        .await?;
    let realm = node
        .realm(REALM)
        .ok_or_else(|| CliError::Failed("bench realm missing".into()))?;
    let mut events = realm.subscribe(TOPIC).await?;
    if tokio::time::timeout(READY_TIMEOUT, realm.wait_for_members(1))
        .await
        .is_err()
    {
        return Err(CliError::Unavailable(
            "the publisher process is not reachable".into(),
        ));
    }
    println!("ready");
    let mut received = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    while received < messages {
        match tokio::time::timeout(IDLE, events.next()).await {
            Ok(Some(_)) => {
                first.get_or_insert_with(Instant::now);
                received += 1;
                // Take what is already queued before reading the clock again: one timestamp
                // per burst, so the harness does not cost a clock read per publication.
                while received < messages && events.try_next().is_some() {
                    received += 1;
                }
                last = Instant::now();
            }
            _ => break,
        }
    }
    let elapsed_us = first.map_or(0, |f| last.duration_since(f).as_micros());
    println!(
        "{}",
        json!({ "received": received, "elapsed_us": elapsed_us, "dropped": events.dropped() })
    );
    node.shutdown().await;
    Ok(())
}

/// Provides `bench.echo` until stdin closes.
async fn rpc_peer(connect: String) -> Result<(), CliError> {
    let node = Node::builder()
        .listen("127.0.0.1:0")
        .bootstrap(connect)
        .open_realm(REALM)
        .start()
        .await?;
    let realm = node
        .realm(REALM)
        .ok_or_else(|| CliError::Failed("bench realm missing".into()))?;
    let echo: weft::ProcedureHandler =
        std::sync::Arc::new(|_ctx, payload| Box::pin(async move { Ok(payload) }));
    let _registration = realm.advertise_bytes(RPC, echo).await?;
    if tokio::time::timeout(READY_TIMEOUT, realm.wait_for_members(1))
        .await
        .is_err()
    {
        return Err(CliError::Unavailable(
            "the calling process is not reachable".into(),
        ));
    }
    println!("ready");
    // Wait for the parent to close stdin (or die).
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
    })
    .await;
    node.shutdown().await;
    Ok(())
}
