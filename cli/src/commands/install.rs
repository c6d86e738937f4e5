//! `mission install NAME[@REQ]... [--dir DIR] [--locked] [--offline] [--json]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::install::{self, Installed, Outcome, Request};

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
    for given in &args.missions {
        let name = given.split('@').next().unwrap_or_default();
        super::require_name(name, given, "mission install fix_build@^1.2")?;
    }
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

/// What an install did to one mission, against the lock it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The lock did not have it.
    Added,
    Updated,
    Downgraded,
    /// The lock had it at this version, but its folder was gone: put back, as `--locked`
    /// does after `rm -rf missions`.
    Restored,
    Unchanged,
}

impl Status {
    pub fn of(m: &Installed) -> Status {
        match m.previous.as_deref() {
            None => Status::Added,
            Some(old) if old == m.version && m.folder_was_missing => Status::Restored,
            Some(old) if old == m.version => Status::Unchanged,
            Some(old) => {
                let newer = match (
                    semver::Version::parse(old),
                    semver::Version::parse(&m.version),
                ) {
                    (Ok(old), Ok(new)) => new > old,
                    _ => true,
                };
                if newer {
                    Status::Updated
                } else {
                    Status::Downgraded
                }
            }
        }
    }
}

/// The outcome as JSON: its fields, and each installed mission's [`Status`].
fn outcome_json(outcome: &Outcome) -> Result<serde_json::Value> {
    let mut json = serde_json::to_value(outcome)?;
    if let Some(items) = json["installed"].as_array_mut() {
        for (item, m) in items.iter_mut().zip(&outcome.installed) {
            item["status"] = serde_json::to_value(Status::of(m))?;
        }
    }
    Ok(json)
}

/// Prints what an install or update did.
pub fn report(outcome: &Outcome, json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome_json(outcome)?)?);
        return Ok(ExitCode::SUCCESS);
    }
    // What changed against the lock, as cargo reports it; missions that stayed at their
    // locked version are only counted.
    let mut unchanged = 0;
    for m in &outcome.installed {
        let (name, version, path) = (&m.name, &m.version, m.path.display());
        let old = m.previous.as_deref().unwrap_or_default();
        match Status::of(m) {
            Status::Added => println!("Installed {name} {version} -> {path}"),
            Status::Restored => println!("Restored {name} {version} -> {path}"),
            Status::Unchanged => unchanged += 1,
            Status::Updated => println!("Updated {name} {old} -> {version}"),
            Status::Downgraded => println!("Downgraded {name} {old} -> {version}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn installed(previous: Option<&str>, version: &str, folder_was_missing: bool) -> Installed {
        Installed {
            name: "m".into(),
            version: version.into(),
            previous: previous.map(str::to_owned),
            folder_was_missing,
            cksum: String::new(),
            key: String::new(),
            path: "missions/m".into(),
        }
    }

    #[test]
    fn each_mission_gets_one_status() {
        for (m, status) in [
            (installed(None, "1.0.0", true), Status::Added),
            (installed(Some("1.0.0"), "1.1.0", false), Status::Updated),
            (installed(Some("1.1.0"), "1.0.0", false), Status::Downgraded),
            (installed(Some("1.0.0"), "1.0.0", true), Status::Restored),
            (installed(Some("1.0.0"), "1.0.0", false), Status::Unchanged),
        ] {
            assert_eq!(Status::of(&m), status, "{m:?}");
        }
        let outcome = Outcome {
            installed: vec![installed(Some("1.0.0"), "1.0.0", false)],
            removed: Vec::new(),
            removed_versions: Vec::new(),
            lockfile: "missions.lock".into(),
            roots_changed: Vec::new(),
            network: false,
        };
        let json = outcome_json(&outcome).unwrap();
        assert_eq!(json["installed"][0]["status"], "unchanged");
        assert_eq!(json["installed"][0]["previous"], "1.0.0");
    }
}
