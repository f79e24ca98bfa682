//! The `Dht` actor: the one front to Kademlia.
//!
//! Inbound: [`Provide`], [`StopProviding`], [`ForgetProvider`] and [`FindProviders`] from realm
//! actors. Outbound: one network command per
//! message; results are logged, and providers found are dialed by the network layer
//! while the query still knows their addresses. Lives as long as the node.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use tracing::{debug, warn};
use weft_auth::Realm;
use weft_net::Network;

use crate::core::forward::{self, Scarcity};
use crate::core::keys::{publication_key, subscription_key};
use crate::core::resolve::{Record, Step};

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

/// Look up the providers of `key`, dialing at most `dial` of those not connected; returns
/// those found.
#[derive(Debug, Message)]
#[rtype(result = "Vec<weft_net::PeerId>")]
pub struct FindProviders {
    /// The DHT key.
    pub key: Vec<u8>,
    /// Providers found to dial at most (the network bounds it further).
    pub dial: usize,
    /// Peers that released a session with this node lately are neither dialed nor wanted:
    /// they would release it again, or another, to make room.
    pub skip_released: bool,
}

/// Makes the DHT request a realm's resolver asked for. A lookup's finds are dialed; what it
/// returns is not needed (sessions and their interests follow from the dials).
pub(crate) fn resolve(dht: &Addr<Dht>, realm: &Realm, step: Step) {
    let key = |record: &Record| record_key(realm, record);
    match step {
        Step::Provide(record) => dht.do_send(Provide { key: key(&record) }),
        Step::StopProviding(record) => dht.do_send(StopProviding { key: key(&record) }),
        Step::LookUp(record) => dht.do_send(Connect {
            key: key(&record),
            waited_for: false,
        }),
    }
}

/// The lookup a resolver asked for (`Step::LookUp(record)`), as a request whose answer is the
/// peers found (and dialed): for a caller that waits for it.
pub(crate) fn look_up(
    dht: &Addr<Dht>,
    realm: &Realm,
    record: &Record,
) -> actix::dev::Request<Dht, Connect> {
    dht.send(Connect {
        key: record_key(realm, record),
        waited_for: true,
    })
}

/// The DHT key of a resolver's record in `realm`.
fn record_key(realm: &Realm, record: &Record) -> Vec<u8> {
    match record {
        Record::Subscribers(bucket) => subscription_key(realm, bucket),
        Record::Publishers(bucket) => publication_key(realm, bucket),
    }
}

/// Lookups for [`Connect`] in flight at most: past it, one is dropped (the bucket is looked up
/// again at its next refresh), so that subscriptions and publications to ever new buckets cost
/// a bounded number of queries and dials at once.
const MAX_CONNECTING: usize = 32;

/// Look up the providers of `key` and connect to them; answers those found (none if the
/// lookup was dropped or failed).
#[derive(Debug, Message)]
#[rtype(result = "Vec<weft_net::PeerId>")]
pub(crate) struct Connect {
    key: Vec<u8>,
    /// A publication waits for it: it is made even while sessions are scarce.
    waited_for: bool,
}

/// Fronts the network's Kademlia for the actors.
#[derive(Debug)]
pub struct Dht {
    network: Network,
    /// [`Connect`] lookups in flight.
    connecting: usize,
    /// While sessions are scarce, lookups dial few of what they find, or are not made
    /// (`forward::dials_per_lookup`).
    scarcity: Arc<Scarcity>,
}

impl Dht {
    /// A DHT front over `network`.
    pub fn new(network: Network) -> Self {
        Self {
            network,
            connecting: 0,
            scarcity: Arc::new(Scarcity::new(Instant::now())),
        }
    }

    /// Reads whether sessions are scarce from `scarcity`.
    pub(crate) fn scarcity(mut self, scarcity: Arc<Scarcity>) -> Self {
        self.scarcity = scarcity;
        self
    }
}

/// Runs a lookup whose finds are dialed, unless [`MAX_CONNECTING`] are in flight.
impl Handler<Connect> for Dht {
    type Result = ResponseActFuture<Self, Vec<weft_net::PeerId>>;

    fn handle(&mut self, msg: Connect, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(dial) =
            forward::dials_per_lookup(self.scarcity.scarce(Instant::now()), msg.waited_for)
        else {
            debug!("sessions are scarce: the overlay reaches whom this lookup would find");
            metrics::counter!("weft_dht_lookups_skipped_total").increment(1);
            return Box::pin(actix::fut::ready(Vec::new()));
        };
        if self.connecting >= MAX_CONNECTING {
            debug!("too many lookups in flight; this one waits for its refresh");
            metrics::counter!("weft_dht_lookups_dropped_total").increment(1);
            return Box::pin(actix::fut::ready(Vec::new()));
        }
        self.connecting += 1;
        let network = self.network.clone();
        let lookup = async move { network.find_providers_dialing(msg.key, dial).await };
        Box::pin(lookup.into_actor(self).map(|found, act, _ctx| {
            act.connecting -= 1;
            match found {
                Ok(found) => {
                    debug!(found = found.len(), "publishers or subscribers found");
                    found.into_iter().collect()
                }
                Err(e) => {
                    debug!(error = %e, "provider lookup failed");
                    Vec::new()
                }
            }
        }))
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
            let found = if msg.skip_released {
                network.find_unreleased_dialing(msg.key, msg.dial).await
            } else {
                network.find_providers_dialing(msg.key, msg.dial).await
            };
            match found {
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

#[cfg(test)]
mod tests {
    use crate::core::rendezvous::{SHARDS, shard_of};

    /// The network refuses a shard record whose provider's identity picks another shard: it
    /// must pick the shard the membership announces under.
    #[test]
    fn the_network_and_the_core_agree_on_a_members_shard() {
        assert_eq!(SHARDS, weft_net::MEMBERSHIP_SHARDS);
        for _ in 0..200 {
            let did = weft_identity::Keypair::generate().unwrap().did();
            assert_eq!(shard_of(&did), weft_net::membership_shard(&did), "{did}");
        }
    }
}
