//! Loading a mission file or a package folder: the mission, its `package:` block and the
//! permission lint, in one place so the CLI and the node judge a package the same way.
//!
//! A *package folder* holds `mission.yaml` with a `package:` block. A plain mission file
//! (no block) is a valid mission but cannot be published.

use std::path::{Path, PathBuf};

use crate::diagnostic::{locate_field, SourceError, SourceFormat};
use crate::lint::{self, FindingKind, LintFinding};
use crate::manifest::{self, Manifest};
use crate::mission::{self, Mission};

/// The file a package folder must hold.
pub const MANIFEST_FILE: &str = "mission.yaml";

/// A mission file, read and checked.
#[derive(Debug, Clone)]
pub struct MissionSource {
    pub file: PathBuf,
    pub mission: Mission,
    /// The `package:` block, when the file has one.
    pub manifest: Option<Manifest>,
    /// What the permission lint could not check (a shell script, a templated command):
    /// not errors, but a person should look.
    pub warnings: Vec<LintFinding>,
    /// Top-level keys that look like a misspelt `package:` (RustChain ignores them).
    pub key_warnings: Vec<String>,
}

/// Parses and checks the mission text of `file`: RustChain's rules, then the `package:` block
/// (when present) with every manifest rule, then the lint of its permissions against the
/// steps. Returns the first error, as `mission validate` prints one line per file.
pub fn check_mission_text(file: &Path, text: &str) -> Result<MissionSource, SourceError> {
    let format = SourceFormat::for_path(file);
    let mission = mission::parse_mission(text, format, file)?;
    let manifest = manifest::load_package_block(text, format, file)
        .map_err(|errors| first_error(file, errors))?;
    let mut warnings = Vec::new();
    if let Some(manifest) = &manifest {
        for finding in lint::lint_permissions(&mission, &manifest.permissions) {
            match finding.kind {
                FindingKind::Undeclared => {
                    let message = format!(
                        "step `{}`: {} (declare it under `package.permissions`)",
                        finding.step_id, finding.message
                    );
                    let line = locate_field(text, format, &finding.field);
                    return Err(SourceError::new(file, message)
                        .with_field(finding.field)
                        .with_line(line, None));
                }
                FindingKind::Unverifiable => warnings.push(finding),
            }
        }
    }
    Ok(MissionSource {
        file: file.to_owned(),
        mission,
        manifest,
        warnings,
        key_warnings: mission::top_level_key_warnings(text, format),
    })
}

fn first_error(file: &Path, errors: Vec<SourceError>) -> SourceError {
    errors
        .into_iter()
        .next()
        .unwrap_or_else(|| SourceError::new(file, "the package block is invalid"))
}

/// Reads and checks a mission file (with or without a `package:` block).
pub fn load_mission_source(file: &Path) -> Result<MissionSource, SourceError> {
    let text = mission::read_mission_text(file)?;
    check_mission_text(file, &text)
}

/// The mission file of a package folder.
pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST_FILE)
}

/// The mission file `path` names: the file itself, or the `mission.yaml` of a folder.
pub fn mission_file_of(path: &Path) -> Result<PathBuf, SourceError> {
    if !path.is_dir() {
        return Ok(path.to_owned());
    }
    let file = manifest_path(path);
    if !file.is_file() {
        return Err(SourceError::new(
            path,
            format!("no {MANIFEST_FILE} in this folder: a package folder holds its mission in {MANIFEST_FILE}"),
        ));
    }
    Ok(file)
}

/// Reads and checks a package folder: its `mission.yaml` must exist and carry a `package:`
/// block.
pub fn load_package_dir(dir: &Path) -> Result<(MissionSource, Manifest), SourceError> {
    if dir.is_file() {
        return Err(SourceError::new(
            dir,
            "is a file; give the package folder that holds it (its mission.yaml)",
        ));
    }
    if !dir.is_dir() {
        return Err(SourceError::new(dir, "no such package folder"));
    }
    let file = mission_file_of(dir)?;
    let source = load_mission_source(&file)?;
    let Some(manifest) = source.manifest.clone() else {
        return Err(SourceError::new(
            &file,
            "there is no `package:` block: a plain mission is valid, but publishing and packaging need the block (see `mission new`)",
        )
        .with_field("package"));
    };
    Ok((source, manifest))
}
