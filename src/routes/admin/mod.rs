//! `/admin`: JetStream stream, message and consumer management.
//!
//! In open mode only clients in `admin.allowed_networks` (loopback by
//! default) may use these routes; with `auth` configured, only tokens with
//! `admin: true`. `admin.enabled: false` removes them.

mod consumers;
mod messages;
mod streams;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use consumers::ConsumerView;
pub use messages::StoredMessage;
pub use streams::{AccountView, StreamView};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::net::ClientAddr;
use crate::state::AppState;

/// Largest admin request body (stream and consumer configs are small).
const BODY_LIMIT: usize = 256 * 1024;

/// The admin routes, without their guard (see [`guard`]).
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(streams::list_streams, streams::create_stream))
        .routes(routes!(
            streams::get_stream,
            streams::update_stream,
            streams::delete_stream
        ))
        .routes(routes!(streams::purge_stream))
        .routes(routes!(streams::account))
        .routes(routes!(messages::get_message, messages::delete_message))
        .routes(routes!(messages::last_message))
        .routes(routes!(
            consumers::list_consumers,
            consumers::create_consumer
        ))
        .routes(routes!(consumers::get_consumer, consumers::delete_consumer))
}

/// Puts the admin routes behind the admin check (inside the group's
/// authentication layer, which supplies the caller).
pub fn guard(routes: Router<AppState>, state: AppState) -> Router<AppState> {
    routes.layer(axum::middleware::from_fn_with_state(
        state,
        only_allowed_networks,
    ))
}

/// Open mode: only `admin.allowed_networks`. With tokens: an admin token.
async fn only_allowed_networks(
    State(state): State<AppState>,
    ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
    Caller(caller): Caller,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let auth = state.auth.load();
    if auth.is_open() {
        if !auth.admin_allows(peer.ip()) {
            tracing::warn!(%peer, path = %request.uri().path(), "admin request from a disallowed network");
            return Err(ApiError::AdminForbidden);
        }
    } else {
        caller.require_admin()?;
    }
    Ok(next.run(request).await)
}
