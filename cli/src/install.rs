//! The install engine behind `mission install`, `update` and `remove`, in cargo's habits.
//!
//! An install:
//!
//! 1. reads the project's `missions.lock`: the nearest one from the current folder up (see
//!    [`lockfile_path`]), else the current folder is a new project;
//! 2. unless offline, fetches the node's `config.json` (the index files of the first
//!    requested names, with the node's prefetch hint, come meanwhile), then its signed
//!    snapshot, which it verifies with the node key pinned in the trust store (pinned
//!    from `config.json` on first contact unless `config.toml` names it): signed by that
//!    key, `seq` not below the last one seen (stored), not expired. The snapshot is
//!    checked beside the index requests of step 3, but nothing the node serves reaches the
//!    cache, and no archive is downloaded, before it verified;
//! 3. resolves the requested missions over the sparse index (only the index files the
//!    resolution reaches, or the node hints it will, are fetched, each cached with its
//!    ETag), preferring the lock. The index files are fetched before resolving, a few
//!    requests at a time (see [`crate::index_walk`]): the requested names (and the locked
//!    ones), every file the node's hint names, and the dependencies of the versions
//!    likely to be chosen as their files arrive; the resolver then reads them from memory,
//!    while the last archives arrive. The archive of each likely version is downloaded as
//!    soon as its file is read, so downloads overlap the index requests: once its
//!    checksum matches it is unpacked into the staging folder of step 5, and the
//!    signatures of a dozen such archives are verified at once (a batch costs about half
//!    as much per signature); only an archive whose signature holds is cached or used;
//! 4. downloads the archives not already in `MISSION_HOME/cache/archives/<cksum>.mission`
//!    (a few at a time, from the URL `config.json`'s `dl` template gives, see
//!    [`crate::download`]), and verifies every archive before it is cached or put in
//!    place: its SHA-256 is the index checksum, its signature is valid for the index
//!    entry's key, name and version, and that key is the one pinned for the name (trust
//!    store and lockfile). (An archive fetched ahead may be unpacked into the private
//!    staging folder of step 5 before its signature is checked; it leaves that folder only
//!    once it is.) On a terminal a progress bar shows the downloads; otherwise nothing
//!    is printed for them;
//! 5. unpacks each into a staging folder inside the install folder (`missions/`, or the
//!    `--dir` the lock records), then swaps them into `INSTALL_DIR/NAME/`, removes the
//!    missions no longer needed, and renames the new
//!    `missions.lock` into place (written and synced beside it while the archives
//!    downloaded). If anything fails, the earlier install and lockfile are left as they
//!    were; if the process is killed, the next command puts them back (see
//!    [`crate::staging`]).
//!
//! **Taking turns.** An install holds the project lock, then the home lock, from before it
//! reads `missions.lock` to the end (see [`crate::locks`]); a second command waits.
//!
//! **Registries.** The lock records each mission's registry by its index URL
//! ([`Registry::index_url`]), so it reads the same for every user; a name an older lock
//! recorded is read as the URL it is configured for here ([`with_index_urls`]).
//!
//! **Roots.** The lock records which missions the user asked for (its `roots`); resolution
//! starts from them (and from the names given; a bare name keeps the requirement the lock
//! has for it, see [`given_roots`]), so a dependency that no chosen version
//! needs any more drops out of the lock and out of `missions/` (`mission update` after a
//! new version dropped it, for one). `mission remove NAME` removes NAME and every
//! dependency no remaining root needs.
//!
//! **`--locked` with a complete cache makes no request.** When `--locked` is given and the
//! lockfile, the cached index files and the cached archives are enough to reproduce the
//! lock exactly, the install runs from the cache alone, without fetching the snapshot: the
//! lock pins every checksum and key, and every archive is still verified against them, so
//! skipping the freshness check can only miss news (such as a yank), never install other
//! bytes. A note on stderr says so. Otherwise `--locked` goes to the node as usual.
//!
//! **`--offline`** makes no request at all, and fails naming what is missing from the cache.
//!
use std::collections::VecDeque;
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mission_index::archive::{self, ArchiveLimits};
use mission_index::archive_signature::{self, ArchiveSignature};
use mission_index::entry::IndexEntry;
use mission_index::layout;
use mission_index::lockfile::{self, LockedMission, Lockfile, PreparedLockfile, LOCKFILE_NAME};
use mission_index::name::collision_key;
use mission_index::repo::IndexConfig;
use mission_index::resolve::{self, Requirement, ResolveError};
use mission_index::signing::{self, PublicKey};
use mission_index::snapshot;
use semver::VersionReq;

use crate::certification_policy;
use crate::download::DownloadTemplate;
use crate::home;
use crate::index_walk;
use crate::locks;
use crate::registry::{self, Registry};
use crate::request_gate::Lane;
use crate::sparse_client::{self, SparseError, SparseIndex};
use crate::staging::{self, Journal, Staging, FOLDER_MARKER};
use crate::trust::{self, TrustStore};
use mission_index::atomic_file;

/// How many archives are downloaded at once.
const PARALLEL_DOWNLOADS: usize = sparse_client::PARALLEL_REQUESTS;

/// The most bytes an archive download may have.
const MAX_ARCHIVE_BYTES: u64 = 64 * 1024 * 1024;

/// What to do.
#[derive(Clone)]
pub enum Request {
    /// Install these `NAME[@REQ]`s (with what the lock holds); none: what the lock lists.
    Install(Vec<String>),
    /// Resolve these names again ignoring their lock (all when empty).
    Update(Vec<String>),
}

/// The options every installing command shares.
pub struct Options {
    pub registry: Option<String>,
    pub dir: Option<PathBuf>,
    pub locked: bool,
    pub offline: bool,
}

/// One mission put in place.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Installed {
    pub name: String,
    pub version: String,
    /// The version the lock had before, when it had this mission.
    pub previous: Option<String>,
    /// Its folder did not exist before this install (so a mission the lock already had at
    /// this version was re-created, not left as it was).
    pub folder_was_missing: bool,
    pub cksum: String,
    pub key: String,
    pub path: PathBuf,
}

/// What an install did.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub installed: Vec<Installed>,
    /// The missions taken away (no root needs them any more), by name...
    pub removed: Vec<String>,
    /// ... and the version each had, in the same order.
    pub removed_versions: Vec<String>,
    pub lockfile: PathBuf,
    /// How what the user asks for changed against the lock, one phrase each
    /// (`Now asking for base@^2 (was base@>=1, <1.1)`).
    pub roots_changed: Vec<String>,
    /// Whether the node was contacted.
    pub network: bool,
}

/// The project's `missions.lock`: in the nearest folder, from the current one up to the
/// file-system root, that has one (as cargo finds Cargo.toml), else in the current folder
/// (a new project). When it is not the current folder, a note says once which project is
/// used.
///
/// The search does not go into a folder whose owner is not the current folder's (on Unix,
/// compared by user id): a `missions.lock` another user left in `/tmp` or `/home` does not
/// make their project yours. A note says so when such a folder has one.
pub fn lockfile_path() -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let (project, skipped) = find_project(&cwd);
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        if let Some(skipped) = &skipped {
            note(&format!(
                "not using {}: that folder belongs to another user; {} is a project of its own",
                skipped.join(LOCKFILE_NAME).display(),
                cwd.display()
            ));
        }
        if project != cwd {
            note(&format!(
                "using the project at {} ({LOCKFILE_NAME})",
                project.display()
            ));
        }
    });
    Ok(project.join(LOCKFILE_NAME))
}

/// The folder of the nearest `missions.lock` from `start` up (`start` when there is none),
/// and the folder of one passed over because another user owns it (see [`lockfile_path`]).
fn find_project(start: &Path) -> (PathBuf, Option<PathBuf>) {
    let owner = folder_owner(start);
    for dir in start.ancestors() {
        let has_lock = std::fs::symlink_metadata(dir.join(LOCKFILE_NAME)).is_ok();
        if folder_owner(dir) != owner {
            return (start.to_owned(), has_lock.then(|| dir.to_owned()));
        }
        if has_lock {
            return (dir.to_owned(), None);
        }
    }
    (start.to_owned(), None)
}

/// Who owns `dir` (`None` when that cannot be read, or off Unix, where it is not checked).
fn folder_owner(dir: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir).ok().map(|m| m.uid())
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// The install folder, absolute, and as the lockfile records it (relative to the
/// lockfile's folder `project`): `--dir` (`arg`), else the lock's `dir`, else `missions`.
///
/// `--dir` must be inside `project` (so the lock can record it) and may not differ from
/// the folder a non-empty lock already installs into. Whichever it is, no part of it may be
/// a symbolic link (which could lead out of the project) or something else than a folder,
/// and a folder only the lock names must be the installer's own ([`FOLDER_MARKER`]).
fn install_dir(
    arg: Option<&Path>,
    lock: Option<&Lockfile>,
    project: &Path,
) -> Result<(PathBuf, String)> {
    let recorded = lock
        .and_then(Lockfile::dir)
        .unwrap_or(lockfile::DEFAULT_DIR)
        .to_owned();
    let relative = match arg {
        None => recorded.clone(),
        Some(arg) => {
            let outside = || {
                anyhow!(
                    "--dir {}: the install folder must be a folder inside {} (the folder of missions.lock), so that missions.lock can record where its missions are",
                    arg.display(),
                    project.display()
                )
            };
            let absolute =
                std::path::absolute(arg).with_context(|| format!("locating {}", arg.display()))?;
            let inside = absolute.strip_prefix(project).map_err(|_| outside())?;
            let mut parts = Vec::new();
            for part in inside.components() {
                match part {
                    std::path::Component::CurDir => {}
                    std::path::Component::Normal(p) => {
                        parts.push(p.to_str().ok_or_else(outside)?.to_owned())
                    }
                    _ => return Err(outside()),
                }
            }
            let relative = parts.join("/");
            if relative != lockfile::DEFAULT_DIR {
                if let Some(why) = lockfile::dir_problem(&relative) {
                    bail!("--dir {}: `{relative}` {why}", arg.display());
                }
            }
            if let Some(lock) = lock.filter(|l| !l.is_empty()) {
                if relative != recorded {
                    bail!(
                        "--dir {}: missions.lock installs its missions into `{recorded}`; run without --dir (or with --dir {recorded}), or `mission remove` them first to start over elsewhere ({} locked)",
                        arg.display(),
                        lock.len()
                    );
                }
            }
            relative
        }
    };
    // Each part must be a real folder (or not exist yet): never a link out of the project.
    let mut at = project.to_owned();
    for part in relative.split('/') {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => bail!(
                "the install folder {} is a symbolic link; refusing to use it (it could lead out of {})",
                at.display(),
                project.display()
            ),
            Ok(meta) if !meta.is_dir() => {
                bail!("the install folder {} is not a folder", at.display())
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let dir = project.join(&relative);
    let named_by_lock_only = arg.is_none() && relative != lockfile::DEFAULT_DIR;
    let used_before = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some());
    if named_by_lock_only && used_before && !dir.join(FOLDER_MARKER).is_file() {
        bail!(
            "missions.lock installs into `{relative}`, but {} was not made by mission install (it has no {FOLDER_MARKER} file) and is not empty; refusing to replace what is in it. Remove the `dir` line from missions.lock to install into missions/, or, only if that folder is meant to hold missions, run once with --dir {relative}",
            dir.display()
        );
    }
    Ok((dir, relative))
}

/// Marks `dir` as an install folder this client uses (see [`FOLDER_MARKER`]); `missions`,
/// the default, needs no mark.
fn mark_install_dir(dir: &Path) -> Result<()> {
    let marker = dir.join(FOLDER_MARKER);
    if marker.is_file() {
        return Ok(());
    }
    std::fs::write(
        &marker,
        "This folder holds missions installed by `mission install`; see missions.lock.\n",
    )
    .with_context(|| format!("writing {}", marker.display()))
}

pub fn load_lock(path: &Path) -> Result<Option<Lockfile>> {
    // The error names the file already.
    Lockfile::load(path).context("fix missions.lock, or delete it to resolve every version anew")
}

/// The registry to use: `--registry`; else, in a project whose lock names one registry,
/// that one (a URL, or in an older lock a configured name: see [`with_index_urls`]), as
/// cargo keeps the sources Cargo.lock names; else the configured default. In the second
/// case, also the lock's words for it (for messages).
///
/// A project stays with its registry whatever each user's default is: a teammate whose
/// default is another node (the public one, say) installs the project from the node its
/// lock names, not a same-named mission from elsewhere. Passing `--registry` moves it.
pub fn pick_registry(
    arg: Option<&str>,
    lock: Option<&Lockfile>,
) -> Result<(Registry, Option<String>)> {
    if arg.is_some() {
        return registry::resolve(arg).map(|r| (r, None));
    }
    // A default named wrongly is said, whatever the lock names: a broken config is not
    // passed over.
    let default = if registry::default_is_named() {
        Some(registry::resolve(None)?)
    } else {
        None
    };
    if let Some(recorded) = lock.and_then(single_registry) {
        match registry::resolve(Some(&recorded)) {
            Ok(r) => {
                if let Some(default) = default.filter(|d| d.index_url() != r.index_url()) {
                    // Once: an install may run again (a publish between two requests).
                    note_once(&format!(
                        "installing from {} (the registry missions.lock names), not from the default {}; pass --registry to move this project",
                        r.index_url(),
                        default.display()
                    ));
                }
                return Ok((r, Some(recorded)));
            }
            // An alias an older lock recorded, configured nowhere here: the default is
            // the best guess (and `--locked` says what would change).
            Err(_) if default.is_some() => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("the registry `{recorded}` that missions.lock names"))
            }
        }
    }
    match default {
        Some(default) => Ok((default, None)),
        None => registry::resolve(None).map(|r| (r, None)),
    }
}

/// The one registry every mission of `lock` names, if they all name the same.
fn single_registry(lock: &Lockfile) -> Option<String> {
    let mut names = lock.missions().map(|m| m.registry.as_str());
    let first = names.next()?;
    names.all(|n| n == first).then(|| first.to_owned())
}

/// `lock` with each mission's registry as its index URL ([`Registry::index_url`]), so
/// that two spellings of one registry compare equal: a URL is spelled the one way, and a
/// configured name (which locks written before recorded) is replaced by the URL it stands
/// for here. A name configured nowhere here stays as it is. The file is not changed: the
/// next install that writes it writes the URLs.
fn with_index_urls(mut lock: Lockfile) -> Lockfile {
    let mut urls: BTreeMap<String, Option<String>> = BTreeMap::new();
    let missions: Vec<LockedMission> = lock.missions().cloned().collect();
    for mut m in missions {
        let url = urls
            .entry(m.registry.clone())
            .or_insert_with(|| {
                registry::resolve(Some(&m.registry))
                    .ok()
                    .map(|r| r.index_url())
            })
            .clone();
        if let Some(url) = url.filter(|url| *url != m.registry) {
            m.registry = url;
            lock.insert(m);
        }
    }
    lock
}

/// The requirement that keeps a locked mission: any version (the lock's is preferred), or
/// exactly it for a prerelease (which `*` never matches).
fn keep_req(version: &semver::Version) -> VersionReq {
    if version.pre.is_empty() {
        VersionReq::STAR
    } else {
        VersionReq::parse(&format!("={version}")).unwrap_or(VersionReq::STAR)
    }
}

/// What the user asked for: each root's name, with the requirement they gave if any (kept
/// in the lock, so that `update` stays within it).
type Asked = Vec<(String, Option<VersionReq>)>;

/// The missions named on the command line (`NAME[@REQ]`), one per name (compared by
/// [`collision_key`]) in the order first given, each with the requirement given for it
/// (`None`: a bare name). A name given twice keeps the requirements of both (a bare name
/// adds none); two that no version can meet together are refused.
fn given_roots(args: &[String]) -> Result<Vec<(String, Option<VersionReq>)>> {
    let mut given: Vec<(String, Option<VersionReq>)> = Vec::new();
    for arg in args {
        let req = Requirement::parse(arg).with_context(|| {
            "give missions as NAME or NAME@REQ, such as `fix_build@^1.2`".to_string()
        })?;
        let explicit = arg.contains('@').then_some(req.req);
        let key = collision_key(&req.name);
        let Some((_, had)) = given.iter_mut().find(|(n, _)| collision_key(n) == key) else {
            given.push((req.name, explicit));
            continue;
        };
        *had = match (had.take(), explicit) {
            (None, req) | (req, None) => req,
            (Some(first), Some(second)) if first == second => Some(first),
            (Some(first), Some(second)) => {
                let mut both = first.clone();
                for c in &second.comparators {
                    if !both.comparators.contains(c) {
                        both.comparators.push(c.clone());
                    }
                }
                if !resolve::can_be_met(&both) {
                    bail!(
                        "`{}` is given twice with requirements no version meets together: `{first}` and `{second}`; give one of them",
                        req.name
                    );
                }
                Some(both)
            }
        };
    }
    Ok(given)
}

/// The roots to resolve, the lock to resolve with, and what the user asked for.
fn plan_roots(
    request: &Request,
    lock: Option<&Lockfile>,
) -> Result<(Vec<Requirement>, Option<Lockfile>, Asked)> {
    let mut roots = Vec::new();
    let mut asked = Asked::new();
    let mut resolve_lock = lock.cloned();
    // A locked root: the requirement it was asked with, else `keep` (any version).
    let locked_root = |m: &LockedMission, lock: &Lockfile, keep: VersionReq| {
        let asked_with = lock.root_requirement(&m.name).cloned();
        let req = asked_with.clone().unwrap_or(keep);
        (
            Requirement::new(m.name.clone(), req),
            (m.name.clone(), asked_with),
        )
    };
    match request {
        Request::Install(args) => {
            let mut given = BTreeSet::new();
            for (name, explicit) in given_roots(args)? {
                given.insert(collision_key(&name));
                let asked_with = match explicit {
                    // `NAME@*` asks for any version: no requirement to keep.
                    Some(req) => Some(req).filter(|r| !r.comparators.is_empty()),
                    // A bare name keeps the requirement it was asked with before.
                    None => {
                        let kept = lock.and_then(|l| l.root_requirement(&name)).cloned();
                        if let Some(req) = &kept {
                            note_once(&format!(
                                "keeping the requirement `{req}` missions.lock has for `{name}`; give `{name}@*` to drop it"
                            ));
                        }
                        kept
                    }
                };
                let req = asked_with.clone().unwrap_or(VersionReq::STAR);
                roots.push(Requirement::new(name.clone(), req));
                asked.push((name, asked_with));
            }
            if let Some(lock) = lock {
                for m in lock.roots() {
                    if !given.contains(&collision_key(&m.name)) {
                        let (req, root) = locked_root(m, lock, keep_req(&m.version));
                        roots.push(req);
                        asked.push(root);
                    }
                }
            }
            if roots.is_empty() {
                bail!("nothing to install: name missions (`mission install NAME[@REQ]`), or run it where a missions.lock lists them");
            }
        }
        Request::Update(names) => {
            let Some(lock) = lock else {
                bail!("there is no missions.lock here to update; install missions first with `mission install NAME`");
            };
            let mut unlocked = lock.clone();
            if names.is_empty() {
                unlocked = Lockfile::new();
            }
            for name in names {
                if lock.get(name).is_none() {
                    let listed: Vec<String> = lock.missions().map(|m| m.name.clone()).collect();
                    let close = closest(name, listed.iter().map(String::as_str));
                    if let Some(best) = close.first() {
                        bail!("`{name}` is not in missions.lock; did you mean `{best}`?");
                    }
                    bail!(
                        "`{name}` is not in missions.lock (it lists: {}); install it with `mission install {name}`",
                        if listed.is_empty() { "nothing".into() } else { listed.join(", ") }
                    );
                }
                unlocked.remove(name);
            }
            // Dependencies come back through the graph, so one no chosen version needs any
            // more is dropped.
            for m in lock.roots() {
                let keep = if unlocked.get(&m.name).is_some() {
                    keep_req(&m.version)
                } else {
                    VersionReq::STAR
                };
                let (req, root) = locked_root(m, lock, keep);
                roots.push(req);
                asked.push(root);
            }
            resolve_lock = Some(unlocked);
        }
    }
    Ok((roots, resolve_lock, asked))
}

/// The lock for `resolution`, with each root's requirement as the user asked for it and
/// the install folder `dir` (as the lockfile records it).
fn new_lockfile(
    resolution: &resolve::Resolution,
    registry: &Registry,
    asked: &Asked,
    dir: &str,
) -> Result<Lockfile> {
    let mut lock = Lockfile::from_resolution(resolution, &registry.index_url());
    for (name, req) in asked {
        lock.set_root(name, req.clone());
    }
    lock.set_dir(Some(dir))
        .map_err(|e| anyhow!("the install folder {e}"))?;
    Ok(lock)
}

/// How many times an install reads the index again when the node published between its
/// requests (so the snapshot names another head than the files read).
const SNAPSHOT_HEAD_RETRIES: usize = 2;

/// Runs an install or update (`request`): resolves, verifies and installs, or leaves
/// everything as it was.
///
/// The signed snapshot and the index files come from separate requests: a git fetch then
/// the snapshot, or sparse files (each signed for the head it was served at) beside it. A
/// publish landing in between makes them name different heads, which is refused (the
/// snapshot vouches only for its own head). That refusal is met again, fetching anew, up to
/// [`SNAPSHOT_HEAD_RETRIES`] times: a race goes away, an index that really differs (an old
/// file replayed) does not.
pub fn run(request: Request, opts: &Options) -> Result<Outcome> {
    let mut retries = 0;
    let mut fetched_again = false;
    loop {
        match run_once(request.clone(), opts) {
            // `--locked` with everything cached goes without the node; a cached archive
            // found corrupt (and removed) on the way is downloaded on the next try, as
            // the user did not ask for --offline.
            Err(e) if opts.locked && !opts.offline && !fetched_again => {
                let what = match (
                    e.downcast_ref::<CorruptCachedArchive>(),
                    e.downcast_ref::<ArchiveFailures>(),
                ) {
                    (Some(corrupt), _) => format!(
                        "the cached archive of `{}` {} ({}) was corrupt and is removed",
                        corrupt.name,
                        corrupt.version,
                        corrupt.path.display()
                    ),
                    (None, Some(failures)) if failures.corrupt_cache => {
                        "cached archives were corrupt and are removed".to_owned()
                    }
                    _ => return Err(e),
                };
                fetched_again = true;
                note(&format!("{what}; downloading again from the node"));
            }
            Err(e) if retries < SNAPSHOT_HEAD_RETRIES && is_snapshot_head_mismatch(&e) => {
                retries += 1;
                tracing::debug!(error = %format!("{e:#}"), "reading the index again");
                note("the index files and the node's signed snapshot name different index heads (the node may have just published); fetching them again");
            }
            result => return result,
        }
    }
}

fn is_snapshot_head_mismatch(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<SparseError>(),
            Some(SparseError::SnapshotHead { .. } | SparseError::FileHead { .. })
        )
    })
}

fn run_once(request: Request, opts: &Options) -> Result<Outcome> {
    let started = std::time::Instant::now();
    let phase = |what: &str| {
        tracing::debug!(ms = started.elapsed().as_secs_f64() * 1e3, "{what}");
    };
    let lock_path = lockfile_path()?;
    // Held to the end: this install has the project (lockfile and installed missions), then
    // the trust store and caches, to itself. The lockfile is read once the first is held.
    let Project {
        _held,
        lock: old_lock,
        dir,
        dir_record,
    } = take_project(&lock_path, opts.dir.as_deref())?;
    let old_lock = old_lock.map(with_index_urls);
    let (roots, resolve_lock, asked) = plan_roots(&request, old_lock.as_ref())?;
    let home = home::mission_home()?;
    let _home_lock = locks::lock_home(&home)?;
    let (registry, named_by_lock) = pick_registry(opts.registry.as_deref(), old_lock.as_ref())?;
    let index_cache = home.join("cache").join("index");
    let archive_cache = home.join("cache").join("archives");
    let mut trust = TrustStore::load()?;

    // --locked with everything cached: no request at all.
    let mut offline = opts.offline;
    if opts.locked && !offline {
        if let Some(old) = &old_lock {
            let cached = SparseIndex::new(registry.clone(), &index_cache, true);
            let complete = resolve::resolve(&cached, &roots, resolve_lock.as_ref())
                .ok()
                .and_then(|res| new_lockfile(&res, &registry, &asked, &dir_record).ok())
                .is_some_and(|lock| {
                    lock == *old
                        && lock
                            .missions()
                            .all(|m| archive_path(&archive_cache, &m.cksum).is_file())
                        // A [trust] minimum is checked from the cached certs files.
                        && certification_policy::cached(
                            &cached,
                            lock.missions().map(|m| m.name.as_str()),
                        )
                });
            if complete {
                offline = true;
                note("using the cached index and archives the lock pins (--locked, nothing to fetch); the node's snapshot was not checked");
            }
        }
    }

    let index = SparseIndex::new(registry.clone(), &index_cache, offline);
    if !offline {
        // Released once the node's snapshot verified; an install that fails before leaves
        // the cache as it was.
        index.hold_cache();
    }
    // Online: config.json first (the download URL template, the node key to pin); the
    // signed snapshot is then fetched and checked beside the index walk.
    let online = if offline {
        None
    } else {
        // The index files of the first PARALLEL_DOWNLOADS roots (with the node's prefetch
        // hint) are fetched while config.json is, each on its own connection, saving a
        // round trip: the index walk finds them in memory. A failure here is only a miss;
        // the walk fetches again and reports it.
        let (config, node_key) = std::thread::scope(|scope| {
            for root in roots.iter().take(PARALLEL_DOWNLOADS) {
                if let Ok(path) = layout::entry_path(&root.name) {
                    let index = &index;
                    scope.spawn(move || {
                        let _ = index.fetch_with_hint(&path);
                    });
                }
            }
            fetch_config(&index, &mut trust)
        })
        .map_err(|e| match &named_by_lock {
            // Nothing in this user's config named it: say where it came from.
            Some(r) => e.context(format!(
                "the registry `{r}` that missions.lock names (pass --registry to use another)"
            )),
            None => e,
        })?;
        Some((DownloadTemplate::new(&config, &registry)?, node_key))
    };

    // Archives are unpacked here before they move into `dir` (see put_in_place); dropped,
    // it leaves `dir` as it was.
    let staging = Staging::new(&dir)?;
    let progress = Progress::new(online.is_some());
    let mut ahead_done = BTreeMap::new();
    let resolved = match &online {
        None => resolve::resolve(&index, &roots, resolve_lock.as_ref()),
        Some((download, node_key)) => {
            let previous = trust.last_snapshot(&registry)?;
            let ahead = Ahead::new(
                &index,
                Some(download),
                &archive_cache,
                &staging.fresh,
                &progress,
            );
            let (snapshot, resolved, flushed) = std::thread::scope(|scope| {
                // Should this thread panic, the workers must not wait for work forever.
                let _cancel = CancelOnPanic(&ahead);
                // Archives are fetched only from a node whose snapshot verified: the
                // download workers start once it has (usually before the first index file
                // names an archive).
                let snapshot = scope.spawn(|| {
                    let checked = fetch_snapshot(&index, node_key, previous.as_ref());
                    if checked.is_ok() {
                        for _ in 0..PARALLEL_DOWNLOADS {
                            scope.spawn(|| ahead.work());
                        }
                    } else {
                        ahead.cancel();
                    }
                    checked
                });
                index_walk::prefetch_index(&index, &roots, resolve_lock.as_ref(), &|e| {
                    ahead.push(e)
                });
                phase("index files fetched");
                let snapshot = snapshot.join().unwrap_or_else(|panic| {
                    Err(anyhow!(
                        "the snapshot check failed: {}",
                        panic_text(panic.as_ref())
                    ))
                });
                // Every index file read must be the node's, for the head the snapshot
                // names: over sparse HTTP, nothing else binds a file to the snapshot.
                let snapshot = snapshot.and_then(|s| {
                    index.check_files(node_key, &s)?;
                    Ok(s)
                });
                if snapshot.is_err() {
                    // The cache stays held: nothing this node served is kept.
                    ahead.cancel();
                    return (snapshot, None, None);
                }
                ahead.close();
                index.release_cache();
                phase("snapshot checked");
                // The index files are written to the cache, and the resolution runs, while
                // the last archives arrive.
                let flush = scope.spawn(|| index.flush_cache());
                let resolved = resolve::resolve(&index, &roots, resolve_lock.as_ref());
                if resolved.is_err() {
                    // Nothing will be installed: no need to wait for the guessed archives.
                    ahead.cancel();
                }
                (snapshot, Some(resolved), Some(flush.join()))
            });
            let accepted = snapshot?;
            trust.set_snapshot(&registry, &accepted)?;
            trust.save()?;
            match flushed {
                Some(Ok(result)) => result.context("writing the index cache")?,
                Some(Err(_)) => bail!("writing the index cache: the writer thread failed"),
                None => {}
            }
            ahead_done = ahead.into_done();
            phase("archives downloaded and unpacked ahead");
            resolved.ok_or_else(|| anyhow!("internal: no resolution after the index walk"))?
        }
    };
    let resolution = resolved.map_err(|e| resolve_error(e, &index, offline))?;
    phase("resolved");
    // The resolver keeps a yanked version only because the lock pins it; say so, as cargo
    // does, so the user can move on.
    for pkg in resolution.packages.values().filter(|p| p.entry.yanked) {
        warning(&format!(
            "`{}` {} in missions.lock is yanked in the registry; run `mission update {}` to move to a version that is not yanked",
            pkg.entry.name, pkg.entry.vers, pkg.entry.name
        ));
    }
    let new_lock = new_lockfile(&resolution, &registry, &asked, &dir_record)?;

    if opts.locked {
        match &old_lock {
            None => bail!("--locked needs a missions.lock in {}, and there is none; run without --locked once to create it", cwd_display()),
            Some(old) if *old != new_lock => bail!(
                "--locked: missions.lock would change: {}; run without --locked to update it",
                lock_changes(old, &new_lock).join("; ")
            ),
            Some(_) => {}
        }
    }

    // Author keys: the one pinned for each name (trust store, else the lock) must sign, or
    // one rotation statements link to it: a successor (the pin then moves on), or a
    // predecessor (a version signed before the author rotated; the pin stays).
    let mut keep_pin: BTreeSet<String> = BTreeSet::new();
    for pkg in resolution.packages.values() {
        let entry = &pkg.entry;
        let pinned = trust
            .author_key(&entry.name)
            .map(str::to_owned)
            .or_else(|| {
                old_lock
                    .as_ref()
                    .and_then(|l| l.get(&entry.name))
                    .map(|m| m.key.clone())
            });
        if let Some(pinned) = pinned.filter(|pinned| *pinned != entry.key) {
            let relation = trust::key_relation(&index, &pinned, entry)?;
            if relation == trust::KeyRelation::Predecessor {
                keep_pin.insert(entry.name.clone());
            }
            if relation == trust::KeyRelation::Successor {
                note(&format!(
                    "the author of `{}` handed over from key {pinned} to {} (a rotation statement signed by the old key); the new key is now pinned",
                    entry.name, entry.key
                ));
            }
            if relation == trust::KeyRelation::Unrelated {
                bail!(
                    "author key check failed for `{}` {}: it is signed by key {}, but key {} is pinned for `{}` (in {} or missions.lock); refusing it. If the author really changed keys, check with them, then remove the `{}` line from [authors] in {} and, if this project has it installed, run `mission remove` on it before installing it again",
                    entry.name,
                    entry.vers,
                    entry.key,
                    pinned,
                    entry.name,
                    trust::path()?.display(),
                    collision_key(&entry.name),
                    trust::path()?.display()
                );
            }
        }
    }

    // [trust] minimum-certification: every archive to install must carry it.
    certification_policy::enforce(
        resolution.packages.values().map(|p| &p.entry),
        &index,
        online.as_ref().map(|(_, node_key)| node_key),
        &trust,
    )?;

    let order: Vec<IndexEntry> = resolution
        .install_order()
        .into_iter()
        .map(|p| p.entry.clone())
        .collect();
    // Every archive is fetched (or read from the cache), verified and unpacked into the
    // staging folder by the download workers, while the index files fetched for the
    // resolution are written to the cache beside them.
    // --locked leaves missions.lock alone: its content is what it holds already (a
    // version 1 file stays version 1 until an install may change it). The new one is
    // written and synced beside its place meanwhile, and renamed once the missions are.
    let lock_to_write = (!opts.locked).then_some(&new_lock);
    let (fetched, flushed, prepared) = std::thread::scope(|scope| {
        let flush = scope.spawn(|| index.flush_cache());
        let prepare = scope.spawn(|| {
            lock_to_write
                .map(|lock| lock.prepare_write(&lock_path))
                .transpose()
        });
        let fetched = fetch_archives(
            &index,
            online.as_ref().map(|(download, _)| download),
            &order,
            &archive_cache,
            &staging.fresh,
            (&progress, ahead_done),
        );
        (fetched, flush.join(), prepare.join())
    });
    fetched?;
    match flushed {
        Ok(result) => result.context("writing the index cache")?,
        Err(_) => bail!("writing the index cache: the writer thread failed"),
    }
    let prepared = match prepared {
        Ok(result) => result.with_context(|| format!("writing {}", lock_path.display()))?,
        Err(_) => bail!("writing {}: the writer thread failed", lock_path.display()),
    };
    phase("archives verified and unpacked");

    let gone: Vec<&LockedMission> = old_lock
        .as_ref()
        .map(|old| {
            old.missions()
                .filter(|m| new_lock.get(&m.name).is_none())
                .collect()
        })
        .unwrap_or_default();
    let removed: Vec<String> = gone.iter().map(|m| m.name.clone()).collect();
    let removed_versions: Vec<String> = gone.iter().map(|m| m.version.to_string()).collect();
    let new_lock_sum = lock_to_write.map(|lock| archive::cksum(lock.to_string().as_bytes()));
    // Marked before anything moves in, so that a kill from here on leaves a folder the
    // next command may use (and recover).
    if dir_record != lockfile::DEFAULT_DIR {
        mark_install_dir(&dir)?;
    }
    let mut installed = put_in_place(
        &dir,
        staging,
        &order,
        &removed,
        prepared.map(|p| (p, new_lock_sum)),
        &lock_path,
    )?;
    for m in &mut installed {
        m.previous = old_lock
            .as_ref()
            .and_then(|old| old.get(&m.name))
            .map(|locked| locked.version.to_string());
    }

    phase("missions in place");
    for entry in order.iter().filter(|e| !keep_pin.contains(&e.name)) {
        trust.pin_author_key(&entry.name, &entry.key);
    }
    trust.save()?;
    phase("done");

    Ok(Outcome {
        installed,
        removed,
        removed_versions,
        lockfile: lock_path,
        roots_changed: old_lock
            .as_ref()
            .map(|old| root_changes(old, &new_lock))
            .unwrap_or_default(),
        network: index.used_network(),
    })
}

/// Takes the project lock on the lockfile's folder, reads the lockfile, picks the install
/// folder, then cleans up after any install that was killed there (see [`staging`]),
/// saying what it did.
fn take_project(lock_path: &Path, dir_arg: Option<&Path>) -> Result<Project> {
    let folder = lock_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let held = locks::lock_project(&folder)?;
    let lock = load_lock(lock_path)?;
    let (dir, dir_record) = install_dir(dir_arg, lock.as_ref(), &folder)?;
    for line in staging::recover(&dir, &folder)? {
        note(&line);
    }
    Ok(Project {
        _held: held,
        lock,
        dir,
        dir_record,
    })
}

/// The project an install, update or remove works on, locked (see [`take_project`]).
struct Project {
    _held: Option<locks::Held>,
    /// `missions.lock` as it was when the lock was taken.
    lock: Option<Lockfile>,
    /// The install folder, absolute.
    dir: PathBuf,
    /// The install folder as the lockfile records it.
    dir_record: String,
}

fn cwd_display() -> String {
    std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| ".".into())
}

fn note(message: &str) {
    eprintln!("note: {message}");
}

/// [`note`], unless this process said the same already (an install may run again, as
/// after a corrupt cached archive).
fn note_once(message: &str) {
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = SAID
        .lock()
        .map(|mut said| said.insert(message.to_owned()))
        .unwrap_or(true);
    if first {
        note(message);
    }
}

fn warning(message: &str) {
    eprintln!("warning: {message}");
}

/// `NAME` or `NAME@REQ`, as the user asked for root `name` in `lock`.
fn asked_as(lock: &Lockfile, name: &str) -> String {
    match lock.root_requirement(name) {
        Some(req) => format!("{name}@{req}"),
        None => name.to_owned(),
    }
}

/// How the roots (what the user asks for) of missions locked in both `old` and `new`
/// changed, one phrase each; a mission new to the lock, or gone from it, is not counted.
fn root_changes(old: &Lockfile, new: &Lockfile) -> Vec<String> {
    let mut changes = Vec::new();
    for m in new.missions().filter(|m| old.get(&m.name).is_some()) {
        let name = &m.name;
        match (old.is_root(name), new.is_root(name)) {
            (false, true) => changes.push(format!(
                "Now asking for {} (was only needed by others)",
                asked_as(new, name)
            )),
            (true, false) => changes.push(format!(
                "No longer asking for {} (still needed by others)",
                asked_as(old, name)
            )),
            (true, true) if old.root_requirement(name) != new.root_requirement(name) => changes
                .push(format!(
                    "Now asking for {} (was {})",
                    asked_as(new, name),
                    asked_as(old, name)
                )),
            _ => {}
        }
    }
    changes
}

/// What differs between two lockfiles, one phrase per mission.
pub fn lock_changes(old: &Lockfile, new: &Lockfile) -> Vec<String> {
    let mut changes = Vec::new();
    if old.dir() != new.dir() {
        let shown = |dir: Option<&str>| format!("`{}`", dir.unwrap_or(lockfile::DEFAULT_DIR));
        changes.push(format!(
            "the install folder would go from {} to {}",
            shown(old.dir()),
            shown(new.dir())
        ));
    }
    for m in new.missions() {
        match old.get(&m.name) {
            None => changes.push(format!("`{}` {} would be added", m.name, m.version)),
            Some(o) if o.version != m.version => changes.push(format!(
                "`{}` would go from {} to {}",
                m.name, o.version, m.version
            )),
            Some(o) if o != m => {
                let deps = |m: &LockedMission| {
                    let listed: Vec<String> =
                        m.dependencies.iter().map(|d| d.to_string()).collect();
                    if listed.is_empty() {
                        "none".to_owned()
                    } else {
                        listed.join(", ")
                    }
                };
                let fields: Vec<String> = [
                    ("checksum", o.cksum.clone(), m.cksum.clone()),
                    ("key", o.key.clone(), m.key.clone()),
                    ("registry", o.registry.clone(), m.registry.clone()),
                    ("dependencies", deps(o), deps(m)),
                ]
                .into_iter()
                .filter(|(_, was, now)| was != now)
                .map(|(field, was, now)| format!("its {field} from `{was}` to `{now}`"))
                .collect();
                changes.push(format!(
                    "`{}` {} would change {}",
                    m.name,
                    m.version,
                    fields.join(", ")
                ));
            }
            Some(_) => {}
        }
    }
    for o in old.missions() {
        if new.get(&o.name).is_none() {
            changes.push(format!("`{}` {} would be removed", o.name, o.version));
        }
    }
    for m in new.missions() {
        if old.get(&m.name).is_some() && new.is_root(&m.name) != old.is_root(&m.name) {
            changes.push(if new.is_root(&m.name) {
                format!("`{}` would be recorded as asked for (a root)", m.name)
            } else {
                format!("`{}` would no longer be recorded as asked for", m.name)
            });
        } else if new.is_root(&m.name)
            && new.root_requirement(&m.name) != old.root_requirement(&m.name)
        {
            let shown = |req: Option<&VersionReq>| {
                req.map_or_else(|| "any version".to_owned(), |r| format!("`{r}`"))
            };
            changes.push(format!(
                "`{}` would be asked for with {} instead of {}",
                m.name,
                shown(new.root_requirement(&m.name)),
                shown(old.root_requirement(&m.name))
            ));
        }
    }
    changes
}

/// Fetches `config.json` and returns it with the node key to check snapshots with: the one
/// configured or pinned for the registry, else (first contact) the one `config.json`
/// names, which is pinned in `trust` (saved once the snapshot verifies).
fn fetch_config(index: &SparseIndex, trust: &mut TrustStore) -> Result<(IndexConfig, PublicKey)> {
    let registry = index.registry().clone();
    let config_bytes = index.fetch("config.json")?.ok_or_else(|| {
        anyhow!(
            "{} has no /index/config.json: is it a mission node?",
            registry.base_url
        )
    })?;
    let config: IndexConfig = serde_json::from_slice(&config_bytes).with_context(|| {
        format!(
            "{}/index/config.json is not a registry configuration",
            registry.base_url
        )
    })?;
    let pinned = match trust.node_key(&registry)? {
        Some(key) => key,
        None => {
            trust.pin_node_key(&registry, &config.node.key);
            config.node.key.clone()
        }
    };
    let pk = PublicKey::parse(&pinned).with_context(|| {
        format!(
            "the node key pinned for `{}` ({pinned}) is not a minisign public key; fix it in {} or config.toml",
            registry.display(),
            trust::path().map(|p| p.display().to_string()).unwrap_or_default()
        )
    })?;
    Ok((config, pk))
}

/// Fetches the signed snapshot and verifies it with the node key `pk`: signed by it, `seq`
/// not below the `previous` one accepted, not expired. Returns the snapshot to store.
fn fetch_snapshot(
    index: &SparseIndex,
    pk: &PublicKey,
    previous: Option<&snapshot::Snapshot>,
) -> Result<snapshot::Snapshot> {
    let registry = index.registry();
    let get_text = |path: &str| -> Result<String> {
        let reply = index.get(path, None)?;
        if reply.status != 200 {
            return Err(reply.error("fetching the signed snapshot").into());
        }
        String::from_utf8(reply.body)
            .with_context(|| format!("{}{path} is not UTF-8", registry.base_url))
    };
    // Both at once: the archive downloads wait for this check.
    let fetch_pair = || {
        let (json, sig) = std::thread::scope(|scope| {
            let sig = scope.spawn(|| get_text("/index/snapshot.json.minisig"));
            let json = get_text("/index/snapshot.json");
            let sig = sig
                .join()
                .unwrap_or_else(|_| Err(anyhow!("fetching the snapshot signature failed")));
            (json, sig)
        });
        anyhow::Ok((json?, sig?))
    };
    let (json, sig) = fetch_pair()?;
    let verify = |json: &str, sig: &str| {
        snapshot::verify_snapshot_after(json, sig, pk, previous, chrono::Utc::now())
    };
    let verified = match verify(&json, &sig) {
        // Two requests: a publish between them pairs a snapshot with the signature of the
        // one before or after. Fetched again once, a real pair verifies; a forged one
        // fails again, and that failure is the one reported.
        Err(snapshot::SnapshotError::Signature(e)) => {
            tracing::debug!(error = %e, "the snapshot signature did not verify; fetching both again");
            let (json, sig) = fetch_pair()?;
            verify(&json, &sig)
        }
        other => other,
    };
    verified
        .map_err(|e| {
            use snapshot::SnapshotError as E;
            let advice = match &e {
                E::Rollback { .. } | E::Equivocation { .. } | E::Expired { .. } => {
                    "The node (or a mirror or proxy between it and you) serves an older or stale index than one this client already accepted; try again later, and tell the node's operator if it persists".to_owned()
                }
                E::FromFuture { .. } => {
                    "Check this computer's clock; if it is right, tell the node's operator".to_owned()
                }
                E::Signature(_) | E::WrongKey { .. } | E::KeyFieldMismatch { .. } => format!(
                    "The node (or something between it and you) serves an index not signed by the key this client trusts for it. {}",
                    trust::node_key_advice(registry)
                ),
                _ => "The node serves a snapshot this client cannot read; tell the node's operator".to_owned(),
            };
            anyhow!(
                "snapshot check failed for the registry `{}`: {e}. Nothing was installed. {advice}",
                registry.display(),
            )
        })
}

/// A mission name the registry knows only spelled otherwise: with `-` for `_` or in
/// another case, which names the same mission (as on crates.io). `mission install` then
/// translates what was given, as `cargo add` does.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SpelledOtherwise {
    pub given: String,
    pub known: String,
    message: String,
}

/// Turns a resolution failure into advice.
fn resolve_error(e: ResolveError, index: &SparseIndex, offline: bool) -> anyhow::Error {
    match &e {
        ResolveError::SpelledOtherwise {
            name, published, ..
        } => anyhow::Error::new(SpelledOtherwise {
            given: name.clone(),
            known: published.clone(),
            message: e.to_string(),
        }),
        ResolveError::NotFound { name, required_by } => {
            let close = suggestions(index, name, offline);
            if let Some(known) = close
                .first()
                .filter(|known| collision_key(known) == collision_key(name))
            {
                // The same words as the resolver's when it found the published spelling.
                let message = required_by
                    .iter()
                    .map(|who| resolve::spelled_otherwise_message(name, known, who))
                    .collect::<Vec<_>>()
                    .join("; ");
                return anyhow::Error::new(SpelledOtherwise {
                    given: name.clone(),
                    known: known.clone(),
                    message,
                });
            }
            if close.is_empty() {
                anyhow!("{e}; search with `mission search WORD`")
            } else {
                anyhow!("{e}; did you mean {}?", quoted(&close, ", "))
            }
        }
        ResolveError::Reader { source, .. } => {
            if source
                .downcast_ref::<SparseError>()
                .is_some_and(|s| matches!(s, SparseError::NotCached { .. }))
            {
                anyhow!("offline, and the cache lacks what is needed: {e}")
            } else {
                anyhow!("{e}")
            }
        }
        _ => anyhow!("cannot resolve the missions to install: {e}"),
    }
}

/// Up to three names close to `name`: from the node's search endpoint, else the cache.
pub fn suggestions(index: &SparseIndex, name: &str, offline: bool) -> Vec<String> {
    let mut names: BTreeSet<String> = index.cached_names().into_iter().collect();
    if !offline {
        if let Ok(reply) = index.get("/api/v1/missions?per_page=1000", None) {
            if reply.status == 200 {
                if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&reply.body) {
                    for m in json["missions"].as_array().into_iter().flatten() {
                        if let Some(n) = m["name"].as_str() {
                            names.insert(n.to_owned());
                        }
                    }
                }
            }
        }
    }
    closest(name, names.iter().map(String::as_str))
}

/// `names` in backticks, joined by `sep`, for messages (`` `a`, `b` ``).
pub fn quoted(names: &[String], sep: &str) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(sep)
}

/// The names closest to `name` (normalized Damerau-Levenshtein, at least 0.5 alike), best
/// first, at most three.
pub fn closest<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let wanted = collision_key(name);
    let mut scored: Vec<(f64, String)> = names
        .filter_map(|n| {
            let key = collision_key(n);
            let mut score = strsim::normalized_damerau_levenshtein(&wanted, &key);
            if key.contains(&wanted) || wanted.contains(&key) {
                score = score.max(0.6);
            }
            // The same name spelled with `-` for `_` (or another case) is the best guess.
            (score >= 0.5 && n != name).then(|| (score, n.to_owned()))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

fn archive_path(cache: &Path, cksum: &str) -> PathBuf {
    cache.join(format!("{cksum}.mission"))
}

/// The checks of an archive against its index entry that need no signature equation: the
/// SHA-256 is the index checksum, and the signature parses as one by the entry's key for
/// this name and version. What is returned still has to be verified, alone or in a batch
/// ([`archive_signature`]); each error says which check failed.
fn prepare_check(entry: &IndexEntry, bytes: &[u8]) -> Result<ArchiveSignature> {
    let actual = archive::cksum(bytes);
    if actual != entry.cksum {
        bail!(
            "checksum check failed for `{}` {}: the archive's SHA-256 is {actual}, but the index says {}. The download was corrupted or the node serves altered bytes; nothing was installed. Try again; if it persists, tell the node's operator",
            entry.name,
            entry.vers,
            entry.cksum
        );
    }
    let pk = PublicKey::parse(&entry.key).map_err(|e| {
        anyhow!("signature check failed for `{}` {}: the index entry's key `{}` is not a minisign public key ({e}); nothing was installed. Tell the node's operator", entry.name, entry.vers, entry.key)
    })?;
    ArchiveSignature::prepare(&pk, &entry.sig, bytes, &actual, &entry.name, &entry.vers)
        .map_err(|e| signature_error(entry, e))
}

fn signature_error(entry: &IndexEntry, e: signing::SignError) -> anyhow::Error {
    anyhow!(
        "signature check failed for `{}` {}: {e}. The index entry's signature does not vouch for this archive by the key {}; the index was altered or is corrupt. Nothing was installed; tell the node's operator",
        entry.name,
        entry.vers,
        entry.key
    )
}

/// Every archive of `entries`, verified and unpacked into `fresh/CKSUM`: from the archive
/// cache, else downloaded (a few at a time, from the URL `download` gives; `None`:
/// offline) through a temporary file into the cache. On a terminal, one progress bar
/// counts the archives and bytes downloaded.
///
/// `ahead` holds, by checksum, the index entries whose archives [`Ahead`] already
/// downloaded, verified against that entry and unpacked into `fresh/CKSUM`; those are taken
/// as they are when the entry is the chosen one. A guessed version that was not chosen is
/// replaced in `fresh`.
///
/// The rest go through an [`Ahead`] queue of their own, so their signatures are verified
/// in batches too (a warm or `--locked` install spends most of its time there). An archive
/// that queue could not verify is tried once more alone, which either succeeds (a network
/// blip) or says exactly what is wrong with it.
fn fetch_archives(
    index: &SparseIndex,
    download: Option<&DownloadTemplate>,
    entries: &[IndexEntry],
    cache: &Path,
    fresh: &Path,
    (progress, mut ahead): (&Progress, BTreeMap<String, IndexEntry>),
) -> Result<()> {
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let is_done =
        |done: &BTreeMap<String, IndexEntry>, e: &IndexEntry| done.get(&e.cksum) == Some(e);
    let todo: Vec<&IndexEntry> = entries.iter().filter(|e| !is_done(&ahead, e)).collect();
    let mut failed = BTreeMap::new();
    if !todo.is_empty() {
        let queue = Ahead::new(index, download, cache, fresh, progress);
        for entry in &todo {
            queue.push(entry);
        }
        queue.close();
        // No thread for an archive that was all done ahead.
        let workers = PARALLEL_DOWNLOADS.min(todo.len());
        std::thread::scope(|scope| {
            let _cancel = CancelOnPanic(&queue);
            for _ in 0..workers {
                scope.spawn(|| queue.work());
            }
        });
        let (done, why) = queue.into_results();
        ahead.extend(done);
        failed = why;
    }
    let left: Vec<&IndexEntry> = todo.into_iter().filter(|e| !is_done(&ahead, e)).collect();
    let results: Mutex<Vec<Result<()>>> = Mutex::new(Vec::new());
    match download {
        // Offline, trying again reads the same cache: the first failure is the answer.
        None => {
            if let Ok(mut results) = results.lock() {
                for entry in left {
                    results.push(Err(failed.remove(&entry.cksum).unwrap_or_else(|| {
                        anyhow!("internal: `{}` {} was not unpacked", entry.name, entry.vers)
                    })));
                }
            }
        }
        Some(_) => {
            let left = Mutex::new(left);
            let workers = PARALLEL_DOWNLOADS.min(left.lock().map(|l| l.len()).unwrap_or(0));
            std::thread::scope(|scope| {
                for _ in 0..workers {
                    scope.spawn(|| loop {
                        let next = left.lock().ok().and_then(|mut l| l.pop());
                        let Some(entry) = next else { break };
                        let got = one_archive(index, download, entry, cache, progress)
                            .and_then(|bytes| unpack(entry, &bytes, fresh));
                        if let Ok(mut r) = results.lock() {
                            r.push(got);
                        }
                    });
                }
            });
        }
    }
    progress.finish();
    let results = results
        .into_inner()
        .map_err(|_| anyhow!("a download thread failed"))?;
    let mut errors: Vec<anyhow::Error> = results.into_iter().filter_map(Result::err).collect();
    if errors.len() == 1 {
        // Kept whole, so that a caller can tell what it is (a corrupt cached archive).
        return Err(errors.remove(0));
    }
    if !errors.is_empty() {
        let corrupt_cache = errors.iter().any(|e| e.is::<CorruptCachedArchive>());
        let mut lines: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
        lines.sort();
        return Err(ArchiveFailures {
            text: lines.join("\nerror: "),
            corrupt_cache,
        }
        .into());
    }
    Ok(())
}

/// Several archives that could not be installed, one `error:` line each.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
struct ArchiveFailures {
    text: String,
    /// Whether a cached archive was found corrupt (and removed) among them.
    corrupt_cache: bool,
}

/// Unpacks the verified archive of `entry` into `fresh/CKSUM`, replacing a copy
/// unpacked there ahead.
fn unpack(entry: &IndexEntry, bytes: &[u8], fresh: &Path) -> Result<()> {
    // By checksum, not name: two versions of one name guessed while the index was read
    // must never share (or mix in) one folder; put_in_place takes the chosen one.
    let dest = fresh.join(&entry.cksum);
    if std::fs::symlink_metadata(&dest).is_ok() {
        std::fs::remove_dir_all(&dest)
            .with_context(|| format!("removing {} from the staging folder", dest.display()))?;
    }
    archive::unpack_archive_to_new_dir(bytes, &dest, &ArchiveLimits::default()).with_context(
        || {
            format!(
                "unpacking `{}` {}: the archive is not a valid package; nothing was installed",
                entry.name, entry.vers
            )
        },
    )?;
    Ok(())
}

/// The download bar and the bytes it counts: drawn on stderr once something is to be
/// downloaded and stderr is a terminal, hidden otherwise (scripts and tests see no
/// progress output).
struct Progress {
    bar: ProgressBar,
    bytes: AtomicU64,
    terminal: bool,
}

impl Progress {
    fn new(online: bool) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        // The template is a constant; should it ever be refused, a bar without it works.
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>12.cyan.bold} [{bar:30}] {pos}/{len} archives, {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix("Downloading");
        bar.set_message(HumanBytes(0).to_string());
        Progress {
            bar,
            bytes: AtomicU64::new(0),
            terminal: online && std::io::stderr().is_terminal(),
        }
    }

    /// `n` more archives to download.
    fn expect(&self, n: u64) {
        if n == 0 {
            return;
        }
        if self.terminal && self.bar.is_hidden() {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.bar.inc_length(n);
    }

    /// An expected archive that will not be downloaded after all.
    fn forget(&self) {
        self.bar.dec_length(1);
    }

    fn downloaded(&self, len: usize) {
        let total = self.bytes.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
        self.bar.set_message(HumanBytes(total).to_string());
        self.bar.inc(1);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    /// A failed install leaves no bar behind on the terminal.
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Archives downloaded while the resolution still reads the index: the archive of the
/// version each name will likely get (see [`index_walk::prefetch_index`]) is fetched (or
/// read from the cache), checked against its index entry's checksum and unpacked into the
/// staging folder by [`PARALLEL_DOWNLOADS`] workers as soon as the guess is made, so this
/// work overlaps the index round trips; signatures are then verified in batches, and only a
/// verified archive is cached and counted as done. The workers start only once the node's
/// snapshot verified. A guess the resolution does not take costs one download and a cache
/// file (named by checksum), never other bytes: an archive is used only for the very entry
/// it was verified against, and the author-key check of the chosen versions comes before
/// anything is installed. A failure here is only recorded: [`fetch_archives`] tries again
/// (online) and reports it. [`fetch_archives`] also runs a queue of its own for the
/// archives the resolution chose that were not done ahead, for the batched signatures.
struct Ahead<'a> {
    index: &'a SparseIndex,
    /// `None`: offline, archives come from the cache only.
    download: Option<&'a DownloadTemplate>,
    cache: &'a Path,
    fresh: &'a Path,
    progress: &'a Progress,
    queue: Mutex<AheadQueue>,
    ready: Condvar,
    /// Checksum -> the entry whose archive is verified (and cached) and unpacked in `fresh`.
    done: Mutex<BTreeMap<String, IndexEntry>>,
    /// Archives unpacked in `fresh` whose signatures wait to be verified in a batch.
    unchecked: Mutex<Vec<(IndexEntry, Unverified)>>,
    /// Checksum -> why that archive could not be fetched, verified or unpacked.
    failed: Mutex<BTreeMap<String, anyhow::Error>>,
}

/// How many archives' signatures [`Ahead`] verifies in one batch (two signatures each).
/// Batches cost less per signature the larger they are; this size keeps most of that
/// gain without holding many archives back from the cache until the very end.
const SIGNATURE_BATCH: usize = 12;
/// A batch is verified early once the downloaded archives it holds (kept to be cached)
/// reach this many bytes, which bounds the memory it takes.
const SIGNATURE_BATCH_BYTES: usize = 16 << 20;

#[derive(Default)]
struct AheadQueue {
    /// Entries to fetch, each with whether the progress bar counts it as a download (its
    /// archive was not in the cache when queued).
    waiting: VecDeque<(IndexEntry, bool)>,
    /// Checksums queued so far (each is fetched once).
    queued: BTreeSet<String>,
    closed: bool,
    /// Stopped: nothing queued or unchecked is of use any more.
    cancelled: bool,
}

impl<'a> Ahead<'a> {
    fn new(
        index: &'a SparseIndex,
        download: Option<&'a DownloadTemplate>,
        cache: &'a Path,
        fresh: &'a Path,
        progress: &'a Progress,
    ) -> Ahead<'a> {
        Ahead {
            index,
            download,
            cache,
            fresh,
            progress,
            queue: Mutex::new(AheadQueue::default()),
            ready: Condvar::new(),
            done: Mutex::new(BTreeMap::new()),
            unchecked: Mutex::new(Vec::new()),
            failed: Mutex::new(BTreeMap::new()),
        }
    }

    /// Queues the archive of `entry`, unless it is queued already or the queue is closed.
    fn push(&self, entry: &IndexEntry) {
        if let Ok(mut q) = self.queue.lock() {
            if !q.closed && q.queued.insert(entry.cksum.clone()) {
                let expected = !archive_path(self.cache, &entry.cksum).is_file();
                if expected {
                    self.progress.expect(1);
                }
                q.waiting.push_back((entry.clone(), expected));
                self.ready.notify_one();
            }
        }
    }

    /// Stop: what is still queued is dropped, the workers finish the archive in hand.
    fn cancel(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.waiting.clear();
            q.closed = true;
            q.cancelled = true;
        }
        self.ready.notify_all();
    }

    /// No more guesses: the workers finish what is queued and stop.
    fn close(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.closed = true;
        }
        self.ready.notify_all();
    }

    fn next(&self) -> Option<(IndexEntry, bool)> {
        let mut q = self.queue.lock().ok()?;
        loop {
            if let Some(entry) = q.waiting.pop_front() {
                return Some(entry);
            }
            if q.closed {
                return None;
            }
            q = self.ready.wait(q).ok()?;
        }
    }

    /// A worker: fetches queued archives and unpacks them into `fresh` once their checksum
    /// matches, then verifies their signatures in batches; only an archive whose signature
    /// holds is cached and counted as done. On its way out, each worker verifies what is
    /// left, so the last one out leaves nothing unchecked.
    fn work(&self) {
        while let Some((entry, expected)) = self.next() {
            let got =
                fetch_unverified(self.index, self.download, &entry, self.cache, self.progress);
            if got.is_err() && expected {
                self.progress.forget();
            }
            match got.and_then(|got| unpack(&entry, &got.bytes, self.fresh).map(|()| got)) {
                Ok(mut got) => {
                    if got.cached {
                        // Not written again: only the signature is still needed.
                        got.bytes = Vec::new();
                    }
                    let batch = self.unchecked.lock().ok().and_then(|mut unchecked| {
                        unchecked.push((entry, got));
                        let held: usize = unchecked.iter().map(|(_, u)| u.bytes.len()).sum();
                        (unchecked.len() >= SIGNATURE_BATCH || held >= SIGNATURE_BATCH_BYTES)
                            .then(|| std::mem::take(&mut *unchecked))
                    });
                    if let Some(batch) = batch {
                        self.check(batch);
                    }
                }
                Err(e) => {
                    tracing::debug!(name = %entry.name, version = %entry.vers, error = %format!("{e:#}"), "fetching ahead failed");
                    self.fail(&entry, e);
                }
            }
        }
        let cancelled = self.queue.lock().map(|q| q.cancelled).unwrap_or(true);
        let rest = self
            .unchecked
            .lock()
            .map(|mut unchecked| std::mem::take(&mut *unchecked))
            .unwrap_or_default();
        if !cancelled {
            self.check(rest);
        }
    }

    /// Verifies the signatures of `batch` (all at once; one by one only when that fails),
    /// and caches and marks done the archives whose signature holds. The others are left
    /// for [`fetch_archives`], which fetches them again and reports what is wrong.
    fn check(&self, batch: Vec<(IndexEntry, Unverified)>) {
        let signatures: Vec<&ArchiveSignature> = batch.iter().map(|(_, u)| &u.signature).collect();
        let all_hold = archive_signature::verify_batch(&signatures).is_ok();
        for (entry, got) in batch {
            let checked = if all_hold {
                Ok(())
            } else {
                got.signature
                    .verify()
                    .map_err(|e| signature_error(&entry, e))
            };
            match checked.and_then(|()| got.cache(&entry, self.cache)) {
                Ok(()) => {
                    if let Ok(mut done) = self.done.lock() {
                        done.insert(entry.cksum.clone(), entry);
                    }
                }
                Err(e) => {
                    tracing::debug!(name = %entry.name, version = %entry.vers, error = %format!("{e:#}"), "checking ahead failed");
                    self.fail(&entry, e);
                }
            }
        }
    }

    fn fail(&self, entry: &IndexEntry, error: anyhow::Error) {
        if let Ok(mut failed) = self.failed.lock() {
            failed.insert(entry.cksum.clone(), error);
        }
    }

    fn into_done(self) -> BTreeMap<String, IndexEntry> {
        self.done.into_inner().unwrap_or_default()
    }

    /// What was done, and why the rest failed (both by checksum).
    fn into_results(
        self,
    ) -> (
        BTreeMap<String, IndexEntry>,
        BTreeMap<String, anyhow::Error>,
    ) {
        (
            self.done.into_inner().unwrap_or_default(),
            self.failed.into_inner().unwrap_or_default(),
        )
    }
}

/// Cancels the [`Ahead`] queue when dropped during a panic, so its workers stop instead
/// of waiting for work that will never come (and the thread scope can end).
struct CancelOnPanic<'a, 'b>(&'a Ahead<'b>);

impl Drop for CancelOnPanic<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.cancel();
        }
    }
}

/// The message of a panic payload, for an error that reports it.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a thread panicked".to_owned())
}

/// An archive fetched for an entry (from the cache, or downloaded) whose checksum matches,
/// with its signature prepared but not yet verified.
struct Unverified {
    bytes: Vec<u8>,
    signature: ArchiveSignature,
    /// Read from the archive cache (so not to be written there again).
    cached: bool,
}

impl Unverified {
    /// Writes a downloaded archive to the cache: call only once its signature verified.
    fn cache(&self, entry: &IndexEntry, cache: &Path) -> Result<()> {
        if self.cached {
            return Ok(());
        }
        atomic_file::write(&archive_path(cache, &entry.cksum), &self.bytes)
            .with_context(|| format!("caching `{}` {}", entry.name, entry.vers))
    }
}

/// The archive of `entry`, verified, and cached if it was downloaded.
fn one_archive(
    index: &SparseIndex,
    download: Option<&DownloadTemplate>,
    entry: &IndexEntry,
    cache: &Path,
    progress: &Progress,
) -> Result<Vec<u8>> {
    let got = fetch_unverified(index, download, entry, cache, progress)?;
    got.signature
        .verify()
        .map_err(|e| signature_error(entry, e))?;
    got.cache(entry, cache)?;
    Ok(got.bytes)
}

/// A cached archive whose bytes no longer have the checksum of its name, met without a
/// node to download it from again. It is removed from the cache before this is returned.
#[derive(Debug, thiserror::Error)]
#[error("the cached archive of `{name}` {version} ({}) is corrupt: its SHA-256 is not {cksum}, the checksum the index gives. It was removed from the cache; nothing was installed. Run the install again online to download it again", path.display())]
struct CorruptCachedArchive {
    name: String,
    version: String,
    path: PathBuf,
    cksum: String,
}

/// The archive of `entry` from the cache, else downloaded (`download`: `None` when
/// offline), with its checksum checked and its signature prepared ([`prepare_check`]).
fn fetch_unverified(
    index: &SparseIndex,
    download: Option<&DownloadTemplate>,
    entry: &IndexEntry,
    cache: &Path,
    progress: &Progress,
) -> Result<Unverified> {
    let path = archive_path(cache, &entry.cksum);
    if let Ok(bytes) = std::fs::read(&path) {
        match prepare_check(entry, &bytes) {
            Ok(signature) => {
                return Ok(Unverified {
                    bytes,
                    signature,
                    cached: true,
                })
            }
            // A corrupt cached copy is dropped (and fetched again when online); any other
            // failure is the index's, and fetching again would not help.
            Err(_) if archive::cksum(&bytes) != entry.cksum => {
                let _ = std::fs::remove_file(&path);
                if download.is_some() {
                    tracing::warn!(path = %path.display(), "downloading again a corrupt cached archive");
                } else {
                    return Err(CorruptCachedArchive {
                        name: entry.name.clone(),
                        version: entry.vers.clone(),
                        path,
                        cksum: entry.cksum.clone(),
                    }
                    .into());
                }
            }
            Err(e) => return Err(e),
        }
    }
    let Some(download) = download else {
        bail!(
            "`{}` {} is not in the archive cache ({}); run once without --offline to download it",
            entry.name,
            entry.vers,
            path.display()
        );
    };
    let url = download.url(&entry.name, &entry.vers, &entry.cksum);
    let bytes = fetch_archive(index, &url, download.send_token())
        .with_context(|| format!("downloading `{}` {}", entry.name, entry.vers))?;
    tracing::debug!(name = %entry.name, version = %entry.vers, %url, bytes = bytes.len(), "downloaded");
    progress.downloaded(bytes.len());
    let signature = prepare_check(entry, &bytes)?;
    Ok(Unverified {
        bytes,
        signature,
        cached: false,
    })
}

fn fetch_archive(index: &SparseIndex, url: &str, send_token: bool) -> Result<Vec<u8>> {
    let reply = index.get_url(url, None, MAX_ARCHIVE_BYTES + 1, send_token, Lane::Archive)?;
    if reply.status != 200 {
        return Err(reply
            .error("the archive was not handed out (the URL comes from the `dl` template of the registry's config.json)")
            .into());
    }
    if reply.body.len() as u64 > MAX_ARCHIVE_BYTES {
        bail!(
            "GET {}: the archive is larger than {MAX_ARCHIVE_BYTES} bytes",
            reply.url
        );
    }
    Ok(reply.body)
}

/// Swaps the missions unpacked in `staging` into `dir`, removes `removed`, and writes the
/// lockfile (when given); on any failure, what was there before is put back.
fn put_in_place(
    dir: &Path,
    mut staging: Staging,
    order: &[IndexEntry],
    removed: &[String],
    lock: Option<(PreparedLockfile, Option<String>)>,
    lock_path: &Path,
) -> Result<Vec<Installed>> {
    let fresh = staging.fresh.clone();
    let backup = staging.backup.clone();
    for entry in order {
        if !fresh.join(&entry.cksum).is_dir() {
            bail!("internal: `{}` was not unpacked", entry.name);
        }
    }
    let (mut lock, new_lock) = match lock {
        Some((prepared, sum)) => (Some(prepared), sum),
        None => (None, None),
    };
    // Which missions have a folder now (to put back if the install is undone, and to tell
    // a mission re-created at its locked version from one left alone).
    let had_folder: Vec<bool> = order
        .iter()
        .map(|e| std::fs::symlink_metadata(dir.join(&e.name)).is_ok())
        .collect();
    // From here on a killed install can be undone by the next command (see `staging`).
    staging.write_journal(&Journal {
        lockfile: std::path::absolute(lock_path)
            .with_context(|| format!("locating {}", lock_path.display()))?,
        old_lock: staging::file_sha256(lock_path)?,
        new_lock,
        place: order
            .iter()
            .zip(&had_folder)
            .map(|(e, &had_old)| staging::Placed {
                name: e.name.clone(),
                cksum: e.cksum.clone(),
                had_old,
            })
            .collect(),
        remove: removed.to_vec(),
    })?;

    // Swap: each step recorded so it can be undone.
    enum Step<'e> {
        Placed {
            entry: &'e IndexEntry,
            had_old: bool,
        },
        Removed {
            name: String,
        },
    }
    let mut steps: Vec<Step> = Vec::new();
    let undo = |steps: &mut Vec<Step>| {
        while let Some(step) = steps.pop() {
            match step {
                Step::Placed { entry, had_old } => {
                    let name = &entry.name;
                    let _ = std::fs::rename(dir.join(name), fresh.join(&entry.cksum));
                    if had_old {
                        let _ = std::fs::rename(backup.join(name), dir.join(name));
                    }
                }
                Step::Removed { name } => {
                    let _ = std::fs::rename(backup.join(&name), dir.join(&name));
                }
            }
        }
    };
    let mut swap = || -> Result<()> {
        // As the journal says (nothing else moves here while the project lock is held).
        for (entry, &had_old) in order.iter().zip(&had_folder) {
            let target = dir.join(&entry.name);
            if had_old {
                std::fs::rename(&target, backup.join(&entry.name))
                    .with_context(|| format!("moving the old {} aside", target.display()))?;
            }
            if let Err(e) = std::fs::rename(fresh.join(&entry.cksum), &target) {
                if had_old {
                    let _ = std::fs::rename(backup.join(&entry.name), &target);
                }
                return Err(e).with_context(|| format!("putting {} in place", target.display()));
            }
            steps.push(Step::Placed { entry, had_old });
        }
        for name in removed {
            let target = dir.join(name);
            if std::fs::symlink_metadata(&target).is_ok() {
                std::fs::rename(&target, backup.join(name))
                    .with_context(|| format!("removing {}", target.display()))?;
                steps.push(Step::Removed { name: name.clone() });
            }
        }
        if let Some(lock) = lock.take() {
            // The moves reach the disk before the lock that says they are done (a power cut
            // must not leave a new lock over the old folders); a folder some file systems
            // cannot sync is no reason to fail.
            if let Ok(folder) = std::fs::File::open(dir) {
                let _ = folder.sync_all();
            }
            lock.commit()
                .with_context(|| format!("writing {}", lock_path.display()))?;
        }
        Ok(())
    };
    if let Err(e) = swap() {
        undo(&mut steps);
        return Err(e.context("the earlier install and missions.lock were left as they were"));
    }
    // The install is done whatever follows; a journal that cannot be removed is logged,
    // as the lock in place already says so.
    if let Err(e) = staging.complete() {
        tracing::warn!(error = %format!("{e:#}"), "the finished install's journal stays");
    }
    drop(staging);
    Ok(order
        .iter()
        .zip(had_folder)
        .map(|(e, had_folder)| Installed {
            name: e.name.clone(),
            version: e.vers.clone(),
            previous: None,
            folder_was_missing: !had_folder,
            cksum: e.cksum.clone(),
            key: e.key.clone(),
            path: dir.join(&e.name),
        })
        .collect())
}

/// What `mission remove` took away: the mission named, then the dependencies no remaining
/// root needs, as `(name, version)`.
pub struct Removal {
    pub removed: LockedMission,
    pub pruned: Vec<LockedMission>,
    /// Not empty when `removed` stayed installed, as these locked missions (`` `NAME`
    /// VERSION ``) need it: it only stopped being one the user asked for.
    pub still_needed_by: Vec<String>,
}

/// `mission remove NAME`: its folder and its lock entry, and those of every dependency no
/// remaining root needs; refused when another locked mission depends on NAME. The folders
/// are moved aside first and put back if the lockfile cannot be written.
pub fn remove(name: &str, dir: Option<&Path>) -> Result<Removal> {
    let lock_path = lockfile_path()?;
    let Project {
        _held,
        lock,
        dir,
        dir_record: _,
    } = take_project(&lock_path, dir)?;
    let Some(mut lock) = lock else {
        bail!(
            "there is no missions.lock in {}: nothing is installed here",
            cwd_display()
        );
    };
    let Some(locked) = lock.get(name).cloned() else {
        let listed: Vec<String> = lock.missions().map(|m| m.name.clone()).collect();
        let close = closest(name, listed.iter().map(String::as_str));
        bail!(
            "`{name}` is not in missions.lock{}",
            if close.is_empty() {
                format!(" (it lists: {})", listed.join(", "))
            } else {
                format!("; did you mean {}?", quoted(&close, ", "))
            }
        );
    };
    let users: Vec<String> = lock
        .dependents(&locked.name)
        .map(|m| format!("`{}` {}", m.name, m.version))
        .collect();
    if !users.is_empty() {
        // Asked for and also a dependency: only the asking goes (as `cargo remove` takes a
        // dependency out of the manifest); it goes itself when nothing needs it any more.
        if lock.unset_root(&locked.name) {
            lock.write_atomic(&lock_path)
                .with_context(|| format!("writing {}; nothing changed", lock_path.display()))?;
            return Ok(Removal {
                removed: locked,
                pruned: Vec::new(),
                still_needed_by: users,
            });
        }
        bail!(
            "`{}` is installed only because {} need{} it; remove {} first",
            locked.name,
            users.join(", "),
            if users.len() == 1 { "s" } else { "" },
            if users.len() == 1 {
                "that one"
            } else {
                "those"
            }
        );
    }
    lock.remove(&locked.name);
    let pruned = lock.prune();
    let names: Vec<String> = std::iter::once(&locked)
        .chain(&pruned)
        .map(|m| m.name.clone())
        .collect();
    // The folders are moved aside as an install moves what it replaces, so a failure (or
    // a kill) puts them back with the lock as it was.
    let staging = Staging::new(&dir)?;
    let prepared = lock
        .prepare_write(&lock_path)
        .with_context(|| format!("writing {}; nothing was removed", lock_path.display()))?;
    let sum = archive::cksum(lock.to_string().as_bytes());
    put_in_place(
        &dir,
        staging,
        &[],
        &names,
        Some((prepared, Some(sum))),
        &lock_path,
    )
    .context("nothing was removed")?;
    for m in &pruned {
        tracing::info!(name = %m.name, version = %m.version, "removed: no remaining mission needs it");
    }
    Ok(Removal {
        removed: locked,
        pruned,
        still_needed_by: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested() {
        let names = ["fix_build", "fix_tests", "lint_rust", "deploy"];
        assert_eq!(closest("fix_buidl", names.into_iter())[0], "fix_build");
        assert!(closest("zzzzzz", names.into_iter()).is_empty());
        assert_eq!(closest("lint", names.into_iter()), vec!["lint_rust"]);
        assert_eq!(closest("Fix-Build", names.into_iter())[0], "fix_build");
        assert!(!closest("fix_build", names.into_iter()).contains(&"fix_build".to_owned()));
    }

    fn given(args: &[&str]) -> Result<Vec<(String, Option<String>)>> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        Ok(given_roots(&args)?
            .into_iter()
            .map(|(name, req)| (name, req.map(|r| r.to_string())))
            .collect())
    }

    #[test]
    fn a_name_given_twice_keeps_every_requirement_given() {
        let one = |name: &str, req: Option<&str>| vec![(name.to_owned(), req.map(str::to_owned))];
        assert_eq!(given(&["a@=1.0.0", "a"]).unwrap(), one("a", Some("=1.0.0")));
        assert_eq!(given(&["a", "A@=1.0.0"]).unwrap(), one("a", Some("=1.0.0")));
        assert_eq!(given(&["a@^1", "a@^1"]).unwrap(), one("a", Some("^1")));
        assert_eq!(
            given(&["a@>=1", "a@<1.1"]).unwrap(),
            one("a", Some(">=1, <1.1"))
        );
        assert_eq!(given(&["a@*", "a"]).unwrap(), one("a", Some("*")));
        assert_eq!(given(&["a", "a"]).unwrap(), one("a", None));
        assert_eq!(
            given(&["b", "a@^1", "b@^2"]).unwrap(),
            [
                ("b".to_owned(), Some("^2".to_owned())),
                ("a".to_owned(), Some("^1".to_owned()))
            ]
        );
        let err = format!("{:#}", given(&["a@=1.0.0", "a@^2"]).unwrap_err());
        assert!(
            err.contains(
                "`a` is given twice with requirements no version meets together: `=1.0.0` and `^2`"
            ),
            "{err}"
        );
    }

    fn locked(roots: &[(&str, Option<&str>)]) -> Lockfile {
        let mut lock = Lockfile::new();
        for name in ["a", "b"] {
            lock.insert(LockedMission {
                name: name.to_owned(),
                version: semver::Version::new(1, 0, 0),
                cksum: "0".repeat(64),
                registry: "sparse+http://h/index/".to_owned(),
                key: "RWkey".to_owned(),
                dependencies: Vec::new(),
            });
        }
        for (name, req) in roots {
            lock.set_root(name, req.map(|r| VersionReq::parse(r).unwrap()));
        }
        lock
    }

    #[test]
    fn changes_to_what_is_asked_for_are_said() {
        let old = locked(&[("a", Some(">=1, <1.1"))]);
        assert!(root_changes(&old, &old).is_empty());
        let new = locked(&[("a", Some("^2")), ("b", None)]);
        assert_eq!(
            root_changes(&old, &new),
            [
                "Now asking for a@^2 (was a@>=1, <1.1)",
                "Now asking for b (was only needed by others)"
            ]
        );
        assert_eq!(
            root_changes(&new, &locked(&[("a", None)])),
            [
                "Now asking for a (was a@^2)",
                "No longer asking for b (still needed by others)"
            ]
        );
    }

    #[test]
    fn a_locked_install_names_the_field_that_would_change() {
        let old = locked(&[("a", None)]);
        let mut new = old.clone();
        let mut a = new.get("a").unwrap().clone();
        a.registry = "git+http://h/git/index.git".to_owned();
        a.cksum = "1".repeat(64);
        new.insert(a);
        assert_eq!(
            lock_changes(&old, &new),
            [format!(
                "`a` 1.0.0 would change its checksum from `{}` to `{}`, its registry from `sparse+http://h/index/` to `git+http://h/git/index.git`",
                "0".repeat(64),
                "1".repeat(64)
            )]
        );
    }

    #[test]
    fn the_project_is_the_nearest_folder_with_a_lock() {
        let root = tempfile::tempdir().unwrap();
        let project = root.path().join("p");
        let sub = project.join("a").join("b");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(find_project(&sub), (sub.clone(), None));
        std::fs::write(project.join(LOCKFILE_NAME), "").unwrap();
        assert_eq!(find_project(&sub), (project.clone(), None));
        assert_eq!(find_project(&project), (project.clone(), None));
        std::fs::write(sub.join(LOCKFILE_NAME), "").unwrap();
        assert_eq!(find_project(&sub), (sub.clone(), None), "the nearest");
    }
}
