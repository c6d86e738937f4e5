//! Fetching the index files a resolution is about to read, before it reads them.
//!
//! The resolver reads one name at a time and learns a name's dependencies only from its
//! file, so reading the index on demand costs one round trip per level of the dependency
//! graph: twenty for a chain of twenty. [`prefetch_index`] fetches ahead instead, with
//! [`PARALLEL_REQUESTS`] requests in flight:
//!
//! - the roots (asking the node for its prefetch hint: the files of everything they may
//!   need, however deep; ARCHITECTURE section 4) and every name the lockfile pins;
//! - each file hinted, as soon as the hint arrives;
//! - as each file arrives, the dependencies of the version its name would likely get (its
//!   locked version, else the highest unyanked one meeting the requirements seen so far),
//!   if not asked for yet. The caller is told each such version, so its archive can be
//!   fetched meanwhile.
//!
//! Without a hint (an older node, a cargo-style static index) this is still one round trip
//! per level, but each level is fetched as soon as the file naming it arrives, not when
//! the slowest file of the level before has. A guess that turns out wrong, or a hint that
//! names too much, costs extra requests, never a wrong answer: the resolver reads
//! everything it needs itself, and every file is checked where it is used.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::sync::Mutex;

use mission_index::entry::IndexEntry;
use mission_index::layout;
use mission_index::lockfile::Lockfile;
use mission_index::resolve::{IndexReader, Requirement};
use semver::VersionReq;

use crate::sparse_client::{SparseIndex, PARALLEL_REQUESTS};

/// One fetch for the workers: an index path, and whether to ask for the prefetch hint.
type Job = (String, bool);

/// What a worker found: the path, whether the file could be read (missing counts as read),
/// and the paths the node hinted.
type Found = (String, bool, Vec<String>);

/// Fetches, in parallel, the index files resolving `roots` (with `lock`) will read, as
/// described in the module documentation. `likely` is told each guessed version as soon
/// as its file is read. Errors are not reported here: a file that could not be fetched is
/// read again by the resolver, which reports the error where it matters.
pub fn prefetch_index(
    index: &SparseIndex,
    roots: &[Requirement],
    lock: Option<&Lockfile>,
    likely: &dyn Fn(&IndexEntry),
) {
    let (jobs, job_queue) = mpsc::channel::<Job>();
    let job_queue = Mutex::new(job_queue);
    let (found_tx, found) = mpsc::channel::<Found>();
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_REQUESTS {
            let found_tx = found_tx.clone();
            let job_queue = &job_queue;
            scope.spawn(move || loop {
                // The lock is held while waiting, so idle workers queue on the mutex.
                let job = job_queue.lock().ok().and_then(|q| q.recv().ok());
                let Some((path, hint)) = job else { break };
                let (read, hinted) = if hint {
                    match index.fetch_with_hint(&path) {
                        Ok((_, hinted)) => (true, hinted),
                        Err(e) => {
                            tracing::debug!(%path, error = %e, "prefetch failed; the resolver will read it again");
                            (false, Vec::new())
                        }
                    }
                } else {
                    match index.fetch(&path) {
                        Ok(_) => (true, Vec::new()),
                        Err(e) => {
                            tracing::debug!(%path, error = %e, "prefetch failed; the resolver will read it again");
                            (false, Vec::new())
                        }
                    }
                };
                if found_tx.send((path, read, hinted)).is_err() {
                    break;
                }
            });
        }
        drop(found_tx);
        let mut walk = Walk {
            jobs,
            lock,
            requested: BTreeSet::new(),
            in_flight: 0,
            arrived: BTreeMap::new(),
            reached: BTreeSet::new(),
            waiting: BTreeMap::new(),
            reqs: BTreeMap::new(),
        };
        let mut ready = Vec::new();
        for root in roots {
            walk.require(&root.name, &root.req, true, &mut ready);
        }
        for m in lock.into_iter().flat_map(Lockfile::missions) {
            walk.reach(&m.name, false, &mut ready);
        }
        while walk.in_flight > 0 {
            let Ok((path, read, hinted)) = found.recv() else {
                break;
            };
            walk.in_flight -= 1;
            walk.arrived.insert(path.clone(), read);
            for hinted_path in hinted {
                walk.request(hinted_path, false);
            }
            if let Some(name) = walk.waiting.remove(&path) {
                if read {
                    ready.push(name);
                }
            }
            while let Some(name) = ready.pop() {
                walk.guess(index, &name, likely, &mut ready);
            }
        }
        // Dropping the job sender ends the workers.
        drop(walk);
    });
}

/// The state of one walk (see [`prefetch_index`]); names are keyed by index path, which
/// folds case as the index does.
struct Walk<'a> {
    jobs: mpsc::Sender<Job>,
    lock: Option<&'a Lockfile>,
    /// Paths asked for, fetched or not.
    requested: BTreeSet<String>,
    /// Requests sent and not answered yet.
    in_flight: usize,
    /// Paths whose fetch has finished: `true` when the file could be read (or the index
    /// has no such file).
    arrived: BTreeMap<String, bool>,
    /// Paths whose likely version has been (or is about to be) guessed.
    reached: BTreeSet<String>,
    /// Reached names whose file has not arrived yet, by path.
    waiting: BTreeMap<String, String>,
    /// The requirements seen so far on each name, by path.
    reqs: BTreeMap<String, Vec<VersionReq>>,
}

impl Walk<'_> {
    fn request(&mut self, path: String, hint: bool) {
        if self.requested.insert(path.clone()) && self.jobs.send((path, hint)).is_ok() {
            self.in_flight += 1;
        }
    }

    /// Notes that something requires `name` at `req`, and reaches it.
    fn require(&mut self, name: &str, req: &VersionReq, hint: bool, ready: &mut Vec<String>) {
        let Ok(path) = layout::entry_path(name) else {
            return;
        };
        self.reqs.entry(path).or_default().push(req.clone());
        self.reach(name, hint, ready);
    }

    /// Marks `name` as needed: its version is guessed once its file is there (now, via
    /// `ready`, if it already is).
    fn reach(&mut self, name: &str, hint: bool, ready: &mut Vec<String>) {
        let Ok(path) = layout::entry_path(name) else {
            return;
        };
        if !self.reached.insert(path.clone()) {
            return;
        }
        match self.arrived.get(&path) {
            Some(true) => ready.push(name.to_owned()),
            // The resolver reads it again and reports why it cannot.
            Some(false) => {}
            None => {
                self.waiting.insert(path.clone(), name.to_owned());
                self.request(path, hint);
            }
        }
    }

    /// Guesses the version `name` will get (its file is in memory), tells `likely`, and
    /// reaches its dependencies.
    fn guess(
        &mut self,
        index: &SparseIndex,
        name: &str,
        likely: &dyn Fn(&IndexEntry),
        ready: &mut Vec<String>,
    ) {
        let Ok(Some(entries)) = IndexReader::entries(index, name) else {
            return;
        };
        let Ok(path) = layout::entry_path(name) else {
            return;
        };
        let locked = self
            .lock
            .and_then(|l| l.get(name))
            .map(|m| m.version.clone());
        let wanted = self.reqs.get(&path).cloned().unwrap_or_default();
        let likely_entry = entries
            .iter()
            .filter_map(|e| e.version().ok().map(|v| (v, e)))
            .filter(|(v, e)| {
                Some(v) == locked.as_ref() || (!e.yanked && wanted.iter().all(|r| r.matches(v)))
            })
            .max_by(|(a, _), (b, _)| {
                let a_locked = Some(a) == locked.as_ref();
                let b_locked = Some(b) == locked.as_ref();
                a_locked.cmp(&b_locked).then_with(|| a.cmp(b))
            });
        let Some((_, entry)) = likely_entry else {
            return;
        };
        likely(entry);
        for dep in &entry.deps {
            match VersionReq::parse(&dep.req) {
                Ok(req) => self.require(&dep.name, &req, false, ready),
                Err(_) => self.reach(&dep.name, false, ready),
            }
        }
    }
}
