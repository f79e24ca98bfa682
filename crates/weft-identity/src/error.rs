//! Errors of the identity layer.

use std::path::PathBuf;

/// A string is not an Ed25519 `did:key`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DidError {
    /// Longer than [`MAX_DID_LEN`](crate::MAX_DID_LEN); refused before any decoding.
    #[error("DID is {0} bytes, longer than any Ed25519 did:key")]
    TooLong(usize),
    /// Does not start with `did:key:`.
    #[error("not a did:key (expected the prefix \"did:key:\")")]
    NotDidKey,
    /// The multibase prefix is not `z` (base58btc).
    #[error("did:key must be base58btc multibase (prefix 'z')")]
    NotBase58btc,
    /// The method-specific identifier is not valid base58.
    #[error("did:key identifier is not valid base58")]
    Base58,
    /// The multicodec is not `0xed01` (Ed25519 public key), e.g. a secp256k1 or P-256 did:key.
    #[error("did:key is not an Ed25519 key (multicodec 0xed01); other key types are not supported")]
    UnsupportedKeyType,
    /// The key is not 32 bytes long.
    #[error("did:key holds {0} key bytes, Ed25519 needs 32")]
    KeyLength(usize),
}

/// A key file could not be read, written or understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Group or others may read the key file (its mode is not 0600 or stricter).
    #[error("{path}: mode {mode:o} lets others read this private key; run `chmod 600 {path}`", path = path.display())]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file exists already; weft never overwrites a key.
    #[error("{0}: file exists; refusing to overwrite a key")]
    Exists(PathBuf),
    /// The file is larger than any PEM key; nothing was parsed.
    #[error("{path}: {len} bytes is too large for a key file")]
    TooLarge {
        /// The key file.
        path: PathBuf,
        /// Its size.
        len: u64,
    },
    /// The content is not an Ed25519 PKCS#8 PEM private key.
    #[error(
        "{path}: not an Ed25519 PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----): {reason}"
    )]
    Format {
        /// The key file, or `<memory>` for in-memory input.
        path: PathBuf,
        /// What the decoder objected to.
        reason: String,
    },
    /// The OS random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(String),
}

/// A signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature is not 64 bytes.
    #[error("signature is {0} bytes, Ed25519 signatures are 64")]
    Length(usize),
    /// The public key is not a valid Ed25519 point, or a weak one.
    #[error("public key is not a valid Ed25519 key")]
    BadKey,
    /// The signature does not verify under the key (strict verification).
    #[error("signature does not verify")]
    Mismatch,
}
