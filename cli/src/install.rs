//! The install engine behind `mission install`, `update` and `remove`, in cargo's habits.
//!
//! An install:
//!
//! 1. reads `missions.lock` in the current folder (when there is one);
//! 2. unless offline, fetches the node's `config.json` and its signed snapshot and verifies
//!    the snapshot with the node key pinned in the trust store (pinned from `config.json` on
//!    first contact unless `config.toml` names it): signed by that key, `seq` not below the
//!    last one seen (stored), not expired;
//! 3. resolves the requested missions over the sparse index (only the index files the
//!    resolution reaches are fetched, each cached with its ETag), preferring the lock;
//! 4. downloads the archives not already in `MISSION_HOME/cache/archives/<cksum>.mission`
//!    (a few at a time), and verifies every archive before it goes anywhere: its SHA-256 is
//!    the index checksum, its signature is valid for the index entry's key, name and version,
//!    and that key is the one pinned for the name (trust store and lockfile);
//! 5. unpacks each into a temporary folder beside the install folder, then swaps them into
//!    `missions/NAME/` and writes `missions.lock` atomically. If anything fails, the earlier
//!    install and lockfile are left as they were.
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
//! Archives are downloaded from `BASE/api/v1/missions/NAME/VERSION/download` of the
//! registry given, whatever `config.json`'s `dl` says.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use mission_index::archive::{self, ArchiveLimits};
use mission_index::entry::IndexEntry;
use mission_index::lockfile::{Lockfile, LOCKFILE_NAME};
use mission_index::name::collision_key;
use mission_index::repo::IndexConfig;
use mission_index::resolve::{self, Requirement, ResolveError};
use mission_index::signing::{self, PublicKey};
use mission_index::snapshot;
use semver::VersionReq;

use crate::home;
use crate::registry::{self, Registry};
use crate::sparse_client::{self, SparseError, SparseIndex};
use crate::trust::{self, TrustStore};

/// How many archives are downloaded at once.
const PARALLEL_DOWNLOADS: usize = 4;

/// The most bytes an archive download may have.
const MAX_ARCHIVE_BYTES: u64 = 64 * 1024 * 1024;

/// What to do.
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
    pub cksum: String,
    pub key: String,
    pub path: PathBuf,
}

/// What an install did.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub installed: Vec<Installed>,
    pub removed: Vec<String>,
    pub lockfile: PathBuf,
    /// Whether the node was contacted.
    pub network: bool,
}

/// The lockfile of the current folder.
pub fn lockfile_path() -> Result<PathBuf> {
    Ok(std::env::current_dir()
        .context("reading the current folder")?
        .join(LOCKFILE_NAME))
}

/// The install folder: `--dir`, else `./missions`.
pub fn install_dir(dir: Option<&Path>) -> Result<PathBuf> {
    match dir {
        Some(d) => Ok(d.to_owned()),
        None => Ok(std::env::current_dir()
            .context("reading the current folder")?
            .join("missions")),
    }
}

pub fn load_lock(path: &Path) -> Result<Option<Lockfile>> {
    Lockfile::load(path).with_context(|| {
        format!(
            "reading {}: fix it, or delete it to resolve every version anew",
            path.display()
        )
    })
}

/// The registry to use: `--registry`, else the configured default, else the registry the
/// lockfile names.
pub fn pick_registry(arg: Option<&str>, lock: Option<&Lockfile>) -> Result<Registry> {
    match registry::resolve(arg) {
        Ok(r) => Ok(r),
        Err(e) if arg.is_none() => {
            let from_lock = lock.and_then(|l| l.missions().next().map(|m| m.registry.clone()));
            match from_lock {
                Some(r) => registry::resolve(Some(&r))
                    .with_context(|| format!("the registry `{r}` that missions.lock names")),
                None => Err(e),
            }
        }
        Err(e) => Err(e),
    }
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

/// The roots to resolve and the lock to resolve with.
fn plan_roots(
    request: &Request,
    lock: Option<&Lockfile>,
) -> Result<(Vec<Requirement>, Option<Lockfile>)> {
    let mut roots = Vec::new();
    let mut resolve_lock = lock.cloned();
    match request {
        Request::Install(args) => {
            let mut given = BTreeSet::new();
            for arg in args {
                let req = Requirement::parse(arg).with_context(|| {
                    "give missions as NAME or NAME@REQ, such as `fix_build@^1.2`".to_string()
                })?;
                given.insert(collision_key(&req.name));
                roots.push(req);
            }
            if let Some(lock) = lock {
                for m in lock.missions() {
                    if !given.contains(&collision_key(&m.name)) {
                        roots.push(Requirement::new(m.name.clone(), keep_req(&m.version)));
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
                    bail!(
                        "`{name}` is not in missions.lock (it lists: {}); install it with `mission install {name}`",
                        if listed.is_empty() { "nothing".into() } else { listed.join(", ") }
                    );
                }
                unlocked.remove(name);
            }
            for m in lock.missions() {
                let req = if unlocked.get(&m.name).is_some() {
                    keep_req(&m.version)
                } else {
                    VersionReq::STAR
                };
                roots.push(Requirement::new(m.name.clone(), req));
            }
            resolve_lock = Some(unlocked);
        }
    }
    Ok((roots, resolve_lock))
}

/// Runs an install or update.
pub fn run(request: Request, opts: &Options) -> Result<Outcome> {
    let lock_path = lockfile_path()?;
    let old_lock = load_lock(&lock_path)?;
    let registry = pick_registry(opts.registry.as_deref(), old_lock.as_ref())?;
    let home = home::mission_home()?;
    let index_cache = home.join("cache").join("index");
    let archive_cache = home.join("cache").join("archives");
    let dir = install_dir(opts.dir.as_deref())?;
    let (roots, resolve_lock) = plan_roots(&request, old_lock.as_ref())?;
    let mut trust = TrustStore::load()?;

    // --locked with everything cached: no request at all.
    let mut offline = opts.offline;
    if opts.locked && !offline {
        if let Some(old) = &old_lock {
            let cached = SparseIndex::new(registry.clone(), &index_cache, true);
            let complete = resolve::resolve(&cached, &roots, resolve_lock.as_ref())
                .ok()
                .map(|res| Lockfile::from_resolution(&res, registry.key()))
                .is_some_and(|lock| {
                    lock == *old
                        && lock
                            .missions()
                            .all(|m| archive_path(&archive_cache, &m.cksum).is_file())
                });
            if complete {
                offline = true;
                note("using the cached index and archives the lock pins (--locked, nothing to fetch); the node's snapshot was not checked");
            }
        }
    }

    let index = SparseIndex::new(registry.clone(), &index_cache, offline);
    if !offline {
        check_snapshot(&index, &mut trust)?;
    }

    let resolution = resolve::resolve(&index, &roots, resolve_lock.as_ref())
        .map_err(|e| resolve_error(e, &index, offline))?;
    let new_lock = Lockfile::from_resolution(&resolution, registry.key());

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

    // Author keys: the one pinned for each name (trust store, else the lock) must sign.
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
        if let Some(pinned) = pinned {
            if pinned != entry.key
                && !trust::accept_key_change(&index, &entry.name, &pinned, &entry.key)?
            {
                bail!(
                    "author key check failed for `{}` {}: it is signed by key {}, but key {} is pinned for `{}` (in {} or missions.lock); refusing it. If the author really changed keys, check with them, then remove the `{}` line from [authors] in {} and the mission from missions.lock",
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

    let order: Vec<IndexEntry> = resolution
        .install_order()
        .into_iter()
        .map(|p| p.entry.clone())
        .collect();
    let archives = fetch_archives(&index, &order, &archive_cache, offline)?;

    let removed: Vec<String> = old_lock
        .as_ref()
        .map(|old| {
            old.missions()
                .filter(|m| new_lock.get(&m.name).is_none())
                .map(|m| m.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let installed = put_in_place(&dir, &order, &archives, &removed, &new_lock, &lock_path)?;

    for entry in &order {
        trust.pin_author_key(&entry.name, &entry.key);
    }
    trust.save()?;

    Ok(Outcome {
        installed,
        removed,
        lockfile: lock_path,
        network: index.used_network(),
    })
}

fn cwd_display() -> String {
    std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| ".".into())
}

fn note(message: &str) {
    eprintln!("note: {message}");
}

/// What differs between two lockfiles, one phrase per mission.
pub fn lock_changes(old: &Lockfile, new: &Lockfile) -> Vec<String> {
    let mut changes = Vec::new();
    for m in new.missions() {
        match old.get(&m.name) {
            None => changes.push(format!("`{}` {} would be added", m.name, m.version)),
            Some(o) if o.version != m.version => changes.push(format!(
                "`{}` would go from {} to {}",
                m.name, o.version, m.version
            )),
            Some(o) if o != m => changes.push(format!(
                "`{}` {} would change its checksum, key, registry or dependencies",
                m.name, m.version
            )),
            Some(_) => {}
        }
    }
    for o in old.missions() {
        if new.get(&o.name).is_none() {
            changes.push(format!("`{}` {} would be removed", o.name, o.version));
        }
    }
    changes
}

/// Fetches `config.json` and the signed snapshot, and verifies the snapshot against the
/// pinned node key (pinning it on first contact). Stores the accepted snapshot.
fn check_snapshot(index: &SparseIndex, trust: &mut TrustStore) -> Result<()> {
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
    let get_text = |path: &str| -> Result<String> {
        let reply = index.get(path, None)?;
        if reply.status != 200 {
            return Err(reply.error("fetching the signed snapshot").into());
        }
        String::from_utf8(reply.body)
            .with_context(|| format!("{}{path} is not UTF-8", registry.base_url))
    };
    let json = get_text("/index/snapshot.json")?;
    let sig = get_text("/index/snapshot.json.minisig")?;
    let previous = trust.last_snapshot(&registry)?;
    let accepted = snapshot::verify_snapshot_after(&json, &sig, &pk, previous.as_ref(), chrono::Utc::now())
        .map_err(|e| {
            anyhow!(
                "snapshot check failed for the registry `{}`: {e}. Nothing was installed. The node (or something between it and you) serves an index this client must not trust; try again later or ask the node's operator. If the node's key really changed, remove its `node-key` from {}",
                registry.display(),
                trust::path().map(|p| p.display().to_string()).unwrap_or_default()
            )
        })?;
    trust.set_snapshot(&registry, &accepted)?;
    trust.save()
}

/// Turns a resolution failure into advice.
fn resolve_error(e: ResolveError, index: &SparseIndex, offline: bool) -> anyhow::Error {
    match &e {
        ResolveError::NotFound { name, .. } => {
            let close = suggestions(index, name, offline);
            if close.is_empty() {
                anyhow!("{e}; search with `mission search WORD`")
            } else {
                anyhow!(
                    "{e}; did you mean {}?",
                    close
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
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
            (score >= 0.5 && key != wanted).then(|| (score, n.to_owned()))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

fn archive_path(cache: &Path, cksum: &str) -> PathBuf {
    cache.join(format!("{cksum}.mission"))
}

/// Checks an archive against its index entry; the error says which check failed.
pub fn verify_archive(entry: &IndexEntry, bytes: &[u8]) -> Result<()> {
    let what = format!("`{}` {}", entry.name, entry.vers);
    let actual = archive::cksum(bytes);
    if actual != entry.cksum {
        bail!(
            "checksum check failed for {what}: the archive's SHA-256 is {actual}, but the index says {}. The download was corrupted or the node serves altered bytes; nothing was installed. Try again; if it persists, tell the node's operator",
            entry.cksum
        );
    }
    let pk = PublicKey::parse(&entry.key).map_err(|e| {
        anyhow!("signature check failed for {what}: the index entry's key `{}` is not a minisign public key ({e}); nothing was installed. Tell the node's operator", entry.key)
    })?;
    signing::verify_archive(&pk, &entry.sig, bytes, &entry.name, &entry.vers).map_err(|e| {
        anyhow!(
            "signature check failed for {what}: {e}. The index entry's signature does not vouch for this archive by the key {}; the index was altered or is corrupt. Nothing was installed; tell the node's operator",
            entry.key
        )
    })?;
    Ok(())
}

/// Every archive of `entries`, verified, keyed by cksum: from the archive cache, else
/// downloaded (a few at a time) through a temporary file into the cache.
fn fetch_archives(
    index: &SparseIndex,
    entries: &[IndexEntry],
    cache: &Path,
    offline: bool,
) -> Result<BTreeMap<String, Vec<u8>>> {
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let progress = std::io::stderr().is_terminal();
    let queue = Mutex::new(entries.iter().collect::<Vec<_>>());
    let results: Mutex<Vec<(String, Result<Vec<u8>>)>> = Mutex::new(Vec::new());
    let workers = PARALLEL_DOWNLOADS.min(entries.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(entry) = next else { break };
                let got = one_archive(index, entry, cache, offline, progress);
                if let Ok(mut r) = results.lock() {
                    r.push((entry.cksum.clone(), got));
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| anyhow!("a download thread failed"))?;
    let mut archives = BTreeMap::new();
    let mut errors = Vec::new();
    for (cksum, got) in results {
        match got {
            Ok(bytes) => {
                archives.insert(cksum, bytes);
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        errors.sort();
        bail!("{}", errors.join("\nerror: "));
    }
    Ok(archives)
}

fn one_archive(
    index: &SparseIndex,
    entry: &IndexEntry,
    cache: &Path,
    offline: bool,
    progress: bool,
) -> Result<Vec<u8>> {
    let path = archive_path(cache, &entry.cksum);
    if let Ok(bytes) = std::fs::read(&path) {
        match verify_archive(entry, &bytes) {
            Ok(()) => return Ok(bytes),
            // A corrupt cached copy is dropped and fetched again; any other failure is the
            // index's, and fetching again would not help.
            Err(_) if archive::cksum(&bytes) != entry.cksum && !offline => {
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => return Err(e),
        }
    }
    if offline {
        bail!(
            "`{}` {} is not in the archive cache ({}); run once without --offline to download it",
            entry.name,
            entry.vers,
            path.display()
        );
    }
    if progress {
        eprintln!("  Downloading {} {}", entry.name, entry.vers);
    }
    let url_path = format!("/api/v1/missions/{}/{}/download", entry.name, entry.vers);
    let bytes = download(index, &url_path)
        .with_context(|| format!("downloading `{}` {}", entry.name, entry.vers))?;
    verify_archive(entry, &bytes)?;
    sparse_client::write_atomic(&path, &bytes)
        .with_context(|| format!("caching `{}` {}", entry.name, entry.vers))?;
    Ok(bytes)
}

fn download(index: &SparseIndex, path: &str) -> Result<Vec<u8>> {
    let reply = index.get_limited(path, MAX_ARCHIVE_BYTES + 1)?;
    if reply.status != 200 {
        return Err(reply.error("the node did not hand out the archive").into());
    }
    if reply.body.len() as u64 > MAX_ARCHIVE_BYTES {
        bail!(
            "GET {}: the archive is larger than {MAX_ARCHIVE_BYTES} bytes",
            reply.url
        );
    }
    Ok(reply.body)
}

/// Unpacks every archive into a staging folder, then swaps them into `dir` and writes the
/// lockfile; on any failure, what was there before is put back.
fn put_in_place(
    dir: &Path,
    order: &[IndexEntry],
    archives: &BTreeMap<String, Vec<u8>>,
    removed: &[String],
    lock: &Lockfile,
    lock_path: &Path,
) -> Result<Vec<Installed>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".mission-install-")
        .tempdir_in(dir)
        .with_context(|| format!("creating a staging folder in {}", dir.display()))?;
    let fresh = staging.path().join("new");
    let backup = staging.path().join("old");
    for d in [&fresh, &backup] {
        std::fs::create_dir(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let limits = ArchiveLimits::default();
    for entry in order {
        let bytes = archives
            .get(&entry.cksum)
            .ok_or_else(|| anyhow!("internal: the archive of `{}` was not fetched", entry.name))?;
        archive::unpack_archive(bytes, &fresh.join(&entry.name), &limits).with_context(|| {
            format!(
                "unpacking `{}` {}: the archive is not a valid package; nothing was installed",
                entry.name, entry.vers
            )
        })?;
    }

    // Swap: each step recorded so it can be undone.
    enum Step {
        Placed { name: String, had_old: bool },
        Removed { name: String },
    }
    let mut steps: Vec<Step> = Vec::new();
    let undo = |steps: &mut Vec<Step>| {
        while let Some(step) = steps.pop() {
            match step {
                Step::Placed { name, had_old } => {
                    let _ = std::fs::rename(dir.join(&name), fresh.join(&name));
                    if had_old {
                        let _ = std::fs::rename(backup.join(&name), dir.join(&name));
                    }
                }
                Step::Removed { name } => {
                    let _ = std::fs::rename(backup.join(&name), dir.join(&name));
                }
            }
        }
    };
    let mut swap = || -> Result<()> {
        for entry in order {
            let target = dir.join(&entry.name);
            let had_old = std::fs::symlink_metadata(&target).is_ok();
            if had_old {
                std::fs::rename(&target, backup.join(&entry.name))
                    .with_context(|| format!("moving the old {} aside", target.display()))?;
            }
            if let Err(e) = std::fs::rename(fresh.join(&entry.name), &target) {
                if had_old {
                    let _ = std::fs::rename(backup.join(&entry.name), &target);
                }
                return Err(e).with_context(|| format!("putting {} in place", target.display()));
            }
            steps.push(Step::Placed {
                name: entry.name.clone(),
                had_old,
            });
        }
        for name in removed {
            let target = dir.join(name);
            if std::fs::symlink_metadata(&target).is_ok() {
                std::fs::rename(&target, backup.join(name))
                    .with_context(|| format!("removing {}", target.display()))?;
                steps.push(Step::Removed { name: name.clone() });
            }
        }
        lock.write_atomic(lock_path)
            .with_context(|| format!("writing {}", lock_path.display()))?;
        Ok(())
    };
    if let Err(e) = swap() {
        undo(&mut steps);
        return Err(e.context("the earlier install and missions.lock were left as they were"));
    }
    Ok(order
        .iter()
        .map(|e| Installed {
            name: e.name.clone(),
            version: e.vers.clone(),
            cksum: e.cksum.clone(),
            key: e.key.clone(),
            path: dir.join(&e.name),
        })
        .collect())
}

/// `mission remove NAME`: its folder and its lock entry, refusing when a locked mission
/// depends on it.
pub fn remove(name: &str, dir: Option<&Path>) -> Result<String> {
    let lock_path = lockfile_path()?;
    let Some(mut lock) = load_lock(&lock_path)? else {
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
                format!("; did you mean {}?", close.join(", "))
            }
        );
    };
    let users: Vec<String> = lock
        .missions()
        .filter(|m| {
            m.dependencies
                .iter()
                .any(|d| collision_key(&d.name) == collision_key(&locked.name))
        })
        .map(|m| format!("`{}` {}", m.name, m.version))
        .collect();
    if !users.is_empty() {
        bail!(
            "`{}` is needed by {}; remove those first",
            locked.name,
            users.join(", ")
        );
    }
    lock.remove(&locked.name);
    let dir = install_dir(dir)?;
    let target = dir.join(&locked.name);
    let aside = if std::fs::symlink_metadata(&target).is_ok() {
        let tmp = tempfile::Builder::new()
            .prefix(".mission-remove-")
            .tempdir_in(&dir)
            .with_context(|| format!("creating a temporary folder in {}", dir.display()))?;
        let moved = tmp.path().join(&locked.name);
        std::fs::rename(&target, &moved)
            .with_context(|| format!("moving {} aside", target.display()))?;
        Some((tmp, moved))
    } else {
        None
    };
    if let Err(e) = lock.write_atomic(&lock_path) {
        if let Some((_, moved)) = &aside {
            let _ = std::fs::rename(moved, &target);
        }
        return Err(e).with_context(|| format!("writing {}", lock_path.display()));
    }
    Ok(format!("{} {}", locked.name, locked.version))
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
    }
}
