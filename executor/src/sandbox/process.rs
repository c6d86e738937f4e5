//! What both backends share: the sandbox's user, the work folder handed to it, the
//! environment, resource limits, a per-run `pids` cgroup, and running one child to its end.
//!
//! A backend builds a [`Command`] (bubblewrap, or a self-forking child for the built-in
//! backend) and hands it to [`run_child`], which
//!
//! - feeds standard input from a thread and reads standard output and error on two more
//!   threads, keeping at most [`Limits::max_output_bytes`] of each and draining the rest, so a
//!   flood can neither block the process nor fill our memory;
//! - waits on a pidfd with a deadline; at the wall-clock limit it kills the child's whole
//!   process group (`kill(-pgid, SIGKILL)`) and every process left in the run's cgroup;
//! - kills the process group and the cgroup again once the child has exited but before it is
//!   reaped (the zombie keeps the pgid from being reused), so nothing outlives the step.
//!
//! Why a dedicated non-root uid: the kernel does not enforce `RLIMIT_NPROC` for root, and a
//! root process can read any file whose folder is exposed. Every sandboxed process runs as
//! [`SANDBOX_UID`]/[`SANDBOX_GID`] (no entry in `/etc/passwd` is needed). The work folder is
//! lent to that uid while a mission runs (see [`lease`](super::lease)).
//!
//! `RLIMIT_NPROC` counts every process of the uid on the host, so concurrent steps share one
//! budget. Where the v1 `pids` cgroup controller is writable (it is on these machines), each
//! run also gets its own cgroup whose `pids.max` is exactly the step's limit (plus the
//! backend's own helper processes), and which is emptied with SIGKILL when the run ends.

use std::ffi::{CString, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{Limits, ProcessOutcome, ProcessSpec, SandboxError};

/// The host uid every sandboxed process runs as. Not root, so `RLIMIT_NPROC` holds and file
/// permissions apply; not `nobody` (65534), which other services may share.
pub const SANDBOX_UID: u32 = 64_000;
/// The host gid every sandboxed process runs as (no supplementary groups).
pub const SANDBOX_GID: u32 = 64_000;

/// `PATH` when the spec does not set one.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// Where the per-run cgroups go (cgroup v1 `pids` controller).
const PIDS_CGROUP_ROOT: &str = "/sys/fs/cgroup/pids/mission-sandbox";

/// The environment a sandboxed process gets: `PATH`, `HOME` (the work folder) and `TMPDIR`
/// (`/tmp`, private to the step) defaults, overridden by the spec's own variables.
pub(crate) fn sandbox_env(spec: &ProcessSpec, workdir: &Path) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), workdir.as_os_str().to_owned()),
        ("TMPDIR".into(), "/tmp".into()),
    ];
    for (key, value) in &spec.env {
        env.retain(|(k, _)| k.as_os_str() != key.as_str());
        env.push((key.into(), value.into()));
    }
    env
}

/// Checks the work folder and returns its canonical path (the path the sandbox shows it at).
pub(crate) fn check_workdir(path: &Path) -> Result<PathBuf, SandboxError> {
    let bad = |reason: String| SandboxError::Workdir {
        path: path.to_path_buf(),
        reason,
    };
    let canonical = path
        .canonicalize()
        .map_err(|e| bad(format!("cannot resolve it: {e}")))?;
    if !canonical.is_dir() {
        return Err(bad("it is not a directory".into()));
    }
    if canonical.as_os_str().as_bytes().contains(&b',') {
        // bubblewrap and mount(2) option strings split on commas; refuse rather than guess.
        return Err(bad("its path contains a comma".into()));
    }
    Ok(canonical)
}

/// Resource limits applied with `setrlimit` in the child before it executes anything.
/// Soft and hard limits are equal (CPU: hard = soft + 1 s, so `SIGXCPU` comes first), so the
/// sandboxed process cannot raise them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rlimits {
    cpu: u64,
    address_space: u64,
    /// `None`: left as it is (set inside the sandbox instead, see the bwrap backend).
    pub(crate) processes: Option<u64>,
    file_size: u64,
}

impl Rlimits {
    pub(crate) fn from_limits(limits: &Limits) -> Self {
        Rlimits {
            cpu: limits.cpu_seconds.max(1),
            address_space: limits.memory_bytes,
            processes: Some(limits.max_processes.max(1)),
            file_size: limits.max_file_bytes,
        }
    }

    /// Applies the limits to the calling process.
    ///
    /// # Safety
    /// Only async-signal-safe calls: meant for a `pre_exec` hook.
    pub(crate) unsafe fn apply(&self) -> io::Result<()> {
        let set = |resource, soft: u64, hard: u64| -> io::Result<()> {
            let lim = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            // SAFETY: plain syscall with a valid pointer.
            if unsafe { libc::setrlimit(resource, &lim) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        };
        set(libc::RLIMIT_CPU, self.cpu, self.cpu.saturating_add(1))?;
        set(libc::RLIMIT_AS, self.address_space, self.address_space)?;
        if let Some(processes) = self.processes {
            set(libc::RLIMIT_NPROC, processes, processes)?;
        }
        set(libc::RLIMIT_FSIZE, self.file_size, self.file_size)?;
        set(libc::RLIMIT_CORE, 0, 0)?;
        Ok(())
    }
}

/// Drops to `uid`/`gid` with no supplementary groups (all three ids: real, effective, saved).
///
/// # Safety
/// Async-signal-safe: meant for a `pre_exec` hook.
pub(crate) unsafe fn drop_to(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscalls.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(gid, gid, gid) != 0
            || libc::setresuid(uid, uid, uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec, so nothing the host process leaked
/// (a descriptor some library opened without `O_CLOEXEC`) reaches the sandbox.
///
/// # Safety
/// Async-signal-safe: meant for a `pre_exec` hook.
pub(crate) unsafe fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: plain syscall.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One run's cgroup in the v1 `pids` hierarchy: an exact process limit for the step and a
/// list of everything it started, to kill at the end.
pub(crate) struct PidsCgroup {
    dir: PathBuf,
    procs: OwnedFd,
}

impl PidsCgroup {
    /// Creates the cgroup with `pids.max = max`. `None` when the controller is not there or
    /// not writable (the rlimit alone then bounds processes).
    pub(crate) fn create(max: u64) -> Option<PidsCgroup> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let root = Path::new(PIDS_CGROUP_ROOT);
        if !root.is_dir() {
            std::fs::create_dir(root).ok()?;
        }
        let dir = root.join(format!(
            "run-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).ok()?;
        let cgroup = (|| {
            std::fs::write(dir.join("pids.max"), max.to_string()).ok()?;
            // `tasks`, not `cgroup.procs`: writing `0` there moves only the calling thread,
            // which the kernel does without its global thread-group lock (an RCU grace
            // period, 5 to 20 ms on this machine, against 0.15 ms). The joining child has
            // just forked and is single-threaded, so moving its thread moves the process.
            let procs = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("tasks"))
                .ok()?;
            Some(OwnedFd::from(procs))
        })();
        match cgroup {
            Some(procs) => Some(PidsCgroup { dir, procs }),
            None => {
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }

    /// The open `tasks` descriptor: a freshly forked (single-threaded) child writes `0` to it
    /// to join.
    pub(crate) fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// Moves the calling process (single-threaded: just forked) into the cgroup.
    ///
    /// # Safety
    /// Async-signal-safe: meant for a `pre_exec` hook.
    pub(crate) unsafe fn join(procs_fd: RawFd) -> io::Result<()> {
        // SAFETY: plain syscall with a valid buffer.
        if unsafe { libc::write(procs_fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// SIGKILLs every process in the cgroup until it is empty (or a second has passed).
    pub(crate) fn kill_all(&self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let Ok(list) = std::fs::read_to_string(self.dir.join("cgroup.procs")) else {
                return;
            };
            let pids: Vec<i32> = list.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if pids.is_empty() || Instant::now() > deadline {
                return;
            }
            for pid in pids {
                // SAFETY: plain syscall.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        self.kill_all();
        // The kernel refuses while a killed process is still exiting; retry briefly.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A read-only pipe holding `bytes`, for passing a small blob (a seccomp program) to a child
/// by descriptor. The write end is closed, so the reader sees end of file after the bytes.
pub(crate) fn pipe_with(bytes: &[u8]) -> io::Result<OwnedFd> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: valid pointer to two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    if bytes.len() > 60_000 {
        return Err(io::Error::other("blob larger than a pipe buffer"));
    }
    std::fs::File::from(write).write_all(bytes)?;
    Ok(read)
}

/// A path as a C string for syscalls in a child.
pub(crate) fn cstring(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| SandboxError::Prepare {
        reason: format!("path {} contains a NUL byte", path.display()),
    })
}

/// Output kept from one stream.
#[derive(Default)]
struct Capture {
    kept: Vec<u8>,
    truncated: bool,
}

fn capture(mut stream: impl Read, cap: usize, into: Arc<Mutex<Capture>>, done: mpsc::Sender<()>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let Ok(mut c) = into.lock() else { break };
                let room = cap.saturating_sub(c.kept.len());
                let take = room.min(n);
                c.kept.extend_from_slice(&buf[..take]);
                if take < n {
                    c.truncated = true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = done.send(());
}

/// Runs `cmd` (already set up to start a new session, so its pid is its process group) to its
/// end or its wall-clock limit, capturing output.
pub(crate) fn run_child(
    mut cmd: Command,
    spec: &ProcessSpec,
    cgroup: Option<&PidsCgroup>,
) -> Result<ProcessOutcome, SandboxError> {
    let io_err = |source: io::Error| SandboxError::Io {
        program: spec.program.clone(),
        source,
    };
    cmd.stdin(if spec.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());

    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            SandboxError::ProgramNotFound {
                program: spec.program.clone(),
            }
        } else {
            io_err(e)
        }
    })?;
    let pid = child.id() as libc::pid_t;

    let writer = match (child.stdin.take(), spec.stdin.clone()) {
        (Some(mut stdin), Some(bytes)) => Some(thread::spawn(move || {
            // A process that does not read its input closes the pipe: not our error.
            let _ = stdin.write_all(&bytes);
        })),
        _ => None,
    };
    let cap = spec.limits.max_output_bytes;
    let (done_tx, done_rx) = mpsc::channel();
    let out = Arc::new(Mutex::new(Capture::default()));
    let err = Arc::new(Mutex::new(Capture::default()));
    let mut readers = 0;
    if let Some(stream) = child.stdout.take() {
        let (into, done) = (out.clone(), done_tx.clone());
        thread::spawn(move || capture(stream, cap, into, done));
        readers += 1;
    }
    if let Some(stream) = child.stderr.take() {
        let (into, done) = (err.clone(), done_tx.clone());
        thread::spawn(move || capture(stream, cap, into, done));
        readers += 1;
    }
    drop(done_tx);

    let deadline = started + spec.limits.wall_time;
    let exited = wait_exit(pid, deadline).map_err(io_err)?;
    // Killed now, before reaping: the unreaped child keeps its pid, so the group id cannot
    // name anyone else yet.
    // SAFETY: plain syscall.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    if let Some(cg) = cgroup {
        cg.kill_all();
    }
    let status = child.wait().map_err(io_err)?;
    let duration = started.elapsed();

    // Every writer is dead now; the readers finish at end of file. The grace period only
    // matters if something escaped both the process group and the cgroup.
    let grace = Instant::now() + Duration::from_secs(2);
    for _ in 0..readers {
        let left = grace.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    let take = |c: &Arc<Mutex<Capture>>| -> (Vec<u8>, bool) {
        match c.lock() {
            Ok(mut c) => (std::mem::take(&mut c.kept), c.truncated),
            Err(_) => (Vec::new(), false),
        }
    };
    let (stdout, out_trunc) = take(&out);
    let (stderr, err_trunc) = take(&err);
    use std::os::unix::process::ExitStatusExt;
    Ok(ProcessOutcome {
        exit_code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
        output_truncated: out_trunc || err_trunc,
        timed_out: !exited,
        duration,
    })
}

/// Waits until process `pid` (our child) has exited, without reaping it. `Ok(false)` when
/// the deadline came first.
fn wait_exit(pid: libc::pid_t, deadline: Instant) -> io::Result<bool> {
    // SAFETY: plain syscall; the pid is our unreaped child, so it names that process.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just returned to us.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            return Ok(true);
        }
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_defaults_are_overridden_by_the_spec() {
        let spec = ProcessSpec {
            program: "true".into(),
            args: vec![],
            workdir: "/w".into(),
            env: vec![("PATH".into(), "/x".into()), ("A".into(), "1".into())],
            stdin: None,
            limits: Limits::default(),
            network: Default::default(),
            read_only: vec![],
        };
        let env = sandbox_env(&spec, Path::new("/w"));
        let get = |k: &str| env.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
        assert_eq!(get("PATH"), Some("/x".into()));
        assert_eq!(get("HOME"), Some("/w".into()));
        assert_eq!(get("TMPDIR"), Some("/tmp".into()));
        assert_eq!(get("A"), Some("1".into()));
        assert_eq!(env.len(), 4);
    }

    #[test]
    fn check_workdir_rejects_files_and_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            check_workdir(&file),
            Err(SandboxError::Workdir { .. })
        ));
        assert!(matches!(
            check_workdir(&dir.path().join("missing")),
            Err(SandboxError::Workdir { .. })
        ));
        assert_eq!(
            check_workdir(dir.path()).unwrap(),
            dir.path().canonicalize().unwrap()
        );
    }
}
