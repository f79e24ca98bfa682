//! The weft node runtime: actors around sans-IO decision cores.
//!
//! ```text
//!                 ┌──────────── actix threads ─────────────┐      weft-net thread
//!  facade ──────► │ Node ── NetEvent stream ◄──────────────┼────── Driver (swarm)
//!  (handles)      │  ├─ Dht ───── provide / find ──────────┼─────► kad
//!                 │  ├─ PeerConnection ×peer ── frames ◄───┼────── reader task (per stream)
//!                 │  │       │ admits via                  │
//!                 │  ├─ Realm ×realm (membership, subs)    │
//!                 │  ├─ Router ×realm (table, authz) ──────┼─────► writer task (per peer)
//!                 │  └─ Registry ×realm (procedures, calls)┼─────► handler tasks
//!                 └────────────────────────────────────────┘
//! ```
//!
//! Decisions are made by plain structs ([`Interests`], [`Sequencer`], [`Backoff`],
//! [`providers::Providers`]) that own no sockets, timers or threads; actors only move messages in
//! and out. Routers and registries, one each per realm, are spread over one arbiter (thread) per
//! core: a realm's publications are handled on one thread in order, different realms in parallel.
//!
//! # Layout
//! - [`interest`], [`sequence`], [`backoff`], [`providers`], [`handshake`]: the sans-IO cores.
//! - [`settings`]: [`NodeConfig`], [`RealmConfig`].
//! - [`event`]: what applications receive: [`Event`], [`PeerEvent`], [`RealmStats`].
//! - [`node`], [`peer`], [`realm`], [`router`], [`registry`], [`dht`]: one actor each, with its
//!   messages.
//! - [`runtime`]: [`NodeHandle`], [`RealmHandle`], starting the threads and actors and stopping
//!   them.
//! - [`error`]: [`StartError`], [`PublishError`], [`SubscribeError`], [`CallError`],
//!   [`AdvertiseError`], [`HandlerError`].
#![warn(missing_docs)]

mod absent;
mod authority;
pub mod backoff;
mod caps;
mod chains;
mod core;
pub mod dht;
pub mod error;
pub mod event;
pub mod handshake;
pub mod interest;
pub mod keys;
mod lane;
pub mod local;
mod members;
pub mod node;
pub mod peer;
pub mod providers;
pub mod realm;
pub mod registry;
mod relay;
mod revocations;
pub mod router;
pub mod runtime;
pub mod sender;
pub mod sequence;
pub mod settings;
mod silent;
mod standing;
pub mod telemetry;
mod waiters;
mod wildcards;

pub use backoff::{Backoff, BackoffPolicy};
pub use error::{
    AdvertiseError, CallError, HandlerError, PublishError, StartError, SubscribeError,
};
pub use event::{Event, PeerEvent, PeerInfo, RealmStats};
pub use interest::Interests;
pub use providers::Strategy;
pub use registry::{CallContext, ProcedureHandler};
pub use runtime::{NodeHandle, PeerEvents, RealmHandle, Registration, Subscription};
pub use sequence::{SequenceRun, Sequenced, Sequencer};
pub use settings::{Congestion, Limits, NodeConfig, RealmConfig};

/// Seconds since the Unix epoch, for UCAN time checks.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
