//! Replacing a file whole: the bytes go to a temporary file in the same folder, which is
//! then renamed over the file, so a crash leaves the old file or the new one, never half
//! of one. The node writes its signed snapshot this way; the client its index and archive
//! caches, trust store, credentials and packaged archives.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file that could not be replaced: which, at what step, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {step}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    pub step: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// How much a write promises once it returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Atomic only: after a power cut the file may be the old one (a cache refills).
    Atomic,
    /// Atomic, and the new bytes and the rename are on disk.
    Synced,
}

/// Replaces `path` with `bytes`; its folder is created if missing. A temporary file starts
/// readable by its owner only (mode 0600 on Unix), and so does the file.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    replace(path, bytes, Durability::Atomic, None)
}

/// [`write`], with the new bytes and the rename made durable before it returns: for files
/// whose loss matters more than a few milliseconds (the trust store, credentials).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    replace(path, bytes, Durability::Synced, None)
}

/// [`write_synced`] for a file meant to be shared: readable by everyone (mode 0644).
pub fn write_synced_public(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    replace(path, bytes, Durability::Synced, Some(0o644))
}

fn replace(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
    mode: Option<u32>,
) -> Result<(), WriteError> {
    let failed = |step: &'static str| {
        move |source: std::io::Error| WriteError {
            path: path.to_owned(),
            step,
            source,
        }
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // The folder usually exists: create it only when the temporary file cannot be made.
    let tmp = match tempfile::NamedTempFile::new_in(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(failed("creating its folder"))?;
            tempfile::NamedTempFile::new_in(dir)
        }
        made => made,
    };
    let mut tmp = tmp.map_err(failed("creating a temporary file beside it"))?;
    tmp.write_all(bytes).map_err(failed("writing"))?;
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(failed("setting its mode"))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    if durability == Durability::Synced {
        tmp.as_file().sync_all().map_err(failed("syncing"))?;
    }
    tmp.persist(path)
        .map_err(|e| failed("renaming it into place")(e.error))?;
    if durability == Durability::Synced {
        // The rename itself; a folder some filesystems cannot sync is not worth failing
        // over, as the file is complete either way.
        if let Ok(folder) = std::fs::File::open(dir) {
            let _ = folder.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_creates_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/file");
        write(&path, b"first").unwrap();
        write_synced(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["file"]);
    }

    #[cfg(unix)]
    #[test]
    fn private_unless_public() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let private = dir.path().join("credentials.toml");
        write_synced(&private, b"token").unwrap();
        assert_eq!(mode(&private), 0o600);
        let public = dir.path().join("x.mission");
        write_synced_public(&public, b"archive").unwrap();
        assert_eq!(mode(&public), 0o644);
    }

    #[test]
    fn a_failure_names_the_file_and_the_step() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the folder should be.
        let blocker = dir.path().join("blocker");
        std::fs::write(&blocker, b"").unwrap();
        let err = write(&blocker.join("file"), b"x").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("blocker/file") && text.contains("temporary file"),
            "{text}"
        );
        assert_eq!(std::fs::read(&blocker).unwrap(), b"", "nothing is lost");
    }
}
