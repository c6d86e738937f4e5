//! Author key rotation over HTTP (ARCHITECTURE section 3: "a new author key for a known
//! mission is accepted only with a rotation statement signed by the old key").
//!
//! - `POST /api/v1/missions/{name}/keys/rotate`: body a [`RotationStatement`] as JSON; a
//!   token with the `publish` scope of an owner of `name`. The statement must verify (signed
//!   by its `old_key`) and hand over from the mission's current key: the key of its first
//!   version, moved along by the statements stored before (so a key rotated away from can
//!   neither rotate again nor publish). The index writer appends it to `keys/<layout>/NAME`
//!   and signs a new snapshot; publishing with the new key, and only with it, is accepted
//!   from then on.
//! - `GET /index/keys/<layout path>`: the statements, one JSON line each, read at the head
//!   the current snapshot signs, with a strong `ETag` (the git blob id) and `304` on
//!   `If-None-Match`, as every sparse index file.

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mission_index::name::collision_key;
use mission_index::repo::IndexError;
use mission_index::rotation::{self, RotationStatement};
use mission_index::signing::PublicKey;
use serde_json::{json, Value};

use crate::auth::{require_reader, require_scope};
use crate::error::ApiError;
use crate::index_writer::WriteError;
use crate::server::SharedState;
use crate::store::Scope;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/api/v1/missions/{name}/keys/rotate", post(rotate))
        .route("/index/keys/{*path}", get(keys_file))
}

fn write_error(e: WriteError) -> ApiError {
    match e {
        WriteError::NotOwner { .. } => ApiError::forbidden(e.to_string()),
        WriteError::UnknownMission { .. }
        | WriteError::NameTaken { .. }
        | WriteError::Index(IndexError::Layout(_)) => ApiError::not_found(e.to_string()),
        WriteError::Rotation { .. } => ApiError::bad_request(e.to_string()),
        WriteError::RotationFromUnknownKey { .. } => {
            ApiError::new(StatusCode::CONFLICT, e.to_string())
        }
        other => ApiError::internal(other),
    }
}

/// The minisign key id of an `RW...` key, for messages (the key itself if it does not
/// parse).
pub(crate) fn key_id(key: &str) -> String {
    PublicKey::parse(key)
        .map(|k| k.key_id())
        .unwrap_or_else(|_| key.to_owned())
}

/// Whether two `RW...` keys are the same key (compared in canonical form).
pub(crate) fn same_key(a: &str, b: &str) -> bool {
    let canonical = |k: &str| {
        PublicKey::parse(k)
            .map(|k| k.to_base64())
            .unwrap_or_else(|_| k.to_owned())
    };
    canonical(a) == canonical(b)
}

async fn rotate(
    State(state): State<SharedState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let user = require_scope(&state, &headers, Scope::Publish)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the rotation statement must be UTF-8 JSON"))?;
    let statement = RotationStatement::parse(text.trim()).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be a rotation statement (make one with `mission key rotate`): {e}"
        ))
    })?;
    if collision_key(&statement.name) != collision_key(&name) {
        return Err(ApiError::bad_request(format!(
            "the rotation statement is for `{}`, but was sent to `{name}`",
            statement.name
        )));
    }
    let (old, new) = (key_id(&statement.old_key), key_id(&statement.new_key));
    let mission = statement.name.clone();
    let commit = state
        .writer
        .rotate(statement, &user.user)
        .await
        .map_err(write_error)?;
    tracing::info!(%mission, %old, %new, user = %user.user, stored = commit.is_some(), "author key rotated");
    let msg = match commit {
        Some(_) => {
            format!("`{mission}` now accepts versions signed by key {new} (rotated from {old})")
        }
        None => format!("this rotation of `{mission}` from {old} to {new} was already recorded"),
    };
    Ok(Json(
        json!({"ok": true, "msg": msg, "old": old, "new": new}),
    ))
}

async fn keys_file(
    State(state): State<SharedState>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = require_reader(&state, &headers) {
        return denied.into_response();
    }
    let path = format!(
        "{}/{}",
        rotation::ROTATION_DIR,
        path.trim_start_matches('/')
    );
    let Some(name) = rotation::name_from_keys_path(&path) else {
        return ApiError::not_found(format!(
            "`/index/{path}` is not a file of the index: key rotations live under keys/ in the \
             layout of the entry files (keys/1/a, keys/2/ab, keys/3/a/abc, keys/ab/cd/abcd)"
        ))
        .into_response();
    };
    match crate::sparse::read_head(&state, path).await {
        Ok(Some(file)) => crate::sparse::serve_file(&headers, file, "text/plain; charset=utf-8"),
        Ok(None) => ApiError::not_found(format!("no key rotations for `{name}` in this index"))
            .into_response(),
        Err(e) => e.into_response(),
    }
}
