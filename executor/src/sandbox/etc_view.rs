//! The sandbox's `/etc`: a copy of the few host entries a program needs
//! ([`ETC_ENTRIES`](super::view::ETC_ENTRIES)), prepared once in a root-owned cache folder
//! and shown read-only with a single bind mount.
//!
//! Why a copy and not one bind per entry: bubblewrap re-reads the whole mount table after
//! every bind it makes, so twenty binds for `/etc` cost about 2.5 ms of every step
//! (docs/benchmarks.md, sandbox overhead); one bind of a prepared folder costs one.
//!
//! - **What is copied**: only what any user of the host could read anyway (files with the
//!   world-read bit, folders with world read and search bits); symlinks inside copied
//!   folders stay symlinks (e.g. `/etc/alternatives`, `/etc/ssl/certs` point into `/usr`).
//!   A top-level symlink such as `/etc/localtime` is copied as what it names.
//! - **Staying current**: a view is named by a fingerprint of the `stat` of every copied
//!   top-level entry and every folder inside them (a changed, added or removed entry changes
//!   its folder's mtime). Each run re-checks those few stats and builds a new view when one
//!   changed, so an edited `/etc/hosts` shows in the next step.
//! - **Where**: `/run/mission-sandbox/` (root-only), else `$TMPDIR/mission-sandbox-UID/`;
//!   the folder must be ours and writable by nobody else, or we refuse to use it. Views are
//!   built in a temporary folder and renamed into place, so processes sharing the cache
//!   never see half a view.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::view::ETC_ENTRIES;
use super::SandboxError;

/// The copied tree is this deep at most (`/etc/ssl/certs` is 2).
const MAX_DEPTH: usize = 8;

/// One checked `stat`: enough to notice a replaced or edited entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    mode: u32,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            mode: meta.mode(),
        }
    }
}

/// A built view and the stats it was built from.
#[derive(Debug, Clone)]
struct Built {
    path: PathBuf,
    /// (path, followed symlinks?, stamp)
    watched: Vec<(PathBuf, bool, Option<Stamp>)>,
}

static BUILT: Mutex<Option<HashMap<bool, Built>>> = Mutex::new(None);

/// The host folder to show read-only as the sandbox's `/etc` (with `resolv.conf` when the
/// step may use the network), building or refreshing it when needed.
pub fn current(network: bool) -> Result<PathBuf, SandboxError> {
    let mut guard = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = guard.get_or_insert_with(HashMap::new);
    if let Some(view) = built.get(&network) {
        if view
            .watched
            .iter()
            .all(|(p, follow, stamp)| stamp_of(p, *follow) == *stamp)
        {
            return Ok(view.path.clone());
        }
    }
    let view = build(network).map_err(|e| SandboxError::Setup {
        backend: "sandbox",
        reason: format!("cannot prepare the sandbox's /etc: {e}"),
    })?;
    let path = view.path.clone();
    built.insert(network, view);
    Ok(path)
}

fn stamp_of(path: &Path, follow: bool) -> Option<Stamp> {
    let meta = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    meta.ok().map(|m| Stamp::of(&m))
}

fn entries(network: bool) -> impl Iterator<Item = &'static str> {
    ETC_ENTRIES
        .iter()
        .copied()
        .chain(network.then_some("resolv.conf"))
}

fn world_readable(meta: &std::fs::Metadata) -> bool {
    let mode = meta.mode();
    if meta.is_dir() {
        mode & 0o005 == 0o005
    } else {
        mode & 0o004 != 0
    }
}

/// Collects what the view depends on: each entry (as a link and as what it names) and every
/// folder inside copied folders.
fn watch_list(network: bool) -> Vec<(PathBuf, bool, Option<Stamp>)> {
    let mut watched = Vec::new();
    for name in entries(network) {
        let path = Path::new("/etc").join(name);
        watched.push((path.clone(), false, stamp_of(&path, false)));
        watched.push((path.clone(), true, stamp_of(&path, true)));
        if path.is_dir() {
            for entry in walkdir::WalkDir::new(&path)
                .follow_links(false)
                .max_depth(MAX_DEPTH)
                .min_depth(1)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_dir())
            {
                let p = entry.into_path();
                let stamp = stamp_of(&p, false);
                watched.push((p, false, stamp));
            }
        }
    }
    watched
}

fn fingerprint(network: bool, watched: &[(PathBuf, bool, Option<Stamp>)]) -> String {
    let mut hash = Sha256::new();
    hash.update(if network {
        b"net\n" as &[u8]
    } else {
        b"nonet\n"
    });
    for (path, follow, stamp) in watched {
        hash.update(format!("{}\0{follow}\0{stamp:?}\n", path.display()).as_bytes());
    }
    hex::encode(&hash.finalize()[..12])
}

/// The cache folder: created if missing, refused if someone else could change it.
fn cache_root() -> io::Result<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let run = Path::new("/run");
    let root = if uid == 0 && run.is_dir() {
        run.join("mission-sandbox")
    } else {
        std::env::temp_dir().join(format!("mission-sandbox-{uid}"))
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", root.display()))),
    }
    let meta = std::fs::symlink_metadata(&root)?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "{} must be a folder owned by uid {uid} and writable by nobody else \
             (it is owned by uid {}, mode {:o}); remove it",
            root.display(),
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    Ok(root)
}

fn build(network: bool) -> io::Result<Built> {
    let watched = watch_list(network);
    let root = cache_root()?;
    let path = root.join(format!("etc-{}", fingerprint(network, &watched)));
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
        return Ok(Built { path, watched });
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = root.join(format!(
        ".build-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = fill(&tmp, network).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process finished the same view first: use theirs.
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            return Err(e);
        }
    }
    tracing::debug!(view = %path.display(), "prepared the sandbox's /etc");
    Ok(Built { path, watched })
}

fn fill(dest: &Path, network: bool) -> io::Result<()> {
    std::fs::DirBuilder::new().mode(0o755).create(dest)?;
    // The mode is kept exactly (no umask), since it is what the sandbox sees on /etc.
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))?;
    for name in entries(network) {
        let source = Path::new("/etc").join(name);
        // Follow a top-level symlink (e.g. /etc/localtime) to what it names; skip a
        // dangling one.
        let Ok(meta) = std::fs::metadata(&source) else {
            continue;
        };
        if !world_readable(&meta) {
            continue;
        }
        copy_entry(&source, &meta, &dest.join(name), 0)?;
    }
    Ok(())
}

fn copy_entry(
    source: &Path,
    meta: &std::fs::Metadata,
    dest: &Path,
    depth: usize,
) -> io::Result<()> {
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", source.display()));
    if meta.is_file() {
        std::fs::copy(source, dest).map_err(ctx)?;
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o444)).map_err(ctx)?;
    } else if meta.is_dir() {
        if depth >= MAX_DEPTH {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(dest)
            .map_err(ctx)?;
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755)).map_err(ctx)?;
        for entry in std::fs::read_dir(source).map_err(ctx)? {
            let entry = entry.map_err(ctx)?;
            let path = entry.path();
            let inner = std::fs::symlink_metadata(&path).map_err(ctx)?;
            let target = dest.join(entry.file_name());
            if inner.file_type().is_symlink() {
                let link = std::fs::read_link(&path).map_err(ctx)?;
                std::os::unix::fs::symlink(link, &target).map_err(ctx)?;
            } else if (inner.is_file() || inner.is_dir()) && world_readable(&inner) {
                copy_entry(&path, &inner, &target, depth + 1)?;
            }
        }
    }
    // Devices, sockets and pipes are never copied.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_holds_readable_entries_only_and_is_reused() {
        let first = current(false).unwrap();
        assert_eq!(
            current(false).unwrap(),
            first,
            "an unchanged /etc reuses its view"
        );
        let mode = std::fs::metadata(&first).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o755);
        if Path::new("/etc/passwd").is_file() {
            assert_eq!(
                std::fs::read(first.join("passwd")).unwrap(),
                std::fs::read("/etc/passwd").unwrap()
            );
            let mode = std::fs::metadata(first.join("passwd")).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o444);
        }
        assert!(!first.join("shadow").exists());
        assert!(!first.join("resolv.conf").exists());
        // /etc/ssl/private is root-only on the host: not in the view.
        if Path::new("/etc/ssl/private").is_dir() {
            assert!(!first.join("ssl/private").exists());
        }
    }

    #[test]
    fn network_view_adds_resolv_conf() {
        if !Path::new("/etc/resolv.conf").exists() {
            return;
        }
        let with = current(true).unwrap();
        assert!(with.join("resolv.conf").is_file());
        assert_ne!(with, current(false).unwrap());
    }
}
