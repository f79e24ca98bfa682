//! How a node is configured.

use weft_auth::{Chain, Realm};
use weft_net::NetConfig;

use crate::BackoffPolicy;

/// A realm this node takes part in, with the chains it acts under there.
#[derive(Debug, Clone)]
pub struct RealmConfig {
    /// The realm (name and owner, or open).
    pub realm: Realm,
    /// This node's capability chains in the realm (`realm/join`, `msg/publish`, …). The owner's
    /// node and nodes in open realms need none.
    pub chains: Vec<Chain>,
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Key, listen and bootstrap addresses.
    pub net: NetConfig,
    /// Realms hosted, in a fixed order (a realm's position is its index on the wire).
    pub realms: Vec<RealmConfig>,
    /// Labels shown to peers (`region=eu`).
    pub tags: Vec<(String, String)>,
    /// How lost peers are redialed.
    pub reconnect: BackoffPolicy,
    /// Events buffered per local subscription before new ones are dropped (and counted). The
    /// router hands events over a batch at a time; the batch the application is taking events
    /// from no longer counts.
    pub subscriber_queue: usize,
    /// Bytes (payloads and topics, plus about 100 bytes an event) queued per local subscription
    /// before new events are dropped (and counted): 4096 events of up to 1 MiB would be 4 GiB.
    pub subscriber_queue_bytes: usize,
    /// Frames buffered per peer before new ones are dropped (and counted).
    pub peer_queue: usize,
    /// Largest payload accepted for publishing.
    pub max_payload: usize,
    /// What publishing does when a peer's queue fills up.
    pub congestion: Congestion,
    /// How far clocks may disagree: a token holds this long past its `exp` (and before its
    /// `nbf`). Standing grants end once their chain has expired by more than this.
    pub clock_leeway: std::time::Duration,
    /// Where revocation records this node learns are appended, one JSON record per line, so
    /// that they survive a restart (the node reads none itself: give them in `revocations`).
    pub revocations_file: Option<std::path::PathBuf>,
    /// Revocation records applied at start (not appended to `revocations_file` again).
    pub revocations: Vec<weft_ucan::Revocation>,
    /// What peers can make this node hold or do.
    pub limits: Limits,
    /// Threads shared with other nodes of this process, instead of the node's own (see
    /// [`SharedRuntime`](crate::SharedRuntime): for nodes that live as long as the runtime).
    pub shared: Option<crate::SharedRuntime>,
}

/// Bounds on what peers can make a node hold or do. Past each, the node refuses or lets go and
/// counts it (`docs/operations.md` lists the counters).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Connections held at once, inbound and outbound (default 64). A new one takes the place
    /// of the oldest that carries no session; sessions are held to three quarters of this, a
    /// new one releasing the session idle longest (see `idle_session`).
    pub max_connections: u32,
    /// Inbound QUIC handshakes in progress at once (default 128).
    pub max_incoming_handshakes: u32,
    /// Sessions whose peer has not said hello yet (default 256); one more lets the oldest go.
    pub max_silent_peers: usize,
    /// How long a peer has to send its hello before its connection is closed (default 5 s).
    pub hello_timeout: std::time::Duration,
    /// Subscriptions one peer may hold in a realm (default 10 000): each wildcard one is matched
    /// against every publication.
    pub max_subscriptions_per_peer: usize,
    /// Procedures one peer may advertise in a realm (default 1024).
    pub max_procedures_per_peer: usize,
    /// Calls of one peer this node runs, holds waiting or relays at once, in a realm (default
    /// 1024). Whatever this is, a caller runs at most 256 handlers at once (a quarter of the 1024
    /// a realm runs), its further calls waiting their turn within their deadline, and its calls
    /// in flight hold at most 16 MiB of payloads: no caller can take every handler.
    pub max_calls_per_peer: usize,
    /// Longest a call is served, whatever timeout its caller gives (default 5 min).
    pub max_call_duration: std::time::Duration,
    /// Members of a realm this node connects to from the realm's membership records (default
    /// 32, and never more than half the sessions `max_connections` allows: see
    /// [`Limits::mesh_size`]). A realm that small is a full mesh;
    /// past it, the node connects only to the members its subscriptions, publications and
    /// calls need, which it finds in the DHT.
    pub mesh_members: usize,
    /// How long a session carries no publication, call, reply or interest before it may be
    /// released to make room for a new one, once the node holds as many sessions as
    /// `max_connections` allows (default 30 s). A client's session is never released.
    pub idle_session: std::time::Duration,
}

impl Limits {
    /// The members a realm dials from its membership records, as the node applies
    /// `mesh_members`: at most half the sessions the connection budget allows, so that the
    /// other half is there for the peers its subscriptions, publications and calls need.
    pub fn mesh_size(&self) -> usize {
        self.mesh_members
            .min(crate::core::budget::session_cap(self.max_connections) / 2)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            max_incoming_handshakes: 128,
            max_silent_peers: 256,
            hello_timeout: std::time::Duration::from_secs(5),
            max_subscriptions_per_peer: 10_000,
            max_procedures_per_peer: 1024,
            max_calls_per_peer: 1024,
            max_call_duration: std::time::Duration::from_secs(300),
            mesh_members: 32,
            idle_session: std::time::Duration::from_secs(30),
        }
    }
}

/// What publishing does when a receiving peer cannot keep up (its send queue fills).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Congestion {
    /// Drop what does not fit and count it (`dropped_slow_peer`); publishing never waits on a
    /// slow peer. The default, as in Zenoh: one slow subscriber cannot slow a realm down.
    #[default]
    Drop,
    /// Slow the publisher down instead: a publish resolves only once every peer it was queued to
    /// is below half its queue. Nothing is dropped at the sender while publishers await their
    /// publishes; the realm goes at the pace of its slowest subscriber.
    Block,
}

impl std::str::FromStr for Congestion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "drop" => Ok(Self::Drop),
            "block" => Ok(Self::Block),
            other => Err(format!("expected `drop` or `block`, got `{other}`")),
        }
    }
}

impl std::fmt::Display for Congestion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Drop => "drop",
            Self::Block => "block",
        })
    }
}

impl NodeConfig {
    /// Defaults around a network configuration.
    pub fn new(net: NetConfig) -> Self {
        Self {
            net,
            realms: Vec::new(),
            tags: Vec::new(),
            reconnect: BackoffPolicy::default(),
            subscriber_queue: 4096,
            subscriber_queue_bytes: 16 * 1024 * 1024,
            peer_queue: 16 * 1024,
            max_payload: 1024 * 1024,
            congestion: Congestion::Drop,
            clock_leeway: std::time::Duration::from_secs(60),
            revocations_file: None,
            revocations: Vec::new(),
            limits: Limits::default(),
            shared: None,
        }
    }
}
