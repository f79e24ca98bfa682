//! Runtime errors.

use weft_auth::AuthError;
use weft_net::NetError;
use weft_wire::Fault;

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
    /// The realms and chains would not fit the greeting that tells peers about them.
    #[error("this node's realms and chains cannot be sent to peers: {0}")]
    TooLarge(weft_wire::WireError),
    /// A revocation record given at start does not verify.
    #[error("revocation record refused: {0}")]
    Revocation(weft_auth::AuthError),
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

/// A call failed (the typed errors of contract §4, `docs/contract.md`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No provider of the procedure is known in the realm.
    #[error("no provider of {0} in the realm")]
    NotFound(String),
    /// No reply before the timeout.
    #[error("no reply within the timeout")]
    Timeout,
    /// The caller may not call the procedure (checked here, and by the provider).
    #[error("not allowed to call: {0}")]
    Unauthorized(String),
    /// The handler returned an error (or panicked).
    #[error("remote error {code}: {message}")]
    Remote {
        /// The handler's code.
        code: String,
        /// The handler's message.
        message: String,
    },
    /// Providers exist but none could be reached, or the connection was lost mid-call.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl CallError {
    /// The contract's name for the error kind.
    pub fn code(&self) -> &str {
        match self {
            CallError::Remote { code, .. } => code,
            runtime => runtime.fault().map_or("unavailable", Fault::code),
        }
    }

    /// What a provider's runtime reported, as its caller sees it. A `limit` is the provider's
    /// way of saying it cannot take the call now: to the caller, unavailable.
    pub fn from_fault(fault: Fault, message: String) -> Self {
        match fault {
            Fault::NotFound => CallError::NotFound(message),
            Fault::Unauthorized => CallError::Unauthorized(message),
            Fault::Timeout => CallError::Timeout,
            Fault::Unavailable | Fault::Limit => CallError::Unavailable(message),
        }
    }

    /// The error's explanation without its kind, as a fault or remote error carries it.
    pub fn detail(&self) -> String {
        match self {
            CallError::NotFound(what) => what.clone(),
            CallError::Timeout => "no reply within the timeout".to_owned(),
            CallError::Unauthorized(why) | CallError::Unavailable(why) => why.clone(),
            CallError::Remote { message, .. } => message.clone(),
        }
    }

    /// The fault that reports this error to a caller further away; `None` for a handler's own
    /// error, which travels as it is.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            CallError::NotFound(_) => Some(Fault::NotFound),
            CallError::Timeout => Some(Fault::Timeout),
            CallError::Unauthorized(_) => Some(Fault::Unauthorized),
            CallError::Unavailable(_) => Some(Fault::Unavailable),
            CallError::Remote { .. } => None,
        }
    }
}

/// A procedure could not be advertised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdvertiseError {
    /// This node may not provide that procedure.
    #[error("not allowed to advertise: {0}")]
    Unauthorized(AuthError),
    /// This node already provides it; drop the first registration to replace the handler.
    #[error("{0} is already provided by this node")]
    AlreadyProvided(String),
    /// The node is shutting down.
    #[error("the node has stopped")]
    Stopped,
}

/// What a handler returns instead of a result; the caller sees it as [`CallError::Remote`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct HandlerError {
    /// A short machine-readable code, e.g. `out_of_stock`.
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
}

impl HandlerError {
    /// A handler error with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}
