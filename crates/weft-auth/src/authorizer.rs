//! The authorization decision, with a verification cache and revocation.
//!
//! [`Authorizer::authorize`] answers one question for the router: may `actor`, holding `chain`, take
//! `action` in `realm` at `now`? In order:
//!
//! 1. An open realm allows everything; the realm's owner may do anything in it.
//! 2. The chain is looked up by its leaf CID. On a miss it is verified (signatures, delegation,
//!    time containment, attenuation under [`WeftSemantics`]) and compiled into parsed resources
//!    and ability bit sets; the result, success or failure, is cached. So a chain's signatures are
//!    checked once, and a peer replaying a bad chain costs a hash lookup too.
//! 3. Per call: the leaf's time window (with leeway), revocation of any token in the chain, that
//!    the leaf's audience is the actor, and that a path of capabilities allowing the action runs
//!    from the leaf to a root token issued by the realm's owner.
//!
//! Caveats: weft understands none yet, so a capability is used only through its `{}` caveat, if it
//! has one; a capability restricted by caveats weft does not understand allows nothing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use weft_identity::Did;
use weft_ucan::{Cid, Revocation, Token, UcanError, Validator, VerifiedToken};

use crate::{
    Ability, AbilitySet, Action, AuthError, Chain, Realm, Resource, VerifyBudget, WeftSemantics,
};

/// Verified chains remembered by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 4096;
/// Most distinct tokens in one chain (leaf and all proofs); bounds the per-call walk.
const MAX_CHAIN_TOKENS: usize = 64;

/// Why an action is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Grant {
    /// The realm is open: nothing is checked (development only).
    Open,
    /// The actor owns the realm.
    Owner,
    /// A delegation chain rooted at the owner allows it.
    Delegated {
        /// CID of the leaf token, naming the chain.
        chain: Cid,
        /// The leaf capability's resource that covers the action (shared with the cache, so a
        /// grant costs no allocation).
        resource: Arc<Resource>,
        /// The leaf capability's ability string (`rpc/call`, `rpc/*`, …).
        ability: Arc<str>,
        /// When the chain stops being usable (the leaf's `exp`).
        expires_at: Option<u64>,
    },
}

/// Decides actions against capability chains; cheap to share (`&self` everywhere, internally
/// synchronised), so one per node serves every realm and router thread.
#[derive(Debug)]
pub struct Authorizer {
    validator: Validator<WeftSemantics>,
    cache: Mutex<Cache>,
    revoked: RwLock<HashSet<Cid>>,
    /// Signed revocation records: revoked token → the issuers who revoked it.
    records: RwLock<HashMap<Cid, Vec<Did>>>,
    /// The same records in the order they were applied, to hand on to peers.
    record_log: RwLock<Vec<Revocation>>,
    /// Lets the common case (nothing revoked) skip the revocation lock entirely.
    any_revoked: AtomicBool,
    /// Revocations so far (see `revocation_epoch`).
    revocations: AtomicU64,
    checks: CheckCounters,
}

/// `weft_ucan_checks_total{ability, outcome}`, registered once: a check is on every
/// publication's path, where looking a counter up by name each time would cost more than the
/// cached check itself.
#[derive(Debug)]
struct CheckCounters {
    allowed: [metrics::Counter; 5],
    denied: [metrics::Counter; 5],
}

impl CheckCounters {
    fn new() -> Self {
        let counters = |outcome: &'static str| {
            ALL_ABILITIES.map(|ability| {
                metrics::counter!(
                    "weft_ucan_checks_total",
                    "ability" => ability.as_str(),
                    "outcome" => outcome
                )
            })
        };
        Self {
            allowed: counters("allowed"),
            denied: counters("denied"),
        }
    }

    fn record(&self, action: &Action<'_>, result: &Result<Grant, AuthError>) {
        let ability = action.ability() as usize;
        match result {
            Ok(_) => self.allowed[ability].increment(1),
            Err(e) => {
                self.denied[ability].increment(1);
                metrics::counter!("weft_ucan_denials_total", "code" => e.code()).increment(1);
            }
        }
    }
}

const ALL_ABILITIES: [Ability; 5] = [
    Ability::Join,
    Ability::Publish,
    Ability::Subscribe,
    Ability::Call,
    Ability::Advertise,
];

impl Default for Authorizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Authorizer {
    /// An authorizer with the default leeway (60 s) and cache size.
    pub fn new() -> Self {
        Self {
            validator: Validator::new(WeftSemantics),
            cache: Mutex::new(Cache::new(DEFAULT_CACHE_CAPACITY)),
            revoked: RwLock::new(HashSet::new()),
            records: RwLock::new(HashMap::new()),
            record_log: RwLock::new(Vec::new()),
            any_revoked: AtomicBool::new(false),
            revocations: AtomicU64::new(0),
            checks: CheckCounters::new(),
        }
    }

    /// The clock-skew leeway in seconds: how long past its `exp` a token still holds.
    pub fn leeway(&self) -> u64 {
        self.validator.leeway()
    }

    /// Sets the clock-skew leeway in seconds.
    pub fn with_leeway(mut self, leeway: u64) -> Self {
        self.validator = self.validator.with_leeway(leeway);
        self
    }

    /// Sets how many verified chains are remembered (at least 1).
    pub fn with_cache_capacity(self, capacity: usize) -> Self {
        Self {
            cache: Mutex::new(Cache::new(capacity.max(1))),
            ..self
        }
    }

    /// May `actor`, holding `chain`, take `action` in `realm` at `now` (Unix seconds)?
    ///
    /// `actor` must be the DID the transport proved, never one taken from the message.
    pub fn authorize(
        &self,
        realm: &Realm,
        chain: Option<&Chain>,
        actor: &Did,
        action: Action<'_>,
        now: u64,
    ) -> Result<Grant, AuthError> {
        let result = self.check(realm, chain, actor, action, now, None);
        self.checks.record(&action, &result);
        result
    }

    /// [`authorize`](Self::authorize) for a source with a budget of cold verifications: a chain
    /// not in the cache is verified only if `budget` allows, and refused with `limit` otherwise.
    pub fn authorize_from(
        &self,
        realm: &Realm,
        chain: Option<&Chain>,
        actor: &Did,
        action: Action<'_>,
        now: u64,
        budget: &VerifyBudget,
    ) -> Result<Grant, AuthError> {
        let result = self.check(realm, chain, actor, action, now, Some(budget));
        self.checks.record(&action, &result);
        result
    }

    /// [`authorize`](Self::authorize) without counting: one decision may try several chains.
    fn check(
        &self,
        realm: &Realm,
        chain: Option<&Chain>,
        actor: &Did,
        action: Action<'_>,
        now: u64,
        budget: Option<&VerifyBudget>,
    ) -> Result<Grant, AuthError> {
        let Some(owner) = realm.owner() else {
            return Ok(Grant::Open);
        };
        // The owner needs no chain; but a chain presented is the authority acted under (a gateway
        // run under the owner's key acts for a client under the client's), so it is verified
        // and decides, whoever the actor is.
        if actor == owner && chain.is_none() {
            return Ok(Grant::Owner);
        }
        let chain = chain.ok_or_else(|| {
            AuthError::Unauthorized(format!(
                "no capability presented for {} in {realm}",
                action.describe()
            ))
        })?;
        precheck(chain, realm, owner, actor, now, self.validator.leeway())?;
        let compiled = self.compiled(chain, budget, now)?;
        compiled.leaf.check_time(now, self.validator.leeway())?;
        if self.any_revoked.load(Ordering::Acquire) {
            let revoked = self.revoked.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(cid) = compiled.cids.iter().flatten().find(|c| revoked.contains(c)) {
                return Err(AuthError::Revoked(*cid));
            }
            drop(revoked);
            let records = self.records.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(cid) = compiled.revoked_by(&records) {
                return Err(AuthError::Revoked(cid));
            }
        }
        if compiled.leaf.audience() != actor {
            return Err(AuthError::WrongAudience {
                audience: *compiled.leaf.audience(),
                actor: *actor,
            });
        }
        compiled.decide(realm, owner, action)
    }

    /// Like [`authorize`](Self::authorize) for a principal holding several chains (one for
    /// `realm/join`, one for `msg/publish`, …): the first chain that allows the action wins. When
    /// none does, the error reported is the first specific one (revoked, expired, invalid…), which
    /// explains more than another chain's "does not cover this"; otherwise the last `unauthorized`.
    pub fn authorize_any(
        &self,
        realm: &Realm,
        chains: &[Chain],
        actor: &Did,
        action: Action<'_>,
        now: u64,
    ) -> Result<Grant, AuthError> {
        let result = self.check_any(realm, chains, actor, action, now, None);
        self.checks.record(&action, &result);
        result
    }

    /// [`authorize_any`](Self::authorize_any) for a source with a budget of cold verifications
    /// (see [`authorize_from`](Self::authorize_from)).
    pub fn authorize_any_from(
        &self,
        realm: &Realm,
        chains: &[Chain],
        actor: &Did,
        action: Action<'_>,
        now: u64,
        budget: &VerifyBudget,
    ) -> Result<Grant, AuthError> {
        let result = self.check_any(realm, chains, actor, action, now, Some(budget));
        self.checks.record(&action, &result);
        result
    }

    fn check_any(
        &self,
        realm: &Realm,
        chains: &[Chain],
        actor: &Did,
        action: Action<'_>,
        now: u64,
        budget: Option<&VerifyBudget>,
    ) -> Result<Grant, AuthError> {
        if chains.is_empty() {
            return self.check(realm, None, actor, action, now, budget);
        }
        let mut specific = None;
        let mut last = None;
        for chain in chains {
            match self.check(realm, Some(chain), actor, action, now, budget) {
                Ok(grant) => return Ok(grant),
                Err(e @ AuthError::Unauthorized(_)) => last = Some(e),
                Err(e) => {
                    specific.get_or_insert(e);
                }
            }
        }
        Err(specific
            .or(last)
            .unwrap_or_else(|| AuthError::Unauthorized("no chain".into())))
    }

    /// Applies a signed revocation record: once its signature verifies, every chain in which
    /// the revoked token sits below (or is) a token its issuer issued stops authorizing anything.
    /// A record whose issuer is in no such chain revokes nothing. Records are kept (at most
    /// [`MAX_RECORDS`]); a repeat (same token, same issuer) costs no signature check and changes
    /// nothing. `true` when the record is new here.
    pub fn apply(&self, record: &Revocation) -> Result<bool, AuthError> {
        let known = |records: &HashMap<Cid, Vec<Did>>| {
            records
                .get(record.revoked())
                .is_some_and(|issuers| issuers.contains(record.issuer()))
        };
        if known(&self.records.read().unwrap_or_else(PoisonError::into_inner)) {
            return Ok(false);
        }
        record.verify()?;
        {
            let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
            if known(&records) {
                return Ok(false);
            }
            let mut log = self
                .record_log
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if log.len() >= MAX_RECORDS {
                return Err(AuthError::Limit(format!(
                    "{MAX_RECORDS} revocation records are kept already"
                )));
            }
            records
                .entry(*record.revoked())
                .or_default()
                .push(*record.issuer());
            log.push(record.clone());
        }
        self.any_revoked.store(true, Ordering::Release);
        self.revocations.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    /// Could a record by `issuer` revoke anything here: is it the owner of `realm`, or the
    /// issuer of a token in a chain this node has verified? Records from the network are kept
    /// only then, so strangers cannot fill the store (or the wire) with records about nothing.
    pub fn may_revoke(&self, realm: &Realm, issuer: &Did) -> bool {
        if realm.owner() == Some(issuer) {
            return true;
        }
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .values()
            .filter_map(|entry| entry.as_ref().ok())
            .any(|compiled| compiled.nodes.iter().any(|node| node.issuer == *issuer))
    }

    /// Every revocation record applied here, oldest first.
    pub fn revocation_records(&self) -> Vec<Revocation> {
        self.record_log
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Revokes a token as this node's operator: every chain containing it stops authorizing
    /// anything, whoever issued it.
    pub fn revoke(&self, cid: Cid) {
        self.revoked
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cid);
        self.any_revoked.store(true, Ordering::Release);
        self.revocations.fetch_add(1, Ordering::AcqRel);
    }

    /// Grows with every revocation. A caller that remembers a decision keys it on this (with the
    /// clock's second), so a revocation takes effect on its next check, not a second later.
    pub fn revocation_epoch(&self) -> u64 {
        self.revocations.load(Ordering::Acquire)
    }

    /// Has this token been revoked?
    pub fn is_revoked(&self, cid: &Cid) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(cid)
    }

    /// Number of chains in the cache (verified or known bad).
    #[cfg(test)]
    pub(crate) fn cached(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    fn compiled(
        &self,
        chain: &Chain,
        budget: Option<&VerifyBudget>,
        now: u64,
    ) -> Result<Arc<Compiled>, AuthError> {
        let cid = *chain.cid();
        if let Some(entry) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .get(&cid)
        {
            return entry.clone().map_err(AuthError::Invalid);
        }
        if budget.is_some_and(|budget| !budget.take(now)) {
            return Err(AuthError::Limit(format!(
                "too many new chains from this source lately; chain {cid} was not verified"
            )));
        }
        // Verified outside the lock: signature checks must not stall other chains' lookups.
        let result = self
            .validator
            .verify_chain(chain.leaf().clone(), chain.proofs())
            .and_then(|verified| Compiled::new(&verified).map(Arc::new));
        // A missing proof is the presenter's omission, not a property of the chain: it may be
        // presented again with its proofs, so that failure is not remembered.
        if !matches!(result, Err(UcanError::IncorrectProofs(_))) {
            self.cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(cid, result.clone());
        }
        result.map_err(AuthError::Invalid)
    }
}

/// Refuses, without verifying a signature, a chain bound to fail: a leaf addressed to another
/// actor or outside its time, a cited proof missing, or no root issued by the realm's owner. What
/// costs nothing goes first, so a chain a stranger makes up costs no Ed25519 work at all.
fn precheck(
    chain: &Chain,
    realm: &Realm,
    owner: &Did,
    actor: &Did,
    now: u64,
    leeway: u64,
) -> Result<(), AuthError> {
    let leaf = chain.leaf();
    if leaf.audience() != actor {
        return Err(AuthError::WrongAudience {
            audience: *leaf.audience(),
            actor: *actor,
        });
    }
    leaf.check_time(now, leeway).map_err(AuthError::Invalid)?;
    let mut rooted = false;
    let mut seen: Vec<Cid> = Vec::new();
    let mut stack: Vec<&Token> = vec![leaf];
    while let Some(token) = stack.pop() {
        if seen.contains(token.cid()) {
            continue;
        }
        seen.push(*token.cid());
        if token.proofs().is_empty() {
            rooted |= token.issuer() == owner;
            continue;
        }
        for cid in token.proofs() {
            let proof = chain.proofs().get(cid).ok_or_else(|| {
                AuthError::Invalid(UcanError::IncorrectProofs(format!(
                    "proof {cid} was not provided"
                )))
            })?;
            stack.push(proof);
        }
    }
    if !rooted {
        return Err(AuthError::Unauthorized(format!(
            "chain {} is not rooted at the owner of {}",
            leaf.cid(),
            realm.name()
        )));
    }
    Ok(())
}

/// Revocation records kept at most.
pub const MAX_RECORDS: usize = 64 * 1024;

/// Verified chains (and known-bad ones) by leaf CID, evicted oldest first.
#[derive(Debug)]
struct Cache {
    entries: HashMap<Cid, Result<Arc<Compiled>, UcanError>>,
    order: VecDeque<Cid>,
    capacity: usize,
}

impl Cache {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn insert(&mut self, cid: Cid, entry: Result<Arc<Compiled>, UcanError>) {
        if self.entries.insert(cid, entry).is_none() {
            self.order.push_back(cid);
        }
        while self.entries.len() > self.capacity {
            match self.order.pop_front() {
                Some(oldest) => self.entries.remove(&oldest),
                None => break,
            };
        }
    }
}

/// A verified chain flattened for fast decisions: tokens as nodes (leaf first), capabilities
/// parsed into resources and ability bit sets.
#[derive(Debug)]
struct Compiled {
    leaf: Arc<Token>,
    nodes: Vec<Node>,
    /// Both CID forms of every token, aligned with `nodes`, for revocation.
    cids: Vec<[Cid; 2]>,
}

#[derive(Debug)]
struct Node {
    issuer: Did,
    capabilities: Vec<CompiledCapability>,
    /// Indices into `nodes`.
    proofs: Vec<usize>,
}

#[derive(Debug)]
struct CompiledCapability {
    resource: Arc<Resource>,
    ability: Arc<str>,
    abilities: AbilitySet,
    unrestricted: bool,
}

impl Compiled {
    fn new(verified: &Arc<VerifiedToken>) -> Result<Self, UcanError> {
        let mut index: HashMap<Cid, usize> = HashMap::new();
        let mut order: Vec<&Arc<VerifiedToken>> = Vec::new();
        let mut queue = VecDeque::from([verified]);
        while let Some(v) = queue.pop_front() {
            if index.contains_key(v.token().cid()) {
                continue;
            }
            if order.len() == MAX_CHAIN_TOKENS {
                return Err(UcanError::IncorrectProofs(format!(
                    "chain has more than {MAX_CHAIN_TOKENS} tokens"
                )));
            }
            index.insert(*v.token().cid(), order.len());
            order.push(v);
            queue.extend(v.proofs());
        }
        let nodes = order
            .iter()
            .map(|v| Node {
                issuer: *v.token().issuer(),
                capabilities: v
                    .token()
                    .capabilities()
                    .iter()
                    .filter_map(|c| {
                        // Foreign resources (mailto:, …) grant nothing in weft.
                        let resource = Resource::parse(&c.resource).ok()?;
                        let abilities = AbilitySet::covered_by(&c.ability);
                        (!abilities.is_empty()).then(|| CompiledCapability {
                            resource: Arc::new(resource),
                            ability: c.ability.as_str().into(),
                            abilities,
                            unrestricted: c.is_unrestricted(),
                        })
                    })
                    .collect(),
                proofs: v
                    .proofs()
                    .iter()
                    .filter_map(|p| index.get(p.token().cid()).copied())
                    .collect(),
            })
            .collect();
        // Both CID forms name the same token: a revocation may cite either.
        let cids = order
            .iter()
            .map(|v| {
                let token = v.token();
                [
                    *token.cid(),
                    Cid::compute(token.as_str().as_bytes(), weft_ucan::HashAlg::Blake3),
                ]
            })
            .collect();
        Ok(Self {
            leaf: verified.token().clone(),
            nodes,
            cids,
        })
    }

    /// The first token of this chain revoked by a record whose issuer issued it or a token above
    /// it (UCAN 0.10: any issuer in the chain leading to a token may revoke it).
    fn revoked_by(&self, records: &HashMap<Cid, Vec<Did>>) -> Option<Cid> {
        for (i, forms) in self.cids.iter().enumerate() {
            for cid in forms {
                let Some(issuers) = records.get(cid) else {
                    continue;
                };
                let mut stack = vec![i];
                let mut seen = vec![false; self.nodes.len()];
                while let Some(n) = stack.pop() {
                    if std::mem::replace(&mut seen[n], true) {
                        continue;
                    }
                    if issuers.contains(&self.nodes[n].issuer) {
                        return Some(*cid);
                    }
                    stack.extend(&self.nodes[n].proofs);
                }
            }
        }
        None
    }

    fn decide(&self, realm: &Realm, owner: &Did, action: Action<'_>) -> Result<Grant, AuthError> {
        let Some(leaf_capability) = self.nodes[0].allowing(realm, action) else {
            let restricted = self.nodes[0]
                .capabilities
                .iter()
                .any(|c| !c.unrestricted && c.covers(realm, action));
            let why = if restricted {
                " without caveats (weft understands none)"
            } else {
                ""
            };
            return Err(AuthError::Unauthorized(format!(
                "chain {} grants no {} in {}{why}",
                self.leaf.cid(),
                action.describe(),
                realm.name()
            )));
        };
        // 0 = not yet known, 1 = reaches the owner, 2 = does not.
        let mut memo = [0u8; MAX_CHAIN_TOKENS];
        if !self.reaches_owner(0, realm, owner, action, &mut memo) {
            return Err(AuthError::Unauthorized(format!(
                "chain {} for {} is not rooted at the owner of {}",
                self.leaf.cid(),
                action.describe(),
                realm.name()
            )));
        }
        Ok(Grant::Delegated {
            chain: *self.leaf.cid(),
            resource: leaf_capability.resource.clone(),
            ability: leaf_capability.ability.clone(),
            expires_at: self.leaf.expires_at(),
        })
    }

    /// Does node `i` allow the action, through a proof path that ends at a root the owner issued?
    fn reaches_owner(
        &self,
        i: usize,
        realm: &Realm,
        owner: &Did,
        action: Action<'_>,
        memo: &mut [u8],
    ) -> bool {
        match memo[i] {
            1 => return true,
            2 => return false,
            _ => {}
        }
        let node = &self.nodes[i];
        let ok = node.allowing(realm, action).is_some()
            && if node.proofs.is_empty() {
                node.issuer == *owner
            } else {
                node.proofs
                    .iter()
                    .any(|&p| self.reaches_owner(p, realm, owner, action, memo))
            };
        memo[i] = if ok { 1 } else { 2 };
        ok
    }
}

impl Node {
    fn allowing(&self, realm: &Realm, action: Action<'_>) -> Option<&CompiledCapability> {
        self.capabilities
            .iter()
            .find(|c| c.unrestricted && c.covers(realm, action))
    }
}

impl CompiledCapability {
    fn covers(&self, realm: &Realm, action: Action<'_>) -> bool {
        self.abilities.contains(action.ability())
            && self.resource.realm() == realm.name()
            && action.within(&self.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_identity::Keypair;
    use weft_names::{Name, Pattern, RealmName};
    use weft_ucan::Builder;

    struct World {
        owner: Keypair,
        team: Keypair,
        service: Keypair,
        realm: Realm,
    }

    /// `token` with one character of its signature changed: it still parses, and does not verify.
    fn corrupt_signature(token: &Token) -> String {
        let mut text = token.as_str().to_owned().into_bytes();
        let at = text.len() - 10; // inside the signature, away from base64's padding bits
        text[at] = if text[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(text).unwrap()
    }

    fn world() -> World {
        let owner = Keypair::from_seed(&[1; 32]);
        let realm = Realm::owned(RealmName::new("io.acme").unwrap(), owner.did());
        World {
            owner,
            team: Keypair::from_seed(&[2; 32]),
            service: Keypair::from_seed(&[3; 32]),
            realm,
        }
    }

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    /// owner → team: `rpc/call` on `orders.*`; team → service: `rpc/call` on `orders.get`.
    fn team_chain(w: &World) -> (Token, Token) {
        let root = Builder::new(&w.owner, w.team.did())
            .expires_at(10_000)
            .claim("weft://io.acme/orders.*", "rpc/call")
            .build()
            .unwrap();
        let leaf = Builder::new(&w.team, w.service.did())
            .expires_at(5_000)
            .claim("weft://io.acme/orders.get", "rpc/call")
            .proof(*root.cid())
            .build()
            .unwrap();
        (root, leaf)
    }

    #[test]
    fn a_delegated_chain_allows_exactly_what_it_names() {
        let w = world();
        let (root, leaf) = team_chain(&w);
        let chain = Chain::new(leaf, [root]);
        let auth = Authorizer::new();
        let get = name("orders.get");
        let grant = auth
            .authorize(
                &w.realm,
                Some(&chain),
                &w.service.did(),
                Action::Call(&get),
                100,
            )
            .unwrap();
        assert!(matches!(grant, Grant::Delegated { ref ability, .. } if &**ability == "rpc/call"));

        let list = name("orders.list");
        let err = auth
            .authorize(
                &w.realm,
                Some(&chain),
                &w.service.did(),
                Action::Call(&list),
                100,
            )
            .unwrap_err();
        assert_eq!(err.code(), "unauthorized");
        let err = auth
            .authorize(
                &w.realm,
                Some(&chain),
                &w.service.did(),
                Action::Advertise(&get),
                100,
            )
            .unwrap_err();
        assert_eq!(err.code(), "unauthorized");
        let err = auth
            .authorize(
                &w.realm,
                Some(&chain),
                &w.team.did(),
                Action::Call(&get),
                100,
            )
            .unwrap_err();
        assert_eq!(err.code(), "wrongAudience");
        let err = auth
            .authorize(
                &w.realm,
                Some(&chain),
                &w.service.did(),
                Action::Call(&get),
                9_000,
            )
            .unwrap_err();
        assert_eq!(err.code(), "expired");
        let other_realm = Realm::owned(RealmName::new("io.other").unwrap(), w.owner.did());
        let err = auth
            .authorize(
                &other_realm,
                Some(&chain),
                &w.service.did(),
                Action::Call(&get),
                100,
            )
            .unwrap_err();
        assert_eq!(err.code(), "unauthorized");
        assert_eq!(auth.cached(), 1);
    }

    #[test]
    fn roots_must_be_the_realm_owner() {
        let w = world();
        let (root, leaf) = team_chain(&w);
        let chain = Chain::new(leaf, [root]);
        // Same realm name, different owner: a different realm.
        let impostor = Realm::owned(RealmName::new("io.acme").unwrap(), w.team.did());
        let get = name("orders.get");
        // The team owns this realm, so its token to the service is a valid root; but the
        // service's chain roots at the real owner, whose capability does not reach here.
        let err = Authorizer::new()
            .authorize(
                &impostor,
                Some(&chain),
                &w.service.did(),
                Action::Call(&get),
                100,
            )
            .unwrap_err();
        assert_eq!(err.code(), "unauthorized");

        // A self-issued root grants nothing.
        let selfish = Builder::new(&w.service, w.service.did())
            .never_expires()
            .claim("weft://io.acme", "*")
            .build()
            .unwrap();
        let chain = Chain::new(selfish, []);
        let err = Authorizer::new()
            .authorize(&w.realm, Some(&chain), &w.service.did(), Action::Join, 100)
            .unwrap_err();
        assert_eq!(err.code(), "unauthorized");
    }

    #[test]
    fn a_chain_the_owner_presents_is_verified_and_decides() {
        let w = world();
        let auth = Authorizer::new();
        let t = name("orders.get");
        // A client's delegation to an owner-keyed gateway: owner → service → owner.
        let to_service = Builder::new(&w.owner, w.service.did())
            .never_expires()
            .claim("weft://io.acme/orders.*", "msg/publish")
            .build()
            .unwrap();
        let to_gateway = Builder::new(&w.service, w.owner.did())
            .never_expires()
            .claim("weft://io.acme/orders.*", "msg/publish")
            .proof(*to_service.cid())
            .build()
            .unwrap();
        let chain = Chain::new(to_gateway.clone(), [to_service.clone()]);
        let publish = |chain: &Chain, topic: &Name| {
            auth.authorize(
                &w.realm,
                Some(chain),
                &w.owner.did(),
                Action::Publish(topic),
                0,
            )
        };
        assert!(publish(&chain, &t).is_ok());
        // The chain's capability, not the owner's: nothing outside `orders.*`.
        assert_eq!(
            publish(&chain, &name("billing.refund")).unwrap_err().code(),
            "unauthorized"
        );
        // A corrupted signature is refused, owner or not.
        let corrupted = corrupt_signature(&to_gateway);
        let chain = Chain::parse(&corrupted, &[to_service.as_str().to_owned()]).unwrap();
        assert_eq!(publish(&chain, &t).unwrap_err().code(), "badSignature");
    }

    #[test]
    fn what_costs_nothing_is_checked_before_any_signature() {
        let w = world();
        let auth = Authorizer::new();
        let t = name("orders.get");
        let check = |leaf: &str, proofs: &[String], actor: &Did| {
            let chain = Chain::parse(leaf, proofs).unwrap();
            auth.authorize(&w.realm, Some(&chain), actor, Action::Publish(&t), 100)
                .unwrap_err()
                .code()
                .to_owned()
        };
        let good = Builder::new(&w.owner, w.service.did())
            .never_expires()
            .claim("weft://io.acme/orders.*", "msg/publish")
            .build()
            .unwrap();
        // Each of these has a bad signature too; the cheap fault is the one reported.
        assert_eq!(
            check(&corrupt_signature(&good), &[], &w.team.did()),
            "wrongAudience"
        );
        let stranger = Builder::new(&w.team, w.service.did())
            .never_expires()
            .claim("weft://io.acme/orders.*", "msg/publish")
            .build()
            .unwrap();
        assert_eq!(
            check(&corrupt_signature(&stranger), &[], &w.service.did()),
            "unauthorized"
        );
        let citing = Builder::new(&w.team, w.service.did())
            .never_expires()
            .claim("weft://io.acme/orders.*", "msg/publish")
            .proof(*good.cid())
            .build()
            .unwrap();
        assert_eq!(
            check(&corrupt_signature(&citing), &[], &w.service.did()),
            "incorrectProofs"
        );
        let expired = Builder::new(&w.owner, w.service.did())
            .expires_at(10)
            .claim("weft://io.acme/orders.*", "msg/publish")
            .build()
            .unwrap();
        assert_eq!(
            check(&corrupt_signature(&expired), &[], &w.service.did()),
            "expired"
        );
        // Nothing cheap is wrong: the signature is what fails.
        assert_eq!(
            check(&corrupt_signature(&good), &[], &w.service.did()),
            "badSignature"
        );
    }

    #[test]
    fn a_source_gets_a_budget_of_cold_verifications() {
        let w = world();
        let auth = Authorizer::new();
        let t = name("orders.get");
        let budget = VerifyBudget::new(3, 1);
        let issue = |nonce: &str| {
            Builder::new(&w.owner, w.service.did())
                .never_expires()
                .nonce(nonce)
                .claim("weft://io.acme/orders.*", "msg/publish")
                .build()
                .unwrap()
        };
        let good = Chain::new(issue("good"), []);
        let publish = |chain: &Chain| {
            auth.authorize_from(
                &w.realm,
                Some(chain),
                &w.service.did(),
                Action::Publish(&t),
                100,
                &budget,
            )
        };
        assert!(publish(&good).is_ok(), "verified cold: one of three");
        // Forged: the owner named as issuer, the signature broken. Each passes the free checks.
        let forged = |nonce: &str| {
            Chain::parse(&corrupt_signature(&issue(nonce)), &[] as &[String]).unwrap()
        };
        assert_eq!(publish(&forged("1")).unwrap_err().code(), "badSignature");
        assert_eq!(publish(&forged("2")).unwrap_err().code(), "badSignature");
        assert_eq!(publish(&forged("3")).unwrap_err().code(), "limit");
        assert!(publish(&good).is_ok(), "a cached chain costs nothing");
        assert_eq!(
            publish(&forged("1")).unwrap_err().code(),
            "badSignature",
            "a known failure costs nothing either"
        );
    }

    #[test]
    fn records_revoke_only_when_signed_by_an_issuer_in_the_chain() {
        let w = world();
        let t = name("orders.get");
        let root = Builder::new(&w.owner, w.team.did())
            .never_expires()
            .claim("weft://io.acme/orders.*", "msg/publish")
            .build()
            .unwrap();
        let leaf = Builder::new(&w.team, w.service.did())
            .never_expires()
            .claim("weft://io.acme/orders.*", "msg/publish")
            .proof(*root.cid())
            .build()
            .unwrap();
        let chain = Chain::new(leaf.clone(), [root.clone()]);
        let outcome = |record: Option<Revocation>| {
            let auth = Authorizer::new();
            if let Some(record) = record {
                auth.apply(&record).unwrap();
            }
            auth.authorize(
                &w.realm,
                Some(&chain),
                &w.service.did(),
                Action::Publish(&t),
                0,
            )
            .map(|_| "allowed")
            .unwrap_or_else(|e| e.code())
        };
        assert_eq!(outcome(None), "allowed");
        // The leaf's issuer, or an issuer above it, may revoke it; the root's revocation reaches
        // everything delegated from it.
        assert_eq!(outcome(Some(Revocation::issue(&w.team, &leaf))), "revoked");
        assert_eq!(outcome(Some(Revocation::issue(&w.owner, &leaf))), "revoked");
        assert_eq!(outcome(Some(Revocation::issue(&w.owner, &root))), "revoked");
        // Anyone else's record revokes nothing: not the holder's, not a stranger's, and a team
        // cannot revoke what is above it.
        let stranger = Keypair::from_seed(&[9; 32]);
        assert_eq!(
            outcome(Some(Revocation::issue(&stranger, &leaf))),
            "allowed"
        );
        assert_eq!(
            outcome(Some(Revocation::issue(&w.service, &leaf))),
            "allowed"
        );
        assert_eq!(outcome(Some(Revocation::issue(&w.team, &root))), "allowed");
        // A record whose signature does not verify is refused.
        let forged = Revocation::issue(&stranger, &leaf)
            .to_json()
            .replace(&stranger.did().to_string(), &w.owner.did().to_string());
        let forged = Revocation::parse(&forged).unwrap();
        let auth = Authorizer::new();
        assert_eq!(auth.apply(&forged).unwrap_err().code(), "badSignature");
    }

    #[test]
    fn open_realms_and_owners_need_no_chain() {
        let w = world();
        let open = Realm::open(RealmName::new("dev").unwrap());
        let auth = Authorizer::new();
        let t = name("t");
        assert_eq!(
            auth.authorize(&open, None, &w.service.did(), Action::Publish(&t), 0),
            Ok(Grant::Open)
        );
        assert_eq!(
            auth.authorize(&w.realm, None, &w.owner.did(), Action::Publish(&t), 0),
            Ok(Grant::Owner)
        );
        let err = auth
            .authorize(&w.realm, None, &w.service.did(), Action::Publish(&t), 0)
            .unwrap_err();
        assert_eq!(err.code(), "unauthorized");
    }

    #[test]
    fn subscriptions_need_a_containing_pattern() {
        let w = world();
        let token = Builder::new(&w.owner, w.service.did())
            .never_expires()
            .claim("weft://io.acme/orders.**", "msg/subscribe")
            .build()
            .unwrap();
        let chain = Chain::new(token, []);
        let auth = Authorizer::new();
        let narrow = Pattern::new("orders.*").unwrap();
        let wide = Pattern::new("**").unwrap();
        assert!(
            auth.authorize(
                &w.realm,
                Some(&chain),
                &w.service.did(),
                Action::Subscribe(&narrow),
                0
            )
            .is_ok()
        );
        let err = auth
            .authorize(
                &w.realm,
                Some(&chain),
                &w.service.did(),
                Action::Subscribe(&wide),
                0,
            )
            .unwrap_err();
        assert_eq!(err.code(), "unauthorized");
    }

    #[test]
    fn the_realm_resource_covers_join_and_every_name() {
        let w = world();
        let token = Builder::new(&w.owner, w.service.did())
            .never_expires()
            .claim("weft://io.acme", "*")
            .build()
            .unwrap();
        let chain = Chain::new(token, []);
        let auth = Authorizer::new();
        let t = name("any.topic");
        for action in [Action::Join, Action::Publish(&t), Action::Call(&t)] {
            assert!(
                auth.authorize(&w.realm, Some(&chain), &w.service.did(), action, 0)
                    .is_ok()
            );
        }
        // A pattern resource does not cover joining.
        let token = Builder::new(&w.owner, w.service.did())
            .never_expires()
            .claim("weft://io.acme/**", "*")
            .build()
            .unwrap();
        let chain = Chain::new(token, []);
        let err = auth
            .authorize(&w.realm, Some(&chain), &w.service.did(), Action::Join, 0)
            .unwrap_err();
        assert_eq!(err.code(), "unauthorized");
    }

    #[test]
    fn caveats_weft_does_not_understand_deny() {
        let w = world();
        let mut caveat = weft_ucan::Caveat::new();
        caveat.insert("max_rate".into(), 10.into());
        let token = Builder::new(&w.owner, w.service.did())
            .never_expires()
            .claim_with_caveats("weft://io.acme/**", "msg/publish", vec![caveat])
            .build()
            .unwrap();
        let chain = Chain::new(token, []);
        let t = name("t");
        let err = Authorizer::new()
            .authorize(
                &w.realm,
                Some(&chain),
                &w.service.did(),
                Action::Publish(&t),
                0,
            )
            .unwrap_err();
        assert!(err.to_string().contains("caveats"), "{err}");
    }

    #[test]
    fn revocation_stops_every_chain_through_the_token() {
        let w = world();
        let (root, leaf) = team_chain(&w);
        let root_cid = *root.cid();
        let chain = Chain::new(leaf, [root]);
        let auth = Authorizer::new();
        let get = name("orders.get");
        assert!(
            auth.authorize(
                &w.realm,
                Some(&chain),
                &w.service.did(),
                Action::Call(&get),
                100
            )
            .is_ok()
        );
        auth.revoke(root_cid);
        assert!(auth.is_revoked(&root_cid));
        let err = auth
            .authorize(
                &w.realm,
                Some(&chain),
                &w.service.did(),
                Action::Call(&get),
                100,
            )
            .unwrap_err();
        assert_eq!(err, AuthError::Revoked(root_cid));
    }

    #[test]
    fn bad_chains_are_remembered_but_missing_proofs_are_not() {
        let w = world();
        let (root, leaf) = team_chain(&w);
        let auth = Authorizer::new();
        let get = name("orders.get");
        let bare = Chain::new(leaf.clone(), []);
        let err = auth
            .authorize(
                &w.realm,
                Some(&bare),
                &w.service.did(),
                Action::Call(&get),
                100,
            )
            .unwrap_err();
        assert_eq!(err.code(), "incorrectProofs");
        assert_eq!(auth.cached(), 0);
        let full = Chain::new(leaf, [root]);
        assert!(
            auth.authorize(
                &w.realm,
                Some(&full),
                &w.service.did(),
                Action::Call(&get),
                100
            )
            .is_ok()
        );

        // A widening delegation is invalid for good, and cached as such.
        let wide = Builder::new(&w.team, w.service.did())
            .expires_at(5_000)
            .claim("weft://io.acme/**", "rpc/call")
            .proof(*full.leaf().proofs().first().unwrap())
            .build();
        let wide = Chain::new(
            wide.unwrap(),
            full.proofs()
                .get(&full.leaf().proofs()[0])
                .map(|t| (**t).clone()),
        );
        for _ in 0..2 {
            let err = auth
                .authorize(
                    &w.realm,
                    Some(&wide),
                    &w.service.did(),
                    Action::Call(&get),
                    100,
                )
                .unwrap_err();
            assert_eq!(err.code(), "invalidDelegation");
        }
        assert_eq!(auth.cached(), 2);
    }

    #[test]
    fn any_of_several_chains_may_allow() {
        let w = world();
        let publish = Builder::new(&w.owner, w.service.did())
            .never_expires()
            .claim("weft://io.acme/**", "msg/publish")
            .build()
            .unwrap();
        let join = Builder::new(&w.owner, w.service.did())
            .never_expires()
            .claim("weft://io.acme", "realm/join")
            .build()
            .unwrap();
        let chains = [Chain::new(join, []), Chain::new(publish, [])];
        let auth = Authorizer::new();
        let t = name("t");
        assert!(
            auth.authorize_any(&w.realm, &chains, &w.service.did(), Action::Join, 0)
                .is_ok()
        );
        assert!(
            auth.authorize_any(&w.realm, &chains, &w.service.did(), Action::Publish(&t), 0)
                .is_ok()
        );
        let err = auth
            .authorize_any(&w.realm, &chains, &w.service.did(), Action::Call(&t), 0)
            .unwrap_err();
        assert_eq!(err.code(), "unauthorized");
        let err = auth
            .authorize_any(&w.realm, &[], &w.service.did(), Action::Join, 0)
            .unwrap_err();
        assert_eq!(err.code(), "unauthorized");
        // A revoked chain that would allow it explains more than another chain's "not covered".
        // Revoked by its BLAKE3 CID: either form names the token.
        let blake3 = Cid::compute(
            chains[1].leaf().as_str().as_bytes(),
            weft_ucan::HashAlg::Blake3,
        );
        auth.revoke(blake3);
        let err = auth
            .authorize_any(&w.realm, &chains, &w.service.did(), Action::Publish(&t), 0)
            .unwrap_err();
        assert_eq!(err.code(), "revoked");
    }

    #[test]
    fn the_cache_is_bounded() {
        let w = world();
        let auth = Authorizer::new().with_cache_capacity(2);
        let t = name("t");
        for i in 0..5 {
            let token = Builder::new(&w.owner, w.service.did())
                .never_expires()
                .nonce(format!("{i}"))
                .claim("weft://io.acme/**", "msg/publish")
                .build()
                .unwrap();
            let chain = Chain::new(token, []);
            assert!(
                auth.authorize(
                    &w.realm,
                    Some(&chain),
                    &w.service.did(),
                    Action::Publish(&t),
                    0
                )
                .is_ok()
            );
        }
        assert_eq!(auth.cached(), 2);
    }
}
