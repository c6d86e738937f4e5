//! Where the client keeps its files: `MISSION_HOME` when set, else `mission/` in the user's
//! config folder (`~/.config/mission` on Linux). Keys live in `keys/`.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// The client's home folder (not created).
pub fn mission_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("MISSION_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    let config = dirs::config_dir()
        .context("cannot find the user's config folder; set MISSION_HOME to choose one")?;
    Ok(config.join("mission"))
}

/// The folder of signing keys, `MISSION_HOME/keys`.
pub fn keys_dir() -> Result<PathBuf> {
    Ok(mission_home()?.join("keys"))
}
