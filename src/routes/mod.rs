//! HTTP routes, one module per resource, plus the router that joins them.

pub mod admin;
mod batch;
pub mod extract;
mod health;
mod latest;
pub mod nats_headers;
mod publish;
mod request;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Request, Uri};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub use batch::{BatchResponse, LineOutcome, LineResult};
pub use health::{Health, HealthState};
pub use publish::{body_limit, receipt_status};

use crate::app::AppState;
use crate::error::ApiError;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The documented API routes; the OpenAPI document is generated from these.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish::publish_one))
        .routes(routes!(batch::publish_batch))
        .routes(routes!(request::request))
        .routes(routes!(health::healthz))
        .routes(routes!(health::livez))
        .routes(routes!(crate::ws::subscribe))
        .routes(routes!(crate::sse::events))
        .routes(routes!(latest::latest))
}

/// Every documented route (what `openapi/openapi.json` describes).
pub fn documented() -> OpenApiRouter<AppState> {
    api().merge(admin::api())
}

/// The served routes: the admin ones only when `admin.enabled`, and then
/// behind their network guard.
fn served(state: &AppState) -> OpenApiRouter<AppState> {
    if state.config.admin.enabled {
        api().merge(admin::guarded(state.clone()))
    } else {
        api()
    }
}

/// The complete router: API, OpenAPI document, Swagger UI, fallbacks, layers.
pub fn router(state: AppState) -> Router {
    let (api_router, doc) = crate::openapi::split(served(&state));
    api_router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("handler panicked").into_response()
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_secs_f64() * 1e3, "request");
                }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().chars().take(200).collect())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
