//! The sparse index over HTTP (ARCHITECTURE section 4), as cargo's sparse registries: a
//! client fetches only the files it needs, one per name, instead of cloning the index.
//!
//! - `GET /index/config.json`: the registry configuration (download template, API, node key);
//! - `GET /index/1/a`, `/index/2/ab`, `/index/3/a/abc`, `/index/ab/cd/abcd`: one mission's
//!   index file, a JSON line per version (the layout of `mission_index::layout`);
//! - `GET /index/certs/<same layout>`: its signed certifications, one per line;
//! - `GET /index/snapshot.json` and `/index/snapshot.json.minisig`: the node's signed
//!   statement of the current index head (rollback and freeze protection).
//!
//! Every file is read from the head of the index's `main` branch, so a reader never sees
//! a half-written index: the writer makes a whole commit, then moves the branch. Responses
//! carry a strong `ETag` (the file's git blob id: it changes exactly when the bytes do) and
//! `Cache-Control: no-cache`, so clients keep a copy and revalidate it with
//! `If-None-Match`, getting `304 Not Modified` while it is current.
//!
//! Every file is served at the head of the node's current snapshot, signed by the node key
//! for that head in the `Mission-Index-Signature` header (in a `304` too; see
//! [`mission_index::index_file_signature`]): over sparse HTTP, that signature is what binds
//! a file to the signed snapshot, as the commit id does over git. Each file is signed once
//! per head and kept with its bytes.
//!
//! An entry file asked for with `Prefer: mission-closure` also names, in a `Link` header,
//! the files of everything its versions depend on (see [`crate::prefetch_hint`]).
//!
//! On a private node (`auth_required`), every file needs a token, as cargo expects of an
//! `auth-required` registry (it retries with its token after a 401).
//!
//! Only paths the layout produces are served: anything else (`..`, uppercase, a wrong
//! folder, the writer's `.keys/` side index) is 404, like an unknown name.

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

use axum::body::Bytes;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use mission_index::index_file_signature;
use mission_index::layout;
use mission_index::repo::{CONFIG_PATH, KEYS_DIR, MAIN_REF};
use sha2::{Digest, Sha256};

use crate::auth::require_reader;
use crate::error::ApiError;
use crate::prefetch_hint;
use crate::server::SharedState;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/index/config.json", get(config_json))
        .route("/index/snapshot.json", get(snapshot_json))
        .route("/index/snapshot.json.minisig", get(snapshot_sig))
        .route("/index/{*path}", get(index_file))
}

/// A file of the index at the head of `main`.
pub(crate) struct HeadFile {
    /// The git blob id (40 hex digits): a strong validator for the bytes.
    pub blob_id: String,
    pub bytes: Vec<u8>,
}

/// Reads `path` from the head of the index's `main` branch; `None` when there is no such
/// file. Opens the repository read-only for this one read (cheap: a few small files), so
/// it never contends with the writer's handle. Blocking: call from `spawn_blocking`.
pub(crate) fn read_head_file(index_dir: &Path, path: &str) -> Result<Option<HeadFile>, String> {
    read_file_at(index_dir, None, path)
}

/// Reads `path` from the commit `head` (40 hex digits), or from the head of `main` when
/// `head` is `None`. Blocking.
fn read_file_at(
    index_dir: &Path,
    head: Option<&str>,
    path: &str,
) -> Result<Option<HeadFile>, String> {
    let repo = git2::Repository::open_bare(index_dir)
        .map_err(|e| format!("opening the index {}: {}", index_dir.display(), e.message()))?;
    let tree = match head {
        Some(head) => git2::Oid::from_str(head)
            .and_then(|oid| repo.find_commit(oid))
            .and_then(|commit| commit.tree())
            .map_err(|e| format!("reading commit {head} of the index: {}", e.message()))?,
        None => repo
            .find_reference(MAIN_REF)
            .and_then(|r| r.peel_to_tree())
            .map_err(|e| format!("reading {MAIN_REF} of the index: {}", e.message()))?,
    };
    let entry = match tree.get_path(Path::new(path)) {
        Ok(entry) => entry,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(format!("looking up `{path}` in the index: {}", e.message())),
    };
    if entry.kind() != Some(git2::ObjectType::Blob) {
        return Ok(None);
    }
    let blob = repo
        .find_blob(entry.id())
        .map_err(|e| format!("reading `{path}` from the index: {}", e.message()))?;
    Ok(Some(HeadFile {
        blob_id: entry.id().to_string(),
        bytes: blob.content().to_vec(),
    }))
}

/// A served file: its bytes (cheap to clone), its quoted ETag, and its signature by the node
/// key for the head it is served at (the [`index_file_signature::HEADER`] value).
#[derive(Clone)]
pub(crate) struct ServedFile {
    pub(crate) etag: String,
    pub(crate) bytes: Bytes,
    pub(crate) signature: HeaderValue,
}

/// The files of the index at one head, kept in memory once read. The sparse index is read
/// far more often than written, and a git lookup costs about ten times a map lookup; the
/// cache is keyed by the head the node's current snapshot signs, so it is dropped whole
/// when a publish moves the head, and what it serves always matches that snapshot.
struct HeadCache {
    head: String,
    /// `None`: the path is known to hold no file at this head.
    files: HashMap<String, Option<ServedFile>>,
}

static CACHE: RwLock<Option<HeadCache>> = RwLock::new(None);

/// Bounds the cache's memory: past this many paths it starts again empty.
const MAX_CACHED_PATHS: usize = 200_000;

/// `path` at the head of the node's current snapshot, from memory when it was read before.
pub(crate) async fn read_head(
    state: &SharedState,
    path: String,
) -> Result<Option<ServedFile>, ApiError> {
    let Some(head) = state.writer.head() else {
        return Err(ApiError::internal("the index has no signed head yet"));
    };
    if let Ok(guard) = CACHE.read() {
        if let Some(cache) = guard.as_ref().filter(|c| c.head == head) {
            if let Some(hit) = cache.files.get(&path) {
                return Ok(hit.clone());
            }
        }
    }
    let dir = state.data.index_dir();
    let (h, p) = (head.clone(), path.clone());
    let (secret, public, node) = (
        state.secret_key.clone(),
        state.public_key.clone(),
        state.config.name.clone(),
    );
    // Read and signed once per head: the signature binds the file to the snapshot's head.
    let file = tokio::task::spawn_blocking(move || {
        let Some(file) = read_file_at(&dir, Some(&h), &p)? else {
            return Ok(None);
        };
        let signature = index_file_signature::sign(&secret, &public, &node, &h, &p, &file.bytes)
            .map_err(|e| format!("signing `{p}` at {h}: {e}"))?;
        let signature = HeaderValue::from_str(&signature)
            .map_err(|e| format!("the signature of `{p}` is no header value: {e}"))?;
        Ok::<_, String>(Some(ServedFile {
            etag: quoted(&file.blob_id),
            bytes: Bytes::from(file.bytes),
            signature,
        }))
    })
    .await
    .map_err(|e| ApiError::internal(format!("the index read task failed: {e}")))?
    .map_err(ApiError::internal)?;
    if let Ok(mut guard) = CACHE.write() {
        let stale = guard
            .as_ref()
            .is_none_or(|c| c.head != head || c.files.len() >= MAX_CACHED_PATHS);
        if stale {
            *guard = Some(HeadCache {
                head: head.clone(),
                files: HashMap::new(),
            });
        }
        if let Some(cache) = guard.as_mut() {
            cache.files.insert(path, file.clone());
        }
    }
    Ok(file)
}

/// Whether the request's `If-None-Match` matches `etag` (a quoted strong tag). Handles
/// lists (`"a", "b"`), `*`, several header lines, and weak forms (`W/"a"`: If-None-Match
/// uses the weak comparison, RFC 9110 section 13.1.2).
pub(crate) fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// A cacheable answer: `304` when the client's copy is current, else the bytes.
pub(crate) fn cached(
    headers: &HeaderMap,
    etag: String,
    content_type: &'static str,
    body: impl IntoResponse,
) -> Response {
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    let common = [
        (header::ETAG, etag_value),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    if if_none_match(headers, &etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        StatusCode::OK,
        common,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// An index file: [`cached`], with its signature in both the `200` and the `304`.
pub(crate) fn serve_file(
    headers: &HeaderMap,
    file: ServedFile,
    content_type: &'static str,
) -> Response {
    let mut response = cached(headers, file.etag, content_type, file.bytes);
    response
        .headers_mut()
        .insert(index_file_signature::HEADER, file.signature);
    response
}

fn quoted(tag: &str) -> String {
    format!("\"{tag}\"")
}

async fn config_json(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if let Err(denied) = require_reader(&state, &headers) {
        return denied.into_response();
    }
    match read_head(&state, CONFIG_PATH.to_owned()).await {
        Ok(Some(file)) => serve_file(&headers, file, JSON),
        Ok(None) => ApiError::internal(format!("the index has no {CONFIG_PATH}")).into_response(),
        Err(e) => e.into_response(),
    }
}

/// What a path under `/index/` names, if the layout would produce it.
#[derive(Debug, PartialEq, Eq)]
enum IndexPath {
    Entry(String),
    Certs(String),
}

fn classify(path: &str) -> Option<IndexPath> {
    // The layout functions refuse these too; being explicit costs nothing.
    if path.contains("..")
        || path.bytes().any(|b| b.is_ascii_uppercase())
        || path.starts_with(KEYS_DIR)
    {
        return None;
    }
    if path.starts_with(layout::CERTS_DIR) {
        return layout::name_from_cert_path(path).map(IndexPath::Certs);
    }
    layout::name_from_path(path).map(IndexPath::Entry)
}

async fn index_file(
    State(state): State<SharedState>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = require_reader(&state, &headers) {
        return denied.into_response();
    }
    let path = path.trim_start_matches('/').to_owned();
    let Some(what) = classify(&path) else {
        return ApiError::not_found(format!(
            "`/index/{path}` is not a file of the index: entry files live at 1/a, 2/ab, 3/a/abc \
             and ab/cd/abcd (lowercase names), certifications under certs/ in the same layout"
        ))
        .into_response();
    };
    match read_head(&state, path.clone()).await {
        Ok(Some(file)) => {
            let mut response = serve_file(&headers, file, TEXT);
            if let IndexPath::Entry(name) = &what {
                prefetch_hint::add_to(&state, &headers, name, &path, &mut response).await;
            }
            response
        }
        Ok(None) => match what {
            IndexPath::Entry(name) => {
                ApiError::not_found(format!("no mission named `{name}` in this index"))
            }
            IndexPath::Certs(name) => {
                ApiError::not_found(format!("no certifications for `{name}` in this index"))
            }
        }
        .into_response(),
        Err(e) => e.into_response(),
    }
}

fn no_snapshot() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the node has not signed a snapshot of its index yet; try again shortly",
    )
}

async fn snapshot_json(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if let Err(denied) = require_reader(&state, &headers) {
        return denied.into_response();
    }
    match state.writer.snapshot() {
        Some(s) => {
            let tag = quoted(&hex::encode(Sha256::digest(s.json.as_bytes())));
            cached(&headers, tag, JSON, s.json.into_bytes())
        }
        None => no_snapshot().into_response(),
    }
}

async fn snapshot_sig(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if let Err(denied) = require_reader(&state, &headers) {
        return denied.into_response();
    }
    match state.writer.snapshot() {
        Some(s) => {
            let tag = quoted(&hex::encode(Sha256::digest(s.sig.as_bytes())));
            cached(&headers, tag, TEXT, s.sig.into_bytes())
        }
        None => no_snapshot().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_layout_paths_are_index_files() {
        assert_eq!(classify("1/a"), Some(IndexPath::Entry("a".into())));
        assert_eq!(classify("2/ab"), Some(IndexPath::Entry("ab".into())));
        assert_eq!(classify("3/a/abc"), Some(IndexPath::Entry("abc".into())));
        assert_eq!(
            classify("fi/x_/fix_build"),
            Some(IndexPath::Entry("fix_build".into()))
        );
        assert_eq!(
            classify("certs/ab/cd/abcd"),
            Some(IndexPath::Certs("abcd".into()))
        );
        for bad in [
            "",
            "config.json",
            "snapshot.json",
            "ab/cd/ABCD",
            "AB/CD/abcd",
            "ab/ce/abcd",
            "ab/cd/../cd/abcd",
            "1/..",
            ".keys/ab/cd/abcd",
            ".keys",
            "certs",
            "certs/",
            "certs/../ab/cd/abcd",
            "ab/cd/abcd/",
            "ab/cd/abcd/x",
            "objects/info/packs",
        ] {
            assert_eq!(classify(bad), None, "{bad}");
        }
    }

    fn with_inm(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::IF_NONE_MATCH, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn if_none_match_handles_lists_stars_and_weak_tags() {
        let tag = "\"abc\"";
        assert!(if_none_match(&with_inm(&["\"abc\""]), tag));
        assert!(if_none_match(&with_inm(&["\"x\", \"abc\""]), tag));
        assert!(if_none_match(&with_inm(&["\"x\"", "\"abc\""]), tag));
        assert!(if_none_match(&with_inm(&["W/\"abc\""]), tag));
        assert!(if_none_match(&with_inm(&["*"]), tag));
        assert!(!if_none_match(&with_inm(&["\"abcd\""]), tag));
        assert!(!if_none_match(&with_inm(&["abc"]), tag), "unquoted");
        assert!(!if_none_match(&HeaderMap::new(), tag));
    }

    #[test]
    fn a_matching_tag_gets_304_without_a_body_and_others_get_the_bytes() {
        let tag = "\"abc\"".to_owned();
        let hit = cached(&with_inm(&["\"abc\""]), tag.clone(), TEXT, b"x".to_vec());
        assert_eq!(hit.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(hit.headers()[header::ETAG], "\"abc\"");
        let miss = cached(&HeaderMap::new(), tag, TEXT, b"x".to_vec());
        assert_eq!(miss.status(), StatusCode::OK);
        assert_eq!(miss.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(miss.headers()[header::CONTENT_TYPE], TEXT);
    }
}
