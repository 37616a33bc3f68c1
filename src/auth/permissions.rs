//! Subject permissions: allow and deny patterns, deny wins, and the
//! reserved prefixes no wildcard opens.

use crate::config::PermissionConfig;
use crate::subject::{Subject, SubjectPattern};

/// Subject prefixes (first token) that only an explicit grant opens:
/// JetStream's API, KV and object stores, the system account, reply inboxes,
/// and the gateway's own re-published stored messages (`$MP`).
pub const RESERVED: [&str; 6] = [
    "$JS",
    "$KV",
    "$O",
    "$SYS",
    "_INBOX",
    crate::bus::republish::RESERVED_TOKEN,
];

/// The reserved prefix `subject` starts with, if any.
pub fn reserved_prefix(subject: &str) -> Option<&'static str> {
    let first = subject.split('.').next()?;
    RESERVED.iter().copied().find(|r| *r == first)
}

#[derive(Debug, Clone, Default)]
pub struct Permissions {
    allow: Vec<SubjectPattern>,
    deny: Vec<SubjectPattern>,
}

impl Permissions {
    /// From validated config patterns.
    pub fn from_config(config: &PermissionConfig) -> Self {
        let parse = |v: &Vec<String>| {
            v.iter()
                .filter_map(|p| SubjectPattern::parse(p).ok())
                .collect()
        };
        Self {
            allow: parse(&config.allow),
            deny: parse(&config.deny),
        }
    }

    /// Everything but the reserved prefixes (open mode).
    pub fn everything() -> Self {
        Self {
            allow: vec![SubjectPattern::parse(">").expect("valid")],
            deny: Vec::new(),
        }
    }

    /// May a message be published to `subject`?
    pub fn allows_publish(&self, subject: &Subject) -> bool {
        let s = subject.as_str();
        if self.deny.iter().any(|d| d.matches(s)) {
            return false;
        }
        let reserved = reserved_prefix(s);
        self.allow
            .iter()
            .filter(|a| reserved.is_none() || names_prefix(a, reserved))
            .any(|a| a.matches(s))
    }

    /// May `pattern` be subscribed to? Only if it lies entirely inside an
    /// allowed pattern (`trade.binance.>` allowed does not allow `trade.>`)
    /// and no denied pattern could match anything it receives.
    pub fn allows_subscribe(&self, pattern: &SubjectPattern) -> bool {
        if self.deny.iter().any(|d| d.overlaps(pattern)) {
            return false;
        }
        let reserved = reserved_prefix(pattern.as_str());
        self.allow
            .iter()
            .filter(|a| reserved.is_none() || names_prefix(a, reserved))
            .any(|a| pattern.is_subset_of(a))
    }
}

/// Does the allow pattern name the reserved prefix literally (`$JS.API.>`),
/// rather than reach it through a wildcard (`>`, `*.API.>`)?
fn names_prefix(allow: &SubjectPattern, reserved: Option<&str>) -> bool {
    allow.as_str().split('.').next() == reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(allow: &[&str], deny: &[&str]) -> Permissions {
        Permissions::from_config(&PermissionConfig {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn publish_permissions() {
        let p = perms(
            &["trade.binance.>", "funding_rate.*.perpetual.*", "$JS.API.>"],
            &["trade.binance.secret"],
        );
        let cases = [
            ("trade.binance.spot.BTC", true),
            ("trade.binance.secret", false),
            ("trade.okx.spot.BTC", false),
            ("funding_rate.okx.perpetual.BTC", true),
            ("funding_rate.okx.spot.BTC", false),
            ("$JS.API.INFO", true),
            ("$KV.bucket.key", false),
        ];
        for (subject, allowed) in cases {
            assert_eq!(
                p.allows_publish(&Subject::parse(subject).unwrap()),
                allowed,
                "{subject}"
            );
        }
    }

    #[test]
    fn subscriptions_must_be_subsets_and_deny_wins() {
        let p = perms(
            &["trade.binance.>", "funding_rate.>"],
            &["funding_rate.secret.>"],
        );
        let cases = [
            ("trade.binance.>", true),
            ("trade.binance.spot.*", true),
            ("trade.>", false),
            ("trade.*.spot.BTC", false),
            ("funding_rate.okx.>", true),
            ("funding_rate.>", false),
            ("funding_rate.*.perpetual.BTC", false),
            ("funding_rate.secret.x", false),
            (">", false),
        ];
        for (pattern, allowed) in cases {
            assert_eq!(
                p.allows_subscribe(&SubjectPattern::parse(pattern).unwrap()),
                allowed,
                "{pattern}"
            );
        }
    }

    #[test]
    fn reserved_prefixes_need_an_explicit_grant() {
        let open = Permissions::everything();
        for subject in [
            "$JS.API.INFO",
            "$KV.b.k",
            "$O.b",
            "$SYS.REQ.SERVER.PING",
            "_INBOX.abc",
            "$MP.stored.MARKET_DATA.funding_rate.x",
        ] {
            assert!(
                !open.allows_publish(&Subject::parse(subject).unwrap()),
                "{subject}"
            );
            assert!(
                !open.allows_subscribe(&SubjectPattern::parse(subject).unwrap()),
                "{subject}"
            );
        }
        assert!(
            open.allows_subscribe(&SubjectPattern::parse(">").unwrap()),
            "'>' itself is allowed (reserved messages are filtered)"
        );
        let wild = perms(&["*.API.>", ">"], &[]);
        assert!(!wild.allows_publish(&Subject::parse("$JS.API.INFO").unwrap()));
        let granted = perms(&["$JS.API.>"], &[]);
        assert!(granted.allows_publish(&Subject::parse("$JS.API.STREAM.INFO.X").unwrap()));
        assert!(granted.allows_subscribe(&SubjectPattern::parse("$JS.API.>").unwrap()));
        assert!(!granted.allows_subscribe(&SubjectPattern::parse("$JS.>").unwrap()));
    }

    #[test]
    fn empty_allow_allows_nothing() {
        let none = perms(&[], &[]);
        assert!(!none.allows_publish(&Subject::parse("a.b").unwrap()));
        assert!(!none.allows_subscribe(&SubjectPattern::parse("a.b").unwrap()));
    }
}
