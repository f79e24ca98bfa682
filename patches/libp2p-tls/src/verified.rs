//! weft: certificates whose self-signature and libp2p extension were verified, by the SHA-256
//! of their DER bytes.
//!
//! One QUIC handshake parses the peer's certificate three times (the certificate check, the
//! handshake signature, libp2p-quic's peer id), and a peer presents the same certificate on
//! every connection while it runs. Each parse verified both signatures again: six signature
//! checks per side where two are needed, once per peer. The handshake signature, which proves
//! that the peer holds the key now, is still verified on every connection, and a certificate's
//! validity period is still checked at every parse.
//!
//! A hit vouches only for bytes with the same SHA-256, that is the very bytes that were
//! verified. Two generations of at most [`GENERATION`] digests bound the memory whatever the
//! certificates' size: a flood of fresh certificates only pushes others out, which then cost a
//! verification again. The digest is taken outside the lock.
//!
//! Whether a certificate is remembered shows in how long a handshake takes (two signature
//! checks, some 100 µs): a peer presenting another's certificate could learn whether this node
//! met that one lately, once per certificate. Kademlia's routing tables tell as much.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, MutexGuard};

/// Digests per generation: 32 bytes each, under 1 MiB for both with the sets' overhead.
const GENERATION: usize = 2048;

/// The SHA-256 of a certificate's DER bytes.
pub(crate) type Digest = [u8; 32];

#[derive(Default)]
struct Generations {
    current: HashSet<Digest>,
    previous: HashSet<Digest>,
}

static VERIFIED: LazyLock<Mutex<Generations>> = LazyLock::new(Default::default);

fn generations() -> MutexGuard<'static, Generations> {
    // Nothing here can leave the sets half-updated, so a poisoned lock is still sound.
    VERIFIED.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The digest [`contains`] and [`insert`] take.
pub(crate) fn digest(der: &[u8]) -> Digest {
    let mut digest = [0; 32];
    digest.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
    digest
}

/// Were the bytes of this digest verified already? One found in the older generation is
/// moved to the newer, so a peer that keeps connecting stays remembered.
pub(crate) fn contains(digest: &Digest) -> bool {
    let mut generations = generations();
    if generations.current.contains(digest) {
        return true;
    }
    if generations.previous.remove(digest) {
        generations.insert(*digest);
        return true;
    }
    false
}

/// The bytes of this digest passed verification.
pub(crate) fn insert(digest: Digest) {
    generations().insert(digest);
}

impl Generations {
    fn insert(&mut self, digest: Digest) {
        if self.current.len() >= GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(digest);
    }
}

/// Whether these exact bytes passed verification here lately (weft's test that the patch is
/// in effect).
pub fn remembers(der: &[u8]) -> bool {
    let digest = digest(der);
    let generations = generations();
    generations.current.contains(&digest) || generations.previous.contains(&digest)
}
