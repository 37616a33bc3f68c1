//! `GET /stats`: traffic rates over the last minutes (the console's charts).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::ValidQuery;
use crate::state::AppState;
use crate::stats::Stats;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Only samples taken after this time (Unix milliseconds; the `t` of the
    /// last sample already seen), so a poller gets each sample once.
    pub since: Option<u64>,
}

/// Traffic over the last five minutes.
///
/// Counter totals since start, open connections and subscriptions, and one
/// sample a second of publish, delivery and shed rates (messages per
/// second). The same counters as `/metrics`, as JSON for a browser. Poll
/// at most once a second with `since`.
#[utoipa::path(
    get,
    path = "/stats",
    tag = "health",
    params(StatsQuery),
    responses(
        (status = 200, description = "Totals, gauges and the samples after `since`", body = Stats),
        (status = 400, description = "`invalid_query`"),
    )
)]
pub async fn stats(
    State(state): State<AppState>,
    ValidQuery(query): ValidQuery<StatsQuery>,
) -> Json<Stats> {
    Json(
        state
            .stats
            .snapshot(&state.metrics, query.since.unwrap_or(0)),
    )
}
