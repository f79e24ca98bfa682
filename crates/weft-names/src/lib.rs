//! Names in weft: realms, topics, procedures and the wildcard patterns over them.
//!
//! This is the bottom of the stack. It does no I/O and depends on nothing but `thiserror`, so every
//! other layer (UCAN capabilities, the wire format, the router) can share one definition of what a
//! valid name is and what a pattern matches.
//!
//! # Layout
//! - [`realm`]: [`RealmName`], reverse-DNS realm names (`io.acme`).
//! - [`name`]: [`Name`], realm-relative topic and procedure names (`orders.order_placed`).
//! - [`pattern`]: [`Pattern`], names with `*` (one segment) and `**` (zero or more segments), with
//!   matching against names and containment between patterns ([`containment`]), both over
//!   [`segment`]s.
//! - [`error`]: [`NameError`], why a string is not a valid name or pattern.
//!
//! The grammar is the contract's (§2 of `docs/contract.md`); limits are exported as constants so
//! that decoders can bound their input before they parse it.
#![warn(missing_docs)]

pub mod containment;
pub mod error;
pub mod name;
pub mod pattern;
pub mod realm;
pub mod segment;
#[cfg(feature = "serde")]
mod serde_impls;

pub use error::NameError;
pub use name::{MAX_NAME_LEN, MAX_SEGMENTS, Name};
pub use pattern::Pattern;
pub use realm::{MAX_REALM_LEN, MAX_REALM_SEGMENTS, RealmName};
pub use segment::Segment;
