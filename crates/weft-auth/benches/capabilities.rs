//! What capabilities cost: did:key decoding, token parsing, cold chain verification (against the
//! bare Ed25519 checks it contains) and a warm-cache authorization, the per-message path.
//!
//! Run: `cargo bench -p weft-auth --bench capabilities`. Results: docs/benchmarks.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark setup: a panic is a broken bench

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use weft_auth::{Action, Authorizer, Chain, Realm};
use weft_identity::{Did, Keypair};
use weft_names::{Name, RealmName};
use weft_ucan::{Builder, ProofStore, Token, Validator};

/// owner → team (`rpc/*` on `orders.**`) → service (`rpc/call` on `orders.*`) → worker
/// (`rpc/call` on `orders.get`): a chain of three tokens, as a real deployment delegates.
fn chain_of_three() -> (Realm, Keypair, Vec<Token>) {
    let owner = Keypair::from_seed(&[1; 32]);
    let team = Keypair::from_seed(&[2; 32]);
    let service = Keypair::from_seed(&[3; 32]);
    let worker = Keypair::from_seed(&[4; 32]);
    let root = Builder::new(&owner, team.did())
        .expires_at(4_000_000_000)
        .claim("weft://io.acme/orders.**", "rpc/*")
        .build()
        .unwrap();
    let mid = Builder::new(&team, service.did())
        .expires_at(3_000_000_000)
        .claim("weft://io.acme/orders.*", "rpc/call")
        .proof(*root.cid())
        .build()
        .unwrap();
    let leaf = Builder::new(&service, worker.did())
        .expires_at(2_000_000_000)
        .claim("weft://io.acme/orders.get", "rpc/call")
        .proof(*mid.cid())
        .build()
        .unwrap();
    let realm = Realm::owned(RealmName::new("io.acme").unwrap(), owner.did());
    (realm, worker, vec![leaf, mid, root])
}

fn benches(c: &mut Criterion) {
    let (realm, worker, tokens) = chain_of_three();
    let now = 1_800_000_000;

    let did = worker.did().to_string();
    c.bench_function("did_key_decode", |b| {
        b.iter(|| Did::parse(black_box(&did)).unwrap())
    });

    let leaf_text = tokens[0].as_str().to_owned();
    c.bench_function("token_parse", |b| {
        b.iter(|| Token::parse(black_box(&leaf_text)).unwrap())
    });

    let signed: Vec<(Did, Vec<u8>, Vec<u8>)> = tokens
        .iter()
        .map(|t| {
            let sig = t.as_str().rsplit('.').next().unwrap();
            let sig = data_encoding::BASE64URL_NOPAD
                .decode(sig.as_bytes())
                .unwrap();
            (*t.issuer(), t.signed_part().to_vec(), sig)
        })
        .collect();
    c.bench_function("ed25519_verify_x3_baseline", |b| {
        b.iter(|| {
            for (did, msg, sig) in &signed {
                did.verify(black_box(msg), black_box(sig)).unwrap();
            }
        })
    });

    let store: ProofStore = tokens[1..].iter().cloned().collect();
    let validator = Validator::new(weft_auth::WeftSemantics);
    let leaf = std::sync::Arc::new(tokens[0].clone());
    c.bench_function("chain3_verify_cold", |b| {
        b.iter(|| {
            validator
                .verify(black_box(leaf.clone()), black_box(&store), now)
                .unwrap()
        })
    });

    let chain = Chain::new(tokens[0].clone(), tokens[1..].iter().cloned());
    let authorizer = Authorizer::new();
    let procedure = Name::new("orders.get").unwrap();
    let actor = worker.did();
    authorizer
        .authorize(&realm, Some(&chain), &actor, Action::Call(&procedure), now)
        .unwrap();
    c.bench_function("authorize_warm_cache", |b| {
        b.iter(|| {
            authorizer
                .authorize(
                    black_box(&realm),
                    Some(black_box(&chain)),
                    &actor,
                    Action::Call(black_box(&procedure)),
                    now,
                )
                .unwrap()
        })
    });
}

/// A stranger's chain of `n` tokens, each issued by the previous audience, rooted at the
/// stranger's own key: valid as UCAN, worthless in the realm.
fn stranger_chain(n: u8) -> (Keypair, Vec<Token>) {
    let keys: Vec<Keypair> = (0..=n)
        .map(|i| Keypair::from_seed(&[100 + i; 32]))
        .collect();
    let mut tokens: Vec<Token> = Vec::new();
    for i in 0..usize::from(n) {
        let mut builder = Builder::new(&keys[i], keys[i + 1].did())
            .expires_at(4_000_000_000 - i as u64)
            .claim("weft://io.acme/orders.*", "rpc/call");
        if let Some(proof) = tokens.last() {
            builder = builder.proof(*proof.cid());
        }
        tokens.push(builder.build().unwrap());
    }
    tokens.reverse(); // leaf first
    (keys[usize::from(n)].clone(), tokens)
}

/// What admitting a peer costs when its chain is new to the node: the member's chain of three,
/// a stranger's chain of eight, and the same with its root left out (which was never cached).
fn cold_admission(c: &mut Criterion) {
    let (realm, worker, tokens) = chain_of_three();
    let now = 1_800_000_000;
    let procedure = Name::new("orders.get").unwrap();
    let call = Action::Call(&procedure);
    let mut group = c.benchmark_group("cold_admission");
    let valid = Chain::new(tokens[0].clone(), tokens[1..].iter().cloned());
    group.bench_function("member_chain3", |b| {
        b.iter_batched(
            Authorizer::new,
            |auth| auth.authorize(&realm, Some(&valid), &worker.did(), call, now),
            criterion::BatchSize::SmallInput,
        )
    });
    let (stranger, chain8) = stranger_chain(8);
    let rooted_elsewhere = Chain::new(chain8[0].clone(), chain8[1..].iter().cloned());
    group.bench_function("stranger_chain8", |b| {
        b.iter_batched(
            Authorizer::new,
            |auth| auth.authorize(&realm, Some(&rooted_elsewhere), &stranger.did(), call, now),
            criterion::BatchSize::SmallInput,
        )
    });
    let missing_root = Chain::new(chain8[0].clone(), chain8[1..7].iter().cloned());
    group.bench_function("stranger_chain8_root_missing", |b| {
        b.iter_batched(
            Authorizer::new,
            |auth| auth.authorize(&realm, Some(&missing_root), &stranger.did(), call, now),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(capabilities, benches, cold_admission);
criterion_main!(capabilities);
