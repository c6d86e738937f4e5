//! Sandboxes: where a step's processes run.
//!
//! Every program a mission starts goes through one [`Sandbox`]. Two backends implement it,
//! one file each: [`bwrap`] (bubblewrap, used when installed) and [`builtin`] (no external
//! program: namespaces, Landlock, seccomp, rlimits, a non-root uid). Both give the same
//! guarantees (ARCHITECTURE section 9): a read-only system, the work folder as the only
//! writable place, a private `/tmp`, no network unless [`NetworkAccess`] allows it, a
//! scrubbed environment, limits on CPU, memory, processes, file size and captured output,
//! and a wall-clock kill of the whole process group.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub mod builtin;
pub mod bwrap;
pub mod etc_view;
pub mod filter;
pub mod lease;
pub mod process;
pub mod view;

/// What to run, where, and within which limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// A program name looked up on the sandbox's PATH, or an absolute path inside it.
    pub program: String,
    pub args: Vec<String>,
    /// The work folder: the only writable place, and the current directory.
    pub workdir: PathBuf,
    /// The whole environment the process sees (nothing is inherited from the caller
    /// except what is listed here; backends add only `PATH`, `HOME` and `TMPDIR` defaults).
    pub env: Vec<(String, String)>,
    /// Bytes written to standard input, then closed. `None`: standard input is empty.
    pub stdin: Option<Vec<u8>>,
    pub limits: Limits,
    pub network: NetworkAccess,
    /// Host folders shown read-only at their own paths, besides the system ones: toolchains
    /// installed outside `/usr` (see [`crate::toolchains`]).
    pub read_only: Vec<PathBuf>,
}

/// Resource limits for one process tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time; past it the whole process group is killed.
    pub wall_time: Duration,
    /// CPU seconds (RLIMIT_CPU).
    pub cpu_seconds: u64,
    /// Address space in bytes (RLIMIT_AS). Default 2 GiB.
    pub memory_bytes: u64,
    /// Processes the sandbox's uid may have at once (RLIMIT_NPROC under a non-root uid).
    pub max_processes: u64,
    /// Largest file a process may write (RLIMIT_FSIZE).
    pub max_file_bytes: u64,
    /// Bytes of stdout and of stderr kept each; the rest is drained and dropped.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall_time: Duration::from_secs(300),
            cpu_seconds: 300,
            memory_bytes: 2 << 30,
            max_processes: 64,
            max_file_bytes: 256 << 20,
            max_output_bytes: 1 << 20,
        }
    }
}

/// Network the process may use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworkAccess {
    /// No network at all: a fresh network namespace with only a loopback of its own.
    #[default]
    None,
    /// The host network, for a mission whose permissions and the policy both allow these
    /// hosts. (Per-host filtering of processes is not possible without a proxy; the
    /// executor's own `http` steps enforce the list exactly.)
    Hosts(Vec<String>),
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutcome {
    /// The exit code when the process exited normally.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Output beyond [`Limits::max_output_bytes`] was dropped.
    pub output_truncated: bool,
    /// The wall-clock limit was reached and the process group killed.
    pub timed_out: bool,
    pub duration: Duration,
}

impl ProcessOutcome {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// Why a process could not be run at all (as opposed to running and failing).
#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("the {backend} sandbox is not available here: {reason}")]
    Unavailable {
        backend: &'static str,
        reason: String,
    },
    #[error("program `{program}` was not found in the sandbox")]
    ProgramNotFound { program: String },
    #[error("the work folder {path} is not usable: {reason}")]
    Workdir { path: PathBuf, reason: String },
    #[error("setting up the {backend} sandbox failed: {reason}")]
    Setup {
        backend: &'static str,
        reason: String,
    },
    /// A failure in what both backends prepare (the file system view, the cgroup).
    #[error("preparing the sandbox failed: {reason}")]
    Prepare { reason: String },
    #[error("I/O error while running `{program}`: {source}")]
    Io {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// A place to run processes. Implementations must be usable from several threads at once
/// (independent steps run in parallel).
pub trait Sandbox: Send + Sync {
    /// `bwrap` or `builtin`, as reports and `--sandbox` name it.
    fn name(&self) -> &'static str;

    /// Runs one process tree to completion (or to its limits).
    fn run(&self, spec: &ProcessSpec) -> Result<ProcessOutcome, SandboxError>;

    /// Whether its processes run as [`process::SANDBOX_UID`] rather than as the caller. The
    /// engine then lends the work folder to that uid for the whole run and performs its own
    /// file steps as that uid too, so both kinds of step can change what the other made.
    fn runs_as_sandbox_user(&self) -> bool {
        false
    }
}

/// Which backend `--sandbox` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxChoice {
    /// bubblewrap when installed and working, else the built-in backend.
    Auto,
    Bwrap,
    Builtin,
}

/// The sandbox `--sandbox` asked for. `Auto` takes bubblewrap when it is installed and
/// runs `true` successfully (probed once per process), else the built-in backend; an
/// explicit choice fails with [`SandboxError::Unavailable`] saying why.
pub fn choose(choice: SandboxChoice) -> Result<Box<dyn Sandbox>, SandboxError> {
    static BWRAP: std::sync::OnceLock<Result<bwrap::BwrapSandbox, String>> =
        std::sync::OnceLock::new();
    let probe = || {
        BWRAP
            .get_or_init(|| {
                bwrap::BwrapSandbox::new().map_err(|e| match e {
                    SandboxError::Unavailable { reason, .. } => reason,
                    other => other.to_string(),
                })
            })
            .clone()
    };
    match choice {
        SandboxChoice::Bwrap => {
            probe()
                .map(|b| Box::new(b) as Box<dyn Sandbox>)
                .map_err(|reason| SandboxError::Unavailable {
                    backend: "bwrap",
                    reason,
                })
        }
        SandboxChoice::Builtin => Ok(Box::new(builtin::BuiltinSandbox::new()?)),
        SandboxChoice::Auto => match probe() {
            Ok(b) => Ok(Box::new(b)),
            Err(bwrap) => match builtin::BuiltinSandbox::new() {
                Ok(b) => Ok(Box::new(b)),
                Err(builtin) => Err(SandboxError::Unavailable {
                    backend: "bwrap or builtin",
                    reason: format!(
                        "bwrap: {bwrap}; builtin: {}",
                        match builtin {
                            SandboxError::Unavailable { reason, .. } => reason,
                            other => other.to_string(),
                        }
                    ),
                }),
            },
        },
    }
}
