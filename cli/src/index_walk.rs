//! Fetching the index files a resolution is about to read, before it reads them.
//!
//! The resolver reads one name at a time and learns a name's dependencies only from its
//! file, so reading the index on demand costs one round trip per level of the dependency
//! graph: twenty for a chain of twenty. [`prefetch_index`] fetches ahead instead, with
//! [`PARALLEL_REQUESTS`] requests in flight:
//!
//! - the roots (asking the node for its prefetch hint: the files of everything they may
//!   need, however deep; docs/sparse-index.md) and every name the lockfile pins;
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

/// Where a walk reads index files: the sparse index (or, in tests, a stand-in).
pub trait Source: Sync {
    /// Reads the file at index path `path` into memory (asking the node for its prefetch
    /// hint when `hint`); returns the paths hinted. Missing from the index is not an error.
    fn fetch_file(&self, path: &str, hint: bool) -> Result<Vec<String>, String>;
    /// The entries of `name`, read from memory after [`Source::fetch_file`]; `None` when
    /// there is no such file or it cannot be parsed.
    fn entries_of(&self, name: &str) -> Option<Vec<IndexEntry>>;
}

impl Source for SparseIndex {
    fn fetch_file(&self, path: &str, hint: bool) -> Result<Vec<String>, String> {
        let fetched = if hint {
            self.fetch_with_hint(path).map(|(_, hinted)| hinted)
        } else {
            self.fetch(path).map(|_| Vec::new())
        };
        fetched.map_err(|e| e.to_string())
    }

    fn entries_of(&self, name: &str) -> Option<Vec<IndexEntry>> {
        IndexReader::entries(self, name).ok().flatten()
    }
}

/// One fetch for the workers: an index path, and whether to ask for the prefetch hint.
type Job = (String, bool);

/// What a worker found: the path, whether the file could be read (missing counts as read),
/// and the paths the node hinted.
type Found = (String, bool, Vec<String>);

/// The workers' queue: files a reached name needs go before files only hinted, and one
/// worker is always left for them (a hint can name many files nothing turns out to need).
#[derive(Default)]
struct JobQueue {
    needed: VecDeque<Job>,
    hinted: VecDeque<Job>,
    /// Hinted files being fetched; at most `PARALLEL_REQUESTS - 1`.
    hinted_in_flight: usize,
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
        // A worker kept back from hinted files may take it now.
        self.ready.notify_one();
    }

    fn close(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.closed = true;
        }
        self.ready.notify_all();
    }

    /// The next job, and whether it was a hinted one (to hand back to [`Jobs::done`]).
    fn next(&self) -> Option<(Job, bool)> {
        let mut q = self.queue.lock().ok()?;
        loop {
            if q.closed {
                return None;
            }
            if let Some(job) = q.needed.pop_front() {
                return Some((job, false));
            }
            if q.hinted_in_flight + 1 < PARALLEL_REQUESTS {
                if let Some(job) = q.hinted.pop_front() {
                    q.hinted_in_flight += 1;
                    return Some((job, true));
                }
            }
            q = self.ready.wait(q).ok()?;
        }
    }

    /// A job from [`Jobs::next`] is finished.
    fn done(&self, hinted: bool) {
        if hinted {
            if let Ok(mut q) = self.queue.lock() {
                q.hinted_in_flight -= 1;
            }
            self.ready.notify_one();
        }
    }
}

/// Closes the queue when dropped, so that the workers stop however the walk ends (a panic
/// in it too: the scope would otherwise wait for them forever).
struct CloseOnDrop<'a>(&'a Jobs);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Fetches, in parallel, the index files resolving `roots` (with `lock`) will read, as
/// described in the module documentation. `likely` is told each guessed version as soon
/// as its file is read. Returns once every name reached has its file (or failed): hinted
/// files nothing reached are not waited for. Errors are not reported here: a file that
/// could not be fetched is read again by the resolver, which reports the error where it
/// matters.
pub fn prefetch_index(
    index: &impl Source,
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
                while let Some(((path, hint), hinted_job)) = jobs.next() {
                    // Whatever happens, the walk hears back about this path, or it would
                    // wait for it forever.
                    let fetched =
                        std::panic::catch_unwind(AssertUnwindSafe(|| index.fetch_file(&path, hint)));
                    let (read, hinted) = match fetched {
                        Ok(Ok(hinted)) => (true, hinted),
                        Ok(Err(e)) => {
                            tracing::debug!(%path, error = %e, "prefetch failed; the resolver will read it again");
                            (false, Vec::new())
                        }
                        Err(_) => (false, Vec::new()),
                    };
                    jobs.done(hinted_job);
                    if found_tx.send((path, read, hinted)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(found_tx);
        // Hinted files not started yet when the walk ends are not needed: the workers stop.
        let _close = CloseOnDrop(&jobs);
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
        while let Some(name) = ready.pop() {
            walk.guess(index, &name, likely, &mut ready);
        }
        while !walk.waiting.is_empty() {
            let Ok((path, read, hinted)) = found.recv() else {
                break;
            };
            walk.arrived.insert(path.clone(), read);
            if let Some(name) = walk.waiting.remove(&path) {
                if read {
                    ready.push(name);
                }
            }
            // What this file makes needed is queued before what it only hints.
            while let Some(name) = ready.pop() {
                walk.guess(index, &name, likely, &mut ready);
            }
            for hinted_path in hinted {
                walk.request(hinted_path, false, false);
            }
        }
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
            // Fetched before anything needed it (hinted), and that failed: once more, now
            // as needed (a name is reached once, so this is the only retry). If that fails
            // too, the resolver reads it again and reports why.
            Some(false) => {
                self.arrived.remove(&path);
                self.waiting.insert(path.clone(), name.to_owned());
                self.jobs.push((path, hint), true);
            }
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
        index: &impl Source,
        name: &str,
        likely: &dyn Fn(&IndexEntry),
        ready: &mut Vec<String>,
    ) {
        let Some(entries) = index.entries_of(name) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    /// What happened so far in a walk over a [`Fake`].
    #[derive(Default)]
    struct Log {
        /// Paths whose fetch started (with whether the hint was asked for), in order.
        started: Vec<(String, bool)>,
        /// Paths whose fetch returned, in order.
        finished: Vec<String>,
        /// Guesses told to the caller, as `name version`, in order.
        guesses: Vec<String>,
    }

    /// Holds a fetch until the log meets a condition (or 10 s pass, which is recorded).
    type Gate = Box<dyn Fn(&Log) -> bool + Sync>;

    /// A stand-in index: files by path, each with its entries and the hint it gives, and
    /// how each fetch behaves; everything that happens is logged. Events, not clocks,
    /// order the tests' fetches, so a loaded machine makes them slower, not wrong.
    #[derive(Default)]
    struct Fake {
        files: HashMap<String, (Vec<IndexEntry>, Vec<String>)>,
        gates: HashMap<String, Gate>,
        slow: HashMap<String, Duration>,
        failing: BTreeSet<String>,
        failing_once: Mutex<BTreeSet<String>>,
        panicking: BTreeSet<String>,
        log: Mutex<Log>,
        changed: Condvar,
        /// Gates that ran out of time instead of opening.
        timed_out: Mutex<Vec<String>>,
    }

    fn path(name: &str) -> String {
        layout::entry_path(name).unwrap()
    }

    fn entry(name: &str, vers: &str, deps: &[(&str, &str)]) -> IndexEntry {
        let deps: Vec<_> = deps
            .iter()
            .map(|(n, r)| serde_json::json!({"name": n, "req": r}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "name": name, "vers": vers, "deps": deps, "cksum": format!("{name}-{vers}"),
            "sig": "", "key": "", "pubtime": "", "origin": "",
        }))
        .unwrap()
    }

    impl Fake {
        fn add(&mut self, entries: Vec<IndexEntry>, hint: &[&str]) {
            let name = entries[0].name.clone();
            let hint = hint.iter().map(|n| path(n)).collect();
            self.files.insert(path(&name), (entries, hint));
        }

        /// Holds `name`'s fetch until `open` holds.
        fn gate(&mut self, name: &str, open: impl Fn(&Log) -> bool + Sync + 'static) {
            self.gates.insert(path(name), Box::new(open));
        }

        fn note(&self, event: impl FnOnce(&mut Log)) {
            event(&mut self.log.lock().unwrap());
            self.changed.notify_all();
        }

        /// The paths fetched, in the order the fetches started.
        fn order(&self) -> Vec<String> {
            let log = self.log.lock().unwrap();
            log.started.iter().map(|(p, _)| p.clone()).collect()
        }

        fn fetches_of(&self, name: &str) -> usize {
            let p = path(name);
            let log = self.log.lock().unwrap();
            log.started.iter().filter(|(f, _)| *f == p).count()
        }

        fn guesses(&self) -> Vec<String> {
            self.log.lock().unwrap().guesses.clone()
        }
    }

    impl Source for Fake {
        fn fetch_file(&self, path: &str, hint: bool) -> Result<Vec<String>, String> {
            self.note(|log| log.started.push((path.to_owned(), hint)));
            if let Some(open) = self.gates.get(path) {
                let log = self.log.lock().unwrap();
                let (log, waited) = self
                    .changed
                    .wait_timeout_while(log, Duration::from_secs(10), |log| !open(log))
                    .unwrap();
                drop(log);
                if waited.timed_out() {
                    self.timed_out.lock().unwrap().push(path.to_owned());
                }
            }
            if let Some(d) = self.slow.get(path) {
                std::thread::sleep(*d);
            }
            let result = if self.panicking.contains(path) {
                panic!("a fetch of {path} panicked");
            } else if self.failing.contains(path) || self.failing_once.lock().unwrap().remove(path)
            {
                Err(format!("{path}: connection reset"))
            } else {
                Ok(self
                    .files
                    .get(path)
                    .filter(|_| hint)
                    .map(|(_, h)| h.clone())
                    .unwrap_or_default())
            };
            self.note(|log| log.finished.push(path.to_owned()));
            result
        }

        fn entries_of(&self, name: &str) -> Option<Vec<IndexEntry>> {
            let p = path(name);
            let fetched = self.order().contains(&p);
            assert!(fetched, "{name} was read before its file was fetched");
            self.files.get(&p).map(|(e, _)| e.clone())
        }
    }

    fn root(name: &str, req: &str) -> Requirement {
        Requirement {
            name: name.to_owned(),
            req: VersionReq::parse(req).unwrap(),
        }
    }

    /// Walks from `roots`; returns the guesses, as `name version`, in the order made.
    fn walk(fake: &Fake, roots: &[Requirement]) -> Vec<String> {
        prefetch_index(fake, roots, None, &|e| {
            fake.note(|log| log.guesses.push(format!("{} {}", e.name, e.vers)))
        });
        assert!(
            fake.timed_out.lock().unwrap().is_empty(),
            "gates that never opened: {:?}; fetches: {:?}",
            fake.timed_out.lock().unwrap(),
            fake.order()
        );
        fake.guesses()
    }

    /// app -> a1 -> a2 -> a3, app -> b1; app's file hints all four.
    fn chain() -> Fake {
        let mut fake = Fake::default();
        fake.add(
            vec![entry("app", "1.0.0", &[("a1", "^1"), ("b1", "^1")])],
            &["a1", "b1", "a2", "a3"],
        );
        fake.add(vec![entry("a1", "1.0.0", &[("a2", "^1")])], &[]);
        fake.add(vec![entry("a2", "1.0.0", &[("a3", "^1")])], &[]);
        fake.add(vec![entry("a3", "1.0.0", &[])], &[]);
        fake.add(vec![entry("b1", "1.0.0", &[])], &[]);
        fake
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn a_hinted_tree_is_fetched_once_and_every_name_guessed() {
        let fake = chain();
        let guesses = walk(&fake, &[root("app", "*")]);
        assert_eq!(
            sorted(guesses),
            ["a1 1.0.0", "a2 1.0.0", "a3 1.0.0", "app 1.0.0", "b1 1.0.0"]
        );
        for name in ["app", "a1", "a2", "a3", "b1"] {
            assert_eq!(fake.fetches_of(name), 1, "{name}");
        }
        // Only the root asks for a hint.
        let started = fake.log.lock().unwrap().started.clone();
        assert_eq!(started[0], (path("app"), true));
        assert!(started[1..].iter().all(|(_, hint)| !hint), "{started:?}");
    }

    #[test]
    fn hinted_files_are_fetched_before_the_files_naming_them_arrive() {
        // app -> c1 -> c2 -> ... -> c6, all hinted; c1's file comes only once every other
        // file was asked for, which a walk level by level (or one that queued hinted files
        // behind a stuck worker) never does: its gate would run out.
        let mut fake = Fake::default();
        let names: Vec<String> = (1..=6).map(|i| format!("c{i}")).collect();
        let hint: Vec<&str> = names.iter().map(String::as_str).collect();
        fake.add(vec![entry("app", "1.0.0", &[("c1", "^1")])], &hint);
        for (i, name) in names.iter().enumerate() {
            let deps: Vec<(&str, &str)> = names
                .get(i + 1)
                .map(|n| (n.as_str(), "^1"))
                .into_iter()
                .collect();
            fake.add(vec![entry(name, "1.0.0", &deps)], &[]);
        }
        let others: Vec<String> = names[1..].iter().map(|n| path(n)).collect();
        fake.gate("c1", move |log| {
            others
                .iter()
                .all(|p| log.started.iter().any(|(s, _)| s == p))
        });
        let guesses = walk(&fake, &[root("app", "*")]);
        assert_eq!(guesses.len(), 7, "{guesses:?}");
        assert_eq!(fake.order().len(), 7);
    }

    #[test]
    fn without_a_hint_the_walk_follows_the_files() {
        let mut fake = chain();
        fake.files.get_mut(&path("app")).unwrap().1.clear();
        let guesses = walk(&fake, &[root("app", "*")]);
        assert_eq!(guesses.len(), 5, "{guesses:?}");
        // a3 can only be known once a2's file is read.
        let order = fake.order();
        let at = |n: &str| order.iter().position(|p| *p == path(n)).unwrap();
        assert!(at("a1") < at("a2") && at("a2") < at("a3"), "{order:?}");
    }

    #[test]
    fn hinted_files_nothing_needs_are_not_waited_for() {
        let mut fake = chain();
        // Twenty hinted names no version needs, each taking 2 s.
        let unused: Vec<String> = (0..20).map(|i| format!("unused_{i:02}")).collect();
        let mut hint: Vec<&str> = unused.iter().map(String::as_str).collect();
        hint.extend(["a1", "b1", "a2", "a3"]);
        fake.files.get_mut(&path("app")).unwrap().1 = hint.iter().map(|n| path(n)).collect();
        for name in &unused {
            fake.add(vec![entry(name, "1.0.0", &[])], &[]);
            fake.slow.insert(path(name), Duration::from_secs(2));
        }
        let started = Instant::now();
        let guesses = walk(&fake, &[root("app", "*")]);
        assert_eq!(guesses.len(), 5, "{guesses:?}");
        // The needed files take no time, and one worker is kept for them: the walk ends
        // while the first unused files (at most one per other worker) are still on their
        // way, and waits only for those, not for twenty at 2 s over three workers (14 s).
        let started_unused = unused.iter().filter(|n| fake.fetches_of(n) > 0).count();
        assert!(
            started_unused < PARALLEL_REQUESTS,
            "{started_unused} started: {:?}",
            fake.order()
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn failed_and_panicking_fetches_end_the_walk_without_their_names() {
        let mut fake = chain();
        fake.failing.insert(path("a2"));
        fake.panicking.insert(path("b1"));
        let guesses = walk(&fake, &[root("app", "*")]);
        // a2 failed (the resolver reads it again and reports it), so a3 was never reached.
        assert_eq!(sorted(guesses), ["a1 1.0.0", "app 1.0.0"]);
    }

    #[test]
    fn a_hinted_file_that_failed_is_fetched_again_once_needed() {
        let mut fake = chain();
        fake.failing_once.lock().unwrap().insert(path("a2"));
        // a1's file (which makes a2 needed) comes only after a2's hinted fetch failed.
        let a2 = path("a2");
        fake.gate("a1", move |log| log.finished.contains(&a2));
        // ... and, so that its answer is surely read after a2's, a little later.
        fake.slow.insert(path("a1"), Duration::from_millis(100));
        let guesses = walk(&fake, &[root("app", "*")]);
        assert_eq!(fake.fetches_of("a2"), 2, "{:?}", fake.order());
        assert_eq!(
            sorted(guesses),
            ["a1 1.0.0", "a2 1.0.0", "a3 1.0.0", "app 1.0.0", "b1 1.0.0"]
        );
    }

    #[test]
    fn names_differing_in_case_are_one_file() {
        let mut fake = Fake::default();
        fake.add(
            vec![entry(
                "app",
                "1.0.0",
                &[("Shared_Dep", "^1"), ("other", "^1")],
            )],
            &[],
        );
        fake.add(vec![entry("other", "1.0.0", &[("shared_dep", "^1")])], &[]);
        fake.add(vec![entry("shared_dep", "1.0.0", &[])], &[]);
        let guesses = walk(&fake, &[root("app", "*")]);
        assert_eq!(guesses.len(), 3, "{guesses:?}");
        assert_eq!(fake.fetches_of("shared_dep"), 1);
    }

    #[test]
    fn a_later_requirement_that_rules_out_the_guess_is_guessed_again() {
        let mut fake = Fake::default();
        // app needs xx ^1 and yy; yy needs xx =1.0.0, whose version needs zz, which
        // xx 1.1.0 does not. yy's file comes only once xx was guessed (1.1.0, the highest
        // meeting ^1), so the later requirement must undo that guess.
        fake.add(
            vec![entry("app", "1.0.0", &[("xx", "^1"), ("yy", "^1")])],
            &["xx", "yy", "zz"],
        );
        fake.add(
            vec![
                entry("xx", "1.0.0", &[("zz", "^1")]),
                entry("xx", "1.1.0", &[]),
            ],
            &[],
        );
        fake.add(vec![entry("yy", "1.0.0", &[("xx", "=1.0.0")])], &[]);
        fake.add(vec![entry("zz", "1.0.0", &[])], &[]);
        fake.gate("yy", |log| log.guesses.iter().any(|g| g == "xx 1.1.0"));
        let guesses = walk(&fake, &[root("app", "*")]);
        let at = |g: &str| guesses.iter().position(|x| x == g);
        assert!(at("xx 1.1.0") < at("xx 1.0.0"), "{guesses:?}");
        assert!(at("zz 1.0.0").is_some(), "{guesses:?}");
    }
}
