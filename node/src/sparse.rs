//! (being written)

use axum::Router;

use crate::server::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new()
}
