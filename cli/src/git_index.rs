//! A node's index read over git, as cargo reads a git index: a bare clone per registry under
//! `MISSION_HOME/cache/git/<cache key>`, fetched once per command with the `git` program
//! (ARCHITECTURE section 12: network git goes through `git`, local reads through git2), and
//! the index files (`1/a`, `ab/cd/abcd`, `certs/...`, `config.json`) read from the fetched
//! commit's tree.
//!
//! The node's branch `main` is fetched into `refs/mission/fetched`. The commit a later
//! `--offline` run reads is `refs/mission/index`, moved to the fetched commit only by
//! [`GitIndex::accept`], which [`crate::sparse_client::SparseIndex`] calls where it would
//! write its sparse cache: so an install whose snapshot check fails leaves the offline
//! index where it was (the fetched objects stay in the clone, unreferenced by it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use mission_index::layout;
use mission_index::repo::MAIN_REF;

/// Where a fetch puts the node's `main`.
const FETCHED_REF: &str = "refs/mission/fetched";
/// The commit accepted last: what `--offline` reads.
const ACCEPTED_REF: &str = "refs/mission/index";

/// The git index of one registry.
pub struct GitIndex {
    /// `http(s)://HOST/git/index.git`.
    url: String,
    /// The node's base URL: git gets the token only for its `/git/` routes.
    base_url: String,
    /// The bare clone.
    dir: PathBuf,
    offline: bool,
    token: Option<String>,
    /// What to do when the node refuses the token.
    refused_advice: String,
    /// Opened (and, online, fetched) on first use; an error is kept as its message, so the
    /// fetch is tried once per command.
    opened: Mutex<Option<Result<Arc<Opened>, String>>>,
}

/// The clone, at the commit this run reads.
struct Opened {
    repo: Mutex<git2::Repository>,
    commit: git2::Oid,
    tree: git2::Oid,
    /// Whether `commit` was fetched in this run (and is not yet the accepted one).
    fetched: bool,
}

impl GitIndex {
    pub fn new(
        url: &str,
        base_url: &str,
        dir: PathBuf,
        offline: bool,
        token: Option<String>,
        refused_advice: String,
    ) -> GitIndex {
        GitIndex {
            url: url.to_owned(),
            base_url: base_url.to_owned(),
            dir,
            offline,
            token,
            refused_advice,
            opened: Mutex::new(None),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn opened(&self) -> Result<Arc<Opened>, String> {
        let mut slot = self
            .opened
            .lock()
            .map_err(|_| "internal: the git index lock is poisoned".to_owned())?;
        if let Some(known) = slot.as_ref() {
            return known.clone();
        }
        let result = self.open().map(Arc::new);
        *slot = Some(result.clone());
        result
    }

    /// Whether the network was used (a fetch was made or tried).
    pub fn fetched(&self) -> bool {
        !self.offline
            && self
                .opened
                .lock()
                .map(|slot| slot.is_some())
                .unwrap_or(true)
    }

    /// The commit this run reads: fetched now, or (offline) the last one accepted.
    pub fn commit(&self) -> Result<String, String> {
        self.opened().map(|o| o.commit.to_string())
    }

    /// The file at `path` in the commit's tree; `None` when there is none.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let opened = self.opened()?;
        let repo = opened
            .repo
            .lock()
            .map_err(|_| "internal: the git index lock is poisoned".to_owned())?;
        let what = |e: git2::Error| {
            format!(
                "reading `{path}` from commit {} in {}: {}",
                opened.commit,
                self.dir.display(),
                e.message()
            )
        };
        let tree = repo.find_tree(opened.tree).map_err(what)?;
        let entry = match tree.get_path(Path::new(path)) {
            Ok(entry) => entry,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(what(e)),
        };
        let object = entry.to_object(&repo).map_err(what)?;
        match object.as_blob() {
            Some(blob) => Ok(Some(blob.content().to_vec())),
            // A folder where a file was asked for: the index has no such file.
            None => Ok(None),
        }
    }

    /// Every mission name with an entry file in the commit's tree.
    pub fn names(&self) -> Vec<String> {
        let Ok(opened) = self.opened() else {
            return Vec::new();
        };
        let Ok(repo) = opened.repo.lock() else {
            return Vec::new();
        };
        let Ok(tree) = repo.find_tree(opened.tree) else {
            return Vec::new();
        };
        let mut names = Vec::new();
        let _ = tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(git2::ObjectType::Blob) {
                if let Ok(name) = entry.name() {
                    if let Some(found) = layout::name_from_path(&format!("{dir}{name}")) {
                        names.push(found);
                    }
                }
            }
            git2::TreeWalkResult::Ok
        });
        names
    }

    /// Makes the commit fetched in this run the one `--offline` reads.
    pub fn accept(&self) -> Result<(), String> {
        let opened = match self.opened.lock() {
            Ok(slot) => match slot.as_ref() {
                Some(Ok(opened)) if opened.fetched => opened.clone(),
                _ => return Ok(()),
            },
            Err(_) => return Ok(()),
        };
        let repo = opened
            .repo
            .lock()
            .map_err(|_| "internal: the git index lock is poisoned".to_owned())?;
        repo.reference(ACCEPTED_REF, opened.commit, true, "mission: fetched index")
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "recording the fetched index commit in {}: {}",
                    self.dir.display(),
                    e.message()
                )
            })
    }

    fn open(&self) -> Result<Opened, String> {
        if self.offline {
            let not_fetched = || {
                format!(
                    "the git index {} has not been fetched into {} yet (offline); run the command once without --offline",
                    self.url,
                    self.dir.display()
                )
            };
            let repo = git2::Repository::open_bare(&self.dir).map_err(|_| not_fetched())?;
            let commit = repo
                .refname_to_id(ACCEPTED_REF)
                .map_err(|_| not_fetched())?;
            return self.at(repo, commit, false);
        }
        let repo = match git2::Repository::open_bare(&self.dir) {
            Ok(repo) => repo,
            Err(_) => {
                if let Some(parent) = self.dir.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("creating {}: {e}", parent.display()))?;
                }
                git2::Repository::init_bare(&self.dir).map_err(|e| {
                    format!(
                        "creating the git index clone {}: {}",
                        self.dir.display(),
                        e.message()
                    )
                })?
            }
        };
        self.fetch()?;
        let commit = repo.refname_to_id(FETCHED_REF).map_err(|e| {
            format!(
                "fetching the git index {}: no commit arrived in {} ({})",
                self.url,
                self.dir.display(),
                e.message()
            )
        })?;
        self.at(repo, commit, true)
    }

    fn at(
        &self,
        repo: git2::Repository,
        commit: git2::Oid,
        fetched: bool,
    ) -> Result<Opened, String> {
        let tree = repo.find_commit(commit).map(|c| c.tree_id()).map_err(|e| {
            format!(
                "the git index clone {} has no commit {commit}: {}",
                self.dir.display(),
                e.message()
            )
        })?;
        Ok(Opened {
            repo: Mutex::new(repo),
            commit,
            tree,
            fetched,
        })
    }

    /// `git fetch URL +refs/heads/main:refs/mission/fetched` into the clone, with the token
    /// (if any) as an `http.extraHeader` given through `GIT_CONFIG_*` variables: never on
    /// the command line, never on disk, and only for the node's `/git/` routes.
    fn fetch(&self) -> Result<(), String> {
        tracing::debug!(url = %self.url, dir = %self.dir.display(), "git fetch");
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir")
            .arg(&self.dir)
            .args(["fetch", "--quiet", "--no-tags", "--force", "--"])
            .arg(&self.url)
            .arg(format!("+{MAIN_REF}:{FETCHED_REF}"))
            .env_remove("GIT_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::git_auth::authenticate(&mut cmd, &self.base_url, self.token.as_deref());
        let out = cmd.output().map_err(|e| {
            format!(
                "running `git fetch {}`: {e} (the git index is read with the `git` program: is git installed?)",
                self.url
            )
        })?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr);
        let said: Vec<&str> = said
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let said = said.join("; ");
        let hint = if said.contains("Authentication failed")
            || said.contains(" 401")
            || said.contains(" 403")
            || said.contains("terminal prompts disabled")
        {
            self.refused_advice.as_str()
        } else if said.contains("not found") || said.contains("not valid") {
            "is this the node's /git/index.git?"
        } else {
            "check that the node runs and that this is its /git/index.git, or use --offline to read the last fetch"
        };
        Err(format!(
            "fetching the git index {} failed ({}): {said}; {hint}",
            self.url, out.status
        ))
    }
}
