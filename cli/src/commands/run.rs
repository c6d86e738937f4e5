//! `mission run NAME|PATH [--param k=v]... [--sandbox auto|bwrap|builtin] [--workdir DIR]
//! [--allow-net HOST]... [--json]`: runs a mission in the sandbox.
//!
//! PATH is a mission file or a package folder; NAME an installed mission, looked up where
//! `mission install` put it: the install folder of the project (the nearest `missions.lock`
//! from the current folder up, and its `dir`), else `./missions/NAME/`. The work folder (default: the current folder) is the only place the
//! steps may write. Each step is shown on stderr as it starts and ends, then a report table
//! on stdout (or, with `--json`, the report as JSON). The exit status is 0 only when every
//! step succeeded.
//!
//! Permissions: a package gets what its `package.permissions` declare; a plain mission may
//! start the programs its steps name. Neither reaches the network unless `--allow-net HOST`
//! allows the host; naming `localhost` or a private IP address there also lets steps reach
//! it (otherwise loopback and private addresses are refused). LLM steps go to the endpoint
//! in `MISSION_LLM_URL` / `MISSION_LLM_MODEL` (`MISSION_LLM_API_KEY` when it needs one).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use mission_executor::engine::{self, Observer, RunOptions};
use mission_executor::policy::UserPolicy;
use mission_executor::report::{StepReport, StepStatus};
use mission_executor::sandbox::{choose, SandboxChoice};
use mission_executor::steps::LlmConfig;
use mission_index::lockfile::{self, Lockfile};
use mission_index::mission::Step;
use mission_index::package;

#[derive(clap::Args)]
pub struct Args {
    /// A mission file, a package folder, or the name of a mission installed in this project
    target: String,
    /// A parameter for the mission, NAME=VALUE (repeat for more)
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Which sandbox runs the processes
    #[arg(long, value_enum, default_value_t = SandboxArg::Auto)]
    sandbox: SandboxArg,
    /// The work folder: the only place steps may write (default: the current folder)
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// A host steps may reach (repeat for more); `*.example.org` covers its subdomains
    #[arg(long = "allow-net", value_name = "HOST")]
    allow_net: Vec<String>,
    /// Print the report as JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Do not show this machine's rustup toolchain (RUSTUP_HOME, CARGO_HOME/bin) to the
    /// mission's processes; they then see only the programs under /usr
    #[arg(long)]
    no_host_toolchains: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SandboxArg {
    /// bubblewrap when it works here, else the built-in sandbox
    Auto,
    Bwrap,
    Builtin,
}

pub fn run(args: Args) -> Result<ExitCode> {
    // Ctrl-C must not leave the project owned by the sandbox uid (it is lent to it while
    // the mission runs).
    mission_executor::sandbox::lease::return_leases_on_signal()
        .context("cannot set up signal handling")?;
    super::require_name(&args.target, &args.target, "mission run fix_build")?;
    let file = mission_file(&args.target)?;
    let source = match package::load_mission_source(&file) {
        Ok(source) => source,
        Err(err) => {
            eprintln!("{err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for warning in &source.warnings {
        eprintln!("warning: {}: {warning}", source.file.display());
    }
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let workdir = match args.workdir {
        Some(dir) => dir,
        None => std::env::current_dir().context("finding the current folder")?,
    };
    if !workdir.is_dir() {
        bail!("the work folder {} is not a folder", workdir.display());
    }
    let params = args
        .params
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => bail!("`--param {p}`: expected NAME=VALUE"),
        })
        .collect::<Result<Vec<_>>>()?;
    let llm = LlmConfig::from_env().map_err(anyhow::Error::msg)?;
    let policy = UserPolicy {
        commands: None,
        private_hosts: args
            .allow_net
            .iter()
            .filter(|h| names_a_private_host(h))
            .cloned()
            .collect(),
        hosts: args.allow_net.clone(),
        llm: true,
        max_duration_seconds: None,
    };
    // Refusals that do not depend on the sandbox come first (engine::run checks them too).
    engine::grant_for(&source.mission, source.manifest.as_ref(), &policy)
        .with_context(|| format!("not running {}", file.display()))?;
    engine::resolve_parameters(source.manifest.as_ref(), &params)
        .with_context(|| format!("not running {}", file.display()))?;
    let sandbox = choose(match args.sandbox {
        SandboxArg::Auto => SandboxChoice::Auto,
        SandboxArg::Bwrap => SandboxChoice::Bwrap,
        SandboxArg::Builtin => SandboxChoice::Builtin,
    })
    .context("no sandbox to run the mission in")?;
    let options = RunOptions {
        workdir,
        params,
        policy,
        llm,
        cksum: Some(mission_index::archive::cksum(&bytes)),
        // A Rust toolchain installed by rustup lives in the home folder, which the sandbox
        // does not show: without this, `compile_code` and `run_tests` could not find cargo.
        toolchains: if args.no_host_toolchains {
            Default::default()
        } else {
            mission_executor::toolchains::HostToolchains::detect()
        },
    };
    let report = engine::run(
        &source.mission,
        source.manifest.as_ref(),
        Arc::from(sandbox),
        &options,
        &Progress,
    )
    .with_context(|| format!("not running {}", file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The mission file `target` names: a file, a package folder, or an installed name.
fn mission_file(target: &str) -> Result<PathBuf> {
    let path = Path::new(target);
    if path.exists() {
        return package::mission_file_of(path).map_err(|e| anyhow::anyhow!("{e}"));
    }
    let looks_like_name = !target.contains(['/', '\\'])
        && !target.ends_with(".yaml")
        && !target.ends_with(".yml")
        && !target.ends_with(".json");
    if looks_like_name {
        let installed = installed_folder(target)?;
        if installed.is_dir() {
            return package::mission_file_of(&installed).map_err(|e| anyhow::anyhow!("{e}"));
        }
        bail!(
            "no mission file or folder `{target}`, and no installed mission of that name (looked in {})",
            installed.display()
        );
    }
    bail!("{target}: no such file or folder");
}

/// Where `mission install` put the mission `name`: in the install folder of the project
/// this folder belongs to (the nearest `missions.lock` from here up, and the `dir` it
/// records), as install, update and remove find it; `./missions/NAME` when there is none.
fn installed_folder(name: &str) -> Result<PathBuf> {
    let lock_path = crate::install::lockfile_path()?;
    let project = lock_path.parent().unwrap_or(Path::new("."));
    let lock = crate::install::load_lock(&lock_path)?;
    let dir = lock
        .as_ref()
        .and_then(Lockfile::dir)
        .unwrap_or(lockfile::DEFAULT_DIR);
    Ok(project.join(dir).join(name))
}

/// `localhost`, or an IP address that is loopback or private: naming it in `--allow-net`
/// is the user's say-so to reach it.
fn names_a_private_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(mission_executor::steps::net::is_private)
}

/// Shows steps as they start and end, on stderr.
struct Progress;

impl Observer for Progress {
    fn step_started(&self, step: &Step) {
        eprintln!("  start    {} ({})", step.id, step.step_type);
    }

    fn step_finished(&self, step: &Step, report: &StepReport) {
        let label = match report.status {
            StepStatus::Success => "ok",
            StepStatus::Failed => "FAILED",
            StepStatus::Skipped => "skipped",
            StepStatus::NotRun => "not run",
        };
        let error = report
            .error
            .as_deref()
            .and_then(|e| e.lines().next())
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        eprintln!("  {label:8} {} ({} ms){error}", step.id, report.duration_ms);
    }
}
