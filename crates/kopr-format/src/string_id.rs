//! The shape shared by kopr's string-named ids ([`crate::blob_id::BlobId`],
//! [`crate::manifest::ManifestId`], [`crate::snapshot::SnapshotId`]): an immutable string behind
//! an `Arc<str>`, so a clone copies a pointer instead of the text.
//!
//! Each id derefs to `str` and borrows as `str` (so a `HashMap<Id, _>` is looked up with a
//! `&str`), compares and hashes as its text, prints as its text (`Display` and `Debug`), converts
//! from `String`/`&str`, and serializes as a plain JSON string. None of them checks its text:
//! they name what an id is, not what it must look like.

/// Defines `$name` as a newtype of `$inner` (an `Arc<str>` or another such id) with the traits
/// listed in the module doc.
macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name($inner);

        impl $name {
            /// The id's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name(<$inner>::from(""))
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(<$inner>::from(s))
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(<$inner>::from(s))
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                $name(<$inner>::from(s.as_str()))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
                Ok($name::from(s))
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, o: &str) -> bool {
                &*self.0 == o
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, o: &&str) -> bool {
                &*self.0 == *o
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, o: &String) -> bool {
                &*self.0 == o.as_str()
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, o: &$name) -> bool {
                self == &*o.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, o: &$name) -> bool {
                *self == &*o.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, o: &$name) -> bool {
                self.as_str() == &*o.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Ok($name::from(&*s))
            }
        }
    };
}

pub(crate) use string_id;
