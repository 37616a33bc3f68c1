//! `GET /healthz` (can the gateway serve?) and `GET /livez` (is it running?).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;
use std::collections::BTreeMap;

use crate::bus::BusStatus;
use crate::streams::SyncReport;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Connected to NATS and JetStream answers.
    Ok,
    /// Connected to NATS, but JetStream does not answer: core publishes
    /// work, stream publishes do not.
    Degraded,
    /// Not connected to NATS.
    Unavailable,
    /// Shutting down.
    Draining,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: HealthState,
    pub service: String,
    pub version: String,
    pub nats: BusStatus,
    /// Reconciliation of each declared stream (drift shows here).
    pub streams: BTreeMap<String, SyncReport>,
    /// Reconciliation of each declared consumer.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub consumers: BTreeMap<String, SyncReport>,
}

/// Readiness: 200 when the gateway can serve, 503 otherwise; same body.
///
/// 503 while NATS is disconnected (noticed within a few seconds) or while
/// the gateway shuts down; back to 200 after a reconnect, without restart.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses(
        (status = 200, description = "Connected to NATS", body = Health),
        (status = 503, description = "Not connected to NATS, or draining", body = Health),
    )
)]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let nats = state.bus.status();
    let status = if state.shutdown.is_cancelled() {
        HealthState::Draining
    } else if !nats.connected() {
        HealthState::Unavailable
    } else if !nats.jetstream.reachable {
        HealthState::Degraded
    } else {
        HealthState::Ok
    };
    let code = match status {
        HealthState::Ok | HealthState::Degraded => StatusCode::OK,
        HealthState::Unavailable | HealthState::Draining => StatusCode::SERVICE_UNAVAILABLE,
    };
    let health = Health {
        status,
        service: state.config.service.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        nats,
        streams: state.reconciler.load().stream_reports(),
        consumers: state.reconciler.load().consumer_reports(),
    };
    (code, Json(health))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    pub status: &'static str,
}

/// Liveness: 200 while the process runs, whatever the state of NATS.
#[utoipa::path(
    get,
    path = "/livez",
    tag = "health",
    responses((status = 200, description = "The process is running", body = Live))
)]
pub async fn livez() -> Json<Live> {
    Json(Live { status: "ok" })
}
