//! `mission new NAME`: a new package folder from `registry-template/package/`, like
//! `cargo new`: the name is checked, the folder must not exist, and it becomes a git
//! repository (publishing is a `git push` of a signed tag).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use mission_index::name::validate_name;

/// The template files, built into the binary so `mission new` works anywhere.
const TEMPLATE: &[(&str, &str)] = &[
    (
        "mission.yaml",
        include_str!("../../../registry-template/package/mission.yaml"),
    ),
    (
        "README.md",
        include_str!("../../../registry-template/package/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../../registry-template/package/gitignore"),
    ),
];

#[derive(clap::Args)]
pub struct Args {
    /// The package name (crates.io rules: letters, digits, - and _, starting with a letter)
    name: String,
    /// Where to create the package (default: ./NAME)
    #[arg(long)]
    path: Option<PathBuf>,
    /// Initialise a git repository (`git`) or not (`none`)
    #[arg(long, default_value = "git", value_parser = ["git", "none"])]
    vcs: String,
}

pub fn run(args: Args) -> Result<ExitCode> {
    super::require_name(&args.name, &args.name, "mission new fix_build")?;
    validate_name(&args.name).with_context(|| format!("cannot create `{}`", args.name))?;
    let dir = args.path.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        bail!("`{}` already exists; choose another --path", dir.display());
    }
    let author = git_author().unwrap_or_else(|| "Your Name <you@example.org>".to_owned());
    // The author goes inside a double-quoted YAML string.
    let author = author.replace('\\', "\\\\").replace('"', "\\\"");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (file, text) in TEMPLATE {
        let text = text
            .replace("{{name}}", &args.name)
            .replace("{{author}}", &author);
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.vcs == "git" {
        let status = Command::new("git")
            .args(["init", "--quiet", "--initial-branch=main"])
            .arg(&dir)
            .status()
            .context("running `git init` (install git, or pass --vcs none)")?;
        if !status.success() {
            bail!("`git init {}` failed ({status})", dir.display());
        }
    }
    println!(
        "Created mission package `{}` in {}",
        args.name,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `Name <email>` from the user's git configuration, when both are set.
fn git_author() -> Option<String> {
    let get = |key: &str| -> Option<String> {
        let out = Command::new("git")
            .args(["config", "--get", key])
            .output()
            .ok()?;
        let value = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !value.is_empty()).then_some(value)
    };
    Some(format!("{} <{}>", get("user.name")?, get("user.email")?))
}
