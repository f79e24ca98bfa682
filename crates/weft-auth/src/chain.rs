//! A presented capability chain: the token a principal acts under, and the proofs it cites.

use std::sync::Arc;

use weft_ucan::{Cid, ProofStore, Token, UcanError};

/// A token with the proofs needed to verify it, as a peer presents them.
///
/// Parsing happens here, once, when the chain is received; the [`Authorizer`](crate::Authorizer)
/// then finds it in its cache by the leaf's CID on every later use.
#[derive(Debug, Clone)]
pub struct Chain {
    leaf: Arc<Token>,
    proofs: Arc<ProofStore>,
}

impl Chain {
    /// A chain from parsed tokens.
    pub fn new(leaf: impl Into<Arc<Token>>, proofs: impl IntoIterator<Item = Token>) -> Self {
        Self {
            leaf: leaf.into(),
            proofs: Arc::new(proofs.into_iter().collect()),
        }
    }

    /// Parses a leaf token and its proofs from their JWT strings.
    pub fn parse<S: AsRef<str>>(leaf: &str, proofs: &[S]) -> Result<Self, UcanError> {
        let leaf = Token::parse(leaf)?;
        let proofs = proofs
            .iter()
            .map(|p| Token::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(leaf, proofs))
    }

    /// The token acted under.
    pub fn leaf(&self) -> &Arc<Token> {
        &self.leaf
    }

    /// The proofs available to verify it.
    pub fn proofs(&self) -> &ProofStore {
        &self.proofs
    }

    /// The leaf's CID, which names the whole chain (it covers the proofs' CIDs transitively).
    pub fn cid(&self) -> &Cid {
        self.leaf.cid()
    }
}
