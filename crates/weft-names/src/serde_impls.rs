//! Names travel as strings and are validated as they are deserialized, so a decoded message
//! never holds an invalid name.

use std::fmt;
use std::marker::PhantomData;

use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Name, NameError, Pattern, RealmName};

/// Validates a borrowed string into a name, pattern or realm name: no intermediate `String`.
trait FromWire: Sized {
    const EXPECTING: &'static str;
    fn from_wire(s: &str) -> Result<Self, NameError>;
}

impl FromWire for Name {
    const EXPECTING: &'static str = "a name";
    fn from_wire(s: &str) -> Result<Self, NameError> {
        // A stream of publications mostly repeats its topics.
        Name::new_cached(s)
    }
}

impl FromWire for Pattern {
    const EXPECTING: &'static str = "a pattern";
    fn from_wire(s: &str) -> Result<Self, NameError> {
        Pattern::new(s)
    }
}

impl FromWire for RealmName {
    const EXPECTING: &'static str = "a realm name";
    fn from_wire(s: &str) -> Result<Self, NameError> {
        RealmName::new(s)
    }
}

struct WireVisitor<T>(PhantomData<T>);

impl<T: FromWire> Visitor<'_> for WireVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
        T::from_wire(s).map_err(E::custom)
    }
}

macro_rules! string_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(WireVisitor::<$ty>(PhantomData))
            }
        }
    };
}

string_serde!(Name);
string_serde!(Pattern);
string_serde!(RealmName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_as_they_are_decoded_and_repeats_decode_alike() {
        let first: Name = serde_json::from_str("\"orders.placed\"").unwrap();
        let again: Name = serde_json::from_str("\"orders.placed\"").unwrap();
        let other: Name = serde_json::from_str("\"orders.shipped\"").unwrap();
        assert_eq!(first, again);
        assert_eq!(other.as_str(), "orders.shipped");
        let wildcard = serde_json::from_str::<Name>("\"orders.*\"").unwrap_err();
        assert!(wildcard.to_string().contains("wildcard"), "{wildcard}");
        assert!(serde_json::from_str::<Name>("\"orders..placed\"").is_err());
        assert!(serde_json::from_str::<Name>("7").is_err());
        let pattern: Pattern = serde_json::from_str("\"orders.*\"").unwrap();
        assert_eq!(pattern.as_str(), "orders.*");
        let realm: RealmName = serde_json::from_str("\"io.acme\"").unwrap();
        assert_eq!(realm.as_str(), "io.acme");
    }
}
