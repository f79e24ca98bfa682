//! The W3C CCG did:key Ed25519 vectors: seed → DID and public key.
//!
//! Read from `$WEFT_FIXTURES/did-key/ed25519-x25519.json` (`.ci/run` sets `WEFT_FIXTURES`); skipped
//! with a printed reason when the variable is not set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::PathBuf;

use weft_identity::{Did, Keypair};

fn fixtures() -> Option<PathBuf> {
    match std::env::var_os("WEFT_FIXTURES") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            eprintln!("skipping: WEFT_FIXTURES is not set (it points at shared/fixtures)");
            None
        }
    }
}

fn hex32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

#[test]
fn seeds_give_the_published_dids_and_keys() {
    let Some(dir) = fixtures() else { return };
    let text = std::fs::read_to_string(dir.join("did-key/ed25519-x25519.json")).unwrap();
    let vectors: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(!vectors.is_empty());
    for (did, vector) in &vectors {
        let seed = hex32(vector["seed"].as_str().unwrap());
        let key = Keypair::from_seed(&seed);
        assert_eq!(&key.did().to_string(), did);

        let public = vector["verificationKeyPair"]["publicKeyBase58"]
            .as_str()
            .unwrap();
        let public = bs58_decode(public);
        assert_eq!(
            key.did().public_key().as_slice(),
            public.as_slice(),
            "{did}"
        );

        let parsed = Did::parse(did).unwrap();
        assert_eq!(parsed, key.did());
        assert_eq!(parsed.to_string(), *did);
    }
}

/// Minimal base58btc decoding so the test does not trust the code under test.
fn bs58_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut bytes: Vec<u8> = Vec::new();
    for c in s.bytes() {
        let mut carry = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        for b in bytes.iter_mut().rev() {
            carry += (*b as u32) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = s.bytes().take_while(|&c| c == b'1').count();
    let mut out = vec![0u8; zeros];
    out.extend(bytes);
    out
}
