//! A client of a node's sparse index (`/index/...`), with an on-disk cache.
//!
//! Each file fetched is kept under `MISSION_HOME/cache/index/<registry key>/<path>`, its
//! strong ETag on a first line of its own (`mission-cache-etag <ETAG>`, which no index line
//! can be, as index lines are JSON), so body and ETag are replaced together by one rename;
//! the next fetch sends `If-None-Match` and reuses the copy on `304 Not Modified`. (Caches
//! written before kept the ETag in `<path>.etag` beside a bare copy; those are still read,
//! and replaced on the next fetch.) A name the index does not have (404) drops its cached
//! copy.
//! Files fetched are written to the cache (and files gone from the index removed from it)
//! by [`SparseIndex::flush_cache`] or when the reader is dropped, not while a resolution
//! waits for the next file: creating files is the slow part on many disks, and an install
//! flushes while it downloads archives. An installer holds these changes back until the
//! node's signed snapshot verified ([`SparseIndex::hold_cache`]).
//! Offline, only the cache is read, and a file missing from it is an error naming it.
//!
//! [`SparseIndex`] implements [`IndexReader`], so `resolve()` drives which files are fetched:
//! only those of the names the resolution reaches. Each file is fetched at most once per run
//! (kept in memory). [`SparseIndex::fetch_with_hint`] also asks the node for its prefetch
//! hint (`Prefer: mission-closure`; docs/sparse-index.md): the index files of everything
//! the file's versions may need, so a caller can fetch a whole dependency tree in parallel
//! instead of one level per round trip. A hint is only a list of files to fetch early:
//! what is used is still what the resolution reads and checks.
//!
//! A registry whose index is read over git ([`Registry::git_index`]) is answered from a bare
//! clone instead ([`crate::git_index`]): the index files come from the commit fetched once
//! per run (the last accepted one when offline; that one moves where the sparse cache would
//! be written, so [`SparseIndex::hold_cache`] holds it too), with no prefetch hints, and
//! everything else (the API, archives, the signed snapshot) still from the node's base URL.
//! The snapshot read through [`SparseIndex::get`] must then name the fetched commit as its
//! `head` ([`SparseIndex::git_commit`]), or it is refused, as a mirror refuses it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use mission_index::entry::IndexEntry;
use mission_index::index_file_signature::{self, IndexFileError, IndexFileSignature};
use mission_index::layout::{self, MAX_HINTED, PREFETCH_PREFERENCE as CLOSURE_PREFERENCE};
use mission_index::resolve::IndexReader;
use mission_index::signing::PublicKey;
use mission_index::snapshot::Snapshot;

use crate::git_index::GitIndex;
use crate::registry::{Registry, TokenSource};
use crate::request_gate::{Lane, RequestGate};
use mission_index::atomic_file;

/// The most bytes one index file may have.
const MAX_INDEX_FILE: u64 = 64 * 1024 * 1024;

/// Why an index file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SparseError {
    #[error("`{path}` is not in the index cache {cache} (offline); run the command once without --offline to fill it")]
    NotCached { path: String, cache: PathBuf },
    #[error("GET {url}: {message}")]
    Http { url: String, message: String },
    #[error("{path}: {message}")]
    Cache { path: PathBuf, message: String },
    #[error("index file `{path}` from {registry}: {message}")]
    Parse {
        path: String,
        registry: String,
        message: String,
    },
    #[error("`{name}` is not a valid mission name: {message}")]
    Name { name: String, message: String },
    #[error("{message}")]
    Git { message: String },
    #[error("index file {url} from {registry} was refused: {source}. Nothing was installed: the node (or a mirror or proxy between it and you) serves an index file its signed snapshot does not cover, altered or not from the node whose key is pinned for this registry")]
    FileSignature {
        url: String,
        registry: String,
        #[source]
        source: IndexFileError,
    },
    #[error("index file {url} from {registry} is signed for index head {signed}, but the node's signed snapshot names head {expected} (the command fetched everything again twice, in case the node had just published; if it publishes very often, run it again; if it persists, the node or something between it and you serves old files)")]
    FileHead {
        url: String,
        registry: String,
        signed: String,
        expected: String,
    },
    #[error("{url}: the signed snapshot names index commit {head}, but the git index {git_url} was fetched at commit {fetched}: the node serves a snapshot of another index than its git index, so neither is trusted (the command fetched both again twice, in case the node had just published; if it publishes very often, run it again)")]
    SnapshotHead {
        url: String,
        head: String,
        git_url: String,
        fetched: String,
    },
}

/// The folder name of a registry's cache: its key with anything but letters, digits, `-`,
/// `_` and `.` replaced by `_`.
pub fn cache_key(registry: &Registry) -> String {
    registry
        .key()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// How many requests a [`SparseIndex`] runs at once, index files and archive downloads
/// together ([`RequestGate`]); the agent keeps as many idle connections per host.
pub const PARALLEL_REQUESTS: usize = 8;

/// An HTTP agent for reading a node: statuses are answers, not errors; connections are
/// kept for reuse. A node that stops sending or receiving for a minute, or a connection
/// not made in 30 s, fails the request. There is deliberately no overall deadline: with
/// one, ureq resolves the host name on a new thread for every request (to bound the
/// lookup), which cost an install of 51 missions about a hundred thread spawns.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .timeout_per_write(Some(Duration::from_secs(60)))
        // The most requests a SparseIndex has in flight at once (its RequestGate).
        .max_idle_connections_per_host(PARALLEL_REQUESTS)
        // Buffers are allocated and zeroed for every connection; ureq's default of 128 KiB
        // each way cost an install some 600 page faults. Requests are a few hundred
        // bytes, index files and most archives a few KiB.
        .input_buffer_size(32 * 1024)
        .output_buffer_size(16 * 1024)
        .build()
        .into()
}

/// The sparse index of one registry.
pub struct SparseIndex {
    agent: ureq::Agent,
    registry: Registry,
    token: Option<String>,
    /// Where the token came from, to advise on a refusal.
    token_source: Option<TokenSource>,
    cache: PathBuf,
    /// For a registry whose index is read over git: the clone that answers the index
    /// files instead of the node's sparse index.
    git: Option<GitIndex>,
    offline: bool,
    /// Index paths answered from the network in this run (fetched or revalidated).
    requested: Mutex<BTreeSet<String>>,
    /// Index files already read in this run (`None`: the index has no such file).
    memo: Mutex<BTreeMap<String, Option<Vec<u8>>>>,
    /// The prefetch hints the node gave with files in `memo`, by path.
    hints: Mutex<BTreeMap<String, Vec<String>>>,
    /// Changes to the cache from this run's fetches, not yet made.
    pending: Mutex<Vec<CacheUpdate>>,
    /// While set, the cache is left alone: what the node served is kept in memory only
    /// (see [`SparseIndex::hold_cache`]).
    held: AtomicBool,
    /// Index files parsed in this run, by path (a resolution reads each name more than
    /// once: the index walk, then the resolver).
    parsed: Mutex<BTreeMap<String, Vec<IndexEntry>>>,
    /// At most [`PARALLEL_REQUESTS`] requests in flight, index files first.
    gate: RequestGate,
    /// Index files fetched over sparse HTTP whose signature is not checked yet (see
    /// [`SparseIndex::check_files`]); none of them is in the cache.
    unchecked: Mutex<Vec<Unchecked>>,
    /// The snapshot the fetched files must be signed for, once [`SparseIndex::check_files`]
    /// ran: later files are checked as they arrive.
    accepted: std::sync::OnceLock<Accepted>,
}

/// An index file received, not yet checked against the accepted snapshot.
struct Unchecked {
    path: String,
    url: String,
    body: Vec<u8>,
    /// The `Mission-Index-Signature` header it came with.
    signature: Option<String>,
    /// Where to write it in the cache once it checks (`None`: a `304`, the cached copy
    /// stays).
    store: Option<CacheSlot>,
}

/// Where a fetched index file goes in the cache: a [`PendingWrite`] but for the body.
struct CacheSlot {
    file: PathBuf,
    etag: Option<String>,
    legacy: bool,
}

/// What index files must be signed by and for: the pinned node key, and the node and head
/// of the snapshot accepted.
struct Accepted {
    key: PublicKey,
    node: String,
    head: String,
}

/// Where a node serves its signed snapshot.
const SNAPSHOT_PATH: &str = "/index/snapshot.json";

/// The first line of a cached index file: the SHA-256 of the body that follows (so a copy
/// damaged on disk is noticed and fetched again, instead of being revalidated with its ETag
/// and trusted for good), then the ETag the node served it with, if any:
/// `mission-cache-sha256 <64 hex> "etag"`.
const CACHE_LINE: &[u8] = b"mission-cache-sha256 ";

/// The first line of a cached index file in the format before [`CACHE_LINE`]: the ETag
/// only. Read, but its ETag is not sent (nothing vouches for the body), so the file is
/// fetched whole once and written again in the current format.
const ETAG_LINE: &[u8] = b"mission-cache-etag ";

/// A change to make to the cache: a fetched index file to store with its ETag, or (the
/// index has no such file any more) one to forget.
enum CacheUpdate {
    Store(PendingWrite),
    Forget(PathBuf),
}

impl CacheUpdate {
    fn apply(&self) -> Result<(), SparseError> {
        match self {
            CacheUpdate::Store(write) => write.write(),
            CacheUpdate::Forget(file) => {
                remove_optional(&legacy_etag_file(file))?;
                remove_optional(file)
            }
        }
    }
}

/// A fetched index file to write to the cache, with its ETag.
struct PendingWrite {
    file: PathBuf,
    body: Vec<u8>,
    etag: Option<String>,
    /// The copy it replaces was in the old layout, which may have left a `<file>.etag`.
    /// (Only then is it removed: an unlink, even of nothing, locks the folder for writing.)
    legacy: bool,
}

impl PendingWrite {
    fn write(&self) -> Result<(), SparseError> {
        // An ETag with a line break cannot be stored on one line: it is left out.
        let tag = self
            .etag
            .as_deref()
            .filter(|tag| !tag.contains(['\n', '\r']));
        let mut bytes = Vec::with_capacity(CACHE_LINE.len() + 66 + self.body.len() + 64);
        bytes.extend_from_slice(CACHE_LINE);
        bytes.extend_from_slice(mission_index::archive::cksum(&self.body).as_bytes());
        if let Some(tag) = tag {
            bytes.push(b' ');
            bytes.extend_from_slice(tag.as_bytes());
        }
        bytes.push(b'\n');
        bytes.extend_from_slice(&self.body);
        atomic_file::write(&self.file, &bytes)?;
        // A cache written before the header line kept the ETag beside the file.
        if self.legacy {
            remove_optional(&legacy_etag_file(&self.file))?;
        }
        Ok(())
    }
}

/// `<file>.etag`: where caches written before the ETag line kept it.
fn legacy_etag_file(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".etag");
    PathBuf::from(name)
}

/// A cached index file: its body, the ETag it was served with if known, and whether it is
/// in the old layout (ETag, if any, in `<file>.etag`).
#[derive(Debug, PartialEq)]
struct Cached {
    body: Vec<u8>,
    etag: Option<String>,
    legacy: bool,
}

/// The cached copy of an index file, `None` when there is none, or none to trust: cut off,
/// or damaged (its body no longer has the checksum it was written with). The ETag comes
/// back only with a body its checksum vouches for: a copy in an older format is read (for
/// `--offline`), but fetched whole when online.
fn read_cached(file: &Path) -> Result<Option<Cached>, SparseError> {
    let Some(bytes) = read_optional(file)? else {
        return Ok(None);
    };
    let header = |prefix: &[u8]| -> Option<(String, Vec<u8>)> {
        let rest = bytes.strip_prefix(prefix)?;
        let end = rest.iter().position(|b| *b == b'\n')?;
        let line = String::from_utf8(rest[..end].to_vec()).ok()?;
        Some((line, rest[end + 1..].to_vec()))
    };
    if bytes.starts_with(CACHE_LINE) {
        let checked = header(CACHE_LINE).and_then(|(line, body)| {
            let (sum, etag) = match line.split_once(' ') {
                Some((sum, etag)) => (sum.to_owned(), Some(etag.to_owned())),
                None => (line, None),
            };
            (mission_index::archive::cksum(&body) == sum).then_some((body, etag))
        });
        let Some((body, etag)) = checked else {
            tracing::warn!(path = %file.display(), "a cached index file is damaged; not using it");
            return Ok(None);
        };
        return Ok(Some(Cached {
            body,
            etag,
            legacy: false,
        }));
    }
    if bytes.starts_with(ETAG_LINE) {
        // Nothing vouches for this body: usable offline, fetched whole online.
        return Ok(header(ETAG_LINE).map(|(_, body)| Cached {
            body,
            etag: None,
            legacy: false,
        }));
    }
    // The oldest layout: a bare body, its ETag (if any) in `<file>.etag`; not sent either.
    Ok(Some(Cached {
        body: bytes,
        etag: None,
        legacy: true,
    }))
}

impl Drop for SparseIndex {
    /// Writes what is still pending; a cache that cannot be written only costs a fetch
    /// next time, and whoever needed to know has called [`SparseIndex::flush_cache`].
    fn drop(&mut self) {
        if let Err(e) = self.flush_cache() {
            tracing::warn!(error = %e, "writing the index cache");
        }
    }
}

impl SparseIndex {
    /// A reader of `registry` caching under `cache_root/<cache key>/`.
    ///
    /// A registry with a git index ([`Registry::git_index`]) is read from its bare clone in
    /// `<cache_root>/../git/<cache key>` (`MISSION_HOME/cache/git/...`), fetched on first use
    /// (not when `offline`), instead of over sparse HTTP; see [`crate::git_index`].
    pub fn new(registry: Registry, cache_root: &Path, offline: bool) -> SparseIndex {
        let (token, token_source) = match crate::registry::token(&registry) {
            Ok((token, source)) => (Some(token), Some(source)),
            Err(_) => (None, None),
        };
        let cache = cache_root.join(cache_key(&registry));
        let git = registry.git_url().map(|url| {
            let dir = cache_root
                .parent()
                .unwrap_or(cache_root)
                .join("git")
                .join(cache_key(&registry));
            GitIndex::new(
                url,
                &registry.base_url,
                dir,
                offline,
                token.clone(),
                crate::registry::refused_token_advice(&registry, token_source.as_ref()),
            )
        });
        SparseIndex {
            agent: agent(),
            registry,
            token,
            token_source,
            cache,
            git,
            offline,
            requested: Mutex::new(BTreeSet::new()),
            memo: Mutex::new(BTreeMap::new()),
            hints: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(Vec::new()),
            held: AtomicBool::new(false),
            parsed: Mutex::new(BTreeMap::new()),
            gate: RequestGate::new(PARALLEL_REQUESTS),
            unchecked: Mutex::new(Vec::new()),
            accepted: std::sync::OnceLock::new(),
        }
    }

    /// Checks every index file fetched over sparse HTTP so far against `snapshot`, which
    /// verified with the pinned node key `key`: each must carry the node's signature of its
    /// bytes for the snapshot's head and its own path (see
    /// [`mission_index::index_file_signature`]). Files fetched afterwards are checked as
    /// they arrive. Only checked files are written to the cache; a reader never checked
    /// (`search`, `info`) caches nothing it fetched.
    ///
    /// A file signed for another head is [`SparseError::FileHead`] (a publish between two
    /// requests, or an old file replayed); any other failure is
    /// [`SparseError::FileSignature`].
    pub fn check_files(&self, key: &PublicKey, snapshot: &Snapshot) -> Result<(), SparseError> {
        let accepted = self.accepted.get_or_init(|| Accepted {
            key: key.clone(),
            node: snapshot.node.clone(),
            head: snapshot.head.clone(),
        });
        let files = match self.unchecked.lock() {
            Ok(mut unchecked) => std::mem::take(&mut *unchecked),
            Err(_) => return Err(self.poisoned()),
        };
        let mut prepared = Vec::with_capacity(files.len());
        for file in &files {
            prepared.push(self.prepare(accepted, file)?);
        }
        // All at once; one by one only to find the one that fails.
        if index_file_signature::verify_batch(&prepared.iter().collect::<Vec<_>>()).is_err() {
            for (file, signature) in files.iter().zip(&prepared) {
                signature
                    .verify()
                    .map_err(|e| self.refused(accepted, file, e))?;
            }
        }
        self.store_checked(files);
        Ok(())
    }

    /// A file just received: checked now when a snapshot was accepted, else kept for
    /// [`SparseIndex::check_files`].
    fn received(&self, file: Unchecked) -> Result<(), SparseError> {
        match self.accepted.get() {
            Some(accepted) => {
                self.prepare(accepted, &file)?
                    .verify()
                    .map_err(|e| self.refused(accepted, &file, e))?;
                self.store_checked(vec![file]);
                Ok(())
            }
            None => {
                self.unchecked
                    .lock()
                    .map_err(|_| self.poisoned())?
                    .push(file);
                Ok(())
            }
        }
    }

    fn prepare(
        &self,
        accepted: &Accepted,
        file: &Unchecked,
    ) -> Result<IndexFileSignature, SparseError> {
        IndexFileSignature::prepare(
            &accepted.key,
            file.signature.as_deref(),
            &file.body,
            &accepted.node,
            &accepted.head,
            &file.path,
        )
        .map_err(|e| self.refused(accepted, file, e))
    }

    fn refused(&self, accepted: &Accepted, file: &Unchecked, e: IndexFileError) -> SparseError {
        let registry = self.registry.display().to_owned();
        match e {
            IndexFileError::OtherHead { signed, .. } => SparseError::FileHead {
                url: file.url.clone(),
                registry,
                signed,
                expected: accepted.head.clone(),
            },
            source => SparseError::FileSignature {
                url: file.url.clone(),
                registry,
                source,
            },
        }
    }

    fn store_checked(&self, files: Vec<Unchecked>) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.extend(files.into_iter().filter_map(|f| {
                let slot = f.store?;
                Some(CacheUpdate::Store(PendingWrite {
                    file: slot.file,
                    body: f.body,
                    etag: slot.etag,
                    legacy: slot.legacy,
                }))
            }));
        }
    }

    fn poisoned(&self) -> SparseError {
        SparseError::Http {
            url: self.registry.url("/index/"),
            message: "a thread reading the index failed".into(),
        }
    }

    /// Keeps what is fetched from now on out of the cache (neither written nor removed,
    /// not even when the reader is dropped) until [`SparseIndex::release_cache`]: an
    /// installer holds it until the node's signed snapshot verified, so a node it must not
    /// trust changes nothing on disk.
    pub fn hold_cache(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    /// Lets [`SparseIndex::flush_cache`] (and dropping the reader) update the cache again.
    pub fn release_cache(&self) {
        self.held.store(false, Ordering::SeqCst);
    }

    /// Makes the cache changes of the fetches so far (unless held), [`PARALLEL_REQUESTS`] at
    /// a time; the first failure is returned (the others are still attempted).
    pub fn flush_cache(&self) -> Result<(), SparseError> {
        if self.held.load(Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(git) = &self.git {
            git.accept()
                .map_err(|message| SparseError::Git { message })?;
        }
        let pending = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return Ok(()),
        };
        if pending.is_empty() {
            return Ok(());
        }
        let workers = PARALLEL_REQUESTS.min(pending.len());
        let queue = Mutex::new(pending);
        let first_error: Mutex<Option<SparseError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop());
                    let Some(update) = next else { break };
                    if let Err(e) = update.apply() {
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                });
            }
        });
        match first_error.into_inner() {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether a network request was made through this reader.
    pub fn used_network(&self) -> bool {
        self.git.as_ref().is_some_and(GitIndex::fetched)
            || self.requested.lock().map(|r| !r.is_empty()).unwrap_or(true)
    }

    /// For a git index: the commit its files are read from (fetched in this run, or when
    /// offline the last one accepted), fetching it if not done yet. `None` for a sparse
    /// index.
    pub fn git_commit(&self) -> Result<Option<String>, SparseError> {
        match &self.git {
            Some(git) => git
                .commit()
                .map(Some)
                .map_err(|message| SparseError::Git { message }),
            None => Ok(None),
        }
    }

    /// A GET of `BASE/path` with the token when there is one.
    pub fn get(&self, path: &str, etag: Option<&str>) -> Result<Reply, SparseError> {
        self.get_with(path, etag, MAX_INDEX_FILE)
    }

    fn get_with(&self, path: &str, etag: Option<&str>, limit: u64) -> Result<Reply, SparseError> {
        let reply = self.get_url(&self.registry.url(path), etag, limit, true, Lane::Index)?;
        if path == SNAPSHOT_PATH && reply.status == 200 {
            self.check_snapshot_head(&reply)?;
        }
        Ok(reply)
    }

    /// With a git index, the signed snapshot must name the commit fetched, as a mirror
    /// checks (ARCHITECTURE section 6): the files read came from that commit, and the
    /// snapshot vouches for the head it names. (Its signature, `seq` and expiry are checked
    /// by the caller.) A sparse index has no commit to compare.
    fn check_snapshot_head(&self, reply: &Reply) -> Result<(), SparseError> {
        let (Some(git), Some(fetched)) = (&self.git, self.git_commit()?) else {
            return Ok(());
        };
        let head = serde_json::from_slice::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("head")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        if head != fetched {
            return Err(SparseError::SnapshotHead {
                url: reply.url.clone(),
                head: if head.is_empty() {
                    "nothing".to_owned()
                } else {
                    head
                },
                git_url: git.url().to_owned(),
                fetched,
            });
        }
        Ok(())
    }

    /// A GET of the absolute `url` reading at most `limit` bytes of the body; the token is
    /// sent only when `send_token` (the caller decides whether `url` may see it). It waits
    /// for a slot among the requests in flight in `lane`.
    pub fn get_url(
        &self,
        url: &str,
        etag: Option<&str>,
        limit: u64,
        send_token: bool,
        lane: Lane,
    ) -> Result<Reply, SparseError> {
        self.request(url, etag, limit, send_token, None, lane)
    }

    /// [`SparseIndex::get_url`], with a `Prefer` header when `prefer` is given.
    fn request(
        &self,
        url: &str,
        etag: Option<&str>,
        limit: u64,
        send_token: bool,
        prefer: Option<&str>,
        lane: Lane,
    ) -> Result<Reply, SparseError> {
        // Held until the whole body is read: the connection is busy until then.
        let _slot = self.gate.enter(lane);
        let url = url.to_owned();
        if let Ok(mut requested) = self.requested.lock() {
            requested.insert(url.clone());
        }
        tracing::debug!(%url, "GET");
        let mut request = self.agent.get(&url);
        if let Some(token) = self.token.as_ref().filter(|_| send_token) {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        if let Some(prefer) = prefer {
            request = request.header("Prefer", prefer);
        }
        let mut response = request.call().map_err(|e| SparseError::Http {
            url: url.clone(),
            message: format!("the node did not answer ({e}); check that it runs and that the registry URL is right (an install can also run from the cache with `--offline`)"),
        })?;
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let links: Vec<&str> = response
            .headers()
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let link = (!links.is_empty()).then(|| links.join(", "));
        let signature = response
            .headers()
            .get(index_file_signature::HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(limit)
            .read_to_end(&mut body)
            .map_err(|e| SparseError::Http {
                url: url.clone(),
                message: format!("reading the answer: {e}"),
            })?;
        Ok(Reply {
            url,
            status,
            etag,
            link,
            signature,
            body,
        })
    }

    /// The file at `/index/<path>`: read once per run; from the cache when offline or when
    /// the node says it has not changed, else fetched and cached. `None` when the index has
    /// no such file.
    pub fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>, SparseError> {
        self.fetch_memo(path, false).map(|(file, _)| file)
    }

    /// [`SparseIndex::fetch`], asking the node for its prefetch hint too: returns the file
    /// and the index paths (such as `ab/cd/abcd`) of everything its versions may need, as
    /// the node says. The hint is empty offline, when the file was read before in this
    /// run without asking for it, and from a node that gives none.
    pub fn fetch_with_hint(
        &self,
        path: &str,
    ) -> Result<(Option<Vec<u8>>, Vec<String>), SparseError> {
        self.fetch_memo(path, true)
    }

    fn fetch_memo(
        &self,
        path: &str,
        hint: bool,
    ) -> Result<(Option<Vec<u8>>, Vec<String>), SparseError> {
        if let Some(known) = self.memo.lock().ok().and_then(|m| m.get(path).cloned()) {
            let hinted = hint
                .then(|| self.hints.lock().ok()?.get(path).cloned())
                .flatten()
                .unwrap_or_default();
            return Ok((known, hinted));
        }
        let (got, hinted) = self.fetch_uncached(path, hint)?;
        if let Ok(mut memo) = self.memo.lock() {
            memo.insert(path.to_owned(), got.clone());
        }
        if hint {
            if let Ok(mut hints) = self.hints.lock() {
                hints.insert(path.to_owned(), hinted.clone());
            }
        }
        Ok((got, hinted))
    }

    fn fetch_uncached(
        &self,
        path: &str,
        hint: bool,
    ) -> Result<(Option<Vec<u8>>, Vec<String>), SparseError> {
        if let Some(git) = &self.git {
            let file = git
                .read(path)
                .map_err(|message| SparseError::Git { message })?;
            return Ok((file, Vec::new()));
        }
        let file = self.cache.join(path);
        let (cached, etag, legacy) = match read_cached(&file)? {
            Some(Cached { body, etag, legacy }) => (Some(body), etag, legacy),
            None => (None, None, false),
        };
        if self.offline {
            return match cached {
                Some(bytes) => Ok((Some(bytes), Vec::new())),
                None => Err(SparseError::NotCached {
                    path: format!("/index/{path}"),
                    cache: self.cache.clone(),
                }),
            };
        }
        let reply = self.request(
            &self.registry.url(&format!("/index/{path}")),
            etag.as_deref(),
            MAX_INDEX_FILE,
            true,
            hint.then_some(CLOSURE_PREFERENCE),
            Lane::Index,
        )?;
        let hinted = match (&reply.link, reply.status) {
            (Some(link), 200 | 304) if hint => self.hinted_paths(&reply.url, link),
            _ => Vec::new(),
        };
        match reply.status {
            304 => match cached {
                Some(bytes) => {
                    // The node vouches for the copy again, for its current head.
                    self.received(Unchecked {
                        path: path.to_owned(),
                        url: reply.url,
                        body: bytes.clone(),
                        signature: reply.signature,
                        store: None,
                    })?;
                    Ok((Some(bytes), hinted))
                }
                None => {
                    Err(reply.error("answered 304 Not Modified to a request without a cached copy"))
                }
            },
            200 => {
                let body = reply.body;
                self.received(Unchecked {
                    path: path.to_owned(),
                    url: reply.url,
                    body: body.clone(),
                    signature: reply.signature,
                    store: Some(CacheSlot {
                        file,
                        etag: reply.etag,
                        legacy,
                    }),
                })?;
                Ok((Some(body), hinted))
            }
            404 => {
                if let Ok(mut pending) = self.pending.lock() {
                    pending.push(CacheUpdate::Forget(file));
                }
                Ok((None, Vec::new()))
            }
            // Without a token, the node's own hint ("run `mission login`") would only repeat
            // the advice, less precisely: which registry, and the variables, are known here.
            401 if self.token.is_none() => Err(SparseError::Http {
                url: reply.url,
                message: format!(
                    "HTTP 401: the node serves its index only with a token, and {}",
                    crate::registry::no_token_advice(&self.registry)
                ),
            }),
            401 | 403 => Err(reply.error(&crate::registry::refused_token_advice(
                &self.registry,
                self.token_source.as_ref(),
            ))),
            _ => Err(reply.error("unexpected answer")),
        }
    }

    /// The index paths a `Link` header (the answer to `request_url`) names for prefetching:
    /// targets with `rel="prefetch"`, resolved against `request_url`, that are entry files
    /// of this registry's index (anything else is ignored), at most [`MAX_HINTED`].
    fn hinted_paths(&self, request_url: &str, link: &str) -> Vec<String> {
        // Both through `Url`, so that spellings of one address (`HOST:80`, upper case)
        // compare equal.
        let (Ok(base), Ok(index_root)) = (
            url::Url::parse(request_url),
            url::Url::parse(&self.registry.url("/index/")),
        ) else {
            return Vec::new();
        };
        let index_root = index_root.as_str();
        let mut out: Vec<String> = Vec::new();
        for value in link.split(',') {
            let Some((target, params)) = value
                .trim()
                .strip_prefix('<')
                .and_then(|rest| rest.split_once('>'))
            else {
                continue;
            };
            let prefetch = params.split(';').any(|param| {
                param.trim().split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_ascii_whitespace()
                            .any(|rel| rel.eq_ignore_ascii_case("prefetch"))
                })
            });
            let path = base
                .join(target)
                .ok()
                .and_then(|u| u.as_str().strip_prefix(index_root).map(str::to_owned))
                .filter(|p| layout::name_from_path(p).is_some());
            if let (true, Some(path)) = (prefetch, path) {
                if !out.contains(&path) {
                    out.push(path);
                }
            }
            if out.len() >= MAX_HINTED {
                break;
            }
        }
        out
    }

    /// The names whose index files are in the cache (for suggestions when offline).
    pub fn cached_names(&self) -> Vec<String> {
        if let Some(git) = &self.git {
            let mut names = git.names();
            names.sort();
            names.dedup();
            return names;
        }
        let mut names = Vec::new();
        collect_names(&self.cache, &self.cache, &mut names);
        names.sort();
        names.dedup();
        names
    }
}

fn collect_names(root: &Path, dir: &Path, names: &mut Vec<String>) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    for item in read.flatten() {
        let path = item.path();
        if path.is_dir() {
            collect_names(root, &path, names);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            if let Some(name) = layout::name_from_path(&rel) {
                names.push(name);
            }
        }
    }
}

/// One HTTP answer.
pub struct Reply {
    pub url: String,
    pub status: u16,
    pub etag: Option<String>,
    /// The `Link` header values, joined with `, `.
    pub link: Option<String>,
    /// The `Mission-Index-Signature` header: the node's signature of an index file.
    pub signature: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn error(&self, what: &str) -> SparseError {
        let text = String::from_utf8_lossy(&self.body);
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|j| {
                j.get("errors")?
                    .get(0)?
                    .get("detail")?
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| text.trim().chars().take(300).collect());
        SparseError::Http {
            url: self.url.clone(),
            message: format!("HTTP {}: {what}: {detail}", self.status),
        }
    }
}

impl IndexReader for SparseIndex {
    type Error = SparseError;

    fn entries(&self, name: &str) -> Result<Option<Vec<IndexEntry>>, SparseError> {
        let path = layout::entry_path(name).map_err(|e| SparseError::Name {
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        if let Some(known) = self.parsed.lock().ok().and_then(|p| p.get(&path).cloned()) {
            return Ok(Some(known));
        }
        let Some(bytes) = self.fetch(&path)? else {
            return Ok(None);
        };
        let parse = |message: String| SparseError::Parse {
            path: path.clone(),
            registry: self.registry.display().to_owned(),
            message,
        };
        let text = String::from_utf8(bytes).map_err(|_| parse("not UTF-8".into()))?;
        let entries = IndexEntry::parse_file(&text).map_err(|e| parse(e.to_string()))?;
        if let Ok(mut parsed) = self.parsed.lock() {
            parsed.insert(path, entries.clone());
        }
        Ok(Some(entries))
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, SparseError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SparseError::Cache {
            path: path.to_owned(),
            message: format!("reading the cached copy: {e}"),
        }),
    }
}

fn remove_optional(path: &Path) -> Result<(), SparseError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SparseError::Cache {
            path: path.to_owned(),
            message: format!("removing the stale cached copy: {e}"),
        }),
    }
}

impl From<atomic_file::WriteError> for SparseError {
    fn from(e: atomic_file::WriteError) -> SparseError {
        SparseError::Cache {
            message: format!("{}: {}", e.step, e.source),
            path: e.path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_at(base_url: &str) -> (tempfile::TempDir, SparseIndex) {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::sparse(None, base_url.to_owned());
        let index = SparseIndex::new(registry, dir.path(), true);
        (dir, index)
    }

    #[test]
    fn hinted_files_are_entry_files_of_this_index_only() {
        let (_dir, index) = index_at("http://node.example:7878/registry");
        let asked = "http://node.example:7878/registry/index/ap/p_/app_x";
        let link = [
            // Relative, as the node writes them; a second rel and upper-case REL are fine.
            "<../../1/b>; rel=\"prefetch\"",
            "<../../ab/cd/abcd>; REL=\"next prefetch\"",
            // Absolute, same index: taken; the same file twice: once.
            "<http://node.example:7878/registry/index/3/c/cde>; rel=prefetch",
            "<../../1/b>; rel=\"prefetch\"",
            // Not prefetch, not this index, not an entry file, not where the layout puts
            // it, climbing out, garbage: all ignored.
            "<../../2/xy>; rel=\"preload\"",
            "<http://evil.example/registry/index/2/xy>; rel=\"prefetch\"",
            "<http://node.example:7879/registry/index/2/xy>; rel=\"prefetch\"",
            "<../../config.json>; rel=\"prefetch\"",
            "<../../certs/2/xy>; rel=\"prefetch\"",
            "<../../ab/zz/abcd>; rel=\"prefetch\"",
            "<../../../../1/z>; rel=\"prefetch\"",
            "<../../1/B>; rel=\"prefetch\"",
            "../../1/q; rel=\"prefetch\"",
            "<../../1/r rel=\"prefetch\"",
        ]
        .join(", ");
        assert_eq!(
            index.hinted_paths(asked, &link),
            ["1/b", "ab/cd/abcd", "3/c/cde"]
        );
        // Another spelling of the same address is the same index.
        let (_dir, index) = index_at("http://NODE.example:7878/registry");
        assert_eq!(
            index.hinted_paths(asked, "<../../1/b>; rel=prefetch"),
            ["1/b"]
        );
    }

    #[test]
    fn a_hint_is_cut_at_its_bound() {
        let (_dir, index) = index_at("http://127.0.0.1:7878");
        let link: Vec<String> = (0..MAX_HINTED + 50)
            .map(|i| format!("</index/ab/cd/abcd{i}>; rel=prefetch"))
            .collect();
        let paths = index.hinted_paths("http://127.0.0.1:7878/index/1/a", &link.join(","));
        assert_eq!(paths.len(), MAX_HINTED);
        assert_eq!(paths[0], "ab/cd/abcd0");
    }

    #[test]
    fn a_cached_file_carries_its_checksum_and_etag_and_damage_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ab/cd/abcd");
        let body = b"{\"name\":\"abcd\"}\n".to_vec();
        let write = |etag: Option<&str>, legacy| {
            PendingWrite {
                file: file.clone(),
                body: body.clone(),
                etag: etag.map(str::to_owned),
                legacy,
            }
            .write()
            .unwrap()
        };
        let cached = |etag: Option<&str>, legacy| Cached {
            body: body.clone(),
            etag: etag.map(str::to_owned),
            legacy,
        };
        write(Some("\"x 1\""), false);
        assert_eq!(
            read_cached(&file).unwrap(),
            Some(cached(Some("\"x 1\""), false))
        );
        write(None, false);
        assert_eq!(read_cached(&file).unwrap(), Some(cached(None, false)));
        write(Some("\"bad\nline\""), false);
        assert_eq!(read_cached(&file).unwrap(), Some(cached(None, false)));

        // Damage to the body, cut-off files and a wrong checksum: no copy to trust.
        write(Some("\"x1\""), false);
        let good = std::fs::read(&file).unwrap();
        let mut edited = good.clone();
        let at = edited.len() - 4;
        edited[at] ^= 1;
        for damaged in [
            edited,
            good[..good.len() - 3].to_vec(),
            good[..30].to_vec(),
            [
                &good[..CACHE_LINE.len()],
                &b"00"[..],
                &good[CACHE_LINE.len() + 2..],
            ]
            .concat(),
        ] {
            std::fs::write(&file, &damaged).unwrap();
            assert_eq!(read_cached(&file).unwrap(), None, "{damaged:?}");
        }

        // Older formats are read, without their ETag: fetched whole when online.
        std::fs::write(
            &file,
            [&b"mission-cache-etag \"old\"\n"[..], &body].concat(),
        )
        .unwrap();
        assert_eq!(read_cached(&file).unwrap(), Some(cached(None, false)));
        std::fs::write(&file, &body).unwrap();
        std::fs::write(legacy_etag_file(&file), "\"old\"").unwrap();
        assert_eq!(read_cached(&file).unwrap(), Some(cached(None, true)));
        // Writing it again drops the side file.
        write(Some("\"new\""), true);
        assert!(!legacy_etag_file(&file).exists());
        assert_eq!(
            read_cached(&file).unwrap(),
            Some(cached(Some("\"new\""), false))
        );
        assert_eq!(read_cached(&dir.path().join("missing")).unwrap(), None);
    }
}
