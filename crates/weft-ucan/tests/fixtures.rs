//! The UCAN working group's 0.10.0 conformance fixtures: verify, refute, build and toCID.
//!
//! Read from `$WEFT_FIXTURES/ucan-0.10/` (`.ci/run` sets `WEFT_FIXTURES` to `shared/fixtures`);
//! each test is skipped, with the reason printed, when the variable is not set. Every case must
//! pass: a verify case verifies, a refute case fails with exactly the listed error code.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use data_encoding::{BASE64, BASE64URL_NOPAD};
use serde_json::Value;
use weft_identity::{Did, Keypair};
use weft_ucan::{
    Builder, Cid, HashAlg, ProofStore, Token, UcanError, Validator, decode_unverified,
};

fn cases(file: &str) -> Option<Vec<Value>> {
    let Some(dir) = std::env::var_os("WEFT_FIXTURES") else {
        eprintln!("skipping {file}: WEFT_FIXTURES is not set (it points at shared/fixtures)");
        return None;
    };
    let path = PathBuf::from(dir).join("ucan-0.10").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(!cases.is_empty(), "{file} has no cases");
    Some(cases)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Parses the token and verifies it with its proofs, as `weft ucan verify` does.
fn verify(case: &Value) -> Result<(), UcanError> {
    let inputs = &case["inputs"];
    let token = Token::parse(inputs["token"].as_str().unwrap())?;
    let mut store = ProofStore::new();
    for (cid, proof) in inputs["proofs"].as_object().unwrap() {
        let proof = Token::parse(proof.as_str().unwrap())?;
        // The fixture's key must be the CID we compute for the proof.
        assert_eq!(&store.insert(proof).to_string(), cid, "{}", case["name"]);
    }
    Validator::default()
        .verify(token, &store, now())
        .map(|_| ())
}

/// The decoded header, payload and signature match the fixture's assertions.
fn check_assertions(case: &Value) {
    let raw = case["inputs"]["token"].as_str().unwrap();
    let (header, payload, signature) = decode_unverified(raw).unwrap();
    let assertions = &case["assertions"];
    assert_eq!(header, assertions["header"], "{}", case["name"]);
    assert_eq!(payload, assertions["payload"], "{}", case["name"]);
    assert_eq!(
        BASE64URL_NOPAD.encode(&signature),
        assertions["signature"].as_str().unwrap()
    );
}

#[test]
fn verify_cases_are_valid() {
    let Some(cases) = cases("verify.json") else {
        return;
    };
    for case in &cases {
        check_assertions(case);
        if let Err(e) = verify(case) {
            panic!("{}: expected valid, got {} ({e})", case["name"], e.code());
        }
    }
}

#[test]
fn refute_cases_fail_with_the_listed_code() {
    let Some(cases) = cases("refute.json") else {
        return;
    };
    // No check_assertions here: a refute case's assertions describe the token before the fixture
    // generator broke it (the header, payload and signature differ from the input on purpose).
    for case in &cases {
        let expected: Vec<&str> = case["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        match verify(case) {
            Ok(()) => panic!("{}: expected {expected:?}, but it verified", case["name"]),
            Err(e) => assert!(
                expected.contains(&e.code()),
                "{}: expected {expected:?}, got {} ({e})",
                case["name"],
                e.code()
            ),
        }
    }
}

#[test]
fn build_cases_produce_the_same_bytes() {
    let Some(cases) = cases("build.json") else {
        return;
    };
    for case in &cases {
        let inputs = &case["inputs"];
        assert_eq!(inputs["version"], "0.10.0");
        assert_eq!(inputs["signature_scheme"], "Ed25519");
        // The key is libsodium's 64-byte form: seed then public key.
        let key = BASE64
            .decode(inputs["issuer_base64_key"].as_str().unwrap().as_bytes())
            .unwrap();
        let issuer = Keypair::from_seed(key[..32].try_into().unwrap());
        assert_eq!(issuer.did().public_key().as_slice(), &key[32..]);

        let audience = Did::parse(inputs["audience"].as_str().unwrap()).unwrap();
        let mut builder = Builder::new(&issuer, audience);
        builder = match inputs["expiration"].as_u64() {
            Some(exp) => builder.expires_at(exp),
            None => builder.never_expires(),
        };
        for (resource, abilities) in inputs["capabilities"].as_object().unwrap() {
            for (ability, caveats) in abilities.as_object().unwrap() {
                let caveats = caveats
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_object().unwrap().clone())
                    .collect();
                builder = builder.claim_with_caveats(resource, ability, caveats);
            }
        }
        let token = builder.build().unwrap();
        assert_eq!(
            token.as_str(),
            case["outputs"]["token"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn cid_cases_match() {
    let Some(cases) = cases("cid.json") else {
        return;
    };
    for case in &cases {
        let alg = match case["inputs"]["hasher"].as_str().unwrap() {
            "SHA2-256" => HashAlg::Sha2_256,
            "BLAKE3-256" => HashAlg::Blake3,
            other => panic!("unknown hasher {other}"),
        };
        let token = case["inputs"]["token"].as_str().unwrap();
        let cid = Cid::compute(token.as_bytes(), alg);
        let expected = case["outputs"]["cid"].as_str().unwrap();
        assert_eq!(cid.to_string(), expected, "{}", case["name"]);
        assert_eq!(Cid::parse(expected).unwrap(), cid);
    }
}
