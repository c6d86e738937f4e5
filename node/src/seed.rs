//! Seeding the community library (the `library/` folder, built into the binary) into an
//! empty index on first start. Each package goes through the same publish pipeline as any
//! author's, signed by the node's own key and owned by the `library` user.

use include_dir::{include_dir, Dir};
use mission_index::archive::{self, ArchiveLimits, SourceFile};
use mission_index::package::MANIFEST_FILE;
use mission_index::signing::{self, SecretKey};
use std::collections::BTreeSet;

use crate::publish::{self, PackageFiles, PublishRequest};
use crate::server::AppState;
use crate::store::{Scope, TokenRecord};

/// The library as built into this binary.
static LIBRARY: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../library");

/// The user that owns the seeded missions.
pub const LIBRARY_USER: &str = "library";

/// Publishes every package of the built-in library; returns how many.
pub async fn seed_library(state: &AppState, secret: &SecretKey) -> anyhow::Result<usize> {
    state.store.ensure_user(LIBRARY_USER)?;
    let user = TokenRecord {
        id: "seed".into(),
        user: LIBRARY_USER.into(),
        scopes: BTreeSet::from([Scope::Publish]),
        created: String::new(),
        revoked: false,
    };
    let mut count = 0;
    for package in LIBRARY.dirs() {
        if package
            .get_file(package.path().join(MANIFEST_FILE))
            .is_none()
        {
            continue;
        }
        let mut files = Vec::new();
        collect(package, package.path(), &mut files);
        let bytes = archive::build_archive_from_files(files.clone(), &ArchiveLimits::default())?;
        let text = package
            .get_file(package.path().join(MANIFEST_FILE))
            .and_then(|f| f.contents_utf8())
            .unwrap_or_default();
        let source =
            mission_index::package::check_mission_text(std::path::Path::new(MANIFEST_FILE), text)
                .map_err(|e| anyhow::anyhow!("library package {}: {e}", package.path().display()))?;
        let manifest = source.manifest.ok_or_else(|| {
            anyhow::anyhow!(
                "library package {} has no package block",
                package.path().display()
            )
        })?;
        let signature = signing::sign_archive(
            secret,
            &state.public_key,
            &bytes,
            manifest.name.as_str(),
            &manifest.version.to_string(),
        )?;
        publish::publish(
            state,
            PublishRequest {
                user: user.clone(),
                files: PackageFiles::Tree(files),
                signature,
                author_key: state.public_key.to_base64(),
                repo_name: None,
                tag_version: None,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("library package {}: {e}", package.path().display()))?;
        count += 1;
    }
    Ok(count)
}

fn collect(dir: &Dir<'_>, root: &std::path::Path, out: &mut Vec<SourceFile>) {
    for file in dir.files() {
        if let Ok(rel) = file.path().strip_prefix(root) {
            let path = rel.to_string_lossy().replace('\\', "/");
            // include_dir does not keep modes; library scripts run through an interpreter.
            out.push(SourceFile {
                path,
                executable: false,
                data: file.contents().to_vec(),
            });
        }
    }
    for sub in dir.dirs() {
        collect(sub, root, out);
    }
}
