//! Open connections and reloads. A WebSocket or an SSE stream keeps what it
//! was admitted with and a receiver that wakes on every reload; it then
//! checks itself against the new config where it lives (no global scan, no
//! lock across subscribers), as a fresh connection with the same
//! credentials would be checked.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{Request, header};
use tokio::sync::watch;

use super::{Auth, Principal};
use crate::error::ApiError;

/// What a connection was admitted with, besides its credentials.
#[derive(Debug, Clone)]
pub struct Admission {
    pub ip: IpAddr,
    origin: Option<String>,
    host: Option<String>,
}

impl Admission {
    pub fn new<B>(ip: IpAddr, request: &Request<B>) -> Self {
        let headers = request.headers();
        let text = |name| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("").chars().take(200).collect())
        };
        // HTTP/2 carries the host as `:authority`, which hyper puts in the
        // URI; browsers send no Host header there.
        let authority = || {
            let authority = request.uri().authority()?;
            Some(authority.as_str().chars().take(200).collect())
        };
        Self {
            ip,
            origin: text(header::ORIGIN),
            host: text(header::HOST).or_else(authority),
        }
    }
}

/// Why an open connection may not stay after a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Its token was removed or given a new secret.
    Token,
    /// Its browser origin left `cors.allowed_origins`.
    Origin,
    /// It connected in open mode, and the gateway now requires tokens.
    AuthRequired,
}

impl Revoked {
    /// The close reason sent to the client (WebSocket close frame, SSE
    /// `closed` event).
    pub fn reason(self) -> &'static str {
        match self {
            Revoked::Token => "token revoked",
            Revoked::Origin => "origin not allowed",
            Revoked::AuthRequired => "authentication required",
        }
    }
}

/// A subscriber's link to the auth config it must keep satisfying.
#[derive(Clone)]
pub struct Access {
    admission: Admission,
    reloads: watch::Receiver<Arc<Auth>>,
}

impl Access {
    /// `reloads` must have seen the config the connection was admitted
    /// with, so a reload in between is not missed.
    pub fn new(admission: Admission, reloads: watch::Receiver<Arc<Auth>>) -> Self {
        Self { admission, reloads }
    }

    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The current tokens, origins and limits (the latest reload's).
    pub fn current(&self) -> Arc<Auth> {
        self.reloads.borrow().clone()
    }

    /// Waits for the next reload and returns its config. Pending forever
    /// once the gateway is gone (the connection ends by other means then).
    pub async fn reloaded(&mut self) -> Arc<Auth> {
        if self.reloads.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        self.reloads.borrow_and_update().clone()
    }
}

impl Auth {
    /// Cross-site WebSocket hijacking guard: a browser connection to a
    /// socket or event stream must come from the gateway's own origin or an
    /// allowed one. Connections without `Origin` (non-browsers) pass.
    pub fn check_origin(&self, admission: &Admission) -> Result<(), ApiError> {
        let Some(origin) = &admission.origin else {
            return Ok(());
        };
        let same_origin = admission.host.as_deref().is_some_and(|host| {
            origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest == host)
        });
        if same_origin || self.cors.allows(origin) {
            Ok(())
        } else {
            Err(ApiError::ForbiddenOrigin(origin.clone()))
        }
    }

    /// The caller of an open connection as this config sees it: the token
    /// of the same name and secret (with its current rights and limits),
    /// or an anonymous client in open mode.
    pub fn recheck(&self, who: &Principal, admission: &Admission) -> Result<Principal, Revoked> {
        self.check_origin(admission).map_err(|_| Revoked::Origin)?;
        let Some(tokens) = &self.tokens else {
            return Ok(Principal::Anonymous {
                ip: admission.ip,
                limiter: self.per_ip.clone(),
            });
        };
        let Principal::Token(current) = who else {
            return Err(Revoked::AuthRequired);
        };
        tokens
            .iter()
            .find(|t| t.name == current.name && t.digest == current.digest)
            .cloned()
            .map(Principal::Token)
            .ok_or(Revoked::Token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthConfig, Config, PermissionConfig, TokenConfig};
    use crate::subject::SubjectPattern;

    fn token(name: &str, digest: char, subscribe: &str) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            token_sha256: Some(digest.to_string().repeat(64)),
            token_env: None,
            publish: PermissionConfig::default(),
            subscribe: PermissionConfig {
                allow: vec![subscribe.into()],
                deny: vec![],
            },
            admin: false,
            rate_limit: None,
            max_connections: None,
            max_subscriptions: None,
        }
    }

    fn config(tokens: Vec<TokenConfig>, origins: &[&str]) -> Config {
        let mut c = Config {
            auth: Some(AuthConfig {
                tokens,
                ..AuthConfig::default()
            }),
            ..Config::default()
        };
        c.cors.allowed_origins = origins.iter().map(|o| o.to_string()).collect();
        c
    }

    fn admission(origin: Option<&str>) -> Admission {
        let mut request = Request::get("/subscribe")
            .header(header::HOST, "gw.example")
            .body(())
            .unwrap();
        if let Some(origin) = origin {
            let headers = request.headers_mut();
            headers.insert(header::ORIGIN, origin.parse().unwrap());
        }
        Admission::new(IpAddr::from([127, 0, 0, 1]), &request)
    }

    #[test]
    fn same_origin_is_judged_by_the_host_header_or_else_the_http2_authority() {
        let check = |uri: &str, host: Option<&str>, origin: &str| {
            let mut request = Request::get(uri).header(header::ORIGIN, origin);
            if let Some(host) = host {
                request = request.header(header::HOST, host);
            }
            let a = Admission::new(IpAddr::from([127, 0, 0, 1]), &request.body(()).unwrap());
            Auth::from_config(&Config::default())
                .check_origin(&a)
                .is_ok()
        };
        let h2 = "https://gw.example:8086/subscribe";
        assert!(check(h2, None, "https://gw.example:8086"), "HTTP/2");
        assert!(
            !check(h2, None, "https://evil.example"),
            "HTTP/2, another origin"
        );
        assert!(check("/subscribe", Some("gw.example"), "http://gw.example"));
        assert!(
            !check("/subscribe", None, "http://gw.example"),
            "no host at all"
        );
        assert!(
            !check(h2, Some("other.example"), "https://gw.example:8086"),
            "the Host header decides where there is one"
        );
    }

    #[test]
    fn a_recheck_resolves_the_token_again_by_name_and_secret() {
        let first = Auth::from_config(&config(vec![token("dash", 'a', "a.>")], &[]));
        let who = Principal::Token(first.tokens.as_ref().unwrap()[0].clone());
        let plain = admission(None);
        let narrowed = first.reloaded(&config(vec![token("dash", 'a', "a.b.>")], &[]));
        let now = narrowed
            .recheck(&who, &plain)
            .expect("same name and secret");
        assert!(
            now.check_subscribe(&SubjectPattern::parse("a.>").unwrap())
                .is_err()
        );
        assert!(
            now.check_subscribe(&SubjectPattern::parse("a.b.>").unwrap())
                .is_ok()
        );

        let cases = [
            (
                config(vec![token("other", 'a', "a.>")], &[]),
                Revoked::Token,
            ),
            (config(vec![token("dash", 'b', "a.>")], &[]), Revoked::Token),
        ];
        for (fresh, revoked) in cases {
            assert_eq!(
                first.reloaded(&fresh).recheck(&who, &plain).err(),
                Some(revoked)
            );
        }
        let open = first.reloaded(&Config::default());
        assert!(matches!(
            open.recheck(&who, &plain),
            Ok(Principal::Anonymous { .. })
        ));
        let anonymous = open.recheck(&who, &plain).ok().unwrap();
        assert_eq!(
            first.recheck(&anonymous, &plain).err(),
            Some(Revoked::AuthRequired)
        );
    }

    #[test]
    fn a_recheck_applies_the_current_origin_list() {
        let open_mode = |origins: &[&str]| Config {
            auth: None,
            ..config(vec![], origins)
        };
        let allowed = Auth::from_config(&open_mode(&["https://dash.example"]));
        let removed = allowed.reloaded(&open_mode(&[]));
        let open = Principal::Anonymous {
            ip: IpAddr::from([127, 0, 0, 1]),
            limiter: None,
        };
        let cases = [
            (Some("https://dash.example"), Ok(()), Err(Revoked::Origin)),
            (Some("https://gw.example"), Ok(()), Ok(())),
            (None, Ok(()), Ok(())),
        ];
        for (origin, before, after) in cases {
            let a = admission(origin);
            assert_eq!(
                allowed.check_origin(&a).map_err(|_| ()),
                before,
                "{origin:?}"
            );
            assert_eq!(
                removed.recheck(&open, &a).map(|_| ()).err(),
                after.err(),
                "{origin:?}"
            );
        }
    }
}
