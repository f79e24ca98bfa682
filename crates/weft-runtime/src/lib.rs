//! The weft node runtime.
//!
//! Decisions are made by plain structs that own no sockets, timers or threads, so they are tested
//! with plain function calls; the actors around them only move messages in and out.
//!
//! # Layout
//! - [`interest`]: [`Interests`], who wants which topics: the router's table.
//! - [`sequence`]: [`Sequencer`], per-publisher ordering, duplicate suppression and gap counting.
//! - [`backoff`]: [`Backoff`], reconnect delays with exponential growth and jitter.
#![warn(missing_docs)]

pub mod backoff;
pub mod interest;
pub mod sequence;

pub use backoff::{Backoff, BackoffPolicy};
pub use interest::Interests;
pub use sequence::{Sequenced, Sequencer};
