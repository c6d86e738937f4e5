//! Advisory locks that make `mission` commands take turns, as cargo's do.
//!
//! - The **home lock** (`MISSION_HOME/.mission-lock`) is held while an install reads and
//!   rewrites what is in the home (trust store, caches): two installs at once would
//!   otherwise each write back the trust store as they read it, and the later one would
//!   drop the other's pinned keys or put back an older snapshot.
//! - The **project lock** is held on the folder of `missions.lock` while a command reads
//!   the lock, changes the installed missions and writes the lock back (`install`,
//!   `update`, `remove`): otherwise the later of two installs writes a lock that misses
//!   what the other installed.
//! - Each install's **staging folder** is locked while the install lives, so the next
//!   command can tell a folder left by a killed install (see [`crate::staging`]) from one
//!   in use.
//!
//! Commands take the project lock before the home lock, so two of them never wait for
//! each other in a circle. A lock goes with its file handle: when dropped, or when the
//! process ends however it ends. A command that has to wait says so on stderr.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use anyhow::{Context, Result};

/// A held lock; released when dropped.
pub struct Held {
    _file: File,
}

/// Takes the home lock on `home` (created if missing), waiting if another command holds it.
pub fn lock_home(home: &Path) -> Result<Option<Held>> {
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let path = home.join(".mission-lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    wait_for(file, &path, "the mission home")
}

/// Takes the project lock on `folder` (the folder of `missions.lock`, which must exist),
/// waiting if another command holds it. The folder itself is locked: no file is added to
/// the project.
pub fn lock_project(folder: &Path) -> Result<Option<Held>> {
    match File::open(folder) {
        Ok(file) => wait_for(file, folder, "this project"),
        // Some systems cannot open a folder as a file: go on unlocked, as before locks.
        Err(e) => {
            tracing::debug!(folder = %folder.display(), error = %e, "cannot open the folder to lock it; not locking");
            Ok(None)
        }
    }
}

/// Locks `folder` if no one holds it: `Some` means no live command uses it.
pub fn try_lock_folder(folder: &Path) -> Option<Held> {
    let file = File::open(folder).ok()?;
    file.try_lock().ok()?;
    Some(Held { _file: file })
}

fn wait_for(file: File, path: &Path, what: &str) -> Result<Option<Held>> {
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            eprintln!(
                "note: waiting for another mission command to finish with {what} (lock on {})",
                path.display()
            );
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
        }
        Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            // A file system without locks: go on as before locks existed.
            tracing::debug!(path = %path.display(), "file locks unsupported here; not locking");
            return Ok(None);
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(Some(Held { _file: file }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_folder_is_seen_as_in_use_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_project(dir.path()).unwrap();
        assert!(held.is_some());
        assert!(try_lock_folder(dir.path()).is_none(), "in use");
        drop(held);
        assert!(try_lock_folder(dir.path()).is_some(), "free again");
    }
}
