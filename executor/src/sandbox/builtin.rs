//! The built-in backend: the same sandbox as [`bwrap`](super::bwrap), made by this process
//! with system calls, no external program.
//!
//! `Command::spawn` forks; a `pre_exec` hook then turns that child into three processes:
//!
//! ```text
//! us ─ relay   (root; new session = the run's process group; pids cgroup; rlimits;
//!      │        unshares mount, pid, ipc, uts, cgroup and, without network, net namespaces)
//!      └ init  (root; pid 1 of the new pid namespace: builds the file system view,
//!        │      reaps orphans, reports the program's wait status to the relay)
//!        └ program (chdir work folder → uid 64000 → Landlock → seccomp → exec)
//! ```
//!
//! - The **relay** stays outside the namespace so that [`run_child`](super::process) has an
//!   ordinary child to wait for and kill; it closes every descriptor (so the step's pipes and
//!   `spawn`'s exec-error pipe belong to the program alone), waits for init and exits the
//!   way the program did (same exit code, or killed by the same signal).
//! - **init** makes `/` private, mounts a tmpfs, `pivot_root`s into it with the old root at
//!   `/oldroot`, builds the [`view`](super::view) under `/newroot` from `/oldroot` sources,
//!   mounts `/proc` for its pid namespace, then `pivot_root`s into `/newroot` and detaches
//!   the old root. When init exits (the program ended) or dies (`PR_SET_PDEATHSIG` when the
//!   relay is killed), the kernel kills every process left in the namespace: a backgrounded
//!   `sleep`, a daemon that called `setsid`, all of them.
//! - The **program** drops to [`SANDBOX_UID`] with no groups and no capabilities, restricts
//!   itself with Landlock (read and execute everywhere it can see; write only in the work
//!   folder, `/tmp` and `/dev`; no signals or abstract Unix sockets outside its domain), and
//!   installs the [`filter`](super::filter) programs last.
//!
//! Allocation after `fork` is avoided in the hook (paths are C strings made beforehand)
//! except for building the Landlock ruleset in the program process; glibc's `fork` resets
//! its allocator locks in the child, so that is safe there.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use landlock::{
    Access, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, ABI,
};
use seccompiler::BpfProgram;

use super::lease;
use super::process::{self, PidsCgroup, Rlimits, SANDBOX_GID, SANDBOX_UID};
use super::view::{self, Mount, DEVICES};
use super::{filter, NetworkAccess, ProcessOutcome, ProcessSpec, Sandbox, SandboxError};

const BACKEND: &str = "builtin";

/// The built-in backend as a [`Sandbox`].
#[derive(Debug, Clone, Default)]
pub struct BuiltinSandbox {
    _private: (),
}

impl BuiltinSandbox {
    /// Checks what the backend needs: root (to create namespaces and mount, then drop to the
    /// sandbox uid) and a kernel with `pidfd_open` (5.3+).
    pub fn new() -> Result<BuiltinSandbox, SandboxError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(SandboxError::Unavailable {
                backend: BACKEND,
                reason: "it must run as root to create namespaces and drop to the sandbox uid"
                    .into(),
            });
        }
        Ok(BuiltinSandbox { _private: () })
    }
}

/// One mount operation with every path already a C string under `/newroot` (destination)
/// or `/oldroot` (source).
enum Op {
    Mkdir(CString),
    /// Bind `source` on `dest` (created as a directory or an empty file), then remount
    /// with `flags` (always nosuid, nodev; read-only for system folders).
    Bind {
        source: CString,
        dest: CString,
        is_dir: bool,
        flags: libc::c_ulong,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    Tmpfs {
        dest: CString,
        options: CString,
    },
    Proc(CString),
}

fn c(path: impl AsRef<std::path::Path>) -> Result<CString, SandboxError> {
    process::cstring(path.as_ref())
}

fn under(prefix: &str, path: &std::path::Path) -> Result<CString, SandboxError> {
    let mut joined = PathBuf::from(prefix);
    joined.push(path.strip_prefix("/").unwrap_or(path));
    c(joined)
}

fn ops_for(mounts: &[Mount]) -> Result<Vec<Op>, SandboxError> {
    let ro = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    let mut ops = Vec::new();
    for mount in mounts {
        match mount {
            Mount::Dir(dest) => ops.push(Op::Mkdir(under("/newroot", dest)?)),
            Mount::ReadOnly {
                source,
                dest,
                is_dir,
            } => ops.push(Op::Bind {
                source: under("/oldroot", source)?,
                dest: under("/newroot", dest)?,
                is_dir: *is_dir,
                flags: ro,
            }),
            Mount::ReadWrite { source, dest } => ops.push(Op::Bind {
                source: under("/oldroot", source)?,
                dest: under("/newroot", dest)?,
                is_dir: true,
                flags: libc::MS_NOSUID | libc::MS_NODEV,
            }),
            Mount::Symlink { target, link } => ops.push(Op::Symlink {
                target: c(target)?,
                link: under("/newroot", link)?,
            }),
            Mount::Tmpfs { dest, mode, size } => ops.push(Op::Tmpfs {
                dest: under("/newroot", dest)?,
                options: c(format!("mode={mode:o},size={size}"))?,
            }),
            Mount::Proc(dest) => ops.push(Op::Proc(under("/newroot", dest)?)),
            Mount::Dev(dest) => {
                ops.push(Op::Tmpfs {
                    dest: under("/newroot", dest)?,
                    options: c("mode=755,size=65536")?,
                });
                for dev in DEVICES {
                    let host = std::path::Path::new("/dev").join(dev);
                    if host.exists() {
                        ops.push(Op::Bind {
                            source: under("/oldroot", &host)?,
                            dest: under("/newroot", &dest.join(dev))?,
                            is_dir: false,
                            flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                        });
                    }
                }
                for (link, target) in [
                    ("fd", "/proc/self/fd"),
                    ("stdin", "/proc/self/fd/0"),
                    ("stdout", "/proc/self/fd/1"),
                    ("stderr", "/proc/self/fd/2"),
                ] {
                    ops.push(Op::Symlink {
                        target: c(target)?,
                        link: under("/newroot", &dest.join(link))?,
                    });
                }
                ops.push(Op::Tmpfs {
                    dest: under("/newroot", &dest.join("shm"))?,
                    options: c("mode=1777,size=16777216")?,
                });
            }
        }
    }
    Ok(ops)
}

/// Everything the hook needs, prepared before `fork`.
struct Plan {
    ops: Vec<Op>,
    workdir: CString,
    workdir_path: PathBuf,
    unshare: libc::c_int,
    rlimits: Rlimits,
    procs_fd: Option<i32>,
    deny: &'static BpfProgram,
    no_clone3: &'static BpfProgram,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn with_context(what: &'static str) -> impl Fn(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

// The literal C strings the view builder uses.
const ROOT: &std::ffi::CStr = c"/";
const TMP: &std::ffi::CStr = c"/tmp";
const TMPFS: &std::ffi::CStr = c"tmpfs";
const PROC: &std::ffi::CStr = c"proc";
const NEWROOT: &std::ffi::CStr = c"/newroot";
const NEWROOT_REL: &std::ffi::CStr = c"newroot";
const OLDROOT_REL: &std::ffi::CStr = c"oldroot";
const DOT: &std::ffi::CStr = c".";
const ROOT_OPTS: &std::ffi::CStr = c"mode=755,size=1048576";

impl Plan {
    /// In init: builds the view and enters it.
    ///
    /// # Safety
    /// Only system calls on prepared C strings.
    unsafe fn build_view(&self) -> io::Result<()> {
        let null = std::ptr::null::<libc::c_char>();
        // SAFETY (whole block): system calls with valid C strings or null pointers.
        unsafe {
            check(libc::mount(
                null,
                ROOT.as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                null.cast(),
            ))
            .map_err(with_context("making / private"))?;
            check(libc::mount(
                TMPFS.as_ptr(),
                TMP.as_ptr(),
                TMPFS.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                ROOT_OPTS.as_ptr().cast(),
            ))
            .map_err(with_context("mounting the staging tmpfs"))?;
            check(libc::chdir(TMP.as_ptr()))?;
            check(libc::mkdir(NEWROOT_REL.as_ptr(), 0o755))?;
            check(libc::mkdir(OLDROOT_REL.as_ptr(), 0o755))?;
            check(
                libc::syscall(libc::SYS_pivot_root, DOT.as_ptr(), OLDROOT_REL.as_ptr())
                    as libc::c_int,
            )
            .map_err(with_context("pivot_root to the staging tmpfs"))?;
            check(libc::chdir(ROOT.as_ptr()))?;
            check(libc::mount(
                TMPFS.as_ptr(),
                NEWROOT.as_ptr(),
                TMPFS.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                ROOT_OPTS.as_ptr().cast(),
            ))
            .map_err(with_context("mounting the new root"))?;
            for op in &self.ops {
                match op {
                    Op::Mkdir(dest) => {
                        if libc::mkdir(dest.as_ptr(), 0o755) != 0
                            && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
                        {
                            return Err(with_context("creating a folder")(
                                io::Error::last_os_error(),
                            ));
                        }
                    }
                    Op::Bind {
                        source,
                        dest,
                        is_dir,
                        flags,
                    } => {
                        if *is_dir {
                            if libc::mkdir(dest.as_ptr(), 0o755) != 0
                                && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
                            {
                                return Err(with_context("creating a mount point")(
                                    io::Error::last_os_error(),
                                ));
                            }
                        } else {
                            let fd = libc::open(
                                dest.as_ptr(),
                                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                                0o644,
                            );
                            check(fd).map_err(with_context("creating a mount point"))?;
                            libc::close(fd);
                        }
                        check(libc::mount(
                            source.as_ptr(),
                            dest.as_ptr(),
                            null,
                            libc::MS_BIND | libc::MS_REC,
                            null.cast(),
                        ))
                        .map_err(with_context("bind mount"))?;
                        check(libc::mount(
                            null,
                            dest.as_ptr(),
                            null,
                            libc::MS_BIND | libc::MS_REMOUNT | flags,
                            null.cast(),
                        ))
                        .map_err(with_context("remounting a bind mount"))?;
                    }
                    Op::Symlink { target, link } => {
                        check(libc::symlink(target.as_ptr(), link.as_ptr()))
                            .map_err(with_context("creating a symlink"))?;
                    }
                    Op::Tmpfs { dest, options } => {
                        if libc::mkdir(dest.as_ptr(), 0o755) != 0
                            && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
                        {
                            return Err(with_context("creating a tmpfs mount point")(
                                io::Error::last_os_error(),
                            ));
                        }
                        check(libc::mount(
                            TMPFS.as_ptr(),
                            dest.as_ptr(),
                            TMPFS.as_ptr(),
                            libc::MS_NOSUID | libc::MS_NODEV,
                            options.as_ptr().cast(),
                        ))
                        .map_err(with_context("mounting a tmpfs"))?;
                    }
                    Op::Proc(dest) => {
                        check(libc::mkdir(dest.as_ptr(), 0o555))?;
                        check(libc::mount(
                            PROC.as_ptr(),
                            dest.as_ptr(),
                            PROC.as_ptr(),
                            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                            null.cast(),
                        ))
                        .map_err(with_context("mounting /proc"))?;
                    }
                }
            }
            // Enter the new root and drop the stack of old ones.
            check(libc::chdir(NEWROOT.as_ptr()))?;
            check(libc::syscall(libc::SYS_pivot_root, DOT.as_ptr(), DOT.as_ptr()) as libc::c_int)
                .map_err(with_context("pivot_root to the new root"))?;
            check(libc::umount2(DOT.as_ptr(), libc::MNT_DETACH))
                .map_err(with_context("detaching the old root"))?;
            check(libc::chdir(ROOT.as_ptr()))?;
        }
        Ok(())
    }

    /// In the program process: work folder, uid, Landlock, seccomp. Returns to `exec`.
    fn confine_program(&self) -> io::Result<()> {
        // SAFETY: system calls on prepared C strings.
        unsafe {
            check(libc::chdir(self.workdir.as_ptr()))
                .map_err(with_context("entering the work folder"))?;
            process::drop_to(SANDBOX_UID, SANDBOX_GID)
                .map_err(with_context("dropping to the sandbox uid"))?;
            process::cloexec_from(3)?;
        }
        self.landlock()
            .map_err(|e| io::Error::other(format!("landlock: {e}")))?;
        seccompiler::apply_filter(self.deny)
            .map_err(|e| io::Error::other(format!("seccomp: {e}")))?;
        seccompiler::apply_filter(self.no_clone3)
            .map_err(|e| io::Error::other(format!("seccomp: {e}")))?;
        Ok(())
    }

    /// Best effort: kernels without Landlock still get the mount view, uid and seccomp.
    fn landlock(&self) -> Result<(), landlock::RulesetError> {
        let abi = ABI::V6;
        let read = AccessFs::from_read(abi);
        let all = AccessFs::from_all(abi);
        let dev = AccessFs::from_file(abi) | AccessFs::ReadDir;
        let mut ruleset = Ruleset::default()
            .handle_access(all)?
            .scope(Scope::from_all(abi))?
            .create()?;
        for (path, access) in [
            (PathBuf::from("/"), read),
            (PathBuf::from("/tmp"), all),
            (PathBuf::from("/dev"), dev),
            (self.workdir_path.clone(), all),
        ] {
            if let Ok(fd) = PathFd::new(&path) {
                ruleset = ruleset.add_rule(PathBeneath::new(fd, access))?;
            }
        }
        ruleset.restrict_self()?;
        Ok(())
    }

    /// The `pre_exec` hook. Returns `Ok` only in the program process.
    fn hook(&self) -> io::Result<()> {
        // SAFETY (whole body): system calls; the relay and init never return to std.
        unsafe {
            check(libc::setsid())?;
            if let Some(fd) = self.procs_fd {
                PidsCgroup::join(fd).map_err(with_context("joining the pids cgroup"))?;
            }
            self.rlimits
                .apply()
                .map_err(with_context("setting rlimits"))?;
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
            check(libc::unshare(self.unshare)).map_err(with_context("unshare"))?;
            let mut status_pipe = [0i32; 2];
            check(libc::pipe2(status_pipe.as_mut_ptr(), libc::O_CLOEXEC))?;
            let init = libc::fork();
            check(init)?;
            if init > 0 {
                relay(init, status_pipe[0]);
            }
            // init: pid 1 of the new namespace.
            libc::close(status_pipe[0]);
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
            self.build_view()?;
            let program = libc::fork();
            check(program)?;
            if program > 0 {
                init_loop(program, status_pipe[1]);
            }
            libc::close(status_pipe[1]);
        }
        self.confine_program()
    }
}

/// Closes every file descriptor but `keep` (after fork: system calls only).
unsafe fn close_all_except(keep: libc::c_int) {
    // SAFETY: close_range only closes descriptors; the caller owns none it still needs.
    unsafe {
        if keep > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, (keep - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
    }
}

/// The relay: close everything but the status pipe, wait for init, end like the program.
fn relay(init: libc::pid_t, status_fd: libc::c_int) -> ! {
    // SAFETY: system calls only; never returns.
    unsafe {
        close_all_except(status_fd);
        let mut init_status = 0;
        while libc::waitpid(init, &mut init_status, 0) < 0 {
            if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                libc::_exit(125);
            }
        }
        let mut buf = [0u8; 4];
        let status = if libc::read(status_fd, buf.as_mut_ptr().cast(), 4) == 4 {
            i32::from_ne_bytes(buf)
        } else {
            init_status
        };
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
            libc::_exit(128 + sig);
        }
        libc::_exit(125)
    }
}

/// init: reap every child; when the program ends, report its status and exit, which makes
/// the kernel kill whatever it left behind.
fn init_loop(program: libc::pid_t, status_fd: libc::c_int) -> ! {
    // SAFETY: system calls only; never returns.
    unsafe {
        close_all_except(status_fd);
        loop {
            let mut status = 0;
            let pid = libc::waitpid(-1, &mut status, 0);
            if pid == program {
                let bytes = status.to_ne_bytes();
                libc::write(status_fd, bytes.as_ptr().cast(), 4);
                libc::_exit(0);
            }
            if pid < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
                libc::_exit(125);
            }
        }
    }
}

impl Sandbox for BuiltinSandbox {
    fn runs_as_sandbox_user(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        BACKEND
    }

    fn run(&self, spec: &ProcessSpec) -> Result<ProcessOutcome, SandboxError> {
        let workdir = process::check_workdir(&spec.workdir)?;
        let network = matches!(spec.network, NetworkAccess::Hosts(_));
        let mounts = view::plan_for(spec, &workdir)?;
        let ops = ops_for(&mounts)?;
        // Held until this run returns: the tree goes back to its owner after the last run.
        let _lease = lease::lease_workdir(&workdir)?;
        let filters = filter::filters(network)?;
        // Our helper processes: the relay and init.
        let cgroup = PidsCgroup::create(spec.limits.max_processes.saturating_add(2));
        let mut unshare = libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWCGROUP;
        if !network {
            unshare |= libc::CLONE_NEWNET;
        }
        let plan = Plan {
            ops,
            workdir: c(&workdir)?,
            workdir_path: workdir.clone(),
            unshare,
            rlimits: Rlimits::from_limits(&spec.limits),
            procs_fd: cgroup.as_ref().map(PidsCgroup::procs_fd),
            deny: &filters.deny,
            no_clone3: &filters.no_clone3,
        };
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .env_clear()
            .envs(process::sandbox_env(spec, &workdir));
        // SAFETY: see the module doc: system calls, plus the Landlock ruleset in the program
        // process only.
        unsafe {
            cmd.pre_exec(move || plan.hook());
        }
        process::run_child(cmd, spec, cgroup.as_ref())
    }
}
