//! `auth:`, `cors:` and `limits:`: who may do what, from where, how often.
//! Without an `auth` section the gateway runs open (and says so loudly).

use serde::Deserialize;

use super::Invalid;
use crate::subject::SubjectPattern;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub tokens: Vec<TokenConfig>,
    /// Lifetime of a `POST /auth/ticket` ticket, in seconds.
    pub ticket_ttl_secs: u64,
    /// Env var holding the secret that signs tickets. Give every instance
    /// behind one load balancer the same secret so a ticket from one works
    /// on another; unset, each process makes its own.
    pub ticket_secret_env: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            ticket_ttl_secs: 30,
            ticket_secret_env: None,
        }
    }
}

/// One client credential and what it may do.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Logged instead of the token.
    pub name: String,
    /// Hex SHA-256 of the token (the file then holds no secret).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Name of an env var holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub publish: PermissionConfig,
    #[serde(default)]
    pub subscribe: PermissionConfig,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Most WebSocket/SSE connections this token may hold at once.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Most subscriptions per connection for this token.
    #[serde(default)]
    pub max_subscriptions: Option<usize>,
}

/// Subject patterns; deny wins, and an empty allow list allows nothing.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PermissionConfig {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Published payload bytes per second.
    #[serde(default)]
    pub bytes_per_second: Option<f64>,
}

/// `cors:`: browser origins allowed to call the API and open sockets/streams.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`https://dash.example.com`); `*` allows any.
    pub allowed_origins: Vec<String>,
}

impl CorsConfig {
    pub fn allows(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == "*" || o == origin)
    }
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let mut names = std::collections::HashSet::new();
        for (i, token) in self.tokens.iter().enumerate() {
            let key = format!("auth.tokens[{i}]");
            if token.name.trim().is_empty() {
                return Err(Invalid::new(format!("{key}.name"), "must not be empty"));
            }
            if !names.insert(token.name.as_str()) {
                return Err(Invalid::new(
                    format!("{key}.name"),
                    format!("{:?} is used twice", token.name),
                ));
            }
            match (&token.token_sha256, &token.token_env) {
                (Some(hex), None) => {
                    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(Invalid::new(
                            format!("{key}.token_sha256"),
                            "must be 64 hex digits (sha256sum of the token)",
                        ));
                    }
                }
                (None, Some(var)) => {
                    if std::env::var(var).map(|v| v.is_empty()).unwrap_or(true) {
                        return Err(Invalid::new(
                            format!("{key}.token_env"),
                            format!("environment variable {var} is not set"),
                        ));
                    }
                }
                _ => {
                    return Err(Invalid::new(
                        key,
                        "give exactly one of token_sha256 and token_env",
                    ));
                }
            }
            for (what, perms) in [("publish", &token.publish), ("subscribe", &token.subscribe)] {
                for (list, patterns) in [("allow", &perms.allow), ("deny", &perms.deny)] {
                    for (j, p) in patterns.iter().enumerate() {
                        SubjectPattern::parse(p).map_err(|e| {
                            Invalid::new(format!("{key}.{what}.{list}[{j}]"), e.to_string())
                        })?;
                    }
                }
            }
            if let Some(limit) = token.rate_limit {
                for (field, v) in [
                    ("requests_per_second", limit.requests_per_second),
                    ("bytes_per_second", limit.bytes_per_second),
                ] {
                    if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                        return Err(Invalid::new(
                            format!("{key}.rate_limit.{field}"),
                            "must be > 0",
                        ));
                    }
                }
            }
        }
        if self.ticket_ttl_secs == 0 || self.ticket_ttl_secs > 3600 {
            return Err(Invalid::new(
                "auth.ticket_ttl_secs",
                "must be between 1 and 3600",
            ));
        }
        if let Some(var) = &self.ticket_secret_env
            && std::env::var(var).map(|v| v.len() < 16).unwrap_or(true)
        {
            return Err(Invalid::new(
                "auth.ticket_secret_env",
                format!("environment variable {var} must hold at least 16 characters"),
            ));
        }
        Ok(())
    }
}
