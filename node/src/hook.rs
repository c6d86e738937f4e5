//! (being written)

#[derive(clap::Subcommand)]
pub enum HookCommand {
    /// The pre-receive hook of a mission repository
    PreReceive,
}

pub fn run(_cmd: HookCommand) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("the pre-receive hook is not built yet")
}
