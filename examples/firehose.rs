//! A sensor gateway streams readings faster than the network carries them, and a collector must
//! get every one. With `Congestion::Block` the gateway's publishes wait while the collector's queue
//! is half full, so it slows to the collector's pace instead of dropping. (The default,
//! `Congestion::Drop`, never waits on a slow peer and counts what it drops.)
//!
//! Run: `cargo run -p weft --example firehose`

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use weft::{Congestion, Node};

/// Readings streamed.
const READINGS: u64 = 20_000;
/// Publications kept in flight before awaiting the oldest: far fewer than half the peer queue.
const WINDOW: usize = 64;

/// What the example saw (checked by `crates/weft/tests/examples.rs`).
#[derive(Debug)]
#[allow(dead_code)] // read by the test, not by `main`
pub(crate) struct Summary {
    /// Readings the collector received, all in order.
    pub(crate) received: u64,
    /// Readings the gateway had to drop (its `dropped_slow_peer`).
    pub(crate) dropped_at_gateway: u64,
    /// Readings the collector's subscription had to drop.
    pub(crate) dropped_at_collector: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(drop)
}

/// Runs the example; an error if any step fails.
pub(crate) async fn run() -> Result<Summary, Box<dyn std::error::Error>> {
    // A small send queue makes the gateway outrun it at once; Block makes that harmless.
    let gateway = Node::builder()
        .open_realm("plant")
        .peer_queue(256)
        .congestion(Congestion::Block)
        .start()
        .await?;
    let collector = Node::builder()
        .bootstrap(gateway.listen_addrs()[0].to_string())
        .open_realm("plant")
        .subscriber_queue(READINGS as usize)
        .start()
        .await?;
    let mut readings = collector
        .realm("plant")
        .ok_or("realm not configured")?
        .subscribe("sensors.**")
        .await?;
    let plant = gateway.realm("plant").ok_or("realm not configured")?;
    tokio::time::timeout(
        Duration::from_secs(10),
        plant.wait_for_subscriber("sensors.line1.temp"),
    )
    .await??;

    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    for n in 0..READINGS {
        // 8 bytes of sequence number, then the reading.
        let mut reading = n.to_be_bytes().to_vec();
        reading.extend_from_slice(&[0x2a; 120]);
        in_flight.push_back(plant.publish_bytes("sensors.line1.temp", Bytes::from(reading)));
        if in_flight.len() >= WINDOW
            && let Some(oldest) = in_flight.pop_front()
        {
            oldest.await?;
        }
    }
    for pending in in_flight {
        pending.await?;
    }

    let mut received = 0;
    while received < READINGS {
        let event = tokio::time::timeout(Duration::from_secs(10), readings.next())
            .await?
            .ok_or("subscription ended")?;
        let n = u64::from_be_bytes(event.payload[..8].try_into()?);
        if n != received {
            return Err(format!("reading {n} arrived where {received} was expected").into());
        }
        received += 1;
    }
    let elapsed = started.elapsed();
    let summary = Summary {
        received,
        dropped_at_gateway: plant.stats().await.dropped_slow_peer,
        dropped_at_collector: readings.dropped(),
    };
    println!(
        "collector received {received}/{READINGS} readings in order in {:.0} ms; dropped: {} at the gateway, {} at the collector",
        elapsed.as_secs_f64() * 1e3,
        summary.dropped_at_gateway,
        summary.dropped_at_collector,
    );
    gateway.shutdown().await;
    collector.shutdown().await;
    Ok(summary)
}
