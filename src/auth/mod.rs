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
mod permissions;
mod tickets;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use limiter::{KeyedLimiter, Limiter};
pub use permissions::{Permissions, RESERVED, reserved_prefix};
pub use tickets::{TicketError, Tickets};

use crate::app::AppState;
use crate::config::{Config, CorsConfig, TokenConfig};
use crate::error::ApiError;
use crate::net::ClientAddr;
use crate::subject::{Subject, SubjectPattern};

/// A configured token, resolved at startup.
pub struct TokenEntry {
    pub name: String,
    digest: [u8; 32],
    publish: Permissions,
    subscribe: Permissions,
    admin: bool,
    limiter: Option<Limiter>,
    max_connections: Option<usize>,
    max_subscriptions: Option<usize>,
    connections: AtomicUsize,
}

impl TokenEntry {
    fn from_config(config: &TokenConfig) -> Self {
        let digest = match (&config.token_sha256, &config.token_env) {
            (Some(hex), _) => {
                let mut digest = [0u8; 32];
                // Validated as 64 hex digits when the config was loaded.
                hex::decode_to_slice(hex, &mut digest).expect("validated hex digest");
                digest
            }
            (None, Some(var)) => sha256(std::env::var(var).unwrap_or_default().as_bytes()),
            (None, None) => [0u8; 32],
        };
        Self {
            name: config.name.clone(),
            digest,
            publish: Permissions::from_config(&config.publish),
            subscribe: Permissions::from_config(&config.subscribe),
            admin: config.admin,
            limiter: config.rate_limit.map(Limiter::new),
            max_connections: config.max_connections,
            max_subscriptions: config.max_subscriptions,
            connections: AtomicUsize::new(0),
        }
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Who is calling.
#[derive(Clone)]
pub enum Principal {
    /// Open mode (no `auth` section): anyone, limited per client IP.
    Anonymous {
        ip: IpAddr,
        limiter: Option<Arc<KeyedLimiter<IpAddr>>>,
    },
    Token(Arc<TokenEntry>),
}

impl Principal {
    /// The name logged for this caller (never the token).
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous { .. } => "anonymous",
            Principal::Token(t) => &t.name,
        }
    }

    fn permissions(&self) -> (Permissions, Permissions) {
        match self {
            Principal::Anonymous { .. } => (Permissions::everything(), Permissions::everything()),
            Principal::Token(t) => (t.publish.clone(), t.subscribe.clone()),
        }
    }

    pub fn check_publish(&self, subject: &Subject) -> Result<(), ApiError> {
        let allowed = match self {
            Principal::Anonymous { .. } => Permissions::everything().allows_publish(subject),
            Principal::Token(t) => t.publish.allows_publish(subject),
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{} may not publish to {subject}",
                self.name()
            )))
        }
    }

    pub fn check_subscribe(&self, pattern: &SubjectPattern) -> Result<(), ApiError> {
        let allowed = match self {
            Principal::Anonymous { .. } => Permissions::everything().allows_subscribe(pattern),
            Principal::Token(t) => t.subscribe.allows_subscribe(pattern),
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{} may not subscribe to {pattern}",
                self.name()
            )))
        }
    }

    /// Token mode only: the token must have `admin: true`.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Principal::Token(t) if t.admin => Ok(()),
            Principal::Token(t) => Err(ApiError::Forbidden(format!(
                "{} is not an admin token",
                t.name
            ))),
            Principal::Anonymous { .. } => Err(ApiError::AdminForbidden),
        }
    }

    /// Charges requests and published bytes against the caller's rate limit.
    pub fn charge(&self, requests: u32, bytes: u64) -> Result<(), ApiError> {
        let result = match self {
            Principal::Anonymous {
                ip,
                limiter: Some(l),
            } => l.charge(ip, requests, bytes),
            Principal::Anonymous { limiter: None, .. } => Ok(()),
            Principal::Token(t) => t
                .limiter
                .as_ref()
                .map_or(Ok(()), |l| l.charge(requests, bytes)),
        };
        result.map_err(|retry_after| ApiError::RateLimited { retry_after })
    }

    /// Takes one of the token's connection slots until the guard drops.
    pub fn open_connection(&self) -> Result<ConnectionGuard, ApiError> {
        let Principal::Token(t) = self else {
            return Ok(ConnectionGuard(None));
        };
        let Some(max) = t.max_connections else {
            return Ok(ConnectionGuard(None));
        };
        let taken = t
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(ConnectionGuard(Some(t.clone()))),
            Err(_) => Err(ApiError::QuotaExceeded(format!(
                "{} may hold at most {max} connections",
                t.name
            ))),
        }
    }

    /// The caller's own subscription limit per connection, if any.
    pub fn max_subscriptions(&self) -> Option<usize> {
        match self {
            Principal::Token(t) => t.max_subscriptions,
            Principal::Anonymous { .. } => None,
        }
    }

    /// Both permission sets (publish, subscribe), for tests and docs.
    pub fn describe(&self) -> (Permissions, Permissions) {
        self.permissions()
    }
}

/// Frees a token connection slot when dropped.
pub struct ConnectionGuard(Option<Arc<TokenEntry>>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

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

/// Routes reachable without a token.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/metrics" | "/openapi.json")
        || path == "/docs"
        || path.starts_with("/docs/")
}

/// Routes that accept a `?ticket=` (browser sockets and event streams).
fn accepts_ticket(path: &str) -> bool {
    matches!(path, "/subscribe" | "/events")
}

/// Middleware: authenticates the caller, charges one request against its
/// rate limit, and makes its [`Principal`] available to handlers.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
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
    Ok(next.run(request).await)
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
