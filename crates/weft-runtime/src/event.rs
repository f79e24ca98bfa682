//! What applications receive.

use bytes::Bytes;
use weft_identity::Did;
use weft_names::Name;

/// A publication delivered to a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The topic it was published to.
    pub topic: Name,
    /// The payload, as published.
    pub payload: Bytes,
    /// Who published it, as proven by the transport (or this node, for local publications).
    pub publisher: Did,
}

impl Event {
    /// The payload decoded as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

/// A connected peer, as the application sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    /// The peer's DID.
    pub did: Did,
    /// Its software (`weft/0.1.0`).
    pub agent: String,
    /// Its tags (`region=eu`).
    pub tags: Vec<(String, String)>,
    /// The address of the connection.
    pub addr: String,
}

/// A peer came or went.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// A peer completed the handshake.
    Up(PeerInfo),
    /// A peer's last connection closed.
    Down {
        /// Which peer.
        did: Did,
    },
    /// A peer refused to admit this node to a realm; other realms are unaffected.
    Denied {
        /// Which peer.
        did: Did,
        /// The realm (`name=owner`).
        realm: String,
        /// The contract error code (`unauthorized`, `expired`, …).
        code: String,
        /// The peer's explanation.
        reason: String,
    },
    /// A peer refused a session with this node outright: it speaks another wire version
    /// (`incompatibleVersion`, the reason naming both). It is not dialed again for it.
    Refused {
        /// Which peer.
        did: Did,
        /// The contract error code.
        code: String,
        /// The peer's explanation.
        reason: String,
    },
    /// A bootstrap address could not be reached. While the node has no peer it keeps dialing
    /// its bootstrap addresses, on the reconnect schedule.
    Unreachable {
        /// The address dialed.
        addr: String,
        /// Why it failed.
        error: String,
    },
}

/// Counters of one realm on this node; drops are never silent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RealmStats {
    /// Publications this node sent.
    pub published: u64,
    /// Events handed to local subscriptions.
    pub delivered: u64,
    /// Events dropped because a local subscription's queue was full.
    pub dropped_slow_subscriber: u64,
    /// Frames dropped because a peer's send queue was full.
    pub dropped_slow_peer: u64,
    /// Deliveries lost to members whose session ended without a goodbye: publications matching
    /// their subscriptions from then until they were back and had announced them again (or a
    /// minute passed).
    pub dropped_peer_gone: u64,
    /// Publications queued for a member whose session ended before they were written (or whose
    /// last write failed): the member never got them.
    pub dropped_session_ended: u64,
    /// Publications refused by authorization: peers' publications, and this node's own that
    /// were refused before sending.
    pub denied: u64,
    /// Duplicates suppressed.
    pub duplicates: u64,
    /// Signed batches of publications this node passed into the overlay: its own and its
    /// clients', where sessions are scarce, and other members' it passed on.
    pub forwarded: u64,
    /// Forwarded batches refused: a signature that does not verify, too old, another realm, or
    /// a publisher without `msg/publish` for one of the topics.
    pub forward_refused: u64,
    /// Forwarded batches this node missed, asked a member for once it offered them, and took
    /// from it.
    pub forward_repaired: u64,
    /// Publications too large to forward with the publisher's chains (a frame is at most
    /// `weft_wire::DEFAULT_MAX_FRAME`): sent only to the subscribers this node holds a session with.
    pub dropped_unforwardable: u64,
    /// Publications that arrived more than 4,096 numbers behind their publisher's highest
    /// one here (a forwarded copy on a slow path): whether they were delivered is no longer
    /// known, so they are dropped and counted.
    pub dropped_too_late: u64,

    /// Remote subscriptions currently routed to.
    pub remote_subscriptions: u64,
    /// Peers admitted to the realm.
    pub members: u64,
}

/// The nodes the DHT names for a topic's buckets (see `docs/architecture.md`, "Finding
/// publishers and subscribers"): hints of who publishes or subscribes there, not authority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicPeers {
    /// Nodes announced as publishers in one of the topic's buckets, sorted.
    pub publishers: Vec<Did>,
    /// Nodes announced as subscribers in one of the topic's buckets, sorted.
    pub subscribers: Vec<Did>,
}
