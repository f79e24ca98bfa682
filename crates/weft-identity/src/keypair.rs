//! Secret keys that sign.

use std::fmt;
use std::path::Path;

use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

use crate::{Did, KeyError, keyfile};

/// Length of an Ed25519 signature in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 secret key: signs tokens and handshakes, and is named by its [`Did`].
///
/// The secret is zeroised on drop and never printed (`Debug` shows the DID only).
#[derive(Clone)]
pub struct Keypair {
    secret: SigningKey,
    did: Did,
}

impl Keypair {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut seed[..]).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    /// The key for a 32-byte seed (the RFC 8032 secret key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let secret = SigningKey::from_bytes(seed);
        let did = Did::from_public_key(secret.verifying_key().to_bytes());
        Self { secret, did }
    }

    /// Decodes a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let format = |reason: &str| KeyError::Format {
            path: "<memory>".into(),
            reason: reason.into(),
        };
        if pem.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(format("this is a public key; a private key is needed"));
        }
        if !pem.contains("-----BEGIN PRIVATE KEY-----") {
            return Err(format("no -----BEGIN PRIVATE KEY----- block"));
        }
        let secret = SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Format {
            path: "<memory>".into(),
            reason: e.to_string(),
        })?;
        let did = Did::from_public_key(secret.verifying_key().to_bytes());
        Ok(Self { secret, did })
    }

    /// Encodes the key as PKCS#8 v1 PEM, byte for byte what `openssl genpkey -algorithm ed25519`
    /// writes.
    ///
    /// Written by hand because the encoding is one fixed DER prefix and the seed, and because
    /// ed25519-dalek writes the v2 form (with the public key), which older tools refuse.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }
        const PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        let mut der = Zeroizing::new([0u8; 48]);
        der[..16].copy_from_slice(&PREFIX);
        der[16..].copy_from_slice(self.secret.as_bytes());
        // 48 bytes of DER are exactly one 64-character base64 line.
        let body = Zeroizing::new(data_encoding::BASE64.encode(&der[..]));
        Zeroizing::new(format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            *body
        ))
    }

    /// Reads a PKCS#8 PEM key file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        keyfile::load(path.as_ref())
    }

    /// Writes the key to a new file with mode 0600; refuses to overwrite an existing file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        keyfile::save(self, path.as_ref())
    }

    /// This key's public name.
    pub fn did(&self) -> Did {
        self.did
    }

    /// The 32-byte seed. Handle with care: this is the secret.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes())
    }

    /// Signs `message` (Ed25519, deterministic).
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.secret.sign(message).to_bytes()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("did", &self.did)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `openssl genpkey -algorithm ed25519`.
    const OPENSSL_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEICjuUItBo4v3IZx8sBpPWnQl1PJDrrm5Y72tGCc7pKnR\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn reads_what_openssl_writes_and_writes_it_back() {
        let key = Keypair::from_pkcs8_pem(OPENSSL_PEM).unwrap();
        assert_eq!(key.to_pkcs8_pem().as_str(), OPENSSL_PEM);
        assert!(key.did().to_string().starts_with("did:key:z6Mk"));
    }

    #[test]
    fn signs_and_verifies() {
        let key = Keypair::generate().unwrap();
        let sig = key.sign(b"hello");
        assert_eq!(key.did().verify(b"hello", &sig), Ok(()));
        assert!(key.did().verify(b"hellO", &sig).is_err());
        let other = Keypair::generate().unwrap();
        assert_ne!(key.did(), other.did());
        assert!(other.did().verify(b"hello", &sig).is_err());
    }

    #[test]
    fn rejects_non_keys() {
        for bad in [
            "",
            "hello",
            "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
            // An RSA-sized blob, a P-256 key and a public key are not Ed25519 private keys.
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2\nOF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r\n1RTwjmYSi9R/zpBnuQ4EiMnCqfMPWiZqB4QdbAd0E7oH50VpuZ1P087G\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(
                matches!(Keypair::from_pkcs8_pem(bad), Err(KeyError::Format { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = Keypair::from_seed(&[7; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains("did:key:z6Mk"));
        assert!(!shown.contains("0707"));
    }
}
