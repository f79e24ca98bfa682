//! Building and signing tokens, deterministically.
//!
//! The same inputs always give the same bytes: the header is fixed, payload keys are sorted at every
//! depth, and Ed25519 signatures are deterministic. So a token's CID is reproducible, and the
//! fixtures' `build` cases can be checked byte for byte.

use std::collections::BTreeMap;

use data_encoding::BASE64URL_NOPAD;
use serde_json::{Map, Value};
use weft_identity::{Did, Keypair};

use crate::capability::Caveat;
use crate::token::UCAN_VERSION;
use crate::{Cid, Token, UcanError, json};

const HEADER: &str = r#"{"alg":"EdDSA","typ":"JWT"}"#;

/// Builds a UCAN 0.10.0 token signed by `issuer`.
///
/// ```
/// # use weft_identity::Keypair;
/// # use weft_ucan::Builder;
/// let owner = Keypair::generate().unwrap();
/// let team = Keypair::generate().unwrap();
/// let token = Builder::new(&owner, team.did())
///     .expires_at(2_000_000_000)
///     .claim("weft://io.acme/orders.*", "rpc/call")
///     .build()
///     .unwrap();
/// assert_eq!(token.audience(), &team.did());
/// ```
#[derive(Debug)]
pub struct Builder<'a> {
    issuer: &'a Keypair,
    audience: Did,
    /// `None` until chosen: `exp` is required, and "never" must be said explicitly.
    expiration: Option<Option<u64>>,
    not_before: Option<u64>,
    nonce: Option<String>,
    facts: Map<String, Value>,
    capabilities: BTreeMap<String, BTreeMap<String, Vec<Value>>>,
    proofs: Vec<Cid>,
}

impl<'a> Builder<'a> {
    /// Starts a token from `issuer` to `audience`.
    pub fn new(issuer: &'a Keypair, audience: Did) -> Self {
        Self {
            issuer,
            audience,
            expiration: None,
            not_before: None,
            nonce: None,
            facts: Map::new(),
            capabilities: BTreeMap::new(),
            proofs: Vec::new(),
        }
    }

    /// Expires at `exp`, Unix seconds.
    pub fn expires_at(mut self, exp: u64) -> Self {
        self.expiration = Some(Some(exp));
        self
    }

    /// Never expires (`"exp": null`).
    pub fn never_expires(mut self) -> Self {
        self.expiration = Some(None);
        self
    }

    /// Not valid before `nbf`, Unix seconds.
    pub fn not_before(mut self, nbf: u64) -> Self {
        self.not_before = Some(nbf);
        self
    }

    /// Sets the nonce (`nnc`), which makes otherwise identical tokens distinct.
    pub fn nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// Adds a fact (`fct`).
    pub fn fact(mut self, key: impl Into<String>, value: Value) -> Self {
        self.facts.insert(key.into(), value);
        self
    }

    /// Grants `ability` on `resource` without caveats (`[{}]`).
    pub fn claim(self, resource: impl Into<String>, ability: impl Into<String>) -> Self {
        self.claim_with_caveats(resource, ability, vec![Caveat::new()])
    }

    /// Grants `ability` on `resource` under any one of `caveats`.
    pub fn claim_with_caveats(
        mut self,
        resource: impl Into<String>,
        ability: impl Into<String>,
        caveats: Vec<Caveat>,
    ) -> Self {
        let caveats = caveats.into_iter().map(Value::Object).collect();
        self.capabilities
            .entry(resource.into())
            .or_default()
            .insert(ability.into(), caveats);
        self
    }

    /// Cites a proof by CID.
    pub fn proof(mut self, cid: Cid) -> Self {
        self.proofs.push(cid);
        self
    }

    /// Encodes, signs and re-parses the token, so that what it returns is exactly what a receiver
    /// will parse (and a bad ability or empty caveats fails here, not at the receiver).
    pub fn build(self) -> Result<Token, UcanError> {
        let exp = self.expiration.ok_or(UcanError::MissingField {
            part: "payload",
            field: "exp",
        })?;
        let cap = Value::Object(
            self.capabilities
                .into_iter()
                .map(|(resource, abilities)| {
                    let abilities = abilities
                        .into_iter()
                        .map(|(a, c)| (a, Value::Array(c)))
                        .collect();
                    (resource, Value::Object(abilities))
                })
                .collect(),
        );
        let aud = Value::String(self.audience.to_string());
        let iss = Value::String(self.issuer.did().to_string());
        let exp = exp.map_or(Value::Null, Value::from);
        let fct = (!self.facts.is_empty()).then_some(Value::Object(self.facts));
        let nbf = self.not_before.map(Value::from);
        let nnc = self.nonce.map(Value::String);
        let prf = (!self.proofs.is_empty()).then(|| {
            Value::Array(
                self.proofs
                    .iter()
                    .map(|c| Value::String(c.to_string()))
                    .collect(),
            )
        });
        let ucv = Value::String(UCAN_VERSION.to_owned());

        // Keys in byte order, as the canonical encoding and the fixtures have them.
        let entries = [
            ("aud", Some(&aud)),
            ("cap", Some(&cap)),
            ("exp", Some(&exp)),
            ("fct", fct.as_ref()),
            ("iss", Some(&iss)),
            ("nbf", nbf.as_ref()),
            ("nnc", nnc.as_ref()),
            ("prf", prf.as_ref()),
            ("ucv", Some(&ucv)),
        ];
        let mut payload = String::new();
        json::write_object(
            entries.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))),
            &mut payload,
        );

        let mut raw = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(HEADER.as_bytes()),
            BASE64URL_NOPAD.encode(payload.as_bytes())
        );
        let signature = self.issuer.sign(raw.as_bytes());
        raw.push('.');
        raw.push_str(&BASE64URL_NOPAD.encode(&signature));
        Token::parse(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_what_it_parses_and_verifies() {
        let issuer = Keypair::from_seed(&[1; 32]);
        let audience = Keypair::from_seed(&[2; 32]).did();
        let token = Builder::new(&issuer, audience)
            .expires_at(100)
            .not_before(10)
            .nonce("n1")
            .fact("why", Value::from("test"))
            .claim("weft://io.acme/orders.*", "rpc/call")
            .build()
            .unwrap();
        token.verify_signature().unwrap();
        assert_eq!(token.issuer(), &issuer.did());
        assert_eq!(token.expires_at(), Some(100));
        assert_eq!(token.not_before(), Some(10));
        assert_eq!(token.nonce(), Some("n1"));
        assert_eq!(token.facts().unwrap()["why"], "test");
        assert_eq!(token.capabilities()[0].ability, "rpc/call");
        assert!(token.capabilities()[0].is_unrestricted());

        // Deterministic: the same inputs give the same token and CID.
        let again = Builder::new(&issuer, audience)
            .expires_at(100)
            .not_before(10)
            .nonce("n1")
            .fact("why", Value::from("test"))
            .claim("weft://io.acme/orders.*", "rpc/call")
            .build()
            .unwrap();
        assert_eq!(token.as_str(), again.as_str());
    }

    #[test]
    fn exp_must_be_chosen() {
        let issuer = Keypair::from_seed(&[1; 32]);
        let err = Builder::new(&issuer, issuer.did()).build().unwrap_err();
        assert_eq!(err.code(), "missingField");
        assert!(
            Builder::new(&issuer, issuer.did())
                .never_expires()
                .build()
                .is_ok()
        );
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let issuer = Keypair::from_seed(&[1; 32]);
        let token = Builder::new(&issuer, issuer.did())
            .never_expires()
            .claim("a:b", "x/y")
            .build()
            .unwrap();
        let parts: Vec<&str> = token.as_str().split('.').collect();
        let payload =
            String::from_utf8(BASE64URL_NOPAD.decode(parts[1].as_bytes()).unwrap()).unwrap();
        let forged = payload.replace("x/y", "x/*");
        let raw = format!(
            "{}.{}.{}",
            parts[0],
            BASE64URL_NOPAD.encode(forged.as_bytes()),
            parts[2]
        );
        let forged = Token::parse(&raw).unwrap();
        assert_eq!(
            forged.verify_signature().unwrap_err().code(),
            "badSignature"
        );
    }
}
