//! HTTP routes, one module per resource, plus the router that joins them.

pub mod admin;
mod batch;
mod cors;
pub mod extract;
mod health;
mod latest;
mod metrics;
pub mod nats_headers;
mod policy;
mod publish;
mod request;
mod stats;
mod tickets;

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, Uri};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use batch::{BatchResponse, LineOutcome, LineResult};
pub use health::{Health, HealthState};
pub use policy::Policy;
pub use publish::{body_limit, receipt_status};

use crate::error::ApiError;
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The documented routes of one policy group. Where a route is listed here
/// decides who may call it, whether it is timed, and what the OpenAPI
/// document says about both.
pub fn group(policy: Policy) -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new();
    match policy {
        Policy::Public => api
            .routes(routes!(health::healthz))
            .routes(routes!(health::livez))
            .routes(routes!(metrics::metrics)),
        Policy::Authenticated => api
            .routes(routes!(publish::publish_one))
            .routes(routes!(batch::publish_batch))
            .routes(routes!(request::request))
            .routes(routes!(latest::latest))
            .routes(routes!(tickets::issue))
            .routes(routes!(stats::stats)),
        Policy::Admin => admin::api(),
        Policy::Streaming => api
            .routes(routes!(crate::ws::subscribe))
            // WebSocket over HTTP/2 (RFC 8441); OpenAPI has no CONNECT
            // operation, so the GET above documents both.
            .route(
                "/subscribe",
                axum::routing::on(axum::routing::MethodFilter::CONNECT, crate::ws::subscribe),
            )
            .routes(routes!(crate::sse::events)),
    }
}

/// A group's routes and its part of the OpenAPI document, which records
/// the group's policy.
fn split(policy: Policy) -> (Router<AppState>, OpenApi) {
    let (router, mut doc) = group(policy).split_for_parts();
    policy.document(&mut doc);
    (router, doc)
}

/// The OpenAPI document of every route (what `openapi/openapi.json` is).
pub fn document() -> OpenApi {
    let mut doc = OpenApi::default();
    for policy in Policy::ALL {
        doc.merge(split(policy).1);
    }
    crate::openapi::complete(doc)
}

/// The document as pretty JSON, exactly as committed in `openapi/openapi.json`.
pub fn document_json() -> String {
    document()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}

/// The served groups, each behind its policy's layer, and the document of
/// what is served: the admin routes only when `admin.enabled`, and then
/// behind their network guard.
fn served(state: &AppState) -> (Router<AppState>, OpenApi) {
    let mut router = Router::new();
    let mut doc = OpenApi::default();
    let admin = state.config.admin.enabled;
    for policy in Policy::ALL
        .into_iter()
        .filter(|p| admin || *p != Policy::Admin)
    {
        let (routes, part) = split(policy);
        router = router.merge(policy.mount(routes, state));
        doc.merge(part);
    }
    (router, crate::openapi::complete(doc))
}

/// The public routes that are not API operations: the documents and the
/// console.
fn documents(doc: OpenApi) -> Router<AppState> {
    Router::new()
        .merge(crate::swagger_ui::router(doc))
        .route("/asyncapi.json", axum::routing::get(asyncapi_json))
        .merge(crate::console::router())
}

/// The complete router: API, OpenAPI document, Swagger UI, fallbacks, layers.
pub fn router(state: AppState) -> Router {
    let (api, doc) = served(&state);
    // An unknown path is no public route: it needs a token to learn so.
    let unmatched = Router::new().fallback(not_found);
    api.merge(Policy::Public.mount(documents(doc), &state))
        .merge(Policy::Authenticated.mount(unmatched, &state))
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
