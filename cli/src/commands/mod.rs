//! One module per subcommand, and what several of them share.

use anyhow::{bail, Result};

use crate::registry::{self, Registry};
use crate::sparse_client::{Reply, SparseError};

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

/// The error for a node's answer `reply` to `what` that is not a success. A 401 or 403
/// says how to fix the token, naming the registry (see [`registry::refusal_advice`]).
pub fn node_error(reply: &Reply, registry: &Registry, what: &str) -> anyhow::Error {
    let source = registry::token_source(registry);
    match registry::refusal_advice(registry, reply.status, source.as_ref()) {
        // Without a token, the node's own hint ("run `mission login`") would only repeat
        // the advice, less precisely.
        Some(advice) if reply.status == 401 && source.is_none() => SparseError::Http {
            url: reply.url.clone(),
            message: format!("HTTP 401: {what}: the node answers only with a token, and {advice}"),
        }
        .into(),
        Some(advice) => anyhow::anyhow!("{}; {advice}", reply.error(what)),
        None => reply.error(what).into(),
    }
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
