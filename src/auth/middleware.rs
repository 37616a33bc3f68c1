//! The auth middleware and the handler extractor for its result.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;

use super::{Access, Admission, Auth, Principal};
use crate::error::ApiError;
use crate::net::ClientAddr;
use crate::util::Swap;

/// What a route accepts as proof of its caller; the router's policy
/// groups choose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// Nothing: the caller is anonymous (health, documents, the console's
    /// files, which hold no data: the console asks for a token when the API
    /// answers 401).
    None,
    /// A bearer token (open mode: none).
    Token,
    /// A bearer token or a `?ticket=` (browser sockets and event streams).
    TokenOrTicket,
}

/// Authenticates the caller, charges one request against its rate limit,
/// and makes its [`Principal`] available to handlers (the `Caller`
/// extractor); sockets and event streams also get their [`Access`].
/// Called by the router's per-request middleware.
pub fn admit(
    auth: &Swap<Auth>,
    request: &mut Request,
    credentials: Credentials,
) -> Result<(), ApiError> {
    // No peer when the router is driven without a socket (tests, tools).
    let ip = request
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(ClientAddr(p))| {
            p.ip()
        });
    let principal = if credentials == Credentials::None {
        Principal::Anonymous { ip, limiter: None }
    } else {
        let streaming = credentials == Credentials::TokenOrTicket;
        // Subscribed before authenticating: a socket re-checks itself on
        // every reload after the config it was admitted with.
        let reloads = auth.watch();
        let auth = reloads.borrow().clone();
        let principal =
            auth.authenticate(request.headers(), request.uri().query(), ip, streaming)?;
        principal.charge(1, 0)?;
        if streaming {
            let admission = Admission::new(ip, request);
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
