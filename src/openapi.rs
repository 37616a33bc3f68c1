//! The OpenAPI 3.1 document's common parts: info, tags, shared responses,
//! problem bodies and examples. The routes assemble the document
//! (`routes::document`); `openapi/openapi.json` in the repository is it, and
//! a test fails when they drift (regenerate with
//! `cargo run -q -- openapi > openapi/openapi.json`).

pub mod bodies;
mod parameters;
mod problems;

use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::Operation;

use crate::error::Problem;

#[derive(utoipa::OpenApi)]
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

/// Responses many operations share. The constants are the
/// `components/responses` the auth, limit and timeout layers can give (name
/// and description; which operation gets which follows from its route
/// group, `routes::Policy::document`). The types are error responses the
/// handlers declare, inlined: `responses((status = 200, ...), Unavailable)`.
/// Their problem bodies come from the codes they name (`problems`).
pub mod responses {
    /// 503: NATS or its JetStream API is unreachable.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 503,
        description = "`nats_unavailable` or `jetstream_unavailable`"
    )]
    pub struct Unavailable;

    /// 400: a stream or consumer name in the path breaks the naming rule.
    #[derive(utoipa::IntoResponses)]
    #[response(status = 400, description = "`invalid_name`")]
    pub struct InvalidName;

    /// 404: the stream in the path does not exist.
    #[derive(utoipa::IntoResponses)]
    #[response(status = 404, description = "`stream_not_found`")]
    pub struct StreamNotFound;

    /// 404: the stream or the message in the path does not exist.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 404,
        description = "`stream_not_found` or `message_not_found`"
    )]
    pub struct MessageNotFound;

    /// 404: the stream or the consumer in the path does not exist.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 404,
        description = "`stream_not_found` or `consumer_not_found`"
    )]
    pub struct ConsumerNotFound;

    /// 415: a JSON body sent with another media type.
    #[derive(utoipa::IntoResponses)]
    #[response(status = 415, description = "`unsupported_media_type`")]
    pub struct UnsupportedMediaType;

    pub const UNAUTHORIZED: (&str, &str) = (
        "Unauthorized",
        "`unauthorized`: missing or unknown bearer token (with `WWW-Authenticate: Bearer`)",
    );
    pub const FORBIDDEN: (&str, &str) = (
        "Forbidden",
        "`forbidden`: the token may not use this subject or route",
    );
    pub const ADMIN_FORBIDDEN: (&str, &str) = (
        "AdminForbidden",
        "`forbidden`: the token lacks `admin: true`; or `admin_forbidden`: open mode, and the client is outside `admin.allowed_networks`",
    );
    pub const SOCKET_FORBIDDEN: (&str, &str) = (
        "SocketForbidden",
        "`forbidden`: the token may not subscribe to the subject; or `forbidden_origin`: a browser page from an origin not in `cors.allowed_origins`",
    );
    pub const TOO_MANY_REQUESTS: (&str, &str) = (
        "TooManyRequests",
        "`rate_limited` (with `Retry-After`) or `quota_exceeded`",
    );
    pub const TIMEOUT: (&str, &str) = (
        "Timeout",
        "`timeout`: the request did not complete within `gateway.http.request_timeout_ms`",
    );
}

/// Declares the bearer scheme, requires it by default (so Swagger UI's
/// "Authorize" sends the token everywhere it is needed; the public
/// operations say they need none), and declares the shared responses.
fn declare_security(doc: &mut OpenApi) {
    use utoipa::openapi::Response;
    use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
    let components = doc.components.get_or_insert_with(Default::default);
    let mut bearer = Http::new(HttpAuthScheme::Bearer);
    bearer.description = Some(
        "A token from `auth.tokens` (open mode: none needed). Browsers use `POST /auth/ticket` and `?ticket=` on `/subscribe` and `/events`.".into(),
    );
    components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
    for (name, text) in [
        responses::UNAUTHORIZED,
        responses::FORBIDDEN,
        responses::ADMIN_FORBIDDEN,
        responses::SOCKET_FORBIDDEN,
        responses::TOO_MANY_REQUESTS,
        responses::TIMEOUT,
    ] {
        components
            .responses
            .insert(name.into(), Response::new(text).into());
    }
    doc.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
}

/// The complete document from the routes' operations (each already
/// carrying its group's policy): info, tags, shared components, and the
/// problem+json bodies of every error response.
pub fn complete(operations: OpenApi) -> OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(operations);
    declare_security(&mut doc);
    problems::complete(&mut doc);
    parameters::drop_null_types(&mut doc);
    doc
}

/// Every operation of the document.
pub fn operations_mut(doc: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
    })
}
