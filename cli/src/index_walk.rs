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
//!   locked version, else the highest unyanked one meeting the requirements seen so far;
//!   guessed again if a later requirement rules it out), if not asked for yet. The caller
//!   is told each such version, so its archive can be fetched meanwhile.
//!
//! Files a reached name needs are fetched before files only hinted, and the walk ends
//! once every reached name has its file: hinted files nothing turned out to need are
//! dropped if not started (a hint covers every unyanked version, and can name more than
//! an install uses).
//!
//! Without a hint (an older node, a cargo-style static index) this is still one round trip
//! per level, but each level is fetched as soon as the file naming it arrives, not when
//! the slowest file of the level before has. A guess that turns out wrong, or a hint that
//! names too much, costs extra requests, never a wrong answer: the resolver reads
//! everything it needs itself, and every file is checked where it is used.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};

use mission_index::entry::IndexEntry;
use mission_index::layout;
use mission_index::lockfile::Lockfile;
use mission_index::resolve::{IndexReader, Requirement};
use semver::{Version, VersionReq};

use crate::sparse_client::{SparseIndex, PARALLEL_REQUESTS};

/// One fetch for the workers: an index path, and whether to ask for the prefetch hint.
type Job = (String, bool);

/// What a worker found: the path, whether the file could be read (missing counts as read),
/// and the paths the node hinted.
type Found = (String, bool, Vec<String>);

/// The workers' queue: files a reached name needs go before files only hinted.
#[derive(Default)]
struct JobQueue {
    needed: VecDeque<Job>,
    hinted: VecDeque<Job>,
    /// No more jobs: the workers stop (what is still queued is not fetched).
    closed: bool,
}

struct Jobs {
    queue: Mutex<JobQueue>,
    ready: Condvar,
}

impl Jobs {
    fn push(&self, job: Job, needed: bool) {
        if let Ok(mut q) = self.queue.lock() {
            if needed {
                q.needed.push_back(job);
            } else {
                q.hinted.push_back(job);
            }
        }
        self.ready.notify_one();
    }

    /// Moves `path` to the front queue if it is still waiting among the hinted ones.
    fn promote(&self, path: &str) {
        if let Ok(mut q) = self.queue.lock() {
            if let Some(at) = q.hinted.iter().position(|(p, _)| p == path) {
                if let Some(job) = q.hinted.remove(at) {
                    q.needed.push_back(job);
                }
            }
        }
    }

    fn close(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.closed = true;
        }
        self.ready.notify_all();
    }

    fn next(&self) -> Option<Job> {
        let mut q = self.queue.lock().ok()?;
        loop {
            if q.closed {
                return None;
            }
            if let Some(job) = q.needed.pop_front().or_else(|| q.hinted.pop_front()) {
                return Some(job);
            }
            q = self.ready.wait(q).ok()?;
        }
    }
}

/// Fetches, in parallel, the index files resolving `roots` (with `lock`) will read, as
/// described in the module documentation. `likely` is told each guessed version as soon
/// as its file is read. Returns once every name reached has its file (or failed): hinted
/// files nothing reached are not waited for. Errors are not reported here: a file that
/// could not be fetched is read again by the resolver, which reports the error where it
/// matters.
pub fn prefetch_index(
    index: &SparseIndex,
    roots: &[Requirement],
    lock: Option<&Lockfile>,
    likely: &dyn Fn(&IndexEntry),
) {
    let jobs = Jobs {
        queue: Mutex::new(JobQueue::default()),
        ready: Condvar::new(),
    };
    let (found_tx, found) = mpsc::channel::<Found>();
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_REQUESTS {
            let found_tx = found_tx.clone();
            let jobs = &jobs;
            scope.spawn(move || {
                while let Some((path, hint)) = jobs.next() {
                    // Whatever happens, the walk hears back about this path, or it would
                    // wait for it forever.
                    let fetched = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        if hint {
                            index.fetch_with_hint(&path).map(|(_, hinted)| hinted)
                        } else {
                            index.fetch(&path).map(|_| Vec::new())
                        }
                    }));
                    let (read, hinted) = match fetched {
                        Ok(Ok(hinted)) => (true, hinted),
                        Ok(Err(e)) => {
                            tracing::debug!(%path, error = %e, "prefetch failed; the resolver will read it again");
                            (false, Vec::new())
                        }
                        Err(_) => (false, Vec::new()),
                    };
                    if found_tx.send((path, read, hinted)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(found_tx);
        let mut walk = Walk {
            jobs: &jobs,
            lock,
            requested: BTreeSet::new(),
            arrived: BTreeMap::new(),
            reached: BTreeSet::new(),
            waiting: BTreeMap::new(),
            reqs: BTreeMap::new(),
            guessed: BTreeMap::new(),
        };
        let mut ready = Vec::new();
        for root in roots {
            walk.require(&root.name, &root.req, true, &mut ready);
        }
        for m in lock.into_iter().flat_map(Lockfile::missions) {
            walk.reach(&m.name, false, &mut ready);
        }
        loop {
            while let Some(name) = ready.pop() {
                walk.guess(index, &name, likely, &mut ready);
            }
            if walk.waiting.is_empty() {
                break;
            }
            let Ok((path, read, hinted)) = found.recv() else {
                break;
            };
            walk.arrived.insert(path.clone(), read);
            for hinted_path in hinted {
                walk.request(hinted_path, false, false);
            }
            if let Some(name) = walk.waiting.remove(&path) {
                if read {
                    ready.push(name);
                }
            }
        }
        // Hinted files not started yet are not needed: the workers stop.
        jobs.close();
    });
}

/// The state of one walk (see [`prefetch_index`]); names are keyed by index path, which
/// folds case as the index does.
struct Walk<'a> {
    jobs: &'a Jobs,
    lock: Option<&'a Lockfile>,
    /// Paths asked for, fetched or not.
    requested: BTreeSet<String>,
    /// Paths whose fetch has finished: `true` when the file could be read (or the index
    /// has no such file).
    arrived: BTreeMap<String, bool>,
    /// Paths whose likely version has been (or is about to be) guessed.
    reached: BTreeSet<String>,
    /// Reached names whose file has not arrived yet, by path.
    waiting: BTreeMap<String, String>,
    /// The requirements seen so far on each name, by path.
    reqs: BTreeMap<String, Vec<VersionReq>>,
    /// The version guessed for each name, by path.
    guessed: BTreeMap<String, Version>,
}

impl Walk<'_> {
    /// Queues `path` unless it was asked for already; `needed` (a reached name's file)
    /// goes before files only hinted, and moves such a file to the front.
    fn request(&mut self, path: String, hint: bool, needed: bool) {
        if self.requested.insert(path.clone()) {
            self.jobs.push((path, hint), needed);
        } else if needed {
            self.jobs.promote(&path);
        }
    }

    /// Notes that something requires `name` at `req`, and reaches it.
    fn require(&mut self, name: &str, req: &VersionReq, hint: bool, ready: &mut Vec<String>) {
        let Ok(path) = layout::entry_path(name) else {
            return;
        };
        // A requirement the earlier guess does not meet: guess again with all of them.
        if self
            .guessed
            .get(&path)
            .is_some_and(|version| !req.matches(version))
        {
            ready.push(name.to_owned());
        }
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
                self.request(path, hint, true);
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
        let Some((version, entry)) = likely_entry else {
            return;
        };
        if self.guessed.get(&path) == Some(&version) {
            return;
        }
        self.guessed.insert(path, version);
        likely(entry);
        for dep in &entry.deps {
            match VersionReq::parse(&dep.req) {
                Ok(req) => self.require(&dep.name, &req, false, ready),
                Err(_) => self.reach(&dep.name, false, ready),
            }
        }
    }
}
