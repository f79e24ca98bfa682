//! Why an action was refused.

use weft_identity::Did;
use weft_ucan::{Cid, UcanError};

/// An action was not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The chain itself is invalid (signature, proofs, time, shape); carries the UCAN error.
    #[error(transparent)]
    Invalid(#[from] UcanError),
    /// A token in the chain has been revoked.
    #[error("token {0} in the chain was revoked")]
    Revoked(Cid),
    /// The chain was delegated to someone other than the principal acting.
    #[error("the chain is delegated to {audience}, not to {actor} who is acting")]
    WrongAudience {
        /// The leaf token's audience.
        audience: Did,
        /// The principal proven by the transport.
        actor: Did,
    },
    /// The chain is valid but does not grant this action in this realm from its owner.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The source has had too many chains verified lately; this one was not checked.
    #[error("limit: {0}")]
    Limit(String),
}

impl AuthError {
    /// The contract's error code (§3 of `docs/contract.md`): a UCAN code, `revoked`,
    /// `wrongAudience`, `unauthorized`, or `limit` (the source's verification budget is spent).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Invalid(e) => e.code(),
            AuthError::Revoked(_) => "revoked",
            AuthError::WrongAudience { .. } => "wrongAudience",
            AuthError::Unauthorized(_) => "unauthorized",
            AuthError::Limit(_) => "limit",
        }
    }
}
