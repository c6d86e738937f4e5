//! `mission remove NAME`: removes `missions/NAME/` and its missions.lock entry, and those
//! of every dependency no remaining mission needs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// The mission to remove
    pub name: String,
    /// The install folder (default ./missions)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    super::require_name(&args.name, &args.name, "mission remove fix_build")?;
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
