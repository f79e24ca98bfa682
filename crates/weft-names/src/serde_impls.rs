//! Names travel as strings and are validated as they are deserialized, so a decoded message
//! never holds an invalid name.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Name, Pattern, RealmName};

macro_rules! string_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                <$ty>::new(&s).map_err(D::Error::custom)
            }
        }
    };
}

string_serde!(Name);
string_serde!(Pattern);
string_serde!(RealmName);
