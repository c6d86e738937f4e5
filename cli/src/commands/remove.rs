//! `mission remove NAME`: removes `missions/NAME/` and its missions.lock entry, and those
//! of every dependency no remaining mission needs. With `--registry NAME|URL`, only a
//! mission locked from that registry.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

#[derive(clap::Args)]
pub struct Args {
    /// The mission to remove
    pub name: String,
    /// The install folder (default ./missions)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The registry the mission was installed from: a name from config.toml or a URL
    /// (refused when it was installed from another)
    #[arg(long)]
    pub registry: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    super::require_name(&args.name, &args.name, "mission remove fix_build")?;
    if let Some(arg) = &args.registry {
        let from = crate::registry::resolve(Some(arg))?;
        let lock = crate::install::load_lock(&crate::install::lockfile_path()?)?;
        if let Some(m) = lock.as_ref().and_then(|l| l.get(&args.name)) {
            if !from.locked_from(&m.registry) {
                bail!(
                    "`{}` was installed from {}, not from {}; nothing was removed (leave out --registry, or give --registry {})",
                    m.name,
                    m.registry,
                    from.display(),
                    m.registry
                );
            }
        }
    }
    let removal = crate::install::remove(&args.name, args.dir.as_deref())?;
    if !removal.still_needed_by.is_empty() {
        println!(
            "Kept {} {}: no longer asked for, but {} still need{} it (it goes when they do)",
            removal.removed.name,
            removal.removed.version,
            removal.still_needed_by.join(", "),
            if removal.still_needed_by.len() == 1 {
                "s"
            } else {
                ""
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Removed {} {}",
        removal.removed.name, removal.removed.version
    );
    for m in &removal.pruned {
        println!("Removed {} {} (no longer needed)", m.name, m.version);
    }
    Ok(ExitCode::SUCCESS)
}
