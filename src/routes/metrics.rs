//! `GET /metrics`: Prometheus text exposition.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

/// Prometheus metrics (text format 0.0.4). Reachable without a token.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Metrics in the Prometheus text format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics.render(&state.bus.status(), &declared(&state));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// Stream sizes of the declared streams only (bounded label cardinality).
fn declared(state: &AppState) -> Vec<crate::metrics::StreamStats> {
    state
        .bus
        .stream_stats()
        .into_iter()
        .filter(|s| state.reconciler.load().is_declared(&s.name))
        .collect()
}
