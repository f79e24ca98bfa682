//! weft's capability model: who may do what in which realm.
//!
//! Authority in a realm starts with its owner's key. The owner issues UCAN 0.10 tokens for
//! `weft://` resources; holders re-delegate narrower ones; a node receiving a publication, a
//! subscription, a call or an advertisement asks [`Authorizer::authorize`] whether the chain the
//! acting peer presented allows exactly that action. This crate turns generic UCAN validation
//! (`weft-ucan`) into that one decision, with weft's resource semantics, and caches verified chains
//! by CID so the per-message cost is a hash lookup and a walk over a few parsed capabilities.
//!
//! Sans-IO like the layers below it: `now` is an argument, and nothing here does I/O.
//!
//! # Layout
//! - [`resource`]: [`Resource`], `weft://<realm>` and `weft://<realm>/<pattern>`, with containment.
//! - [`ability`]: [`Ability`], the five weft abilities, and [`AbilitySet`], what a granted
//!   ability string (`msg/*`, `*`, …) covers.
//! - [`action`]: [`Action`], one thing a principal wants to do, as the router asks it.
//! - [`realm`]: [`Realm`], a realm name with its owner (or open, for development).
//! - [`semantics`]: [`WeftSemantics`], the UCAN [`Semantics`](weft_ucan::Semantics) for
//!   attenuation checks.
//! - [`chain`]: [`Chain`], a presented token with the proofs it cites.
//! - [`authorizer`]: [`Authorizer`], [`Grant`]: verification cache, revocation, the decision.
//! - [`budget`]: [`VerifyBudget`], how many chains one source may have verified cold.
//! - [`error`]: [`AuthError`], with the contract's error codes.
#![warn(missing_docs)]

pub mod ability;
pub mod action;
pub mod authorizer;
pub mod budget;
pub mod chain;
pub mod error;
pub mod realm;
pub mod resource;
pub mod semantics;

pub use ability::{Ability, AbilitySet};
pub use action::Action;
pub use authorizer::{Authorizer, DEFAULT_CACHE_CAPACITY, Grant, MAX_RECORDS};
pub use budget::{Budgets, VERIFY_BURST, VERIFY_PER_SECOND, VerifyBudget};
pub use chain::Chain;
pub use error::AuthError;
pub use realm::Realm;
pub use resource::{Resource, ResourceError, SCHEME};
pub use semantics::WeftSemantics;
