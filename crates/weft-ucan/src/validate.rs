//! Chain verification: signatures, delegation, time bounds and attenuation, per UCAN 0.10.0.
//!
//! A token is valid when its signature verifies, it is inside its time window, and every proof it
//! cites is itself valid, was issued *to* this token's issuer, covers this token's time window, and
//! grants at least every capability this token claims. A token without proofs is a root: the
//! validator accepts its capabilities as claimed, and it is the caller (weft's capability layer)
//! that decides whose roots count, for weft the realm owner's.
//!
//! Verification is split in two so that callers can cache: [`Validator::verify_chain`] does the
//! time-independent work (signatures, delegation, attenuation) and returns a [`VerifiedToken`];
//! [`VerifiedToken::check_time`] is the cheap per-use check against `now`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{
    Capability, Cid, DefaultSemantics, HashAlg, Semantics, Token, UcanError, caveats_enable,
};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY: u64 = 60;
/// Deepest delegation chain accepted (a root plus 15 re-delegations).
pub const MAX_CHAIN_DEPTH: usize = 16;

/// Tokens that may be cited as proofs, indexed by CID.
///
/// Each token is indexed under both its SHA2-256 and its BLAKE3 CID, so a proof cited either way
/// is found.
#[derive(Debug, Clone, Default)]
pub struct ProofStore {
    tokens: HashMap<Cid, Arc<Token>>,
}

impl ProofStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token; returns its SHA2-256 CID.
    pub fn insert(&mut self, token: impl Into<Arc<Token>>) -> Cid {
        let token = token.into();
        let cid = *token.cid();
        self.tokens.insert(
            Cid::compute(token.as_str().as_bytes(), HashAlg::Blake3),
            token.clone(),
        );
        self.tokens.insert(cid, token);
        cid
    }

    /// The token with this CID, if present.
    pub fn get(&self, cid: &Cid) -> Option<&Arc<Token>> {
        self.tokens.get(cid)
    }

    /// Number of distinct tokens held.
    pub fn len(&self) -> usize {
        self.tokens.len() / 2
    }

    /// True when the store holds no token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

impl<T: Into<Arc<Token>>> FromIterator<T> for ProofStore {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut store = Self::new();
        for token in iter {
            store.insert(token);
        }
        store
    }
}

/// A token whose signature, proofs and attenuation have been verified, with its verified proofs.
///
/// Holding one proves the chain's structure is sound; it is still only usable while
/// [`check_time`](Self::check_time) passes.
#[derive(Debug)]
pub struct VerifiedToken {
    token: Arc<Token>,
    proofs: Vec<Arc<VerifiedToken>>,
}

impl VerifiedToken {
    /// The token itself.
    pub fn token(&self) -> &Arc<Token> {
        &self.token
    }

    /// Its verified proofs, in the order it cites them.
    pub fn proofs(&self) -> &[Arc<VerifiedToken>] {
        &self.proofs
    }

    /// Is the chain usable at `now`? Each token's window lies inside its proofs' windows (checked
    /// at verification), so the leaf's window is the chain's.
    pub fn check_time(&self, now: u64, leeway: u64) -> Result<(), UcanError> {
        self.token.check_time(now, leeway)
    }

    /// The SHA2-256 CIDs of every token in the chain, leaf first (a proof cited twice appears
    /// twice).
    #[cfg(test)]
    pub(crate) fn cids(&self) -> Vec<Cid> {
        let mut out = vec![*self.token.cid()];
        for proof in &self.proofs {
            out.extend(proof.cids());
        }
        out
    }
}

/// Verifies tokens and their proof chains under a [`Semantics`].
#[derive(Debug, Clone)]
pub struct Validator<S = DefaultSemantics> {
    semantics: S,
    leeway: u64,
}

impl Default for Validator<DefaultSemantics> {
    fn default() -> Self {
        Self::new(DefaultSemantics)
    }
}

impl<S: Semantics> Validator<S> {
    /// A validator with the default 60-second leeway.
    pub fn new(semantics: S) -> Self {
        Self {
            semantics,
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// Sets the clock-skew leeway in seconds.
    pub fn with_leeway(mut self, leeway: u64) -> Self {
        self.leeway = leeway;
        self
    }

    /// The leeway in seconds.
    pub fn leeway(&self) -> u64 {
        self.leeway
    }

    /// The semantics consulted for attenuation.
    pub fn semantics(&self) -> &S {
        &self.semantics
    }

    /// Verifies the whole chain and that it is usable at `now`.
    pub fn verify(
        &self,
        token: impl Into<Arc<Token>>,
        proofs: &ProofStore,
        now: u64,
    ) -> Result<Arc<VerifiedToken>, UcanError> {
        let verified = self.verify_chain(token, proofs)?;
        verified.check_time(now, self.leeway)?;
        Ok(verified)
    }

    /// Verifies everything that does not depend on the clock: that each proof is present, valid and
    /// addressed to the issuer citing it, time-window containment, attenuation, then signatures.
    pub fn verify_chain(
        &self,
        token: impl Into<Arc<Token>>,
        proofs: &ProofStore,
    ) -> Result<Arc<VerifiedToken>, UcanError> {
        let mut memo = HashMap::new();
        let mut budget = S::Budget::default();
        self.verify_node(token.into(), proofs, 0, &mut memo, &mut budget)
    }

    fn verify_node(
        &self,
        token: Arc<Token>,
        store: &ProofStore,
        depth: usize,
        // A proof cited along several paths is verified once.
        memo: &mut HashMap<Cid, Arc<VerifiedToken>>,
        // Resource comparisons for the whole chain share one bound.
        budget: &mut S::Budget,
    ) -> Result<Arc<VerifiedToken>, UcanError> {
        if depth >= MAX_CHAIN_DEPTH {
            return Err(UcanError::IncorrectProofs(format!(
                "chain is deeper than {MAX_CHAIN_DEPTH} tokens"
            )));
        }
        if let Some(done) = memo.get(token.cid()) {
            return Ok(done.clone());
        }
        let mut proofs = Vec::with_capacity(token.proofs().len());
        for cid in token.proofs() {
            let proof = store.get(cid).ok_or_else(|| {
                UcanError::IncorrectProofs(format!("proof {cid} was not provided"))
            })?;
            proofs.push(self.verify_node(proof.clone(), store, depth + 1, memo, budget)?);
        }
        let direct: Vec<&Token> = proofs.iter().map(|p| &**p.token()).collect();
        self.check_step(&token, &direct, budget)?;
        // The token's own signature is checked last: when a delegation is broken and the
        // signature is bad too, the conformance fixtures expect the delegation error.
        token.verify_signature()?;
        let verified = Arc::new(VerifiedToken { token, proofs });
        memo.insert(*verified.token.cid(), verified.clone());
        Ok(verified)
    }

    /// Checks one delegation step, without verifying the proofs themselves: `token`'s window lies
    /// inside each proof's, each proof is addressed to `token`'s issuer, and, when there are proofs,
    /// every capability of `token` is granted by one of them.
    ///
    /// [`verify_chain`](Self::verify_chain) applies it at every link; a tool issuing a token can
    /// apply it to refuse a delegation that its own proofs do not support.
    pub fn check_delegation_step(&self, token: &Token, proofs: &[&Token]) -> Result<(), UcanError> {
        self.check_step(token, proofs, &mut S::Budget::default())
    }

    fn check_step(
        &self,
        token: &Token,
        proofs: &[&Token],
        budget: &mut S::Budget,
    ) -> Result<(), UcanError> {
        for proof in proofs {
            check_delegation(token, proof)?;
        }
        if proofs.is_empty() {
            return Ok(());
        }
        // Each resource is read once for the step: a token with `n` capabilities over proofs
        // with `m` is `n × m` comparisons, not as many parses.
        let parse =
            |capability: &'_ Capability| self.semantics.parse_resource(&capability.resource);
        let granted: Vec<Vec<S::Resource>> = proofs
            .iter()
            .map(|p| p.capabilities().iter().map(parse).collect())
            .collect();
        for capability in token.capabilities() {
            let requested = parse(capability);
            let granted_by = proofs.iter().zip(&granted).any(|(proof, resources)| {
                self.grants(proof, resources, capability, &requested, budget)
            });
            if !granted_by {
                return Err(UcanError::InvalidDelegation(format!(
                    "{} on {} is not granted by any proof (a delegation may only narrow)",
                    capability.ability, capability.resource
                )));
            }
        }
        Ok(())
    }

    /// Does `proof` (whose resources are `resources`, in order) grant `capability` (same or
    /// wider resource, ability and caveats)? Resources are compared last: they cost the most.
    fn grants(
        &self,
        proof: &Token,
        resources: &[S::Resource],
        capability: &Capability,
        requested: &S::Resource,
        budget: &mut S::Budget,
    ) -> bool {
        proof
            .capabilities()
            .iter()
            .zip(resources)
            .any(|(granted, resource)| {
                self.semantics
                    .ability_covers(&granted.ability, &capability.ability)
                    && caveats_enable(&granted.caveats, &capability.caveats)
                    && self
                        .semantics
                        .resource_contains(resource, requested, budget)
            })
    }
}

/// The token's window must lie inside the proof's (one cannot delegate for longer, or earlier, than
/// one holds), and the proof must be addressed to the token's issuer. Time is checked first, as the
/// conformance fixtures expect when both are wrong.
fn check_delegation(token: &Token, proof: &Token) -> Result<(), UcanError> {
    let (nbf, proof_nbf) = (
        token.not_before().unwrap_or(0),
        proof.not_before().unwrap_or(0),
    );
    if nbf < proof_nbf {
        return Err(UcanError::TimeBoundsViolation(format!(
            "token is valid from {nbf}, before its proof {} (from {proof_nbf})",
            proof.cid()
        )));
    }
    match (token.expires_at(), proof.expires_at()) {
        (None, Some(proof_exp)) => {
            return Err(UcanError::TimeBoundsViolation(format!(
                "token never expires but its proof {} expires at {proof_exp}",
                proof.cid()
            )));
        }
        (Some(exp), Some(proof_exp)) if exp > proof_exp => {
            return Err(UcanError::TimeBoundsViolation(format!(
                "token expires at {exp}, after its proof {} (at {proof_exp})",
                proof.cid()
            )));
        }
        _ => {}
    }
    if proof.audience() != token.issuer() {
        return Err(UcanError::InvalidDelegation(format!(
            "issuer {} is not the audience {} of proof {}",
            token.issuer(),
            proof.audience(),
            proof.cid()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Builder;
    use weft_identity::Keypair;

    struct Three {
        root: Keypair,
        mid: Keypair,
        leaf: Keypair,
    }

    fn keys() -> Three {
        Three {
            root: Keypair::from_seed(&[1; 32]),
            mid: Keypair::from_seed(&[2; 32]),
            leaf: Keypair::from_seed(&[3; 32]),
        }
    }

    #[test]
    fn a_narrowing_chain_verifies() {
        let k = keys();
        let root = Builder::new(&k.root, k.mid.did())
            .expires_at(1000)
            .claim("a:x", "msg/*")
            .build()
            .unwrap();
        let leaf = Builder::new(&k.mid, k.leaf.did())
            .expires_at(900)
            .claim("a:x", "msg/publish")
            .proof(*root.cid())
            .build()
            .unwrap();
        let store = ProofStore::from_iter([root.clone()]);
        let verified = Validator::default()
            .verify(leaf.clone(), &store, 500)
            .unwrap();
        assert_eq!(verified.cids(), vec![*leaf.cid(), *root.cid()]);
        assert_eq!(
            Validator::default()
                .verify(leaf, &store, 2000)
                .unwrap_err()
                .code(),
            "expired"
        );
    }

    #[test]
    fn widening_missing_proofs_and_wrong_issuer_fail() {
        let k = keys();
        let root = Builder::new(&k.root, k.mid.did())
            .expires_at(1000)
            .claim("a:x", "msg/publish")
            .build()
            .unwrap();
        let store = ProofStore::from_iter([root.clone()]);
        let wider = Builder::new(&k.mid, k.leaf.did())
            .expires_at(900)
            .claim("a:x", "msg/*")
            .proof(*root.cid())
            .build()
            .unwrap();
        assert_eq!(
            Validator::default()
                .verify(wider, &store, 500)
                .unwrap_err()
                .code(),
            "invalidDelegation"
        );

        let missing = Builder::new(&k.mid, k.leaf.did())
            .expires_at(900)
            .proof(Cid::compute(b"nothing", HashAlg::Sha2_256))
            .build()
            .unwrap();
        assert_eq!(
            Validator::default()
                .verify(missing, &store, 500)
                .unwrap_err()
                .code(),
            "incorrectProofs"
        );

        let stolen = Builder::new(&k.leaf, k.leaf.did())
            .expires_at(900)
            .claim("a:x", "msg/publish")
            .proof(*root.cid())
            .build()
            .unwrap();
        assert_eq!(
            Validator::default()
                .verify(stolen, &store, 500)
                .unwrap_err()
                .code(),
            "invalidDelegation"
        );
    }

    #[test]
    fn proofs_cited_by_blake3_cid_are_found() {
        let k = keys();
        let root = Builder::new(&k.root, k.mid.did())
            .never_expires()
            .claim("a:x", "msg/publish")
            .build()
            .unwrap();
        let by_blake3 = Cid::compute(root.as_str().as_bytes(), HashAlg::Blake3);
        let leaf = Builder::new(&k.mid, k.leaf.did())
            .never_expires()
            .claim("a:x", "msg/publish")
            .proof(by_blake3)
            .build()
            .unwrap();
        let store = ProofStore::from_iter([root]);
        assert!(Validator::default().verify(leaf, &store, 0).is_ok());
    }

    #[test]
    fn chains_deeper_than_the_limit_are_refused() {
        // MAX_CHAIN_DEPTH + 1 tokens need one key more than that.
        let keys: Vec<Keypair> = (0..=MAX_CHAIN_DEPTH as u8 + 1)
            .map(|i| Keypair::from_seed(&[i + 1; 32]))
            .collect();
        let mut store = ProofStore::new();
        let mut previous: Option<Token> = None;
        for pair in keys.windows(2) {
            let mut builder = Builder::new(&pair[0], pair[1].did())
                .never_expires()
                .claim("a:x", "msg/publish");
            if let Some(p) = &previous {
                builder = builder.proof(*p.cid());
                store.insert(p.clone());
            }
            previous = Some(builder.build().unwrap());
        }
        let leaf = previous.unwrap();
        assert_eq!(
            Validator::default()
                .verify(leaf.clone(), &store, 0)
                .unwrap_err()
                .code(),
            "incorrectProofs"
        );
        // Its proof is a chain of exactly MAX_CHAIN_DEPTH tokens, which is accepted.
        let longest = store.get(&leaf.proofs()[0]).unwrap().clone();
        assert!(Validator::default().verify(longest, &store, 0).is_ok());
    }
}
