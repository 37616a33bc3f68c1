//! HTTP routes, one module per resource, plus the router that joins them.

pub mod admin;
mod batch;
mod cors;
pub mod extract;
mod health;
mod latest;
mod metrics;
pub mod nats_headers;
mod publish;
mod request;
mod stats;
mod tickets;

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Uri};
use axum::middleware::{self, Next};
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
        .routes(routes!(metrics::metrics))
        .routes(routes!(crate::ws::subscribe))
        .routes(routes!(crate::sse::events))
        .routes(routes!(latest::latest))
        .routes(routes!(tickets::issue))
        .routes(routes!(stats::stats))
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
        .route("/asyncapi.json", axum::routing::get(asyncapi_json))
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .layer(cors::layer(state.clone()))
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
                    let route = req
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map_or("unmatched", |p| p.as_str());
                    let span = tracing::info_span!(
                        "http",
                        method = %req.method(),
                        route,
                        path = %req.uri().path(),
                        version = ?req.version(),
                        request_id = %id,
                        trace_id = tracing::field::Empty,
                        caller = tracing::field::Empty
                    );
                    // Parsed only for a span that is recorded: with request
                    // logs off it is work on every request for nothing.
                    if !span.is_disabled()
                        && let Some(trace_id) =
                            crate::trace_context::TraceContext::trace_id_of(req.headers())
                    {
                        span.record("trace_id", trace_id);
                    }
                    span
                })
                // 5xx are answers too; on_response logs every request once.
                .on_failure(())
                .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1e3,
                        "request"
                    );
                }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// The per-request work every route shares, in one layer (each `from_fn`
/// layer costs a boxed future per request): authenticate the caller, bound
/// the request's time (not the long-lived streams), restate plain-text
/// rejections as problem documents, and count the request by its route
/// template (never the raw path: that would be one label per subject).
async fn edge(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let method = request.method().clone();
    let streaming = matches!(request.uri().path(), "/subscribe" | "/events");
    let response = match crate::auth::admit(&state, &mut request) {
        Err(err) => err.into_response(),
        Ok(()) if streaming => next.run(request).await,
        Ok(()) => {
            let limit = state.config.gateway.http.request_timeout();
            match tokio::time::timeout(limit, next.run(request)).await {
                Ok(response) => response,
                Err(_) => ApiError::Timeout(limit.as_millis() as u64).into_response(),
            }
        }
    };
    let response = restate_plain_errors(response).await;
    let route = route.as_ref().map_or("unmatched", |r| r.as_str());
    let metrics = &state.metrics;
    metrics
        .http_requests
        .with_label_values(&[route, method.as_str(), response.status().as_str()])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[route, method.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Restates an error response that is not problem+json yet (a rejection
/// from axum or a layer) as one, keeping its status and headers.
async fn restate_plain_errors(response: Response) -> Response {
    let status = response.status();
    // Plain-text or empty bodies are rejections to restate; a JSON body
    // (problem documents, /healthz's 503) is already an answer.
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&text).trim().to_owned();
    let detail = if detail.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        detail
    };
    let mut restated = ApiError::Http { status, detail }.into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            restated.headers_mut().append(name, value.clone());
        }
    }
    restated
}

/// The AsyncAPI document of `/subscribe` and `/events`, built once.
async fn asyncapi_json() -> Response {
    static DOCUMENT: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(crate::asyncapi::to_pretty_json);
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().chars().take(200).collect())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
