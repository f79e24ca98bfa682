//! UCAN 0.10.0: delegable, offline-verifiable capability tokens.
//!
//! A UCAN is a JWT signed by its issuer (`iss`, a `did:key`) granting capabilities (`cap`) to an
//! audience (`aud`), optionally citing proofs (`prf`): the tokens, named by CID, through which the
//! issuer itself holds what it delegates. This crate implements the 0.10.0 specification to the
//! working group's conformance fixtures and knows nothing of weft's resources: what a resource or
//! an ability covers is asked of a [`Semantics`], which the capability layer above supplies.
//!
//! It is sans-IO: time is an argument (`now`, Unix seconds), proofs come from a [`ProofStore`] the
//! caller fills, and nothing here touches a socket, a file or the clock.
//!
//! # Layout
//! - [`token`]: [`Token`], a parsed and structurally checked JWT, and [`decode_unverified`].
//! - [`builder`]: [`Builder`], deterministic token construction and signing.
//! - [`capability`]: [`Capability`] and [`Caveat`], with the ability and caveat attenuation rules.
//! - [`cid`]: [`Cid`], proof references (CIDv1, raw codec, SHA2-256 or BLAKE3, base32).
//! - [`validate`]: [`Validator`], [`ProofStore`] and [`VerifiedToken`]: chain verification.
//! - [`semantics`]: [`Semantics`], the resource and ability rules the validator consults.
//! - [`revocation`]: [`Revocation`], signed records that revoke a token by CID.
//! - [`error`]: [`UcanError`], whose [`code`](UcanError::code) is the contract's error string.
//! - `json`: canonical (sorted-key) JSON, so that building is deterministic.
#![warn(missing_docs)]

pub mod builder;
pub mod capability;
pub mod cid;
pub mod error;
mod json;
pub mod revocation;
pub mod semantics;
pub mod token;
pub mod validate;

pub use builder::Builder;
pub use capability::{Capability, Caveat, ability_covers, caveats_enable};
pub use cid::{Cid, HashAlg};
pub use error::UcanError;
pub use revocation::Revocation;
pub use semantics::{DefaultSemantics, Semantics};
pub use token::{MAX_CAPABILITIES, MAX_TOKEN_LEN, Token, UCAN_VERSION, decode_unverified};
pub use validate::{DEFAULT_LEEWAY, MAX_CHAIN_DEPTH, ProofStore, Validator, VerifiedToken};
