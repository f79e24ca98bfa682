//! UCAN 0.10 revocation records (spec §6.6): `{"iss", "revoke", "challenge"}`, where `challenge`
//! is the issuer's signature over `REVOKE:<cid>`, base64-encoded.
//!
//! A record only says that `iss` revokes the token `revoke`. Whether `iss` may (it must be the
//! issuer of that token or of a token above it in its chain) is decided by whoever holds the
//! chain: the capability layer.

use data_encoding::{BASE64_NOPAD, BASE64URL_NOPAD};
use serde_json::{Value, json};
use weft_identity::{Did, Keypair};

use crate::{Cid, Token, UcanError};

/// Longest record accepted, in bytes: a DID, a CID and a signature fit in a few hundred.
pub const MAX_RECORD_LEN: usize = 1024;

/// A signed statement that a token is revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    issuer: Did,
    revoke: Cid,
    signature: [u8; 64],
}

impl Revocation {
    /// `key` revokes `token` (named by its SHA2-256 CID).
    pub fn issue(key: &Keypair, token: &Token) -> Self {
        Self::issue_cid(key, *token.cid())
    }

    /// `key` revokes the token whose CID is `revoke`.
    pub fn issue_cid(key: &Keypair, revoke: Cid) -> Self {
        let signature = key.sign(challenge(&revoke).as_bytes());
        Self {
            issuer: key.did(),
            revoke,
            signature,
        }
    }

    /// Reads a record from its JSON form; checks its shape, not its signature.
    pub fn parse(text: &str) -> Result<Self, UcanError> {
        if text.len() > MAX_RECORD_LEN {
            return Err(UcanError::Malformed(format!(
                "revocation record is {} bytes, more than {MAX_RECORD_LEN}",
                text.len()
            )));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| UcanError::Malformed(format!("revocation record is not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| UcanError::Malformed("revocation record is not a JSON object".into()))?;
        let field = |name: &'static str| -> Result<&str, UcanError> {
            object
                .get(name)
                .ok_or(UcanError::MissingField {
                    part: "revocation",
                    field: name,
                })?
                .as_str()
                .ok_or_else(|| {
                    UcanError::incorrect_type(format!("revocation.{name}"), "must be a string")
                })
        };
        let issuer = Did::parse(field("iss")?).map_err(|e| {
            UcanError::incorrect_type("revocation.iss", format!("is not a DID: {e}"))
        })?;
        let revoke = Cid::parse(field("revoke")?).map_err(|e| {
            UcanError::incorrect_type("revocation.revoke", format!("is not a CID: {e}"))
        })?;
        let encoded = field("challenge")?.trim_end_matches('=');
        let bytes = BASE64_NOPAD
            .decode(encoded.as_bytes())
            .or_else(|_| BASE64URL_NOPAD.decode(encoded.as_bytes()))
            .map_err(|_| UcanError::incorrect_type("revocation.challenge", "is not base64"))?;
        let signature: [u8; 64] = bytes.as_slice().try_into().map_err(|_| {
            UcanError::BadSignature(format!("challenge is {} bytes, not 64", bytes.len()))
        })?;
        Ok(Self {
            issuer,
            revoke,
            signature,
        })
    }

    /// The record as JSON, keys sorted.
    pub fn to_json(&self) -> String {
        json!({
            "challenge": BASE64_NOPAD.encode(&self.signature),
            "iss": self.issuer.to_string(),
            "revoke": self.revoke.to_string(),
        })
        .to_string()
    }

    /// Checks the issuer's signature over `REVOKE:<cid>`.
    pub fn verify(&self) -> Result<(), UcanError> {
        self.issuer
            .verify(challenge(&self.revoke).as_bytes(), &self.signature)
            .map_err(|e| UcanError::BadSignature(format!("revocation by {}: {e}", self.issuer)))
    }

    /// Who revokes.
    pub fn issuer(&self) -> &Did {
        &self.issuer
    }

    /// The token revoked.
    pub fn revoked(&self) -> &Cid {
        &self.revoke
    }
}

fn challenge(cid: &Cid) -> String {
    format!("REVOKE:{cid}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Builder;

    #[test]
    fn issued_records_round_trip_and_verify() {
        let key = Keypair::generate().unwrap();
        let token = Builder::new(&key, key.did())
            .never_expires()
            .claim("weft://io.acme", "realm/join")
            .build()
            .unwrap();
        let record = Revocation::issue(&key, &token);
        assert_eq!(record.revoked(), token.cid());
        let parsed = Revocation::parse(&record.to_json()).unwrap();
        assert_eq!(parsed, record);
        parsed.verify().unwrap();
    }

    #[test]
    fn forged_and_broken_records_are_refused() {
        let (key, other) = (Keypair::generate().unwrap(), Keypair::generate().unwrap());
        let cid = Cid::compute(b"token", crate::HashAlg::Sha2_256);
        let record = Revocation::issue_cid(&key, cid);
        let mut json: Value = serde_json::from_str(&record.to_json()).unwrap();
        json["iss"] = Value::String(other.did().to_string());
        let forged = Revocation::parse(&json.to_string()).unwrap();
        assert_eq!(forged.verify().unwrap_err().code(), "badSignature");
        let code = |text: &str| Revocation::parse(text).unwrap_err().code();
        assert_eq!(code("nope"), "malformed");
        assert_eq!(code("[]"), "malformed");
        assert_eq!(code(r#"{"iss":"x"}"#), "incorrectType");
        assert_eq!(code(&"x".repeat(MAX_RECORD_LEN + 1)), "malformed");
        let mut missing: Value = serde_json::from_str(&record.to_json()).unwrap();
        missing.as_object_mut().unwrap().remove("challenge");
        assert_eq!(code(&missing.to_string()), "missingField");
    }
}
