//! Publications a member passes on for their publisher: a batch the publisher signed.
//!
//! A forwarder must be able to carry a publication without being able to forge or alter it, so
//! the publisher signs a whole batch once ([`seal`]) and every node that takes it checks the
//! signature ([`open`]) before anything else. The batch travels as the bytes that were signed
//! and is decoded only after they verify: nothing is re-encoded, so no encoding choice can
//! change what a signature covers. One signature per batch keeps Ed25519 off the per-publication
//! path.
//!
//! The signed bytes name the realm (name and owner, [`forward_realm_id`]) and the time of
//! signing, so a batch cannot be replayed into another realm, and receivers refuse old ones.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use weft_identity::{Did, Keypair};
use weft_names::{Name, RealmName};

use crate::WireError;
use crate::frame::{MAX_CHAINS, MAX_PROOFS, RealmIndex, WireChain};

/// Most publications in one signed batch.
pub const MAX_FORWARD_ITEMS: usize = 1024;
/// What the publisher's signature is over: this tag, then the batch's bytes.
const SIGNING_TAG: &[u8] = b"weft forward v1\0";

/// A signed batch on its way from member to member ([`crate::Frame::Forward`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forward {
    /// Realm, as an index into the sender's hello (the sender is the last forwarder, not the
    /// publisher).
    pub realm: RealmIndex,
    /// How many more times it may be passed on after this hop.
    pub hops: u8,
    /// A [`ForwardBatch`], encoded by its publisher: the exact bytes signed.
    pub batch: Bytes,
    /// The publisher's Ed25519 signature over the tag and `batch`.
    pub signature: Bytes,
}

/// What a publisher signs: its publications, who it is, and what authorizes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardBatch {
    /// The realm: [`forward_realm_id`] of its name and owner.
    pub realm: [u8; 32],
    /// Who published, and signed.
    pub publisher: Did,
    /// Unix seconds at signing.
    pub signed_at: u64,
    /// The publisher's run, as in its hello: its numbers count within it.
    pub run: u64,
    /// The chains the publisher acts under in the realm (`realm/join`, `msg/publish`).
    pub chains: Vec<WireChain>,
    /// A chain the publications were made under instead, alone, as a `Publish` frame's own
    /// chain is (a gateway publishing for a client that delegated to it); `chains` still
    /// show the publisher may be in the realm.
    pub chain: Option<WireChain>,
    /// The one topic of every publication in the batch: a member that passes a batch on must
    /// be allowed to read all of it.
    pub topic: Name,
    /// The publications, in the publisher's order: at least one.
    pub items: Vec<ForwardItem>,
}

/// One publication of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardItem {
    /// The publisher's number for it: the same as on its direct `Publish`, so a receiver that
    /// gets both keeps one.
    pub seq: u64,
    /// The payload, opaque to weft.
    pub payload: Bytes,
}

/// Most batch ids in one [`BatchIds`].
pub const MAX_BATCH_IDS: usize = 512;

/// Batch ids, in a [`crate::Frame::Have`] (batches the sender took lately and could send, that
/// the receiver may have missed) or a [`crate::Frame::Want`] (those of them the sender lacks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchIds {
    /// Realm, as an index into the sender's hello.
    pub realm: RealmIndex,
    /// At most [`MAX_BATCH_IDS`] ids ([`forward_id`]).
    pub ids: Vec<ForwardId>,
}

/// Names a batch for duplicate suppression: a digest of its signed bytes.
pub type ForwardId = [u8; 16];

/// Why a forwarded batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The signature is not the publisher's over these bytes.
    #[error("the publisher's signature does not verify")]
    Signature,
    /// The signed bytes are not a batch, or break a limit.
    #[error("not a batch: {0}")]
    Malformed(String),
    /// Signed for another realm.
    #[error("signed for another realm")]
    OtherRealm,
}

/// Binds a batch to one realm: a digest of its name and owner.
pub fn forward_realm_id(realm: &RealmName, owner: Option<&Did>) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"weft forward realm v1\0");
    hash.update(realm.as_str().as_bytes());
    hash.update([0]);
    if let Some(owner) = owner {
        hash.update(owner.public_key());
    }
    hash.finalize().into()
}

/// Encodes and signs `batch` with the publisher's key, for the first hop.
pub fn seal(
    key: &Keypair,
    batch: &ForwardBatch,
    realm: RealmIndex,
    hops: u8,
) -> Result<Forward, WireError> {
    let bytes = postcard::to_allocvec(batch)
        .map_err(|e| WireError::Malformed(format!("cannot encode a batch: {e}")))?;
    let signature = key.sign(&signing_input(&bytes));
    Ok(Forward {
        realm,
        hops,
        batch: Bytes::from(bytes),
        signature: Bytes::copy_from_slice(&signature),
    })
}

/// The batch's id, whether or not it verifies: cheap, for duplicate suppression before the
/// signature is checked.
pub fn forward_id(forward: &Forward) -> ForwardId {
    let full = Sha256::digest(&forward.batch);
    let mut id = [0; 16];
    id.copy_from_slice(&full[..16]);
    id
}

/// Checks a forwarded batch: decodes it within the protocol's limits, checks that it was signed
/// for `realm` (see [`forward_realm_id`]), and verifies its publisher's signature. Whether the
/// publisher may publish, and whether the batch is recent, are the receiver's to decide.
pub fn open(forward: &Forward, realm: &[u8; 32]) -> Result<ForwardBatch, ForwardError> {
    let batch: ForwardBatch =
        postcard::from_bytes(&forward.batch).map_err(|e| ForwardError::Malformed(e.to_string()))?;
    batch.check_limits()?;
    if &batch.realm != realm {
        return Err(ForwardError::OtherRealm);
    }
    batch
        .publisher
        .verify(&signing_input(&forward.batch), &forward.signature)
        .map_err(|_| ForwardError::Signature)?;
    Ok(batch)
}

impl ForwardBatch {
    fn check_limits(&self) -> Result<(), ForwardError> {
        let limit = |what: String| Err(ForwardError::Malformed(what));
        if self.items.is_empty() {
            return limit("no publication".to_owned());
        }
        if self.items.len() > MAX_FORWARD_ITEMS {
            return limit(format!(
                "{} publications (at most {MAX_FORWARD_ITEMS})",
                self.items.len()
            ));
        }
        if self.chains.len() > MAX_CHAINS {
            return limit(format!(
                "{} chains (at most {MAX_CHAINS})",
                self.chains.len()
            ));
        }
        if self
            .chains
            .iter()
            .chain(self.chain.as_ref())
            .any(|c| c.proofs.len() > MAX_PROOFS)
        {
            return limit(format!("a chain of more than {MAX_PROOFS} proofs"));
        }
        Ok(())
    }
}

fn signing_input(batch: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(SIGNING_TAG.len() + batch.len());
    input.extend_from_slice(SIGNING_TAG);
    input.extend_from_slice(batch);
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realm() -> [u8; 32] {
        forward_realm_id(&RealmName::new("io.acme").unwrap(), None)
    }

    fn batch(publisher: &Keypair) -> ForwardBatch {
        ForwardBatch {
            realm: realm(),
            publisher: publisher.did(),
            signed_at: 1_800_000_000,
            run: 1,
            chains: vec![],
            chain: None,
            topic: Name::new("orders.placed").unwrap(),
            items: vec![ForwardItem {
                seq: 7,
                payload: Bytes::from_static(b"{\"n\":1}"),
            }],
        }
    }

    #[test]
    fn a_sealed_batch_opens_as_it_was_signed() {
        let key = Keypair::from_seed(&[1; 32]);
        let sealed = seal(&key, &batch(&key), 3, 5).unwrap();
        assert_eq!((sealed.realm, sealed.hops), (3, 5));
        assert_eq!(open(&sealed, &realm()).unwrap(), batch(&key));
    }

    #[test]
    fn a_forwarder_cannot_alter_or_forge_a_batch() {
        let key = Keypair::from_seed(&[1; 32]);
        let sealed = seal(&key, &batch(&key), 0, 5).unwrap();

        // Another payload, same signature.
        let mut altered = batch(&key);
        altered.items[0].payload = Bytes::from_static(b"{\"n\":2}");
        let mut forged = sealed.clone();
        forged.batch = Bytes::from(postcard::to_allocvec(&altered).unwrap());
        assert_eq!(open(&forged, &realm()), Err(ForwardError::Signature));

        // Signed by someone else in the publisher's name.
        let thief = Keypair::from_seed(&[2; 32]);
        let stolen = seal(&thief, &batch(&key), 0, 5).unwrap();
        assert_eq!(open(&stolen, &realm()), Err(ForwardError::Signature));

        // A truncated signature, and bytes that are not a batch.
        let mut short = sealed.clone();
        short.signature = short.signature.slice(..63);
        assert_eq!(open(&short, &realm()), Err(ForwardError::Signature));
        let mut garbage = sealed.clone();
        garbage.batch = Bytes::from_static(&[0xff; 9]);
        assert!(matches!(
            open(&garbage, &realm()),
            Err(ForwardError::Malformed(_))
        ));
        assert_ne!(forward_id(&forged), forward_id(&sealed));
    }

    #[test]
    fn a_batch_signed_for_one_realm_is_refused_in_another() {
        let key = Keypair::from_seed(&[1; 32]);
        let sealed = seal(&key, &batch(&key), 0, 5).unwrap();
        let owner = Keypair::from_seed(&[9; 32]).did();
        let owned = forward_realm_id(&RealmName::new("io.acme").unwrap(), Some(&owner));
        assert_eq!(open(&sealed, &owned), Err(ForwardError::OtherRealm));
        let other = forward_realm_id(&RealmName::new("io.acme.eu").unwrap(), None);
        assert_eq!(open(&sealed, &other), Err(ForwardError::OtherRealm));
    }

    #[test]
    fn a_batch_past_the_limits_is_refused_before_its_signature_is_checked() {
        let key = Keypair::from_seed(&[1; 32]);
        let mut big = batch(&key);
        big.items = vec![big.items[0].clone(); MAX_FORWARD_ITEMS + 1];
        let sealed = seal(&key, &big, 0, 5).unwrap();
        assert!(matches!(
            open(&sealed, &realm()),
            Err(ForwardError::Malformed(_))
        ));
        let mut empty = batch(&key);
        empty.items.clear();
        let sealed = seal(&key, &empty, 0, 5).unwrap();
        assert!(
            matches!(open(&sealed, &realm()), Err(ForwardError::Malformed(_))),
            "a batch of nothing authorizes nothing, so it is not taken"
        );
    }
}
