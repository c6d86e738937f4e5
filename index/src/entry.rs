//! One line of an index file: one published version of one mission (ARCHITECTURE section 4).
//!
//! Lines are written once and never changed afterwards, except `yanked`. Fields this version
//! of the code does not know are kept in [`IndexEntry::extra`] and written back unchanged, so
//! an older node rewriting a line (to yank it) never drops what a newer node added.
//!
//! The `v` field is the line's schema version. A reader skips lines whose `v` is above
//! [`ENTRY_SCHEMA_VERSION`] (see [`IndexEntry::parse_line`]) instead of misreading them, as
//! cargo does with its index.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::manifest::{Category, Manifest, Permissions, Pricing};
use crate::mission::Mission;

/// The highest entry schema version this code understands.
pub const ENTRY_SCHEMA_VERSION: u32 = 1;

/// One published version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IndexEntry {
    /// Schema version of this line (since 1). Readers skip lines above the version they know.
    #[serde(default = "default_v")]
    pub v: u32,
    /// The name as its author spelled it.
    pub name: String,
    /// The semver version.
    pub vers: String,
    /// Other missions this version needs.
    #[serde(default)]
    pub deps: Vec<EntryDependency>,
    /// SHA-256 of the canonical archive, lowercase hex.
    pub cksum: String,
    /// The whole `.minisig` text the author made over the archive.
    pub sig: String,
    /// The author's minisign public key (base64, starts with `RW`).
    pub key: String,
    /// Yanked versions are only chosen when a lockfile names them.
    #[serde(default)]
    pub yanked: bool,
    /// When the node accepted the publish (RFC 3339, UTC).
    pub pubtime: String,
    /// The name of the node where this version was first published; kept by mirrors.
    pub origin: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub categories: Vec<Category>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub license: String,
    #[serde(default)]
    pub pricing: Pricing,
    #[serde(default)]
    pub permissions: Permissions,
    /// The step types the mission uses, sorted, for search and policy checks.
    #[serde(default)]
    pub step_types: Vec<String>,
    /// Fields written by a newer version of the software, kept as they are.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_v() -> u32 {
    1
}

/// What a publish adds to a package's own metadata to make its index line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedArchive {
    /// SHA-256 of the canonical archive, lowercase hex.
    pub cksum: String,
    /// The whole `.minisig` text.
    pub sig: String,
    /// The author's public key, `RW...`.
    pub key: String,
    /// RFC 3339 UTC time of the publish.
    pub pubtime: String,
    /// The publishing node's name.
    pub origin: String,
}

/// A dependency as recorded in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EntryDependency {
    pub name: String,
    /// A semver requirement such as `^1.0`.
    pub req: String,
}

/// Why an index line could not be read.
#[derive(Debug, Error)]
pub enum EntryError {
    #[error("line {line}: not a valid index entry: {source}")]
    Json {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("line {line}: `vers` is not a semver version: {source}")]
    Version {
        line: usize,
        #[source]
        source: semver::Error,
    },
}

impl IndexEntry {
    /// Parses one line. `Ok(None)` means the line has a schema version newer than this code
    /// knows and must be skipped. `line` is 1-based and only used in errors.
    pub fn parse_line(text: &str, line: usize) -> Result<Option<IndexEntry>, EntryError> {
        // Look at `v` alone first: a newer line may lack fields this version requires, and
        // must be skipped, not reported as corrupt.
        #[derive(Deserialize)]
        struct SchemaVersion {
            #[serde(default = "default_v")]
            v: u32,
        }
        let schema: SchemaVersion =
            serde_json::from_str(text).map_err(|source| EntryError::Json { line, source })?;
        if schema.v > ENTRY_SCHEMA_VERSION {
            return Ok(None);
        }
        let entry: IndexEntry =
            serde_json::from_str(text).map_err(|source| EntryError::Json { line, source })?;
        entry
            .version()
            .map_err(|source| EntryError::Version { line, source })?;
        Ok(Some(entry))
    }

    /// Parses a whole index file: one entry per non-empty line, newer-schema lines skipped.
    pub fn parse_file(text: &str) -> Result<Vec<IndexEntry>, EntryError> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if let Some(e) = IndexEntry::parse_line(line, i + 1)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The line as written to the index file (no trailing newline).
    pub fn to_line(&self) -> String {
        // Serializing a struct of strings, numbers and maps into JSON cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The line a node records when it accepts a publish of `manifest` (whose mission is
    /// `mission`): everything but the signature data, time and origin comes from the package
    /// itself, so every node derives the same line from the same archive.
    pub fn for_publish(manifest: &Manifest, mission: &Mission, signed: PublishedArchive) -> Self {
        IndexEntry {
            v: ENTRY_SCHEMA_VERSION,
            name: manifest.name.to_string(),
            vers: manifest.version.to_string(),
            deps: manifest
                .dependencies
                .iter()
                .map(|(name, req)| EntryDependency {
                    name: name.to_string(),
                    req: req.to_string(),
                })
                .collect(),
            cksum: signed.cksum,
            sig: signed.sig,
            key: signed.key,
            yanked: false,
            pubtime: signed.pubtime,
            origin: signed.origin,
            description: manifest.description.clone(),
            categories: manifest.categories.clone(),
            keywords: manifest.keywords.clone(),
            license: manifest.license.clone(),
            pricing: manifest.pricing.clone(),
            permissions: manifest.permissions.clone(),
            step_types: mission
                .step_types_used()
                .into_iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            extra: serde_json::Map::new(),
        }
    }

    pub fn version(&self) -> Result<semver::Version, semver::Error> {
        semver::Version::parse(&self.vers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"v":1,"name":"fix_build","vers":"1.2.0","deps":[{"name":"rust_toolchain_check","req":"^1.0"}],"cksum":"ab","sig":"s","key":"RWk","yanked":false,"pubtime":"2026-11-25T14:00:00Z","origin":"public","description":"d","categories":["build-automation"],"keywords":["rust"],"license":"MIT","pricing":{"model":"free"},"permissions":{"network":false,"commands":["cargo"],"llm":false,"max_duration_seconds":600},"step_types":["command"]}"#;

    #[test]
    fn a_line_round_trips_byte_for_byte() {
        let e = IndexEntry::parse_line(LINE, 1).unwrap().unwrap();
        assert_eq!(e.name, "fix_build");
        assert_eq!(e.deps[0].req, "^1.0");
        assert_eq!(e.to_line(), LINE);
    }

    #[test]
    fn a_publish_line_carries_the_package_metadata() {
        let text = "version: '1.0'\nname: m\nsteps:\n  - {id: a, name: A, step_type: command, parameters: {command: cargo}}\n  - {id: b, name: B, step_type: create_file, parameters: {path: x, content: y}}\npackage:\n  name: fix_build\n  version: 1.2.0\n  description: Fixes the build\n  license: MIT\n  categories: [build-automation]\n  keywords: [rust]\n  dependencies: {rust_toolchain_check: '^1.0'}\n  permissions: {commands: [cargo]}\n";
        let file = std::path::Path::new("mission.yaml");
        let mission =
            crate::mission::parse_mission(text, crate::diagnostic::SourceFormat::Yaml, file)
                .unwrap();
        let manifest =
            crate::manifest::parse_package_block(text, crate::diagnostic::SourceFormat::Yaml, file)
                .unwrap()
                .unwrap();
        let entry = IndexEntry::for_publish(
            &manifest,
            &mission,
            PublishedArchive {
                cksum: "ab".into(),
                sig: "s".into(),
                key: "RWk".into(),
                pubtime: "2026-11-25T14:00:00Z".into(),
                origin: "public".into(),
            },
        );
        assert_eq!(
            (entry.name.as_str(), entry.vers.as_str()),
            ("fix_build", "1.2.0")
        );
        assert_eq!(
            entry.deps,
            vec![EntryDependency {
                name: "rust_toolchain_check".into(),
                req: "^1.0".into()
            }]
        );
        assert_eq!(entry.step_types, vec!["command", "create_file"]);
        assert_eq!(entry.permissions.commands, vec!["cargo"]);
        let again = IndexEntry::parse_line(&entry.to_line(), 1)
            .unwrap()
            .unwrap();
        assert_eq!(again, entry);
    }

    #[test]
    fn unknown_fields_are_kept() {
        let line = LINE.replace(r#""step_types""#, r#""future":{"x":[1,2]},"step_types""#);
        let e = IndexEntry::parse_line(&line, 1).unwrap().unwrap();
        assert_eq!(e.extra["future"], serde_json::json!({"x":[1,2]}));
        let again = IndexEntry::parse_line(&e.to_line(), 1).unwrap().unwrap();
        assert_eq!(again, e);
    }

    #[test]
    fn newer_schema_lines_are_skipped_even_when_they_lack_v1_fields() {
        let file = format!("{LINE}\n{{\"v\":2,\"name\":\"fix_build\",\"totally\":\"new\"}}\n\n");
        let entries = IndexEntry::parse_file(&file).unwrap();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn errors_name_the_line() {
        let file = format!("{LINE}\nnot json\n");
        let err = IndexEntry::parse_file(&file).unwrap_err().to_string();
        assert!(err.starts_with("line 2:"), "{err}");
        let bad_version = LINE.replace("1.2.0", "one");
        let err = IndexEntry::parse_line(&bad_version, 7)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 7") && err.contains("semver"), "{err}");
    }
}
