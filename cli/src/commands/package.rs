//! `mission package [PATH] [--out DIR] [--key NAME]`: checks the package, builds its
//! canonical archive, signs it with the author's key and writes `DIR/NAME-VERSION.mission`
//! and `DIR/NAME-VERSION.mission.minisig` (default DIR: `PATH/target/mission`). Prints the
//! archive's SHA-256, the `cksum` the index will record.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use mission_index::{archive, package, signing};

#[derive(clap::Args)]
pub struct Args {
    /// The package folder (default: the current folder)
    path: Option<PathBuf>,
    /// Where to write the archive and its signature (default: PATH/target/mission)
    #[arg(long)]
    out: Option<PathBuf>,
    /// The signing key in MISSION_HOME/keys (see `mission keygen`)
    #[arg(long, default_value = "default")]
    key: String,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let dir = args.path.unwrap_or_else(|| PathBuf::from("."));
    crate::keys::check_key_name(&args.key)?;
    let (source, manifest) = match package::load_package_dir(&dir) {
        Ok(loaded) => loaded,
        Err(err) => {
            // Already `FILE:LINE: error: ...`, the format validate prints.
            eprintln!("{err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for warning in &source.warnings {
        eprintln!("warning: {}: {warning}", source.file.display());
    }
    let name = manifest.name.as_str();
    let version = manifest.version.to_string();

    let bytes = archive::build_archive(&dir, &archive::ArchiveLimits::default())
        .with_context(|| format!("building the archive of {}", dir.display()))?;
    let cksum = archive::cksum(&bytes);

    let (public, secret) = crate::keys::load_keys(&args.key)?;
    let sig = signing::sign_archive(&secret, &public, &bytes, name, &version)
        .context("signing the archive")?;
    // A signature that does not verify must never leave this machine.
    signing::verify_archive(&public, &sig, &bytes, name, &version)
        .context("the new signature does not verify")?;

    let out = args
        .out
        .unwrap_or_else(|| dir.join("target").join("mission"));
    refuse_output_inside_package(&dir, &out)?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let archive_path = out.join(format!("{name}-{version}.mission"));
    let sig_path = out.join(format!("{name}-{version}.mission.minisig"));
    // Archives and signatures are public artifacts.
    mission_index::atomic_file::write_synced_public(&archive_path, &bytes)?;
    mission_index::atomic_file::write_synced_public(&sig_path, sig.as_bytes())?;
    eprintln!("Packaged {name} {version} ({} bytes)", bytes.len());
    eprintln!("  archive:   {}", archive_path.display());
    eprintln!("  signature: {}", sig_path.display());
    println!("{cksum}");
    Ok(ExitCode::SUCCESS)
}

/// Everything in the package folder goes into the archive except `.git` and `target/`, so an
/// output folder anywhere else inside the package would end up in the next archive.
fn refuse_output_inside_package(dir: &Path, out: &Path) -> Result<()> {
    let package = dir
        .canonicalize()
        .with_context(|| format!("reading {}", dir.display()))?;
    let out = resolve_existing_prefix(out)?;
    if let Ok(inside) = out.strip_prefix(&package) {
        let first = inside.components().next();
        let under_skipped = first.is_some_and(|c| {
            archive::SKIPPED_AT_ROOT.contains(&c.as_os_str().to_string_lossy().as_ref())
        });
        if !under_skipped {
            bail!(
                "--out {} is inside the package folder, so the next archive would contain this one; use a folder outside it or under its target/",
                out.display()
            );
        }
    }
    Ok(())
}

/// `path` with its longest existing ancestor resolved (symlinks, `..`), the rest appended.
fn resolve_existing_prefix(path: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(path)
        .with_context(|| format!("reading the path {}", path.display()))?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved = existing
        .canonicalize()
        .with_context(|| format!("reading {}", existing.display()))?;
    for name in rest.into_iter().rev() {
        resolved.push(name);
    }
    Ok(resolved)
}
