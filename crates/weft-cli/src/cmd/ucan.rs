//! `weft ucan issue|verify|cid|inspect|revoke`.

use std::sync::Arc;

use serde_json::{Value, json};
use weft::auth::{AbilitySet, Resource, ResourceError, WeftSemantics};
use weft::ucan::{HashAlg, ProofStore, Validator, decode_unverified};
use weft::{Builder, Cid, Did, Keypair, Token, UcanError};

use crate::cli::{IssueArgs, UcanCommand};
use crate::cmd::unix_now;
use crate::error::CliError;
use crate::input::token_arg;

pub(crate) fn run(cmd: UcanCommand) -> Result<(), CliError> {
    match cmd {
        UcanCommand::Issue(args) => issue(args),
        UcanCommand::Verify {
            token,
            proofs,
            now,
            json,
        } => verify(&token, &proofs, now, json),
        UcanCommand::Cid { token, hash } => {
            let alg: HashAlg = hash
                .parse()
                .map_err(|e: UcanError| CliError::Usage(e.to_string()))?;
            let token = Token::parse(&token_arg(&token)?)?;
            println!("{}", Cid::compute(token.as_str().as_bytes(), alg));
            Ok(())
        }
        UcanCommand::Revoke { key, token } => {
            let key = Keypair::load(&key)?;
            let token = Token::parse(&token_arg(&token)?)?;
            println!("{}", weft::ucan::Revocation::issue(&key, &token).to_json());
            Ok(())
        }
        UcanCommand::Inspect { token } => {
            let (header, payload, _signature) = decode_unverified(&token_arg(&token)?)?;
            let out = json!({ "header": header, "payload": payload });
            println!(
                "{}",
                serde_json::to_string_pretty(&out).map_err(|e| CliError::Failed(e.to_string()))?
            );
            Ok(())
        }
    }
}

/// Lifetime of an issued token when `--exp` is not given: one day.
const DEFAULT_LIFETIME: u64 = 86_400;

fn issue(args: IssueArgs) -> Result<(), CliError> {
    let issuer = Keypair::load(&args.key)?;
    let audience = Did::parse(&args.aud).map_err(|e| CliError::Usage(format!("--aud: {e}")))?;
    let now = unix_now()?;
    let mut proofs = Vec::new();
    for (i, proof) in args.proofs.iter().enumerate() {
        let proof = Token::parse(&token_arg(proof)?)
            .map_err(|e| CliError::Failed(format!("--proof #{}: {e} [{}]", i + 1, e.code())))?;
        proofs.push(proof);
    }

    let mut builder = Builder::new(&issuer, audience);
    builder = match args.exp.as_deref() {
        Some("never") => builder.never_expires(),
        Some(seconds) => {
            let seconds: u64 = seconds.parse().map_err(|_| {
                CliError::Usage(format!(
                    "--exp: expected seconds or \"never\", got {seconds:?}"
                ))
            })?;
            builder.expires_at(now.saturating_add(seconds))
        }
        None => {
            let day = now.saturating_add(DEFAULT_LIFETIME);
            let earliest_proof = proofs.iter().filter_map(Token::expires_at).min();
            builder.expires_at(earliest_proof.map_or(day, |p| p.min(day)))
        }
    };
    if let Some(nbf) = args.nbf {
        builder = builder.not_before(nbf);
    }
    if let Some(nonce) = args.nonce {
        builder = builder.nonce(nonce);
    }
    if let Some(fact) = &args.fact {
        let facts: Value = serde_json::from_str(fact)
            .map_err(|e| CliError::Usage(format!("--fact: not JSON: {e}")))?;
        let Value::Object(facts) = facts else {
            return Err(CliError::Usage("--fact: expected a JSON object".into()));
        };
        for (key, value) in facts {
            builder = builder.fact(key, value);
        }
    }
    for cap in &args.caps {
        let (resource, ability) = parse_cap(cap)?;
        builder = builder.claim(resource, ability);
    }
    for proof in &proofs {
        builder = builder.proof(*proof.cid());
    }
    let token = builder.build()?;
    // Refuse to hand out a token its own proofs do not support: it would only fail later, at a
    // node, with less context.
    let direct: Vec<&Token> = proofs.iter().collect();
    Validator::new(WeftSemantics).check_delegation_step(&token, &direct)?;
    println!("{token}");
    Ok(())
}

/// `RESOURCE=ABILITY`, split at the last `=` (abilities never contain one). weft resources are
/// checked here so that a typo fails now rather than as a silent denial later.
fn parse_cap(cap: &str) -> Result<(&str, &str), CliError> {
    let (resource, ability) = cap
        .rsplit_once('=')
        .filter(|(r, a)| !r.is_empty() && !a.is_empty())
        .ok_or_else(|| CliError::Usage(format!("--cap {cap:?}: expected RESOURCE=ABILITY")))?;
    match Resource::parse(resource) {
        Ok(_) if AbilitySet::covered_by(ability).is_empty() => Err(CliError::Usage(format!(
            "--cap {cap:?}: {ability:?} is not a weft ability (realm/join, msg/publish, msg/subscribe, rpc/call, rpc/advertise, msg/*, rpc/*, *)"
        ))),
        Ok(_) | Err(ResourceError::NotWeft) => Ok((resource, ability)),
        Err(e) => Err(CliError::Usage(format!("--cap {cap:?}: {e}"))),
    }
}

fn verify(token: &str, proofs: &[String], now: Option<u64>, json: bool) -> Result<(), CliError> {
    let now = match now {
        Some(now) => now,
        None => unix_now()?,
    };
    // Reading files is not verification: an unreadable @FILE is a plain failure, not a verdict.
    let token = token_arg(token)?;
    let proofs = proofs
        .iter()
        .map(|p| token_arg(p))
        .collect::<Result<Vec<_>, _>>()?;
    let outcome = check(&token, &proofs, now);
    if json {
        let out = match &outcome {
            Ok(()) => json!({ "valid": true, "error": null, "detail": null }),
            Err(e) => json!({ "valid": false, "error": e.code(), "detail": e.to_string() }),
        };
        println!("{out}");
        // Invalid still exits 1, with the reason on stderr too.
        return outcome.map_err(CliError::from);
    }
    outcome?;
    println!("valid");
    Ok(())
}

fn check(token: &str, proofs: &[String], now: u64) -> Result<(), UcanError> {
    let token = Token::parse(token)?;
    let mut store = ProofStore::new();
    for (i, proof) in proofs.iter().enumerate() {
        let proof = Token::parse(proof).map_err(|e| match e {
            UcanError::Malformed(m) => UcanError::Malformed(format!("proof #{}: {m}", i + 1)),
            other => other,
        })?;
        store.insert(Arc::new(proof));
    }
    Validator::new(WeftSemantics)
        .verify(token, &store, now)
        .map(|_| ())
}
