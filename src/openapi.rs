//! The OpenAPI 3.1 document, generated from the handlers' annotations.
//! `openapi/openapi.json` in the repository is this document; a test fails
//! when they drift (regenerate with `cargo run -q -- openapi > openapi/openapi.json`).

pub mod bodies;
mod problems;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::Problem;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MarketPrism message broker",
        description = "HTTP/WebSocket gateway to the MarketPrism NATS JetStream bus. \
Publish market data over REST (single or NDJSON batches), make NATS requests, \
and check health. Every error is an RFC 9457 `application/problem+json` document \
with a stable `code`. The operator's live console is at [/console/](/console/). \
The WebSocket and Server-Sent Events protocols (`/subscribe`, `/events`: frames, \
control ops, close codes) are described by the AsyncAPI 3.0 document at \
[/asyncapi.json](/asyncapi.json).",
        license(name = "MIT", identifier = "MIT")
    ),
    tags(
        (name = "publish", description = "Publish messages to NATS subjects; JetStream-captured subjects are acked by their stream"),
        (name = "request", description = "NATS request/reply"),
        (name = "subscribe", description = "WebSocket subscriptions: live fan-out, control ops, publishing over the socket"),
        (name = "health", description = "Readiness and liveness"),
        (name = "auth", description = "Tickets for browser sockets and event streams"),
        (name = "admin", description = "JetStream streams, messages and consumers (loopback clients only by default)"),
    ),
    // Schemas referred to by name from parameters (utoipa collects only
    // those of bodies) and from the batch body's description.
    components(schemas(Problem, crate::config::SlowConsumerPolicy, crate::protocol::PublishFields))
)]
struct ApiDoc;

/// Declares the bearer scheme and requires it on every operation but the
/// public ones (so Swagger UI's "Authorize" sends the token everywhere it is
/// needed), and adds the responses the auth and limit layers can give:
/// 401/403/429 (not on the public routes) and 408 (not on the long-lived
/// streams).
struct Security;

const PUBLIC: [&str; 3] = ["/healthz", "/livez", "/metrics"];

// The shared responses (`components/responses`): name and description.
const UNAUTHORIZED: (&str, &str) = (
    "Unauthorized",
    "`unauthorized`: missing or unknown bearer token (with `WWW-Authenticate: Bearer`)",
);
const FORBIDDEN: (&str, &str) = (
    "Forbidden",
    "`forbidden`: the token may not use this subject or route",
);
const ADMIN_FORBIDDEN: (&str, &str) = (
    "AdminForbidden",
    "`forbidden`: the token lacks `admin: true`; or `admin_forbidden`: open mode, and the client is outside `admin.allowed_networks`",
);
const SOCKET_FORBIDDEN: (&str, &str) = (
    "SocketForbidden",
    "`forbidden`: the token may not subscribe to the subject; or `forbidden_origin`: a browser page from an origin not in `cors.allowed_origins`",
);
const TOO_MANY_REQUESTS: (&str, &str) = (
    "TooManyRequests",
    "`rate_limited` (with `Retry-After`) or `quota_exceeded`",
);
const TIMEOUT: (&str, &str) = (
    "Timeout",
    "`timeout`: the request did not complete within `gateway.http.request_timeout_ms`",
);
const STREAMING: [&str; 2] = ["/subscribe", "/events"];

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{Ref, Response};
        let components = doc.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "A token from `auth.tokens` (open mode: none needed). Browsers use `POST /auth/ticket` and `?ticket=` on `/subscribe` and `/events`.".into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        for (name, text) in [
            UNAUTHORIZED,
            FORBIDDEN,
            ADMIN_FORBIDDEN,
            SOCKET_FORBIDDEN,
            TOO_MANY_REQUESTS,
            TIMEOUT,
        ] {
            components
                .responses
                .insert(name.into(), Response::new(text).into());
        }
        let bearer = || vec![SecurityRequirement::new("bearer", Vec::<String>::new())];
        doc.security = Some(bearer());
        for (path, item) in doc.paths.paths.iter_mut() {
            let public = PUBLIC.contains(&path.as_str());
            let streaming = STREAMING.contains(&path.as_str());
            let admin = path.starts_with("/admin/");
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                if public {
                    op.security = Some(Vec::new());
                    continue;
                }
                op.security = Some(bearer());
                let responses = &mut op.responses.responses;
                let mut add = |status: &str, (name, _): (&str, &str)| {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| Ref::from_response_name(name).into());
                };
                add("401", UNAUTHORIZED);
                add(
                    "403",
                    match (admin, streaming) {
                        (true, _) => ADMIN_FORBIDDEN,
                        (_, true) => SOCKET_FORBIDDEN,
                        _ => FORBIDDEN,
                    },
                );
                add("429", TOO_MANY_REQUESTS);
                if !streaming {
                    add("408", TIMEOUT);
                }
            }
        }
    }
}

/// Splits the documented routes into a router and its OpenAPI document.
pub fn split(api: OpenApiRouter<AppState>) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api)
        .split_for_parts();
    // After the merge: the routes' operations exist only now.
    utoipa::Modify::modify(&Security, &mut doc);
    problems::complete(&mut doc);
    (router, doc)
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
