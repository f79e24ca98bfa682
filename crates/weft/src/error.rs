//! The facade's error type.

use weft_names::NameError;
use weft_net::NetError;
use weft_runtime::{AdvertiseError, CallError, PublishError, StartError, SubscribeError};

/// Anything the facade can fail with; each variant wraps the layer's own error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The builder was given something unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A realm, topic or pattern is not valid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// An address is not valid.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The node could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A publication was refused.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// A subscription was refused.
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
    /// A procedure could not be advertised.
    #[error(transparent)]
    Advertise(#[from] AdvertiseError),
    /// A call failed: not found, timeout, unauthorized, remote error or unavailable.
    #[error(transparent)]
    Call(#[from] CallError),
    /// A revocation record that does not verify, or one too many.
    #[error("revocation record refused: {0}")]
    Revocation(weft_auth::AuthError),
    /// A payload could not be encoded or decoded as JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}
