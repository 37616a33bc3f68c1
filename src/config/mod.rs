//! Typed configuration, loaded from the seed-compatible YAML file.
//!
//! Loading is three steps: deserialize (every error names the key path),
//! apply environment overrides, then [`Config::validate`] the cross-field rules
//! serde cannot express. Keys the gateway does not use are collected and
//! reported once, so a seed file with `lsr_subscriber:` or `monitoring:` loads
//! unchanged but nobody is surprised that those settings do nothing.

mod auth;
mod consumers;
mod gateway;
mod nats;
mod reload;
mod streams;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use auth::{AuthConfig, CorsConfig, PermissionConfig, RateLimitConfig, TokenConfig};
pub use consumers::{AckPolicySpec, ConsumerSpec, DeliverPolicySpec, ReplayPolicySpec};
pub use gateway::{
    GatewayConfig, Http2Settings, HttpSettings, JetStreamSettings, PublishSettings,
    RequestSettings, SlowConsumerPolicy, TracingSettings, WebSocketSettings,
};
pub use nats::{NatsClientConfig, NatsTls, NatsUrls};
pub use reload::APPLIED_ON_RELOAD;
pub use streams::{DiscardPolicy, RepublishSpec, RetentionPolicy, StorageType, StreamSpec};

/// Environment variable that replaces `nats_client.nats_url`.
pub const NATS_URL_ENV: &str = "MARKETPRISM_NATS_URL";

/// Default location of the config file, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/unified_message_broker.yaml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    pub service: ServiceConfig,
    pub nats_client: NatsClientConfig,
    /// Declared JetStream streams, keyed by stream name (insertion order kept).
    pub streams: indexmap::IndexMap<String, StreamSpec>,
    /// Declared durable consumers, keyed by durable name.
    pub consumers: indexmap::IndexMap<String, ConsumerSpec>,
    pub logging: LoggingConfig,
    pub gateway: GatewayConfig,
    pub admin: AdminConfig,
    /// Token authentication; `None` runs the gateway open.
    pub auth: Option<AuthConfig>,
    pub cors: CorsConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct ServiceConfig {
    pub name: String,
    pub version: String,
    pub environment: String,
    pub host: String,
    pub port: u16,
    /// Serve HTTPS with this certificate and key (PEM).
    pub tls: Option<ServiceTls>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            name: "unified-message-broker".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            environment: "production".into(),
            host: "0.0.0.0".into(),
            port: 8086,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct LoggingConfig {
    /// `trace|debug|info|warn|error`, any case (the seed writes `INFO`).
    pub level: String,
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Json,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct AdminConfig {
    /// `false` removes every `/admin` route.
    pub enabled: bool,
    /// Client networks allowed to use `/admin` (default: loopback only).
    pub allowed_networks: Vec<ipnet::IpNet>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_networks: vec![
                "127.0.0.0/8".parse().expect("valid network"),
                "::1/128".parse().expect("valid network"),
            ],
        }
    }
}

impl AdminConfig {
    /// Whether a client at `ip` may use the admin routes.
    pub fn allows(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allowed_networks.iter().any(|net| net.contains(&ip))
    }
}

/// A config that could not be loaded; the message names the file and key path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// A loaded config plus the keys it contained that the gateway ignores.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub unused_keys: Vec<String>,
}

/// A validation failure: the key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Reads, parses, applies env overrides to and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let env_url = std::env::var(NATS_URL_ENV).ok();
        Self::from_yaml(&text, env_url.as_deref()).map_err(|e| e.at(path))
    }

    /// Parses YAML text; `env_nats_url` is the value of [`NATS_URL_ENV`], if set.
    pub fn from_yaml(text: &str, env_nats_url: Option<&str>) -> Result<Loaded, Invalid> {
        let mut unused_keys = Vec::new();
        let de = yaml_serde::Deserializer::from_str(text);
        let mut note_unused = |path: serde_ignored::Path<'_>| unused_keys.push(path.to_string());
        let de = serde_ignored::Deserializer::new(de, &mut note_unused);
        let mut config: Config = match serde_path_to_error::deserialize(de) {
            Ok(config) => config,
            Err(err) => {
                let key = err.path().to_string();
                let key = if key == "." { "(document)".into() } else { key };
                let message = err.into_inner().to_string();
                // yaml_serde already prefixes its message with the path.
                let message = message
                    .strip_prefix(&format!("{key}: "))
                    .map(str::to_owned)
                    .unwrap_or(message);
                return Err(Invalid::new(key, message));
            }
        };
        if let Some(url) = env_nats_url.filter(|u| !u.trim().is_empty()) {
            config.nats_client.nats_url = NatsUrls::parse_list(url)
                .map_err(|msg| Invalid::new(format!("{NATS_URL_ENV} (env)"), msg))?;
        }
        config.validate()?;
        Ok(Loaded {
            config,
            unused_keys,
        })
    }

    /// Cross-field rules that serde's types cannot express.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.service.host.trim().is_empty() {
            return Err(Invalid::new("service.host", "must not be empty"));
        }
        if !matches!(
            self.logging.level.to_ascii_lowercase().as_str(),
            "trace" | "debug" | "info" | "warn" | "warning" | "error"
        ) {
            return Err(Invalid::new(
                "logging.level",
                format!(
                    "unknown level {:?}; expected trace, debug, info, warn or error",
                    self.logging.level
                ),
            ));
        }
        if let Some(tls) = &self.service.tls {
            for (key, path) in [
                ("service.tls.cert_file", &tls.cert_file),
                ("service.tls.key_file", &tls.key_file),
            ] {
                if !path.is_file() {
                    return Err(Invalid::new(
                        key,
                        format!("{} is not a readable file", path.display()),
                    ));
                }
            }
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        self.nats_client.validate()?;
        streams::validate_all(&self.streams)?;
        consumers::validate_all(&self.consumers)?;
        self.gateway.validate()
    }

    /// The socket address to listen on, from `service.host` and `service.port`.
    pub fn listen_addr(&self) -> String {
        if self.service.host.contains(':') {
            format!("[{}]:{}", self.service.host, self.service.port)
        } else {
            format!("{}:{}", self.service.host, self.service.port)
        }
    }
}

impl Invalid {
    fn at(self, path: &Path) -> ConfigError {
        ConfigError::Invalid {
            path: path.to_owned(),
            key: self.key,
            message: self.message,
        }
    }
}

#[cfg(test)]
mod tests;
