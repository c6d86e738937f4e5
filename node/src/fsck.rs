//! `admin fsck`: checks that the three sources of truth of a data folder agree, and that
//! what is derived from them is current (ARCHITECTURE section 11).
//!
//! A publish writes, in this order, the archive blob (temp file, fsync, rename), the index
//! commit, the owners record in redb, and the signed snapshot. Every cross-link this module
//! checks is one of those steps seen from another:
//!
//! - every line of every index file parses as an entry, sits in its name's file, and no
//!   version appears twice;
//! - its blob exists and hashes to its `cksum`; the blob's signature verifies with the
//!   entry's `key` and the trusted comment `mission=NAME version=V sha256=...`; the
//!   archive's `mission.yaml` declares that same name and version;
//! - every mission in the index has an owners record (by collision key) naming existing
//!   users, and every owners record has versions in the index;
//! - `snapshot.json` verifies with the node key, has not expired, and its `head` is the
//!   index head;
//! - no git lock file (`refs/heads/main.lock`, ...) is left in the index by a writer killed
//!   mid-commit: one would make every later commit fail.
//!
//! Not inconsistencies, only reported: *orphan* blobs (stored, but in no entry: a crash
//! between the blob write and the commit leaves one, and it is harmless) and leftover
//! temporary files.
//!
//! `--repair` rebuilds what is derived (re-signs the snapshot for the current head), removes
//! stale git locks, and removes leftovers older than a minute (younger ones may belong to a publish in
//! progress). It never edits the index, the blobs of entries, or redb: a missing owners
//! record cannot be derived from the index, so it stays a reported problem, with the
//! command that fixes it by hand. [`repair_on_start`] is the cheap part of this that
//! `serve` runs before it opens for business.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use chrono::Utc;
use mission_index::archive::{self, ArchiveLimits};
use mission_index::atomic_file;
use mission_index::entry::IndexEntry;
use mission_index::layout;
use mission_index::name::collision_key;
use mission_index::package::{self, MANIFEST_FILE};
use mission_index::repo::IndexRepo;
use mission_index::signing::{self, PublicKey, SecretKey};
use mission_index::snapshot::{self, Snapshot};

use crate::blobs::{BlobError, BlobStore};
use crate::config::NodeConfig;
use crate::data_dir::DataDir;
use crate::server::AppState;
use crate::store::Store;

/// Leftovers younger than this may belong to a publish in progress: never removed.
const LEFTOVER_MIN_AGE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// An inconsistency: fsck exits 1.
    Problem,
    /// Worth knowing, not wrong (an orphan blob).
    Warning,
    /// Was wrong or left over, and `--repair` fixed it.
    Repaired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

/// What fsck found, in the order it found it.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub missions: usize,
    pub versions: usize,
    pub blobs: usize,
}

impl Report {
    fn push(&mut self, severity: Severity, message: String) {
        self.findings.push(Finding { severity, message });
    }
    fn problem(&mut self, message: String) {
        self.push(Severity::Problem, message);
    }
    fn warning(&mut self, message: String) {
        self.push(Severity::Warning, message);
    }
    fn repaired(&mut self, message: String) {
        self.push(Severity::Repaired, message);
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// Inconsistencies left (after repairs).
    pub fn problems(&self) -> usize {
        self.count(Severity::Problem)
    }

    /// One line per finding, then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let label = match f.severity {
                Severity::Problem => "problem",
                Severity::Warning => "warning",
                Severity::Repaired => "repaired",
            };
            out.push_str(&format!("{label}: {}\n", f.message));
        }
        let verdict = if self.problems() == 0 {
            "consistent".to_owned()
        } else {
            format!("{} problem(s)", self.problems())
        };
        out.push_str(&format!(
            "fsck: {} missions, {} versions, {} blobs checked: {verdict}, {} warning(s), {} repaired\n",
            self.missions,
            self.versions,
            self.blobs,
            self.count(Severity::Warning),
            self.count(Severity::Repaired),
        ));
        out
    }
}

/// Checks the data folder (see the module docs); with `repair`, fixes what may be fixed.
/// `live` is the running node when fsck runs inside it: its index writer then owns the
/// snapshot, and transient states of a publish in progress are looked at twice.
pub fn check(
    data: &DataDir,
    store: &Store,
    live: Option<&AppState>,
    repair: bool,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    check_index_locks(data, live.is_some(), repair, &mut report)?;
    let repo = IndexRepo::open(data.index_dir())
        .with_context(|| format!("opening the index {}", data.index_dir().display()))?;
    let blobs = BlobStore::open(&data.blobs_dir()).context("opening the blob store")?;
    let node_key_file = data.keys_dir().join("node.pub");
    let node_key = PublicKey::from_file(&node_key_file)
        .with_context(|| format!("reading the node key {}", node_key_file.display()))?;

    let mut referenced = HashSet::new();
    // collision key -> name as published, for every name with readable entries
    let mut in_index: BTreeMap<String, String> = BTreeMap::new();
    // names whose owners record is missing (checked once per name)
    let mut unowned: BTreeSet<String> = BTreeSet::new();

    let names = repo.list_names().context("listing the index")?;
    report.missions = names.len();
    for name in &names {
        check_file(
            &repo,
            &blobs,
            store,
            name,
            &mut report,
            &mut referenced,
            &mut in_index,
            &mut unowned,
        )?;
    }

    // A publish in progress inside a live node commits, then records the owner: look again.
    if live.is_some() && !unowned.is_empty() {
        std::thread::sleep(Duration::from_millis(500));
    }
    for name in &unowned {
        let key = collision_key(name);
        if live.is_none() || store.owners(&key)?.is_none() {
            report.problem(format!(
                "`{name}`: the index has versions but the store has no owners record for it (collision key `{key}`); the owner cannot be derived from the index: `mission-node admin owner add {name} USER` records one"
            ));
        }
    }

    for (key, owners) in store.all_owners().context("reading the owners records")? {
        if !in_index.contains_key(&key) {
            report.problem(format!(
                "owners record `{key}` (`{}`, owners: {}) has no versions in the index",
                owners.name,
                join(&owners.users)
            ));
            continue;
        }
        if collision_key(&owners.name) != key {
            report.problem(format!(
                "owners record `{key}` names `{}`, whose collision key is `{}`",
                owners.name,
                collision_key(&owners.name)
            ));
        }
        if owners.users.is_empty() {
            report.problem(format!(
                "`{}` has an owners record with no users",
                owners.name
            ));
        }
        for user in &owners.users {
            if !store.user_exists(user)? {
                report.problem(format!(
                    "`{}` is owned by `{user}`, who is not a user of this node",
                    owners.name
                ));
            }
        }
    }

    check_snapshot_and_repair(data, &repo, &node_key, live, repair, &mut report)?;
    check_leftovers(data, &blobs, &referenced, repair, &mut report)?;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn check_file(
    repo: &IndexRepo,
    blobs: &BlobStore,
    store: &Store,
    name: &str,
    report: &mut Report,
    referenced: &mut HashSet<String>,
    in_index: &mut BTreeMap<String, String>,
    unowned: &mut BTreeSet<String>,
) -> anyhow::Result<()> {
    let file = layout::entry_path(name).unwrap_or_else(|_| name.to_owned());
    let Some(raw) = repo
        .read_file_raw(name)
        .with_context(|| format!("reading the index file {file}"))?
    else {
        return Ok(());
    };
    let Ok(text) = String::from_utf8(raw) else {
        report.problem(format!("index file {file}: not UTF-8"));
        return Ok(());
    };
    let mut versions: Vec<semver::Version> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry = match IndexEntry::parse_line(line, i + 1) {
            Ok(Some(entry)) => entry,
            // A newer schema: this software cannot judge it.
            Ok(None) => continue,
            Err(e) => {
                report.problem(format!("index file {file}: {e}"));
                continue;
            }
        };
        report.versions += 1;
        let what = format!(
            "{}@{} (index file {file} line {})",
            entry.name,
            entry.vers,
            i + 1
        );
        if entry.name.to_lowercase() != name {
            report.problem(format!(
                "{what}: the line names another mission than its file"
            ));
        }
        if let Ok(v) = entry.version() {
            if versions.iter().any(|o| o.cmp_precedence(&v).is_eq()) {
                report.problem(format!("{what}: this version appears twice"));
            }
            versions.push(v);
        }
        let key = collision_key(&entry.name);
        match in_index.get(&key) {
            Some(first) if first != &entry.name => report.problem(format!(
                "{what}: `{}` and `{first}` are the same name (collision key `{key}`)",
                entry.name
            )),
            Some(_) => {}
            None => {
                in_index.insert(key.clone(), entry.name.clone());
                match store.owners(&key)? {
                    None => {
                        unowned.insert(entry.name.clone());
                    }
                    Some(owners) if owners.name != entry.name => report.problem(format!(
                        "{what}: the owners record `{key}` is for `{}`",
                        owners.name
                    )),
                    Some(_) => {}
                }
            }
        }
        referenced.insert(entry.cksum.clone());
        check_archive(blobs, &entry, &what, report);
    }
    Ok(())
}

/// The entry's blob: present, intact, signed as the entry says, and holding that mission.
fn check_archive(blobs: &BlobStore, entry: &IndexEntry, what: &str, report: &mut Report) {
    let cksum = &entry.cksum;
    let bytes = match blobs.get(cksum) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            let at = blobs
                .path(cksum)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            report.problem(format!(
                "{what}: its archive blob {cksum} is missing ({at})"
            ));
            return;
        }
        Err(BlobError::Corrupt { actual, .. }) => {
            report.problem(format!(
                "{what}: its archive blob {cksum} was altered: the file now hashes to {actual}"
            ));
            return;
        }
        Err(e) => {
            report.problem(format!("{what}: {e}"));
            return;
        }
    };
    match PublicKey::parse(&entry.key) {
        Ok(key) => {
            if let Err(e) =
                signing::verify_archive(&key, &entry.sig, &bytes, &entry.name, &entry.vers)
            {
                report.problem(format!(
                    "{what}: the signature does not verify with the entry's key: {e}"
                ));
            }
        }
        Err(e) => report.problem(format!(
            "{what}: the entry's key is not a minisign public key: {e}"
        )),
    }
    let limits = ArchiveLimits {
        max_compressed_bytes: (bytes.len() as u64)
            .max(ArchiveLimits::default().max_compressed_bytes),
        ..ArchiveLimits::default()
    };
    let manifest = match archive::read_archive_file(&bytes, MANIFEST_FILE, &limits) {
        Ok(Some(m)) => m,
        Ok(None) => {
            report.problem(format!("{what}: the archive has no {MANIFEST_FILE}"));
            return;
        }
        Err(e) => {
            report.problem(format!("{what}: the archive cannot be read: {e}"));
            return;
        }
    };
    let text = String::from_utf8_lossy(&manifest);
    match package::check_mission_text(Path::new(MANIFEST_FILE), &text) {
        Ok(source) => match source.manifest {
            Some(m) => {
                if m.name.as_str() != entry.name || m.version.to_string() != entry.vers {
                    report.problem(format!(
                        "{what}: the archive's {MANIFEST_FILE} declares {}@{}",
                        m.name.as_str(),
                        m.version
                    ));
                }
            }
            None => report.problem(format!(
                "{what}: the archive's {MANIFEST_FILE} has no package block"
            )),
        },
        Err(e) => report.problem(format!(
            "{what}: the archive's {MANIFEST_FILE} is invalid: {e}"
        )),
    }
}

/// Why the snapshot on disk does not vouch for `head`, if it does not.
fn snapshot_problem(data: &DataDir, node_key: &PublicKey, head: &str) -> Option<String> {
    let json_file = data.snapshot_file();
    let (json, sig) = match (
        std::fs::read_to_string(&json_file),
        std::fs::read_to_string(data.snapshot_sig_file()),
    ) {
        (Ok(j), Ok(s)) => (j, s),
        (Err(e), _) => return Some(format!("snapshot {}: {e}", json_file.display())),
        (_, Err(e)) => {
            return Some(format!(
                "snapshot {}: {e}",
                data.snapshot_sig_file().display()
            ))
        }
    };
    match snapshot::verify_snapshot(&json, &sig, node_key, None, Utc::now()) {
        Err(e) => Some(format!("snapshot {}: {e}", json_file.display())),
        Ok(snap) if snap.head != head => Some(format!(
            "snapshot {} (seq {}) vouches for index head {}, but the head is {head}",
            json_file.display(),
            snap.seq,
            snap.head
        )),
        Ok(_) => None,
    }
}

fn head_of(repo: &IndexRepo) -> anyhow::Result<String> {
    Ok(repo
        .head()
        .context("reading the index head")?
        .map(|c| c.to_string())
        .unwrap_or_default())
}

fn check_snapshot_and_repair(
    data: &DataDir,
    repo: &IndexRepo,
    node_key: &PublicKey,
    live: Option<&AppState>,
    repair: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut problem = snapshot_problem(data, node_key, &head_of(repo)?);
    if problem.is_some() && live.is_some() {
        // The writer signs right after each commit: give a publish in flight its moment.
        std::thread::sleep(Duration::from_millis(500));
        problem = snapshot_problem(data, node_key, &head_of(repo)?);
    }
    let Some(problem) = problem else {
        return Ok(());
    };
    if !repair {
        report.problem(format!("{problem} (--repair re-signs it)"));
        return Ok(());
    }
    let signed = match live {
        Some(state) => resign_live(state),
        None => sign_snapshot_offline(data, repo),
    };
    if let Err(e) = signed {
        report.problem(format!("{problem}; re-signing failed: {e:#}"));
        return Ok(());
    }
    match snapshot_problem(data, node_key, &head_of(repo)?) {
        None => report.repaired(format!("{problem}; re-signed for the current head")),
        Some(still) => report.problem(format!("{still} (even after re-signing)")),
    }
    Ok(())
}

/// Inside the node, the index writer owns the snapshot: have it re-sign when its own copy
/// is stale, then put its current snapshot on disk.
fn resign_live(state: &AppState) -> anyhow::Result<()> {
    let handle = tokio::runtime::Handle::try_current()
        .context("re-signing the snapshot needs the node's runtime")?;
    handle
        .block_on(state.writer.refresh_snapshot())
        .context("asking the index writer to re-sign the snapshot")?;
    let current = state
        .writer
        .snapshot()
        .context("the index writer has no snapshot")?;
    atomic_file::write_synced(&state.data.snapshot_file(), current.json.as_bytes())?;
    atomic_file::write_synced(&state.data.snapshot_sig_file(), current.sig.as_bytes())?;
    Ok(())
}

/// Signs a snapshot of the current head with the node key, as the index writer does; `seq`
/// is time-based and above the one on disk, so it never goes back.
fn sign_snapshot_offline(data: &DataDir, repo: &IndexRepo) -> anyhow::Result<()> {
    let config = NodeConfig::load(&data.config_file())?;
    let public = PublicKey::from_file(&data.keys_dir().join("node.pub"))
        .context("reading the node's public key")?;
    let secret =
        SecretKey::load(&data.keys_dir().join("node.key"), None).context("reading the node key")?;
    let head = head_of(repo)?;
    let last = std::fs::read_to_string(data.snapshot_file())
        .ok()
        .and_then(|json| serde_json::from_str::<Snapshot>(&json).ok())
        .map(|s| s.seq)
        .unwrap_or(0);
    let now = Utc::now();
    let seq = (now.timestamp_millis().max(0) as u64).max(last + 1);
    let validity = chrono::Duration::hours(config.snapshot.validity_hours as i64);
    let snap = Snapshot::new(&config.name, &public, seq, &head, now, validity);
    let (json, sig) =
        snapshot::sign_snapshot(&snap, &secret, &public).context("signing the snapshot")?;
    atomic_file::write_synced(&data.snapshot_file(), json.as_bytes())?;
    atomic_file::write_synced(&data.snapshot_sig_file(), sig.as_bytes())?;
    tracing::info!(%head, seq, "re-signed the index snapshot");
    Ok(())
}

/// Orphan blobs and temporary files: reported, and with `repair` removed when old enough.
fn check_leftovers(
    data: &DataDir,
    blobs: &BlobStore,
    referenced: &HashSet<String>,
    repair: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let stored = blobs.list().context("listing the blobs")?;
    report.blobs = stored.len();
    for cksum in stored {
        if referenced.contains(&cksum) {
            continue;
        }
        let path = match blobs.path(&cksum) {
            Ok(p) => p,
            Err(_) => {
                report.warning(format!(
                    "blobs/sha256/{}/{}: not a blob name (64 hex digits); left alone",
                    cksum.get(..2).unwrap_or_default(),
                    cksum.get(2..).unwrap_or_default()
                ));
                continue;
            }
        };
        leftover(
            &path,
            &format!("orphan blob {cksum}: stored but in no index entry (a publish interrupted before its commit leaves one)"),
            repair,
            report,
        );
    }
    for path in temp_files(data)? {
        leftover(
            &path,
            &format!(
                "leftover temporary file {} (an interrupted write)",
                path.display()
            ),
            repair,
            report,
        );
    }
    Ok(())
}

fn leftover(path: &Path, what: &str, repair: bool, report: &mut Report) {
    let age = age_of(path);
    if repair && age >= LEFTOVER_MIN_AGE {
        match std::fs::remove_file(path) {
            Ok(()) => report.repaired(format!("{what}; removed")),
            Err(e) => report.warning(format!("{what}; removing it failed: {e}")),
        }
    } else if repair {
        report.warning(format!(
            "{what}; kept, it is {}s old and may belong to a write in progress",
            age.as_secs()
        ));
    } else {
        report.warning(what.to_owned());
    }
}

/// Temporary files a crash can leave: `blobs/tmp/*` (blob writes) and `DATA/.tmp*`
/// (snapshot writes).
fn temp_files(data: &DataDir) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let tmp = data.blobs_dir().join("tmp");
    if let Ok(dir) = std::fs::read_dir(&tmp) {
        for entry in dir {
            let entry = entry.with_context(|| format!("listing {}", tmp.display()))?;
            if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                out.push(entry.path());
            }
        }
    }
    let root = std::fs::read_dir(&data.root)
        .with_context(|| format!("listing {}", data.root.display()))?;
    for entry in root {
        let entry = entry.with_context(|| format!("listing {}", data.root.display()))?;
        let is_tmp = entry.file_name().to_string_lossy().starts_with(".tmp");
        if is_tmp && entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Git lock files in the index repository (`refs/heads/main.lock`, `HEAD.lock`, ...). A
/// writer killed during a commit leaves one, and then every later commit fails to move the
/// branch: the node could not even start (it commits `config.json` on start).
fn index_lock_files(data: &DataDir) -> anyhow::Result<Vec<PathBuf>> {
    let root = data.index_dir();
    let mut out = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .with_context(|| format!("reading {}", path.display()))?;
            // Only the top level and refs/ hold locks; objects/ is large and holds none.
            if kind.is_dir() && (dir != root || entry.file_name() == "refs") {
                pending.push(path);
            } else if kind.is_file() && entry.file_name().to_string_lossy().ends_with(".lock") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn check_index_locks(
    data: &DataDir,
    live: bool,
    repair: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    for path in index_lock_files(data)? {
        let age = age_of(&path);
        // Inside a live node a young lock is a commit in progress.
        if live && age < LEFTOVER_MIN_AGE {
            continue;
        }
        let what = format!(
            "stale git lock file {} (a commit was interrupted; it blocks every later commit)",
            path.display()
        );
        if repair {
            match std::fs::remove_file(&path) {
                Ok(()) => report.repaired(format!("{what}; removed")),
                Err(e) => report.problem(format!("{what}; removing it failed: {e}")),
            }
        } else {
            report.problem(format!("{what} (--repair removes it)"));
        }
    }
    Ok(())
}

fn age_of(path: &Path) -> Duration {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

fn join(users: &BTreeSet<String>) -> String {
    users.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// The repairs `serve` makes before it opens, after a crash: the stale admin socket, git
/// lock files and temporary files of interrupted writes, and a snapshot that does not vouch for the index
/// head (a crash between a commit and its snapshot). Call it once the store is open: redb's
/// lock proves that no other node uses the folder, so every temporary file is a leftover.
pub fn repair_on_start(data: &DataDir) -> anyhow::Result<()> {
    crate::admin::clear_stale_socket(&data.socket_path())?;
    for path in index_lock_files(data)?.into_iter().chain(temp_files(data)?) {
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(path = %path.display(), "removed a leftover of a crash"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("removing the leftover {}", path.display()))
            }
        }
    }
    if !data.index_dir().exists() {
        return Ok(());
    }
    let repo = IndexRepo::open(data.index_dir()).context("opening the index")?;
    let node_key = PublicKey::from_file(&data.keys_dir().join("node.pub"))
        .context("reading the node's public key")?;
    if let Some(problem) = snapshot_problem(data, &node_key, &head_of(&repo)?) {
        tracing::info!(%problem, "re-signing the index snapshot");
        sign_snapshot_offline(data, &repo)?;
    }
    Ok(())
}
