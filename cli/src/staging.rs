//! The staging folder of an install, and cleaning up after an install that was killed.
//!
//! An install unpacks every mission into `INSTALL_DIR/.mission-install-XXXX/new/`, then
//! swaps them into place one by one, moving what they replace (and the missions it
//! removes) into `old/`, and renames the new `missions.lock` into place last. Before the
//! first move it writes a **journal** beside `new/` and `old/`: the names it will place
//! and remove, and the checksums of the lockfile before and after. While the install
//! lives, it holds a lock on the staging folder ([`crate::locks`]).
//!
//! A staging folder nobody holds was left by a killed install. [`recover`] (run by the
//! next `install`, `update` or `remove`, under the project lock) puts the project back the
//! way the lockfile on disk describes it:
//!
//! - no journal: nothing was moved yet (or an older client left it), so only missions
//!   moved aside and not replaced are put back;
//! - the lockfile on disk is the new one: the install had finished its moves, so the
//!   folder only has to go;
//! - otherwise the moves are undone: each mission moved aside goes back, and each one
//!   placed where there was none is taken away.
//!
//! Then the folder is deleted, and so are lockfile temporaries (`.missions.lock.XXXX`)
//! left in the project folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mission_index::atomic_file;
use mission_index::lockfile::LOCKFILE_NAME;
use serde::{Deserialize, Serialize};

use crate::locks::{self, Held};

/// The name every staging folder starts with.
const PREFIX: &str = ".mission-install-";
const JOURNAL: &str = "journal.json";

/// A staging folder inside the install folder: `new/` receives the unpacked missions,
/// `old/` what they replace. Dropping it deletes both, and the install folder too when it
/// was created for this install and nothing was put in it.
pub struct Staging {
    dir: Option<tempfile::TempDir>,
    pub fresh: PathBuf,
    pub backup: PathBuf,
    /// The install folder, when this install created it and has not completed.
    created: Option<PathBuf>,
    _held: Option<Held>,
}

/// What an install is about to do to the install folder and the lockfile.
#[derive(Debug, Serialize, Deserialize)]
pub struct Journal {
    /// The lockfile this install writes (absolute).
    pub lockfile: PathBuf,
    /// SHA-256 of the lockfile before the install (`None`: there was none).
    pub old_lock: Option<String>,
    /// SHA-256 of the lockfile the install writes (`None`: it leaves the lockfile alone).
    pub new_lock: Option<String>,
    /// The missions moved from `new/` into the install folder, in order.
    pub place: Vec<String>,
    /// The missions moved out of the install folder into `old/`.
    pub remove: Vec<String>,
}

impl Staging {
    pub fn new(dir: &Path) -> Result<Staging> {
        let created = (!dir.exists()).then(|| dir.to_owned());
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let staging = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir_in(dir)
            .with_context(|| format!("creating a staging folder in {}", dir.display()))?;
        let held = locks::try_lock_folder(staging.path());
        let fresh = staging.path().join("new");
        let backup = staging.path().join("old");
        for d in [&fresh, &backup] {
            std::fs::create_dir(d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(Staging {
            dir: Some(staging),
            fresh,
            backup,
            created,
            _held: held,
        })
    }

    /// Writes the journal (synced) before the first move: from then on, a killed install
    /// can be undone.
    pub fn write_journal(&self, journal: &Journal) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let text = serde_json::to_vec_pretty(journal).context("writing the install journal")?;
        atomic_file::write_synced(&dir.path().join(JOURNAL), &text)?;
        Ok(())
    }

    /// The install completed: the install folder stays even if this install created it.
    pub fn keep_install_dir(&mut self) {
        self.created = None;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        drop(self.dir.take());
        if let Some(dir) = &self.created {
            // Only an empty folder goes; anything else in it stays.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// SHA-256 (hex) of the file at `path`, `None` when there is none.
pub fn file_sha256(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(mission_index::archive::cksum(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Cleans up after killed installs in install folder `dir` and project folder `project`
/// (see the module documentation). Call with the project lock held. Returns one line per
/// folder cleaned, for the user.
pub fn recover(dir: &Path, project: &Path) -> Result<Vec<String>> {
    let mut done = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let path = entry.path();
            if !name.to_string_lossy().starts_with(PREFIX) || !path.is_dir() {
                continue;
            }
            // Held: a live install (of another project sharing this folder) uses it.
            let Some(_held) = locks::try_lock_folder(&path) else {
                continue;
            };
            let undone = undo(dir, &path)?;
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
            done.push(if undone.is_empty() {
                format!("removed {} left by an interrupted install", path.display())
            } else {
                format!(
                    "undid an interrupted install in {}: {}",
                    dir.display(),
                    undone.join(", ")
                )
            });
        }
    }
    // Lockfiles written beside their place by a killed install.
    let temp_prefix = format!(".{LOCKFILE_NAME}.");
    if let Ok(entries) = std::fs::read_dir(project) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&temp_prefix)
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(done)
}

/// Undoes the moves of the dead install whose staging folder is `staging`; returns what
/// it changed in `dir`, as `put back NAME` / `took away NAME`.
fn undo(dir: &Path, staging: &Path) -> Result<Vec<String>> {
    let fresh = staging.join("new");
    let backup = staging.join("old");
    let journal: Option<Journal> = std::fs::read(staging.join(JOURNAL))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let mut changed = Vec::new();
    let put_back = |name: &str, changed: &mut Vec<String>| -> Result<()> {
        let target = dir.join(name);
        let old = backup.join(name);
        if std::fs::symlink_metadata(&target).is_ok() {
            std::fs::remove_dir_all(&target)
                .with_context(|| format!("removing {}", target.display()))?;
        }
        std::fs::rename(&old, &target)
            .with_context(|| format!("putting {} back", target.display()))?;
        changed.push(format!("put back {name}"));
        Ok(())
    };
    let Some(journal) = journal else {
        // Nothing moved under a journal: put back only what is missing.
        if let Ok(entries) = std::fs::read_dir(&backup) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if std::fs::symlink_metadata(dir.join(&name)).is_err() {
                    put_back(&name, &mut changed)?;
                }
            }
        }
        return Ok(changed);
    };
    let committed = journal.new_lock.is_some()
        && journal.new_lock != journal.old_lock
        && file_sha256(&journal.lockfile)? == journal.new_lock;
    if committed {
        return Ok(changed);
    }
    for name in &journal.place {
        let target = dir.join(name);
        if backup.join(name).exists() {
            put_back(name, &mut changed)?;
        } else if !fresh.join(name).exists() && std::fs::symlink_metadata(&target).is_ok() {
            // Placed where there was nothing before.
            std::fs::remove_dir_all(&target)
                .with_context(|| format!("removing {}", target.display()))?;
            changed.push(format!("took away {name}"));
        }
    }
    for name in &journal.remove {
        if backup.join(name).exists() {
            put_back(name, &mut changed)?;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mission(dir: &Path, name: &str, version: &str) {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("VERSION"), version).unwrap();
    }

    fn version(dir: &Path, name: &str) -> Option<String> {
        std::fs::read_to_string(dir.join(name).join("VERSION")).ok()
    }

    /// An install dir with `a` 1 and `gone` 1 installed, and a lockfile; returns a staging
    /// folder (left as a killed install leaves it: its lock released) after moving `a` 2
    /// in place of `a` 1, placing `b` 2 where there was none, removing `gone`, but not yet
    /// placing `c` 2, with the lockfile replaced when `committed`.
    fn killed_mid_swap(root: &Path, committed: bool) -> (PathBuf, PathBuf) {
        let dir = root.join("missions");
        let lockfile = root.join(LOCKFILE_NAME);
        mission(&dir, "a", "1");
        mission(&dir, "gone", "1");
        std::fs::write(&lockfile, "old lock").unwrap();
        let staging = Staging::new(&dir).unwrap();
        let path = staging.dir.as_ref().unwrap().path().to_owned();
        for name in ["a", "b", "c"] {
            mission(&staging.fresh, name, "2");
        }
        staging
            .write_journal(&Journal {
                lockfile: lockfile.clone(),
                old_lock: file_sha256(&lockfile).unwrap(),
                new_lock: Some(mission_index::archive::cksum(b"new lock")),
                place: vec!["a".into(), "b".into(), "c".into()],
                remove: vec!["gone".into()],
            })
            .unwrap();
        std::fs::rename(dir.join("a"), staging.backup.join("a")).unwrap();
        std::fs::rename(staging.fresh.join("a"), dir.join("a")).unwrap();
        std::fs::rename(staging.fresh.join("b"), dir.join("b")).unwrap();
        std::fs::rename(dir.join("gone"), staging.backup.join("gone")).unwrap();
        if committed {
            std::fs::write(&lockfile, "new lock").unwrap();
        }
        // Killed: the folder stays, its lock goes.
        let mut staging = staging;
        let kept = staging.dir.take().unwrap().keep();
        assert_eq!(kept, path);
        drop(staging);
        std::fs::write(root.join(".missions.lock.tmp123"), "half").unwrap();
        (dir, path)
    }

    #[test]
    fn a_killed_install_is_undone_when_its_lock_was_not_written() {
        let root = tempfile::tempdir().unwrap();
        let (dir, staging) = killed_mid_swap(root.path(), false);
        let done = recover(&dir, root.path()).unwrap();
        assert_eq!(done.len(), 1, "{done:?}");
        assert!(
            done[0].contains("put back a") && done[0].contains("took away b"),
            "{done:?}"
        );
        assert_eq!(version(&dir, "a").as_deref(), Some("1"));
        assert_eq!(version(&dir, "gone").as_deref(), Some("1"));
        assert!(!dir.join("b").exists() && !dir.join("c").exists());
        assert!(!staging.exists());
        assert!(!root.path().join(".missions.lock.tmp123").exists());
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(left.len(), 2, "only a and gone");
    }

    #[test]
    fn a_killed_install_whose_lock_was_written_only_loses_its_folder() {
        let root = tempfile::tempdir().unwrap();
        let (dir, staging) = killed_mid_swap(root.path(), true);
        recover(&dir, root.path()).unwrap();
        assert_eq!(version(&dir, "a").as_deref(), Some("2"));
        assert_eq!(version(&dir, "b").as_deref(), Some("2"));
        assert!(!dir.join("gone").exists());
        assert!(!staging.exists());
    }

    #[test]
    fn a_live_install_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("missions");
        let staging = Staging::new(&dir).unwrap();
        mission(&staging.fresh, "a", "2");
        assert!(recover(&dir, root.path()).unwrap().is_empty());
        assert!(staging.fresh.join("a").exists());
    }

    #[test]
    fn a_folder_without_journal_puts_back_only_what_is_missing() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("missions");
        mission(&dir, "kept", "2");
        let stale = dir.join(".mission-install-old");
        mission(&stale.join("old"), "kept", "1");
        mission(&stale.join("old"), "lost", "1");
        recover(&dir, root.path()).unwrap();
        assert_eq!(version(&dir, "kept").as_deref(), Some("2"));
        assert_eq!(version(&dir, "lost").as_deref(), Some("1"));
        assert!(!stale.exists());
    }
}
