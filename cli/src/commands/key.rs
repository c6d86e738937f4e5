//! `mission key rotate --mission NAME --registry X [--old KEY] [--new KEY] [--unencrypted]`:
//! hands a mission over to a new author key (ARCHITECTURE section 3). Makes the key pair
//! `--new` in `MISSION_HOME/keys` when it does not exist (as `mission keygen`), signs a
//! rotation statement "NAME: old key -> new key" with the old key, and sends it to the node
//! (`POST /api/v1/missions/NAME/keys/rotate`, an owner's token with the `publish` scope).
//! From then on the node accepts versions signed by the new key, and clients that pinned the
//! old key accept them too.

use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result};
use mission_index::{rotation, signing};

use crate::keys::{check_key_name, load_keys};
use crate::registry::{self, Client};
use crate::{home, password};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// Hand a mission over to a new signing key, with a statement signed by the old one
    Rotate(RotateArgs),
}

#[derive(clap::Args)]
struct RotateArgs {
    /// The mission whose author key changes
    #[arg(long)]
    mission: String,
    /// The registry: a name from MISSION_HOME/config.toml, or the node's URL
    #[arg(long)]
    registry: Option<String>,
    /// The key that signed the published versions (MISSION_HOME/keys/OLD.key)
    #[arg(long, default_value = "default")]
    old: String,
    /// The new key; made if MISSION_HOME/keys/NEW.pub does not exist [default: OLD-next]
    #[arg(long)]
    new: Option<String>,
    /// When the new key is made: store its secret key without a password (for CI)
    #[arg(long)]
    unencrypted: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        KeyCommand::Rotate(args) => rotate(args),
    }
}

/// The public key `name`, made (with its secret key) when it does not exist yet.
fn new_public_key(name: &str, unencrypted: bool) -> Result<(signing::PublicKey, bool)> {
    let dir = home::keys_dir()?;
    let pub_path = dir.join(format!("{name}.pub"));
    if pub_path.exists() {
        let key = signing::PublicKey::from_file(&pub_path)?; // the error names the file
        return Ok((key, false));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let password = if unencrypted {
        None
    } else {
        Some(password::ask_new()?)
    };
    let made = signing::write_keypair(&dir, name, password.as_deref())
        .with_context(|| format!("writing the new key pair `{name}` in {}", dir.display()))?;
    let key = signing::PublicKey::parse(&made.public_key_text)
        .with_context(|| format!("reading the new public key {}", pub_path.display()))?;
    Ok((key, true))
}

fn rotate(args: RotateArgs) -> Result<ExitCode> {
    mission_index::name::validate_name(&args.mission)
        .with_context(|| format!("`--mission {}`", args.mission))?;
    check_key_name(&args.old)?;
    let new_name = args.new.unwrap_or_else(|| format!("{}-next", args.old));
    check_key_name(&new_name)?;
    if new_name == args.old {
        anyhow::bail!(
            "`--old` and `--new` both name the key `{new_name}`; a rotation needs a different key"
        );
    }
    let client = Client::new(registry::resolve(args.registry.as_deref())?)?;
    let (old_pk, old_sk) = load_keys(&args.old)?;
    let (new_pk, made) = new_public_key(&new_name, args.unencrypted)?;
    let statement =
        rotation::sign_rotation(&args.mission, &old_sk, &old_pk, &new_pk, SystemTime::now())
            .with_context(|| {
                format!(
                    "signing the rotation of `{}` from key `{}` to `{new_name}`",
                    args.mission, args.old
                )
            })?;
    let body = serde_json::to_value(&statement).context("encoding the rotation statement")?;
    let path = format!("/api/v1/missions/{}/keys/rotate", args.mission);
    let keys = home::keys_dir()?;
    let answer = match client
        .json("POST", &path, Some(&body))
        .with_context(|| format!("sending the rotation of `{}`", args.mission))
        .and_then(|answer| client.expect_success(answer))
    {
        Ok(answer) => answer,
        // A key pair made for a rotation the node refused would only be mistaken for a
        // key in use later: it goes.
        Err(e) if made => {
            for ext in ["pub", "key"] {
                let _ = std::fs::remove_file(keys.join(format!("{new_name}.{ext}")));
            }
            return Err(e.context(format!(
                "the rotation was refused; the key pair `{new_name}` made for it was removed"
            )));
        }
        Err(e) => return Err(e),
    };
    if made {
        println!(
            "New key:     {} (and {})",
            keys.join(format!("{new_name}.pub")).display(),
            keys.join(format!("{new_name}.key")).display()
        );
    }
    println!("Old key id:  {} ({})", old_pk.key_id(), args.old);
    println!("New key id:  {} ({new_name})", new_pk.key_id());
    match answer.json.get("msg").and_then(|m| m.as_str()) {
        Some(msg) => eprintln!("{msg}"),
        None => eprintln!(
            "`{}` now accepts versions signed by key {}",
            args.mission,
            new_pk.key_id()
        ),
    }
    eprintln!(
        "Sign new versions with `--key {new_name}`; keep `{}` until clients have seen the rotation.",
        args.old
    );
    Ok(ExitCode::SUCCESS)
}
