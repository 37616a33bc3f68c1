//! `nats_client:`: where and how the gateway connects to NATS.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::Invalid;

#[derive(Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct NatsClientConfig {
    /// One URL, a comma-separated list, or a YAML list of cluster seeds.
    pub nats_url: NatsUrls,
    pub client_name: String,
    /// Consecutive failed (re)connect attempts before the gateway gives up and
    /// exits non-zero so its supervisor restarts it; `-1` retries forever.
    pub max_reconnect_attempts: i64,
    /// Seconds between reconnect attempts (fractions allowed).
    pub reconnect_time_wait: f64,
    /// `true`: declared streams get exactly the configured subjects;
    /// `false`: missing subjects are only added.
    pub strict_subjects: bool,
    /// Seconds one TCP/TLS connect attempt may take.
    pub connect_timeout: f64,
    /// Seconds between client PINGs; a dead peer is noticed after two missed.
    pub ping_interval: f64,
    /// User name for user/password authentication.
    pub user: Option<String>,
    /// Password (prefer `password_env` to keep it out of the file).
    pub password: Option<String>,
    /// Env var holding the password.
    pub password_env: Option<String>,
    /// Token authentication (prefer `token_env`).
    pub token: Option<String>,
    /// Env var holding the token.
    pub token_env: Option<String>,
    /// File holding an NKey seed (`SU...`).
    pub nkey_seed_file: Option<std::path::PathBuf>,
    /// A `.creds` file (JWT + NKey seed, as `nsc` writes them).
    pub creds_file: Option<std::path::PathBuf>,
    pub tls: NatsTls,
}

/// TLS toward NATS.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NatsTls {
    /// Require TLS even if the URL says `nats://`.
    pub required: bool,
    /// CA certificate(s) to trust, PEM.
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mutual TLS, with `key_file`.
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
}

impl Default for NatsClientConfig {
    fn default() -> Self {
        Self {
            nats_url: NatsUrls(vec!["nats://127.0.0.1:4222".into()]),
            client_name: "unified-message-broker".into(),
            max_reconnect_attempts: -1,
            reconnect_time_wait: 2.0,
            strict_subjects: true,
            connect_timeout: 5.0,
            ping_interval: 10.0,
            user: None,
            password: None,
            password_env: None,
            token: None,
            token_env: None,
            nkey_seed_file: None,
            creds_file: None,
            tls: NatsTls::default(),
        }
    }
}

impl NatsClientConfig {
    pub fn reconnect_wait(&self) -> Duration {
        Duration::from_secs_f64(self.reconnect_time_wait)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.connect_timeout)
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs_f64(self.ping_interval)
    }

    /// The password, from the file or the environment.
    pub fn password(&self) -> Option<String> {
        self.password.clone().or_else(|| {
            self.password_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
        })
    }

    /// The token, from the file or the environment.
    pub fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| self.token_env.as_ref().and_then(|v| std::env::var(v).ok()))
    }

    /// `None` when reconnects never stop.
    pub fn reconnect_limit(&self) -> Option<usize> {
        usize::try_from(self.max_reconnect_attempts).ok()
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.nats_url.0.is_empty() {
            return Err(Invalid::new(
                "nats_client.nats_url",
                "needs at least one URL",
            ));
        }
        for url in &self.nats_url.0 {
            url.parse::<async_nats::ServerAddr>().map_err(|e| {
                Invalid::new(
                    "nats_client.nats_url",
                    format!("{url:?} is not a NATS URL: {e}"),
                )
            })?;
        }
        if self.max_reconnect_attempts < -1 {
            return Err(Invalid::new(
                "nats_client.max_reconnect_attempts",
                "must be -1 (forever) or a count >= 0",
            ));
        }
        let methods = [
            self.user.is_some(),
            self.token.is_some() || self.token_env.is_some(),
            self.nkey_seed_file.is_some(),
            self.creds_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(Invalid::new(
                "nats_client",
                "choose one authentication method: user/password, token, nkey_seed_file or creds_file",
            ));
        }
        if self.user.is_some() && self.password.is_none() && self.password_env.is_none() {
            return Err(Invalid::new(
                "nats_client.password",
                "user needs password or password_env",
            ));
        }
        for (key, var) in [
            ("nats_client.password_env", &self.password_env),
            ("nats_client.token_env", &self.token_env),
        ] {
            if let Some(var) = var
                && std::env::var(var).is_err()
            {
                return Err(Invalid::new(
                    key,
                    format!("environment variable {var} is not set"),
                ));
            }
        }
        for (key, file) in [
            ("nats_client.nkey_seed_file", &self.nkey_seed_file),
            ("nats_client.creds_file", &self.creds_file),
            ("nats_client.tls.ca_file", &self.tls.ca_file),
            ("nats_client.tls.cert_file", &self.tls.cert_file),
            ("nats_client.tls.key_file", &self.tls.key_file),
        ] {
            if let Some(path) = file
                && !path.is_file()
            {
                return Err(Invalid::new(
                    key,
                    format!("{} is not a readable file", path.display()),
                ));
            }
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(Invalid::new(
                "nats_client.tls",
                "cert_file and key_file go together",
            ));
        }
        positive_secs(
            "nats_client.reconnect_time_wait",
            self.reconnect_time_wait,
            true,
        )?;
        positive_secs("nats_client.connect_timeout", self.connect_timeout, false)?;
        positive_secs("nats_client.ping_interval", self.ping_interval, false)
    }
}

/// Seconds as the seed writes them; `zero_ok` allows an immediate retry.
fn positive_secs(key: &str, value: f64, zero_ok: bool) -> Result<(), Invalid> {
    let ok = value.is_finite() && (value > 0.0 || (zero_ok && value == 0.0)) && value < 86_400.0;
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            key,
            format!("{value} is not a duration in seconds"),
        ))
    }
}

/// The NATS server URLs to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsUrls(pub Vec<String>);

impl NatsUrls {
    /// Splits a comma-separated list, trimming blanks.
    pub fn parse_list(text: &str) -> Result<Self, String> {
        let urls: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if urls.is_empty() {
            return Err("no URL given".into());
        }
        Ok(Self(urls))
    }

    /// The URLs as async-nats server addresses (validated at load time).
    pub fn server_addrs(&self) -> Vec<async_nats::ServerAddr> {
        self.0.iter().filter_map(|u| u.parse().ok()).collect()
    }
}

impl<'de> Deserialize<'de> for NatsUrls {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            One(String),
            Many(Vec<String>),
        }
        let urls = match Shape::deserialize(de)
            .map_err(|_| serde::de::Error::custom("expected a URL string or a list of URLs"))?
        {
            Shape::One(text) => NatsUrls::parse_list(&text).map_err(serde::de::Error::custom)?,
            Shape::Many(list) => NatsUrls(
                list.iter()
                    .flat_map(|s| s.split(','))
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            ),
        };
        Ok(urls)
    }
}

impl std::fmt::Debug for NatsClientConfig {
    // Hand-written so a password or token never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsClientConfig")
            .field("nats_url", &self.nats_url)
            .field("client_name", &self.client_name)
            .field("max_reconnect_attempts", &self.max_reconnect_attempts)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("creds_file", &self.creds_file)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}
