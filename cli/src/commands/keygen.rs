//! `mission keygen [--name NAME] [--unencrypted]`: a minisign key pair in
//! `MISSION_HOME/keys/NAME.pub` and `NAME.key`, readable by the `minisign` program.
//! The secret key is encrypted with a password unless `--unencrypted` (for CI).

use std::process::ExitCode;

use anyhow::{Context, Result};
use mission_index::signing;

use crate::{home, password};

#[derive(clap::Args)]
pub struct Args {
    /// The key's name: files NAME.pub and NAME.key
    #[arg(long, default_value = "default")]
    name: String,
    /// Store the secret key without a password (for CI; keep the file private)
    #[arg(long)]
    unencrypted: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    mission_index::name::validate_name(&args.name)
        .with_context(|| format!("`{}` cannot name a key file", args.name))?;
    let dir = home::keys_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let password = if args.unencrypted {
        None
    } else {
        Some(password::ask_new()?)
    };
    let key = signing::write_keypair(&dir, &args.name, password.as_deref())
        .with_context(|| format!("writing the key pair `{}` in {}", args.name, dir.display()))?;
    println!(
        "Public key:  {}",
        dir.join(format!("{}.pub", args.name)).display()
    );
    println!(
        "Secret key:  {}",
        dir.join(format!("{}.key", args.name)).display()
    );
    println!("Key id:      {}", key.key_id);
    Ok(ExitCode::SUCCESS)
}
