//! Content identifiers for proofs: CIDv1, raw codec, SHA2-256 or BLAKE3, base32 lower.
//!
//! A token names each proof by the CID of the proof's JWT bytes. The binary form is four one-byte
//! varints (version 1, codec `0x55`, hash code, digest length 32) and the 32-byte digest; the text
//! form is multibase `b` (base32, lower case, unpadded): `bafkrei…` for SHA2-256, `bafkr4i…` for
//! BLAKE3.

use std::fmt;
use std::str::FromStr;

use sha2::Digest;

use crate::UcanError;

const CID_V1: u8 = 0x01;
const RAW_CODEC: u8 = 0x55;
const DIGEST_LEN: u8 = 32;
/// Text length of a CID with a 32-byte digest: `b` + base32 of 36 bytes.
const TEXT_LEN: usize = 59;

/// The multihash function of a CID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlg {
    /// SHA2-256 (multihash `0x12`), what weft writes.
    Sha2_256,
    /// BLAKE3 with a 32-byte output (multihash `0x1e`), accepted when reading.
    Blake3,
}

impl HashAlg {
    fn code(self) -> u8 {
        match self {
            HashAlg::Sha2_256 => 0x12,
            HashAlg::Blake3 => 0x1e,
        }
    }
}

impl FromStr for HashAlg {
    type Err = UcanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sha2-256" | "sha256" | "sha2_256" => Ok(HashAlg::Sha2_256),
            "blake3" | "blake3-256" => Ok(HashAlg::Blake3),
            other => Err(UcanError::InvalidCid(format!(
                "unknown hash {other:?} (sha2-256 or blake3)"
            ))),
        }
    }
}

/// A CIDv1 (raw codec) naming a token by the hash of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid {
    alg: HashAlg,
    digest: [u8; 32],
}

impl Cid {
    /// The CID of `bytes` under `alg`.
    pub fn compute(bytes: &[u8], alg: HashAlg) -> Self {
        let digest = match alg {
            HashAlg::Sha2_256 => sha2::Sha256::digest(bytes).into(),
            HashAlg::Blake3 => *blake3::hash(bytes).as_bytes(),
        };
        Self { alg, digest }
    }

    /// Parses the base32 text form, refusing anything but CIDv1 raw with a 32-byte SHA2-256 or
    /// BLAKE3 digest.
    pub fn parse(s: &str) -> Result<Self, UcanError> {
        if s.len() != TEXT_LEN {
            return Err(UcanError::InvalidCid(format!(
                "expected {TEXT_LEN} characters, got {}",
                s.len()
            )));
        }
        let body = s.strip_prefix('b').ok_or_else(|| {
            UcanError::InvalidCid("expected multibase base32 (prefix 'b')".into())
        })?;
        if !body
            .bytes()
            .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c))
        {
            return Err(UcanError::InvalidCid("not lower-case base32".into()));
        }
        let upper = body.to_ascii_uppercase();
        let bytes = data_encoding::BASE32_NOPAD
            .decode(upper.as_bytes())
            .map_err(|e| UcanError::InvalidCid(format!("bad base32: {e}")))?;
        let [version, codec, hash, len, digest @ ..] = bytes.as_slice() else {
            return Err(UcanError::InvalidCid("too short".into()));
        };
        if *version != CID_V1 {
            return Err(UcanError::InvalidCid(format!(
                "CID version {version} (only v1)"
            )));
        }
        if *codec != RAW_CODEC {
            return Err(UcanError::InvalidCid(format!(
                "codec 0x{codec:x} (only raw, 0x55)"
            )));
        }
        let alg = match *hash {
            0x12 => HashAlg::Sha2_256,
            0x1e => HashAlg::Blake3,
            other => {
                return Err(UcanError::InvalidCid(format!(
                    "hash 0x{other:x} (sha2-256 or blake3)"
                )));
            }
        };
        let digest: [u8; 32] = digest
            .try_into()
            .ok()
            .filter(|_| *len == DIGEST_LEN)
            .ok_or_else(|| UcanError::InvalidCid("digest is not 32 bytes".into()))?;
        Ok(Self { alg, digest })
    }

    /// The hash function.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The 32-byte digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The binary CID: version, codec, multihash.
    pub fn to_bytes(&self) -> [u8; 36] {
        let mut out = [0u8; 36];
        out[..4].copy_from_slice(&[CID_V1, RAW_CODEC, self.alg.code(), DIGEST_LEN]);
        out[4..].copy_from_slice(&self.digest);
        out
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = data_encoding::BASE32_NOPAD
            .encode(&self.to_bytes())
            .to_ascii_lowercase();
        write!(f, "b{text}")
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

impl FromStr for Cid {
    type Err = UcanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        for alg in [HashAlg::Sha2_256, HashAlg::Blake3] {
            let cid = Cid::compute(b"token", alg);
            let text = cid.to_string();
            assert_eq!(text.len(), TEXT_LEN);
            assert_eq!(Cid::parse(&text), Ok(cid));
        }
        assert!(
            Cid::compute(b"x", HashAlg::Sha2_256)
                .to_string()
                .starts_with("bafkrei")
        );
        assert!(
            Cid::compute(b"x", HashAlg::Blake3)
                .to_string()
                .starts_with("bafkr4i")
        );
    }

    #[test]
    fn rejects_other_cids() {
        let good = Cid::compute(b"x", HashAlg::Sha2_256).to_string();
        assert!(Cid::parse("").is_err());
        assert!(Cid::parse(&good.to_uppercase()).is_err());
        assert!(Cid::parse(&format!("z{}", &good[1..])).is_err());
        // dag-cbor codec (0x71) instead of raw.
        let mut bytes = Cid::compute(b"x", HashAlg::Sha2_256).to_bytes();
        bytes[1] = 0x71;
        let text = format!(
            "b{}",
            data_encoding::BASE32_NOPAD
                .encode(&bytes)
                .to_ascii_lowercase()
        );
        assert!(matches!(Cid::parse(&text), Err(UcanError::InvalidCid(m)) if m.contains("codec")));
        // A CIDv0 (base58 `Qm…`).
        assert!(Cid::parse("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG").is_err());
    }
}
