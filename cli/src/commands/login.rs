//! `mission login --registry URL|NAME [--token T]`: stores an API token for a registry in
//! `MISSION_HOME/credentials.toml` (mode 0600; see [`crate::registry`]). The token comes
//! from `--token`, else from one line of standard input (hidden when typed on a terminal),
//! so it need not appear in the shell's history or in `ps`. Nodes have no "who am I"
//! route, so the token is stored as given; the first publish shows whether it is valid.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::registry;

#[derive(clap::Args)]
pub struct Args {
    /// The registry: a name from MISSION_HOME/config.toml, or the node's URL
    #[arg(long)]
    registry: Option<String>,
    /// The token (default: read one line from standard input)
    #[arg(long)]
    token: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let registry = registry::resolve(args.registry.as_deref())?;
    let token = match args.token {
        Some(token) => token,
        None => read_token(registry.display())?,
    };
    let token = token.trim();
    if token.is_empty() {
        bail!("the token is empty; nothing was stored");
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        bail!("the token contains spaces or control characters; nothing was stored");
    }
    let path = registry::store_token(&registry, token)?;
    eprintln!(
        "Stored the token for `{}` in {}",
        registry.display(),
        path.display()
    );
    if std::env::var_os(registry::TOKEN_ENV).is_some_and(|v| !v.is_empty()) {
        eprintln!(
            "note: {} is set and overrides the stored token",
            registry::TOKEN_ENV
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn read_token(registry: &str) -> Result<String> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("API token for {registry}: "))
            .context("reading the token from the terminal");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the token from standard input")?;
    Ok(line)
}
