//! The `Dht` actor: the one front to Kademlia.
//!
//! Inbound: [`Provide`], [`StopProviding`], [`ForgetProvider`] and [`FindProviders`] from realm
//! actors. Outbound: one network command per
//! message; results are logged, and providers found are dialed by the network layer
//! while the query still knows their addresses. Lives as long as the node.

use actix::prelude::*;
use tracing::{debug, warn};
use weft_net::Network;

/// Announce this node as a provider of `key` (a realm's membership key).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Provide {
    /// The DHT key.
    pub key: Vec<u8>,
}

/// Withdraw this node's provider record for `key`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopProviding {
    /// The DHT key.
    pub key: Vec<u8>,
}

/// `peer` left on purpose: drop its provider records for `keys` from this node's store, so
/// lookups here stop returning it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ForgetProvider {
    /// The peer that left.
    pub peer: weft_net::PeerId,
    /// The DHT keys it provided.
    pub keys: Vec<Vec<u8>>,
}

/// Look up the providers of `key`; returns those found.
#[derive(Debug, Message)]
#[rtype(result = "Vec<weft_net::PeerId>")]
pub struct FindProviders {
    /// The DHT key.
    pub key: Vec<u8>,
}

/// Fronts the network's Kademlia for the actors.
#[derive(Debug)]
pub struct Dht {
    network: Network,
}

impl Dht {
    /// A DHT front over `network`.
    pub fn new(network: Network) -> Self {
        Self { network }
    }
}

impl Actor for Dht {
    type Context = Context<Self>;
}

/// Starts providing; failures are logged (the record is republished periodically anyway).
impl Handler<Provide> for Dht {
    type Result = ();

    fn handle(&mut self, msg: Provide, ctx: &mut Context<Self>) {
        let network = self.network.clone();
        ctx.spawn(
            async move {
                if let Err(e) = network.provide(msg.key).await {
                    warn!(error = %e, "cannot announce realm membership in the DHT");
                }
            }
            .into_actor(self),
        );
    }
}

/// Stops providing; the record then expires at the peers that stored it.
impl Handler<StopProviding> for Dht {
    type Result = ();

    fn handle(&mut self, msg: StopProviding, ctx: &mut Context<Self>) {
        let network = self.network.clone();
        ctx.spawn(
            async move {
                let _ = network.stop_providing(msg.key).await;
            }
            .into_actor(self),
        );
    }
}

/// Forgets a departed provider's records.
impl Handler<ForgetProvider> for Dht {
    type Result = ();

    fn handle(&mut self, msg: ForgetProvider, ctx: &mut Context<Self>) {
        let network = self.network.clone();
        ctx.spawn(async move { network.forget(msg.peer, msg.keys).await }.into_actor(self));
    }
}

/// Runs a provider lookup.
impl Handler<FindProviders> for Dht {
    type Result = ResponseFuture<Vec<weft_net::PeerId>>;

    fn handle(&mut self, msg: FindProviders, _ctx: &mut Context<Self>) -> Self::Result {
        let network = self.network.clone();
        Box::pin(async move {
            match network.find_providers(msg.key).await {
                Ok(found) => {
                    debug!(providers = found.len(), "providers found");
                    found.into_iter().collect()
                }
                Err(e) => {
                    debug!(error = %e, "provider lookup failed");
                    Vec::new()
                }
            }
        })
    }
}
