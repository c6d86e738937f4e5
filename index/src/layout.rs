//! Where a name's file lives in the index: the layout of crates.io's index.
//!
//! A git tree with 100,000 files in one folder is slow to read and to rewrite, so the index
//! spreads its files over short folders taken from the name itself (lowercased):
//!
//! | name length | path            | example                               |
//! |-------------|-----------------|---------------------------------------|
//! | 1           | `1/NAME`        | `a` → `1/a`                           |
//! | 2           | `2/NAME`        | `Ab` → `2/ab`                         |
//! | 3           | `3/C/NAME`      | `xyz` → `3/x/xyz`                     |
//! | 4 or more   | `AB/CD/NAME`    | `Fix_Build` → `fi/x_/fix_build`       |
//!
//! Certifications use the same layout under `certs/` ([`cert_path`]).
//!
//! Because the path is built from the name, a bad name could otherwise escape the index
//! (`../x`) or create folders (`a/b`). Every function here refuses names that do not pass the
//! package name rules ([`crate::name::validate_name`], reserved words excepted: reserving a
//! word is a publishing rule, not a path rule), so no path it returns contains `..`, an
//! absolute part or an extra `/`.

use thiserror::Error;

use crate::name::{validate_name, NameError};

/// The folder under which certifications live, mirroring the entry layout.
pub const CERTS_DIR: &str = "certs";

/// Why no path could be built for a name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("no index path for the name `{name}`: {source}")]
pub struct LayoutError {
    pub name: String,
    #[source]
    pub source: NameError,
}

/// Checks that `name` is safe to turn into a path (see the module docs).
fn check(name: &str) -> Result<(), LayoutError> {
    match validate_name(name) {
        Ok(()) | Err(NameError::Reserved { .. }) => Ok(()),
        Err(source) => Err(LayoutError {
            name: name.to_owned(),
            source,
        }),
    }
}

/// The folder part of the layout for an already checked, lowercased name (no trailing `/`).
fn dir_of(lower: &str) -> String {
    // The name is ASCII (checked), so byte slicing is on character boundaries.
    match lower.len() {
        1 => "1".to_owned(),
        2 => "2".to_owned(),
        3 => format!("3/{}", &lower[..1]),
        _ => format!("{}/{}", &lower[..2], &lower[2..4]),
    }
}

/// The `Prefer` token with which a client asks a node for the prefetch hint of an index
/// file: a `Link` header naming the index files of everything the mission may need
/// (docs/sparse-index.md).
pub const PREFETCH_PREFERENCE: &str = "mission-closure";

/// The most index files one prefetch hint names (a node sends no more, a client takes no
/// more from one answer).
pub const MAX_HINTED: usize = 256;

/// The path of `name`'s index file, e.g. `fi/x_/fix_build`.
pub fn entry_path(name: &str) -> Result<String, LayoutError> {
    check(name)?;
    let lower = name.to_ascii_lowercase();
    Ok(format!("{}/{lower}", dir_of(&lower)))
}

/// The path of `name`'s certification file, e.g. `certs/fi/x_/fix_build`.
pub fn cert_path(name: &str) -> Result<String, LayoutError> {
    Ok(format!("{CERTS_DIR}/{}", entry_path(name)?))
}

/// The inverse of [`entry_path`]: the (lowercase) name whose file `path` is, or `None` when
/// `path` is not where the layout would put that name (a stray file, a wrong folder, an
/// uppercase file name, `config.json`, a certification, ...). Used when listing the index.
pub fn name_from_path(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?;
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    match entry_path(name) {
        Ok(expected) if expected == path => Some(name.to_owned()),
        _ => None,
    }
}

/// The inverse of [`cert_path`]: the name whose certification file `path` is.
pub fn name_from_cert_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix(CERTS_DIR)?.strip_prefix('/')?;
    name_from_path(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_crates_io_layout() {
        assert_eq!(entry_path("a").unwrap(), "1/a");
        assert_eq!(entry_path("Ab").unwrap(), "2/ab");
        assert_eq!(entry_path("xyz").unwrap(), "3/x/xyz");
        assert_eq!(entry_path("Fix_Build").unwrap(), "fi/x_/fix_build");
        assert_eq!(entry_path("abcd").unwrap(), "ab/cd/abcd");
        assert_eq!(entry_path("a-b-c").unwrap(), "a-/b-/a-b-c");
        assert_eq!(cert_path("Fix_Build").unwrap(), "certs/fi/x_/fix_build");
        assert_eq!(cert_path("q").unwrap(), "certs/1/q");
    }

    #[test]
    fn reserved_words_still_have_a_path() {
        // Reserving is a publishing rule; a mirror may still need to look the path up.
        assert_eq!(entry_path("config").unwrap(), "co/nf/config");
    }

    #[test]
    fn bad_names_never_become_paths() {
        for bad in [
            "",
            "..",
            "../etc",
            "a/b",
            "a/../../x",
            "/abs",
            ".keys",
            "a b",
            "é",
        ] {
            let err = entry_path(bad).unwrap_err();
            assert_eq!(err.name, bad);
            assert!(err.to_string().contains("no index path"), "{err}");
            assert!(cert_path(bad).is_err(), "{bad}");
        }
        assert!(entry_path(&"a".repeat(65)).is_err());
    }

    #[test]
    fn name_from_path_inverts_entry_path() {
        for name in ["a", "ab", "abc", "abcd", "fix_compilation_errors", "a-b_c"] {
            let path = entry_path(name).unwrap();
            assert_eq!(name_from_path(&path).as_deref(), Some(name), "{path}");
            let cert = cert_path(name).unwrap();
            assert_eq!(name_from_cert_path(&cert).as_deref(), Some(name), "{cert}");
            assert_eq!(name_from_path(&cert), None, "{cert}");
        }
        assert_eq!(
            name_from_path("fi/x_/Fix_Build"),
            None,
            "files are lowercase"
        );
    }

    #[test]
    fn name_from_path_refuses_paths_the_layout_would_not_make() {
        for stray in [
            "config.json",
            "1/ab",
            "2/a",
            "3/y/xyz",
            "ab/ce/abcd",
            "abcd",
            "ab/cd/ef/abcd",
            "1/..",
            ".keys/ab/cd/abcd",
            "certs/ab/cd/abcd",
            "",
        ] {
            assert_eq!(name_from_path(stray), None, "{stray}");
        }
        assert_eq!(name_from_cert_path("ab/cd/abcd"), None);
    }
}
