//! Version resolution: which version of each mission to install.
//!
//! `mission install fix_build@^1.2` starts from one or more *root requirements*
//! ([`Requirement`]: a name and a semver requirement) and must pick a version of every mission
//! reachable through the `deps` of the chosen index entries. Missions install to
//! `missions/NAME/`, so unlike cargo a resolved graph holds **one version per name** (names
//! compared by [`collision_key`]): every requirement on a name must be met by that single
//! version. A requirement names an index file, and index paths are lowercase, so
//! `Fix_Build` finds `fix_build`; but `fix-build` is another file, and a requirement spelled
//! so is refused ([`ResolveError::SpelledOtherwise`], naming the published spelling) even
//! when another requirement found `fix_build`: the outcome never depends on which
//! requirement is met first.
//!
//! # The rules
//!
//! - The highest version that matches every requirement on the name is chosen.
//! - Yanked versions are skipped, unless `missions.lock` pins exactly that version and every
//!   requirement still matches it: yanking stops new uses, it does not break existing installs.
//! - Prerelease versions (`1.0.0-beta.1`) match only a requirement that names a prerelease of
//!   the same `major.minor.patch`, exactly as cargo does; [`semver::VersionReq::matches`]
//!   already implements that rule, so `*` and `^1` never pick a prerelease.
//! - With a lockfile, a name's locked version is tried first as long as it matches every
//!   requirement; a name whose requirements no longer admit the locked version is unlocked on
//!   its own (like cargo), and everything else stays as locked. If the index now gives a
//!   locked version a different checksum, resolution stops: the published archive changed.
//! - The result may not contain a dependency cycle; missions run their dependencies first,
//!   so a cycle has no valid install order ([`ResolveError::Cycle`] names the path).
//!
//! # The search
//!
//! A depth-first search with backtracking: at each step the undecided name with the fewest
//! remaining candidates is decided (cargo's heuristic: forced choices first, conflicts found
//! early), trying its candidates best-first. When a choice leads to a dead end the next
//! candidate is tried, so "the newest `a` needs a `c` that clashes, an older `a` does not"
//! resolves to the older `a`. The number of choices tried is capped
//! ([`DEFAULT_STEP_LIMIT`]); past it resolution fails with [`ResolveError::TooManySteps`]
//! rather than run for ever.
//!
//! Why not the `pubgrub` crate: its version sets are ranges, and semver's prerelease rule
//! (a prerelease matches only a comparator on the same `major.minor.patch` that names a
//! prerelease) is not a range, so an exact mapping needs a custom version-set type whose
//! complements and intersections carry that rule; its explanations are a derivation tree
//! that would still need translating into the errors below. Mission graphs are small, and a
//! DFS over [`semver::VersionReq::matches`] is exact by construction.
//!
//! # Errors
//!
//! When every path fails, the error reported is the first one met that holds whatever else
//! is chosen (a name that does not exist, a requirement nothing matches, requirements that
//! no single version meets), falling back to the first conflict with an earlier choice.
//! Each error says which name, which requirement and who asked for it (`you` for the
//! command line or the roots of missions.lock, `NAME VERSION` for a dependency).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use semver::{Version, VersionReq};
use thiserror::Error;

use crate::entry::IndexEntry;
use crate::lockfile::Lockfile;
use crate::name::{collision_key, validate_name, NameError};

/// Anything that can list the published versions of a name: the git index ([`crate::repo`]),
/// a sparse HTTP client, a cache, or a test fixture.
pub trait IndexReader {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every version of `name` the index holds (yanked included), or `None` when the index
    /// has no such name. Names are looked up case-insensitively, as the layout is lowercase.
    fn entries(&self, name: &str) -> Result<Option<Vec<IndexEntry>>, Self::Error>;
}

/// Who asked for a requirement given on the command line.
pub const ROOT: &str = "<root>";

/// How many version choices [`resolve`] tries before giving up.
pub const DEFAULT_STEP_LIMIT: usize = 10_000;

/// A root requirement: `NAME` or `NAME@REQ`, as typed after `mission install`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub name: String,
    pub req: VersionReq,
}

/// Why a `NAME[@REQ]` argument was refused.
#[derive(Debug, Error)]
pub enum RequirementError {
    #[error("`{input}`: {source}")]
    Name {
        input: String,
        #[source]
        source: NameError,
    },
    #[error("`{input}`: nothing after `@`; write `NAME` or `NAME@REQ`, such as `fix_build@^1.2`")]
    EmptyReq { input: String },
    #[error(
        "`{input}`: `{req}` is not a semver requirement (examples: `1.2`, `^1.2`, `~1.2.3`, `=1.2.3`, `>=1.1, <2`): {source}"
    )]
    Req {
        input: String,
        req: String,
        #[source]
        source: semver::Error,
    },
}

impl Requirement {
    /// A requirement on `name` with `req`.
    pub fn new(name: impl Into<String>, req: VersionReq) -> Self {
        Self {
            name: name.into(),
            req,
        }
    }

    /// Parses `NAME` (any version, `*`) or `NAME@REQ`. A bare version such as `1.2` means
    /// `^1.2`, as in cargo; use `=1.2.3` for exactly one version.
    pub fn parse(input: &str) -> Result<Self, RequirementError> {
        let text = input.trim();
        let (name, req) = match text.split_once('@') {
            Some((name, req)) => (name, Some(req.trim())),
            None => (text, None),
        };
        validate_name(name).map_err(|source| RequirementError::Name {
            input: input.to_owned(),
            source,
        })?;
        let req = match req {
            None => VersionReq::STAR,
            Some("") => {
                return Err(RequirementError::EmptyReq {
                    input: input.to_owned(),
                })
            }
            Some(req) => VersionReq::parse(req).map_err(|source| RequirementError::Req {
                input: input.to_owned(),
                req: req.to_owned(),
                source,
            })?,
        };
        Ok(Self::new(name, req))
    }
}

/// Whether some version could meet every comparator of `req`: `false` when they contradict
/// (`=1.0.0, ^2`, or `<1, >=1.1`). Each comparator is read as the range of versions it
/// allows; the rule that keeps prereleases out unless a comparator names one only narrows
/// what matches, so it is left out, and `true` may be answered for a requirement only
/// prereleases could meet (the resolver then finds no version).
pub fn can_be_met(req: &VersionReq) -> bool {
    // (lower, upper) bounds, each a version and whether it is included; `None`: unbounded.
    type Bound = Option<(Version, bool)>;
    let mut lower: Bound = None;
    let mut upper: Bound = None;
    for c in &req.comparators {
        let (low, high) = comparator_range(c);
        if let Some((v, incl)) = low {
            let tighter = match &lower {
                None => true,
                Some((l, l_incl)) => v > *l || (v == *l && *l_incl && !incl),
            };
            if tighter {
                lower = Some((v, incl));
            }
        }
        if let Some((v, incl)) = high {
            let tighter = match &upper {
                None => true,
                Some((u, u_incl)) => v < *u || (v == *u && *u_incl && !incl),
            };
            if tighter {
                upper = Some((v, incl));
            }
        }
    }
    match (lower, upper) {
        (Some((l, l_incl)), Some((u, u_incl))) => l < u || (l == u && l_incl && u_incl),
        _ => true,
    }
}

/// The versions one comparator allows, as (lower, upper) bounds (see [`can_be_met`]).
#[allow(clippy::type_complexity)]
fn comparator_range(c: &semver::Comparator) -> (Option<(Version, bool)>, Option<(Version, bool)>) {
    use semver::Op;
    let at = |major: u64, minor: u64, patch: u64| Version::new(major, minor, patch);
    let mut exact = at(c.major, c.minor.unwrap_or(0), c.patch.unwrap_or(0));
    exact.pre = c.pre.clone();
    // The first version past what the given parts name (`1.2` -> 1.3.0, `1` -> 2.0.0).
    let past = |minor: Option<u64>, patch: Option<u64>| -> Option<Version> {
        match (minor, patch) {
            (None, _) => Some(at(c.major.checked_add(1)?, 0, 0)),
            (Some(m), None) => Some(at(c.major, m.checked_add(1)?, 0)),
            (Some(m), Some(p)) => Some(at(c.major, m, p.checked_add(1)?)),
        }
    };
    let from = |v: Version| Some((v, true));
    let before = |v: Option<Version>| v.map(|v| (v, false));
    match c.op {
        Op::Exact | Op::Wildcard => match c.patch {
            Some(_) if c.minor.is_some() => (from(exact.clone()), Some((exact, true))),
            _ => (from(exact), before(past(c.minor, None))),
        },
        Op::Greater => match (c.minor, c.patch) {
            (Some(_), Some(_)) => (Some((exact, false)), None),
            (minor, _) => (past(minor, None).map(|v| (v, true)), None),
        },
        Op::GreaterEq => (from(exact), None),
        Op::Less => (None, Some((exact, false))),
        Op::LessEq => match (c.minor, c.patch) {
            (Some(_), Some(_)) => (None, Some((exact, true))),
            (minor, _) => (None, before(past(minor, None))),
        },
        Op::Tilde => (from(exact), before(past(c.minor, None))),
        Op::Caret => {
            let high = match (c.major, c.minor, c.patch) {
                (0, Some(0), Some(_)) => past(Some(0), c.patch),
                (0, Some(m), _) => past(Some(m), None),
                _ => past(None, None),
            };
            (from(exact), before(high))
        }
        // An operator this code does not know: assume it could be met.
        _ => (None, None),
    }
}

impl FromStr for Requirement {
    type Err = RequirementError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.req)
    }
}

/// One chosen mission version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPackage {
    /// The index entry of the chosen version.
    pub entry: IndexEntry,
    /// `entry.vers`, parsed.
    pub version: Version,
    /// The names (keys of [`Resolution::packages`]) of the missions this one depends on,
    /// sorted.
    pub dependencies: Vec<String>,
    /// Who required this mission (a package name, or [`ROOT`]) and with which requirement,
    /// in the order the requirements were met.
    pub required_by: Vec<(String, VersionReq)>,
}

/// The outcome of [`resolve`]: one version per mission name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resolution {
    /// Keyed by the name as the index spells it (`entry.name`).
    pub packages: BTreeMap<String, ResolvedPackage>,
}

impl Resolution {
    /// The package for `name`, matched by [`collision_key`] (so `Fix-Build` finds `fix_build`).
    pub fn get(&self, name: &str) -> Option<&ResolvedPackage> {
        let key = collision_key(name);
        self.packages
            .iter()
            .find(|(n, _)| collision_key(n) == key)
            .map(|(_, p)| p)
    }

    /// Every package, dependencies before the missions that need them; among packages that
    /// are ready at the same time, by name. The same resolution always gives the same order.
    pub fn install_order(&self) -> Vec<&ResolvedPackage> {
        // Kahn's algorithm; a Resolution never holds a cycle, as `resolve` refuses them.
        let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
        let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, pkg) in &self.packages {
            let deps: BTreeSet<&str> = pkg
                .dependencies
                .iter()
                .map(String::as_str)
                .filter(|d| self.packages.contains_key(*d))
                .collect();
            waiting.insert(name, deps.len());
            for d in deps {
                dependents.entry(d).or_default().push(name);
            }
        }
        let mut ready: BTreeSet<&str> = waiting
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(name, _)| *name)
            .collect();
        let mut order = Vec::with_capacity(self.packages.len());
        while let Some(name) = ready.pop_first() {
            if let Some(pkg) = self.packages.get(name) {
                order.push(pkg);
            }
            for dependent in dependents.get(name).into_iter().flatten() {
                if let Some(n) = waiting.get_mut(dependent) {
                    *n -= 1;
                    if *n == 0 {
                        ready.insert(dependent);
                    }
                }
            }
        }
        order
    }
}

/// Why no set of versions could be chosen.
#[derive(Debug, Error)]
pub enum ResolveError {
    #[error("no mission named `{name}` in the index (required by {})", required_by.iter().map(|w| by(w)).collect::<Vec<_>>().join(", "))]
    NotFound {
        name: String,
        required_by: Vec<String>,
    },
    /// The index has the name only spelled otherwise (`-` for `_` or the reverse): a
    /// requirement must spell it as published (any case), as cargo requires.
    #[error("{}", spelled_otherwise_message(name, published, required_by))]
    SpelledOtherwise {
        name: String,
        published: String,
        required_by: String,
    },
    #[error(
        "no version of `{name}` matches `{req}` (required by {}); available: {}{}",
        by(required_by),
        list(available),
        prerelease_hint(req, available)
    )]
    NoMatchingVersion {
        name: String,
        req: VersionReq,
        required_by: String,
        /// Every version the index has, highest first, yanked ones marked ` (yanked)`.
        available: Vec<String>,
    },
    #[error(
        "every version of `{name}` matching `{req}` (required by {}) is yanked: {}; a yanked version is only used when missions.lock pins it{}",
        by(required_by),
        yanked.join(", "),
        if required_by == ROOT { format!(" and `update` is not changing it: to move on, ask for another version (`mission install {name}@REQ`)") } else { String::new() }
    )]
    OnlyYanked {
        name: String,
        req: VersionReq,
        required_by: String,
        yanked: Vec<String>,
    },
    #[error("{}", conflict_message(name, requirements, selected.as_deref(), available))]
    Conflict {
        name: String,
        /// Each requirement on `name` and who made it.
        requirements: Vec<(String, VersionReq)>,
        /// When the clash is with a version already chosen for the earlier requirements
        /// (other choices elsewhere might avoid it), that version.
        selected: Option<String>,
        /// Every version the index has, highest first, yanked ones marked ` (yanked)`.
        available: Vec<String>,
    },
    #[error(
        "missions may not depend on each other in a cycle: {}",
        path.join(" -> ")
    )]
    Cycle {
        /// The names along the cycle; the first is repeated at the end.
        path: Vec<String>,
    },
    #[error(
        "gave up after trying {limit} version choices without finding versions that fit together; pin some versions (`NAME@=VERSION`) to narrow the search"
    )]
    TooManySteps { limit: usize },
    #[error("index entry `{name}` version `{vers}`: {problem}")]
    BadEntry {
        name: String,
        vers: String,
        problem: String,
    },
    #[error(
        "`{name}` {version} has checksum {index} in the index but {locked} in missions.lock: the published archive changed since it was locked; refusing to install it"
    )]
    LockedChecksumChanged {
        name: String,
        version: String,
        locked: String,
        index: String,
    },
    #[error(
        "`{name}` {version} is signed by key {index_key} in the index, but missions.lock pins {locked_key} for this very version: the author key of a published version changed, so the index was altered; refusing it"
    )]
    LockedKeyChanged {
        name: String,
        version: String,
        locked_key: String,
        index_key: String,
    },
    #[error("reading `{name}` from the index: {source}")]
    Reader {
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// A hint when the only reason nothing matched may be the prerelease rule.
fn prerelease_hint(req: &VersionReq, available: &[String]) -> &'static str {
    let req_names_pre = req.comparators.iter().any(|c| !c.pre.is_empty());
    let has_pre = available.iter().any(|v| {
        let v = v.strip_suffix(YANKED_MARK).unwrap_or(v);
        Version::parse(v).is_ok_and(|v| !v.pre.is_empty())
    });
    if has_pre && !req_names_pre {
        " (a prerelease is only chosen when the requirement names one, such as `^1.0.0-beta.1`)"
    } else {
        ""
    }
}

fn conflict_message(
    name: &str,
    requirements: &[(String, VersionReq)],
    selected: Option<&str>,
    available: &[String],
) -> String {
    let asks = requirements
        .iter()
        .map(|(who, req)| {
            if who == ROOT {
                format!("you asked for `{req}`")
            } else {
                format!("{who} needs `{req}`")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    match selected {
        None => format!(
            "no single version of `{name}` meets every requirement on it: {asks}; available: {}",
            list(available)
        ),
        Some(v) => format!(
            "the requirements on `{name}` clash: {asks}; version {v} had been chosen for the earlier ones (available: {})",
            list(available)
        ),
    }
}

/// Who made a requirement, for messages: `you` for [`ROOT`] (the command line, or the roots
/// of missions.lock), else the mission and version.
fn by(who: &str) -> &str {
    if who == ROOT {
        "you"
    } else {
        who
    }
}

const YANKED_MARK: &str = " (yanked)";

/// Resolves `roots` over `reader`, preferring the versions in `locked` (see the module docs).
pub fn resolve<R: IndexReader>(
    reader: &R,
    roots: &[Requirement],
    locked: Option<&Lockfile>,
) -> Result<Resolution, ResolveError> {
    resolve_with_limit(reader, roots, locked, DEFAULT_STEP_LIMIT)
}

/// [`resolve`] with a cap of `limit` version choices instead of [`DEFAULT_STEP_LIMIT`].
pub fn resolve_with_limit<R: IndexReader>(
    reader: &R,
    roots: &[Requirement],
    locked: Option<&Lockfile>,
    limit: usize,
) -> Result<Resolution, ResolveError> {
    let mut resolver = Resolver {
        reader,
        locked,
        known: BTreeMap::new(),
        read: BTreeSet::new(),
        steps: 0,
        limit,
    };
    let mut state = State::default();
    for root in roots {
        state
            .reqs
            .entry(collision_key(&root.name))
            .or_default()
            .push(Req {
                name: root.name.clone(),
                who: Who::Root,
                req: root.req.clone(),
            });
    }
    match resolver.solve(&mut state) {
        Ok(()) => {}
        Err(Failure::Fatal(e)) | Err(Failure::Conflict(e, _)) => return Err(e),
    }
    let resolution = resolver.build(&state);
    check_cycles(&resolution)?;
    Ok(resolution)
}

/// One published version, checked and parsed.
struct Candidate {
    version: Version,
    entry: IndexEntry,
    deps: Vec<Dep>,
}

struct Dep {
    name: String,
    key: String,
    req: VersionReq,
}

#[derive(Clone)]
enum Who {
    Root,
    Package { name: String, version: Version },
}

impl Who {
    fn name(&self) -> String {
        match self {
            Who::Root => ROOT.to_owned(),
            Who::Package { name, .. } => name.clone(),
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Root => f.write_str(ROOT),
            Who::Package { name, version } => write!(f, "{name} {version}"),
        }
    }
}

#[derive(Clone)]
struct Req {
    /// The name as the requester spelled it.
    name: String,
    who: Who,
    req: VersionReq,
}

/// The choices made so far. Backtracking undoes the changes recorded in `trail` back to a
/// mark, instead of copying the whole state at every choice (which made a resolution
/// quadratic in the number of missions).
#[derive(Default)]
struct State {
    /// collision key -> index into that name's candidates.
    chosen: BTreeMap<String, usize>,
    /// collision key -> every requirement on it so far.
    reqs: BTreeMap<String, Vec<Req>>,
    /// The changes since the roots, oldest first.
    trail: Vec<Change>,
}

/// One undoable change to a [`State`].
enum Change {
    /// A version was chosen for this key.
    Chose(String),
    /// A requirement was added to this key's list.
    Required(String),
}

impl State {
    fn choose(&mut self, key: &str, idx: usize) {
        self.chosen.insert(key.to_owned(), idx);
        self.trail.push(Change::Chose(key.to_owned()));
    }

    fn require(&mut self, key: &str, req: Req) {
        self.reqs.entry(key.to_owned()).or_default().push(req);
        self.trail.push(Change::Required(key.to_owned()));
    }

    /// Undoes the changes made since `trail` was `mark` long.
    fn undo_to(&mut self, mark: usize) {
        while self.trail.len() > mark {
            match self.trail.pop() {
                Some(Change::Chose(key)) => {
                    self.chosen.remove(&key);
                }
                Some(Change::Required(key)) => {
                    if let Some(reqs) = self.reqs.get_mut(&key) {
                        reqs.pop();
                        if reqs.is_empty() {
                            self.reqs.remove(&key);
                        }
                    }
                }
                None => break,
            }
        }
    }
}

enum Failure {
    /// Stop at once: reading failed, the index is broken, a lock was betrayed, or the cap.
    Fatal(ResolveError),
    /// This path is a dead end; `true` when the error holds whatever else is chosen.
    Conflict(ResolveError, bool),
}

struct Resolver<'a, R> {
    reader: &'a R,
    locked: Option<&'a Lockfile>,
    /// collision key -> candidates, highest version first; `None`: no such name.
    known: BTreeMap<String, Option<Vec<Candidate>>>,
    /// The spellings read from the index so far, lowercase (each file is read once).
    read: BTreeSet<String>,
    steps: usize,
    limit: usize,
}

impl<R: IndexReader> Resolver<'_, R> {
    /// Reads and checks the versions of `key` once: under each spelling `reqs` use, until
    /// one is in the index. So the outcome does not depend on which requirement came
    /// first; one spelled otherwise than the published name is then refused by
    /// [`Resolver::allowed`] and [`Resolver::explain`], as cargo refuses it.
    fn load(&mut self, key: &str, reqs: &[Req]) -> Result<(), ResolveError> {
        for r in reqs {
            if matches!(self.known.get(key), Some(Some(_))) {
                return Ok(());
            }
            // Spellings that differ in case only read the same (lowercase) file.
            if !self.read.insert(r.name.to_ascii_lowercase()) {
                continue;
            }
            let entries = self
                .reader
                .entries(&r.name)
                .map_err(|e| ResolveError::Reader {
                    name: r.name.clone(),
                    source: Box::new(e),
                })?;
            let candidates = match entries {
                None => None,
                Some(entries) if entries.is_empty() => None,
                Some(entries) => Some(check_entries(key, &r.name, entries)?),
            };
            self.known.insert(key.to_owned(), candidates);
        }
        Ok(())
    }

    fn candidates_of(&self, key: &str) -> &[Candidate] {
        self.known
            .get(key)
            .and_then(Option::as_ref)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn locked_version(&self, key: &str) -> Option<&Version> {
        self.locked.and_then(|l| l.get(key)).map(|m| &m.version)
    }

    /// Indexes of the versions of `key` allowed by `reqs` (a yanked one only when locked),
    /// in index order.
    fn allowed<'s>(&'s self, key: &str, reqs: &'s [Req]) -> impl Iterator<Item = usize> + 's {
        let locked = self.locked_version(key);
        self.candidates_of(key)
            .iter()
            .enumerate()
            .filter(move |(_, c)| {
                reqs.iter()
                    .all(|r| same_file(&r.name, &c.entry.name) && r.req.matches(&c.version))
            })
            .filter(move |(_, c)| !c.entry.yanked || locked == Some(&c.version))
            .map(|(i, _)| i)
    }

    /// Indexes of the versions of `key` allowed by `reqs`, in the order to try them.
    fn candidates(&self, key: &str, reqs: &[Req]) -> Vec<usize> {
        let locked = self.locked_version(key);
        let mut out: Vec<usize> = self.allowed(key, reqs).collect();
        if let Some(pos) = out
            .iter()
            .position(|&i| Some(&self.candidates_of(key)[i].version) == locked)
        {
            let i = out.remove(pos);
            out.insert(0, i);
        }
        out
    }

    /// Chooses versions for every undecided name in `state`; on success `state` holds the
    /// answer, on a conflict it is as it was.
    fn solve(&mut self, state: &mut State) -> Result<(), Failure> {
        // The undecided name with the fewest candidates; ties by key, for determinism.
        let mut next: Option<(String, usize)> = None;
        for (key, reqs) in &state.reqs {
            if state.chosen.contains_key(key) {
                continue;
            }
            self.load(key, reqs).map_err(Failure::Fatal)?;
            let count = self.allowed(key, reqs).count();
            if next.as_ref().is_none_or(|(_, best)| count < *best) {
                next = Some((key.clone(), count));
                if count == 0 {
                    break;
                }
            }
        }
        let Some((key, _)) = next else {
            return Ok(());
        };
        let cands = self.candidates(&key, &state.reqs[&key]);
        if cands.is_empty() {
            let (error, holds) = self.explain(&key, &state.reqs[&key], None);
            return Err(Failure::Conflict(error, holds));
        }

        let mut first: Option<(ResolveError, bool)> = None;
        for idx in cands {
            self.steps += 1;
            if self.steps > self.limit {
                return Err(Failure::Fatal(ResolveError::TooManySteps {
                    limit: self.limit,
                }));
            }
            let mark = state.trail.len();
            state.choose(&key, idx);
            let tried = match self.activate(state, &key, idx) {
                Ok(()) => self.solve(state),
                Err(failure) => Err(failure),
            };
            match tried {
                Ok(()) => return Ok(()),
                Err(Failure::Fatal(e)) => return Err(Failure::Fatal(e)),
                Err(Failure::Conflict(e, holds)) => {
                    state.undo_to(mark);
                    keep(&mut first, e, holds);
                }
            }
        }
        let (error, holds) = first.unwrap_or_else(|| self.explain(&key, &state.reqs[&key], None));
        Err(Failure::Conflict(error, holds))
    }

    /// Records the requirements of the chosen candidate; fails when one excludes a version
    /// already chosen.
    fn activate(&self, state: &mut State, key: &str, idx: usize) -> Result<(), Failure> {
        let cand = &self.candidates_of(key)[idx];
        if let Some(lock) = self.locked.and_then(|l| l.get(key)) {
            // A locked version is immutable, key included: another key on it means the index
            // was tampered with. (A *new* version signed by another key may be legitimate:
            // the installer checks it against the pinned key and the rotation statements.)
            if lock.version == cand.version && lock.key != cand.entry.key {
                return Err(Failure::Fatal(ResolveError::LockedKeyChanged {
                    name: cand.entry.name.clone(),
                    version: cand.version.to_string(),
                    locked_key: lock.key.clone(),
                    index_key: cand.entry.key.clone(),
                }));
            }
            if lock.version == cand.version && !lock.cksum.eq_ignore_ascii_case(&cand.entry.cksum) {
                return Err(Failure::Fatal(ResolveError::LockedChecksumChanged {
                    name: cand.entry.name.clone(),
                    version: cand.version.to_string(),
                    locked: lock.cksum.clone(),
                    index: cand.entry.cksum.clone(),
                }));
            }
        }
        let who = Who::Package {
            name: cand.entry.name.clone(),
            version: cand.version.clone(),
        };
        for dep in &cand.deps {
            state.require(
                &dep.key,
                Req {
                    name: dep.name.clone(),
                    who: who.clone(),
                    req: dep.req.clone(),
                },
            );
            if let Some(&chosen) = state.chosen.get(&dep.key) {
                let chosen_entry = &self.candidates_of(&dep.key)[chosen];
                if !same_file(&dep.name, &chosen_entry.entry.name)
                    || !dep.req.matches(&chosen_entry.version)
                {
                    let (error, holds) =
                        self.explain(&dep.key, &state.reqs[&dep.key], Some(chosen));
                    return Err(Failure::Conflict(error, holds));
                }
            }
        }
        Ok(())
    }

    /// Why no version of `key` fits `reqs`; `true` when that holds whatever else is chosen.
    fn explain(&self, key: &str, reqs: &[Req], chosen: Option<usize>) -> (ResolveError, bool) {
        let name = reqs.first().map(|r| r.name.clone()).unwrap_or_default();
        let Some(Some(all)) = self.known.get(key) else {
            let required_by = reqs.iter().map(|r| r.who.to_string()).collect();
            return (ResolveError::NotFound { name, required_by }, true);
        };
        if let Some(r) = reqs
            .iter()
            .find(|r| all.iter().all(|c| !same_file(&r.name, &c.entry.name)))
        {
            let error = ResolveError::SpelledOtherwise {
                name: r.name.clone(),
                published: all[0].entry.name.clone(),
                required_by: r.who.to_string(),
            };
            return (error, true);
        }
        let available: Vec<String> = all
            .iter()
            .map(|c| {
                if c.entry.yanked {
                    format!("{}{YANKED_MARK}", c.version)
                } else {
                    c.version.to_string()
                }
            })
            .collect();
        let requirements = reqs
            .iter()
            .map(|r| (r.who.to_string(), r.req.clone()))
            .collect();
        if !self.candidates(key, reqs).is_empty() {
            // Another version would do: the clash is with an earlier choice.
            let selected = chosen.map(|i| all[i].version.to_string());
            let error = ResolveError::Conflict {
                name,
                requirements,
                selected,
                available,
            };
            return (error, false);
        }
        let locked = self.locked_version(key);
        for r in reqs {
            let matching: Vec<&Candidate> =
                all.iter().filter(|c| r.req.matches(&c.version)).collect();
            if matching.is_empty() {
                let error = ResolveError::NoMatchingVersion {
                    name,
                    req: r.req.clone(),
                    required_by: r.who.to_string(),
                    available,
                };
                return (error, true);
            }
            if matching
                .iter()
                .all(|c| c.entry.yanked && locked != Some(&c.version))
            {
                let error = ResolveError::OnlyYanked {
                    name,
                    req: r.req.clone(),
                    required_by: r.who.to_string(),
                    yanked: matching.iter().map(|c| c.version.to_string()).collect(),
                };
                return (error, true);
            }
        }
        let error = ResolveError::Conflict {
            name,
            requirements,
            selected: None,
            available,
        };
        (error, true)
    }

    fn build(&self, state: &State) -> Resolution {
        let name_of = |key: &str| {
            state
                .chosen
                .get(key)
                .map(|&i| self.candidates_of(key)[i].entry.name.clone())
        };
        let mut packages = BTreeMap::new();
        for (key, &idx) in &state.chosen {
            let cand = &self.candidates_of(key)[idx];
            let dependencies: BTreeSet<String> =
                cand.deps.iter().filter_map(|d| name_of(&d.key)).collect();
            let required_by = state
                .reqs
                .get(key)
                .into_iter()
                .flatten()
                .map(|r| (r.who.name(), r.req.clone()))
                .collect();
            packages.insert(
                cand.entry.name.clone(),
                ResolvedPackage {
                    entry: cand.entry.clone(),
                    version: cand.version.clone(),
                    dependencies: dependencies.into_iter().collect(),
                    required_by,
                },
            );
        }
        Resolution { packages }
    }
}

/// Keeps the first error that holds regardless of other choices, else the first error.
fn keep(slot: &mut Option<(ResolveError, bool)>, error: ResolveError, holds: bool) {
    match slot {
        None => *slot = Some((error, holds)),
        Some((_, false)) if holds => *slot = Some((error, holds)),
        Some(_) => {}
    }
}

/// Whether a requirement on `asked` reads the index file of `published`: index paths are
/// lowercase, so only the case may differ (`-` and `_` name different files).
fn same_file(asked: &str, published: &str) -> bool {
    asked.eq_ignore_ascii_case(published)
}

/// What to say about a requirement on `name`, which the index has only as `published`
/// (`-` for `_` or the reverse), made by `required_by` (`<root>`: the command line).
pub fn spelled_otherwise_message(name: &str, published: &str, required_by: &str) -> String {
    if required_by == ROOT {
        format!("no mission named `{name}` in the index: it is published as `{published}` (`-` and `_` are not interchangeable in a name)")
    } else {
        format!("{required_by} depends on `{name}`, but the mission is published as `{published}`: a dependency must spell the name as published (`-` and `_` are not interchangeable), so the author of {required_by} must fix it; nothing here can")
    }
}

/// Parses the versions and requirements of the entries for `name`, highest version first.
fn check_entries(
    key: &str,
    name: &str,
    entries: Vec<IndexEntry>,
) -> Result<Vec<Candidate>, ResolveError> {
    let mut out: Vec<Candidate> = Vec::with_capacity(entries.len());
    for entry in entries {
        let bad = |problem: String| ResolveError::BadEntry {
            name: entry.name.clone(),
            vers: entry.vers.clone(),
            problem,
        };
        if collision_key(&entry.name) != key {
            return Err(bad(format!(
                "the index returned it when asked for `{name}`"
            )));
        }
        let version = entry
            .version()
            .map_err(|e| bad(format!("`vers` is not a semver version: {e}")))?;
        if out.iter().any(|c| c.version == version) {
            return Err(bad("the index lists this version twice".to_owned()));
        }
        let mut deps = Vec::with_capacity(entry.deps.len());
        for d in &entry.deps {
            let req = VersionReq::parse(&d.req).map_err(|e| {
                bad(format!(
                    "dependency `{}` has requirement `{}`, which is not semver: {e}",
                    d.name, d.req
                ))
            })?;
            deps.push(Dep {
                name: d.name.clone(),
                key: collision_key(&d.name),
                req,
            });
        }
        out.push(Candidate {
            version,
            entry,
            deps,
        });
    }
    out.sort_by(|a, b| b.version.cmp(&a.version));
    Ok(out)
}

/// Refuses a resolution whose dependency graph has a cycle, naming it.
fn check_cycles(resolution: &Resolution) -> Result<(), ResolveError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        name: &'a str,
        res: &'a Resolution,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Result<(), ResolveError> {
        match marks.get(name) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = path.iter().position(|n| *n == name).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|n| n.to_string()).collect();
                cycle.push(name.to_owned());
                return Err(ResolveError::Cycle { path: cycle });
            }
            None => {}
        }
        marks.insert(name, Mark::Visiting);
        path.push(name);
        if let Some(pkg) = res.packages.get(name) {
            for dep in &pkg.dependencies {
                visit(dep, res, marks, path)?;
            }
        }
        path.pop();
        marks.insert(name, Mark::Done);
        Ok(())
    }
    let mut marks = BTreeMap::new();
    for name in resolution.packages.keys() {
        visit(name, resolution, &mut marks, &mut Vec::new())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_that_contradict_cannot_be_met() {
        let met = |req: &str| can_be_met(&VersionReq::parse(req).unwrap());
        for req in [
            "*",
            ">=1, <1.1",
            "=1.0.0, ^1",
            "^1.2, ~1.2.5",
            ">1, <3",
            "<=1.2.3, >=1.2.3",
            "^0.0.3, =0.0.3",
            "1.*, >=1.9",
            ">1.2, <1.3.1",
            "<1.2.3, >=1.2.3-alpha",
        ] {
            assert!(met(req), "{req}");
        }
        for req in [
            "=1.0.0, ^2",
            "<1, >=1.1",
            "=1.0.0, =1.1.0",
            ">1.2.3, <=1.2.3",
            "^0.2, >=0.3",
            "^0.0.3, =0.0.4",
            "~1.2, <1.2",
            ">1, <2",
            "<=1, >=2",
            "=1.2, >=1.3",
        ] {
            assert!(!met(req), "{req}");
        }
    }

    #[test]
    fn requirement_parses_name_and_optional_req() {
        let r = Requirement::parse("fix_build").unwrap();
        assert_eq!(
            (r.name.as_str(), r.req.clone()),
            ("fix_build", VersionReq::STAR)
        );
        let r: Requirement = "fix-build@^1.2".parse().unwrap();
        assert_eq!(r.name, "fix-build");
        assert!(r.req.matches(&Version::new(1, 9, 0)));
        assert!(!r.req.matches(&Version::new(2, 0, 0)));
        // A bare version is a caret requirement, as in cargo.
        let r = Requirement::parse("a@1.2").unwrap();
        assert!(r.req.matches(&Version::new(1, 3, 0)));
        let r = Requirement::parse(" a@>=1.1, <1.4 ").unwrap();
        assert!(r.req.matches(&Version::new(1, 3, 9)));
        assert!(!r.req.matches(&Version::new(1, 4, 0)));
        assert_eq!(r.to_string(), "a@>=1.1, <1.4");
    }

    #[test]
    fn requirement_errors_say_what_is_wrong() {
        let err = Requirement::parse("a@").unwrap_err();
        assert!(matches!(err, RequirementError::EmptyReq { .. }), "{err:?}");
        assert!(err.to_string().contains("nothing after `@`"), "{err}");

        let err = Requirement::parse("a@banana").unwrap_err();
        assert!(matches!(&err, RequirementError::Req { req, .. } if req == "banana"));
        assert!(err
            .to_string()
            .starts_with("`a@banana`: `banana` is not a semver requirement"));

        let err = Requirement::parse("@1.0").unwrap_err();
        assert!(matches!(
            err,
            RequirementError::Name {
                source: NameError::Empty,
                ..
            }
        ));
        let err = Requirement::parse("9lives@1").unwrap_err();
        assert!(matches!(
            err,
            RequirementError::Name {
                source: NameError::BadStart { .. },
                ..
            }
        ));
        let err = Requirement::parse("a@1@2").unwrap_err();
        assert!(matches!(err, RequirementError::Req { .. }), "{err:?}");
    }

    #[test]
    fn semver_prerelease_rule_is_what_the_resolver_relies_on() {
        let v = |s: &str| Version::parse(s).unwrap();
        let r = |s: &str| VersionReq::parse(s).unwrap();
        assert!(!r("*").matches(&v("1.0.0-beta.1")));
        assert!(!r("^1").matches(&v("1.1.0-beta.1")));
        assert!(r("^1.0.0-beta.1").matches(&v("1.0.0-beta.2")));
        assert!(r("^1.0.0-beta.1").matches(&v("1.2.0")));
        // A prerelease of another major.minor.patch stays out.
        assert!(!r("^1.0.0-beta.1").matches(&v("1.1.0-alpha.1")));
        assert!(!r(">=1.0.0-beta.1").matches(&v("1.1.0-beta.1")));
    }
}
