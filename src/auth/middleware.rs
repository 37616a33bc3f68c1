//! The auth middleware and the handler extractor for its result.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;

use super::{Access, Admission, Principal};
use crate::error::ApiError;
use crate::net::ClientAddr;
use crate::state::AppState;

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
/// extractor); sockets and event streams also get their [`Access`].
/// Called by the router's per-request middleware.
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
        let streaming = accepts_ticket(path);
        // Subscribed before authenticating: a socket re-checks itself on
        // every reload after the config it was admitted with.
        let reloads = state.auth.watch();
        let auth = reloads.borrow().clone();
        let principal =
            auth.authenticate(request.headers(), request.uri().query(), ip, streaming)?;
        principal.charge(1, 0)?;
        if streaming {
            let admission = Admission::new(ip, request.headers());
            request
                .extensions_mut()
                .insert(Access::new(admission, reloads));
        }
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
