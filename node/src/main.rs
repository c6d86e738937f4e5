//! `mission-node`: the Mission Registry server.
//!
//! The server (publishing by `git push` and HTTP, the sparse and git index, accounts) is
//! built by the node issue on top of the formats in `mission-index`. Until then this binary
//! only identifies itself, so nothing pretends to serve.

use std::process::ExitCode;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version") | Some("-V") => {
            println!("mission-node {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "mission-node {}: the server is not built yet; use `mission validate` and `mission package` meanwhile",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::from(2)
        }
    }
}
