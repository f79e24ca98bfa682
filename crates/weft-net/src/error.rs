//! Network errors.

/// A network operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// An address could not be parsed.
    #[error("invalid address {addr:?}: {reason}")]
    Address {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The swarm could not be built or could not listen.
    #[error("cannot start the network: {0}")]
    Start(String),
    /// Dialing a peer failed.
    #[error("dial failed: {0}")]
    Dial(String),
    /// A DHT operation failed.
    #[error("DHT: {0}")]
    Dht(String),
    /// Opening a stream to a peer failed.
    #[error("cannot open a stream to {peer}: {reason}")]
    Stream {
        /// The peer.
        peer: String,
        /// Why.
        reason: String,
    },
    /// The network thread has stopped.
    #[error("the network has shut down")]
    Shutdown,
    /// The peer answered a new stream with `Release`: it holds as many sessions as its budget
    /// allows, none of them idle.
    #[error("the peer has no room for another session")]
    Released,
    /// The session a stream was being opened for ended first: no stream was left open.
    #[error("the session ended before its stream was acknowledged")]
    Abandoned,
    /// The peer refused the stream with `Refused` (another wire version, for one).
    #[error("refused by the peer: {code}: {reason}")]
    Refused {
        /// The contract error code (`incompatibleVersion`).
        code: String,
        /// The peer's explanation.
        reason: String,
    },
}
