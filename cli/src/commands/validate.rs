//! `mission validate [PATH...]`: one line per input, `PATH: ok` or `PATH:LINE: error: ...`;
//! the exit status is non-zero when any input is invalid.
//!
//! A PATH is a mission file (YAML, or JSON when it ends in `.json`) or a package folder
//! (its `mission.yaml`). A plain RustChain mission without a `package:` block is valid;
//! when the block is there it is checked too, with the permission lint.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::Write;

use anyhow::Result;
use mission_index::diagnostic::SourceError;
use mission_index::package;

#[derive(clap::Args)]
pub struct Args {
    /// Mission files or package folders (default: the current folder)
    paths: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths
    };
    let mut failed = 0usize;
    let mut out = std::io::stdout().lock();
    for path in &paths {
        let line = match check(path) {
            Ok(source) => {
                for warning in &source.warnings {
                    eprintln!("{}: warning: {warning}", source.file.display());
                }
                for warning in &source.key_warnings {
                    eprintln!("{}: warning: {warning}", source.file.display());
                }
                format!("{}: ok", path.display())
            }
            Err(err) => {
                failed += 1;
                one_line(&err)
            }
        };
        // A closed pipe (`mission validate ... | head`) is not an error worth a panic.
        if let Err(e) = writeln!(out, "{line}") {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(e.into());
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check(path: &Path) -> Result<package::MissionSource, SourceError> {
    package::load_mission_source(&package::mission_file_of(path)?)
}

/// The validate format is one line per input: fold any line breaks a parser put in.
fn one_line(err: &SourceError) -> String {
    err.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
