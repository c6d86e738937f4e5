//! `GET /api/v1/missions?q=&category=&certification=&pricing=&page=&per_page=`: search.
//!
//! A simple server-side match over the index head: each request walks every name once
//! (fine for the index sizes of today; a prebuilt search index can replace it later). A
//! mission matches when `q` (case-insensitive, empty matches all) occurs in its name,
//! description or one of its keywords, in its newest non-yanked version; `category`
//! keeps missions listing that category (`build-automation`), `pricing` those whose
//! pricing model is that (`free`, `paid`), `certification` those with a certification line
//! containing that text. Exact name matches come first, then names matching `q`, then the
//! rest, each by name.
//!
//! Answer: `{"missions":[{name, max_version, description, categories, keywords, pricing}],
//! "meta":{"total": N}}`, `total` counting every match before paging.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use mission_index::entry::IndexEntry;
use mission_index::repo::IndexRepo;
use serde_json::{json, Value};

use crate::auth::require_reader;
use crate::error::ApiError;
use crate::server::SharedState;

/// The most results one page holds.
pub const MAX_PER_PAGE: usize = 1000;
const DEFAULT_PER_PAGE: usize = 20;

pub fn routes() -> Router<SharedState> {
    Router::new().route("/api/v1/missions", get(search))
}

async fn search(
    State(state): State<SharedState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_reader(&state, &headers)?;
    let number = |key: &str, default: usize| -> Result<usize, ApiError> {
        match params.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`{key}` must be a whole number of at least 1, not `{v}`"
                ))
            }),
        }
    };
    let page = number("page", 1)?;
    let per_page = number("per_page", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE);
    let filter = Filter {
        q: params
            .get("q")
            .map(|q| q.trim().to_lowercase())
            .unwrap_or_default(),
        category: params
            .get("category")
            .map(|c| c.trim().to_lowercase())
            .filter(|c| !c.is_empty()),
        certification: params
            .get("certification")
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty()),
        pricing: params
            .get("pricing")
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty()),
    };
    let dir = state.data.index_dir();
    let found = tokio::task::spawn_blocking(move || run_search(&dir, &filter))
        .await
        .map_err(|e| ApiError::internal(format!("the search task failed: {e}")))??;
    let total = found.len();
    let missions: Vec<Value> = found
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|(_, hit)| hit)
        .collect();
    Ok(Json(
        json!({"missions": missions, "meta": {"total": total}}),
    ))
}

struct Filter {
    q: String,
    category: Option<String>,
    certification: Option<String>,
    pricing: Option<String>,
}

/// A match: its sort key (rank, lowercase name) and its JSON.
type Hit = ((u8, String), Value);

/// Every match, sorted.
fn run_search(index_dir: &std::path::Path, filter: &Filter) -> Result<Vec<Hit>, ApiError> {
    let repo = IndexRepo::open(index_dir)
        .map_err(|e| ApiError::internal(format!("opening the index for search: {e}")))?;
    let names = repo
        .list_names()
        .map_err(|e| ApiError::internal(format!("listing the index for search: {e}")))?;
    let mut hits = Vec::new();
    for name in names {
        let Some(entries) = repo
            .read(&name)
            .map_err(|e| ApiError::internal(format!("reading `{name}` for search: {e}")))?
        else {
            continue;
        };
        let Some(newest) = newest(&entries) else {
            continue;
        };
        let lower = newest.name.to_lowercase();
        let rank = if filter.q.is_empty() || lower == filter.q {
            0
        } else if lower.contains(&filter.q) {
            1
        } else if newest.description.to_lowercase().contains(&filter.q)
            || newest
                .keywords
                .iter()
                .any(|k| k.to_lowercase().contains(&filter.q))
        {
            2
        } else {
            continue;
        };
        let categories = serde_json::to_value(&newest.categories).unwrap_or(Value::Null);
        let pricing = serde_json::to_value(&newest.pricing).unwrap_or(Value::Null);
        if let Some(category) = &filter.category {
            let listed = categories
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c.as_str() == Some(category.as_str())));
            if !listed {
                continue;
            }
        }
        if let Some(model) = &filter.pricing {
            let found = pricing
                .get("model")
                .and_then(Value::as_str)
                .or(pricing.as_str())
                .unwrap_or("");
            if found.to_lowercase() != *model {
                continue;
            }
        }
        if let Some(cert) = &filter.certification {
            let certs = repo.read_certifications(&newest.name).map_err(|e| {
                ApiError::internal(format!("reading the certifications of `{name}`: {e}"))
            })?;
            if !certs.iter().any(|line| line.contains(cert.as_str())) {
                continue;
            }
        }
        hits.push((
            (rank, lower),
            json!({
                "name": newest.name,
                "max_version": newest.vers,
                "description": newest.description,
                "categories": categories,
                "keywords": newest.keywords,
                "pricing": pricing,
            }),
        ));
    }
    hits.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(hits)
}

/// The newest version that is not yanked (the newest of all when every one is).
fn newest(entries: &[IndexEntry]) -> Option<&IndexEntry> {
    let best = |yanked_ok: bool| {
        entries
            .iter()
            .filter(|e| yanked_ok || !e.yanked)
            .filter_map(|e| e.version().ok().map(|v| (v, e)))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, e)| e)
    };
    best(false).or_else(|| best(true))
}
