//! Running the `git` program against a node with the user's token: the token goes as an
//! `http.extraHeader` for the node's `/git/` routes only, through `GIT_CONFIG_*`
//! environment variables (never on the command line, never on disk), and git may not ask
//! for or use any other credential. Used by `mission publish` (push) and git indexes (fetch).

use std::process::Command;

use base64::Engine;

/// Prepares `cmd` (a `git` command) to talk to the node at `base_url` with `token`, if any:
/// no prompts, no stored credentials, messages in English (callers read them). Config
/// entries are appended to any the caller's environment already passes.
pub fn authenticate(cmd: &mut Command, base_url: &str, token: Option<&str>) {
    let first: usize = std::env::var("GIT_CONFIG_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut entries = vec![
        // No stored or prompted credentials: this token or nothing.
        ("credential.helper".to_owned(), String::new()),
        ("core.askPass".to_owned(), String::new()),
    ];
    if let Some(token) = token {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("mission:{token}"));
        entries.push((
            format!("http.{base_url}/git/.extraHeader"),
            format!("Authorization: Basic {basic}"),
        ));
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .env("GIT_CONFIG_COUNT", (first + entries.len()).to_string());
    for (i, (key, value)) in entries.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{}", first + i), key)
            .env(format!("GIT_CONFIG_VALUE_{}", first + i), value);
    }
}
