//! The author's signing keys in `MISSION_HOME/keys` (made by `mission keygen`): loading a
//! pair by name, asking for the password only when the secret key is encrypted.

use anyhow::{Context, Result};
use mission_index::signing;

use crate::{home, password};

/// Checks that `--key NAME` can name a key file.
pub fn check_key_name(name: &str) -> Result<()> {
    mission_index::name::validate_name(name)
        .with_context(|| format!("`--key {name}` must name a key in MISSION_HOME/keys"))?;
    Ok(())
}

/// The public and secret key `NAME` from `MISSION_HOME/keys`, asking for the password only
/// when the secret key is encrypted.
pub fn load_keys(name: &str) -> Result<(signing::PublicKey, signing::SecretKey)> {
    let dir = home::keys_dir()?;
    let pub_path = dir.join(format!("{name}.pub"));
    let key_path = dir.join(format!("{name}.key"));
    let pub_text = std::fs::read_to_string(&pub_path).with_context(|| {
        let keygen = if name == "default" {
            "mission keygen".to_owned()
        } else {
            format!("mission keygen --name {name}")
        };
        format!(
            "reading the public key {} (make one with `{keygen}`)",
            pub_path.display()
        )
    })?;
    let public = signing::PublicKey::parse(&pub_text)
        .with_context(|| format!("reading {}", pub_path.display()))?;
    let secret = match signing::SecretKey::load(&key_path, None) {
        Err(signing::SignError::PasswordRequired { .. }) => {
            let pw = password::ask(&format!("Password for {}: ", key_path.display()))?;
            signing::SecretKey::load(&key_path, Some(&pw))
        }
        other => other,
    }?; // the error names the key file
    Ok((public, secret))
}
