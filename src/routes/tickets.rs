//! `POST /auth/ticket`: a short-lived, single-use ticket for a browser
//! socket or event stream (browsers cannot set `Authorization` there).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Caller, Principal};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Ticket {
    /// Pass as `?ticket=` on `/subscribe` or `/events`; valid once.
    pub ticket: String,
    /// Seconds until the ticket expires.
    pub expires_in: u64,
}

/// Trade the bearer token for a one-use ticket.
#[utoipa::path(
    post,
    path = "/auth/ticket",
    tag = "auth",
    responses(
        (status = 200, description = "A ticket", body = Ticket),
    )
)]
pub async fn issue(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Ticket>, ApiError> {
    let name = match &caller {
        Principal::Token(t) => t.name.clone(),
        // Open mode: sockets need no ticket, but a client written for
        // token mode still works.
        Principal::Anonymous { .. } => "anonymous".into(),
    };
    let tickets = state.auth.load().tickets();
    Ok(Json(Ticket {
        ticket: tickets.issue(&name, caller.credential()),
        expires_in: tickets.ttl().as_secs(),
    }))
}
