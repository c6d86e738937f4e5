//! `mission remove NAME`: removes `missions/NAME/` and its missions.lock entry.

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
    let removed = crate::install::remove(&args.name, args.dir.as_deref())?;
    println!("Removed {removed}");
    Ok(ExitCode::SUCCESS)
}
