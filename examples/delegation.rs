//! A realm owner delegates `rpc/call` on `orders.*` to a team; the team re-delegates only
//! `orders.get` to one service; a node checks what the service may call.
//!
//! Run: `cargo run -p weft --example delegation`

use std::time::{SystemTime, UNIX_EPOCH};

use weft::{Action, Authorizer, Builder, Chain, Keypair, Name, Realm, RealmName};

/// What the example saw (checked by `crates/weft/tests/examples.rs`).
#[derive(Debug)]
#[allow(dead_code)] // read by the test, not by `main`
pub(crate) struct Summary {
    /// Each procedure the service tried to call: allowed, or the code it was denied with.
    pub(crate) calls: Vec<(&'static str, Result<(), &'static str>)>,
    /// The code the widened chain was denied with.
    pub(crate) widened: &'static str,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().map(drop)
}

/// Runs the example (no network: the checks are what a receiving node does); an error if a step
/// fails.
pub(crate) fn run() -> Result<Summary, Box<dyn std::error::Error>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let owner = Keypair::generate()?;
    let team = Keypair::generate()?;
    let service = Keypair::generate()?;
    let realm = Realm::owned(RealmName::new("io.acme")?, owner.did());
    println!("realm {realm}");

    // The owner is the root of authority: it grants the team every order procedure for a day.
    let to_team = Builder::new(&owner, team.did())
        .expires_at(now + 86_400)
        .claim("weft://io.acme/orders.*", "rpc/call")
        .build()?;
    println!("owner -> team    rpc/call on orders.*    {}", to_team.cid());

    // The team passes on a narrower slice, for an hour, citing its own token as proof.
    let to_service = Builder::new(&team, service.did())
        .expires_at(now + 3_600)
        .claim("weft://io.acme/orders.get", "rpc/call")
        .proof(*to_team.cid())
        .build()?;
    println!(
        "team -> service  rpc/call on orders.get  {}",
        to_service.cid()
    );

    // A node receiving the service's calls checks each against the presented chain. The first
    // check verifies signatures; later ones hit the cache.
    let chain = Chain::new(to_service, [to_team]);
    let authorizer = Authorizer::new();
    let mut calls = Vec::new();
    for procedure in ["orders.get", "orders.cancel", "billing.refund"] {
        let name = Name::new(procedure)?;
        match authorizer.authorize(
            &realm,
            Some(&chain),
            &service.did(),
            Action::Call(&name),
            now,
        ) {
            Ok(_) => {
                println!("call {procedure:<15} allowed");
                calls.push((procedure, Ok(())));
            }
            Err(e) => {
                println!("call {procedure:<15} denied: {e}");
                calls.push((procedure, Err(e.code())));
            }
        }
    }

    // Widening is impossible: a token claiming more than its proof grants does not verify.
    let greedy = Builder::new(&team, service.did())
        .expires_at(now + 3_600)
        .claim("weft://io.acme/**", "rpc/call")
        .proof(
            *chain
                .proofs()
                .get(&chain.leaf().proofs()[0])
                .ok_or("proof")?
                .cid(),
        )
        .build()?;
    let proofs: Vec<_> = chain
        .leaf()
        .proofs()
        .iter()
        .filter_map(|c| chain.proofs().get(c))
        .map(|t| (**t).clone())
        .collect();
    let greedy = Chain::new(greedy, proofs);
    let anything = Name::new("billing.refund")?;
    let denied = authorizer.authorize(
        &realm,
        Some(&greedy),
        &service.did(),
        Action::Call(&anything),
        now,
    );
    let widened = match denied {
        Err(e) => {
            println!("widened chain    denied: {e}");
            e.code()
        }
        Ok(_) => return Err("the widened chain was allowed".into()),
    };
    Ok(Summary { calls, widened })
}
