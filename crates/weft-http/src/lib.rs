//! weft's HTTP surface, for operators and for clients that do not speak QUIC.
//!
//! - `GET /health`: 200 with JSON when the node is ready, 503 when it is not.
//! - `GET /metrics`: Prometheus text (the [`metrics`] facade, rendered by
//!   `metrics-exporter-prometheus`).
//! - `GET /v1/status`: peers, realms, local subscriptions and procedures, DHT statistics.
//! - `GET /v1/dht`: the DHT's figures (known nodes, buckets, records, provided keys, queries).
//! - The gateway: `POST /v1/realms/{realm}/publish/{topic}`, `POST /v1/realms/{realm}/call/{procedure}`
//!   and `GET /v1/realms/{realm}/subscribe/{pattern}` (Server-Sent Events), each authorized by
//!   `Authorization: Bearer <UCAN>` delegated to this node (see [`gateway`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let metrics = weft_http::install_metrics()?; // before the node starts: see weft::telemetry
//! let node = std::sync::Arc::new(weft::Node::builder().open_realm("dev").start().await?);
//! let http = weft_http::HttpServer::bind("127.0.0.1:8080".parse()?, node, weft_http::HttpConfig {
//!     metrics: Some(metrics),
//!     ..Default::default()
//! }).await?;
//! println!("http on {}", http.local_addr());
//! # Ok(()) }
//! ```

mod error;
pub mod gateway;
mod health;
mod journal;
mod metrics_endpoint;
pub mod replay;

/// Cold chain verifications the gateway's clients may start at once, all together.
const GATEWAY_VERIFY_BURST: u32 = 1024;
/// Cold chain verifications the gateway's clients regain per second, all together.
const GATEWAY_VERIFY_PER_SECOND: u32 = 256;
/// Cold chain verifications the clients at one IP address may start at once, within the above.
const SOURCE_VERIFY_BURST: u32 = 64;
/// Cold chain verifications the clients at one IP address regain per second.
const SOURCE_VERIFY_PER_SECOND: u32 = 16;
/// IP addresses whose budgets are remembered at most.
const SOURCES: usize = 4096;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::{oneshot, watch};

pub use error::ApiError;
pub use metrics_endpoint::{MetricsError, install_metrics};
pub use metrics_exporter_prometheus::PrometheusHandle;

/// How the HTTP surface behaves.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// What `/metrics` renders; `None` answers 404 there (metrics are someone else's).
    pub metrics: Option<PrometheusHandle>,
    /// `/health` reports 503 until some peer is a member of one of the node's realms: for nodes
    /// given bootstrap peers, which are of no use alone.
    pub require_peers: bool,
    /// Largest request body (a publication or call arguments), in bytes.
    pub max_body: usize,
    /// Event streams (`…/subscribe/…`) open at once; past it, 503 with code `limit`.
    pub max_streams: usize,
    /// Where the gateway writes down the Bearer tokens it accepted, so that a restart does not
    /// let them be used again (see [`replay`]); `None`: remembered in memory for this run only.
    pub replay_journal: Option<std::path::PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            metrics: None,
            require_peers: false,
            max_body: 1024 * 1024,
            max_streams: 1024,
            replay_journal: None,
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) node: Arc<weft::Node>,
    pub(crate) config: HttpConfig,

    /// Turns true when the server stops: event streams end then, instead of holding the
    /// graceful shutdown open forever.
    pub(crate) stopping: watch::Receiver<bool>,
    /// The Bearer tokens accepted and not yet expired: each is accepted once.
    pub(crate) replay: std::sync::Mutex<replay::ReplayGuard>,
    /// New chains the gateway's clients may have verified, all together: a client can mint
    /// keys at will, so only a bound on all of them bounds the work.
    pub(crate) verify_budget: Arc<weft::auth::VerifyBudget>,
    /// Each client address's own share of it: one address forging chains spends its share, not
    /// everyone's.
    pub(crate) sources: std::sync::Mutex<weft::auth::Budgets<std::net::IpAddr>>,
    /// Event streams open now.
    pub(crate) streams: Arc<std::sync::atomic::AtomicUsize>,
}

impl AppState {
    /// Resolves once the server is stopping (never, for a router embedded elsewhere).
    pub(crate) fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static + use<> {
        let mut stopping = self.stopping.clone();
        async move {
            if stopping.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// A running HTTP server; dropping it (or [`shutdown`](Self::shutdown)) stops it.
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The address could not be bound.
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The replay journal could not be opened or rewritten.
    #[error("cannot open the replay journal {path}: {source}")]
    Journal {
        /// The journal's path.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl HttpServer {
    /// Listens on `addr` (port 0 picks one) and serves on the current tokio runtime.
    pub async fn bind(
        addr: SocketAddr,
        node: Arc<weft::Node>,
        config: HttpConfig,
    ) -> Result<Self, BindError> {
        let (stopping_tx, stopping) = watch::channel(false);
        let app = routes(node, config, stopping)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| BindError::Listen { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| BindError::Listen { addr, source })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // Each request knows its client's address: verification budgets are per address.
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    let _ = stopping_tx.send(true);
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "HTTP server stopped");
            }
        });
        tracing::info!(addr = %local_addr, "HTTP surface listening");
        Ok(Self {
            local_addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets requests in flight finish (open event streams end), and returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The routes, for embedding in an application's own axum server.
pub fn router(node: Arc<weft::Node>, config: HttpConfig) -> Result<Router, BindError> {
    routes(node, config, watch::channel(false).1)
}

fn routes(
    node: Arc<weft::Node>,
    config: HttpConfig,
    stopping: watch::Receiver<bool>,
) -> Result<Router, BindError> {
    let max_body = config.max_body;
    let replay = match &config.replay_journal {
        Some(path) => replay::ReplayGuard::with_journal(
            path,
            gateway::unix_seconds(),
            node.clock_leeway().as_secs(),
        )
        .map_err(|source| BindError::Journal {
            path: path.clone(),
            source,
        })?,
        None => replay::ReplayGuard::default(),
    };
    let verify_budget = Arc::new(weft::auth::VerifyBudget::new(
        GATEWAY_VERIFY_BURST,
        GATEWAY_VERIFY_PER_SECOND,
    ));
    let state = Arc::new(AppState {
        node,
        config,
        stopping,
        replay: std::sync::Mutex::new(replay),
        verify_budget: verify_budget.clone(),
        sources: std::sync::Mutex::new(weft::auth::Budgets::new(SOURCES, move || {
            weft::auth::VerifyBudget::within(
                verify_budget.clone(),
                SOURCE_VERIFY_BURST,
                SOURCE_VERIFY_PER_SECOND,
            )
        })),
        streams: Arc::default(),
    });
    let router = Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(metrics_endpoint::metrics))
        .route("/v1/status", get(status::status))
        .route("/v1/dht", get(status::dht))
        .route("/v1/realms/{realm}/publish/{topic}", post(gateway::publish))
        .route("/v1/realms/{realm}/call/{procedure}", post(gateway::call))
        .route("/v1/realms/{realm}/revocations", post(gateway::revoke))
        .route(
            "/v1/realms/{realm}/subscribe/{pattern}",
            get(gateway::subscribe),
        )
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state);
    Ok(router)
}
