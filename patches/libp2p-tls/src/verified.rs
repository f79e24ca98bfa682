//! weft: certificates whose self-signature and libp2p extension were verified, by their DER
//! bytes.
//!
//! One QUIC handshake parses the peer's certificate three times (the certificate check, the
//! handshake signature, libp2p-quic's peer id), and a peer presents the same certificate on
//! every connection while it runs. Each parse verified both signatures again: six signature
//! checks per side where two are needed, once per peer. The handshake signature, which proves
//! that the peer holds the key now, is still verified on every connection, and a certificate's
//! validity period is still checked at every parse.
//!
//! Entries are whole certificates compared byte for byte, so a hit vouches only for exactly
//! the bytes that were verified. Two generations of at most [`GENERATION`] entries bound the
//! memory: a flood of fresh certificates only pushes others out, which then cost a
//! verification again.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

/// Certificates per generation: about 450 bytes each, so under 2 MiB for both.
const GENERATION: usize = 2048;

#[derive(Default)]
struct Generations {
    current: HashSet<Box<[u8]>>,
    previous: HashSet<Box<[u8]>>,
}

static VERIFIED: LazyLock<Mutex<Generations>> = LazyLock::new(Default::default);

fn generations() -> std::sync::MutexGuard<'static, Generations> {
    // Nothing here can leave the sets half-updated, so a poisoned lock is still sound.
    VERIFIED.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Were these exact bytes verified already?
pub(crate) fn contains(der: &[u8]) -> bool {
    let generations = generations();
    generations.current.contains(der) || generations.previous.contains(der)
}

/// These bytes passed verification.
pub(crate) fn insert(der: &[u8]) {
    let mut generations = generations();
    if generations.current.contains(der) {
        return;
    }
    if generations.current.len() >= GENERATION {
        generations.previous = std::mem::take(&mut generations.current);
    }
    generations.current.insert(der.into());
}

/// How many certificates are remembered (weft's test that the patch is in effect).
pub fn remembered() -> usize {
    let generations = generations();
    generations.current.len() + generations.previous.len()
}
