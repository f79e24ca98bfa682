//! What weft reports about itself: metrics through the `metrics` facade and `tracing` spans and
//! events under the target [`TARGET`]. Names live here so they stay one contract (listed in
//! docs/operations.md); the binary chooses the exporter.
//!
//! Handles are registered once, when a realm starts, and incremented on the hot path: looking a
//! metric up by name and labels on every publication would cost more than routing it. So a
//! recorder must be installed before a node starts for its metrics to be recorded.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use weft_names::RealmName;

use crate::{CallError, RealmStats};

/// The `tracing` target of weft's telemetry spans and events (`RUST_LOG=weft::telemetry=debug`).
pub const TARGET: &str = "weft::telemetry";

/// Counts a standing grant (a peer's `subscription`, `advertisement` or `membership`) that ended
/// because the chain it rested on did (`reason`: the error code, `expired` or `revoked`). Rare,
/// so looked up by name each time.
pub(crate) fn grant_ended(realm: &RealmName, kind: &'static str, reason: &str) {
    metrics::counter!(
        "weft_grants_ended_total",
        "realm" => realm.as_str().to_owned(),
        "kind" => kind,
        "reason" => reason.to_owned()
    )
    .increment(1);
}

/// A realm's publication counters: exported as metrics and kept for [`RealmStats`].
#[derive(Debug)]
pub(crate) struct RealmCounters {
    stats: RealmStats,
    published: Counter,
    received: Counter,
    delivered: Counter,
    dropped_slow_subscriber: Counter,
    dropped_slow_peer: Counter,
    dropped_peer_gone: Counter,
    dropped_session_ended: Counter,
    denied: Counter,
    duplicates: Counter,
    forwarded: Counter,
    forward_refused: Counter,
    forward_repaired: Counter,
    dropped_too_late: Counter,
    dropped_unforwardable: Counter,
    members: Gauge,
}

impl RealmCounters {
    pub(crate) fn new(realm: &RealmName) -> Self {
        let name = realm.as_str().to_owned();
        let dropped = |reason: &'static str| metrics::counter!("weft_publications_dropped_total", "realm" => name.clone(), "reason" => reason);
        Self {
            stats: RealmStats::default(),
            published: metrics::counter!("weft_publications_sent_total", "realm" => name.clone()),
            received: metrics::counter!("weft_publications_received_total", "realm" => name.clone()),
            delivered: metrics::counter!("weft_publications_delivered_total", "realm" => name.clone()),
            dropped_slow_subscriber: dropped("slow_subscriber"),
            dropped_slow_peer: dropped("slow_peer"),
            dropped_peer_gone: dropped("peer_gone"),
            dropped_session_ended: dropped("session_ended"),
            denied: metrics::counter!("weft_publications_denied_total", "realm" => name.clone()),
            duplicates: metrics::counter!("weft_publications_duplicate_total", "realm" => name.clone()),
            forwarded: metrics::counter!("weft_forward_batches_total", "realm" => name.clone(), "outcome" => "sent"),
            forward_refused: metrics::counter!("weft_forward_batches_total", "realm" => name.clone(), "outcome" => "refused"),
            forward_repaired: metrics::counter!("weft_forward_batches_total", "realm" => name.clone(), "outcome" => "repaired"),
            dropped_unforwardable: dropped("unforwardable"),
            dropped_too_late: dropped("too_late"),
            members: metrics::gauge!("weft_realm_members", "realm" => name),
        }
    }

    pub(crate) fn published(&mut self) {
        self.stats.published += 1;
        self.published.increment(1);
    }

    pub(crate) fn received(&mut self) {
        self.received.increment(1);
    }

    pub(crate) fn delivered(&mut self, events: u64) {
        if events > 0 {
            self.stats.delivered += events;
            self.delivered.increment(events);
        }
    }

    pub(crate) fn dropped_slow_subscriber(&mut self, events: u64) {
        if events > 0 {
            self.stats.dropped_slow_subscriber += events;
            self.dropped_slow_subscriber.increment(events);
        }
    }

    pub(crate) fn dropped_slow_peer(&mut self) {
        self.stats.dropped_slow_peer += 1;
        self.dropped_slow_peer.increment(1);
    }

    /// A frame a peer's queue refused: its session was ending, or the queue was full.
    pub(crate) fn not_queued(&mut self, pushed: weft_net::outbox::Pushed) {
        match pushed.ended {
            true => self.dropped_session_ended(1),
            false => self.dropped_slow_peer(),
        }
    }

    pub(crate) fn dropped_peer_gone(&mut self, deliveries: usize) {
        self.stats.dropped_peer_gone += deliveries as u64;
        self.dropped_peer_gone.increment(deliveries as u64);
    }

    pub(crate) fn dropped_session_ended(&mut self, frames: u64) {
        self.stats.dropped_session_ended += frames;
        self.dropped_session_ended.increment(frames);
    }

    pub(crate) fn denied(&mut self) {
        self.stats.denied += 1;
        self.denied.increment(1);
    }

    /// A peer's publication that goes nowhere, counted by why.
    pub(crate) fn unrouted(&mut self, why: crate::core::pubsub::Unrouted) {
        match why {
            crate::core::pubsub::Unrouted::Duplicate => self.duplicate(),
            crate::core::pubsub::Unrouted::TooLate => {
                self.stats.dropped_too_late += 1;
                self.dropped_too_late.increment(1);
            }
        }
    }

    pub(crate) fn duplicate(&mut self) {
        self.stats.duplicates += 1;
        self.duplicates.increment(1);
    }

    pub(crate) fn forwarded(&mut self) {
        self.stats.forwarded += 1;
        self.forwarded.increment(1);
    }

    pub(crate) fn forward_refused(&mut self) {
        self.stats.forward_refused += 1;
        self.forward_refused.increment(1);
    }

    pub(crate) fn forward_repaired(&mut self) {
        self.stats.forward_repaired += 1;
        self.forward_repaired.increment(1);
    }

    pub(crate) fn dropped_unforwardable(&mut self, publications: u64) {
        self.stats.dropped_unforwardable += publications;
        self.dropped_unforwardable.increment(publications);
    }

    pub(crate) fn members(&mut self, count: usize) {
        self.members.set(count as f64);
    }

    pub(crate) fn snapshot(&self) -> RealmStats {
        self.stats
    }
}

/// A realm's call metrics, on the caller's side and on the provider's.
#[derive(Debug)]
pub(crate) struct CallMetrics {
    realm: String,
    duration: Histogram,
}

/// Every way a call can end, as a metric label.
pub(crate) fn call_outcome(result: &Result<bytes::Bytes, CallError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(CallError::NotFound(_)) => "not_found",
        Err(CallError::Timeout) => "timeout",
        Err(CallError::Unauthorized(_)) => "unauthorized",
        Err(CallError::Remote { .. }) => "remote_error",
        Err(CallError::Unavailable(_)) => "unavailable",
    }
}

impl CallMetrics {
    pub(crate) fn new(realm: &RealmName) -> Self {
        let realm = realm.as_str().to_owned();
        Self {
            duration: metrics::histogram!("weft_call_duration_seconds", "realm" => realm.clone()),
            realm,
        }
    }

    /// A call this node made ended.
    pub(crate) fn called(&self, outcome: &'static str, elapsed: Duration) {
        self.duration.record(elapsed.as_secs_f64());
        metrics::counter!("weft_calls_total", "realm" => self.realm.clone(), "outcome" => outcome)
            .increment(1);
    }

    /// A call this node served ended (`outcome`: ok, remote_error or the fault's code).
    pub(crate) fn served(&self, outcome: &'static str) {
        metrics::counter!("weft_calls_served_total", "realm" => self.realm.clone(), "outcome" => outcome)
            .increment(1);
    }
}
