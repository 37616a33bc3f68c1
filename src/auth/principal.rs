//! Who is calling, and what they may do: a configured token or, in open
//! mode, an anonymous client limited per IP.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use sha2::{Digest, Sha256};

use super::{KeyedLimiter, Limiter, Permissions};
use crate::config::{RateLimitConfig, TokenConfig};
use crate::error::ApiError;
use crate::subject::{Subject, SubjectPattern};

/// A configured token, resolved from the config (again on every reload).
pub struct TokenEntry {
    pub name: String,
    pub(super) digest: [u8; 32],
    publish: Permissions,
    subscribe: Permissions,
    admin: bool,
    rate_limit: Option<RateLimitConfig>,
    max_connections: Option<usize>,
    max_subscriptions: Option<usize>,
    usage: Arc<Usage>,
}

/// What a token has used: its open connections and its rate-limit buckets.
/// Shared by every entry of the same name across reloads, so a reload
/// neither frees connection slots nor refills buckets; the limits, which
/// come from the entry, apply to it at once.
#[derive(Default)]
pub(super) struct Usage {
    connections: AtomicUsize,
    limiter: Limiter,
}

impl TokenEntry {
    /// `usage` is the previous entry's of the same name, if any.
    pub(super) fn from_config(config: &TokenConfig, usage: Option<Arc<Usage>>) -> Self {
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
            rate_limit: config.rate_limit,
            max_connections: config.max_connections,
            max_subscriptions: config.max_subscriptions,
            usage: usage.unwrap_or_default(),
        }
    }

    pub(super) fn usage(&self) -> &Arc<Usage> {
        &self.usage
    }
}

pub(super) fn sha256(bytes: &[u8]) -> [u8; 32] {
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

    /// What the caller may publish to and subscribe to. Open mode's
    /// "everything" is built once, not on every publish.
    fn rights(&self) -> (&Permissions, &Permissions) {
        static EVERYTHING: LazyLock<Permissions> = LazyLock::new(Permissions::everything);
        match self {
            Principal::Anonymous { .. } => (&EVERYTHING, &EVERYTHING),
            Principal::Token(t) => (&t.publish, &t.subscribe),
        }
    }

    pub fn check_publish(&self, subject: &Subject) -> Result<(), ApiError> {
        if self.rights().0.allows_publish(subject) {
            return Ok(());
        }
        Err(self.forbidden("publish to", subject))
    }

    pub fn check_subscribe(&self, pattern: &SubjectPattern) -> Result<(), ApiError> {
        if self.rights().1.allows_subscribe(pattern) {
            return Ok(());
        }
        Err(self.forbidden("subscribe to", pattern))
    }

    /// Whether a message on `subject` lies inside the caller's subscribe
    /// grant (what a reload that narrowed it checks queued messages with).
    pub fn may_receive(&self, subject: &str) -> bool {
        SubjectPattern::parse(subject).is_ok_and(|s| self.rights().1.allows_subscribe(&s))
    }

    /// What a ticket issued to this caller is bound to: the token's digest.
    pub fn credential(&self) -> &[u8] {
        match self {
            Principal::Token(t) => &t.digest,
            Principal::Anonymous { .. } => &[],
        }
    }

    fn forbidden(&self, action: &str, what: impl std::fmt::Display) -> ApiError {
        ApiError::Forbidden(format!("{} may not {action} {what}", self.name()))
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
                .rate_limit
                .as_ref()
                .map_or(Ok(()), |c| t.usage.limiter.charge(c, requests, bytes)),
        };
        result.map_err(|retry_after| ApiError::RateLimited { retry_after })
    }

    /// Takes one of the token's connection slots until the guard drops.
    /// Counted with or without a limit, so a limit a reload sets applies to
    /// the connections already open.
    pub fn open_connection(&self) -> Result<ConnectionGuard, ApiError> {
        let Principal::Token(t) = self else {
            return Ok(ConnectionGuard(None));
        };
        let max = t.max_connections.unwrap_or(usize::MAX);
        let taken = t
            .usage
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(ConnectionGuard(Some(t.usage.clone()))),
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
}

/// Frees a token connection slot when dropped.
pub struct ConnectionGuard(Option<Arc<Usage>>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(usage) = &self.0 {
            usage.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
