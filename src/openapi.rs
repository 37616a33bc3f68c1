//! The OpenAPI 3.1 document, generated from the handlers' annotations.
//! `openapi/openapi.json` in the repository is this document; a test fails
//! when they drift (regenerate with `cargo run -q -- openapi > openapi/openapi.json`).

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::error::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MarketPrism message broker",
        description = "HTTP/WebSocket gateway to the MarketPrism NATS JetStream bus. \
Publish market data over REST (single or NDJSON batches), make NATS requests, \
and check health. Every error is an RFC 9457 `application/problem+json` document \
with a stable `code`.",
        license(name = "MIT", identifier = "MIT")
    ),
    tags(
        (name = "publish", description = "Publish messages to NATS subjects; JetStream-captured subjects are acked by their stream"),
        (name = "request", description = "NATS request/reply"),
        (name = "subscribe", description = "WebSocket subscriptions: live fan-out, control ops, publishing over the socket"),
        (name = "health", description = "Readiness and liveness"),
        (name = "admin", description = "JetStream streams, messages and consumers (loopback clients only by default)"),
    ),
    components(schemas(Problem))
)]
struct ApiDoc;

/// Splits the documented routes into a router and its OpenAPI document.
pub fn split(api: OpenApiRouter<AppState>) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api)
        .split_for_parts()
}

/// The OpenAPI document the gateway serves at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    split(crate::routes::documented()).1
}

/// The document as pretty JSON, exactly as committed in `openapi/openapi.json`.
pub fn to_pretty_json() -> String {
    document()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}
