//! The JSON API under `/api/v1/missions` (ARCHITECTURE section 10), shaped like crates.io's
//! so its habits carry over:
//!
//! - `GET /api/v1/missions/{name}`: a mission's versions, owners, downloads and
//!   certifications; each version's `stats` of runs on this node (`runs`, `successes`,
//!   `failures`, `p50_ms`, `p95_ms`: see [`crate::audit`]);
//! - `GET /api/v1/missions/{name}/{version}/download`: the archive (yanked versions too:
//!   lockfiles still name them), checked against the index checksum before a byte is sent;
//! - `DELETE .../{version}/yank`, `PUT .../{version}/unyank`: owners with a `yank` token;
//! - `GET|PUT|DELETE /api/v1/missions/{name}/owners`: `{"users":[...]}`, owners with an
//!   `owners` token;
//! - `POST /api/v1/missions/publish`: the HTTP door of the publish pipeline, body laid out
//!   as cargo's ([`mission_index::wire::PublishBody`]).
//!
//! Every error is `{"errors":[{"detail":"..."}]}` with a fitting status ([`ApiError`]).
//! Reads come from the head of the index (as the sparse index serves it), writes go through
//! the index writer, so the API never shows a state the index does not have.

use std::collections::BTreeSet;
use std::io::{Read, Seek};
use std::path::Path;
use std::pin::Pin;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use mission_index::archive::{self, ArchiveLimits};
use mission_index::diagnostic::SourceFormat;
use mission_index::entry::IndexEntry;
use mission_index::layout;
use mission_index::manifest;
use mission_index::name::collision_key;
use mission_index::package::MANIFEST_FILE;
use mission_index::repo::IndexError;
use mission_index::wire::{PublishBody, WireError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::auth::{require_reader, require_scope};
use crate::error::ApiError;
use crate::index_writer::WriteError;
use crate::publish::{self, PackageFiles, PublishRequest};
use crate::server::{AppState, SharedState};
use crate::sparse::{if_none_match, read_head_file};
use crate::store::{Owners, Scope, StoreError};

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/api/v1/missions/publish", post(publish_http))
        .route("/api/v1/missions/{name}", get(details))
        .route(
            "/api/v1/missions/{name}/owners",
            get(list_owners).put(add_owners).delete(remove_owners),
        )
        .route("/api/v1/missions/{name}/{version}/download", get(download))
        .route("/api/v1/missions/{name}/{version}/yank", delete(yank))
        .route("/api/v1/missions/{name}/{version}/unyank", put(unyank))
}

/// Runs blocking work (git, redb, hashing) off the async runtime.
async fn blocking<T, F>(what: &'static str, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("{what}: the task failed: {e}")))?
}

fn store_error(e: StoreError) -> ApiError {
    ApiError::internal(e)
}

/// A mission as the index's head has it.
pub(crate) struct Mission {
    /// The name as published (the first line's spelling).
    pub(crate) name: String,
    pub(crate) entries: Vec<IndexEntry>,
}

/// Reads `name`'s index file (names are looked up case-insensitively, as the layout files
/// are lowercase); 404 when the index has none.
pub(crate) fn read_mission(state: &AppState, name: &str) -> Result<Mission, ApiError> {
    let unknown = || ApiError::not_found(format!("no mission named `{name}` in this index"));
    let Ok(path) = layout::entry_path(name) else {
        return Err(unknown());
    };
    let Some(file) = read_head_file(&state.data.index_dir(), &path).map_err(ApiError::internal)?
    else {
        return Err(unknown());
    };
    let text = String::from_utf8(file.bytes)
        .map_err(|_| ApiError::internal(format!("index file `{path}` is not UTF-8")))?;
    let entries = IndexEntry::parse_file(&text)
        .map_err(|e| ApiError::internal(format!("index file `{path}`: {e}")))?;
    let Some(first) = entries.first() else {
        return Err(unknown());
    };
    Ok(Mission {
        name: first.name.clone(),
        entries,
    })
}

fn certifications(state: &AppState, name: &str) -> Result<Vec<String>, ApiError> {
    let path = layout::cert_path(name).map_err(ApiError::internal)?;
    Ok(read_head_file(&state.data.index_dir(), &path)
        .map_err(ApiError::internal)?
        .map(|f| {
            String::from_utf8_lossy(&f.bytes)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default())
}

/// Versions compare as crates.io compares them: ignoring build metadata.
fn same_version(a: &str, b: &str) -> bool {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp_precedence(&b).is_eq(),
        _ => a == b,
    }
}

pub(crate) fn find_version<'m>(
    mission: &'m Mission,
    version: &str,
) -> Result<&'m IndexEntry, ApiError> {
    mission
        .entries
        .iter()
        .find(|e| same_version(&e.vers, version))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no version {version} of `{}` (published: {})",
                mission.name,
                mission
                    .entries
                    .iter()
                    .map(|e| e.vers.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

fn logins(owners: Option<Owners>) -> Vec<Value> {
    owners
        .map(|o| o.users.into_iter().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|u| json!({"login": u, "kind": "user"}))
        .collect()
}

// ---- details ----

async fn details(
    State(state): State<SharedState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_reader(&state, &headers)?;
    blocking("reading the mission", move || {
        let mission = read_mission(&state, &name)?;
        let owners = state
            .store
            .owners(&collision_key(&mission.name))
            .map_err(store_error)?;
        let mut total = 0u64;
        let mut versions = Vec::new();
        for e in &mission.entries {
            let downloads = state
                .store
                .downloads(&e.name, &e.vers)
                .map_err(store_error)?;
            total += downloads;
            let stats = crate::audit::stats(&state.store, &e.name, &e.vers)
                .map_err(store_error)?
                .to_json();
            versions.push(json!({
                "vers": e.vers,
                "yanked": e.yanked,
                "cksum": e.cksum,
                "key": e.key,
                "pubtime": e.pubtime,
                "origin": e.origin,
                "description": e.description,
                "license": e.license,
                "categories": e.categories,
                "keywords": e.keywords,
                "pricing": e.pricing,
                "permissions": e.permissions,
                "step_types": e.step_types,
                "deps": e.deps,
                "downloads": downloads,
                "stats": stats,
            }));
        }
        let newest = mission
            .entries
            .iter()
            .filter(|e| !e.yanked)
            .filter_map(|e| e.version().ok())
            .max()
            .map(|v| v.to_string());
        let certs = certifications(&state, &mission.name)?;
        Ok(Json(json!({
            "name": mission.name,
            "max_version": newest,
            "versions": versions,
            "owners": logins(owners),
            "downloads": total,
            "certifications": certs,
        })))
    })
    .await
}

// ---- download ----

/// Archives up to this size are read into memory once (to hash them) and sent from there;
/// larger ones are streamed from the checked file. Nearly every mission archive is a few
/// kilobytes, and streaming a file through tokio costs a blocking-pool hop per chunk; the
/// bound keeps what many slow downloads hold in memory small.
const IN_MEMORY_ARCHIVE: u64 = 1024 * 1024;

/// A stored archive whose bytes hash to its index checksum.
enum CheckedBlob {
    /// The whole archive.
    Memory(Bytes),
    /// The open file, positioned at its start, and its length.
    File(std::fs::File, u64),
}

/// The blob of `entry`, read and checked against the index checksum. Never hands out
/// bytes that do not hash to what the index says.
fn open_checked_blob(state: &AppState, entry: &IndexEntry) -> Result<CheckedBlob, ApiError> {
    let what = format!("`{}` {} (sha256 {})", entry.name, entry.vers, entry.cksum);
    let path = state.blobs.path(&entry.cksum).map_err(|e| {
        ApiError::internal(format!("the index entry of {what} has a bad checksum: {e}"))
    })?;
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::internal(format!(
                "the archive of {what} is missing from the blob store ({}); the node operator \
                 should run `mission-node admin fsck`",
                path.display()
            )))
        }
        Err(e) => {
            return Err(ApiError::internal(format!(
                "opening the archive of {what} at {}: {e}",
                path.display()
            )))
        }
    };
    let read_error =
        |e: std::io::Error| ApiError::internal(format!("reading the archive of {what}: {e}"));
    let size = file.metadata().map_err(read_error)?.len();
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    // Small archives are kept as read; the file may have grown since `metadata`, so the
    // bytes kept are exactly the bytes hashed either way.
    let mut kept = (size <= IN_MEMORY_ARCHIVE).then(|| Vec::with_capacity(size as usize));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(read_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
        if let Some(k) = kept.as_mut() {
            if len <= IN_MEMORY_ARCHIVE {
                k.extend_from_slice(&buf[..n]);
            } else {
                kept = None;
            }
        }
    }
    let actual = hex::encode(hasher.finalize());
    if actual != entry.cksum {
        return Err(ApiError::internal(format!(
            "the stored archive of {what} is corrupt: its content hashes to {actual}; it is \
             not served. The node operator should run `mission-node admin fsck`"
        )));
    }
    match kept {
        Some(bytes) => Ok(CheckedBlob::Memory(Bytes::from(bytes))),
        None => {
            file.rewind().map_err(read_error)?;
            Ok(CheckedBlob::File(file, len))
        }
    }
}

/// The index entry of `name` `version`: from the sparse index's in-memory copy of the head
/// the current snapshot signs (no git read on the hot path), else from the head of `main`
/// (a version published a moment ago, before its snapshot was signed).
async fn download_entry(
    state: &SharedState,
    name: &str,
    version: &str,
) -> Result<IndexEntry, ApiError> {
    if let Ok(path) = layout::entry_path(name) {
        if let Ok(Some(file)) = crate::sparse::read_head(state, path).await {
            let found = std::str::from_utf8(&file.bytes)
                .ok()
                .and_then(|text| IndexEntry::parse_file(text).ok())
                .and_then(|entries| entries.into_iter().find(|e| same_version(&e.vers, version)));
            if let Some(entry) = found {
                return Ok(entry);
            }
        }
    }
    let (state, name, version) = (state.clone(), name.to_owned(), version.to_owned());
    blocking("reading the index", move || {
        let mission = read_mission(&state, &name)?;
        Ok(find_version(&mission, &version)?.clone())
    })
    .await
}

async fn download(
    State(state): State<SharedState>,
    UrlPath((name, version)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_reader(&state, &headers)?;
    let entry = download_entry(&state, &name, &version).await?;
    let tag = format!("\"{}\"", entry.cksum);
    let etag = HeaderValue::from_str(&tag)
        .map_err(|e| ApiError::internal(format!("the checksum is not a header value: {e}")))?;
    if if_none_match(&headers, &tag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let (entry, blob) = blocking("reading the archive", {
        let state = state.clone();
        move || {
            let blob = open_checked_blob(&state, &entry)?;
            // Counted once the archive is known good; a failed count must not fail the
            // download, so it is logged.
            if let Err(e) = state.store.count_download(&entry.name, &entry.vers) {
                tracing::warn!(name = %entry.name, version = %entry.vers, error = %e, "counting a download");
            }
            Ok((entry, blob))
        }
    })
    .await?;
    metrics::counter!("mission_downloads_total").increment(1);
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-{}.tar.gz\"",
        entry.name, entry.vers
    ))
    .unwrap_or(HeaderValue::from_static("attachment"));
    let (body, len) = match blob {
        CheckedBlob::Memory(bytes) => {
            let len = bytes.len() as u64;
            (Body::from(bytes), len)
        }
        // Streamed from the file already checked: the same open file, so a concurrent
        // rename in the blob folder cannot swap the bytes under us.
        CheckedBlob::File(file, len) => {
            let stream = tokio_util::io::ReaderStream::with_capacity(
                tokio::fs::File::from_std(file),
                64 * 1024,
            );
            (Body::from_stream(stream), len)
        }
    };
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/gzip"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
            (header::ETAG, etag),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

// ---- yank ----

async fn yank(
    State(state): State<SharedState>,
    UrlPath((name, version)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    set_yanked(state, headers, name, version, true).await
}

async fn unyank(
    State(state): State<SharedState>,
    UrlPath((name, version)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    set_yanked(state, headers, name, version, false).await
}

fn write_error(e: WriteError) -> ApiError {
    match e {
        WriteError::NotOwner { .. } => ApiError::forbidden(e.to_string()),
        WriteError::UnknownVersion { .. }
        | WriteError::NameTaken { .. }
        | WriteError::Index(IndexError::UnknownVersion { .. })
        | WriteError::Index(IndexError::UnknownName { .. })
        | WriteError::Index(IndexError::Layout(_)) => ApiError::not_found(e.to_string()),
        other => ApiError::internal(other),
    }
}

async fn set_yanked(
    state: SharedState,
    headers: HeaderMap,
    name: String,
    version: String,
    yanked: bool,
) -> Result<Json<Value>, ApiError> {
    let user = require_scope(&state, &headers, Scope::Yank)?;
    let (name, version) = blocking("reading the mission", {
        let state = state.clone();
        move || {
            let mission = read_mission(&state, &name)?;
            let entry = find_version(&mission, &version)?;
            Ok((mission.name.clone(), entry.vers.clone()))
        }
    })
    .await?;
    state
        .writer
        .set_yanked(&name, &version, yanked, &user.user)
        .await
        .map_err(write_error)?;
    tracing::info!(%name, %version, yanked, user = %user.user, "yank state set");
    Ok(Json(json!({"ok": true})))
}

// ---- owners ----

async fn list_owners(
    State(state): State<SharedState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_reader(&state, &headers)?;
    blocking("reading the owners", move || {
        let mission = read_mission(&state, &name)?;
        let owners = state
            .store
            .owners(&collision_key(&mission.name))
            .map_err(store_error)?;
        Ok(Json(json!({"users": logins(owners)})))
    })
    .await
}

#[derive(serde::Deserialize)]
struct OwnersBody {
    users: Vec<String>,
}

fn parse_owners_body(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let parsed: OwnersBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON `{{\"users\":[\"login\", ...]}}`: {e}"
        ))
    })?;
    let users: Vec<String> = parsed
        .users
        .into_iter()
        .map(|u| u.trim().to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if users.is_empty() || users.iter().any(String::is_empty) {
        return Err(ApiError::bad_request(
            "`users` must name at least one user, and no empty names",
        ));
    }
    Ok(users)
}

/// The mission and its owners record, checking that `caller` is one of them.
fn owned_by(state: &AppState, name: &str, caller: &str) -> Result<(String, Owners), ApiError> {
    let mission = read_mission(state, name)?;
    let key = collision_key(&mission.name);
    let owners = state
        .store
        .owners(&key)
        .map_err(store_error)?
        .unwrap_or_default();
    if !owners.users.contains(caller) {
        return Err(ApiError::forbidden(format!(
            "`{caller}` is not an owner of `{}` (owners: {})",
            mission.name,
            owners.users.iter().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok((key, owners))
}

async fn add_owners(
    State(state): State<SharedState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = require_scope(&state, &headers, Scope::Owners)?;
    let users = parse_owners_body(&body)?;
    blocking("adding owners", move || {
        let (key, owners) = owned_by(&state, &name, &caller.user)?;
        for user in &users {
            if !state.store.user_exists(user).map_err(store_error)? {
                return Err(ApiError::bad_request(format!(
                    "no user `{user}` on this node; nothing was changed"
                )));
            }
        }
        for user in &users {
            state
                .store
                .add_owner(&key, &owners.name, user)
                .map_err(|e| match e {
                    StoreError::UnknownUser { .. } => ApiError::bad_request(e.to_string()),
                    other => store_error(other),
                })?;
        }
        tracing::info!(mission = %owners.name, ?users, by = %caller.user, "owners added");
        Ok(Json(json!({
            "ok": true,
            "msg": format!("{} now own `{}`", users.join(", "), owners.name),
        })))
    })
    .await
}

async fn remove_owners(
    State(state): State<SharedState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = require_scope(&state, &headers, Scope::Owners)?;
    let users = parse_owners_body(&body)?;
    blocking("removing owners", move || {
        let (key, owners) = owned_by(&state, &name, &caller.user)?;
        // Check the whole request before changing anything, so it applies entirely or
        // not at all.
        if let Some(stranger) = users.iter().find(|u| !owners.users.contains(*u)) {
            return Err(ApiError::bad_request(format!(
                "`{stranger}` is not an owner of `{}`; nothing was changed",
                owners.name
            )));
        }
        if owners.users.iter().all(|o| users.contains(o)) {
            return Err(ApiError::bad_request(format!(
                "removing {} would leave `{}` without owners; add another owner first",
                users.join(", "),
                owners.name
            )));
        }
        for user in &users {
            state.store.remove_owner(&key, user).map_err(|e| match e {
                StoreError::LastOwner { .. } | StoreError::NotAnOwner { .. } => {
                    ApiError::bad_request(e.to_string())
                }
                other => store_error(other),
            })?;
        }
        tracing::info!(mission = %owners.name, ?users, by = %caller.user, "owners removed");
        Ok(Json(json!({
            "ok": true,
            "msg": format!("{} no longer own `{}`", users.join(", "), owners.name),
        })))
    })
    .await
}

// ---- publish ----

fn too_large(size: impl std::fmt::Display, limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the publish body is {size} bytes; this node accepts at most {limit}"),
    )
}

/// Reads the whole body, refusing it (413) as soon as it passes `limit` bytes.
async fn read_body_limited(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
) -> Result<Vec<u8>, ApiError> {
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if length > limit {
            return Err(too_large(length, limit));
        }
    }
    let mut body = body;
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the publish body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if (out.len() + data.len()) as u64 > limit {
                return Err(too_large(format!("more than {limit}"), limit));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// The name and version the archive's own `mission.yaml` declares, if it can be read;
/// when it cannot, the pipeline says why.
fn declared_identity(archive_bytes: &[u8], limit: u64) -> Option<(String, String)> {
    let limits = ArchiveLimits {
        max_compressed_bytes: limit,
        ..ArchiveLimits::default()
    };
    let raw = archive::read_archive_file(archive_bytes, MANIFEST_FILE, &limits).ok()??;
    let text = String::from_utf8(raw).ok()?;
    let file = Path::new(MANIFEST_FILE);
    let manifest =
        manifest::load_package_block(&text, SourceFormat::for_path(file), file).ok()??;
    Some((
        manifest.name.as_str().to_owned(),
        manifest.version.to_string(),
    ))
}

async fn publish_http(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let user = require_scope(&state, &headers, Scope::Publish)?;
    let limits = state.config.limits.clone();
    let bytes = read_body_limited(&headers, body, limits.max_publish_body_bytes).await?;
    let PublishBody { metadata, archive } = blocking("reading the publish body", move || {
        let body =
            PublishBody::decode(&bytes, limits.max_archive_bytes).map_err(|e| match e {
                WireError::TooLarge { .. } => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
                }
                other => ApiError::bad_request(other.to_string()),
            })?;
        let uploaded = archive::cksum(&body.archive);
        if body.metadata.cksum != uploaded {
            return Err(ApiError::bad_request(format!(
                "the publish metadata says cksum {}, but the uploaded archive's sha256 is {uploaded}",
                body.metadata.cksum
            )));
        }
        if let Some((name, vers)) = declared_identity(&body.archive, limits.max_archive_bytes) {
            if name != body.metadata.name || !same_version(&vers, &body.metadata.vers) {
                return Err(ApiError::bad_request(format!(
                    "the publish metadata names `{}` {}, but the archive's {MANIFEST_FILE} \
                     declares `{name}` {vers}",
                    body.metadata.name, body.metadata.vers
                )));
            }
        }
        Ok(body)
    })
    .await?;
    let published = publish::publish(
        &state,
        PublishRequest {
            user,
            files: PackageFiles::Archive(archive),
            signature: metadata.sig,
            author_key: metadata.key,
            repo_name: None,
            tag_version: None,
        },
    )
    .await?;
    Ok(Json(json!({
        "name": published.name,
        "version": published.version,
        "cksum": published.cksum,
        "commit": published.commit,
        "warnings": {"invalid_categories": [], "invalid_badges": [], "other": []},
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_bodies_are_checked() {
        assert_eq!(
            parse_owners_body(br#"{"users":["bob"," alice","bob"]}"#).unwrap(),
            vec!["alice".to_owned(), "bob".to_owned()]
        );
        for bad in [&br#"{"users":[]}"#[..], br#"{"users":[""]}"#, b"bob", b"{}"] {
            let err = parse_owners_body(bad).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn versions_compare_ignoring_build_metadata() {
        assert!(same_version("1.0.0", "1.0.0+build"));
        assert!(!same_version("1.0.0", "1.0.1"));
        assert!(same_version("not-semver", "not-semver"));
    }

    #[tokio::test]
    async fn bodies_past_the_limit_are_413() {
        let err = read_body_limited(&HeaderMap::new(), Body::from(vec![0u8; 11]), 10)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        let ok = read_body_limited(&HeaderMap::new(), Body::from(vec![1u8; 10]), 10)
            .await
            .unwrap();
        assert_eq!(ok.len(), 10);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(99u64));
        let err = read_body_limited(&headers, Body::empty(), 10)
            .await
            .unwrap_err();
        assert!(err.detail.contains("99"), "{}", err.detail);
    }
}
