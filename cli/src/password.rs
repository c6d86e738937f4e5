//! Secret-key passwords: from `MISSION_KEY_PASSWORD` (for scripts and CI) or asked on the
//! terminal. Never from a command-line argument, which other users can see in `ps`.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};

/// The environment variable scripts set instead of typing the password.
pub const PASSWORD_ENV: &str = "MISSION_KEY_PASSWORD";

/// A password for an existing key.
pub fn ask(prompt: &str) -> Result<String> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("the key is encrypted and there is no terminal to ask for its password: set {PASSWORD_ENV}");
    }
    rpassword::prompt_password(prompt).context("reading the password from the terminal")
}

/// A new password, asked twice on a terminal.
pub fn ask_new() -> Result<String> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        if p.is_empty() {
            bail!("{PASSWORD_ENV} is empty; use --unencrypted for a key without a password");
        }
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for a password: set {PASSWORD_ENV}, or use --unencrypted for a key without one (CI)");
    }
    let first = rpassword::prompt_password("Password for the new key: ")
        .context("reading the password from the terminal")?;
    if first.is_empty() {
        bail!("an empty password; use --unencrypted for a key without a password");
    }
    let second = rpassword::prompt_password("Password again: ")
        .context("reading the password from the terminal")?;
    if first != second {
        bail!("the two passwords differ; nothing was written");
    }
    Ok(first)
}
