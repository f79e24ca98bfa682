//! Runtime errors.

use weft_auth::AuthError;
use weft_net::NetError;

/// The node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The network could not start.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The actor system could not start.
    #[error("cannot start the actor system: {0}")]
    Actors(String),
    /// Two realms with the same name and owner were configured.
    #[error("realm {0} is configured twice")]
    DuplicateRealm(String),
}

/// A publication was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// This node may not publish to that topic.
    #[error("not allowed to publish: {0}")]
    Unauthorized(AuthError),
    /// The payload is larger than the node accepts.
    #[error("payload of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The payload's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The node is shutting down.
    #[error("the node has stopped")]
    Stopped,
}

/// A subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// This node may not subscribe to that pattern.
    #[error("not allowed to subscribe: {0}")]
    Unauthorized(AuthError),
    /// The node is shutting down.
    #[error("the node has stopped")]
    Stopped,
}
