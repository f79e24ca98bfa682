//! Parsing a UCAN 0.10.0 JWT into a [`Token`].
//!
//! Parsing checks shape and types only; whether the token is *valid* (signature, time, proofs) is
//! the [`Validator`](crate::Validator)'s question. The order of checks is fixed so that each
//! malformed input gets the same error code as in the conformance fixtures: size and shape first,
//! then the header (`alg`, `typ`), then payload fields in the order `ucv iss aud exp nbf nnc fct
//! cap prf`.

use std::fmt;

use data_encoding::BASE64URL_NOPAD;
use serde_json::{Map, Value};
use weft_identity::Did;

use crate::capability::{Capability, Caveat};
use crate::{Cid, HashAlg, UcanError};

/// The one UCAN version weft reads and writes.
pub const UCAN_VERSION: &str = "0.10.0";

/// Longest token accepted, in bytes. Real tokens are a few hundred bytes; the bound keeps a hostile
/// peer or a mistaken argument from costing more than a bounded decode.
pub const MAX_TOKEN_LEN: usize = 32 * 1024;
/// Most capabilities (resource–ability pairs) one token may grant. Checking a delegation compares
/// each of a token's capabilities with each of its proofs': the product stays small.
pub const MAX_CAPABILITIES: usize = 64;

/// A parsed UCAN: its exact bytes, its decoded fields and its CID.
///
/// The raw string is kept because the signature covers the bytes as sent, not any re-encoding of
/// the fields, and because a token's CID is the hash of those bytes.
#[derive(Clone, PartialEq)]
pub struct Token {
    raw: Box<str>,
    /// Length of `header.payload`, the signed part.
    signed_len: usize,
    iss: Did,
    aud: Did,
    exp: Option<u64>,
    nbf: Option<u64>,
    nonce: Option<String>,
    facts: Option<Map<String, Value>>,
    capabilities: Vec<Capability>,
    proofs: Vec<Cid>,
    signature: [u8; 64],
    cid: Cid,
}

/// Splits and decodes a JWT without checking any field: header JSON, payload JSON, signature
/// bytes. For inspection; use [`Token::parse`] to read a token.
pub fn decode_unverified(raw: &str) -> Result<(Value, Value, Vec<u8>), UcanError> {
    let parts = split(raw)?;
    let header = json_part(parts[0], "header")?;
    let payload = json_part(parts[1], "payload")?;
    let signature = BASE64URL_NOPAD
        .decode(parts[2].as_bytes())
        .map_err(|e| UcanError::Malformed(format!("signature is not base64url: {e}")))?;
    Ok((header, payload, signature))
}

fn split(raw: &str) -> Result<[&str; 3], UcanError> {
    if raw.len() > MAX_TOKEN_LEN {
        return Err(UcanError::Malformed(format!(
            "token is {} bytes, more than the {MAX_TOKEN_LEN} allowed",
            raw.len()
        )));
    }
    let mut parts = raw.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() && !s.is_empty() => {
            Ok([h, p, s])
        }
        _ => Err(UcanError::Malformed(
            "expected a JWT: three base64url parts separated by '.'".into(),
        )),
    }
}

fn json_part(b64: &str, part: &'static str) -> Result<Value, UcanError> {
    let bytes = BASE64URL_NOPAD
        .decode(b64.as_bytes())
        .map_err(|e| UcanError::Malformed(format!("{part} is not base64url: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| UcanError::Malformed(format!("{part} is not JSON: {e}")))
}

impl Token {
    /// Parses a JWT, checking its shape and every field's type. Does not verify the signature.
    pub fn parse(raw: &str) -> Result<Self, UcanError> {
        let (header, payload, signature) = decode_unverified(raw)?;
        let header = header
            .as_object()
            .ok_or_else(|| UcanError::Malformed("header is not a JSON object".into()))?;
        let payload = payload
            .as_object()
            .ok_or_else(|| UcanError::Malformed("payload is not a JSON object".into()))?;

        let alg = string(required(header, "header", "alg")?, "header.alg")?;
        let typ = string(required(header, "header", "typ")?, "header.typ")?;
        if alg != "EdDSA" {
            return Err(UcanError::UnsupportedAlg(alg.to_owned()));
        }
        // A field of the right JSON type with a value that is not allowed is `incorrectType`:
        // `malformed` is kept for what is not a JWT of two JSON objects at all.
        if !typ.eq_ignore_ascii_case("JWT") {
            return Err(UcanError::incorrect_type(
                "header.typ",
                format!("is {typ:?}, expected \"JWT\""),
            ));
        }

        let ucv = string(required(payload, "payload", "ucv")?, "payload.ucv")?;
        if !is_semver(ucv) {
            return Err(UcanError::incorrect_type(
                "payload.ucv",
                format!("{ucv:?} is not a semantic version"),
            ));
        }
        if ucv != UCAN_VERSION {
            return Err(UcanError::incorrect_type(
                "payload.ucv",
                format!("is {ucv:?}; weft speaks {UCAN_VERSION}"),
            ));
        }
        let iss = did(required(payload, "payload", "iss")?, "payload.iss")?;
        let aud = did(required(payload, "payload", "aud")?, "payload.aud")?;
        let exp = match required(payload, "payload", "exp")? {
            Value::Null => None,
            v => Some(time(v, "payload.exp")?),
        };
        let nbf = payload
            .get("nbf")
            .map(|v| time(v, "payload.nbf"))
            .transpose()?;
        let nonce = payload
            .get("nnc")
            .map(|v| string(v, "payload.nnc").map(str::to_owned))
            .transpose()?;
        let facts = match payload.get("fct") {
            None => None,
            Some(Value::Object(map)) => Some(map.clone()),
            Some(_) => {
                return Err(UcanError::incorrect_type(
                    "payload.fct",
                    "must be a JSON object",
                ));
            }
        };
        let capabilities = capabilities(required(payload, "payload", "cap")?)?;
        let proofs = match payload.get("prf") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let cid = item.as_str().ok_or_else(|| {
                        UcanError::IncorrectProofs(format!("payload.prf[{i}] is not a CID string"))
                    })?;
                    Cid::parse(cid).map_err(|e| {
                        UcanError::IncorrectProofs(format!("payload.prf[{i}] is not a CID: {e}"))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(UcanError::incorrect_type(
                    "payload.prf",
                    "must be an array of CIDs",
                ));
            }
        };
        let signature: [u8; 64] = signature.as_slice().try_into().map_err(|_| {
            UcanError::BadSignature(format!("signature is {} bytes, not 64", signature.len()))
        })?;

        let signed_len = raw.rfind('.').unwrap_or(0);
        Ok(Self {
            raw: raw.into(),
            signed_len,
            iss,
            aud,
            exp,
            nbf,
            nonce,
            facts,
            capabilities,
            proofs,
            signature,
            cid: Cid::compute(raw.as_bytes(), HashAlg::Sha2_256),
        })
    }

    /// Checks the Ed25519 signature over `header.payload` against the issuer's key.
    pub fn verify_signature(&self) -> Result<(), UcanError> {
        self.iss
            .verify(self.signed_part(), &self.signature)
            .map_err(|e| UcanError::BadSignature(format!("by {}: {e}", self.iss)))
    }

    /// The token exactly as encoded.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The bytes the signature covers: `base64url(header).base64url(payload)`.
    pub fn signed_part(&self) -> &[u8] {
        &self.raw.as_bytes()[..self.signed_len]
    }

    /// The issuer: who signed and grants.
    pub fn issuer(&self) -> &Did {
        &self.iss
    }

    /// The audience: who receives the capabilities.
    pub fn audience(&self) -> &Did {
        &self.aud
    }

    /// Expiry in Unix seconds; `None` never expires.
    pub fn expires_at(&self) -> Option<u64> {
        self.exp
    }

    /// Not-before in Unix seconds; `None` means the epoch.
    pub fn not_before(&self) -> Option<u64> {
        self.nbf
    }

    /// The nonce (`nnc`), if any.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// The facts (`fct`), if any.
    pub fn facts(&self) -> Option<&Map<String, Value>> {
        self.facts.as_ref()
    }

    /// The capabilities, sorted by resource then ability.
    pub fn capabilities(&self) -> &[Capability] {
        &self.capabilities
    }

    /// CIDs of the proofs this token cites, in order.
    pub fn proofs(&self) -> &[Cid] {
        &self.proofs
    }

    /// The token's SHA2-256 CID, the name proofs and caches use for it.
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// Is the token's window `[nbf, exp]` open at `now`, give or take `leeway` seconds?
    pub fn check_time(&self, now: u64, leeway: u64) -> Result<(), UcanError> {
        if let Some(exp) = self.exp
            && exp.saturating_add(leeway) < now
        {
            return Err(UcanError::Expired { exp, now });
        }
        if let Some(nbf) = self.nbf
            && nbf > now.saturating_add(leeway)
        {
            return Err(UcanError::NotReady { nbf, now });
        }
        Ok(())
    }
}

fn required<'a>(
    obj: &'a Map<String, Value>,
    part: &'static str,
    field: &'static str,
) -> Result<&'a Value, UcanError> {
    obj.get(field)
        .ok_or(UcanError::MissingField { part, field })
}

fn string<'a>(value: &'a Value, field: &str) -> Result<&'a str, UcanError> {
    value
        .as_str()
        .ok_or_else(|| UcanError::incorrect_type(field, "must be a string"))
}

fn did(value: &Value, field: &str) -> Result<Did, UcanError> {
    Did::parse(string(value, field)?)
        .map_err(|e| UcanError::incorrect_type(field, format!("is not a DID: {e}")))
}

/// `MAJOR.MINOR.PATCH`, each a number without leading zeros (pre-release and build metadata are
/// not part of a UCAN version).
fn is_semver(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
}

fn time(value: &Value, field: &str) -> Result<u64, UcanError> {
    value.as_u64().ok_or_else(|| {
        UcanError::incorrect_type(field, "must be a non-negative integer (Unix seconds)")
    })
}

fn capabilities(value: &Value) -> Result<Vec<Capability>, UcanError> {
    let resources = value
        .as_object()
        .ok_or_else(|| UcanError::incorrect_type("payload.cap", "must be a JSON object"))?;
    let mut out = Vec::new();
    for (resource, abilities) in resources {
        let field = format!("payload.cap[{resource:?}]");
        if resource.is_empty() {
            return Err(UcanError::incorrect_type(
                field,
                "resource must be a non-empty URI",
            ));
        }
        let abilities = abilities.as_object().ok_or_else(|| {
            UcanError::incorrect_type(&field, "must be a JSON object of abilities")
        })?;
        for (ability, caveats) in abilities {
            let field = format!("{field}[{ability:?}]");
            let well_formed = ability == "*"
                || ability
                    .split_once('/')
                    .is_some_and(|(ns, rest)| !ns.is_empty() && !rest.is_empty());
            if !well_formed {
                return Err(UcanError::incorrect_type(
                    field,
                    "ability must be \"*\" or \"namespace/name\"",
                ));
            }
            let caveats = match caveats {
                Value::Array(items) if !items.is_empty() => items
                    .iter()
                    .map(|c| {
                        c.as_object().cloned().ok_or_else(|| {
                            UcanError::incorrect_type(&field, "caveats must be objects")
                        })
                    })
                    .collect::<Result<Vec<Caveat>, _>>()?,
                _ => {
                    return Err(UcanError::incorrect_type(
                        field,
                        "caveats must be a non-empty array ([{}]: none)",
                    ));
                }
            };
            if out.len() == MAX_CAPABILITIES {
                return Err(UcanError::incorrect_type(
                    "payload.cap",
                    format!("grants more than {MAX_CAPABILITIES} capabilities"),
                ));
            }
            out.push(Capability {
                resource: resource.clone(),
                ability: ability.to_ascii_lowercase(),
                caveats,
            });
        }
    }
    out.sort_by(|a, b| (&a.resource, &a.ability).cmp(&(&b.resource, &b.ability)));
    Ok(out)
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("cid", &self.cid)
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .field("exp", &self.exp)
            .field("nbf", &self.nbf)
            .field("cap", &self.capabilities)
            .field("prf", &self.proofs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.{}",
            BASE64URL_NOPAD.encode(header.as_bytes()),
            BASE64URL_NOPAD.encode(payload.as_bytes()),
            BASE64URL_NOPAD.encode(&[0u8; 64])
        )
    }

    const H: &str = r#"{"alg":"EdDSA","typ":"JWT"}"#;
    const ISS: &str = "did:key:z6Mkk89bC3JrVqKie71YEcc5M1SMVxuCgNx6zLZ8SYJsxALi";

    fn payload(extra: &str) -> String {
        format!(r#"{{"ucv":"0.10.0","iss":"{ISS}","aud":"{ISS}","exp":null,"cap":{{}}{extra}}}"#)
    }

    fn code(raw: &str) -> &'static str {
        Token::parse(raw).map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for raw in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            "e30.e30",
            "e30.e30.",
            "\u{0}.\u{0}.\u{0}",
            "e30.e30.A",
        ] {
            assert_eq!(code(raw), "malformed", "{raw:?}");
        }
        assert_eq!(code(&"a".repeat(MAX_TOKEN_LEN + 1)), "malformed");
        // Truncated base64 inside an otherwise good token.
        let good = jwt(H, &payload(""));
        assert_eq!(code(&good[..good.len() - 3]), "badSignature");
        assert_eq!(code(&good[1..]), "malformed");
    }

    #[test]
    fn capabilities_per_token_are_bounded() {
        let caps = |n: usize| {
            let entries: Vec<String> = (0..n)
                .map(|i| format!(r#""weft://r/a{i}":{{"msg/publish":[{{}}]}}"#))
                .collect();
            format!(
                r#"{{"ucv":"0.10.0","iss":"{ISS}","aud":"{ISS}","exp":null,"cap":{{{}}}}}"#,
                entries.join(",")
            )
        };
        assert_eq!(code(&jwt(H, &caps(MAX_CAPABILITIES))), "ok");
        assert_eq!(code(&jwt(H, &caps(MAX_CAPABILITIES + 1))), "incorrectType");
    }

    #[test]
    fn algorithms_other_than_eddsa_are_refused() {
        assert_eq!(
            code(&jwt(r#"{"alg":"none","typ":"JWT"}"#, &payload(""))),
            "unsupportedAlg"
        );
        assert_eq!(
            code(&jwt(r#"{"alg":"ES256","typ":"JWT"}"#, &payload(""))),
            "unsupportedAlg"
        );
        assert_eq!(
            code(&jwt(r#"{"alg":"EdDSA","typ":"JWT"}"#, &payload(""))),
            "ok"
        );
    }

    #[test]
    fn field_types_are_checked() {
        assert_eq!(code(&jwt(H, &payload(r#","nbf":-1"#))), "incorrectType");
        assert_eq!(code(&jwt(H, &payload(r#","nbf":1.5"#))), "incorrectType");
        assert_eq!(code(&jwt(H, &payload(r#","fct":[]"#))), "incorrectType");
        assert_eq!(
            code(&jwt(H, &payload(r#","prf":["not-a-cid"]"#))),
            "incorrectProofs"
        );
        assert_eq!(code(&jwt(H, &payload(r#","prf":[1]"#))), "incorrectProofs");
        let bad_version = payload("").replace("0.10.0", "0.9.1");
        assert_eq!(code(&jwt(H, &bad_version)), "incorrectType");
        let empty_caveats =
            payload("").replace(r#""cap":{}"#, r#""cap":{"weft://a":{"msg/publish":[]}}"#);
        assert_eq!(code(&jwt(H, &empty_caveats)), "incorrectType");
        let bad_ability =
            payload("").replace(r#""cap":{}"#, r#""cap":{"weft://a":{"publish":[{}]}}"#);
        assert_eq!(code(&jwt(H, &bad_ability)), "incorrectType");
    }

    /// Every header and payload field of UCAN 0.10.0: missing (when required), of the wrong JSON
    /// type, and of the right type with a value that is not allowed.
    #[test]
    fn every_field_missing_mistyped_or_wrong() {
        const ALG: &str = r#""alg":"EdDSA""#;
        const TYP: &str = r#""typ":"JWT""#;
        let header = |fields: &[&str]| format!("{{{}}}", fields.join(","));
        let fields = [
            ("ucv", r#""ucv":"0.10.0""#),
            ("iss", &format!(r#""iss":"{ISS}""#)),
            ("aud", &format!(r#""aud":"{ISS}""#)),
            ("exp", r#""exp":null"#),
            ("cap", r#""cap":{}"#),
        ]
        .map(|(name, text)| (name, text.to_owned()));
        let body = |replace: &str, with: Option<&str>| {
            let parts: Vec<String> = fields
                .iter()
                .filter_map(|(name, text)| {
                    if *name == replace {
                        with.map(str::to_owned)
                    } else {
                        Some(text.clone())
                    }
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        };
        let good_header = header(&[ALG, TYP]);
        assert_eq!(code(&jwt(&good_header, &body("", None))), "ok");

        // Header.
        assert_eq!(code(&jwt(&header(&[TYP]), &body("", None))), "missingField");
        assert_eq!(code(&jwt(&header(&[ALG]), &body("", None))), "missingField");
        let alg_number = header(&[r#""alg":1"#, TYP]);
        assert_eq!(code(&jwt(&alg_number, &body("", None))), "incorrectType");
        let typ_number = header(&[ALG, r#""typ":1"#]);
        assert_eq!(code(&jwt(&typ_number, &body("", None))), "incorrectType");
        let typ_wrong = header(&[ALG, r#""typ":"JWS""#]);
        assert_eq!(code(&jwt(&typ_wrong, &body("", None))), "incorrectType");
        let alg_wrong = header(&[r#""alg":"RS256""#, TYP]);
        assert_eq!(code(&jwt(&alg_wrong, &body("", None))), "unsupportedAlg");

        // Required payload fields: missing, mistyped, and (where a value can be wrong) wrong.
        let cases: [(&str, &str, Option<&str>); 5] = [
            ("ucv", r#""ucv":10"#, Some(r#""ucv":"ten""#)),
            ("iss", r#""iss":1"#, Some(r#""iss":"did:web:example.com""#)),
            ("aud", r#""aud":[]"#, Some(r#""aud":"not a did""#)),
            ("exp", r#""exp":"soon""#, Some(r#""exp":-5"#)),
            (
                "cap",
                r#""cap":[]"#,
                Some(r#""cap":{"":{"msg/publish":[{}]}}"#),
            ),
        ];
        for (name, mistyped, wrong) in cases {
            let missing = code(&jwt(&good_header, &body(name, None)));
            assert_eq!(missing, "missingField", "{name} missing");
            let typed = code(&jwt(&good_header, &body(name, Some(mistyped))));
            assert_eq!(typed, "incorrectType", "{name}: {mistyped}");
            if let Some(wrong) = wrong {
                let valued = code(&jwt(&good_header, &body(name, Some(wrong))));
                assert_eq!(valued, "incorrectType", "{name}: {wrong}");
            }
        }
        let other_version = body("ucv", Some(r#""ucv":"0.9.0""#));
        assert_eq!(code(&jwt(&good_header, &other_version)), "incorrectType");

        // Optional payload fields: absent is fine; mistyped or wrong is not.
        let optional = [
            (r#","nbf":"now""#, "incorrectType"),
            (r#","nbf":2.5"#, "incorrectType"),
            (r#","nnc":7"#, "incorrectType"),
            (r#","fct":"facts""#, "incorrectType"),
            (r#","prf":"bafk""#, "incorrectType"),
            (r#","prf":[{}]"#, "incorrectProofs"),
            (r#","prf":["bafkreinot"]"#, "incorrectProofs"),
        ];
        for (extra, expected) in optional {
            assert_eq!(code(&jwt(H, &payload(extra))), expected, "{extra}");
        }

        // Not a JWT of two JSON objects: the only malformed tokens.
        assert_eq!(code(&jwt("[]", &body("", None))), "malformed");
        assert_eq!(code(&jwt(&good_header, "\"a string\"")), "malformed");
        assert_eq!(code(&jwt("{", &body("", None))), "malformed");
    }

    #[test]
    fn semantic_versions_are_recognised() {
        for good in ["0.10.0", "1.0.0", "10.20.30"] {
            assert!(is_semver(good), "{good}");
        }
        for bad in [
            "",
            "0.10",
            "0.10.0.1",
            "v0.10.0",
            "01.0.0",
            "0.10.x",
            "0.10.0-rc1",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn abilities_are_lower_cased_and_sorted() {
        let p = payload("").replace(
            r#""cap":{}"#,
            r#""cap":{"b:x":{"Msg/Publish":[{}]},"a:x":{"*":[{}]}}"#,
        );
        let token = Token::parse(&jwt(H, &p)).unwrap();
        let caps: Vec<_> = token
            .capabilities()
            .iter()
            .map(|c| (c.resource.as_str(), c.ability.as_str()))
            .collect();
        assert_eq!(caps, [("a:x", "*"), ("b:x", "msg/publish")]);
    }
}
