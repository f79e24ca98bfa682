//! The weft node runtime: actors around sans-IO decision cores.
//!
//! ```text
//!                 ┌──────────── actix threads ─────────────┐      weft-net thread
//!  facade ──────► │ Supervisor ── NetEvent stream ◄────────┼────── Driver (swarm)
//!  (handles)      │  ├─ Dht ───── provide / find ──────────┼─────► kad
//!                 │  ├─ PeerConnection ×peer ── frames ◄───┼────── reader task (per stream)
//!                 │  │       │ admits via                  │
//!                 │  ├─ Membership ×realm (members, subs)  │
//!                 │  ├─ Router ×realm (table, authz) ──────┼─────► writer task (per peer)
//!                 │  └─ Registry ×realm (procedures, calls)┼─────► handler tasks
//!                 └────────────────────────────────────────┘
//! ```
//!
//! Decisions are made by plain structs in `core` that own no sockets, timers or threads and read
//! no clock; actors only move messages in and out. Routers and registries, one each per realm, are
//! spread over one arbiter (thread) per core: a realm's publications are handled on one thread in
//! order, different realms in parallel.
//!
//! # Layout
//! - `core`: the sans-IO decisions, each with its tests: the calls a node makes (`calls`), the
//!   greeting (`handshake`), interest tables and wildcard matching, per-publisher sequencing,
//!   providers and strategies, the relay rules for clients, per-peer caps, standing grants,
//!   absent members, silent peers, backoff, DHT keys, and the authority check (`authority`); and
//!   `sim`, which wires several nodes' cores together in memory with simulated time.
//! - [`settings`]: [`NodeConfig`], [`RealmConfig`], [`Limits`].
//! - [`event`]: what applications receive: [`Event`], [`PeerEvent`], [`RealmStats`].
//! - [`supervisor`], [`peer`], [`membership`], [`router`], [`registry`], [`dht`]: one actor each, with its
//!   messages.
//! - [`sender`], `lane`, [`local`]: I/O beside the actors: a peer's send queue, the publish lane,
//!   local delivery.
//! - [`nat`]: [`NatReport`], a node's reachability as applications see it.
//! - [`handle`]: [`NodeHandle`], [`RealmRuntime`], [`Subscription`], [`Registration`];
//!   `start`: the threads, arbiters and actors of a node, and their wiring.
//! - [`error`]: [`StartError`], [`PublishError`], [`SubscribeError`], [`CallError`],
//!   [`AdvertiseError`], [`HandlerError`].
#![warn(missing_docs)]

mod core;
pub mod dht;
pub mod error;
pub mod event;
pub mod handle;
mod lane;
pub mod local;
mod members;
pub mod membership;
pub mod nat;
pub mod peer;
pub mod registry;
mod revocations;
pub mod router;
pub mod sender;
pub mod settings;
mod shared;
pub mod simulation;
mod start;
pub mod supervisor;
pub mod telemetry;
mod waiters;

pub use crate::core::backoff::{Backoff, BackoffPolicy};
pub use crate::core::interest::Interests;
pub use crate::core::providers::Strategy;
pub use error::{
    AdvertiseError, CallError, HandlerError, PublishError, StartError, SubscribeError,
};
pub use event::{Event, PeerEvent, PeerInfo, RealmStats, TopicPeers};
pub use handle::{
    DhtProvider, ListenAddrWatch, NodeHandle, PeerEvents, RealmRuntime, Registration, Subscription,
};
pub use nat::NatReport;
pub use registry::{CallContext, ProcedureHandler};
pub use settings::{Congestion, Limits, NodeConfig, RealmConfig};
pub use shared::SharedRuntime;

/// Seconds since the Unix epoch, for UCAN time checks.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
