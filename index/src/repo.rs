//! The index as a git repository: reading it and appending to it (ARCHITECTURE section 4).
//!
//! ## What is in the repository
//!
//! A node's index is a **bare** git repository whose branch `refs/heads/main` holds:
//!
//! - `config.json` ([`IndexConfig`]): where archives are downloaded, the API address, whether
//!   auth is required, and the node's name and public key;
//! - one file per mission name at its [`crate::layout`] path (`fi/x_/fix_build`), one JSON
//!   line per published version ([`IndexEntry`]);
//! - `certs/<layout>/NAME`: signed certification lines, one per line, kept verbatim;
//! - `.keys/<layout of the collision key>`: the **name-key side index** described below.
//!
//! Mirrors `git clone` it, and the sparse HTTP server reads single files from it.
//!
//! ## Appending costs the same at 10 entries and at 100,000
//!
//! Git stores a folder as a *tree* object listing its children by hash. Changing one file
//! means writing a new blob, then new trees for each folder on the way up to the root; every
//! other tree is shared with the parent commit unchanged. [`IndexRepo::append`] therefore
//! reads the one file it extends (plus one small key file), writes the new blob, rebuilds
//! only the trees along those paths ([`git2::build::TreeUpdateBuilder`], which starts each
//! tree from the parent commit's), writes the commit and moves the branch. Nothing walks the
//! index. The layout keeps every tree small (at most a few thousand children even at the
//! root), which is what makes the cost flat; `docs/benchmarks.md` has the measurements.
//!
//! ## Name collisions: the `.keys/` side index
//!
//! Two names *collide* when they are equal ignoring case and `-` vs `_`
//! ([`crate::name::collision_key`]). The layout lowercases, so `Fix-Build` and `fix-build`
//! share a file and are caught by reading it; but `fix-build` and `fix_build` live in
//! different files, and the spellings that could collide with a name are exponential in the
//! number of `-`/`_`. So the index keeps, for every name, a file at
//! `.keys/<entry_path(collision_key(name))>` whose content is the name as first published
//! (`fix-build`). Appending a version reads that one file: absent means the name is new (the
//! append writes it, in the same commit), equal means it is the same name, anything else is
//! a collision. `.keys/` starts with a dot, so it can never be the folder of a name.
//!
//! ## Versions
//!
//! A version may be published once. Like crates.io, two versions that differ only in build
//! metadata (`1.0.0` and `1.0.0+build`) are the *same* version here: semver ignores build
//! metadata for precedence, so both could never be told apart by a requirement. The check
//! covers every line of the file, including lines in a newer schema (`v`) that this code
//! cannot read as entries. Lines are never rewritten except to flip `yanked`
//! ([`IndexRepo::set_yanked`]), and that rewrite changes only that field of that line, keeping
//! unknown fields, field order and the other lines byte for byte.
//!
//! ## Concurrent writers
//!
//! The node funnels writes through one task, but two processes (or two handles) may still
//! write to the same repository. Every commit moves the branch with a compare-and-swap on the
//! head it was built on ([`git2::Repository::reference_matching`]): if another writer moved
//! the branch first, nothing is lost; the operation is redone on the new head (re-running
//! every check, so a duplicate published in between is still refused) and retried. The
//! history stays linear. [`IndexRepo::commit_files_on`] offers the CAS without the retry.
//!
//! ## Durability
//!
//! [`IndexRepo::init`] sets `core.fsyncObjectFiles = true` in the repository, so libgit2
//! fsyncs objects and the branch file before a commit call returns: an acknowledged publish
//! survives a crash.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use git2::build::TreeUpdateBuilder;
use git2::{ErrorCode, FileMode, ObjectType, Oid, Repository, RepositoryInitOptions, Signature};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::entry::{EntryError, IndexEntry, ENTRY_SCHEMA_VERSION};
use crate::layout::{self, cert_path, entry_path, LayoutError};
use crate::name::collision_key;
use crate::resolve::IndexReader;

/// The branch that holds the index.
pub const MAIN_REF: &str = "refs/heads/main";
/// The path of the registry configuration at the root of the index.
pub const CONFIG_PATH: &str = "config.json";
/// The folder of the name-key side index (see the module docs).
pub const KEYS_DIR: &str = ".keys";
/// How many times an operation is redone when other writers keep moving the branch.
const MAX_ATTEMPTS: u32 = 64;
/// Committer used when a repository opened with [`IndexRepo::open`] names none.
const DEFAULT_NAME: &str = "mission-node";
const DEFAULT_EMAIL: &str = "mission-node@localhost";

/// The registry's `config.json`, as cargo reads it from a crates.io-style index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IndexConfig {
    /// Download URL template for archives (`{name}`, `{version}` markers, as cargo's `dl`).
    pub dl: String,
    /// The base URL of the node's HTTP API.
    pub api: String,
    /// Whether every request, downloads included, needs a token.
    #[serde(rename = "auth-required", default)]
    pub auth_required: bool,
    /// The node that owns this index.
    pub node: NodeInfo,
    /// Fields written by newer software, kept as they are.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The node's identity in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeInfo {
    /// The node's name (the `origin` of entries published here).
    pub name: String,
    /// The node's minisign public key (base64, starts with `RW`).
    pub key: String,
    /// Fields written by newer software, kept as they are.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The id of a commit of the index (the `head` a snapshot signs). Displays as 40 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(Oid);

impl CommitId {
    pub fn oid(&self) -> Oid {
        self.0
    }
}

impl From<Oid> for CommitId {
    fn from(oid: Oid) -> Self {
        CommitId(oid)
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for CommitId {
    type Err = IndexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 40 {
            return Err(IndexError::BadCommitId { text: s.to_owned() });
        }
        Oid::from_str(s)
            .map(CommitId)
            .map_err(|_| IndexError::BadCommitId { text: s.to_owned() })
    }
}

/// What [`IndexRepo::set_yanked`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YankOutcome {
    /// The flag changed; this commit records it.
    Committed(CommitId),
    /// The version was already in the requested state; nothing was committed.
    Unchanged,
}

/// Everything that can go wrong reading or writing the index. Each variant names the
/// repository path, index file, name or version concerned.
#[derive(Debug, Error)]
pub enum IndexError {
    #[error("git error in the index at {path} while {action}: {source}")]
    Git {
        path: PathBuf,
        action: String,
        #[source]
        source: git2::Error,
    },
    #[error(
        "cannot create an index at {path}: the folder exists, is not empty and is not an index"
    )]
    NotEmpty { path: PathBuf },
    #[error("{path} is not an index: {reason}")]
    NotAnIndex { path: PathBuf, reason: String },
    #[error("an index already exists at {path} with a different config.json")]
    ConfigMismatch { path: PathBuf },
    #[error("index file `{file}` is not valid: {source}")]
    Config {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{name} {vers}: `vers` is not a semver version: {source}")]
    Version {
        name: String,
        vers: String,
        #[source]
        source: semver::Error,
    },
    #[error("index file `{file}`: {source}")]
    Entry {
        file: String,
        #[source]
        source: EntryError,
    },
    #[error("index file `{file}` is not UTF-8 text")]
    NotUtf8 { file: String },
    #[error("index path `{path}` is a folder, a file was expected")]
    NotAFile { path: String },
    #[error(
        "{name} {vers} is already published (as {existing}); a version can be published only once"
    )]
    VersionExists {
        name: String,
        vers: String,
        existing: String,
    },
    #[error("the name `{name}` is already published as `{existing}`; use that spelling")]
    NameSpelling { name: String, existing: String },
    #[error(
        "the name `{name}` collides with the published name `{existing}` (names are compared ignoring case and `-` vs `_`)"
    )]
    NameCollision { name: String, existing: String },
    #[error("the index has no mission named `{name}`")]
    UnknownName { name: String },
    #[error("the index has no version {vers} of `{name}`")]
    UnknownVersion { name: String, vers: String },
    #[error("{name} {vers} is written in index schema v{v}, newer than this software (v{known}); it is left unchanged")]
    NewerSchema {
        name: String,
        vers: String,
        v: u32,
        known: u32,
    },
    #[error("bad index path `{path}`: {reason}")]
    BadPath { path: String, reason: String },
    #[error("bad certification line for `{name}`: {reason}")]
    BadCertification { name: String, reason: String },
    #[error("`{text}` is not a commit id (40 hex digits)")]
    BadCommitId { text: String },
    #[error("the index branch moved: expected head {expected}, found {actual}")]
    HeadMoved { expected: CommitId, actual: String },
    #[error("gave up after {attempts} attempts: other writers kept moving the index branch")]
    Contention { attempts: u32 },
}

/// A change to one file: new content, or `None` to delete it.
pub type FileChange<'a> = (&'a str, Option<&'a [u8]>);

/// A bare git repository holding a node's index. See the module docs.
pub struct IndexRepo {
    repo: Repository,
    path: PathBuf,
    name: String,
    email: String,
    conflicts: Cell<u64>,
}

impl fmt::Debug for IndexRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexRepo")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// One line of an index file read loosely: just what the write checks need, whatever the
/// line's schema version.
#[derive(Debug, Deserialize)]
struct LooseLine {
    #[serde(default)]
    v: Option<u32>,
    name: String,
    vers: String,
}

/// Parses a line for the write checks; errors name the line (1-based) like [`EntryError`].
fn loose_line(text: &str, line: usize) -> Result<(LooseLine, semver::Version), EntryError> {
    let loose: LooseLine =
        serde_json::from_str(text).map_err(|source| EntryError::Json { line, source })?;
    let vers = semver::Version::parse(&loose.vers)
        .map_err(|source| EntryError::Version { line, source })?;
    Ok((loose, vers))
}

/// Only the schema version of a line.
#[derive(Deserialize)]
struct LineVersion {
    #[serde(default)]
    v: Option<u32>,
}

/// Like [`IndexEntry::parse_file`], but a line in a newer schema is skipped by its `v`
/// alone, before it is read as an entry: a newer schema may drop or reshape fields that
/// version 1 requires, and such a line must be skipped, not reported as corrupt.
fn parse_entries(text: &str) -> Result<Vec<IndexEntry>, EntryError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let schema: LineVersion =
            serde_json::from_str(line).map_err(|source| EntryError::Json {
                line: i + 1,
                source,
            })?;
        if schema.v.unwrap_or(1) > ENTRY_SCHEMA_VERSION {
            continue;
        }
        if let Some(entry) = IndexEntry::parse_line(line, i + 1)? {
            out.push(entry);
        }
    }
    Ok(out)
}

/// The same version for publishing purposes: build metadata ignored (see module docs).
fn same_version(a: &semver::Version, b: &semver::Version) -> bool {
    a.major == b.major && a.minor == b.minor && a.patch == b.patch && a.pre == b.pre
}

fn key_path(name: &str) -> Result<String, LayoutError> {
    Ok(format!("{KEYS_DIR}/{}", entry_path(&collision_key(name))?))
}

/// Refuses paths that could leave the tree or confuse git.
fn check_path(path: &str) -> Result<(), IndexError> {
    let bad = |reason: &str| {
        Err(IndexError::BadPath {
            path: path.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if path.is_empty() {
        return bad("empty path");
    }
    if path.contains('\0') || path.contains('\\') {
        return bad("contains a NUL or a backslash");
    }
    for part in path.split('/') {
        if part.is_empty() {
            return bad("empty component (leading, trailing or double `/`)");
        }
        if part == "." || part == ".." {
            return bad("`.` and `..` are not allowed");
        }
        if part.eq_ignore_ascii_case(".git") {
            return bad("`.git` is not allowed");
        }
    }
    Ok(())
}

/// The retryable outcome of moving the branch.
enum RefUpdate {
    Done,
    Moved,
}

impl IndexRepo {
    /// Creates a bare index repository at `path` whose first commit holds `config.json`,
    /// committing as `name <email>` (also recorded as `user.name`/`user.email` in the
    /// repository, so [`IndexRepo::open`] commits as the same identity).
    ///
    /// A missing or empty folder is created; an existing index with the same `config.json`
    /// is opened (so `init` can be repeated); anything else is refused.
    pub fn init(
        path: impl AsRef<Path>,
        config: &IndexConfig,
        name: &str,
        email: &str,
    ) -> Result<IndexRepo, IndexError> {
        let path = path.as_ref();
        if path.exists() {
            let empty = path.is_dir()
                && std::fs::read_dir(path)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false);
            if !empty {
                return match IndexRepo::open(path) {
                    Ok(existing) if existing.config()? == *config => Ok(existing),
                    Ok(_) => Err(IndexError::ConfigMismatch {
                        path: path.to_owned(),
                    }),
                    Err(_) => Err(IndexError::NotEmpty {
                        path: path.to_owned(),
                    }),
                };
            }
        }
        let git_err = |action: &str| {
            let path = path.to_owned();
            let action = action.to_owned();
            move |source| IndexError::Git {
                path,
                action,
                source,
            }
        };
        let mut opts = RepositoryInitOptions::new();
        opts.bare(true)
            .initial_head("main")
            .mkpath(true)
            .no_reinit(true);
        let repo =
            Repository::init_opts(path, &opts).map_err(git_err("creating the repository"))?;
        {
            let mut cfg = repo.config().map_err(git_err("opening its config"))?;
            cfg.set_bool("core.fsyncObjectFiles", true)
                .and_then(|()| cfg.set_str("user.name", name))
                .and_then(|()| cfg.set_str("user.email", email))
                .map_err(git_err("writing its config"))?;
        }
        let index = IndexRepo {
            repo,
            path: path.to_owned(),
            name: name.to_owned(),
            email: email.to_owned(),
            conflicts: Cell::new(0),
        };
        let body = config_bytes(config);
        let id = index.commit_on(
            None,
            &[(CONFIG_PATH.to_owned(), Some(body))],
            &format!("Create the index of node {}", config.node.name),
        )?;
        match id {
            Some(_) => Ok(index),
            None => Err(IndexError::HeadMoved {
                expected: CommitId(Oid::ZERO_SHA1),
                actual: "a commit made by another writer during init".to_owned(),
            }),
        }
    }

    /// Opens an existing index: a bare repository whose `main` branch has a `config.json`.
    pub fn open(path: impl AsRef<Path>) -> Result<IndexRepo, IndexError> {
        let path = path.as_ref();
        let not_index = |reason: String| IndexError::NotAnIndex {
            path: path.to_owned(),
            reason,
        };
        let repo = Repository::open_bare(path).map_err(|e| not_index(e.message().to_owned()))?;
        let (name, email) = match repo.config() {
            Ok(cfg) => (
                cfg.get_string("user.name")
                    .unwrap_or_else(|_| DEFAULT_NAME.to_owned()),
                cfg.get_string("user.email")
                    .unwrap_or_else(|_| DEFAULT_EMAIL.to_owned()),
            ),
            Err(_) => (DEFAULT_NAME.to_owned(), DEFAULT_EMAIL.to_owned()),
        };
        let index = IndexRepo {
            repo,
            path: path.to_owned(),
            name,
            email,
            conflicts: Cell::new(0),
        };
        if index.head()?.is_none() {
            return Err(not_index(format!("no branch {MAIN_REF}")));
        }
        if index.read_raw_at_head(CONFIG_PATH)?.is_none() {
            return Err(not_index(format!("no {CONFIG_PATH} on {MAIN_REF}")));
        }
        Ok(index)
    }

    /// The repository folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commit as `name <email>` from now on (this handle only).
    pub fn set_committer(&mut self, name: &str, email: &str) {
        self.name = name.to_owned();
        self.email = email.to_owned();
    }

    /// How many times this handle found the branch moved by another writer and redid an
    /// operation (a contention gauge for metrics).
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts.get()
    }

    /// The current head of `main`, or `None` if the branch does not exist.
    pub fn head(&self) -> Result<Option<CommitId>, IndexError> {
        match self.repo.refname_to_id(MAIN_REF) {
            Ok(oid) => Ok(Some(CommitId(oid))),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(self.git("reading the branch", e)),
        }
    }

    /// The registry configuration at the head.
    pub fn config(&self) -> Result<IndexConfig, IndexError> {
        let raw = self
            .read_raw_at_head(CONFIG_PATH)?
            .ok_or_else(|| IndexError::NotAnIndex {
                path: self.path.clone(),
                reason: format!("no {CONFIG_PATH} on {MAIN_REF}"),
            })?;
        serde_json::from_slice(&raw).map_err(|source| IndexError::Config {
            file: CONFIG_PATH.to_owned(),
            source,
        })
    }

    /// Replaces `config.json` (e.g. after a node key rotation). `None` if it was unchanged.
    pub fn set_config(&self, config: &IndexConfig) -> Result<Option<CommitId>, IndexError> {
        let body = config_bytes(config);
        self.commit_files(
            &[(CONFIG_PATH, Some(&body))],
            &format!("Update {CONFIG_PATH}"),
        )
    }

    /// Appends one version to its name's file and commits `Publish NAME VERSION`.
    ///
    /// Refused: a `vers` that is not semver; a version already in the file (build metadata
    /// ignored, see the module docs); a name already published under another spelling
    /// (`Fix-Build` vs `fix-build`) or colliding with another name (`fix-build` vs
    /// `fix_build`). Cost: a handful of object reads and writes, independent of the size of
    /// the index. Retries on a concurrent writer (module docs).
    pub fn append(&self, entry: &IndexEntry) -> Result<CommitId, IndexError> {
        let file = entry_path(&entry.name)?;
        let keys = key_path(&entry.name)?;
        let vers = entry.version().map_err(|source| IndexError::Version {
            name: entry.name.clone(),
            vers: entry.vers.clone(),
            source,
        })?;
        let line = entry.to_line();
        let message = format!("Publish {} {}", entry.name, entry.vers);
        let id = self.with_retry(|tree| {
            let owner = self.read_text(tree, &keys)?;
            let owner = owner.as_deref().map(str::trim);
            if let Some(owner) = owner {
                if owner != entry.name {
                    return Err(name_clash(&entry.name, owner));
                }
            }
            let old = self.read_text(tree, &file)?;
            if let Some(old) = &old {
                for (i, text) in old.lines().enumerate() {
                    if text.trim().is_empty() {
                        continue;
                    }
                    let (loose, existing) =
                        loose_line(text, i + 1).map_err(|source| IndexError::Entry {
                            file: file.clone(),
                            source,
                        })?;
                    if loose.name != entry.name {
                        return Err(name_clash(&entry.name, &loose.name));
                    }
                    if same_version(&existing, &vers) {
                        return Err(IndexError::VersionExists {
                            name: entry.name.clone(),
                            vers: entry.vers.clone(),
                            existing: loose.vers,
                        });
                    }
                }
            }
            let mut body = old.unwrap_or_default();
            if !body.is_empty() && !body.ends_with('\n') {
                body.push('\n');
            }
            body.push_str(&line);
            body.push('\n');
            let mut changes = vec![(file.clone(), Some(body.into_bytes()))];
            if owner.is_none() {
                changes.push((keys.clone(), Some(format!("{}\n", entry.name).into_bytes())));
            }
            Ok(Some((changes, message.clone())))
        })?;
        // An append always changes the file, so a commit was made.
        id.ok_or_else(|| IndexError::UnknownName {
            name: entry.name.clone(),
        })
    }

    /// Sets or clears `yanked` on one version (matched ignoring build metadata), rewriting
    /// only that field of that line; commits `Yank NAME VERSION` or `Unyank NAME VERSION`.
    /// Returns [`YankOutcome::Unchanged`] without committing when the flag already has that
    /// value.
    pub fn set_yanked(
        &self,
        name: &str,
        vers: &str,
        yanked: bool,
    ) -> Result<YankOutcome, IndexError> {
        let file = entry_path(name)?;
        let want = semver::Version::parse(vers).map_err(|source| IndexError::Version {
            name: name.to_owned(),
            vers: vers.to_owned(),
            source,
        })?;
        let id = self.with_retry(|tree| {
            let old = self
                .read_text(tree, &file)?
                .ok_or_else(|| IndexError::UnknownName {
                    name: name.to_owned(),
                })?;
            let entry_err = |source| IndexError::Entry {
                file: file.clone(),
                source,
            };
            let mut lines: Vec<String> = old.lines().map(str::to_owned).collect();
            for (i, text) in lines.iter_mut().enumerate() {
                if text.trim().is_empty() {
                    continue;
                }
                let (loose, existing) = loose_line(text, i + 1).map_err(entry_err)?;
                if !same_version(&existing, &want) {
                    continue;
                }
                let v = loose.v.unwrap_or(1);
                if v > ENTRY_SCHEMA_VERSION {
                    return Err(IndexError::NewerSchema {
                        name: loose.name,
                        vers: loose.vers,
                        v,
                        known: ENTRY_SCHEMA_VERSION,
                    });
                }
                let mut map: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(text).map_err(|source| {
                        entry_err(EntryError::Json {
                            line: i + 1,
                            source,
                        })
                    })?;
                if map.get("yanked").and_then(|y| y.as_bool()).unwrap_or(false) == yanked {
                    return Ok(None);
                }
                map.insert("yanked".to_owned(), serde_json::Value::Bool(yanked));
                // A map of JSON values always serializes.
                *text = serde_json::to_string(&map).unwrap_or_default();
                let mut body = lines.join("\n");
                body.push('\n');
                let verb = if yanked { "Yank" } else { "Unyank" };
                let message = format!("{verb} {} {}", loose.name, loose.vers);
                return Ok(Some((
                    vec![(file.clone(), Some(body.into_bytes()))],
                    message,
                )));
            }
            Err(IndexError::UnknownVersion {
                name: name.to_owned(),
                vers: vers.to_owned(),
            })
        })?;
        Ok(match id {
            Some(id) => YankOutcome::Committed(id),
            None => YankOutcome::Unchanged,
        })
    }

    /// Every version of `name` this software can read (lines with a newer `v` are skipped),
    /// or `None` when the index has no file for the name. Case-insensitive.
    pub fn read(&self, name: &str) -> Result<Option<Vec<IndexEntry>>, IndexError> {
        let file = entry_path(name)?;
        let Some(raw) = self.read_raw_at_head(&file)? else {
            return Ok(None);
        };
        let text =
            String::from_utf8(raw).map_err(|_| IndexError::NotUtf8 { file: file.clone() })?;
        parse_entries(&text)
            .map(Some)
            .map_err(|source| IndexError::Entry { file, source })
    }

    /// The bytes of `name`'s index file as stored (what the sparse index serves).
    pub fn read_file_raw(&self, name: &str) -> Result<Option<Vec<u8>>, IndexError> {
        self.read_raw_at_head(&entry_path(name)?)
    }

    /// Every name with an index file, as the layout spells it (lowercase), sorted. Walks
    /// the whole tree: O(number of names). Files that are not where the layout would put a
    /// name are ignored.
    pub fn list_names(&self) -> Result<Vec<String>, IndexError> {
        let tree = self.head_tree()?;
        let mut names = BTreeSet::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            let Ok(file) = entry.name() else {
                return git2::TreeWalkResult::Skip;
            };
            match entry.kind() {
                Some(ObjectType::Tree) if dir.is_empty() => {
                    // certs/, .keys/ (collision keys) and keys/ (rotation statements) hold
                    // no entry files.
                    if file == layout::CERTS_DIR
                        || file == KEYS_DIR
                        || file == crate::rotation::ROTATION_DIR
                    {
                        git2::TreeWalkResult::Skip
                    } else {
                        git2::TreeWalkResult::Ok
                    }
                }
                Some(ObjectType::Blob) => {
                    if let Some(name) = layout::name_from_path(&format!("{dir}{file}")) {
                        names.insert(name);
                    }
                    git2::TreeWalkResult::Ok
                }
                _ => git2::TreeWalkResult::Ok,
            }
        })
        .map_err(|e| self.git("listing names", e))?;
        Ok(names.into_iter().collect())
    }

    /// Appends one certification line to `certs/<layout>/NAME`. The line is stored as given
    /// (another module signs and verifies it); it must be one non-empty line. The name must
    /// be in the index. `None` when that exact line is already there (importing the same
    /// certification twice is harmless).
    pub fn put_certification(
        &self,
        name: &str,
        line: &str,
    ) -> Result<Option<CommitId>, IndexError> {
        let bad = |reason: &str| IndexError::BadCertification {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        if line.trim().is_empty() {
            return Err(bad("the line is empty"));
        }
        if line.contains(['\n', '\r']) {
            return Err(bad("the line contains a line break"));
        }
        let file = entry_path(name)?;
        let certs = cert_path(name)?;
        self.with_retry(|tree| {
            if self.read_blob(tree, &file)?.is_none() {
                return Err(IndexError::UnknownName {
                    name: name.to_owned(),
                });
            }
            let mut body = self.read_text(tree, &certs)?.unwrap_or_default();
            if body.lines().any(|l| l == line) {
                return Ok(None);
            }
            if !body.is_empty() && !body.ends_with('\n') {
                body.push('\n');
            }
            body.push_str(line);
            body.push('\n');
            Ok(Some((
                vec![(certs.clone(), Some(body.into_bytes()))],
                format!("Certify {name}"),
            )))
        })
    }

    /// The certification lines stored for `name`, as stored (empty if none).
    pub fn read_certifications(&self, name: &str) -> Result<Vec<String>, IndexError> {
        let certs = cert_path(name)?;
        let tree = self.head_tree()?;
        Ok(self
            .read_text(&tree, &certs)?
            .map(|t| {
                t.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Writes or deletes (`None`) any files in one commit on the current head, retrying on
    /// a concurrent writer. No entry rules are checked: this is for files the caller owns
    /// (key-rotation statements, imports). `None` when nothing changed.
    pub fn commit_files(
        &self,
        files: &[FileChange<'_>],
        message: &str,
    ) -> Result<Option<CommitId>, IndexError> {
        let changes = owned_changes(files)?;
        self.with_retry(|_| Ok(Some((changes.clone(), message.to_owned()))))
    }

    /// Like [`IndexRepo::commit_files`], but only if the head is still `parent`: fails with
    /// [`IndexError::HeadMoved`] instead of retrying. For callers that checked something at
    /// `parent` and must not commit if it changed. `None` when nothing changed.
    pub fn commit_files_on(
        &self,
        parent: CommitId,
        files: &[FileChange<'_>],
        message: &str,
    ) -> Result<Option<CommitId>, IndexError> {
        let changes = owned_changes(files)?;
        self.commit_on(Some(parent), &changes, message)
    }

    // ---- internals ----

    fn git(&self, action: &str, source: git2::Error) -> IndexError {
        IndexError::Git {
            path: self.path.clone(),
            action: action.to_owned(),
            source,
        }
    }

    fn head_tree(&self) -> Result<git2::Tree<'_>, IndexError> {
        let head = self.head()?.ok_or_else(|| IndexError::NotAnIndex {
            path: self.path.clone(),
            reason: format!("no branch {MAIN_REF}"),
        })?;
        self.tree_of(head.0)
    }

    fn tree_of(&self, commit: Oid) -> Result<git2::Tree<'_>, IndexError> {
        self.repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(|e| self.git(&format!("reading commit {commit}"), e))
    }

    fn read_raw_at_head(&self, path: &str) -> Result<Option<Vec<u8>>, IndexError> {
        let tree = self.head_tree()?;
        self.read_blob(&tree, path)
    }

    /// The content of the file at `path` in `tree`, or `None` if there is none.
    fn read_blob(&self, tree: &git2::Tree<'_>, path: &str) -> Result<Option<Vec<u8>>, IndexError> {
        let entry = match tree.get_path(Path::new(path)) {
            Ok(entry) => entry,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(self.git(&format!("looking up `{path}`"), e)),
        };
        if entry.kind() != Some(ObjectType::Blob) {
            return Err(IndexError::NotAFile {
                path: path.to_owned(),
            });
        }
        let blob = self
            .repo
            .find_blob(entry.id())
            .map_err(|e| self.git(&format!("reading `{path}`"), e))?;
        Ok(Some(blob.content().to_vec()))
    }

    fn read_text(&self, tree: &git2::Tree<'_>, path: &str) -> Result<Option<String>, IndexError> {
        match self.read_blob(tree, path)? {
            None => Ok(None),
            Some(raw) => String::from_utf8(raw)
                .map(Some)
                .map_err(|_| IndexError::NotUtf8 {
                    file: path.to_owned(),
                }),
        }
    }

    /// Runs `plan` against the current head's tree and commits what it returns, moving the
    /// branch by compare-and-swap; when another writer moved it first, runs `plan` again on
    /// the new head. `plan` returning `None` means "nothing to do".
    fn with_retry<F>(&self, mut plan: F) -> Result<Option<CommitId>, IndexError>
    where
        F: FnMut(&git2::Tree<'_>) -> Result<Option<(Vec<OwnedChange>, String)>, IndexError>,
    {
        for attempt in 0..MAX_ATTEMPTS {
            let head = self.head()?.ok_or_else(|| IndexError::NotAnIndex {
                path: self.path.clone(),
                reason: format!("no branch {MAIN_REF}"),
            })?;
            let tree = self.tree_of(head.0)?;
            let Some((changes, message)) = plan(&tree)? else {
                return Ok(None);
            };
            match self.try_commit(Some(head), &tree, &changes, &message)? {
                Some((id, RefUpdate::Done)) => return Ok(Some(id)),
                None => return Ok(None),
                Some((_, RefUpdate::Moved)) => {
                    self.conflicts.set(self.conflicts.get() + 1);
                    // Back off a little, more on each attempt, so racing writers spread out.
                    std::thread::sleep(Duration::from_micros(100 * u64::from(attempt + 1)));
                }
            }
        }
        Err(IndexError::Contention {
            attempts: MAX_ATTEMPTS,
        })
    }

    /// One commit on `parent` (or a root commit), failing with `HeadMoved` on a race.
    fn commit_on(
        &self,
        parent: Option<CommitId>,
        changes: &[OwnedChange],
        message: &str,
    ) -> Result<Option<CommitId>, IndexError> {
        let empty;
        let tree = match parent {
            Some(p) => self.tree_of(p.0)?,
            None => {
                let oid = self
                    .repo
                    .treebuilder(None)
                    .and_then(|b| b.write())
                    .and_then(|oid| self.repo.find_tree(oid))
                    .map_err(|e| self.git("writing the empty tree", e))?;
                empty = oid;
                empty
            }
        };
        match self.try_commit(parent, &tree, changes, message)? {
            None => Ok(None),
            Some((id, RefUpdate::Done)) => Ok(Some(id)),
            Some((_, RefUpdate::Moved)) => Err(IndexError::HeadMoved {
                expected: parent.unwrap_or(CommitId(Oid::ZERO_SHA1)),
                actual: match self.head()? {
                    Some(h) => h.to_string(),
                    None => "no branch".to_owned(),
                },
            }),
        }
    }

    /// Writes the blobs, the trees along their paths and a commit on `parent`, then moves the
    /// branch if it still points at `parent`. `None` when the tree would not change.
    fn try_commit(
        &self,
        parent: Option<CommitId>,
        base: &git2::Tree<'_>,
        changes: &[OwnedChange],
        message: &str,
    ) -> Result<Option<(CommitId, RefUpdate)>, IndexError> {
        let mut update = TreeUpdateBuilder::new();
        for (path, body) in changes {
            match body {
                Some(body) => {
                    let blob = self
                        .repo
                        .blob(body)
                        .map_err(|e| self.git(&format!("writing `{path}`"), e))?;
                    update.upsert(path.as_str(), blob, FileMode::Blob);
                }
                None => {
                    update.remove(path.as_str());
                }
            }
        }
        let tree_id = update
            .create_updated(&self.repo, base)
            .map_err(|e| self.git("building the new tree", e))?;
        if parent.is_some() && tree_id == base.id() {
            return Ok(None);
        }
        let tree = self
            .repo
            .find_tree(tree_id)
            .map_err(|e| self.git("reading the new tree", e))?;
        let sig = Signature::now(&self.name, &self.email)
            .map_err(|e| self.git("making the commit signature", e))?;
        let parent_commit = match parent {
            Some(p) => Some(
                self.repo
                    .find_commit(p.0)
                    .map_err(|e| self.git(&format!("reading commit {p}"), e))?,
            ),
            None => None,
        };
        let parents: Vec<&git2::Commit<'_>> = parent_commit.iter().collect();
        let commit = self
            .repo
            .commit(None, &sig, &sig, message, &tree, &parents)
            .map_err(|e| self.git("writing the commit", e))?;
        let moved = match parent {
            Some(p) => self
                .repo
                .reference_matching(MAIN_REF, commit, true, p.0, message),
            None => self.repo.reference(MAIN_REF, commit, false, message),
        };
        match moved {
            Ok(_) => Ok(Some((CommitId(commit), RefUpdate::Done))),
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::Modified | ErrorCode::Locked | ErrorCode::Exists
                ) =>
            {
                Ok(Some((CommitId(commit), RefUpdate::Moved)))
            }
            Err(e) => Err(self.git("moving the branch", e)),
        }
    }
}

type OwnedChange = (String, Option<Vec<u8>>);

fn owned_changes(files: &[FileChange<'_>]) -> Result<Vec<OwnedChange>, IndexError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(files.len());
    for (path, body) in files {
        check_path(path)?;
        if !seen.insert(*path) {
            return Err(IndexError::BadPath {
                path: (*path).to_owned(),
                reason: "given twice in one commit".to_owned(),
            });
        }
        out.push(((*path).to_owned(), body.map(<[u8]>::to_vec)));
    }
    Ok(out)
}

fn name_clash(name: &str, existing: &str) -> IndexError {
    if name.eq_ignore_ascii_case(existing) {
        IndexError::NameSpelling {
            name: name.to_owned(),
            existing: existing.to_owned(),
        }
    } else {
        IndexError::NameCollision {
            name: name.to_owned(),
            existing: existing.to_owned(),
        }
    }
}

fn config_bytes(config: &IndexConfig) -> Vec<u8> {
    // A struct of strings, bools and JSON maps always serializes.
    let mut body = serde_json::to_vec_pretty(config).unwrap_or_default();
    body.push(b'\n');
    body
}

impl IndexReader for IndexRepo {
    type Error = IndexError;

    fn entries(&self, name: &str) -> Result<Option<Vec<IndexEntry>>, IndexError> {
        self.read(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_metadata_does_not_make_a_new_version() {
        let a = semver::Version::parse("1.0.0").unwrap();
        let b = semver::Version::parse("1.0.0+build.5").unwrap();
        let c = semver::Version::parse("1.0.0-rc.1").unwrap();
        assert!(same_version(&a, &b));
        assert!(!same_version(&a, &c));
    }

    #[test]
    fn paths_that_escape_or_confuse_git_are_refused() {
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "../x",
            "a/./b",
            ".git/config",
            "a\\b",
            "A/.GIT",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        check_path("keys/rotation/abc.json").unwrap();
        check_path(".keys/ab/cd/abcd").unwrap();
    }

    #[test]
    fn commit_ids_parse_and_print_as_hex() {
        let hex = "0123456789abcdef0123456789abcdef01234567";
        let id: CommitId = hex.parse().unwrap();
        assert_eq!(id.to_string(), hex);
        assert!("0123".parse::<CommitId>().is_err());
        assert!("zz23456789abcdef0123456789abcdef01234567"
            .parse::<CommitId>()
            .is_err());
    }

    #[test]
    fn a_corrupt_line_is_named_by_its_number() {
        let err = loose_line("{\"name\":\"a\"}", 7).unwrap_err();
        assert!(err.to_string().starts_with("line 7:"), "{err}");
        let err = loose_line("{\"name\":\"a\",\"vers\":\"one\"}", 3).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
