//! One module per subcommand, and what several of them share.

use anyhow::{bail, Result};

pub mod info;
pub mod install;
pub mod key;
pub mod keygen;
pub mod list;
pub mod login;
pub mod new;
pub mod owner;
pub mod package;
pub mod publish;
pub mod remove;
pub mod run;
pub mod search;
pub mod tag;
pub mod update;
pub mod validate;
pub mod yank;

/// Refuses an empty or all-blank mission name `name` (part of `given`, as the user typed
/// it: `NAME@VERSION`), before anything is looked up: nothing could be found or suggested
/// for it. `example` shows the command with a name.
pub fn require_name(name: &str, given: &str, example: &str) -> Result<()> {
    if !name.trim().is_empty() {
        return Ok(());
    }
    if given.trim() == name.trim() {
        bail!("empty mission name: give one, as in `{example}`");
    }
    bail!("`{given}`: empty mission name before @: give one, as in `{example}`");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_names_are_refused_as_empty() {
        for blank in ["", " ", "\t \n"] {
            let err = require_name(blank, blank, "mission remove fix_build").unwrap_err();
            assert!(err.to_string().contains("empty mission name"), "{err}");
        }
        assert!(require_name("fix_build", "fix_build", "x").is_ok());
    }
}
