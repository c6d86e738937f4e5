//! `mission update [NAME]...`: resolve again ignoring the lock for NAME (or for all).

use std::process::ExitCode;

use anyhow::Result;

use crate::install::{self, Request};

#[derive(clap::Args)]
pub struct Args {
    /// Missions to update (all when none is given)
    pub missions: Vec<String>,
    #[command(flatten)]
    pub common: super::install::Common,
}

pub fn run(args: Args) -> Result<ExitCode> {
    for given in &args.missions {
        super::require_name(given, given, "mission update fix_build")?;
    }
    let opts = args.common.options(false);
    let outcome = install::run(Request::Update(args.missions), &opts)?;
    super::install::report(&outcome, args.common.json)
}
