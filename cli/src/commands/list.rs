//! `mission list [--json]`: what missions.lock in the current folder lists, and the
//! install folder when it is not `missions/`; `root` in the JSON says whether the user
//! asked for the mission (else a root needs it), and `requirement` what they asked with.
//! `--registry NAME|URL` keeps the missions locked from that registry.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Only the missions installed from this registry: a name from config.toml or a URL
    #[arg(long)]
    pub registry: Option<String>,
    /// Print the list as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let path = crate::install::lockfile_path()?;
    let lock = crate::install::load_lock(&path)?.unwrap_or_default();
    let from = args
        .registry
        .as_deref()
        .map(|r| crate::registry::resolve(Some(r)))
        .transpose()?;
    let listed: Vec<_> = lock
        .missions()
        .filter(|m| from.as_ref().is_none_or(|r| r.locked_from(&m.registry)))
        .collect();
    if args.json {
        let missions: Vec<_> = listed
            .iter()
            .map(|m| {
                json!({
                    "name": m.name,
                    "version": m.version.to_string(),
                    "cksum": m.cksum,
                    "key": m.key,
                    "registry": m.registry,
                    "root": lock.is_root(&m.name),
                    "requirement": lock.root_requirement(&m.name).map(|r| r.to_string()),
                    "dependencies": m.dependencies.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let dir = lock.dir().unwrap_or(mission_index::lockfile::DEFAULT_DIR);
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "dir": dir, "missions": missions }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if lock.is_empty() {
        if path.exists() {
            println!(
                "No missions installed here (no entries in {}).",
                path.display()
            );
        } else {
            println!("No missions installed here (no {}).", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let (Some(from), true) = (&from, listed.is_empty()) {
        println!("No missions from {} in {}.", from.display(), path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dir) = lock.dir() {
        println!("Installed in {dir}/ (as missions.lock records):");
    }
    for m in listed {
        if m.dependencies.is_empty() {
            println!("{} {}", m.name, m.version);
        } else {
            let deps: Vec<String> = m.dependencies.iter().map(|d| d.to_string()).collect();
            println!("{} {} (needs {})", m.name, m.version, deps.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
