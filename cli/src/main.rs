//! `mission`: the Mission Registry client, in the habits of cargo.
//!
//! Each subcommand lives in its own module under `commands/`; this file only parses the
//! command line, sets up logging, dispatches, and reports a failure: on stderr, and for a
//! command given `--json` also on stdout as `{"error": {"message", "causes"}}`, so that a
//! program reading the output gets it. Configuration and keys live under `MISSION_HOME`
//! (see [`home`]).

mod certification_policy;
mod commands;
mod download;
mod git_auth;
mod git_index;
mod home;
mod index_walk;
mod install;
mod keys;
mod locks;
mod password;
mod registry;
mod request_gate;
mod sparse_client;
mod staging;
mod trust;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mission",
    version,
    about = "Find, check, package and run RustChain missions"
)]
struct Cli {
    /// More logging (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check mission files and package folders against RustChain's rules and the package rules
    Validate(commands::validate::Args),
    /// Create a new mission package folder from the template
    New(commands::new::Args),
    /// Make a minisign key pair for signing packages
    Keygen(commands::keygen::Args),
    /// Manage author keys: `mission key rotate` hands a mission over to a new key
    Key(commands::key::Args),
    /// Build the canonical archive of a package and sign it
    Package(commands::package::Args),
    /// Run a mission (a file, a package folder or an installed name) in the sandbox
    Run(commands::run::Args),
    /// Store an API token for a registry
    Login(commands::login::Args),
    /// Sign the committed package into the annotated git tag vVERSION
    Tag(commands::tag::Args),
    /// Publish the committed package: push its signed tag (or upload it with --http)
    Publish(commands::publish::Args),
    /// Yank a published version, or take the yank back with --undo
    Yank(commands::yank::Args),
    /// List, add or remove the owners of a mission
    Owner(commands::owner::Args),
    /// Install missions and their dependencies into ./missions, pinned in missions.lock
    Install(commands::install::Args),
    /// Resolve missions again, ignoring their lock, and install the result
    Update(commands::update::Args),
    /// Remove an installed mission and its lock entry
    Remove(commands::remove::Args),
    /// List the missions missions.lock pins
    List(commands::list::Args),
    /// Search the registry
    Search(commands::search::Args),
    /// Show a mission's details
    Info(commands::info::Args),
}

impl Command {
    /// Whether the command was given `--json`: its output is for a program.
    fn json(&self) -> bool {
        match self {
            Command::Info(args) => args.json,
            Command::Search(args) => args.json,
            Command::List(args) => args.json,
            Command::Run(args) => args.json,
            Command::Install(args) => args.common.json,
            Command::Update(args) => args.common.json,
            _ => false,
        }
    }
}

fn main() -> ExitCode {
    die_quietly_on_closed_stdout();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let json = cli.command.json();
    let result = match cli.command {
        Command::Validate(args) => commands::validate::run(args),
        Command::New(args) => commands::new::run(args),
        Command::Keygen(args) => commands::keygen::run(args),
        Command::Key(args) => commands::key::run(args),
        Command::Package(args) => commands::package::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Login(args) => commands::login::run(args),
        Command::Tag(args) => commands::tag::run(args),
        Command::Publish(args) => commands::publish::run(args),
        Command::Yank(args) => commands::yank::run(args),
        Command::Owner(args) => commands::owner::run(args),
        Command::Install(args) => commands::install::run(args),
        Command::Update(args) => commands::update::run(args),
        Command::Remove(args) => commands::remove::run(args),
        Command::List(args) => commands::list::run(args),
        Command::Search(args) => commands::search::run(args),
        Command::Info(args) => commands::info::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_text(&err));
            // A program reading stdout gets the error there too, as one JSON object.
            if json {
                println!("{}", error_json(&err));
            }
            ExitCode::FAILURE
        }
    }
}

/// `{"error": {"message": <the whole chain, as on stderr>, "causes": [<each cause>]}}`.
fn error_json(err: &anyhow::Error) -> serde_json::Value {
    let causes: Vec<String> = err.chain().skip(1).map(ToString::to_string).collect();
    serde_json::json!({
        "error": {
            "message": error_text(err),
            "causes": causes,
        }
    })
}

/// The error and its causes, joined by `: ` as anyhow's `{:#}` does, leaving out a cause
/// whose text an earlier message already carries (many errors quote their source).
fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

/// `mission search | head -1` must stop quietly when `head` exits, as other command-line
/// tools do. Rust ignores SIGPIPE, so a write to the closed pipe fails and `println!`
/// panics instead; with the default action back, the process simply ends.
fn die_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; it only
    // resets the disposition of one signal to the system default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person: not in a pipe, a file or a test's captured output.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // From -vv on, each line says when it happened since the start, to see where the time
    // of a slow install goes; warnings stay short.
    if verbose >= 2 {
        logs.with_timer(tracing_subscriber::fmt::time::Uptime::default())
            .init();
    } else {
        logs.without_time().init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_as_json_carry_the_message_and_the_causes() {
        let err = anyhow::anyhow!("connection refused").context("GET http://node/index/");
        assert_eq!(
            error_json(&err),
            serde_json::json!({"error": {
                "message": "GET http://node/index/: connection refused",
                "causes": ["connection refused"],
            }})
        );
        let alone = error_json(&anyhow::anyhow!("no"));
        assert_eq!(alone["error"]["causes"], serde_json::json!([]));
    }

    #[test]
    fn a_cause_already_quoted_is_not_repeated() {
        let err = anyhow::anyhow!("unexpected character 'g'")
            .context("`x@g`: `g` is not a semver requirement: unexpected character 'g'");
        assert_eq!(
            error_text(&err),
            "`x@g`: `g` is not a semver requirement: unexpected character 'g'"
        );
        let err = anyhow::anyhow!("connection refused").context("GET http://node/index/");
        assert_eq!(
            error_text(&err),
            "GET http://node/index/: connection refused"
        );
    }
}
