//! The bubblewrap backend: `bwrap` builds the sandbox, we set its limits and end it.
//!
//! One run is one `bwrap` process tree:
//!
//! ```text
//! us ─ bwrap (root, new session = new process group, in the run's pids cgroup, rlimits set)
//!        └ bwrap init (pid 1 of a new pid namespace)
//!            └ setpriv → the step's program (uid 64000, no capabilities, seccomp filter)
//! ```
//!
//! - **Namespaces**: pid, ipc, uts, cgroup, and network unless [`NetworkAccess::Hosts`]
//!   (`--share-net` semantics: the host network is simply not unshared). Not a user
//!   namespace: bwrap runs as root so that it can mount the work folder wherever it lives
//!   (even below a root-only folder), and the program runs as the real host uid
//!   [`SANDBOX_UID`], dropped to by `setpriv` inside the sandbox. A user namespace would map
//!   that uid to root outside, and the kernel does not enforce `RLIMIT_NPROC` for root.
//! - **Files**: the [`view`](super::view) mounts (read-only `/usr`, a few `/etc` entries,
//!   fresh `/proc` and `/dev`, private `/tmp`, the work folder read-write as the current
//!   directory).
//! - **Environment**: bwrap's own environment is cleared and set to exactly the step's
//!   (`env_clear` on the `bwrap` command): bwrap and setpriv pass it through. This keeps
//!   secrets out of `bwrap`'s argument list, which any host user can read in `/proc`.
//! - **Capabilities**: bwrap keeps only `CAP_SETUID`, `CAP_SETGID` and `CAP_SETPCAP` for
//!   `setpriv`, which clears groups, inheritable and bounding sets, sets `no_new_privs`
//!   and changes uid; a non-root uid then has no capabilities at all.
//! - **seccomp**: the [`filter`](super::filter) programs, passed by descriptor with
//!   `--add-seccomp-fd`, installed by bwrap just before `setpriv`.
//! - **Ending**: `--die-with-parent`; the wall-clock kill hits bwrap's process group and the
//!   cgroup; when bwrap's init (pid 1) dies the kernel kills everything in the namespace.
//!
//! **As an ordinary user** (not root) nothing above needs privileges except the uid change:
//! bwrap then also unshares a user namespace (the caller's uid mapped to itself, nested
//! user namespaces disabled), the program runs as the caller with no capabilities, the work
//! folder is not lent (it is the caller's), no pids cgroup is made (the controller is not
//! writable), and the process limit is set inside the namespace by `prlimit`: there the
//! kernel counts only the namespace's processes, where out here it would count all the
//! caller's. This needs unprivileged user namespaces (the usual default).
//!
//! bwrap reports a program killed by a signal as exit code 128 + signal (its init exits,
//! it is not killed), so [`ProcessOutcome::signal`] stays `None` with this backend.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::lease;
use super::process::{self, PidsCgroup, Rlimits, SANDBOX_GID, SANDBOX_UID};
use super::view::{self, Mount};
use super::{filter, NetworkAccess, ProcessOutcome, ProcessSpec, Sandbox, SandboxError};

const BACKEND: &str = "bwrap";

/// The setpriv that drops privileges inside the sandbox (util-linux, under `/usr`).
const SETPRIV: &str = "/usr/bin/setpriv";

/// The prlimit that sets the process limit inside an unprivileged sandbox (util-linux).
const PRLIMIT: &str = "/usr/bin/prlimit";

/// bubblewrap as a [`Sandbox`].
#[derive(Debug, Clone)]
pub struct BwrapSandbox {
    bwrap: PathBuf,
    /// Running as root: processes run as [`SANDBOX_UID`]. Otherwise as the caller, inside a
    /// user namespace (see the module doc).
    privileged: bool,
    /// bwrap knows `--disable-userns` (0.8 and later). Without it, the seccomp filter still
    /// refuses `unshare` and new namespaces in `clone`.
    disable_userns: bool,
}

impl BwrapSandbox {
    /// Finds `bwrap` (`/usr/bin/bwrap`, else on `PATH`) and checks it works by running
    /// `true` in a sandbox; the error says why not.
    pub fn new() -> Result<BwrapSandbox, SandboxError> {
        let bwrap = find_bwrap().ok_or_else(|| unavailable("bwrap is not installed"))?;
        // SAFETY: geteuid has no preconditions.
        let privileged = unsafe { libc::geteuid() } == 0;
        let helper = if privileged { SETPRIV } else { PRLIMIT };
        if !Path::new(helper).is_file() {
            return Err(unavailable(format!(
                "{helper} (util-linux) is not installed"
            )));
        }
        let disable_userns = version_at_least(&bwrap, (0, 8));
        let sandbox = BwrapSandbox {
            bwrap,
            privileged,
            disable_userns,
        };
        sandbox.probe().map_err(|e| match e {
            SandboxError::Unavailable { reason, .. } if !privileged => unavailable(format!(
                "{reason} (as an ordinary user bwrap needs unprivileged user namespaces: \
                 see sysctl user.max_user_namespaces and, on Ubuntu, \
                 kernel.apparmor_restrict_unprivileged_userns)"
            )),
            other => other,
        })?;
        Ok(sandbox)
    }

    /// The bwrap binary in use.
    pub fn binary(&self) -> &Path {
        &self.bwrap
    }

    fn probe(&self) -> Result<(), SandboxError> {
        let dir = std::env::temp_dir().join(format!("mission-bwrap-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| unavailable(format!("cannot create a probe folder: {e}")))?;
        let spec = ProcessSpec {
            program: "true".into(),
            args: vec![],
            workdir: dir.clone(),
            env: vec![],
            stdin: None,
            limits: super::Limits {
                wall_time: std::time::Duration::from_secs(10),
                ..Default::default()
            },
            network: NetworkAccess::None,
            read_only: vec![],
        };
        let result = self.run(&spec);
        let _ = std::fs::remove_dir_all(&dir);
        match result {
            Ok(outcome) if outcome.success() => Ok(()),
            Ok(outcome) => Err(unavailable(format!(
                "running `true` in it failed (exit {:?}): {}",
                outcome.exit_code,
                String::from_utf8_lossy(&outcome.stderr).trim()
            ))),
            Err(e) => Err(unavailable(format!("running `true` in it failed: {e}"))),
        }
    }
}

fn unavailable(reason: impl Into<String>) -> SandboxError {
    SandboxError::Unavailable {
        backend: BACKEND,
        reason: reason.into(),
    }
}

/// Whether `bwrap --version` ("bubblewrap 0.8.0") is at least `(major, minor)`.
fn version_at_least(bwrap: &Path, (major, minor): (u32, u32)) -> bool {
    let Ok(out) = Command::new(bwrap).arg("--version").env_clear().output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut numbers = text
        .split_whitespace()
        .last()
        .unwrap_or("")
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let found = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    found >= (major, minor)
}

fn find_bwrap() -> Option<PathBuf> {
    let usual = Path::new("/usr/bin/bwrap");
    if usual.is_file() {
        return Some(usual.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("bwrap"))
            .find(|p| p.is_file())
    })
}

/// bwrap's arguments for these mounts.
fn mount_args(mounts: &[Mount], args: &mut Vec<String>) {
    let s = |p: &Path| p.to_string_lossy().into_owned();
    for mount in mounts {
        match mount {
            Mount::Dir(dest) => args.extend(["--dir".into(), s(dest)]),
            Mount::ReadOnly { source, dest, .. } => {
                args.extend(["--ro-bind".into(), s(source), s(dest)])
            }
            Mount::ReadWrite { source, dest } => args.extend(["--bind".into(), s(source), s(dest)]),
            Mount::Symlink { target, link } => {
                args.extend(["--symlink".into(), s(target), s(link)])
            }
            Mount::Tmpfs { dest, mode, size } => args.extend([
                "--perms".into(),
                format!("{mode:o}"),
                "--size".into(),
                size.to_string(),
                "--tmpfs".into(),
                s(dest),
            ]),
            Mount::Proc(dest) => args.extend(["--proc".into(), s(dest)]),
            Mount::Dev(dest) => args.extend(["--dev".into(), s(dest)]),
        }
    }
}

impl Sandbox for BwrapSandbox {
    fn runs_as_sandbox_user(&self) -> bool {
        self.privileged
    }

    fn name(&self) -> &'static str {
        BACKEND
    }

    fn run(&self, spec: &ProcessSpec) -> Result<ProcessOutcome, SandboxError> {
        let workdir = process::check_workdir(&spec.workdir)?;
        let network = matches!(spec.network, NetworkAccess::Hosts(_));
        let mounts = view::plan_for(spec, &workdir)?;
        // Held until this run returns: the tree goes back to its owner after the last run.
        // Unprivileged, the processes run as the folder's owner: nothing to lend.
        let _lease = if self.privileged {
            Some(lease::lease_workdir(&workdir)?)
        } else {
            None
        };

        let filters = filter::filters(network)?;
        let setup_err = |what: &str, e: std::io::Error| SandboxError::Setup {
            backend: BACKEND,
            reason: format!("{what}: {e}"),
        };
        let deny_fd = process::pipe_with(&filter::to_bytes(&filters.deny))
            .map_err(|e| setup_err("passing the seccomp filter", e))?;
        let clone3_fd = process::pipe_with(&filter::to_bytes(&filters.no_clone3))
            .map_err(|e| setup_err("passing the seccomp filter", e))?;
        let inherited = [deny_fd.as_raw_fd(), clone3_fd.as_raw_fd()];

        let mut args: Vec<String> = vec![
            "--unshare-ipc".into(),
            "--unshare-pid".into(),
            "--unshare-uts".into(),
            "--unshare-cgroup-try".into(),
        ];
        if !network {
            args.push("--unshare-net".into());
        }
        args.extend(["--die-with-parent", "--new-session", "--cap-drop", "ALL"].map(String::from));
        if self.privileged {
            // Kept for setpriv only, which drops them all with the uid.
            args.extend(
                ["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"]
                    .iter()
                    .flat_map(|cap| ["--cap-add".to_owned(), cap.to_string()]),
            );
        } else {
            // Our own user namespace (the caller's uid mapped to itself), and none nested.
            args.push("--unshare-user".into());
            if self.disable_userns {
                args.push("--disable-userns".into());
            }
        }
        for fd in inherited {
            args.extend(["--add-seccomp-fd".into(), fd.to_string()]);
        }
        mount_args(&mounts, &mut args);
        args.extend(["--chdir".into(), workdir.to_string_lossy().into_owned()]);
        let mut rlimits = Rlimits::from_limits(&spec.limits);
        if self.privileged {
            args.extend(
                [
                    "--",
                    SETPRIV,
                    &format!("--reuid={SANDBOX_UID}"),
                    &format!("--regid={SANDBOX_GID}"),
                    "--clear-groups",
                    "--inh-caps=-all",
                    "--bounding-set=-all",
                    "--no-new-privs",
                    "--",
                    &spec.program,
                ]
                .map(String::from),
            );
        } else {
            // The caller's uid has processes of its own outside, all counted by an
            // RLIMIT_NPROC set out here. Set inside the user namespace, the limit counts
            // only the processes in it (the kernel counts per namespace and uid): bwrap's
            // init and the step's own.
            let processes = rlimits.processes.take().unwrap_or(1).saturating_add(1);
            args.extend(
                [
                    "--",
                    PRLIMIT,
                    &format!("--nproc={processes}:{processes}"),
                    "--",
                    &spec.program,
                ]
                .map(String::from),
            );
        }
        args.extend(spec.args.iter().cloned());

        // Our helper processes: bwrap and its init.
        let cgroup = PidsCgroup::create(spec.limits.max_processes.saturating_add(2));
        let procs_fd = cgroup.as_ref().map(PidsCgroup::procs_fd);

        let mut cmd = Command::new(&self.bwrap);
        cmd.args(&args)
            .env_clear()
            .envs(process::sandbox_env(spec, &workdir))
            .current_dir("/");
        // SAFETY: the hook makes only async-signal-safe system calls.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(fd) = procs_fd {
                    PidsCgroup::join(fd)?;
                }
                rlimits.apply()?;
                process::cloexec_from(3)?;
                for fd in inherited {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let outcome = process::run_child(cmd, spec, cgroup.as_ref())?;
        drop((deny_fd, clone3_fd));
        // setpriv or prlimit could not execute the program: report it like a failed exec.
        let stderr = String::from_utf8_lossy(&outcome.stderr);
        if outcome.exit_code == Some(127)
            && (stderr.contains("setpriv: failed to execute")
                || stderr.contains("prlimit: failed to execute"))
            && stderr.contains("No such file or directory")
        {
            return Err(SandboxError::ProgramNotFound {
                program: spec.program.clone(),
            });
        }
        if outcome.exit_code == Some(1) && stderr.starts_with("bwrap: ") && !outcome.timed_out {
            return Err(SandboxError::Setup {
                backend: BACKEND,
                reason: stderr.trim().to_string(),
            });
        }
        Ok(outcome)
    }
}
