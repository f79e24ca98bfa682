//! Chains as frames carry them: this node's own, put in wire form ([`wire_chain`]), and peers',
//! parsed once per distinct text ([`ChainCache`]).
//!
//! A gateway acting for a client sends the client's chain with every publication or call; parsing
//! it (base64, JSON and a SHA-256 per token) each time would cost microseconds per frame. Each
//! router and registry keeps its own cache, so no lock is taken. Only chains that parse are kept,
//! and the cache is emptied when full, so a peer sending endless distinct chains gains nothing;
//! chains above 16 KiB of text are not kept, so the cache stays within a few megabytes.
//! Whether a chain *authorizes* is still decided every time, by the `Authorizer`.

use std::collections::HashMap;

use weft_auth::Chain;
use weft_ucan::UcanError;
use weft_wire::WireChain;

/// Distinct chains kept at most.
const CAPACITY: usize = 256;
/// Chains longer than this (leaf and proofs, as text) are parsed every time, not kept: real
/// chains are a few kilobytes, and a member sending huge ones must not fill the cache with them.
const MAX_KEPT_LEN: usize = 16 * 1024;

/// Parsed chains by their wire text.
#[derive(Debug, Default)]
pub(crate) struct ChainCache {
    parsed: HashMap<WireChain, Chain>,
}

impl ChainCache {
    /// The chain `wire` spells, parsed now or earlier.
    pub(crate) fn parse(&mut self, wire: &WireChain) -> Result<Chain, UcanError> {
        if let Some(chain) = self.parsed.get(wire) {
            return Ok(chain.clone());
        }
        let chain = Chain::parse(&wire.leaf, &wire.proofs)?;
        let len = wire.leaf.len() + wire.proofs.iter().map(String::len).sum::<usize>();
        if len > MAX_KEPT_LEN {
            return Ok(chain);
        }
        if self.parsed.len() >= CAPACITY {
            self.parsed.clear();
        }
        self.parsed.insert(wire.clone(), chain.clone());
        Ok(chain)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.parsed.len()
    }
}

/// A chain as presented on the wire: its leaf and every proof it can cite.
pub(crate) fn wire_chain(chain: &weft_auth::Chain) -> WireChain {
    WireChain {
        leaf: chain.leaf().as_str().to_owned(),
        proofs: proofs_of(chain),
    }
}

/// Every proof a chain can cite, as JWTs, for presenting it to a peer.
fn proofs_of(chain: &weft_auth::Chain) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut pending: Vec<weft_ucan::Cid> = chain.leaf().proofs().to_vec();
    while let Some(cid) = pending.pop() {
        if let Some(token) = chain.proofs().get(&cid)
            && !out.iter().any(|t| t == token.as_str())
        {
            out.push(token.as_str().to_owned());
            pending.extend(token.proofs().iter().copied());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_identity::Keypair;
    use weft_ucan::Builder;

    fn wire(issuer: &Keypair) -> WireChain {
        let token = Builder::new(issuer, Keypair::generate().unwrap().did())
            .expires_at(4_000_000_000)
            .claim("weft://dev/a.*", "msg/publish")
            .build()
            .unwrap();
        WireChain {
            leaf: token.as_str().to_owned(),
            proofs: vec![],
        }
    }

    #[test]
    fn a_chain_is_parsed_once_and_garbage_is_not_kept() {
        let issuer = Keypair::generate().unwrap();
        let mut cache = ChainCache::default();
        let chain = wire(&issuer);
        let first = cache.parse(&chain).unwrap();
        let again = cache.parse(&chain).unwrap();
        assert_eq!(first.leaf().cid(), again.leaf().cid());
        assert_eq!(cache.len(), 1);
        let garbage = WireChain {
            leaf: "not.a.jwt".into(),
            proofs: vec![],
        };
        assert!(cache.parse(&garbage).is_err());
        assert_eq!(cache.len(), 1, "failures are not kept");
    }

    #[test]
    fn huge_chains_are_parsed_but_not_kept() {
        let issuer = Keypair::generate().unwrap();
        let token = Builder::new(&issuer, Keypair::generate().unwrap().did())
            .expires_at(4_000_000_000)
            .claim(
                format!("weft://dev/{}", "a".repeat(MAX_KEPT_LEN)),
                "msg/publish",
            )
            .build()
            .unwrap();
        let wire = WireChain {
            leaf: token.as_str().to_owned(),
            proofs: vec![],
        };
        let mut cache = ChainCache::default();
        assert!(cache.parse(&wire).is_ok());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let issuer = Keypair::generate().unwrap();
        let mut cache = ChainCache::default();
        for _ in 0..CAPACITY + 10 {
            cache.parse(&wire(&issuer)).unwrap();
        }
        assert!(cache.len() <= CAPACITY);
    }
}
