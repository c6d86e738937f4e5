//! `mission update [NAME]...`: resolve again ignoring the lock for NAME (or for all).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::install::{self, Request};

#[derive(clap::Args)]
pub struct Args {
    /// Missions to update (all when none is given)
    pub missions: Vec<String>,
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

pub fn run(args: Args) -> Result<ExitCode> {
    let opts = install::Options {
        registry: args.registry,
        dir: args.dir,
        locked: false,
        offline: args.offline,
    };
    let outcome = install::run(Request::Update(args.missions), &opts)?;
    super::install::report(&outcome, args.json, "Updated")
}
