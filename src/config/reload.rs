//! What a reload (SIGHUP) applies to the running gateway, and which changed
//! keys wait for a restart. Compared field by field (`PartialEq`), never
//! through `Debug` text, which hides secrets and so would miss a changed
//! password.

use super::{Config, GatewayConfig, HttpSettings, NatsClientConfig};

/// The keys a reload applies at once (everything else needs a restart).
pub const APPLIED_ON_RELOAD: &[&str] = &[
    "auth",
    "cors",
    "admin.allowed_networks",
    "gateway.http.per_ip_rate_limit",
    "streams",
    "consumers",
    "nats_client.strict_subjects",
];

impl Config {
    /// The keys that differ between this (running) config and `fresh` but
    /// take effect only after a restart, most specific first.
    pub fn restart_needed(&self, fresh: &Config) -> Vec<&'static str> {
        let (old, new) = (self, fresh);
        let mut keys = Vec::new();
        let mut check = |key: &'static str, differs: bool| {
            if differs {
                keys.push(key);
            }
        };
        check("service", old.service != new.service);
        check(
            "nats_client",
            fixed_nats(&old.nats_client) != fixed_nats(&new.nats_client),
        );
        check("logging", old.logging != new.logging);
        check("admin.enabled", old.admin.enabled != new.admin.enabled);
        gateway_keys(&old.gateway, &new.gateway, &mut check);
        keys
    }
}

fn gateway_keys(
    old: &GatewayConfig,
    new: &GatewayConfig,
    check: &mut impl FnMut(&'static str, bool),
) {
    check(
        "gateway.shutdown_grace_ms",
        old.shutdown_grace_ms != new.shutdown_grace_ms,
    );
    check(
        "gateway.http",
        fixed_http(&old.http) != fixed_http(&new.http),
    );
    check("gateway.publish", old.publish != new.publish);
    check("gateway.request", old.request != new.request);
    check("gateway.jetstream", old.jetstream != new.jetstream);
    check("gateway.websocket", old.websocket != new.websocket);
    check("gateway.sse", old.sse != new.sse);
}

/// `nats_client` without the keys a reload applies.
fn fixed_nats(c: &NatsClientConfig) -> NatsClientConfig {
    NatsClientConfig {
        strict_subjects: false,
        ..c.clone()
    }
}

/// `gateway.http` without the keys a reload applies.
fn fixed_http(c: &HttpSettings) -> HttpSettings {
    HttpSettings {
        per_ip_rate_limit: None,
        ..c.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthConfig, RateLimitConfig};

    #[test]
    fn reports_exactly_the_changed_keys_a_reload_cannot_apply() {
        let old = Config::default();
        let limit = RateLimitConfig {
            requests_per_second: Some(1.0),
            bytes_per_second: None,
        };
        type Change = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(&str, Change, Vec<&str>)> = vec![
            ("nothing", Box::new(|_| {}), vec![]),
            (
                "auth",
                Box::new(|c| c.auth = Some(AuthConfig::default())),
                vec![],
            ),
            (
                "cors",
                Box::new(|c| c.cors.allowed_origins = vec!["https://a.example".into()]),
                vec![],
            ),
            (
                "admin networks",
                Box::new(|c| c.admin.allowed_networks.clear()),
                vec![],
            ),
            (
                "per-IP limit",
                Box::new(move |c| c.gateway.http.per_ip_rate_limit = Some(limit)),
                vec![],
            ),
            (
                "strict subjects",
                Box::new(|c| c.nats_client.strict_subjects = false),
                vec![],
            ),
            (
                "a NATS password (hidden from Debug)",
                Box::new(|c| c.nats_client.password = Some("x".into())),
                vec!["nats_client"],
            ),
            (
                "socket limits",
                Box::new(|c| c.gateway.websocket.max_connections = 1),
                vec!["gateway.websocket"],
            ),
            (
                "HTTP limits",
                Box::new(|c| c.gateway.http.max_connections = 1),
                vec!["gateway.http"],
            ),
            (
                "several",
                Box::new(|c| {
                    c.service.port = 1;
                    c.admin.enabled = false;
                    c.logging.level = "debug".into();
                    c.gateway.sse.heartbeat_ms = 1;
                }),
                vec!["service", "logging", "admin.enabled", "gateway.sse"],
            ),
        ];
        for (what, change, expected) in cases {
            let mut fresh = old.clone();
            change(&mut fresh);
            assert_eq!(old.restart_needed(&fresh), expected, "{what}");
        }
    }
}
