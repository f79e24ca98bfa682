//! Peers' provider records this node stores, as far as bounding them goes. libp2p's store drops a
//! peer's expired record only when someone asks for its key, so records for keys nobody asks
//! about would stay until a restart, and one peer could take every key slot and stop this node
//! from announcing its own keys. This keeps each stored record's expiry and what each provider
//! holds; refuses keys not shaped like weft's, a provider past its share and new keys past the
//! slots peers may use; and says which records have expired, for the driver to remove.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::PeerId;

/// Keys one peer may have records for here: a node provides one key per realm and one per
/// procedure, and only the keys closest to this node are stored here.
pub(crate) const MAX_KEYS_PER_PROVIDER: usize = 256;
/// Key slots of the store kept for this node's own keys (its realms and procedures): peers'
/// records use the rest.
pub(crate) const RESERVED_OWN_KEYS: usize = 256;

/// A membership key: a SHA-256.
const MEMBERSHIP_KEY_LEN: usize = 32;
/// What follows a membership key in a procedure key (then the procedure's name), a subscription
/// key and a publication key (then a bucket's SHA-256).
const PROCEDURE_KEY_SEPARATOR: &[u8] = b"/rpc/";
const BUCKET_KEY_SEPARATORS: [&[u8]; 2] = [b"/sub/", b"/pub/"];
/// What follows a membership key in a membership shard key (then the shard, one byte).
const SHARD_KEY_SEPARATOR: &[u8] = b"/mem/";
const BUCKET_HASH_LEN: usize = 32;
/// The longest procedure name or bucket (`weft_names::MAX_NAME_LEN`).
const MAX_NAME_LEN: usize = 256;

/// Shards a realm's membership records spread over (`weft-runtime`'s `core::rendezvous`).
pub const MEMBERSHIP_SHARDS: u8 = 64;

/// The membership shard `member` announces itself under: the first byte of the SHA-256 of its
/// `did:key` string, modulo [`MEMBERSHIP_SHARDS`].
pub fn membership_shard(member: &weft_identity::Did) -> u8 {
    use sha2::Digest as _;
    sha2::Sha256::digest(member.to_string().as_bytes())[0] % MEMBERSHIP_SHARDS
}

/// Whether `provider` may be named under `key`: any key but a membership shard's, and a shard's
/// only by the members whose identity picks it, so that identities made up in bulk cannot
/// fill every shard of a realm.
pub(crate) fn may_provide(key: &[u8], provider: &PeerId) -> bool {
    let Some(shard) = shard_of_key(key) else {
        return true;
    };
    crate::identity::peer_did(provider).is_some_and(|did| membership_shard(&did) == shard)
}

/// The shard a membership shard key names, if `key` is one.
fn shard_of_key(key: &[u8]) -> Option<u8> {
    let tail = key.get(MEMBERSHIP_KEY_LEN..)?;
    let (separator, shard) = tail.split_at_checked(SHARD_KEY_SEPARATOR.len())?;
    match (separator == SHARD_KEY_SEPARATOR, shard) {
        (true, [shard]) => Some(*shard),
        _ => None,
    }
}

/// Whether `key` is shaped like a weft DHT key: a membership key, alone or followed by `/rpc/`
/// and a procedure name, by `/sub/` or `/pub/` and a bucket's hash, or by `/mem/` and a shard. Anything else is no key
/// of weft's, and its bytes are not kept.
pub(crate) fn is_weft_key(key: &[u8]) -> bool {
    if key.len() == MEMBERSHIP_KEY_LEN {
        return true;
    }
    let Some((kind, rest)) = key
        .get(MEMBERSHIP_KEY_LEN..)
        .and_then(|tail| tail.split_at_checked(PROCEDURE_KEY_SEPARATOR.len()))
    else {
        return false;
    };
    match kind {
        PROCEDURE_KEY_SEPARATOR => !rest.is_empty() && rest.len() <= MAX_NAME_LEN,
        SHARD_KEY_SEPARATOR => matches!(rest, [shard] if *shard < MEMBERSHIP_SHARDS),
        _ => BUCKET_KEY_SEPARATORS.contains(&kind) && rest.len() == BUCKET_HASH_LEN,
    }
}

/// Why a peer's record is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The key is not shaped like a weft key.
    NotWeftKey,
    /// The provider has records for [`MAX_KEYS_PER_PROVIDER`] keys here already.
    ProviderFull,
    /// Every key slot peers may use is taken.
    StoreFull,
    /// The key has as many providers as the store keeps.
    KeyFull,
    /// A membership shard the provider's identity does not pick.
    WrongShard,
}

impl Refused {
    /// The label of `weft_dht_records_refused_total`.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refused::NotWeftKey => "key",
            Refused::ProviderFull => "provider",
            Refused::StoreFull => "store",
            Refused::KeyFull => "key_full",
            Refused::WrongShard => "shard",
        }
    }
}

/// The peers' records stored, by key and provider, with their expiry.
#[derive(Debug)]
pub(crate) struct Stored {
    records: HashMap<(Vec<u8>, PeerId), Instant>,
    /// Records per key.
    keys: HashMap<Vec<u8>, usize>,
    /// Records per provider.
    providers: HashMap<PeerId, usize>,
    /// Keys peers' records may take.
    max_keys: usize,
    /// Providers kept per key.
    max_per_key: usize,
}

impl Stored {
    /// Nothing stored; peers' records may take `max_keys` keys, `max_per_key` providers each.
    pub(crate) fn new(max_keys: usize, max_per_key: usize) -> Self {
        Self {
            records: HashMap::new(),
            keys: HashMap::new(),
            providers: HashMap::new(),
            max_keys,
            max_per_key,
        }
    }

    /// `provider`'s record for `key`, expiring at `expires`, may be stored (a renewal always
    /// may). Counted as stored from now on.
    pub(crate) fn admit(
        &mut self,
        key: &[u8],
        provider: PeerId,
        expires: Instant,
    ) -> Result<(), Refused> {
        if !is_weft_key(key) {
            return Err(Refused::NotWeftKey);
        }
        if !may_provide(key, &provider) {
            return Err(Refused::WrongShard);
        }
        if let Some(expiry) = self.records.get_mut(&(key.to_vec(), provider)) {
            *expiry = expires;
            return Ok(());
        }
        if self.providers.get(&provider).copied().unwrap_or(0) >= MAX_KEYS_PER_PROVIDER {
            return Err(Refused::ProviderFull);
        }
        match self.keys.get(key) {
            Some(held) if *held >= self.max_per_key => return Err(Refused::KeyFull),
            None if self.keys.len() >= self.max_keys => return Err(Refused::StoreFull),
            _ => {}
        }
        self.records.insert((key.to_vec(), provider), expires);
        *self.keys.entry(key.to_vec()).or_default() += 1;
        *self.providers.entry(provider).or_default() += 1;
        Ok(())
    }

    /// The record was removed from the store for another reason (its provider said goodbye).
    pub(crate) fn forget(&mut self, key: &[u8], provider: &PeerId) {
        if self.records.remove(&(key.to_vec(), *provider)).is_some() {
            self.uncount(key, provider);
        }
    }

    /// Takes the records expired at `now`, for the caller to remove from the store.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<(Vec<u8>, PeerId)> {
        let expired: Vec<(Vec<u8>, PeerId)> = self
            .records
            .iter()
            .filter(|(_, expiry)| **expiry <= now)
            .map(|(record, _)| record.clone())
            .collect();
        for (key, provider) in &expired {
            self.records.remove(&(key.clone(), *provider));
            self.uncount(key, provider);
        }
        expired
    }

    /// Records stored.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    fn uncount(&mut self, key: &[u8], provider: &PeerId) {
        if let Some(n) = self.keys.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.keys.remove(key);
            }
        }
        if let Some(n) = self.providers.get_mut(provider) {
            *n -= 1;
            if *n == 0 {
                self.providers.remove(provider);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn membership(i: u32) -> Vec<u8> {
        let mut key = vec![0u8; 32];
        key[..4].copy_from_slice(&i.to_be_bytes());
        key
    }

    #[test]
    fn a_membership_shard_takes_only_the_members_whose_identity_picks_it() {
        let key = weft_identity::Keypair::generate().unwrap();
        let peer = crate::identity::did_peer(&key.did()).unwrap();
        let mine = membership_shard(&key.did());
        let shard_key = |shard: u8| {
            let mut k = membership(1);
            k.extend_from_slice(b"/mem/");
            k.push(shard);
            k
        };
        let mut stored = Stored::new(10, 10);
        let later = Instant::now() + std::time::Duration::from_secs(60);
        assert_eq!(stored.admit(&shard_key(mine), peer, later), Ok(()));
        let other = (mine + 1) % MEMBERSHIP_SHARDS;
        assert_eq!(
            stored.admit(&shard_key(other), peer, later),
            Err(Refused::WrongShard)
        );
        assert!(
            may_provide(&membership(1), &peer),
            "the base key takes anyone"
        );
        assert!(
            !may_provide(&shard_key(other), &PeerId::random()),
            "not an Ed25519 peer"
        );
    }

    #[test]
    fn only_weft_shaped_keys_are_kept() {
        let mut procedure = membership(1);
        procedure.extend_from_slice(b"/rpc/orders.get");
        assert!(is_weft_key(&membership(1)));
        assert!(is_weft_key(&procedure));
        for kind in [&b"/sub/"[..], b"/pub/"] {
            let mut bucket = membership(1);
            bucket.extend_from_slice(kind);
            assert!(!is_weft_key(&bucket), "no hash");
            bucket.extend_from_slice(&[7; 32]);
            assert!(is_weft_key(&bucket));
            bucket.push(0);
            assert!(!is_weft_key(&bucket), "a hash is 32 bytes");
        }
        let mut shard = membership(1);
        shard.extend_from_slice(b"/mem/");
        assert!(!is_weft_key(&shard), "no shard");
        shard.push(63);
        assert!(is_weft_key(&shard));
        shard.push(0);
        assert!(!is_weft_key(&shard), "a shard is one byte");
        let mut past = membership(1);
        past.extend_from_slice(b"/mem/");
        past.push(MEMBERSHIP_SHARDS);
        assert!(!is_weft_key(&past), "no shard past the last");
        let mut long = membership(1);
        long.extend_from_slice(b"/rpc/");
        long.extend(std::iter::repeat_n(b'a', MAX_NAME_LEN + 1));
        let mut unnamed = membership(1);
        unnamed.extend_from_slice(b"/rpc/");
        let mut other = membership(1);
        other.extend_from_slice(b"/xyz/a");
        let mut clear_bucket = membership(1);
        clear_bucket.extend_from_slice(b"/sub/orders.eu");
        for bad in [
            vec![],
            vec![0; 31],
            vec![0; 33],
            vec![0; 64 * 1024],
            long,
            unnamed,
            other,
            clear_bucket,
        ] {
            assert!(!is_weft_key(&bad), "{} bytes", bad.len());
        }
        let mut stored = Stored::new(10, 10);
        let t = Instant::now();
        assert_eq!(
            stored.admit(&[0; 4096], PeerId::random(), t),
            Err(Refused::NotWeftKey)
        );
    }

    #[test]
    fn one_provider_takes_its_share_and_the_slots_peers_may_use_run_out() {
        let t = Instant::now();
        let mut stored = Stored::new(MAX_KEYS_PER_PROVIDER + 2, 2);
        let greedy = PeerId::random();
        for i in 0..MAX_KEYS_PER_PROVIDER as u32 {
            stored.admit(&membership(i), greedy, t).unwrap();
        }
        assert_eq!(
            stored.admit(&membership(99_999), greedy, t),
            Err(Refused::ProviderFull)
        );
        assert_eq!(stored.admit(&membership(0), greedy, t), Ok(()), "a renewal");

        let (a, b) = (PeerId::random(), PeerId::random());
        stored.admit(&membership(0), a, t).unwrap();
        stored.admit(&membership(100_000), a, t).unwrap();
        stored.admit(&membership(100_001), a, t).unwrap();
        assert_eq!(
            stored.admit(&membership(100_002), b, t),
            Err(Refused::StoreFull),
            "every slot peers may use is taken"
        );
        assert_eq!(
            stored.admit(&membership(1), b, t),
            Ok(()),
            "a key held already"
        );
        assert_eq!(
            stored.admit(&membership(0), b, t),
            Err(Refused::KeyFull),
            "two providers of it already"
        );
    }

    #[test]
    fn expired_records_are_handed_back_once_and_free_their_slots() {
        let t = Instant::now();
        let minute = Duration::from_secs(60);
        let mut stored = Stored::new(2, 2);
        let p = PeerId::random();
        stored.admit(&membership(1), p, t + minute).unwrap();
        stored.admit(&membership(2), p, t + 5 * minute).unwrap();
        assert!(stored.expired(t).is_empty());
        assert_eq!(stored.expired(t + minute), [(membership(1), p)]);
        assert!(stored.expired(t + minute).is_empty(), "once");
        stored.admit(&membership(3), p, t + 5 * minute).unwrap();
        stored.admit(&membership(2), p, t + 10 * minute).unwrap();
        assert_eq!(
            stored.expired(t + 6 * minute),
            [(membership(3), p)],
            "2 was renewed"
        );
        stored.forget(&membership(2), &p);
        assert_eq!(stored.len(), 0);
    }
}
