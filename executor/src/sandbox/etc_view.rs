//! The sandbox's `/etc`: a copy of the few host entries a program needs
//! ([`ETC_ENTRIES`](super::view::ETC_ENTRIES)), prepared once in a root-owned cache folder
//! and shown read-only with a single bind mount.
//!
//! Why a copy and not one bind per entry: bubblewrap re-reads the whole mount table after
//! every bind it makes, so twenty binds for `/etc` cost about 2.5 ms of every step
//! (docs/benchmarks.md, sandbox overhead); one bind of a prepared folder costs one.
//!
//! - **What is copied**: only what any user of the host could read anyway (files with the
//!   world-read bit, folders with world read and search bits), each checked on the open
//!   descriptor it is then copied from (nested entries opened with `O_NOFOLLOW`), so a
//!   symlink swapped in between check and copy cannot smuggle in a private file. Files keep
//!   their read and execute bits, never a write bit. Symlinks inside copied folders stay
//!   symlinks (`/etc/alternatives`, `/etc/ssl/certs` point into `/usr`); a top-level
//!   symlink such as `/etc/localtime` is copied as what it names.
//! - **Staying current**: a view is named by a fingerprint of the `stat` (with `ctime`, so a
//!   `chmod` counts) of every copied entry but symlinks, whose adding, removing or retargeting
//!   changes their folder's. Each run re-checks those few dozen stats, and that the view is
//!   still there, and builds a new view when anything changed: an edited `/etc/hosts` shows
//!   in the next step. Views unused for a day are removed when a new one is built.
//! - **Where**: `/run/mission-sandbox/` for root, else `$XDG_RUNTIME_DIR/mission-sandbox/`
//!   or `$TMPDIR/mission-sandbox-UID/`; the folder must be ours and writable by nobody else,
//!   or we refuse to use it. Views are built in a temporary folder and renamed into place,
//!   so processes sharing the cache never see half a view.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};

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
    ctime: i64,
    ctime_nsec: i64,
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
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
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
    let view = build(network).map_err(|e| SandboxError::Prepare {
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

/// Collects what the view depends on: each entry (as a link and as what it names) and every
/// file and folder inside copied folders (symlinks show in their folder's stamp).
fn watch_list(etc: &Path, network: bool) -> Vec<(PathBuf, bool, Option<Stamp>)> {
    let mut watched = Vec::new();
    for name in entries(network) {
        let path = etc.join(name);
        watched.push((path.clone(), false, stamp_of(&path, false)));
        watched.push((path.clone(), true, stamp_of(&path, true)));
        if path.is_dir() {
            for entry in walkdir::WalkDir::new(&path)
                .follow_links(false)
                .max_depth(MAX_DEPTH)
                .min_depth(1)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| !e.file_type().is_symlink())
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
pub(crate) fn cache_root() -> io::Result<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let run = Path::new("/run");
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && std::fs::metadata(d).is_ok_and(|m| m.uid() == uid));
    let root = if uid == 0 && run.is_dir() {
        run.join("mission-sandbox")
    } else if let Some(runtime) = runtime {
        runtime.join("mission-sandbox")
    } else {
        std::env::temp_dir().join(format!("mission-sandbox-{uid}"))
    };
    check_cache_root(&root, uid)?;
    Ok(root)
}

/// Creates `root` (mode 0700) if missing; refuses it unless it is a folder (not a symlink)
/// owned by `uid` and writable by nobody else.
fn check_cache_root(root: &Path, uid: u32) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", root.display()))),
    }
    let meta = std::fs::symlink_metadata(root)?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "{} must be a folder owned by uid {uid} and writable by nobody else \
             (it is owned by uid {}, mode {:o}); its owner must remove it",
            root.display(),
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Removes views nobody has used for a day (a view's mtime is its build time, and an
/// unchanged host keeps using the same one, so old ones belong to an earlier `/etc`).
fn prune(root: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let day = std::time::Duration::from_secs(24 * 3600);
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > day);
        let ours = entry.file_name().to_string_lossy().starts_with("etc-")
            || entry.file_name().to_string_lossy().starts_with(".build-");
        if ours && old && path != keep {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn build(network: bool) -> io::Result<Built> {
    build_in(Path::new("/etc"), &cache_root()?, network)
}

/// Builds (or finds) the view of `etc` in the cache folder `root`.
fn build_in(etc: &Path, root: &Path, network: bool) -> io::Result<Built> {
    let watched = watch_list(etc, network);
    let path = root.join(format!("etc-{}", fingerprint(network, &watched)));
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
        // Touched, so pruning by age spares a view still in use.
        let _ = rustix::fs::utimensat(
            rustix::fs::CWD,
            &path,
            &rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: libc::UTIME_NOW,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: libc::UTIME_NOW,
                },
            },
            rustix::fs::AtFlags::empty(),
        );
        return Ok(Built { path, watched });
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = root.join(format!(
        ".build-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = fill(etc, &tmp, network).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process finished the same view first: use theirs.
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            return Err(e);
        }
    }
    tracing::debug!(view = %path.display(), "prepared the sandbox's /etc");
    prune(root, &path);
    Ok(Built { path, watched })
}

fn fill(etc: &Path, dest: &Path, network: bool) -> io::Result<()> {
    std::fs::DirBuilder::new().mode(0o755).create(dest)?;
    // The mode is kept exactly (no umask), since it is what the sandbox sees on /etc.
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))?;
    for name in entries(network) {
        let source = etc.join(name);
        // A top-level symlink (e.g. /etc/localtime) is followed to what it names; the
        // checks below are made on what was actually opened. Missing or dangling: skipped.
        let fd = match rustix::fs::open(
            &source,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::ACCESS) => continue,
            Err(e) => return Err(with_path(&source, e.into())),
        };
        copy_open(fd, &source, &dest.join(name), 0)?;
    }
    Ok(())
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Copies the open file or folder `fd` (named `source` in errors) to `dest`, if any user
/// could read it: a regular file with its read and execute bits, a folder with its entries.
fn copy_open(fd: OwnedFd, source: &Path, dest: &Path, depth: usize) -> io::Result<()> {
    let st = rustix::fs::fstat(&fd).map_err(|e| with_path(source, e.into()))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    let mode = st.st_mode & 0o7777;
    match kind {
        FileType::RegularFile if mode & 0o004 != 0 => {
            let mut from = std::fs::File::from(fd);
            let mut to = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
                .map_err(|e| with_path(dest, e))?;
            std::io::copy(&mut from, &mut to).map_err(|e| with_path(source, e))?;
            to.set_permissions(std::fs::Permissions::from_mode(mode & 0o555))
                .map_err(|e| with_path(dest, e))?;
        }
        FileType::Directory if mode & 0o005 == 0o005 && depth < MAX_DEPTH => {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(dest)
                .map_err(|e| with_path(dest, e))?;
            std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| with_path(dest, e))?;
            let mut entries = Dir::read_from(&fd).map_err(|e| with_path(source, e.into()))?;
            while let Some(entry) = entries.read() {
                let entry = entry.map_err(|e| with_path(source, e.into()))?;
                let name = entry.file_name();
                if name.to_bytes() == b"." || name.to_bytes() == b".." {
                    continue;
                }
                let os_name = std::ffi::OsStr::from_bytes(name.to_bytes());
                let (inner_source, inner_dest) = (source.join(os_name), dest.join(os_name));
                let st = match rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => return Err(with_path(&inner_source, e.into())),
                };
                if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                    let target = rustix::fs::readlinkat(&fd, name, Vec::new())
                        .map_err(|e| with_path(&inner_source, e.into()))?;
                    std::os::unix::fs::symlink(
                        std::ffi::OsStr::from_bytes(target.to_bytes()),
                        &inner_dest,
                    )
                    .map_err(|e| with_path(&inner_dest, e))?;
                    continue;
                }
                // Never through a symlink: one swapped in since statat is refused (ELOOP).
                match rustix::fs::openat(
                    &fd,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(inner) => copy_open(inner, &inner_source, &inner_dest, depth + 1)?,
                    Err(
                        rustix::io::Errno::NOENT
                        | rustix::io::Errno::LOOP
                        | rustix::io::Errno::ACCESS,
                    ) => {}
                    Err(e) => return Err(with_path(&inner_source, e.into())),
                }
            }
        }
        // Private files and folders, devices, sockets and pipes are never copied.
        _ => {}
    }
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

    /// A stand-in /etc with the entries the view copies.
    fn fake_etc() -> tempfile::TempDir {
        let etc = tempfile::tempdir().unwrap();
        let e = etc.path();
        std::fs::write(e.join("passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::create_dir_all(e.join("ssl/certs")).unwrap();
        std::fs::create_dir_all(e.join("ssl/private")).unwrap();
        std::fs::set_permissions(
            e.join("ssl/private"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::fs::write(e.join("ssl/private/key.pem"), "private").unwrap();
        std::fs::write(e.join("ssl/openssl.cnf"), "version-1").unwrap();
        std::os::unix::fs::symlink("/usr/share/ca/x.crt", e.join("ssl/certs/x.pem")).unwrap();
        // `hosts` is a symlink to a file only its owner may read.
        std::fs::write(e.join("secret"), "shadow-like").unwrap();
        std::fs::set_permissions(e.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(e.join("secret"), e.join("hosts")).unwrap();
        etc
    }

    #[test]
    fn a_view_copies_what_anyone_may_read_and_follows_changes() {
        let etc = fake_etc();
        let cache = tempfile::tempdir().unwrap();
        let first = build_in(etc.path(), cache.path(), false).unwrap();
        let view = &first.path;
        assert_eq!(
            std::fs::read_to_string(view.join("passwd")).unwrap(),
            "root:x:0:0::/root:/bin/sh\n"
        );
        assert_eq!(
            std::fs::metadata(view.join("passwd")).unwrap().mode() & 0o777,
            0o444
        );
        assert_eq!(
            std::fs::read_to_string(view.join("ssl/openssl.cnf")).unwrap(),
            "version-1"
        );
        assert_eq!(
            std::fs::read_link(view.join("ssl/certs/x.pem")).unwrap(),
            Path::new("/usr/share/ca/x.crt")
        );
        assert!(
            !view.join("ssl/private").exists(),
            "a private folder is left out"
        );
        assert!(
            !view.join("hosts").exists(),
            "a private file behind a symlink is left out"
        );
        // Unchanged: the same view.
        assert_eq!(
            build_in(etc.path(), cache.path(), false).unwrap().path,
            *view
        );

        // An in-place edit of a nested file, then a chmod: each a new view.
        std::fs::write(etc.path().join("ssl/openssl.cnf"), "version-2").unwrap();
        let second = build_in(etc.path(), cache.path(), false).unwrap();
        assert_ne!(second.path, *view);
        assert_eq!(
            std::fs::read_to_string(second.path.join("ssl/openssl.cnf")).unwrap(),
            "version-2"
        );
        std::fs::set_permissions(
            etc.path().join("ssl/openssl.cnf"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let third = build_in(etc.path(), cache.path(), false).unwrap();
        assert_ne!(third.path, second.path);
        assert!(!third.path.join("ssl/openssl.cnf").exists());
    }

    #[test]
    fn a_cache_folder_others_could_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        let ok = dir.path().join("ok");
        check_cache_root(&ok, uid).unwrap();
        assert_eq!(std::fs::metadata(&ok).unwrap().mode() & 0o777, 0o700);
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_cache_root(&open, uid).unwrap_err().to_string();
        assert!(err.contains("writable by nobody else"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&ok, &link).unwrap();
        assert!(check_cache_root(&link, uid).is_err());
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        assert!(check_cache_root(&theirs, uid + 1).is_err());
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
