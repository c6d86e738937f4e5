//! The publish pipeline (ARCHITECTURE section 5): one code path behind both doors, the
//! `git push` of a signed tag (see `git_http` and `hook`) and `POST
//! /api/v1/missions/publish` (see `api`).
//!
//! authenticate -> parse and validate the manifest and mission -> rebuild the canonical
//! archive from the files and compare with the signed checksum -> verify the signature and
//! the author key -> refuse existing versions and names owned by others -> store the blob ->
//! append the index line and commit -> record owners -> answer. The author is answered
//! only after the commit is durable. Every refusal says which rule failed.

use std::path::Path;
use std::time::Instant;

use mission_index::archive::{self, ArchiveError, ArchiveLimits, SourceFile};
use mission_index::diagnostic::SourceError;
use mission_index::entry::{IndexEntry, PublishedArchive};
use mission_index::package::{self, MANIFEST_FILE};
use mission_index::signing::{self, PublicKey, SignError};
use thiserror::Error;

use crate::index_writer::WriteError;
use crate::server::AppState;
use crate::store::{Scope, TokenRecord};

/// What either door hands to the pipeline.
#[derive(Debug)]
pub struct PublishRequest {
    /// The authenticated caller.
    pub user: TokenRecord,
    /// The package's files: from the pushed tag's tree (git door) or unpacked from the
    /// uploaded archive (HTTP door).
    pub files: PackageFiles,
    /// The whole `.minisig` text the author made over the archive.
    pub signature: String,
    /// The author's public key, `RW...`.
    pub author_key: String,
    /// Git door: the repository the tag was pushed to (`/git/missions/NAME.git`).
    pub repo_name: Option<String>,
    /// Git door: the version in the tag name (`vVERSION`).
    pub tag_version: Option<String>,
}

#[derive(Debug)]
pub enum PackageFiles {
    /// The files of a git tree.
    Tree(Vec<SourceFile>),
    /// An uploaded archive.
    Archive(Vec<u8>),
}

/// An accepted publish.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    pub name: String,
    pub version: String,
    pub cksum: String,
    pub commit: String,
}

#[derive(Debug, Error)]
pub enum PublishError {
    #[error("this token cannot publish: it lacks the `publish` scope")]
    MissingScope,
    #[error("the package has no {MANIFEST_FILE} at its root")]
    NoManifest,
    #[error("invalid mission: {0}")]
    Invalid(SourceError),
    #[error("{MANIFEST_FILE} has no `package:` block; publishing needs one (see `mission new`)")]
    NoPackageBlock,
    #[error("the archive: {0}")]
    Archive(#[from] ArchiveError),
    #[error("the archive is {size} bytes; this node accepts at most {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("the uploaded archive (sha256 {uploaded}) is not the canonical archive of its own files (sha256 {rebuilt}); build it with `mission package`")]
    NotCanonical { uploaded: String, rebuilt: String },
    #[error("the author key `{key}` is not a minisign public key: {reason}")]
    BadKey { key: String, reason: String },
    #[error("signature: {0}")]
    Signature(SignError),
    #[error("pushed to /git/missions/{repo}.git, but the package is named `{manifest}`; push to /git/missions/{manifest}.git")]
    RepoMismatch { repo: String, manifest: String },
    #[error("the tag is v{tag}, but {MANIFEST_FILE} says version {manifest}; tag the version the manifest declares")]
    TagMismatch { tag: String, manifest: String },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl PublishError {
    /// The HTTP status that fits: the author's mistakes are 4xx, ours 5xx.
    pub fn status(&self) -> u16 {
        match self {
            PublishError::MissingScope => 403,
            PublishError::Write(WriteError::NotOwner { .. }) => 403,
            PublishError::Write(WriteError::NameTaken { .. })
            | PublishError::Write(WriteError::VersionExists { .. }) => 409,
            PublishError::TooLarge { .. } => 413,
            PublishError::Write(WriteError::Index(_))
            | PublishError::Write(WriteError::Store(_))
            | PublishError::Write(WriteError::Snapshot(_))
            | PublishError::Write(WriteError::KeysFile { .. })
            | PublishError::Write(WriteError::Stopped)
            | PublishError::Internal(_) => 500,
            _ => 400,
        }
    }
}

/// Runs the whole pipeline; returns once the index commit is durable.
pub async fn publish(state: &AppState, request: PublishRequest) -> Result<Published, PublishError> {
    let started = Instant::now();
    if !request.user.scopes.contains(&Scope::Publish) {
        return Err(PublishError::MissingScope);
    }
    let user = request.user.user.clone();
    let limit = state.config.limits.max_archive_bytes;
    let node = state.config.name.clone();
    let blobs = state.blobs.clone();
    // Parsing, archive building, hashing and fsync are blocking work.
    let entry = tokio::task::spawn_blocking(move || prepare(request, limit, &node, &blobs))
        .await
        .map_err(|e| PublishError::Internal(format!("the publish task failed: {e}")))??;
    let (name, version, cksum) = (entry.name.clone(), entry.vers.clone(), entry.cksum.clone());
    let commit = state.writer.publish(entry, &user).await?;
    metrics::counter!("mission_publishes_total").increment(1);
    metrics::histogram!("mission_publish_seconds").record(started.elapsed().as_secs_f64());
    tracing::info!(%name, %version, %cksum, %user, "published");
    Ok(Published {
        name,
        version,
        cksum,
        commit: commit.to_string(),
    })
}

/// Everything before the index write: checks the package and stores its blob.
fn prepare(
    request: PublishRequest,
    limit: u64,
    node: &str,
    blobs: &crate::blobs::BlobStore,
) -> Result<IndexEntry, PublishError> {
    let limits = ArchiveLimits {
        max_compressed_bytes: limit,
        ..ArchiveLimits::default()
    };
    let (files, uploaded) = match request.files {
        PackageFiles::Tree(files) => (files, None),
        PackageFiles::Archive(bytes) => {
            if bytes.len() as u64 > limit {
                return Err(PublishError::TooLarge {
                    size: bytes.len() as u64,
                    limit,
                });
            }
            (archive::read_archive_files(&bytes, &limits)?, Some(bytes))
        }
    };
    let manifest_file = files
        .iter()
        .find(|f| f.path == MANIFEST_FILE)
        .ok_or(PublishError::NoManifest)?;
    let text = std::str::from_utf8(&manifest_file.data).map_err(|e| {
        PublishError::Invalid(SourceError::new(
            Path::new(MANIFEST_FILE),
            format!(
                "the file is not UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        ))
    })?;
    let source = package::check_mission_text(Path::new(MANIFEST_FILE), text)
        .map_err(PublishError::Invalid)?;
    let manifest = source
        .manifest
        .clone()
        .ok_or(PublishError::NoPackageBlock)?;
    let name = manifest.name.to_string();
    let version = manifest.version.to_string();
    if let Some(repo) = &request.repo_name {
        if repo != &name {
            return Err(PublishError::RepoMismatch {
                repo: repo.clone(),
                manifest: name,
            });
        }
    }
    if let Some(tag) = &request.tag_version {
        if tag != &version {
            return Err(PublishError::TagMismatch {
                tag: tag.clone(),
                manifest: version,
            });
        }
    }

    let rebuilt = archive::build_archive_from_files(files, &limits)?;
    if rebuilt.len() as u64 > limit {
        return Err(PublishError::TooLarge {
            size: rebuilt.len() as u64,
            limit,
        });
    }
    let cksum = archive::cksum(&rebuilt);
    if let Some(uploaded) = uploaded {
        let uploaded = archive::cksum(&uploaded);
        if uploaded != cksum {
            return Err(PublishError::NotCanonical {
                uploaded,
                rebuilt: cksum,
            });
        }
    }
    let key = PublicKey::parse(&request.author_key).map_err(|e| PublishError::BadKey {
        key: request.author_key.clone(),
        reason: e.to_string(),
    })?;
    signing::verify_archive(&key, &request.signature, &rebuilt, &name, &version)
        .map_err(PublishError::Signature)?;

    blobs
        .put(&rebuilt)
        .map_err(|e| PublishError::Internal(e.to_string()))?;
    Ok(IndexEntry::for_publish(
        &manifest,
        &source.mission,
        PublishedArchive {
            cksum,
            sig: request.signature,
            key: key.to_base64(),
            pubtime: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            origin: node.to_owned(),
        },
    ))
}
