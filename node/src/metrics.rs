//! Prometheus metrics at `/metrics`: requests by route and status, request latency, and the
//! publish counters the pipeline records (`mission_publishes_total`,
//! `mission_publish_seconds`).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::server::SharedState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder (once per process).
pub fn install() -> anyhow::Result<()> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new().install_recorder()?;
    let _ = HANDLE.set(handle);
    Ok(())
}

pub fn routes() -> Router<SharedState> {
    Router::new().route(
        "/metrics",
        get(|| async { HANDLE.get().map(|h| h.render()).unwrap_or_default() }),
    )
}

/// Wraps `router` so every request is counted and timed, labelled by its route pattern
/// (not the raw path, so label cardinality stays bounded) and status.
pub fn layer(router: Router) -> Router {
    router.layer(middleware::from_fn(track))
}

async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.clone())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method.clone(), "route" => route)
        .record(elapsed.as_secs_f64());
    tracing::info!(%method, %path, %status, ms = elapsed.as_millis() as u64, "request");
    response
}
