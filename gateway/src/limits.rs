//! Visitor limits: commands per connection and per client address per second, and the origin allow-list.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// The limits a gateway enforces.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Commands one connection may send per second (with bursts of as many).
    pub per_connection: f64,
    /// Commands all connections from one address may send per second (with bursts of as many).
    pub per_address: f64,
    /// Origins allowed to open a WebSocket (`Origin` header); empty allows any.
    pub origins: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { per_connection: 10.0, per_address: 50.0, origins: Vec::new() }
    }
}

impl Limits {
    /// Whether a WebSocket may be opened from `origin` (a request without `Origin` is not from a browser).
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        self.origins.is_empty() || origin.is_none_or(|o| self.origins.iter().any(|a| a == o))
    }
}

/// A token bucket: `rate` tokens a second, holding at most `rate` (at least one).
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: f64, now: Instant) -> Bucket {
        Bucket { rate, tokens: rate.max(1.0), at: now }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Buckets per client address, shared by all connections.
#[derive(Debug, Default)]
pub struct PerAddress {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl PerAddress {
    /// Takes a token from `ip`'s bucket (refilled at `rate`).
    pub fn take(&self, ip: IpAddr, rate: f64, now: Instant) -> bool {
        let mut all = self.buckets.lock().expect("buckets");
        // Forget idle addresses now and then so the map cannot grow without bound.
        if all.len() > 10_000 {
            all.retain(|_, b| now.saturating_duration_since(b.at).as_secs() < 60);
        }
        all.entry(ip).or_insert_with(|| Bucket::new(rate, now)).take(now)
    }
}
