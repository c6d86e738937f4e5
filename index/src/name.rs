//! Mission package names, with the rules of crates.io.
//!
//! A name is 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `-` and `_`, starting with a letter,
//! and not one of the [`RESERVED_NAMES`]. Two names *collide* when they are equal after
//! lowercasing and treating `-` and `_` as the same character ([`collision_key`]): a registry
//! holds at most one name per key, so `Fix-Build` can never be published beside `fix_build`.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The longest name accepted, as on crates.io.
pub const MAX_NAME_LEN: usize = 64;

/// Names nobody may publish: words with a meaning to the registry or its tools, and names
/// that are device files on Windows (a package folder of that name cannot be checked out
/// there). Compared by [`collision_key`].
pub const RESERVED_NAMES: &[&str] = &[
    // registry words
    "mission",
    "missions",
    "rustchain",
    "registry",
    "index",
    "api",
    "git",
    "admin",
    "config",
    "certs",
    "snapshot",
    "std",
    "core",
    "test",
    "tests",
    // Windows device names
    "con",
    "prn",
    "aux",
    "nul",
    "com1",
    "com2",
    "com3",
    "com4",
    "com5",
    "com6",
    "com7",
    "com8",
    "com9",
    "lpt1",
    "lpt2",
    "lpt3",
    "lpt4",
    "lpt5",
    "lpt6",
    "lpt7",
    "lpt8",
    "lpt9",
];

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name `{name}` is {len} characters long; the limit is {MAX_NAME_LEN}")]
    TooLong { name: String, len: usize },
    #[error("the name `{name}` must start with an ASCII letter, not `{first}`")]
    BadStart { name: String, first: char },
    #[error(
        "the name `{name}` contains `{ch}` at position {pos}; only ASCII letters, digits, `-` and `_` are allowed"
    )]
    BadChar { name: String, ch: char, pos: usize },
    #[error("the name `{name}` is reserved")]
    Reserved { name: String },
}

/// A package name that passed [`validate_name`]. Keeps the spelling the author chose; compare
/// for collisions with [`PackageName::collision_key`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PackageName(String);

impl PackageName {
    pub fn new(name: &str) -> Result<Self, NameError> {
        validate_name(name)?;
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key two names must not share: lowercase, `-` read as `_`.
    pub fn collision_key(&self) -> String {
        collision_key(&self.0)
    }
}

impl TryFrom<String> for PackageName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        validate_name(&value)?;
        Ok(Self(value))
    }
}

impl From<PackageName> for String {
    fn from(value: PackageName) -> Self {
        value.0
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PackageName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Checks `name` against the crates.io rules (see the module docs).
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(NameError::Empty);
    };
    let len = name.chars().count();
    if len > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            name: name.to_owned(),
            len,
        });
    }
    if !first.is_ascii_alphabetic() {
        return Err(NameError::BadStart {
            name: name.to_owned(),
            first,
        });
    }
    if let Some((pos, ch)) = name
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(NameError::BadChar {
            name: name.to_owned(),
            ch,
            pos: pos + 1,
        });
    }
    let key = collision_key(name);
    if RESERVED_NAMES.iter().any(|r| collision_key(r) == key) {
        return Err(NameError::Reserved {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Lowercase with `-` replaced by `_`: two names with the same key collide.
pub fn collision_key(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '-' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_crates_io_style_names() {
        for ok in [
            "a",
            "fix_compilation_errors",
            "setup-github-actions",
            "X2",
            "a-b_c9",
        ] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        assert!(validate_name(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn refuses_bad_names_with_the_reason() {
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert!(matches!(
            validate_name(&"a".repeat(65)),
            Err(NameError::TooLong { len: 65, .. })
        ));
        assert!(matches!(
            validate_name("9lives"),
            Err(NameError::BadStart { first: '9', .. })
        ));
        assert!(matches!(
            validate_name("_hidden"),
            Err(NameError::BadStart { first: '_', .. })
        ));
        assert!(matches!(
            validate_name("my mission"),
            Err(NameError::BadChar {
                ch: ' ',
                pos: 3,
                ..
            })
        ));
        assert!(matches!(
            validate_name("café"),
            Err(NameError::BadChar {
                ch: 'é',
                pos: 4,
                ..
            })
        ));
        assert!(matches!(
            validate_name("../etc"),
            Err(NameError::BadStart { .. })
        ));
        let err = validate_name("a/b").unwrap_err().to_string();
        assert!(err.contains("`/`") && err.contains("a/b"), "{err}");
    }

    #[test]
    fn reserved_names_are_refused_in_any_spelling() {
        for bad in ["con", "CON", "Lpt1", "std", "Mission", "index"] {
            assert!(
                matches!(validate_name(bad), Err(NameError::Reserved { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn collision_key_ignores_case_and_dash_underscore() {
        assert_eq!(collision_key("Fix-Build"), collision_key("fix_build"));
        assert_ne!(collision_key("fix_build"), collision_key("fixbuild"));
        let a = PackageName::new("My-Mission").unwrap();
        assert_eq!(a.collision_key(), "my_mission");
        assert_eq!(a.as_str(), "My-Mission");
    }

    #[test]
    fn deserializing_checks_the_rules() {
        let ok: PackageName = serde_json::from_str("\"good_name\"").unwrap();
        assert_eq!(ok.as_str(), "good_name");
        let err = serde_json::from_str::<PackageName>("\"bad name\"").unwrap_err();
        assert!(err.to_string().contains("bad name"), "{err}");
    }
}
