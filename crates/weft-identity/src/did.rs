//! `did:key` names for Ed25519 public keys.
//!
//! Format: `did:key:` + multibase base58btc (`z`) of the multicodec varint `0xed 0x01` followed by
//! the 32-byte public key. Every Ed25519 did:key therefore starts with `did:key:z6Mk` and is 56
//! bytes long.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::{DidError, SignatureError};

/// Longest string [`Did::parse`] looks at. An Ed25519 did:key is 56 bytes; anything much longer
/// from the network is refused before base58 decoding touches it.
pub const MAX_DID_LEN: usize = 128;

const PREFIX: &str = "did:key:";
const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];

/// An Ed25519 `did:key`: the public name of a principal.
///
/// Holds only the 32 public key bytes, so it is `Copy` and compares in constant size. Whether the
/// bytes are a valid curve point is checked when a signature is verified, not at parse time: a
/// DID is often compared and rarely verified against.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Did([u8; 32]);

impl Did {
    /// Parses a `did:key:z6Mk…` string, bounding its length before decoding.
    pub fn parse(s: &str) -> Result<Self, DidError> {
        if s.len() > MAX_DID_LEN {
            return Err(DidError::TooLong(s.len()));
        }
        let rest = s.strip_prefix(PREFIX).ok_or(DidError::NotDidKey)?;
        let encoded = rest.strip_prefix('z').ok_or(DidError::NotBase58btc)?;
        // Two bytes of multicodec, 32 of key, and room to notice a longer payload.
        let mut buf = [0u8; 48];
        let len = bs58::decode(encoded)
            .onto(&mut buf[..])
            .map_err(|e| match e {
                bs58::decode::Error::BufferTooSmall => DidError::KeyLength(buf.len()),
                _ => DidError::Base58,
            })?;
        let decoded = &buf[..len];
        let key = decoded
            .strip_prefix(&ED25519_MULTICODEC[..])
            .ok_or(DidError::UnsupportedKeyType)?;
        let key: [u8; 32] = key.try_into().map_err(|_| DidError::KeyLength(key.len()))?;
        Ok(Self(key))
    }

    /// The DID of a raw 32-byte Ed25519 public key.
    pub fn from_public_key(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// The raw public key bytes.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.0
    }

    /// Verifies an Ed25519 signature by this DID over `message`.
    ///
    /// Uses strict verification: weak keys and malleable (non-canonical) signatures are refused,
    /// so one token has exactly one valid signature and one CID.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let signature: &[u8; 64] = signature
            .try_into()
            .map_err(|_| SignatureError::Length(signature.len()))?;
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| SignatureError::BadKey)?;
        key.verify_strict(message, &Signature::from_bytes(signature))
            .map_err(|_| SignatureError::Mismatch)
    }

    /// A short form for logs: the last 8 characters of the DID.
    pub fn short(&self) -> String {
        let full = self.to_string();
        format!("…{}", &full[full.len().saturating_sub(8)..])
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = [0u8; 34];
        bytes[..2].copy_from_slice(&ED25519_MULTICODEC);
        bytes[2..].copy_from_slice(&self.0);
        write!(f, "{PREFIX}z{}", bs58::encode(bytes).into_string())
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Did({self})")
    }
}

impl FromStr for Did {
    type Err = DidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// On the wire a DID is its 32 key bytes: compact, and with nothing to parse.
#[cfg(feature = "serde")]
impl serde::Serialize for Did {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&self.0, serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Did {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <[u8; 32]>::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "did:key:z6Mkk89bC3JrVqKie71YEcc5M1SMVxuCgNx6zLZ8SYJsxALi";

    #[test]
    fn round_trips() {
        let did = Did::parse(ALICE).unwrap();
        assert_eq!(did.to_string(), ALICE);
        assert_eq!(did.short(), "…SYJsxALi");
    }

    #[test]
    fn rejects_hostile_and_foreign_dids() {
        assert_eq!(
            Did::parse(&"did:key:z".repeat(100)),
            Err(DidError::TooLong(900))
        );
        assert_eq!(
            Did::parse("z6Mkk89bC3JrVqKie71YEcc5M1SMVxuCgNx6zLZ8SYJsxALi"),
            Err(DidError::NotDidKey)
        );
        assert_eq!(Did::parse("did:web:example.com"), Err(DidError::NotDidKey));
        assert_eq!(Did::parse("did:key:u6Mk"), Err(DidError::NotBase58btc));
        assert_eq!(Did::parse("did:key:z0OIl"), Err(DidError::Base58));
        assert_eq!(Did::parse("did:key:z"), Err(DidError::UnsupportedKeyType));
        // A secp256k1 did:key (multicodec 0xe7): a DID, but not one weft can use.
        assert_eq!(
            Did::parse("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"),
            Err(DidError::UnsupportedKeyType)
        );
        // Right codec, short key.
        let mut short = vec![0xed, 0x01];
        short.extend([7u8; 31]);
        let s = format!("did:key:z{}", bs58::encode(short).into_string());
        assert_eq!(Did::parse(&s), Err(DidError::KeyLength(31)));
        // Right codec, long payload overflowing the decode buffer.
        let s = format!("did:key:z{}", bs58::encode([0xed; 60]).into_string());
        assert!(Did::parse(&s).is_err());
    }

    #[test]
    fn verify_refuses_bad_lengths_and_keys() {
        let did = Did::parse(ALICE).unwrap();
        assert_eq!(did.verify(b"m", &[0; 10]), Err(SignatureError::Length(10)));
        assert_eq!(did.verify(b"m", &[0; 64]), Err(SignatureError::Mismatch));
    }
}
