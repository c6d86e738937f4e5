//! Where the client keeps its files: `MISSION_HOME` when set, else `mission/` in the user's
//! config folder (`~/.config/mission` on Linux). Keys live in `keys/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The client's home folder (not created).
pub fn mission_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("MISSION_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    let config = dirs::config_dir()
        .context("cannot find the user's config folder; set MISSION_HOME to choose one")?;
    Ok(config.join("mission"))
}

/// The folder of signing keys, `MISSION_HOME/keys`.
pub fn keys_dir() -> Result<PathBuf> {
    Ok(mission_home()?.join("keys"))
}

/// An exclusive lock on `MISSION_HOME`, held while an install reads and rewrites what is
/// in it (trust store, caches): two installs at once would otherwise each write back the
/// trust store as they read it, and the later one would drop the other's pinned keys or
/// put back an older snapshot. Released when dropped (or when the process ends, however
/// it ends). Like cargo's package cache lock, a second install waits, and says so.
pub struct HomeLock {
    _file: std::fs::File,
}

/// Takes the [`HomeLock`] on `home` (the [`mission_home`]), waiting for another install to
/// finish if need be.
pub fn lock_home(home: &Path) -> Result<Option<HomeLock>> {
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let path = home.join(".mission-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!(
                "note: waiting for another mission command to finish with {} (lock {})",
                home.display(),
                path.display()
            );
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            // A file system without locks: go on as before locks existed.
            tracing::debug!(path = %path.display(), "file locks unsupported here; not locking");
            return Ok(None);
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(Some(HomeLock { _file: file }))
}
