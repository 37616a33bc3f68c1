//! Short-lived, single-use tickets for browser sockets: a browser cannot set
//! `Authorization` on a WebSocket or EventSource, and a long-lived token in
//! a URL ends up in access logs. `POST /auth/ticket` trades a bearer token
//! for a ticket valid for one connection within `ticket_ttl_secs`.
//!
//! A ticket is `<payload>.<hmac>` (base64url): the token's name, an expiry
//! and a nonce, signed with the instance's (or the shared) secret.

use std::collections::HashMap;
use std::sync::Mutex;
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
    ttl: Duration,
    used: Mutex<HashMap<String, u64>>,
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
            ttl,
            used: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A fresh ticket for the token named `name`.
    pub fn issue(&self, name: &str) -> String {
        self.issue_at(name, now_ms())
    }

    fn issue_at(&self, name: &str, now: u64) -> String {
        let expires = now + self.ttl.as_millis() as u64;
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let payload = B64.encode(format!("{expires}|{nonce}|{name}"));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!("{payload}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// Checks and uses up a ticket; returns the token name it was issued to.
    pub fn redeem(&self, ticket: &str) -> Result<String, TicketError> {
        self.redeem_at(ticket, now_ms())
    }

    fn redeem_at(&self, ticket: &str, now: u64) -> Result<String, TicketError> {
        let (payload, sig) = ticket.split_once('.').ok_or(TicketError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| TicketError::Malformed)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&sig).map_err(|_| TicketError::Malformed)?;
        let text = String::from_utf8(B64.decode(payload).map_err(|_| TicketError::Malformed)?)
            .map_err(|_| TicketError::Malformed)?;
        let mut parts = text.splitn(3, '|');
        let (Some(expires), Some(nonce), Some(name)) = (parts.next(), parts.next(), parts.next())
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
        Ok(name.to_owned())
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
        let ticket = t.issue("dashboard");
        assert_eq!(t.redeem(&ticket), Ok("dashboard".into()));
        assert_eq!(t.redeem(&ticket), Err(TicketError::Reused));
    }

    #[test]
    fn forged_or_expired_tickets_fail() {
        let t = Tickets::new(b"0123456789abcdef".to_vec(), Duration::from_secs(30));
        let other = Tickets::new(b"fedcba9876543210".to_vec(), Duration::from_secs(30));
        assert_eq!(t.redeem(&other.issue("x")), Err(TicketError::Malformed));
        assert_eq!(t.redeem("garbage"), Err(TicketError::Malformed));
        let ticket = t.issue("x");
        let swap = if ticket.as_bytes()[2] == b'A' {
            "B"
        } else {
            "A"
        };
        let tampered = format!("{}{swap}{}", &ticket[..2], &ticket[3..]);
        assert_eq!(t.redeem(&tampered), Err(TicketError::Malformed));
        let ticket = t.issue_at("x", 1_000);
        assert_eq!(
            t.redeem_at(&ticket, 1_000 + 30_001),
            Err(TicketError::Expired)
        );
        assert_eq!(
            t.redeem_at(&ticket, 1_000 + 30_000),
            Ok("x".into()),
            "valid up to its expiry"
        );
    }
}
