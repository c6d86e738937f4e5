//! (being written)

use std::sync::Arc;

use crate::data_dir::DataDir;
use crate::server::AppState;

#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// Check the data folder
    Fsck,
}

pub fn run(_data: &DataDir, _cmd: AdminCommand) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("admin commands are not built yet")
}

pub fn start_socket(_state: Arc<AppState>) -> anyhow::Result<()> {
    Ok(())
}

pub fn stop_socket(_data: &DataDir) {}
