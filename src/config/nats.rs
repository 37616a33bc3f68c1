//! `nats_client:`: where and how the gateway connects to NATS.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::Invalid;

#[derive(Debug, Clone, Deserialize)]
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
