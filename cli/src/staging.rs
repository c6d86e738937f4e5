//! The staging folder of an install, and cleaning up after an install that was killed.
//!
//! An install unpacks every archive into `INSTALL_DIR/.mission-install-XXXX/new/CKSUM/`,
//! then swaps the chosen ones into place one by one as `INSTALL_DIR/NAME/`, moving what
//! they replace (and the missions it removes) into `old/NAME/`, and renames the new
//! `missions.lock` into place last. Before the first move it writes a **journal** beside
//! `new/` and `old/`: the missions it will place (name, checksum, whether one was there
//! before) and remove, and the checksums of the lockfile before and after. While the
//! install lives, it holds a lock on the staging folder ([`crate::locks`]).
//!
//! A staging folder nobody holds was left by a killed install, or arrived with the
//! project (a repository can hold anything): [`recover`] (run by the next `install`,
//! `update` or `remove`, under the project lock) trusts nothing in it. A journal is used
//! only if it names this project's lockfile and only mission names and checksums (so every
//! path it leads to is `INSTALL_DIR/NAME` or inside the staging folder), and a staging
//! folder that is a symbolic link is left alone. Then it puts the project back as it was
//! before the killed install, unless that install had finished:
//!
//! - no (usable) journal: the install moved nothing (it writes the journal before its
//!   first move), or it finished (the journal is deleted first): nothing is put back;
//! - the lockfile on disk is the new one: the install had finished its moves, so the
//!   folder only has to go;
//! - otherwise the moves are undone: each mission moved aside goes back, and each one
//!   placed where there was none before is taken away. Undoing twice (a recovery killed
//!   halfway) does the same, as what was there before is in the journal.
//!
//! Then the journal is deleted, then the folder, and lockfile temporaries
//! (`.missions.lock.XXXX`) left in the project folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mission_index::archive;
use mission_index::atomic_file;
use mission_index::lockfile::LOCKFILE_NAME;
use mission_index::name::validate_name;
use serde::{Deserialize, Serialize};

use crate::locks::{self, Held};

/// A file the installer leaves in every install folder it uses but `missions/`: a folder
/// a lockfile names is used only when it has one, is empty or does not exist yet, so that a
/// lockfile from someone else cannot point an install at one of the project's own folders
/// and have it replace or remove what is in it.
pub const FOLDER_MARKER: &str = ".mission-folder";

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
    /// The missions moved from `new/CKSUM` into the install folder, in order.
    pub place: Vec<Placed>,
    /// The missions moved out of the install folder into `old/`.
    pub remove: Vec<String>,
}

/// One mission an install puts in place.
#[derive(Debug, Serialize, Deserialize)]
pub struct Placed {
    pub name: String,
    /// Its archive's checksum: the name of its folder in `new/`.
    pub cksum: String,
    /// Whether `INSTALL_DIR/NAME` existed before the install (then moved to `old/NAME`).
    pub had_old: bool,
}

impl Journal {
    /// Whether every path this journal leads to stays where it should: mission names that
    /// are names, checksums that are checksums, and this project's lockfile.
    fn is_sound(&self, lockfile: &Path) -> bool {
        self.lockfile == lockfile
            && self.place.iter().all(|p| {
                validate_name(&p.name).is_ok() && archive::cksum_problem(&p.cksum).is_none()
            })
            && self.remove.iter().all(|n| validate_name(n).is_ok())
    }
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

    /// The install completed: the install folder stays even if this install created it,
    /// and the journal goes first (a kill while the rest is deleted must find nothing to
    /// undo).
    pub fn complete(&mut self) -> Result<()> {
        self.created = None;
        if let Some(dir) = &self.dir {
            let journal = dir.path().join(JOURNAL);
            match std::fs::remove_file(&journal) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", journal.display()))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        drop(self.dir.take());
        if let Some(dir) = &self.created {
            // Only an empty folder goes (but for the mark this install put there); anything
            // else in it stays.
            let only_mark = std::fs::read_dir(dir).is_ok_and(|entries| {
                entries
                    .flatten()
                    .all(|e| e.file_name().to_str() == Some(FOLDER_MARKER))
            });
            if only_mark {
                let _ = std::fs::remove_file(dir.join(FOLDER_MARKER));
            }
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// SHA-256 (hex) of the file at `path`, `None` when there is none.
pub fn file_sha256(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(archive::cksum(&bytes))),
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
            // Not followed if a link: only a real folder here can be one of ours.
            let real_folder = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
            if !name.to_string_lossy().starts_with(PREFIX) || !real_folder {
                continue;
            }
            // Held: a live install (of another project sharing this folder) uses it.
            let Some(_held) = locks::try_lock_folder(&path) else {
                continue;
            };
            let undone = undo(dir, &path, &project.join(LOCKFILE_NAME))?;
            // The journal first: a recovery killed while deleting must not find a journal
            // over half the folders it describes.
            let _ = std::fs::remove_file(path.join(JOURNAL));
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

/// Undoes the moves of the dead install whose staging folder is `staging` (in install
/// folder `dir`, for the lockfile `lockfile`); returns what it changed in `dir`, as
/// `put back NAME` / `took away NAME`.
fn undo(dir: &Path, staging: &Path, lockfile: &Path) -> Result<Vec<String>> {
    let fresh = staging.join("new");
    let backup = staging.join("old");
    // Only real folders: a link here (from a repository, say) could reach anywhere.
    let real_folder = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    let journal: Option<Journal> = std::fs::read(staging.join(JOURNAL))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Journal>(&bytes).ok())
        .filter(|j| j.is_sound(lockfile))
        .filter(|_| real_folder(&fresh) && real_folder(&backup));
    let mut changed = Vec::new();
    let put_back = |name: &str, changed: &mut Vec<String>| -> Result<()> {
        let target = dir.join(name);
        let old = backup.join(name);
        if !real_folder(&old) {
            return Ok(());
        }
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
        // An install moves nothing before its journal is written, and a finished one (or
        // a recovery) deletes the journal before the rest: without one, nothing is to be
        // put back, whatever `old/` holds.
        return Ok(changed);
    };
    let committed = journal.new_lock.is_some()
        && journal.new_lock != journal.old_lock
        && file_sha256(&journal.lockfile)? == journal.new_lock;
    if committed {
        return Ok(changed);
    }
    for placed in &journal.place {
        let name = &placed.name;
        let target = dir.join(name);
        if real_folder(&backup.join(name)) {
            put_back(name, &mut changed)?;
        } else if !placed.had_old
            && !fresh.join(&placed.cksum).exists()
            && std::fs::symlink_metadata(&target).is_ok()
        {
            // Placed where there was nothing before.
            std::fs::remove_dir_all(&target)
                .with_context(|| format!("removing {}", target.display()))?;
            changed.push(format!("took away {name}"));
        }
        // Otherwise: not moved yet, or already put back by an earlier recovery.
    }
    for name in &journal.remove {
        put_back(name, &mut changed)?;
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

    /// A made-up archive checksum for `name` (the folder name in `new/`).
    fn sum(name: &str) -> String {
        mission_index::archive::cksum(name.as_bytes())
    }

    fn placed(name: &str, had_old: bool) -> Placed {
        Placed {
            name: name.to_owned(),
            cksum: sum(name),
            had_old,
        }
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
            mission(&staging.fresh, &sum(name), "2");
        }
        staging
            .write_journal(&Journal {
                lockfile: lockfile.clone(),
                old_lock: file_sha256(&lockfile).unwrap(),
                new_lock: Some(mission_index::archive::cksum(b"new lock")),
                place: vec![placed("a", true), placed("b", false), placed("c", false)],
                remove: vec!["gone".into()],
            })
            .unwrap();
        std::fs::rename(dir.join("a"), staging.backup.join("a")).unwrap();
        std::fs::rename(staging.fresh.join(sum("a")), dir.join("a")).unwrap();
        std::fs::rename(staging.fresh.join(sum("b")), dir.join("b")).unwrap();
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
    fn undoing_twice_does_the_same_as_once() {
        let root = tempfile::tempdir().unwrap();
        let (dir, staging) = killed_mid_swap(root.path(), false);
        // A first recovery killed right after putting `a` back: `a` 1 is in place, `old/a`
        // is gone, and the journal is still there.
        std::fs::remove_dir_all(dir.join("a")).unwrap();
        std::fs::rename(staging.join("old/a"), dir.join("a")).unwrap();
        recover(&dir, root.path()).unwrap();
        assert_eq!(version(&dir, "a").as_deref(), Some("1"), "not taken away");
        assert_eq!(version(&dir, "gone").as_deref(), Some("1"));
        assert!(!dir.join("b").exists() && !staging.exists());
    }

    #[test]
    fn a_journal_that_leads_elsewhere_is_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("missions");
        let victim = root.path().join("victim");
        mission(root.path(), "victim", "precious");
        // A staging folder committed to a repository, with a journal naming a path.
        let planted = dir.join(".mission-install-planted");
        mission(&planted.join("old"), "x", "1");
        let journal = Journal {
            lockfile: root.path().join(LOCKFILE_NAME),
            old_lock: None,
            new_lock: None,
            place: vec![Placed {
                name: victim.display().to_string(),
                cksum: sum("x"),
                had_old: false,
            }],
            remove: vec!["../victim".into()],
        };
        std::fs::write(planted.join(JOURNAL), serde_json::to_vec(&journal).unwrap()).unwrap();
        recover(&dir, root.path()).unwrap();
        assert_eq!(version(root.path(), "victim").as_deref(), Some("precious"));
        assert!(!planted.exists());
        // A journal for another project's lockfile is not followed either.
        let other = Journal {
            lockfile: root.path().join("elsewhere").join(LOCKFILE_NAME),
            place: vec![placed("a", false)],
            remove: vec![],
            ..journal
        };
        mission(&dir, "a", "mine");
        let planted = dir.join(".mission-install-other");
        std::fs::create_dir_all(planted.join("new")).unwrap();
        std::fs::write(planted.join(JOURNAL), serde_json::to_vec(&other).unwrap()).unwrap();
        recover(&dir, root.path()).unwrap();
        assert_eq!(version(&dir, "a").as_deref(), Some("mine"));
    }

    #[cfg(unix)]
    #[test]
    fn links_inside_a_staging_folder_are_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("missions");
        let victim = root.path().join("victim");
        mission(&victim, "secrets", "key");
        // A planted staging folder whose journal looks sound, but whose `old` is a link
        // out of the project.
        let planted = dir.join(".mission-install-evil");
        std::fs::create_dir_all(planted.join("new")).unwrap();
        std::os::unix::fs::symlink(&victim, planted.join("old")).unwrap();
        let journal = Journal {
            lockfile: root.path().join(LOCKFILE_NAME),
            old_lock: Some(sum("old")),
            new_lock: Some(sum("new")),
            place: vec![placed("secrets", true)],
            remove: vec!["secrets".into()],
        };
        std::fs::write(planted.join(JOURNAL), serde_json::to_vec(&journal).unwrap()).unwrap();
        recover(&dir, root.path()).unwrap();
        assert_eq!(version(&victim, "secrets").as_deref(), Some("key"));
        assert!(!dir.join("secrets").exists());
        // And a real `old/` whose entry is a link: not moved in either.
        let planted = dir.join(".mission-install-evil2");
        std::fs::create_dir_all(planted.join("new")).unwrap();
        std::fs::create_dir_all(planted.join("old")).unwrap();
        std::os::unix::fs::symlink(victim.join("secrets"), planted.join("old/secrets")).unwrap();
        std::fs::write(planted.join(JOURNAL), serde_json::to_vec(&journal).unwrap()).unwrap();
        recover(&dir, root.path()).unwrap();
        assert_eq!(version(&victim, "secrets").as_deref(), Some("key"));
        assert!(std::fs::symlink_metadata(dir.join("secrets")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_staging_folder_that_is_a_link_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("missions");
        std::fs::create_dir_all(&dir).unwrap();
        let outside = root.path().join("outside");
        mission(&outside.join("old"), "kept", "1");
        std::os::unix::fs::symlink(&outside, dir.join(".mission-install-link")).unwrap();
        recover(&dir, root.path()).unwrap();
        assert!(
            outside.join("old/kept").exists(),
            "nothing followed or deleted"
        );
        assert!(!dir.join("kept").exists());
    }

    #[test]
    fn a_completed_install_drops_its_journal_first() {
        // With the lock unchanged (a --locked reinstall), a journal left over a half-deleted
        // folder would take away the missions just placed: completing removes it first.
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("missions");
        let mut staging = Staging::new(&dir).unwrap();
        let journal_path = staging.dir.as_ref().unwrap().path().join(JOURNAL);
        staging
            .write_journal(&Journal {
                lockfile: root.path().join(LOCKFILE_NAME),
                old_lock: None,
                new_lock: None,
                place: vec![placed("a", false)],
                remove: vec![],
            })
            .unwrap();
        assert!(journal_path.is_file());
        staging.complete().unwrap();
        assert!(!journal_path.exists());
        drop(staging);
        assert!(dir.is_dir(), "a completed install keeps the folder it made");
    }

    #[test]
    fn a_live_install_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("missions");
        let staging = Staging::new(&dir).unwrap();
        mission(&staging.fresh, &sum("a"), "2");
        assert!(recover(&dir, root.path()).unwrap().is_empty());
        assert!(staging.fresh.join(sum("a")).exists());
    }

    #[test]
    fn a_folder_without_journal_is_only_deleted() {
        // A finished install (or remove) killed while deleting its staging folder, after
        // the journal went: what `old/` still holds must not come back.
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("missions");
        mission(&dir, "kept", "2");
        let stale = dir.join(".mission-install-old");
        mission(&stale.join("old"), "kept", "1");
        mission(&stale.join("old"), "removed", "1");
        recover(&dir, root.path()).unwrap();
        assert_eq!(version(&dir, "kept").as_deref(), Some("2"));
        assert!(!dir.join("removed").exists());
        assert!(!stale.exists());
    }
}
