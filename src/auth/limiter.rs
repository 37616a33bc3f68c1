//! Token-bucket rate limits: requests and published bytes per second, per
//! token (or per client IP in open mode).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimitConfig;

/// One bucket: refills at `rate` per second up to one second's worth.
#[derive(Debug)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: f64) -> Self {
        Self {
            level: rate,
            at: Instant::now(),
        }
    }

    /// Takes `amount`, or says how long until it could.
    fn take(&mut self, rate: f64, amount: f64) -> Result<(), Duration> {
        let now = Instant::now();
        self.level =
            (self.level + rate * now.duration_since(self.at).as_secs_f64()).min(rate.max(amount));
        self.at = now;
        if self.level >= amount {
            self.level -= amount;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((amount - self.level) / rate))
        }
    }
}

/// Requests and bytes for one client.
#[derive(Debug)]
pub struct Limiter {
    config: RateLimitConfig,
    requests: Mutex<Bucket>,
    bytes: Mutex<Bucket>,
}

impl Limiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            requests: Mutex::new(Bucket::full(config.requests_per_second.unwrap_or(1.0))),
            bytes: Mutex::new(Bucket::full(config.bytes_per_second.unwrap_or(1.0))),
            config,
        }
    }

    /// Charges `requests` requests and `bytes` published bytes; on refusal,
    /// how long to wait (nothing is charged then).
    pub fn charge(&self, requests: u32, bytes: u64) -> Result<(), Duration> {
        if let Some(rate) = self.config.requests_per_second
            && requests > 0
        {
            self.requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(rate, f64::from(requests))?;
        }
        if let Some(rate) = self.config.bytes_per_second
            && bytes > 0
        {
            self.bytes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(rate, bytes as f64)?;
        }
        Ok(())
    }
}

/// Limiters by key (client IP), bounded in size: idle entries are evicted.
pub struct KeyedLimiter<K> {
    config: RateLimitConfig,
    map: Mutex<HashMap<K, (Limiter, Instant)>>,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(config: RateLimitConfig, max_keys: usize) -> Self {
        Self {
            config,
            map: Mutex::new(HashMap::new()),
            max_keys,
        }
    }

    pub fn charge(&self, key: &K, requests: u32, bytes: u64) -> Result<(), Duration> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
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
            .or_insert_with(|| (Limiter::new(self.config), Instant::now()));
        *used = Instant::now();
        limiter.charge(requests, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_second_of_burst_then_refuses_with_a_wait() {
        let l = Limiter::new(RateLimitConfig {
            requests_per_second: Some(5.0),
            bytes_per_second: Some(100.0),
        });
        for _ in 0..5 {
            l.charge(1, 0).unwrap();
        }
        let wait = l.charge(1, 0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        l.charge(0, 100).unwrap();
        assert!(l.charge(0, 1).is_err());
    }

    #[test]
    fn one_large_charge_over_the_rate_waits_instead_of_failing_forever() {
        let l = Limiter::new(RateLimitConfig {
            requests_per_second: None,
            bytes_per_second: Some(10.0),
        });
        let wait = l.charge(0, 25).unwrap_err();
        assert!(
            wait <= Duration::from_secs(2),
            "the bucket grows to fit it: {wait:?}"
        );
    }
}
