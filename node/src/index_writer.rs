//! The one writer of the index (ARCHITECTURE section 4: "writes to the index go through one
//! writer task, so commits never race").
//!
//! A dedicated thread owns the [`IndexRepo`] handle and takes jobs from a channel, one at a
//! time. Each publish job checks ownership and the author key, appends the line (the commit
//! is durable when `append` returns: objects and ref are fsynced), records the owner in
//! redb, and signs a new snapshot of the new head. Because jobs run one after another, two
//! racing publishes of the same name or version cannot both pass the checks.

use std::sync::{Arc, RwLock};

use chrono::Utc;
use mission_index::atomic_file;
use mission_index::entry::IndexEntry;
use mission_index::name::collision_key;
use mission_index::repo::{CommitId, IndexError, IndexRepo, YankOutcome};
use mission_index::rotation::{self, RotationError, RotationStatement};
use mission_index::signing::{PublicKey, SecretKey};
use mission_index::snapshot::{self, Snapshot};
use thiserror::Error;
use tokio::sync::oneshot;

use crate::data_dir::DataDir;
use crate::rotation::{key_id, same_key};
use crate::store::{Store, StoreError};

/// The current signed snapshot, served at `/index/snapshot.json` (and `.minisig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedSnapshot {
    pub seq: u64,
    pub head: String,
    pub json: String,
    pub sig: String,
}

/// Shared with the HTTP handlers; swapped whole, so a reader never sees a JSON and a
/// signature from two different snapshots.
pub type SnapshotCell = Arc<RwLock<Option<SignedSnapshot>>>;

#[derive(Debug, Error)]
pub enum WriteError {
    #[error("`{user}` is not an owner of `{name}` (owners: {owners})")]
    NotOwner {
        user: String,
        name: String,
        owners: String,
    },
    #[error("the name `{requested}` is taken: `{existing}` is already published here, and names that differ only in case or `-`/`_` are the same name")]
    NameTaken { requested: String, existing: String },
    #[error(
        "`{name}` {version} is already published; versions are immutable, publish a new version"
    )]
    VersionExists { name: String, version: String },
    #[error("`{name}` depends on `{dependency}`, but that mission is published here as `{published}`; `-` and `_` are not interchangeable in a dependency (it would never install): write `{published}` in mission.yaml")]
    DependencySpelledOtherwise {
        name: String,
        dependency: String,
        published: String,
    },
    #[error("`{name}` is signed by key {new}, but its current author key is {current} (key id {current_id}); sign with that key, or hand over to the new one first with a rotation statement signed by it (`mission key rotate --mission {name} --old NAME_OF_THAT_KEY --new NAME_OF_THE_NEW_KEY`, names of key files in MISSION_HOME/keys)")]
    KeyChanged {
        name: String,
        current: String,
        current_id: String,
        new: String,
    },
    #[error("no version {version} of `{name}`")]
    UnknownVersion { name: String, version: String },
    #[error("no mission named `{name}` in this index; a key rotation is for a published mission")]
    UnknownMission { name: String },
    #[error("the rotation statement hands over from the key with id {old}, but `{name}`'s current author key has id {current}; only the current key may hand over: sign the statement with it (`--old` names its file in MISSION_HOME/keys)")]
    RotationFromUnknownKey {
        name: String,
        old: String,
        current: String,
    },
    #[error("the rotation statement for `{name}` is refused: {source}")]
    Rotation {
        name: String,
        #[source]
        source: RotationError,
    },
    #[error("reading the key rotations of `{name}`: {reason}")]
    KeysFile { name: String, reason: String },
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing the index snapshot: {0}")]
    Snapshot(String),
    #[error("the index writer has stopped")]
    Stopped,
}

enum Job {
    Publish {
        entry: Box<IndexEntry>,
        user: String,
        reply: oneshot::Sender<Result<CommitId, WriteError>>,
    },
    Yank {
        name: String,
        version: String,
        yanked: bool,
        user: String,
        reply: oneshot::Sender<Result<YankOutcome, WriteError>>,
    },
    RefreshSnapshot {
        reply: oneshot::Sender<Result<(), WriteError>>,
    },
    Rotate {
        statement: Box<RotationStatement>,
        user: String,
        reply: oneshot::Sender<Result<Option<CommitId>, WriteError>>,
    },
}

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct IndexWriter {
    jobs: std::sync::mpsc::Sender<Job>,
    snapshot: SnapshotCell,
}

/// What the writer thread needs.
pub struct WriterParts {
    pub repo: IndexRepo,
    pub store: Arc<Store>,
    pub data: DataDir,
    pub node_name: String,
    pub public: PublicKey,
    pub secret: SecretKey,
    pub validity: chrono::Duration,
}

impl IndexWriter {
    /// Starts the writer thread and signs a snapshot of the current head if the one on disk
    /// is missing, stale or about to expire.
    pub fn start(parts: WriterParts) -> Result<IndexWriter, WriteError> {
        let snapshot: SnapshotCell = Arc::new(RwLock::new(load_snapshot(&parts.data)));
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let worker = Worker {
            parts,
            snapshot: snapshot.clone(),
        };
        worker.refresh_if_needed()?;
        std::thread::Builder::new()
            .name("index-writer".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| WriteError::Snapshot(format!("starting the writer thread: {e}")))?;
        Ok(IndexWriter { jobs: tx, snapshot })
    }

    /// The index head the current snapshot signs: what the sparse index serves.
    pub fn head(&self) -> Option<String> {
        self.snapshot
            .read()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.head.clone()))
    }

    pub fn snapshot(&self) -> Option<SignedSnapshot> {
        self.snapshot.read().ok().and_then(|s| s.clone())
    }

    /// Appends `entry` for `user` (an owner, or the first to claim the name).
    pub async fn publish(&self, entry: IndexEntry, user: &str) -> Result<CommitId, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Publish {
                entry: Box::new(entry),
                user: user.to_owned(),
                reply,
            })
            .map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Yanks (or unyanks) `name` `version` for `user`, an owner.
    pub async fn set_yanked(
        &self,
        name: &str,
        version: &str,
        yanked: bool,
        user: &str,
    ) -> Result<YankOutcome, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Yank {
                name: name.to_owned(),
                version: version.to_owned(),
                yanked,
                user: user.to_owned(),
                reply,
            })
            .map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Appends a key rotation statement for `user`, an owner of the mission it names, to
    /// `keys/<layout>/NAME`. The statement must verify and hand over from the mission's
    /// current key ([`rotation::current_key`]). `None` when that exact statement is already
    /// there.
    pub async fn rotate(
        &self,
        statement: RotationStatement,
        user: &str,
    ) -> Result<Option<CommitId>, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Rotate {
                statement: Box::new(statement),
                user: user.to_owned(),
                reply,
            })
            .map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }

    /// Re-signs the snapshot when it is past half its validity.
    pub async fn refresh_snapshot(&self) -> Result<(), WriteError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::RefreshSnapshot { reply })
            .map_err(|_| WriteError::Stopped)?;
        rx.await.map_err(|_| WriteError::Stopped)?
    }
}

struct Worker {
    parts: WriterParts,
    snapshot: SnapshotCell,
}

impl Worker {
    fn run(self, jobs: std::sync::mpsc::Receiver<Job>) {
        for job in jobs {
            match job {
                Job::Publish { entry, user, reply } => {
                    let result = self.publish(&entry, &user);
                    if let Err(e) = &result {
                        tracing::info!(name = %entry.name, version = %entry.vers, error = %e, "publish refused by the index writer");
                    }
                    let _ = reply.send(result);
                }
                Job::Yank {
                    name,
                    version,
                    yanked,
                    user,
                    reply,
                } => {
                    let _ = reply.send(self.yank(&name, &version, yanked, &user));
                }
                Job::RefreshSnapshot { reply } => {
                    let _ = reply.send(self.refresh_if_needed());
                }
                Job::Rotate {
                    statement,
                    user,
                    reply,
                } => {
                    let result = self.rotate(&statement, &user);
                    if let Err(e) = &result {
                        tracing::info!(name = %statement.name, error = %e, "key rotation refused by the index writer");
                    }
                    let _ = reply.send(result);
                }
            }
        }
    }

    fn check_owner(&self, name: &str, user: &str) -> Result<bool, WriteError> {
        let key = collision_key(name);
        match self.parts.store.owners(&key)? {
            None => Ok(true),
            Some(owners) => {
                if owners.name != name {
                    return Err(WriteError::NameTaken {
                        requested: name.to_owned(),
                        existing: owners.name,
                    });
                }
                if !owners.users.contains(user) {
                    return Err(WriteError::NotOwner {
                        user: user.to_owned(),
                        name: name.to_owned(),
                        owners: owners.users.into_iter().collect::<Vec<_>>().join(", "),
                    });
                }
                Ok(false)
            }
        }
    }

    fn publish(&self, entry: &IndexEntry, user: &str) -> Result<CommitId, WriteError> {
        let first_claim = self.check_owner(&entry.name, user)?;
        // A dependency reads the index file of its name (lowercase), so one spelled with
        // `-` for a published `_` (or the reverse) could never be installed: refused now,
        // while its author can still fix it. (A name nobody published yet is allowed.)
        for dep in &entry.deps {
            if let Some(owners) = self.parts.store.owners(&collision_key(&dep.name))? {
                if !owners.name.eq_ignore_ascii_case(&dep.name) {
                    return Err(WriteError::DependencySpelledOtherwise {
                        name: entry.name.clone(),
                        dependency: dep.name.clone(),
                        published: owners.name,
                    });
                }
            }
        }
        if let Some(existing) = self.parts.repo.read(&entry.name)? {
            if let Some(e) = existing.iter().find(|e| e.name != entry.name) {
                return Err(WriteError::NameTaken {
                    requested: entry.name.clone(),
                    existing: e.name.clone(),
                });
            }
            if existing.iter().any(|e| same_version(&e.vers, &entry.vers)) {
                return Err(WriteError::VersionExists {
                    name: entry.name.clone(),
                    version: entry.vers.clone(),
                });
            }
            // Signed by the current key: not by one rotated away from (which may still
            // have signed the highest version), nor by one no statement hands over to.
            if let Some(first) = existing.first() {
                let current = self.current_key(&entry.name, &first.key)?;
                if !same_key(&current, &entry.key) {
                    return Err(WriteError::KeyChanged {
                        name: entry.name.clone(),
                        current_id: key_id(&current),
                        current,
                        new: entry.key.clone(),
                    });
                }
            }
        }
        let key = collision_key(&entry.name);
        if first_claim {
            self.parts.store.begin_claim(&key, &entry.name, user)?;
        }
        let commit = match self.parts.repo.append(entry) {
            Ok(commit) => commit,
            Err(e) => {
                if first_claim {
                    self.parts.store.drop_claim(&key)?;
                }
                return Err(e.into());
            }
        };
        if first_claim {
            self.parts.store.finish_claim(&key)?;
        }
        self.sign_snapshot()?;
        Ok(commit)
    }

    /// The rotation statements stored for `name` (empty when none).
    fn rotations(&self, name: &str) -> Result<Vec<RotationStatement>, WriteError> {
        Ok(self.rotations_file(name)?.1)
    }

    /// The text of `name`'s keys file and its statements (empty when none).
    fn rotations_file(&self, name: &str) -> Result<(String, Vec<RotationStatement>), WriteError> {
        let keys_error = |reason: String| WriteError::KeysFile {
            name: name.to_owned(),
            reason,
        };
        let path = rotation::keys_path(name).map_err(IndexError::from)?;
        let Some(file) =
            crate::sparse::read_head_file(self.parts.repo.path(), &path).map_err(keys_error)?
        else {
            return Ok((String::new(), Vec::new()));
        };
        let text = String::from_utf8(file.bytes)
            .map_err(|_| keys_error(format!("index file `{path}` is not UTF-8")))?;
        let statements = rotation::parse_file(&text)
            .map_err(|e| keys_error(format!("index file `{path}`: {e}")))?;
        Ok((text, statements))
    }

    /// Whether `candidate` may sign `name` where `pinned` signed the latest version: the
    /// same key, or a chain of stored rotation statements leads from one to the other.
    /// The key that signs `name` now ([`rotation::current_key`]), from the key of its
    /// first published version `first`.
    fn current_key(&self, name: &str, first: &str) -> Result<String, WriteError> {
        let statements = self.rotations(name)?;
        rotation::current_key(&statements, name, first).map_err(|source| WriteError::Rotation {
            name: name.to_owned(),
            source,
        })
    }

    fn rotate(
        &self,
        statement: &RotationStatement,
        user: &str,
    ) -> Result<Option<CommitId>, WriteError> {
        let name = &statement.name;
        let refused = |source| WriteError::Rotation {
            name: name.clone(),
            source,
        };
        statement.verify().map_err(refused)?;
        if self.check_owner(name, user)? {
            // Nobody owns it: it does not exist here.
            return Err(WriteError::UnknownMission { name: name.clone() });
        }
        let existing = self.parts.repo.read(name)?.unwrap_or_default();
        let first = existing
            .first()
            .ok_or_else(|| WriteError::UnknownMission { name: name.clone() })?;
        let (mut body, statements) = self.rotations_file(name)?;
        if statements.contains(statement) {
            return Ok(None);
        }
        // Only the current key may hand over: a key rotated away from has no say any more.
        let current = rotation::current_key(&statements, name, &first.key).map_err(refused)?;
        if !same_key(&current, &statement.old_key) {
            return Err(WriteError::RotationFromUnknownKey {
                name: name.clone(),
                old: key_id(&statement.old_key),
                current: key_id(&current),
            });
        }
        let path = rotation::keys_path(name).map_err(IndexError::from)?;
        // Appended to the stored text, so lines of a newer schema this node skips are kept.
        if !body.is_empty() && !body.ends_with('\n') {
            body.push('\n');
        }
        body.push_str(&statement.to_line());
        body.push('\n');
        let new_id = key_id(&statement.new_key);
        let commit = self.parts.repo.commit_files(
            &[(path.as_str(), Some(body.as_bytes()))],
            &format!("Rotate the author key of {name} to {new_id}"),
        )?;
        if commit.is_some() {
            self.sign_snapshot()?;
        }
        Ok(commit)
    }

    fn yank(
        &self,
        name: &str,
        version: &str,
        yanked: bool,
        user: &str,
    ) -> Result<YankOutcome, WriteError> {
        if self.check_owner(name, user)? {
            // Nobody owns it: it does not exist here.
            return Err(WriteError::UnknownVersion {
                name: name.to_owned(),
                version: version.to_owned(),
            });
        }
        let outcome = self.parts.repo.set_yanked(name, version, yanked)?;
        if matches!(outcome, YankOutcome::Committed(_)) {
            self.sign_snapshot()?;
        }
        Ok(outcome)
    }

    /// Signs a snapshot of the current head unless the current one covers it and has more
    /// than half of its validity left.
    fn refresh_if_needed(&self) -> Result<(), WriteError> {
        let head = self
            .parts
            .repo
            .head()?
            .map(|c| c.to_string())
            .unwrap_or_default();
        let current = self.snapshot.read().ok().and_then(|s| s.clone());
        let fresh = current.as_ref().is_some_and(|s| {
            s.head == head
                && serde_json::from_str::<Snapshot>(&s.json)
                    .ok()
                    .and_then(|snap| snap.expires().ok())
                    .is_some_and(|expires| expires - Utc::now() > self.parts.validity / 2)
        });
        if fresh {
            return Ok(());
        }
        self.sign_snapshot()
    }

    fn sign_snapshot(&self) -> Result<(), WriteError> {
        let head = self
            .parts
            .repo
            .head()?
            .map(|c| c.to_string())
            .unwrap_or_default();
        let last = self
            .snapshot
            .read()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.seq))
            .unwrap_or(0);
        let now = Utc::now();
        // Time-based, so a lost snapshot file never makes seq go back; +1 so two snapshots
        // in the same millisecond still differ.
        let seq = (now.timestamp_millis().max(0) as u64).max(last + 1);
        let snap = Snapshot::new(
            &self.parts.node_name,
            &self.parts.public,
            seq,
            &head,
            now,
            self.parts.validity,
        );
        let (json, sig) = snapshot::sign_snapshot(&snap, &self.parts.secret, &self.parts.public)
            .map_err(|e| WriteError::Snapshot(e.to_string()))?;
        let write = |path: &std::path::Path, bytes: &str| {
            atomic_file::write_synced(path, bytes.as_bytes())
                .map_err(|e| WriteError::Snapshot(e.to_string()))
        };
        write(&self.parts.data.snapshot_file(), &json)?;
        write(&self.parts.data.snapshot_sig_file(), &sig)?;
        if let Ok(mut cell) = self.snapshot.write() {
            *cell = Some(SignedSnapshot {
                seq,
                head,
                json,
                sig,
            });
        }
        Ok(())
    }
}

/// Versions equal as crates.io compares them: ignoring build metadata.
fn same_version(a: &str, b: &str) -> bool {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp_precedence(&b).is_eq(),
        _ => a == b,
    }
}

fn load_snapshot(data: &DataDir) -> Option<SignedSnapshot> {
    let json = std::fs::read_to_string(data.snapshot_file()).ok()?;
    let sig = std::fs::read_to_string(data.snapshot_sig_file()).ok()?;
    let snap: Snapshot = serde_json::from_str(&json).ok()?;
    Some(SignedSnapshot {
        seq: snap.seq,
        head: snap.head,
        json,
        sig,
    })
}
