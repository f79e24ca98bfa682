//! One key, two names: a weft [`Keypair`] is the libp2p identity, and a `PeerId` maps back to the
//! [`Did`] that UCAN chains name.

use libp2p::PeerId;
use weft_identity::{Did, Keypair};

/// The libp2p keypair of a weft key (same Ed25519 secret).
pub fn libp2p_keypair(key: &Keypair) -> libp2p::identity::Keypair {
    // ed25519_from_bytes zeroises the buffer it is given: hand it a copy of the seed.
    let mut seed = *key.seed();
    match libp2p::identity::Keypair::ed25519_from_bytes(&mut seed) {
        Ok(keypair) => keypair,
        // Invariant: every 32-byte string is a valid Ed25519 seed.
        Err(_) => unreachable!("a 32-byte Ed25519 seed is always valid"),
    }
}

/// The DID of a peer, when its PeerId inlines an Ed25519 key (as every weft node's does).
///
/// Ed25519 PeerIds use the identity multihash over the protobuf-encoded public key, so the key is
/// read straight out of the PeerId the QUIC handshake authenticated: the DID is proven, not claimed.
pub fn peer_did(peer: &PeerId) -> Option<Did> {
    let multihash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let key = key.try_into_ed25519().ok()?;
    Some(Did::from_public_key(key.to_bytes()))
}

/// The PeerId of the node whose key `did` names, if it is a valid Ed25519 key.
pub fn did_peer(did: &Did) -> Option<PeerId> {
    let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(did.public_key()).ok()?;
    Some(libp2p::identity::PublicKey::from(key).to_peer_id())
}

/// The PeerId of a weft key.
#[cfg(test)]
fn peer_id(key: &Keypair) -> PeerId {
    libp2p_keypair(key).public().to_peer_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_and_did_name_the_same_key() {
        let key = Keypair::from_seed(&[5; 32]);
        let peer = peer_id(&key);
        assert_eq!(peer_did(&peer), Some(key.did()));
        assert_eq!(did_peer(&key.did()), Some(peer));
        assert_eq!(
            peer_did(&PeerId::random()),
            None,
            "random PeerIds are not Ed25519 keys"
        );
    }
}
