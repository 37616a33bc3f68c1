//! Authentication and authorization: bearer tokens with per-subject
//! permissions, browser tickets, rate limits and quotas, and the Origin
//! check for sockets and event streams.
//!
//! The whole of it is replaced on a reload ([`Auth::reloaded`]); open
//! sockets and event streams then check themselves again ([`Access`]).
//!
//! Every route but the public ones (`/healthz`, `/livez`, `/metrics`, the
//! OpenAPI document and Swagger UI) goes through [`admit`], which
//! puts the caller's [`Principal`] into the request. Handlers ask the
//! principal (`check_publish`, `check_subscribe`, `require_admin`), so one
//! piece of code decides for HTTP, batch lines, socket ops and SSE.

mod access;
mod limiter;
mod middleware;
mod permissions;
mod principal;
mod tickets;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

pub use access::{Access, Admission, Revoked};
pub use limiter::{KeyedLimiter, Limiter};
pub use middleware::{Caller, Credentials, admit};
pub use permissions::{Permissions, RESERVED, reserved_prefix};
pub use principal::{ConnectionGuard, Principal, TokenEntry};
pub use tickets::{Redeemed, TicketError, Tickets};

use crate::config::{AdminConfig, Config, CorsConfig};
use crate::error::ApiError;
use principal::sha256;

/// The gateway's authentication state: everything a reload applies to
/// who may do what, and from where.
pub struct Auth {
    tokens: Option<Vec<Arc<TokenEntry>>>,
    tickets: Arc<Tickets>,
    per_ip: Option<Arc<KeyedLimiter<IpAddr>>>,
    cors: CorsConfig,
    /// `admin.allowed_networks` (open mode's admin guard).
    admin: AdminConfig,
}

impl Auth {
    pub fn from_config(config: &Config) -> Self {
        Self::build(config, None)
    }

    /// The state for a re-read config. What clients have used carries
    /// over: a token of the same name keeps its connection count and
    /// rate-limit buckets, the per-IP buckets stay, and so do the tickets
    /// already issued (and used) while the secret's source is unchanged.
    pub fn reloaded(&self, config: &Config) -> Self {
        Self::build(config, Some(self))
    }

    fn build(config: &Config, previous: Option<&Auth>) -> Self {
        let auth = config.auth.as_ref();
        let used: HashMap<&str, &Arc<TokenEntry>> = previous
            .and_then(|p| p.tokens.as_ref())
            .into_iter()
            .flatten()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let tokens = auth.map(|a| {
            a.tokens
                .iter()
                .map(|t| {
                    let usage = used.get(t.name.as_str()).map(|old| old.usage().clone());
                    Arc::new(TokenEntry::from_config(t, usage))
                })
                .collect()
        });
        let per_ip = config.gateway.http.per_ip_rate_limit.map(|limit| {
            Arc::new(match previous.and_then(|p| p.per_ip.as_ref()) {
                Some(old) => old.with_config(limit),
                None => KeyedLimiter::new(limit, 100_000),
            })
        });
        Self {
            tokens,
            tickets: Tickets::configured(
                auth.and_then(|a| a.ticket_secret_env.as_deref()),
                Duration::from_secs(auth.map_or(30, |a| a.ticket_ttl_secs)),
                previous.map(|p| &p.tickets),
            ),
            per_ip,
            cors: config.cors.clone(),
            admin: config.admin.clone(),
        }
    }

    pub fn cors(&self) -> &CorsConfig {
        &self.cors
    }

    /// Open mode's admin guard: may a client at `ip` use `/admin`?
    pub fn admin_allows(&self, ip: IpAddr) -> bool {
        self.admin.allows(ip)
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
            let redeemed = self.tickets.redeem(&ticket).map_err(|e| {
                ApiError::Unauthorized(match e {
                    TicketError::Expired => "the ticket has expired".into(),
                    TicketError::Reused => "the ticket was already used".into(),
                    TicketError::Malformed => "invalid ticket".into(),
                })
            })?;
            return tokens
                .iter()
                .find(|t| t.name == redeemed.name && self.tickets.tag(&t.digest) == redeemed.tag)
                .cloned()
                .map(Principal::Token)
                .ok_or_else(|| {
                    ApiError::Unauthorized(
                        "the ticket's token is no longer configured (removed, or given a new secret)"
                            .into(),
                    )
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
