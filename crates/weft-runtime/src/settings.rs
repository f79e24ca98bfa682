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
    /// Events buffered per local subscription before new ones are dropped (and counted).
    pub subscriber_queue: usize,
    /// Frames buffered per peer before new ones are dropped (and counted).
    pub peer_queue: usize,
    /// Largest payload accepted for publishing.
    pub max_payload: usize,
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
            peer_queue: 16 * 1024,
            max_payload: 1024 * 1024,
        }
    }
}
