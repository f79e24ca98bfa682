//! The DHT keys a realm's members and providers announce themselves under. Public names go in,
//! so anyone who knows a realm's name and owner can find its members: finding is not admission.

use sha2::Digest as _;
use weft_auth::Realm;
use weft_names::{Name, Pattern, Segment};

/// Segments of a topic a bucket holds at most: deeper topics share their two-segment prefix's
/// bucket, so a publisher looks up at most three buckets per topic.
pub(crate) const BUCKET_DEPTH: usize = 2;

/// The DHT key under which a realm's members announce themselves: the realm's name *and* owner,
/// so a squatter's realm of the same name has a different key.
pub(crate) fn membership_key(realm: &Realm) -> Vec<u8> {
    let owner = realm
        .owner()
        .map_or_else(|| "open".to_owned(), ToString::to_string);
    sha2::Sha256::digest(format!("weft/realm/v1/{}/{owner}", realm.name()).as_bytes()).to_vec()
}

/// The DHT key under which the members of `realm` whose identity picks `shard`
/// (`rendezvous::shard_of`) announce themselves.
pub(crate) fn membership_shard_key(realm: &Realm, shard: u8) -> Vec<u8> {
    let mut key = membership_key(realm);
    key.extend_from_slice(b"/mem/");
    key.push(shard);
    key
}

/// The DHT key under which providers of `procedure` in `realm` announce themselves.
pub(crate) fn procedure_key(realm: &Realm, procedure: &Name) -> Vec<u8> {
    let mut key = membership_key(realm);
    key.extend_from_slice(b"/rpc/");
    key.extend_from_slice(procedure.as_str().as_bytes());
    key
}

/// The DHT key under which subscribers of `bucket` in `realm` announce themselves.
pub(crate) fn subscription_key(realm: &Realm, bucket: &str) -> Vec<u8> {
    bucket_key(realm, b"/sub/", bucket)
}

/// The DHT key under which publishers to topics of `bucket` in `realm` announce themselves.
pub(crate) fn publication_key(realm: &Realm, bucket: &str) -> Vec<u8> {
    bucket_key(realm, b"/pub/", bucket)
}

/// The bucket goes in hashed: the nodes that store the record, members or not, do not read
/// topic prefixes off the keys (one who guesses a prefix can still compute its key).
fn bucket_key(realm: &Realm, kind: &[u8], bucket: &str) -> Vec<u8> {
    let mut key = membership_key(realm);
    key.extend_from_slice(kind);
    key.extend_from_slice(&sha2::Sha256::digest(bucket.as_bytes()));
    key
}

/// The bucket a subscription to `pattern` is found under: its literal prefix, at most
/// [`BUCKET_DEPTH`] segments (`orders.eu.*` → `orders.eu`, `a.*.c` → `a`, `**` → the root, ``).
pub(crate) fn bucket(pattern: &Pattern) -> String {
    let literals =
        pattern
            .segments()
            .iter()
            .take(BUCKET_DEPTH)
            .map_while(|segment| match segment {
                Segment::Literal(literal) => Some(&**literal),
                Segment::One | Segment::Many => None,
            });
    literals.collect::<Vec<_>>().join(".")
}

/// The buckets whose subscriptions may match `topic`: its prefixes of 0 to [`BUCKET_DEPTH`]
/// segments (`orders.eu.paris` → ``, `orders`, `orders.eu`). Every pattern that matches the
/// topic has its bucket among them.
pub(crate) fn buckets_of(topic: &Name) -> Vec<&str> {
    let s = topic.as_str();
    let mut buckets = vec![""];
    let mut end = 0;
    for (i, segment) in topic.segments().take(BUCKET_DEPTH).enumerate() {
        end += segment.len() + usize::from(i > 0);
        buckets.push(&s[..end]);
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_identity::Keypair;
    use weft_names::RealmName;

    #[test]
    fn keys_are_the_documented_hashes_and_the_owner_is_part_of_them() {
        let dev = Realm::open(RealmName::new("dev").unwrap());
        assert_eq!(
            membership_key(&dev),
            sha2::Sha256::digest(b"weft/realm/v1/dev/open").to_vec()
        );
        let owned = Realm::owned(
            RealmName::new("dev").unwrap(),
            Keypair::generate().unwrap().did(),
        );
        assert_ne!(membership_key(&dev), membership_key(&owned));
        let get = Name::new("orders.get").unwrap();
        let key = procedure_key(&dev, &get);
        assert!(key.starts_with(&membership_key(&dev)));
        assert!(key.ends_with(b"/rpc/orders.get"));
    }

    #[test]
    fn a_patterns_bucket_is_its_literal_prefix_of_two_segments_at_most() {
        for (pattern, bucket_) in [
            ("orders", "orders"),
            ("orders.eu", "orders.eu"),
            ("orders.eu.paris.x", "orders.eu"),
            ("orders.eu.*", "orders.eu"),
            ("orders.*", "orders"),
            ("orders.**", "orders"),
            ("a.*.c", "a"),
            ("*.c", ""),
            ("**", ""),
        ] {
            assert_eq!(
                bucket(&Pattern::new(pattern).unwrap()),
                bucket_,
                "{pattern}"
            );
        }
    }

    #[test]
    fn a_topics_buckets_are_its_prefixes() {
        let of = |t: &str| buckets_of(&Name::new(t).unwrap()).join("|");
        assert_eq!(of("orders"), "|orders");
        assert_eq!(of("orders.eu"), "|orders|orders.eu");
        assert_eq!(of("orders.eu.paris"), "|orders|orders.eu");
        assert_eq!(of("o.e.p.x"), "|o|o.e");
    }

    /// Whatever the pattern and topic, a pattern that matches a topic has its bucket among the
    /// topic's: a publisher's lookups find every subscriber that can match.
    #[test]
    fn every_matching_pattern_is_in_one_of_the_topics_buckets() {
        let topics = ["a", "a.b", "a.b.c", "a.b.c.d", "x.b.c"];
        let patterns = [
            "a", "a.b", "a.b.c", "a.*", "a.**", "*.b", "*.b.c", "**", "a.*.c", "a.b.*", "a.b.c.*",
            "a.b.**", "*", "*.*.*", "x.**", "a.b.c.d",
        ];
        for topic in topics {
            let name = Name::new(topic).unwrap();
            let buckets = buckets_of(&name);
            for pattern in patterns {
                let pattern = Pattern::new(pattern).unwrap();
                if pattern.matches(&name) {
                    assert!(
                        buckets.contains(&bucket(&pattern).as_str()),
                        "{pattern} matches {topic}, bucket {} not in {buckets:?}",
                        bucket(&pattern)
                    );
                }
            }
        }
    }

    #[test]
    fn subscription_and_publication_keys_are_distinct_and_carry_the_bucket() {
        let dev = Realm::open(RealmName::new("dev").unwrap());
        let (sub, publ) = (
            subscription_key(&dev, "orders"),
            publication_key(&dev, "orders"),
        );
        assert_ne!(sub, publ);
        let hashed = sha2::Sha256::digest(b"orders");
        assert!(sub.starts_with(&membership_key(&dev)));
        assert_eq!(&sub[32..37], b"/sub/");
        assert_eq!(&sub[37..], hashed.as_slice());
        assert_eq!(&publ[32..37], b"/pub/");
        assert_eq!(&publ[37..], hashed.as_slice());
        assert_ne!(subscription_key(&dev, ""), subscription_key(&dev, "orders"));
        assert!(
            !sub.windows(6).any(|w| w == b"orders"),
            "no prefix in the clear"
        );
    }
}
