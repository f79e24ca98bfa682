//! The DHT keys a realm's members and providers announce themselves under. Public names go in,
//! so anyone who knows a realm's name and owner can find its members: finding is not admission.

use sha2::Digest as _;
use weft_auth::Realm;
use weft_names::Name;

/// The DHT key under which a realm's members announce themselves: the realm's name *and* owner,
/// so a squatter's realm of the same name has a different key.
pub(crate) fn membership_key(realm: &Realm) -> Vec<u8> {
    let owner = realm
        .owner()
        .map_or_else(|| "open".to_owned(), ToString::to_string);
    sha2::Sha256::digest(format!("weft/realm/v1/{}/{owner}", realm.name()).as_bytes()).to_vec()
}

/// The DHT key under which providers of `procedure` in `realm` announce themselves.
pub(crate) fn procedure_key(realm: &Realm, procedure: &Name) -> Vec<u8> {
    let mut key = membership_key(realm);
    key.extend_from_slice(b"/rpc/");
    key.extend_from_slice(procedure.as_str().as_bytes());
    key
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
}
