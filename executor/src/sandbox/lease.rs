//! The work folder lent to the sandbox uid, and given back.
//!
//! Sandboxed processes run as [`SANDBOX_UID`], so the work folder must be theirs while a
//! mission runs: the first run of a folder `chown`s the tree to that uid (walked by file
//! descriptor with `O_NOFOLLOW`, so a symlink planted by an earlier step cannot redirect
//! it), and when the last run using it ends the tree, the files the mission made included,
//! goes back to the folder's owner. Counted, because steps of one mission run in parallel
//! in one folder.
//!
//! Nothing is lost if the process dies while a folder is lent: every lease is also written
//! down (the folder, its owner, and the lending process with its start time) in
//! `leases/` of the sandbox's cache folder before the tree changes hands, and removed once
//! it is back. [`recover_stale_leases`], called when a run starts, gives back every folder
//! whose lender is gone (killed, crashed). A signal the process can catch (Ctrl-C) gives
//! folders back at once ([`return_leases_on_signal`]).
//!
//! While the engine's own file steps run, [`ActAsSandboxUser`] makes their files the sandbox
//! uid's too.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use sha2::{Digest, Sha256};

use super::process::{check_workdir, SANDBOX_GID, SANDBOX_UID};
use super::SandboxError;

/// A lent work folder: how many runs use it, and the owner (uid, gid) it goes back to.
type Lease = (usize, u32, u32);

/// The work folders lent to the sandbox uid right now.
static LEASES: Mutex<Option<std::collections::HashMap<PathBuf, Lease>>> = Mutex::new(None);

/// The work folder lent to the sandbox uid for one run. The first run of a folder hands the
/// tree to [`SANDBOX_UID`]; when the last run using it ends, the tree (the files the mission
/// made included) goes back to the folder's owner, so `mission run` in a project leaves it
/// owned by its user. Counted, because steps of one mission run in parallel in one folder.
pub struct WorkdirLease {
    path: PathBuf,
}

/// Lends `path` (a checked work folder) to the sandbox uid until the lease is dropped.
pub(crate) fn lease_workdir(path: &Path) -> Result<WorkdirLease, SandboxError> {
    let mut guard = LEASES.lock().unwrap_or_else(|e| e.into_inner());
    let leases = guard.get_or_insert_with(Default::default);
    if let Some(lease) = leases.get_mut(path) {
        lease.0 += 1;
    } else {
        let st = rustix::fs::stat(path).map_err(|e| SandboxError::Workdir {
            path: path.to_path_buf(),
            reason: format!("cannot read its owner: {e}"),
        })?;
        // Written down first: if we die from here on, the next run gives it back.
        record(path, st.st_uid, st.st_gid).map_err(|e| SandboxError::Workdir {
            path: path.to_path_buf(),
            reason: format!("cannot record its lease to the sandbox uid: {e}"),
        })?;
        if let Err(e) = give_workdir(path, SANDBOX_UID, SANDBOX_GID) {
            // Part of the tree may have changed hands: put it back before giving up.
            let _ = give_back(path, st.st_uid, st.st_gid);
            return Err(e);
        }
        leases.insert(path.to_path_buf(), (1, st.st_uid, st.st_gid));
    }
    Ok(WorkdirLease {
        path: path.to_path_buf(),
    })
}

impl Drop for WorkdirLease {
    fn drop(&mut self) {
        let mut guard = LEASES.lock().unwrap_or_else(|e| e.into_inner());
        let Some(leases) = guard.as_mut() else {
            return;
        };
        let Some(lease) = leases.get_mut(&self.path) else {
            return;
        };
        lease.0 -= 1;
        if lease.0 == 0 {
            let (_, uid, gid) = *lease;
            leases.remove(&self.path);
            if let Err(e) = give_back(&self.path, uid, gid) {
                tracing::warn!(path = %self.path.display(), error = %e, "could not give the work folder back to its owner; the next run retries");
            }
        }
    }
}

/// Gives every work folder lent right now back to its owner, for a process about to exit
/// on a signal (the leases' own drops will not run).
pub fn return_all_leases() {
    let mut guard = LEASES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(leases) = guard.as_mut() {
        for (path, (_, uid, gid)) in leases.drain() {
            if let Err(e) = give_back(&path, uid, gid) {
                eprintln!("could not give {} back to its owner: {e}", path.display());
            }
        }
    }
}

/// For a command-line program that runs missions: on SIGINT, SIGTERM or SIGHUP, give the
/// lent work folders back (see [`return_all_leases`]) and exit with 128 + the signal,
/// instead of dying with the user's project still owned by the sandbox uid. The sandboxed
/// processes die with their parent. Call it before any thread starts: it blocks those
/// signals in the calling thread (threads started later inherit that) and waits for them
/// on a thread of its own. Spawned programs start with no signal blocked (the standard
/// library resets the mask).
pub fn return_leases_on_signal() -> io::Result<()> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers; plain libc calls.
    unsafe {
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut signal = 0;
            // SAFETY: valid pointers; the set lives in this closure.
            if unsafe { libc::sigwait(&set, &mut signal) } == 0 {
                return_all_leases();
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}

/// Lends the work folder to the sandbox uid for a whole mission, when this process can (it
/// runs as root; otherwise no backend runs and there is nothing to lend). The engine holds
/// it so that files its own steps write (see [`ActAsSandboxUser`]) and files sandboxed
/// steps write have one owner while the mission runs.
pub fn lend_workdir_for_run(path: &Path) -> Result<Option<WorkdirLease>, SandboxError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    static RECOVERED: std::sync::Once = std::sync::Once::new();
    RECOVERED.call_once(recover_stale_leases);
    let workdir = check_workdir(path)?;
    lease_workdir(&workdir).map(Some)
}

/// While alive, file operations of the calling thread run as the sandbox's uid and gid
/// (`setfsuid`/`setfsgid`, which are per thread): what the engine's own file steps create
/// belongs to [`SANDBOX_UID`], as what sandboxed steps create does, and the owner's
/// permission bits apply to them as to the sandbox (root's supplementary groups still
/// count). A no-op when the process is not root.
pub struct ActAsSandboxUser {
    previous: Option<(u32, u32)>,
}

impl ActAsSandboxUser {
    /// Switches the calling thread; an error when the kernel did not (the process lacks
    /// `CAP_SETUID`/`CAP_SETGID`), in which case nothing changed.
    pub fn start() -> io::Result<ActAsSandboxUser> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(ActAsSandboxUser { previous: None });
        }
        // SAFETY: plain per-thread syscalls; each returns the previous id, and an invalid
        // id (-1) only reads the current one. The group first: changing the fsuid away
        // from 0 drops the file-system capabilities.
        let guard = unsafe {
            let gid = libc::syscall(libc::SYS_setfsgid, SANDBOX_GID) as u32;
            let uid = libc::syscall(libc::SYS_setfsuid, SANDBOX_UID) as u32;
            ActAsSandboxUser {
                previous: Some((uid, gid)),
            }
        };
        // SAFETY: as above; -1 changes nothing.
        let (now_uid, now_gid) = unsafe {
            (
                libc::syscall(libc::SYS_setfsuid, -1i32) as u32,
                libc::syscall(libc::SYS_setfsgid, -1i32) as u32,
            )
        };
        if now_uid != SANDBOX_UID || now_gid != SANDBOX_GID {
            drop(guard);
            return Err(io::Error::other(format!(
                "the file-system uid/gid is {now_uid}/{now_gid}, not {SANDBOX_UID}/{SANDBOX_GID}"
            )));
        }
        Ok(guard)
    }
}

impl Drop for ActAsSandboxUser {
    fn drop(&mut self) {
        if let Some((uid, gid)) = self.previous {
            // SAFETY: as above; restoring 0 is allowed since the effective uid is 0.
            unsafe {
                libc::syscall(libc::SYS_setfsuid, uid);
                libc::syscall(libc::SYS_setfsgid, gid);
            }
        }
    }
}

/// Gives the tree back to `uid`/`gid` and, once that worked (or the folder is gone), drops
/// the lease's record.
fn give_back(path: &Path, uid: u32, gid: u32) -> Result<(), SandboxError> {
    match give_workdir(path, uid, gid) {
        Ok(()) => {}
        Err(_) if !path.exists() => {}
        Err(e) => return Err(e),
    }
    if let Ok(file) = record_path(path) {
        let _ = std::fs::remove_file(file);
    }
    Ok(())
}

/// Where leases are written down: `leases/` in the sandbox's cache folder (root-only).
fn records_dir() -> io::Result<PathBuf> {
    let dir = super::etc_view::cache_root()?.join("leases");
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(dir),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    }
}

/// The record of the lease of `path`: one file per folder, named by a hash of its path.
fn record_path(path: &Path) -> io::Result<PathBuf> {
    let digest = Sha256::digest(path.as_os_str().as_bytes());
    Ok(records_dir()?.join(hex::encode(&digest[..16])))
}

/// This process's start time in clock ticks since boot (`/proc/PID/stat` field 22): with the
/// pid, it names the process even after the pid is reused.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Writes down that this process lends `path`, which belongs to `uid`/`gid`.
fn record(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let pid = std::process::id();
    let started = start_time(pid).unwrap_or(0);
    let file = record_path(path)?;
    let mut text = format!("{pid} {started} {uid} {gid}\n").into_bytes();
    text.extend_from_slice(path.as_os_str().as_bytes());
    // Written aside and renamed: a record is whole or absent.
    let tmp = file.with_extension(format!("tmp-{pid}"));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            io::Write::write_all(&mut f, &text)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &file));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Gives back every folder a process that is gone had lent (killed or crashed before it
/// could), as its record says. Records of live processes are left alone; one that cannot
/// be read is removed. Called once per process, before its first lease.
pub fn recover_stale_leases() {
    let Ok(dir) = records_dir() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let file = entry.path();
        if entry.file_name().to_string_lossy().contains(".tmp-") {
            continue; // being written
        }
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        let Some(newline) = bytes.iter().position(|b| *b == b'\n') else {
            let _ = std::fs::remove_file(&file);
            continue;
        };
        let fields: Vec<u64> = String::from_utf8_lossy(&bytes[..newline])
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        let [pid, started, uid, gid] = fields[..] else {
            let _ = std::fs::remove_file(&file);
            continue;
        };
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[newline + 1..]));
        let alive = u32::try_from(pid)
            .ok()
            .and_then(start_time)
            .is_some_and(|now| now == started);
        if alive {
            continue;
        }
        let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
            let _ = std::fs::remove_file(&file);
            continue;
        };
        match give_back(&path, uid, gid) {
            Ok(()) => {
                tracing::warn!(path = %path.display(), pid, "gave back a work folder a run that is gone had lent to the sandbox uid")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not give back a work folder a run that is gone had lent")
            }
        }
    }
}

/// Hands the work folder tree to the sandbox uid (see the module doc). Walks by file
/// descriptor: every directory is opened relative to its parent with `O_NOFOLLOW`, and
/// every other entry is changed with `AT_SYMLINK_NOFOLLOW`, so a symlink (even one swapped
/// in while we walk) is never followed out of the tree.
pub(crate) fn give_workdir(path: &Path, uid: u32, gid: u32) -> Result<(), SandboxError> {
    let bad = |reason: String| SandboxError::Workdir {
        path: path.to_path_buf(),
        reason,
    };
    let root = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| bad(format!("cannot open it: {e}")))?;
    chown_tree(root, uid, gid, 0).map_err(|e| bad(format!("cannot give it to uid {uid}: {e}")))
}

fn chown_tree(dir: OwnedFd, uid: u32, gid: u32, depth: usize) -> io::Result<()> {
    const MAX_DEPTH: usize = 128;
    let owner = Some(rustix::fs::Uid::from_raw_unchecked(uid));
    let group = Some(rustix::fs::Gid::from_raw_unchecked(gid));
    let st = rustix::fs::fstat(&dir)?;
    if st.st_uid != uid || st.st_gid != gid {
        rustix::fs::fchown(&dir, owner, group)?;
    }
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let mut entries = Dir::read_from(&dir)?;
    while let Some(entry) = entries.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let mut kind = entry.file_type();
        if kind == FileType::Unknown {
            kind = FileType::from_raw_mode(
                rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?.st_mode,
            );
        }
        if kind == FileType::Directory {
            match rustix::fs::openat(
                &dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(sub) => chown_tree(sub, uid, gid, depth + 1)?,
                // Replaced by a symlink or removed since we listed it: nothing of ours to give.
                Err(
                    rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR | rustix::io::Errno::NOENT,
                ) => {}
                Err(e) => return Err(e.into()),
            }
        } else {
            match rustix::fs::chownat(&dir, name, owner, group, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn give_workdir_does_not_follow_symlinks_out_of_the_tree() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "s").unwrap();
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir(work.path().join("sub")).unwrap();
        std::fs::write(work.path().join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink(&secret, work.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), work.path().join("dirlink")).unwrap();
        give_workdir(work.path(), SANDBOX_UID, SANDBOX_GID).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(work.path().join("sub/f")).unwrap().uid(),
            SANDBOX_UID
        );
        assert_eq!(std::fs::metadata(work.path()).unwrap().uid(), SANDBOX_UID);
        assert_eq!(std::fs::metadata(&secret).unwrap().uid(), 0);
        assert_eq!(std::fs::metadata(outside.path()).unwrap().uid(), 0);
    }

    #[test]
    fn a_record_of_a_process_that_is_gone_is_given_back_and_a_live_ones_is_not() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // changing owners needs root
        }
        let gone = tempfile::tempdir().unwrap();
        let live = tempfile::tempdir().unwrap();
        for dir in [gone.path(), live.path()] {
            std::fs::write(dir.join("f"), "x").unwrap();
            give_workdir(dir, SANDBOX_UID, SANDBOX_GID).unwrap();
        }
        // A record as a killed lender left it (pid 1 with a start time no process has),
        // and one of this live process.
        record(gone.path(), 0, 0).unwrap();
        let file = record_path(gone.path()).unwrap();
        let text = std::fs::read(&file).unwrap();
        let newline = text.iter().position(|b| *b == b'\n').unwrap();
        let mut forged = format!("1 {} 0 0", u64::MAX).into_bytes();
        forged.extend_from_slice(&text[newline..]);
        std::fs::write(&file, forged).unwrap();
        record(live.path(), 0, 0).unwrap();

        recover_stale_leases();
        assert_eq!(std::fs::metadata(gone.path().join("f")).unwrap().uid(), 0);
        assert!(!file.exists(), "the record goes once the folder is back");
        assert_eq!(
            std::fs::metadata(live.path().join("f")).unwrap().uid(),
            SANDBOX_UID,
            "a live lender's folder stays lent"
        );
        give_back(live.path(), 0, 0).unwrap();
        assert!(!record_path(live.path()).unwrap().exists());
    }
}
