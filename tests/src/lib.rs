//! # mission-e2e: end-to-end tests of the real binaries
//!
//! The tests in `tests/tests/` drive the real `mission` (and later `mission-node`)
//! binaries, the real `git` and `minisign` programs, on real files in temporary folders.
//! This library holds what they share: finding the binaries (built on first use with the
//! same cargo and target folder as the test run) and running commands with a clean,
//! private environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The folder holding the workspace's binaries, built once per test process.
///
/// `cargo test` does not build the binaries of other packages, so the first call runs
/// `cargo build --bins` for the client and the node into the same target folder.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("MISSION_BIN_DIR") {
            return PathBuf::from(dir);
        }
        // target/debug/deps/<test binary> -> target/debug
        let exe = std::env::current_exe().expect("the test binary has a path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary sits in target/<profile>/deps")
            .to_owned();
        let target_dir = profile_dir
            .parent()
            .expect("target/<profile> has a parent")
            .to_owned();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ sits in the workspace");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace)
            .args([
                "build",
                "--quiet",
                "--bins",
                "-p",
                "mission-cli",
                "-p",
                "mission-node",
            ])
            .arg("--target-dir")
            .arg(&target_dir);
        if profile_dir.file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build for the binaries");
        assert!(status.success(), "cargo build of the binaries failed");
        profile_dir
    })
}

/// The path of a workspace binary (`mission`, `mission-node`).
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_owned()
}

/// A `mission` command with its own `MISSION_HOME`, no key password from the caller's
/// environment, and no terminal.
pub fn mission(home: &Path) -> Command {
    let mut cmd = Command::new(bin("mission"));
    cmd.env("MISSION_HOME", home)
        .env_remove("MISSION_KEY_PASSWORD")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs `cmd` and returns its output, with stdout and stderr as text for assertions.
pub fn run(cmd: &mut Command) -> Ran {
    let output = cmd.output().expect("the command starts");
    Ran::from(output)
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Ran {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Ran {
    fn from(o: Output) -> Self {
        Ran {
            success: o.status.success(),
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Whether an external program is installed. Tests that need one call
/// [`require_program`].
pub fn has_program(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .map(|_| true)
        .unwrap_or(false)
}

/// `true` when `program` is installed. When it is not: under CI (`CI` set) the test fails,
/// since CI installs it; elsewhere the test says it is skipped and why, and returns `false`.
pub fn require_program(program: &str, package: &str) -> bool {
    if has_program(program) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("`{program}` is not installed; CI must install it (apt-get install -y {package})");
    }
    eprintln!(
        "SKIPPED: `{program}` is not installed (apt-get install -y {package}); CI runs this test"
    );
    false
}
