//! `mission install NAME[@REQ]... [--dir DIR] [--locked] [--offline] [--json]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::install::{self, Outcome, Request};

#[derive(clap::Args)]
pub struct Args {
    /// Missions to install, as NAME or NAME@REQ (`fix_build@^1.2`); none: what missions.lock lists.
    /// A NAME already asked for keeps its requirement (NAME@* drops it)
    pub missions: Vec<String>,
    /// Refuse to change missions.lock; with a complete cache, make no request at all
    #[arg(long)]
    pub locked: bool,
    #[command(flatten)]
    pub common: Common,
}

/// What `install` and `update` both take.
#[derive(clap::Args)]
pub struct Common {
    /// The registry: a name from config.toml or a URL (default: the configured default)
    #[arg(long)]
    pub registry: Option<String>,
    /// Install into DIR/NAME instead of ./missions/NAME
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Make no network request: use only the cached index and archives
    #[arg(long)]
    pub offline: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

impl Common {
    pub fn options(&self, locked: bool) -> install::Options {
        install::Options {
            registry: self.registry.clone(),
            dir: self.dir.clone(),
            locked,
            offline: self.offline,
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let opts = args.common.options(args.locked);
    let mut missions = args.missions;
    // A name given with `-` for `_` (or in another case) is the same mission: translated,
    // as `cargo add` does, once per name.
    for _ in 0..missions.len().max(1) {
        match install::run(Request::Install(missions.clone()), &opts) {
            Ok(outcome) => return report(&outcome, args.common.json),
            Err(e) => {
                let Some(spelled) = e.downcast_ref::<install::SpelledOtherwise>() else {
                    return Err(e);
                };
                let given = |arg: &String| {
                    arg.split('@').next().map(str::trim) == Some(spelled.given.as_str())
                };
                let Some(arg) = missions.iter_mut().find(|arg| given(arg)) else {
                    return Err(e);
                };
                eprintln!(
                    "note: translating `{}` to `{}`",
                    spelled.given, spelled.known
                );
                *arg = arg.replacen(&spelled.given, &spelled.known, 1);
            }
        }
    }
    install::run(Request::Install(missions), &opts).and_then(|o| report(&o, args.common.json))
}

/// Prints what an install or update did.
pub fn report(outcome: &Outcome, json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(outcome)?);
        return Ok(ExitCode::SUCCESS);
    }
    // What changed against the lock, as cargo reports it; missions that stayed at their
    // locked version are only counted.
    let mut unchanged = 0;
    for m in &outcome.installed {
        match m.previous.as_deref() {
            None => println!("Installed {} {} -> {}", m.name, m.version, m.path.display()),
            // The lock had it, but its folder was gone: put back, as `--locked` does after
            // `rm -rf missions`.
            Some(old) if old == m.version && m.folder_was_missing => {
                println!("Restored {} {} -> {}", m.name, m.version, m.path.display())
            }
            Some(old) if old == m.version => unchanged += 1,
            Some(old) => {
                let newer = match (
                    semver::Version::parse(old),
                    semver::Version::parse(&m.version),
                ) {
                    (Ok(old), Ok(new)) => new > old,
                    _ => true,
                };
                let verb = if newer { "Updated" } else { "Downgraded" };
                println!("{verb} {} {old} -> {}", m.name, m.version);
            }
        }
    }
    for (name, version) in outcome.removed.iter().zip(&outcome.removed_versions) {
        println!("Removed {name} {version} (no longer needed)");
    }
    // A change in what is asked for changes the lock even when no version moves.
    for change in &outcome.roots_changed {
        println!("{change}");
    }
    println!(
        "Locked {} mission(s) in {}{}",
        outcome.installed.len(),
        outcome.lockfile.display(),
        match unchanged {
            0 => String::new(),
            n if outcome.roots_changed.is_empty() => format!(" ({n} unchanged)"),
            n => format!(" ({n} at the same version)"),
        }
    );
    Ok(ExitCode::SUCCESS)
}
