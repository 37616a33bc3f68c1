//! Short-lived, single-use tickets for browser sockets: a browser cannot set
//! `Authorization` on a WebSocket or EventSource, and a long-lived token in
//! a URL ends up in access logs. `POST /auth/ticket` trades a bearer token
//! for a ticket valid for one connection within `ticket_ttl_secs`.
//!
//! A ticket is `<payload>.<hmac>` (base64url): the token's name, an expiry,
//! a nonce and a tag of the token's credential, signed with the instance's
//! (or the shared) secret. The tag makes a ticket issued before a token's
//! secret was rotated fail once the rotation is reloaded; a ticket of a
//! token that is no longer configured fails because its name is unknown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Most unexpired used nonces remembered; bounded by the ticket rate anyway.
const MAX_USED: usize = 100_000;

pub struct Tickets {
    secret: Vec<u8>,
    /// `auth.ticket_secret_env` (`None`: a secret this process made up).
    source: Option<String>,
    ttl: Duration,
    /// Nonces used, shared with the reloaded `Tickets` of the same secret:
    /// a reload must not make a used ticket valid again.
    used: Arc<Mutex<HashMap<String, u64>>>,
}

/// What a valid ticket says.
#[derive(Debug, PartialEq, Eq)]
pub struct Redeemed {
    /// The token it was issued to.
    pub name: String,
    /// The tag of that token's credential at issue time.
    pub tag: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TicketError {
    Malformed,
    Expired,
    Reused,
}

impl Tickets {
    pub fn new(secret: Vec<u8>, ttl: Duration) -> Self {
        Self {
            secret,
            source: None,
            ttl,
            used: Arc::default(),
        }
    }

    /// Tickets for a (re)loaded `auth` section. A reload that keeps the
    /// secret's source keeps the secret and the used nonces, so tickets
    /// already issued stay valid exactly once; a new source (or no `auth`
    /// section before) starts over, which invalidates them.
    pub fn configured(
        source: Option<&str>,
        ttl: Duration,
        previous: Option<&Arc<Tickets>>,
    ) -> Arc<Tickets> {
        match previous {
            Some(p) if p.source.as_deref() == source && p.ttl == ttl => p.clone(),
            Some(p) if p.source.as_deref() == source => Arc::new(Tickets {
                secret: p.secret.clone(),
                source: p.source.clone(),
                ttl,
                used: p.used.clone(),
            }),
            _ => {
                let secret = source
                    .and_then(|var| std::env::var(var).ok())
                    .map(String::into_bytes)
                    .unwrap_or_else(|| rand::random::<[u8; 32]>().to_vec());
                Arc::new(Tickets {
                    source: source.map(str::to_owned),
                    ..Tickets::new(secret, ttl)
                })
            }
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A fresh ticket for the token named `name`, whose credential (its
    /// digest) is `credential`.
    pub fn issue(&self, name: &str, credential: &[u8]) -> String {
        self.issue_at(name, credential, now_ms())
    }

    fn issue_at(&self, name: &str, credential: &[u8], now: u64) -> String {
        let expires = now + self.ttl.as_millis() as u64;
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let tag = self.tag(credential);
        let payload = B64.encode(format!("{expires}|{nonce}|{tag}|{name}"));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!("{payload}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// A short keyed tag of a credential: it tells a rotated credential
    /// from the one a ticket was issued for without revealing anything
    /// about it (tickets end up in access logs).
    pub fn tag(&self, credential: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(b"credential|");
        mac.update(credential);
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    /// Checks and uses up a ticket; returns whom it was issued to.
    pub fn redeem(&self, ticket: &str) -> Result<Redeemed, TicketError> {
        self.redeem_at(ticket, now_ms())
    }

    fn redeem_at(&self, ticket: &str, now: u64) -> Result<Redeemed, TicketError> {
        let (payload, sig) = ticket.split_once('.').ok_or(TicketError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| TicketError::Malformed)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&sig).map_err(|_| TicketError::Malformed)?;
        let text = String::from_utf8(B64.decode(payload).map_err(|_| TicketError::Malformed)?)
            .map_err(|_| TicketError::Malformed)?;
        let mut parts = text.splitn(4, '|');
        let (Some(expires), Some(nonce), Some(tag), Some(name)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TicketError::Malformed);
        };
        let expires: u64 = expires.parse().map_err(|_| TicketError::Malformed)?;
        if now > expires {
            return Err(TicketError::Expired);
        }
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if used.len() >= MAX_USED {
            used.retain(|_, exp| *exp >= now);
        }
        if used.insert(nonce.to_owned(), expires).is_some() {
            return Err(TicketError::Reused);
        }
        Ok(Redeemed {
            name: name.to_owned(),
            tag: tag.to_owned(),
        })
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length")
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once() {
        let t = Tickets::new(b"0123456789abcdef".to_vec(), Duration::from_secs(30));
        let ticket = t.issue("dashboard", b"digest");
        assert_eq!(
            t.redeem(&ticket),
            Ok(Redeemed {
                name: "dashboard".into(),
                tag: t.tag(b"digest")
            })
        );
        assert_ne!(t.tag(b"digest"), t.tag(b"rotated"));
        assert_eq!(t.redeem(&ticket), Err(TicketError::Reused));
    }

    #[test]
    fn forged_or_expired_tickets_fail() {
        let t = Tickets::new(b"0123456789abcdef".to_vec(), Duration::from_secs(30));
        let other = Tickets::new(b"fedcba9876543210".to_vec(), Duration::from_secs(30));
        assert_eq!(
            t.redeem(&other.issue("x", b"")),
            Err(TicketError::Malformed)
        );
        assert_eq!(t.redeem("garbage"), Err(TicketError::Malformed));
        let ticket = t.issue("x", b"");
        let swap = if ticket.as_bytes()[2] == b'A' {
            "B"
        } else {
            "A"
        };
        let tampered = format!("{}{swap}{}", &ticket[..2], &ticket[3..]);
        assert_eq!(t.redeem(&tampered), Err(TicketError::Malformed));
        let ticket = t.issue_at("x", b"", 1_000);
        assert_eq!(
            t.redeem_at(&ticket, 1_000 + 30_001),
            Err(TicketError::Expired)
        );
        assert_eq!(
            t.redeem_at(&ticket, 1_000 + 30_000).map(|r| r.name),
            Ok("x".into()),
            "valid up to its expiry"
        );
    }

    #[test]
    fn a_reload_keeps_the_secret_and_the_used_tickets_unless_the_source_changes() {
        let ttl = Duration::from_secs(30);
        let first = Tickets::configured(None, ttl, None);
        let used = first.issue("x", b"");
        first.redeem(&used).unwrap();
        let fresh = first.issue("x", b"");

        let same = Tickets::configured(None, ttl, Some(&first));
        assert!(Arc::ptr_eq(&first, &same));
        let longer = Tickets::configured(None, ttl * 2, Some(&first));
        assert_eq!(longer.ttl(), ttl * 2);
        assert_eq!(longer.redeem(&used), Err(TicketError::Reused));
        assert!(longer.redeem(&fresh).is_ok(), "same secret");

        // An unset variable: a new random secret, as at startup.
        let var = "MARKETPRISM_TEST_TICKET_SECRET_7f3a";
        assert!(std::env::var(var).is_err());
        let other = Tickets::configured(Some(var), ttl, Some(&first));
        assert_eq!(
            other.redeem(&first.issue("x", b"")),
            Err(TicketError::Malformed),
            "a new secret source invalidates earlier tickets"
        );
    }
}
