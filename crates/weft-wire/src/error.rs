//! Why bytes are not a frame.

/// A frame could not be encoded or decoded. Decoding errors mean the stream is unusable: the
/// peer sent something no well-behaved weft node sends, and the stream is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length prefix announces more than the limit; nothing of the body was buffered.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Announced (or, when encoding, actual) frame length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer speaks another wire version.
    #[error("peer speaks weft wire version {theirs}, this node speaks {ours}")]
    UnsupportedVersion {
        /// The version byte received.
        theirs: u8,
        /// Ours.
        ours: u8,
    },
    /// The body is not a valid frame (bad encoding, invalid name, trailing bytes, empty).
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A frame decoded but breaks a limit of the protocol (too many tags, realms, chains…).
    #[error("frame breaks a protocol limit: {0}")]
    Limit(String),
}
