//! weft: a runtime for distributed applications on a peer-to-peer mesh.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft::Error> {
//! // Two services on one open development realm.
//! let a = weft::Node::builder().open_realm("dev").start().await?;
//! let b = weft::Node::builder().bootstrap(a.listen_addrs()[0].to_string()).open_realm("dev").start().await?;
//! let mut orders = b.realm("dev").expect("configured").subscribe("orders.*").await?;
//! a.realm("dev").expect("configured").publish("orders.placed", &serde_json::json!({"id": 7})).await?;
//! let event = orders.next().await;
//! # Ok(()) }
//! ```
//!
//! Services join **realms** (isolated namespaces, each rooted at an owner's key), publish and
//! subscribe to topics, and advertise and call procedures. Who may do what is decided by **UCAN
//! 0.10** capability chains that start at the realm's owner and are checked by the receiving node.
//!
//! This crate is the one applications depend on; it re-exports the layers below it.
//!
//! # Layout
//! - [`Node`], [`NodeBuilder`], [`RealmHandle`]: start a node, publish and subscribe.
//! - [`Error`]: what the facade can fail with.
//! - [`names`]: realm names, topic and procedure names, wildcard patterns.
//! - [`identity`]: Ed25519 keys, PKCS#8 key files, `did:key` names.
//! - [`ucan`]: UCAN 0.10.0 tokens: build, parse, verify, proof CIDs.
//! - [`auth`]: the capability model: `weft://` resources, abilities, [`Authorizer`].
//! - [`telemetry`]: the `tracing` target of weft's spans and events; its metrics go through the
//!   `metrics` facade (install a recorder, e.g. `weft_http::install_metrics`, before starting a
//!   node). The HTTP surface (health, metrics, status, gateway) is the `weft-http` crate.
//!
//! # Delegating a capability
//! ```
//! use weft::{Action, Authorizer, Builder, Chain, Keypair, Name, Realm, RealmName};
//!
//! let owner = Keypair::generate()?;
//! let service = Keypair::generate()?;
//! let realm = Realm::owned(RealmName::new("io.acme")?, owner.did());
//!
//! // The realm owner lets the service call anything under `orders.`.
//! let token = Builder::new(&owner, service.did())
//!     .expires_at(4_000_000_000)
//!     .claim("weft://io.acme/orders.*", "rpc/call")
//!     .build()?;
//!
//! // A receiving node checks the call before delivering it.
//! let chain = Chain::new(token, []);
//! let get = Name::new("orders.get")?;
//! let grant = Authorizer::new().authorize(&realm, Some(&chain), &service.did(), Action::Call(&get), 1_800_000_000);
//! assert!(grant.is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod error;
mod node;

pub use error::Error;
pub use node::{CallOptions, Node, NodeBuilder, RealmHandle};
pub use weft_runtime::{
    AdvertiseError, BackoffPolicy, CallContext, CallError, Congestion, DhtProvider, Event,
    HandlerError, Limits, ListenAddrWatch, NatReport, PeerEvent, PeerEvents, PeerInfo,
    ProcedureHandler, PublishError, RealmStats, Registration, SharedRuntime, StartError, Strategy,
    SubscribeError, Subscription, TopicPeers,
};

pub use weft_auth as auth;
pub use weft_identity as identity;
pub use weft_names as names;
pub use weft_ucan as ucan;

pub use weft_auth::{Ability, Action, AuthError, Authorizer, Chain, Grant, Realm, Resource};
pub use weft_identity::{Did, Keypair};
pub use weft_names::{Name, Pattern, RealmName};
pub use weft_net::{DhtFigures, DhtStats, Multiaddr, Path, Reachability};
pub use weft_runtime::simulation;
pub use weft_runtime::telemetry;
pub use weft_ucan::{Builder, Cid, Token, UcanError};
