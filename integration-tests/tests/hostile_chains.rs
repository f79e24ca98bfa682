//! Chains built to make checking them expensive, presented by peers that hold no authority at all:
//! each is settled in microseconds, and a legitimate member is admitted meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use weft::{Builder, Chain, Did, Keypair, Node, PeerEvent, Token};
use weft_integration_tests::{shutdown, within};

const REALM: &str = "io.acme";

fn token(
    issuer: &Keypair,
    audience: Did,
    resource: &str,
    ability: &str,
    proof: Option<&Token>,
) -> Token {
    let mut builder = Builder::new(issuer, audience)
        .expires_at(4_000_000_000)
        .claim(resource, ability);
    if let Some(proof) = proof {
        builder = builder.proof(*proof.cid());
    }
    builder.build().unwrap()
}

/// The review's delegation: `x.**` narrowed to `x.**.a` and 29 `*`, which took hours to check,
/// issued by keys of the attacker's own (no authority in the realm).
fn blow_up(attacker: &Keypair) -> Chain {
    let (k1, k2) = (Keypair::generate().unwrap(), Keypair::generate().unwrap());
    let wide = token(&k1, k2.did(), "weft://io.acme/x.**", "msg/publish", None);
    let narrow = format!("weft://io.acme/x.**.a{}", ".*".repeat(29));
    let leaf = token(&k2, attacker.did(), &narrow, "msg/publish", Some(&wide));
    Chain::new(leaf, [wide])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exponential_delegation_in_a_hello_costs_nothing_and_blocks_no_one() {
    let owner = Keypair::generate().unwrap();
    let hub = Node::builder()
        .key(owner.clone())
        .realm(REALM, owner.did())
        .start()
        .await
        .unwrap();
    let addr = hub.listen_addrs()[0].to_string();
    let hub_realm = hub.realm(REALM).unwrap();

    // Three attackers present the chain in their hellos.
    let mut attackers = Vec::new();
    for _ in 0..3 {
        let key = Keypair::generate().unwrap();
        let chain = blow_up(&key);
        let attacker = Node::builder()
            .key(key)
            .realm(REALM, owner.did())
            .ucan(REALM, chain)
            .bootstrap(addr.clone())
            .start()
            .await
            .unwrap();
        attackers.push(attacker);
    }
    // A member with a real grant joins at the same time, and is admitted: the hub's realm is
    // not stuck checking the attackers' chains (which took hours).
    let member_key = Keypair::generate().unwrap();
    let join = token(
        &owner,
        member_key.did(),
        "weft://io.acme",
        "realm/join",
        None,
    );
    let member = Node::builder()
        .key(member_key)
        .realm(REALM, owner.did())
        .ucan(REALM, Chain::new(join, []))
        .bootstrap(addr.clone())
        .start()
        .await
        .unwrap();
    within("the member is admitted", hub_realm.wait_for_members(1))
        .await
        .unwrap();
    // Each attacker is told it was refused.
    for attacker in &attackers {
        let mut events = attacker.peer_events();
        within("the attacker is refused", async {
            loop {
                if let Ok(PeerEvent::Denied { code, .. }) = events.recv().await {
                    return code;
                }
            }
        })
        .await;
    }
    assert_eq!(hub_realm.stats().await.members, 1, "only the member");

    shutdown(&attackers).await;
    shutdown(&[member, hub]).await;
}
