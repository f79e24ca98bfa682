//! Why a token or chain is not valid.

/// A token failed to parse or verify.
///
/// [`UcanError::code`] gives the contract's error code (§3 of `docs/contract.md`), which the CLI
/// prints and the conformance fixtures name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UcanError {
    /// A required header or payload field is absent.
    #[error("{part} is missing the {field:?} field")]
    MissingField {
        /// `header` or `payload`.
        part: &'static str,
        /// The field's name.
        field: &'static str,
    },
    /// A field has the wrong JSON type, or a string that should be a DID or CID is not one.
    #[error("{field} {reason}")]
    IncorrectType {
        /// The field's path, such as `payload.exp` or `payload.cap["mailto:a"]`.
        field: String,
        /// What was expected, or what is wrong.
        reason: String,
    },
    /// The token's `exp` is in the past (beyond the leeway).
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's expiry, Unix seconds.
        exp: u64,
        /// The time of the check.
        now: u64,
    },
    /// The token's `nbf` is in the future (beyond the leeway).
    #[error("token is not valid before {nbf} (now {now})")]
    NotReady {
        /// The token's not-before, Unix seconds.
        nbf: u64,
        /// The time of the check.
        now: u64,
    },
    /// A token's validity window is not inside the window of a proof it cites.
    #[error("time bounds violation: {0}")]
    TimeBoundsViolation(String),
    /// A cited proof is missing, or the chain is deeper than allowed.
    #[error("incorrect proofs: {0}")]
    IncorrectProofs(String),
    /// A delegation step is broken: the issuer is not the proof's audience, or a capability is
    /// wider than anything the proofs grant.
    #[error("invalid delegation: {0}")]
    InvalidDelegation(String),
    /// The signature does not verify under the issuer's key.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The header names an algorithm other than EdDSA (including `none`).
    #[error("unsupported algorithm {0:?}: weft accepts EdDSA only")]
    UnsupportedAlg(String),
    /// Not a token at all: wrong shape, bad base64, not JSON, oversized, wrong version.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// A CID string could not be parsed.
    #[error("invalid CID: {0}")]
    InvalidCid(String),
}

impl UcanError {
    /// The contract's error code: `missingField`, `incorrectType`, `expired`, `notReady`,
    /// `timeBoundsViolation`, `incorrectProofs`, `invalidDelegation`, `badSignature`,
    /// `unsupportedAlg` or `malformed`.
    pub fn code(&self) -> &'static str {
        match self {
            UcanError::MissingField { .. } => "missingField",
            UcanError::IncorrectType { .. } => "incorrectType",
            UcanError::Expired { .. } => "expired",
            UcanError::NotReady { .. } => "notReady",
            UcanError::TimeBoundsViolation(_) => "timeBoundsViolation",
            UcanError::IncorrectProofs(_) => "incorrectProofs",
            UcanError::InvalidDelegation(_) => "invalidDelegation",
            UcanError::BadSignature(_) => "badSignature",
            UcanError::UnsupportedAlg(_) => "unsupportedAlg",
            UcanError::Malformed(_) | UcanError::InvalidCid(_) => "malformed",
        }
    }

    pub(crate) fn incorrect_type(field: impl Into<String>, reason: impl Into<String>) -> Self {
        UcanError::IncorrectType {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
