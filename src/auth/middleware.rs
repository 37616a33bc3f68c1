//! The auth middleware, the handler extractor for its result, and the
//! Origin check for sockets and event streams.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::Principal;
use crate::app::AppState;
use crate::config::CorsConfig;
use crate::error::ApiError;
use crate::net::ClientAddr;

/// Routes reachable without a token. The console's files hold no data:
/// the app asks for a token when the API answers 401.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/livez" | "/metrics" | "/openapi.json" | "/asyncapi.json"
    ) || path == "/docs"
        || path.starts_with("/docs/")
        || path == "/console"
        || path.starts_with("/console/")
}

/// Routes that accept a `?ticket=` (browser sockets and event streams).
fn accepts_ticket(path: &str) -> bool {
    matches!(path, "/subscribe" | "/events")
}

/// Authenticates the caller, charges one request against its rate limit,
/// and makes its [`Principal`] available to handlers (the `Caller`
/// extractor). Called by the router's per-request middleware.
pub fn admit(state: &AppState, request: &mut Request) -> Result<(), ApiError> {
    // No peer when the router is driven without a socket (tests, tools).
    let ip = request
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(ClientAddr(p))| {
            p.ip()
        });
    let path = request.uri().path();
    let principal = if is_public(path) {
        Principal::Anonymous { ip, limiter: None }
    } else {
        let principal = state.auth.load().authenticate(
            request.headers(),
            request.uri().query(),
            ip,
            accepts_ticket(path),
        )?;
        principal.charge(1, 0)?;
        principal
    };
    tracing::Span::current().record("caller", principal.name());
    request.extensions_mut().insert(principal);
    Ok(())
}

/// Handler argument: the authenticated caller.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::internal("no principal: the auth middleware did not run"))
    }
}

/// Cross-site WebSocket hijacking guard: a browser request to a socket or
/// event stream must come from the gateway's own origin or an allowed one.
/// Requests without `Origin` (non-browser clients) pass.
pub fn check_origin(headers: &HeaderMap, cors: &CorsConfig) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let same_origin = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| {
            origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest == host)
        });
    if same_origin || cors.allows(origin) {
        Ok(())
    } else {
        Err(ApiError::ForbiddenOrigin(
            origin.chars().take(200).collect(),
        ))
    }
}
