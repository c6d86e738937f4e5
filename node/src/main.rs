//! # mission-node: the Mission Registry server
//!
//! A node keeps a crates.io-style index of missions in git and serves it over git and
//! sparse HTTP, accepts publishes by `git push` of a signed tag or by HTTP, and stores the
//! archives. Its data folder (`--data`, default `./mission-data`) holds everything; see
//! [`data_dir`] for the layout and `registry-template/node.toml` for the settings.
//!
//! Where things live:
//! - [`server`]: start-up and the HTTP router; [`config`], [`data_dir`]: settings and files.
//! - [`publish`]: the one publish pipeline both doors use; [`index_writer`]: the single
//!   writer of the index, which also signs snapshots.
//! - [`git_http`], [`hook`]: git smart HTTP and the pre-receive hook (the push door).
//! - [`sparse`], [`api`]: the sparse index and the JSON API; [`auth`], [`error`]: tokens and
//!   JSON errors; [`metrics`]: `/metrics`.
//! - [`store`]: redb (users, tokens, owners, stats); [`blobs`]: archives on disk.
//! - [`execute`]: missions run on the node (a bounded queue, quotas, the sandbox);
//!   [`audit`]: the hash-chained log of those runs and their per-version statistics.
//! - [`admin`]: admin commands, through the running node's socket when there is one;
//!   [`seed`]: the built-in community library.

mod admin;
mod api;
mod audit;
mod auth;
mod blobs;
mod config;
mod data_dir;
mod error;
mod execute;
mod fsck;
mod git_http;
mod hook;
mod index_writer;
mod metrics;
mod prefetch_hint;
mod publish;
mod rotation;
mod search;
mod seed;
mod server;
mod sparse;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::data_dir::DataDir;

#[derive(Parser)]
#[command(name = "mission-node", version, about = "The Mission Registry node")]
struct Cli {
    /// The data folder
    #[arg(
        long,
        global = true,
        env = "MISSION_NODE_DATA",
        default_value = "./mission-data"
    )]
    data: PathBuf,
    /// The address to listen on (port 0 picks a free port; the chosen address is printed)
    #[arg(long, global = true, default_value = "127.0.0.1:7878")]
    listen: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry (creates and seeds the data folder on first start)
    Serve,
    /// Create the data folder (settings, node key, index) without serving
    Init,
    /// Administer users, tokens and the data folder
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Git hooks (run by git, not by people)
    #[command(subcommand)]
    Hook(hook::HookCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // Absolute, so the git processes the node starts (with other working folders) and the
    // hook find the same folder.
    let data = match std::path::absolute(&cli.data) {
        Ok(path) => DataDir::new(&path),
        Err(e) => {
            eprintln!("error: the data folder {}: {e}", cli.data.display());
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve => tokio_main(|| server::serve(data, &cli.listen)),
        Command::Init => init(&data, &cli.listen),
        Command::Admin(cmd) => admin::run(&data, cmd),
        Command::Hook(cmd) => hook::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn tokio_main<F, Fut>(f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(f())?;
    Ok(ExitCode::SUCCESS)
}

/// `mission-node init`: the data folder, settings, key and an empty index.
fn init(data: &DataDir, listen: &str) -> anyhow::Result<ExitCode> {
    let (config, public, _) = data.prepare()?;
    let wanted = DataDir::index_config(&config, &public, &config.base_url(listen));
    data.open_index(&wanted)?;
    println!(
        "initialised {} (node `{}`, key {})",
        data.root.display(),
        config.name,
        public.key_id()
    );
    Ok(ExitCode::SUCCESS)
}
