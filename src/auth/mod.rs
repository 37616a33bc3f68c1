//! Authentication and authorization: bearer tokens with per-subject
//! permissions, browser tickets, rate limits and quotas, and the Origin
//! check for sockets and event streams.
//!
//! Every route but the public ones (`/healthz`, `/livez`, `/metrics`, the
//! OpenAPI document and Swagger UI) goes through [`authenticate`], which
//! puts the caller's [`Principal`] into the request. Handlers ask the
//! principal (`check_publish`, `check_subscribe`, `require_admin`), so one
//! piece of code decides for HTTP, batch lines, socket ops and SSE.

mod limiter;
mod middleware;
mod permissions;
mod principal;
mod tickets;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

pub use limiter::{KeyedLimiter, Limiter};
pub use middleware::{Caller, admit, check_origin};
pub use permissions::{Permissions, RESERVED, reserved_prefix};
pub use principal::{ConnectionGuard, Principal, TokenEntry};
pub use tickets::{TicketError, Tickets};

use crate::config::Config;
use crate::error::ApiError;
use principal::sha256;

/// The gateway's authentication state.
pub struct Auth {
    tokens: Option<Vec<Arc<TokenEntry>>>,
    tickets: Arc<Tickets>,
    per_ip: Option<Arc<KeyedLimiter<IpAddr>>>,
}

impl Auth {
    pub fn from_config(config: &Config) -> Self {
        let auth = config.auth.as_ref();
        let secret = auth
            .and_then(|a| a.ticket_secret_env.as_ref())
            .and_then(|var| std::env::var(var).ok())
            .map(String::into_bytes)
            .unwrap_or_else(|| rand::random::<[u8; 32]>().to_vec());
        let ttl = Duration::from_secs(auth.map_or(30, |a| a.ticket_ttl_secs));
        Self {
            tokens: auth.map(|a| {
                a.tokens
                    .iter()
                    .map(|t| Arc::new(TokenEntry::from_config(t)))
                    .collect()
            }),
            tickets: Arc::new(Tickets::new(secret, ttl)),
            per_ip: config
                .gateway
                .http
                .per_ip_rate_limit
                .map(|limit| Arc::new(KeyedLimiter::new(limit, 100_000))),
        }
    }

    /// The tokens of a re-read config; tickets already issued (and their
    /// secret) and the per-IP buckets carry over.
    pub fn reloaded(&self, config: &Config) -> Self {
        Self {
            tickets: self.tickets.clone(),
            per_ip: self.per_ip.clone(),
            ..Self::from_config(config)
        }
    }

    /// True without an `auth` section.
    pub fn is_open(&self) -> bool {
        self.tokens.is_none()
    }

    pub fn tickets(&self) -> Arc<Tickets> {
        self.tickets.clone()
    }

    /// Identifies the caller from `Authorization: Bearer`, or (where
    /// `ticket_ok`) a `?ticket=`. Tokens in query strings are refused.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        ip: IpAddr,
        ticket_ok: bool,
    ) -> Result<Principal, ApiError> {
        let params = || form_urlencoded::parse(query.unwrap_or("").as_bytes());
        if params().any(|(k, _)| matches!(k.as_ref(), "token" | "access_token" | "bearer")) {
            return Err(ApiError::Unauthorized(
                "tokens in URLs are refused (they end up in logs); use Authorization: Bearer, or POST /auth/ticket and ?ticket=".into(),
            ));
        }
        let Some(tokens) = &self.tokens else {
            return Ok(Principal::Anonymous {
                ip,
                limiter: self.per_ip.clone(),
            });
        };
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let presented = value
                .to_str()
                .ok()
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    ApiError::Unauthorized("expected Authorization: Bearer <token>".into())
                })?;
            return find(tokens, presented)
                .map(Principal::Token)
                .ok_or_else(|| ApiError::Unauthorized("unknown token".into()));
        }
        if ticket_ok && let Some((_, ticket)) = params().find(|(k, _)| k == "ticket") {
            let name = self.tickets.redeem(&ticket).map_err(|e| {
                ApiError::Unauthorized(match e {
                    TicketError::Expired => "the ticket has expired".into(),
                    TicketError::Reused => "the ticket was already used".into(),
                    TicketError::Malformed => "invalid ticket".into(),
                })
            })?;
            return tokens
                .iter()
                .find(|t| t.name == name)
                .cloned()
                .map(Principal::Token)
                .ok_or_else(|| {
                    ApiError::Unauthorized("the ticket's token is no longer configured".into())
                });
        }
        Err(ApiError::Unauthorized("missing bearer token".into()))
    }
}

/// Compares the presented token's digest with every configured one in
/// constant time, without stopping at the first match.
fn find(tokens: &[Arc<TokenEntry>], presented: &str) -> Option<Arc<TokenEntry>> {
    let digest = sha256(presented.as_bytes());
    let mut found = None;
    for token in tokens {
        if bool::from(token.digest.ct_eq(&digest)) {
            found = Some(token.clone());
        }
    }
    found
}
