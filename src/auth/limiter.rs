//! Token-bucket rate limits: requests and published bytes per second, per
//! token (or per client IP in open mode).
//!
//! A client's buckets and the rates they refill at are kept apart: the
//! rates come with each charge, from the current config. A reload that
//! changes a rate therefore applies it to the levels the client has left,
//! and one that changes nothing leaves them alone: nobody gets a fresh
//! quota by waiting for a SIGHUP.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::RateLimitConfig;

/// One bucket: refills at `rate` per second up to one second's worth, or
/// up to the charge when that is larger (so one big publish can pass).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    /// The bucket after taking `amount` at `rate` (`None`: no limit or
    /// nothing to take), or how long until it could. A bucket never used
    /// is full.
    fn take(
        this: Option<Bucket>,
        rate: Option<f64>,
        amount: f64,
        now: Instant,
    ) -> Result<Option<Bucket>, Duration> {
        let Some(rate) = rate.filter(|_| amount > 0.0) else {
            return Ok(None);
        };
        let capacity = rate.max(amount);
        let level = this.map_or(capacity, |b| {
            (b.level + rate * now.duration_since(b.at).as_secs_f64()).min(capacity)
        });
        if level < amount {
            return Err(Duration::from_secs_f64((amount - level) / rate));
        }
        Ok(Some(Bucket {
            level: level - amount,
            at: now,
        }))
    }
}

/// The buckets of one client.
#[derive(Debug, Default)]
pub struct Limiter {
    /// (requests, bytes); `None` until first charged.
    buckets: Mutex<(Option<Bucket>, Option<Bucket>)>,
}

impl Limiter {
    /// Charges `requests` requests and `bytes` published bytes at the rates
    /// of `config`; on refusal, how long to wait (nothing is charged then).
    pub fn charge(
        &self,
        config: &RateLimitConfig,
        requests: u32,
        bytes: u64,
    ) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (req, byte) = &mut *buckets;
        // Both are checked before either is charged.
        let req_after = Bucket::take(*req, config.requests_per_second, f64::from(requests), now)?;
        let byte_after = Bucket::take(*byte, config.bytes_per_second, bytes as f64, now)?;
        if req_after.is_some() {
            *req = req_after;
        }
        if byte_after.is_some() {
            *byte = byte_after;
        }
        Ok(())
    }
}

/// Limiters by key (client IP), bounded in size: idle entries are evicted.
/// A reload makes a new one with [`KeyedLimiter::with_config`], which keeps
/// every client's buckets.
pub struct KeyedLimiter<K> {
    config: RateLimitConfig,
    clients: Arc<Mutex<HashMap<K, (Limiter, Instant)>>>,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(config: RateLimitConfig, max_keys: usize) -> Self {
        Self {
            config,
            clients: Arc::new(Mutex::new(HashMap::new())),
            max_keys,
        }
    }

    /// The same clients' buckets, charged at `config`'s rates from now on.
    pub fn with_config(&self, config: RateLimitConfig) -> Self {
        Self {
            config,
            clients: self.clients.clone(),
            max_keys: self.max_keys,
        }
    }

    pub fn charge(&self, key: &K, requests: u32, bytes: u64) -> Result<(), Duration> {
        let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.max_keys && !map.contains_key(key) {
            // Buckets idle for a few seconds are full again: forget them.
            let cutoff = Instant::now() - Duration::from_secs(5);
            map.retain(|_, (_, used)| *used > cutoff);
            if map.len() >= self.max_keys {
                return Err(Duration::from_secs(1));
            }
        }
        let (limiter, used) = map
            .entry(key.clone())
            .or_insert_with(|| (Limiter::default(), Instant::now()));
        *used = Instant::now();
        limiter.charge(&self.config, requests, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(requests: Option<f64>, bytes: Option<f64>) -> RateLimitConfig {
        RateLimitConfig {
            requests_per_second: requests,
            bytes_per_second: bytes,
        }
    }

    #[test]
    fn bucket_allows_a_second_of_burst_then_refuses_with_a_wait() {
        let config = rates(Some(5.0), Some(100.0));
        let l = Limiter::default();
        for _ in 0..5 {
            l.charge(&config, 1, 0).unwrap();
        }
        let wait = l.charge(&config, 1, 0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        l.charge(&config, 0, 100).unwrap();
        assert!(l.charge(&config, 0, 1).is_err());
    }

    #[test]
    fn one_large_charge_over_the_rate_passes_once_then_waits() {
        let config = rates(None, Some(10.0));
        let l = Limiter::default();
        l.charge(&config, 0, 25).unwrap();
        let wait = l.charge(&config, 0, 25).unwrap_err();
        assert!(
            wait > Duration::from_secs(2) && wait <= Duration::from_secs(3),
            "the bucket grows to fit it, then refills: {wait:?}"
        );
    }

    #[test]
    fn a_rate_below_one_still_allows_the_first_request() {
        let config = rates(Some(0.01), None);
        let l = Limiter::default();
        l.charge(&config, 1, 0).unwrap();
        assert!(l.charge(&config, 1, 0).unwrap_err() > Duration::from_secs(90));
    }

    #[test]
    fn a_refused_charge_takes_nothing_from_either_bucket() {
        let config = rates(Some(10.0), Some(10.0));
        let l = Limiter::default();
        l.charge(&config, 1, 10).unwrap();
        assert!(l.charge(&config, 1, 10).is_err(), "no bytes left");
        for _ in 0..9 {
            l.charge(&config, 1, 0)
                .expect("the refused charge took no request");
        }
    }

    #[test]
    fn new_rates_apply_to_the_levels_left() {
        let l = Limiter::default();
        let before = rates(Some(100.0), None);
        for _ in 0..100 {
            l.charge(&before, 1, 0).unwrap();
        }
        let lowered = rates(Some(1.0), None);
        assert!(
            l.charge(&lowered, 1, 0).is_err(),
            "the empty bucket stays empty under the new rate"
        );
        let l = Limiter::default();
        l.charge(&before, 50, 0).unwrap();
        l.charge(&lowered, 1, 0).unwrap();
        assert!(
            l.charge(&lowered, 1, 0).is_err(),
            "50 left are capped to the new second's worth (1)"
        );
    }

    #[test]
    fn a_keyed_limiter_with_a_new_config_keeps_its_clients_buckets() {
        let ip = std::net::IpAddr::from([10, 0, 0, 1]);
        let old = KeyedLimiter::new(rates(Some(0.01), None), 10);
        old.charge(&ip, 1, 0).unwrap();
        let same = old.with_config(rates(Some(0.01), None));
        assert!(same.charge(&ip, 1, 0).is_err(), "not refilled by a reload");
        let other = std::net::IpAddr::from([10, 0, 0, 2]);
        same.charge(&other, 1, 0).unwrap();
    }
}
