//! `GET /metrics`, and installing the recorder it renders.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{ApiError, AppState};

/// Buckets of `weft_call_duration_seconds`: from a loopback call (~100 µs) to a timeout.
const CALL_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often histograms are tidied (the exporter leaves it to its user).
const UPKEEP: Duration = Duration::from_secs(5);

/// Held while installing, so two callers cannot race to install two recorders.
static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// The process already has a metrics recorder that is not weft's.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the Prometheus recorder: {0}")]
pub struct MetricsError(String);

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
///
/// Call it before starting nodes: weft registers its metrics when a node starts, and what is
/// registered before a recorder exists is not recorded. Must be called within a tokio runtime
/// (it starts the exporter's upkeep task).
pub fn install_metrics() -> Result<PrometheusHandle, MetricsError> {
    let mut installed = HANDLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("weft_call_duration_seconds".into()),
            CALL_BUCKETS,
        )
        .map_err(|e| MetricsError(e.to_string()))?
        .install_recorder()
        .map_err(|e| MetricsError(e.to_string()))?;
    describe();
    *installed = Some(handle.clone());
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// `# HELP` lines, so the exposition explains itself.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "weft_connected_peers",
        "Peers with at least one open connection."
    );
    describe_counter!(
        "weft_connections_total",
        "Peers connected (first connection), since start."
    );
    describe_counter!(
        "weft_connections_refused_total",
        "Connections refused: past a connection limit (limit) or not an Ed25519 key (key)."
    );
    describe_gauge!(
        "weft_silent_peers",
        "Sessions whose peer has not sent its hello yet."
    );
    describe_counter!(
        "weft_frames_dropped_total",
        "Frames (publications, calls, replies) still queued for a peer when its session ended, never sent."
    );
    describe_counter!(
        "weft_limit_refusals_total",
        "Actions of a peer refused past its per-peer cap, by cap (subscriptions, procedures, calls)."
    );
    describe_counter!(
        "weft_sessions_closed_total",
        "Sessions this node ended: no hello in time (hello_timeout), or to make room for a newer silent one (silent)."
    );
    describe_counter!(
        "weft_bytes_sent_total",
        Unit::Bytes,
        "Bytes written on weft streams."
    );
    describe_counter!(
        "weft_bytes_received_total",
        Unit::Bytes,
        "Bytes read from weft streams."
    );
    describe_counter!(
        "weft_dht_queries_total",
        "Kademlia queries started, by kind."
    );
    describe_counter!(
        "weft_dht_query_failures_total",
        "Kademlia queries that failed or timed out, by kind."
    );
    describe_counter!(
        "weft_dht_lookups_dropped_total",
        "Lookups of publishers or subscribers not started: too many were in flight."
    );
    describe_counter!(
        "weft_dht_lookups_skipped_total",
        "Refreshing lookups of publishers or subscribers not made while sessions are scarce: the overlay reaches them."
    );
    describe_gauge!(
        "weft_dht_unplaced_records",
        "This node's provider records that reached no peer yet, to be placed again."
    );
    describe_counter!(
        "weft_ucan_checks_total",
        "Capability checks, by ability and outcome."
    );
    describe_counter!(
        "weft_ucan_denials_total",
        "Capability checks refused, by error code."
    );
    describe_counter!(
        "weft_delegations_refused_total",
        "Delegations from clients this access node did not take, by error code."
    );
    describe_counter!(
        "weft_delegations_unsent_total",
        "Clients' publications relayed under this node's own chains because the delegation's chain did not fit in the frame."
    );
    describe_gauge!(
        "weft_forwarding",
        "1 while this node forwards its publications through other members: a session was refused or released for room within 2 min."
    );
    describe_counter!(
        "weft_forward_batches_total",
        "Signed batches of publications passed between members, by realm and outcome: sent into the overlay or passed on (sent), refused on arrival (refused), missed and then taken from a member that offered it (repaired)."
    );
    describe_counter!(
        "weft_publications_sent_total",
        "Publications this node published, by realm."
    );
    describe_counter!(
        "weft_publications_received_total",
        "Peers' publications accepted, by realm."
    );
    describe_counter!(
        "weft_publications_delivered_total",
        "Events handed to local subscriptions, by realm."
    );
    describe_counter!(
        "weft_publications_dropped_total",
        "Publications dropped by a full queue, by realm and reason."
    );
    describe_counter!(
        "weft_publications_denied_total",
        "Publications refused by authorization, by realm."
    );
    describe_counter!(
        "weft_publications_duplicate_total",
        "Duplicate publications suppressed, by realm."
    );
    describe_gauge!("weft_realm_members", "Peers admitted to the realm.");
    describe_gauge!(
        "weft_local_subscriptions",
        "This node's subscriptions, by realm."
    );
    describe_counter!(
        "weft_calls_total",
        "Calls this node made, by realm and outcome."
    );
    describe_counter!(
        "weft_calls_served_total",
        "Calls this node served for peers, by realm and outcome."
    );
    describe_histogram!(
        "weft_call_duration_seconds",
        Unit::Seconds,
        "Latency of calls this node made, by realm."
    );
}

/// Prometheus text exposition format 0.0.4.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let handle = state
        .config
        .metrics
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("metrics are not exported by this node".into()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}
