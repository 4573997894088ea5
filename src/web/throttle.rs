//! Rate limits and the login backoff.
//!
//! `RateLimiter` is a keyed token bucket (per address, per credential): a refused call gets
//! 429 with `Retry-After`. `LoginThrottle` counts failed logins per (address, username)
//! pair and makes that pair wait, doubling each time: an attacker at one address slows
//! down, while the owner at another address still logs in. Both keep bounded memory:
//! past `MAX_KEYS` keys the ones that no longer matter are dropped, and if every key still
//! matters the oldest half goes (an attacker spraying addresses then loses state, never
//! the server its memory).

use crate::config::Settings;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_KEYS: usize = 100_000;

/// The first wait of the login backoff, in seconds.
pub const BACKOFF_BASE: i64 = 5;

struct Bucket {
    tokens: f64,
    last: Instant,
    /// Refusals in a row without a call let through; for the "keeps tripping" log line.
    refused: u64,
}

/// A token bucket per key: `per_minute` calls a minute, bursts up to `per_minute`.
pub struct RateLimiter {
    name: &'static str,
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(name: &'static str, per_minute: u32) -> Self {
        Self {
            name,
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn rate_per_second(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    /// Takes one token for `key`; `Err(seconds)` says how long until one is free.
    /// A limit of 0 turns the limiter off.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let rate = self.rate_per_second();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            // A bucket that has refilled is the same as no bucket.
            let full_after = Duration::from_secs_f64(capacity / rate);
            map.retain(|_, b| now.duration_since(b.last) < full_after);
            if map.len() >= MAX_KEYS {
                evict_oldest_half(&mut map, |b| b.last);
            }
        }
        let bucket = map.entry(key.to_string()).or_insert(Bucket {
            tokens: capacity,
            last: now,
            refused: 0,
        });
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.refused = 0;
            return Ok(());
        }
        bucket.refused += 1;
        // Once at the first refusal and then at each power of ten: enough to alert on,
        // never a log line per request of a flood.
        if bucket.refused == 1 || is_power_of_ten(bucket.refused) {
            tracing::warn!(
                limit = self.name,
                key = %redact(key),
                refused = bucket.refused,
                per_minute = self.per_minute,
                "rate limit tripped"
            );
        }
        let wait = ((1.0 - bucket.tokens) / rate).ceil();
        Err((wait as u64).max(1))
    }
}

fn is_power_of_ten(mut n: u64) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

/// Credentials are keyed by hash; what reaches the log is the key's kind and a prefix.
fn redact(key: &str) -> String {
    key.chars().take(24).collect()
}

fn evict_oldest_half<V>(map: &mut HashMap<String, V>, at: impl Fn(&V) -> Instant) {
    let mut times: Vec<Instant> = map.values().map(&at).collect();
    times.sort_unstable();
    if let Some(&cut) = times.get(times.len() / 2) {
        map.retain(|_, v| at(v) > cut);
    }
}

/// The rate limits of the unauthenticated entry points, from the settings.
pub struct RateLimits {
    pub login: RateLimiter,
    pub register: RateLimiter,
    pub oauth: RateLimiter,
    pub exchange: RateLimiter,
    /// Per credential: a registration token, an API client id.
    pub credential: RateLimiter,
}

impl RateLimits {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            login: RateLimiter::new("login_per_address", s.rate_login_per_minute),
            register: RateLimiter::new("register_per_address", s.rate_register_per_minute),
            oauth: RateLimiter::new("oauth_per_address", s.rate_oauth_per_minute),
            exchange: RateLimiter::new("exchange_per_address", s.rate_exchange_per_minute),
            credential: RateLimiter::new("per_credential", s.rate_credential_per_minute),
        }
    }

    /// The per-address limiter of a route, if it has one (POSTs only).
    pub fn for_route(&self, path: &str) -> Option<&RateLimiter> {
        match path {
            "/login" => Some(&self.login),
            "/agent/v1/register" => Some(&self.register),
            "/oauth/token" => Some(&self.oauth),
            "/sync/v1/exchange" => Some(&self.exchange),
            _ => None,
        }
    }
}

/// The caller's address as the server sees it (no proxy headers are trusted).
pub fn peer_address(req: &actix_web::HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default()
}

/// Middleware: the per-address limit of the unauthenticated POST routes, checked before
/// anything is read or looked up.
pub async fn limit_by_address(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let state = req.app_data::<super::State>().cloned();
    if req.method() == actix_web::http::Method::POST {
        if let Some(state) = state {
            if let Some(limiter) = state.rates.for_route(req.path()) {
                let address = peer_address(req.request());
                if let Err(wait) = limiter.check(&format!("a:{address}")) {
                    let err = super::AppError::too_many_requests(
                        format!("Too many requests from this address; retry in {wait} s."),
                        wait,
                    );
                    return Ok(super::limits::refuse(req, err));
                }
            }
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Keys a secret credential by a short hash, so the limiter never holds the secret.
pub fn credential_key(kind: &str, secret: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    format!("{kind}:{}", hex::encode(&digest[..12]))
}

/// Failed logins of one (address, username) pair.
#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: i64,
    locked_until: i64,
}

/// Login backoff per (address, username): the `free`-th failure imposes `BACKOFF_BASE`
/// seconds and each further one doubles it (5 s, 10 s, 20 s, ... up to `max_wait`).
pub struct LoginThrottle {
    free: u32,
    max_wait: i64,
    failures: Mutex<HashMap<String, Failures>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(5, 900)
    }
}

/// What a failure led to: the wait it imposes from now on (0 while still free).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureOutcome {
    pub failures: u32,
    pub wait_seconds: i64,
}

impl LoginThrottle {
    pub fn new(free: u32, max_wait: u64) -> Self {
        Self {
            free,
            max_wait: i64::try_from(max_wait).unwrap_or(i64::MAX).max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub fn from_settings(s: &Settings) -> Self {
        Self::new(s.login_free_failures, s.login_backoff_max_seconds)
    }

    fn key(username: &str, address: &str) -> String {
        format!("{address}|{}", username.to_lowercase())
    }

    /// `Err(seconds)` while this pair must wait.
    pub fn check(&self, username: &str, address: &str, now: i64) -> Result<(), u64> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&Self::key(username, address)) {
            Some(f) if f.locked_until > now => Err((f.locked_until - now) as u64),
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, username: &str, address: &str, now: i64) -> FailureOutcome {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let key = Self::key(username, address);
        if map.len() >= MAX_KEYS && !map.contains_key(&key) {
            // A pair quiet for longer than the longest wait has nothing left to enforce.
            let max_wait = self.max_wait;
            map.retain(|_, f| now - f.last < max_wait);
            if map.len() >= MAX_KEYS {
                let mut lasts: Vec<i64> = map.values().map(|f| f.last).collect();
                lasts.sort_unstable();
                if let Some(&cut) = lasts.get(lasts.len() / 2) {
                    map.retain(|_, f| f.last > cut);
                }
            }
        }
        let entry = map.entry(key).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: 0,
        });
        // A pair that stayed quiet past the longest wait starts over.
        if now - entry.last >= self.max_wait.max(900) {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        let wait = self.wait_after(entry.count);
        if wait > 0 {
            entry.locked_until = now + wait;
        }
        FailureOutcome {
            failures: entry.count,
            wait_seconds: wait,
        }
    }

    /// The wait imposed after `count` failures.
    fn wait_after(&self, count: u32) -> i64 {
        if count < self.free {
            return 0;
        }
        let doublings = (count - self.free).min(40);
        (BACKOFF_BASE << doublings).min(self.max_wait)
    }

    /// The owner got in from this address: its pair starts over.
    pub fn record_success(&self, username: &str, address: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&Self::key(username, address));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_per_address_and_user_and_doubles() {
        let t = LoginThrottle::new(5, 900);
        for i in 1..=4 {
            let out = t.record_failure("admin", "1.2.3.4", 100);
            assert_eq!(out.wait_seconds, 0, "failure {i} is free");
        }
        assert!(t.check("admin", "1.2.3.4", 100).is_ok());
        assert_eq!(t.record_failure("admin", "1.2.3.4", 100).wait_seconds, 5);
        assert_eq!(t.record_failure("admin", "1.2.3.4", 100).wait_seconds, 10);
        assert_eq!(t.record_failure("admin", "1.2.3.4", 100).wait_seconds, 20);
        assert_eq!(t.check("Admin", "1.2.3.4", 101), Err(19));
        // The owner elsewhere is not slowed at all.
        assert!(t.check("admin", "5.6.7.8", 101).is_ok());
        for _ in 0..30 {
            t.record_failure("admin", "1.2.3.4", 200);
        }
        assert_eq!(t.check("admin", "1.2.3.4", 200), Err(900));
        t.record_success("admin", "1.2.3.4");
        assert!(t.check("admin", "1.2.3.4", 201).is_ok());
    }

    #[test]
    fn rate_limiter_refuses_past_the_burst_then_refills() {
        let l = RateLimiter::new("test", 60);
        let start = Instant::now();
        for _ in 0..60 {
            assert!(l.check_at("a:1.2.3.4", start).is_ok());
        }
        assert_eq!(l.check_at("a:1.2.3.4", start), Err(1));
        assert!(
            l.check_at("a:5.6.7.8", start).is_ok(),
            "other keys unaffected"
        );
        assert!(l
            .check_at("a:1.2.3.4", start + Duration::from_secs(2))
            .is_ok());
        let off = RateLimiter::new("off", 0);
        for _ in 0..1000 {
            assert!(off.check("k").is_ok());
        }
    }

    #[test]
    fn memory_stays_bounded() {
        let l = RateLimiter::new("test", 1);
        let now = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            let _ = l.check_at(&format!("a:{i}"), now);
        }
        let len = l.buckets.lock().unwrap().len();
        assert!(len <= MAX_KEYS, "{len}");
    }

    #[test]
    fn powers_of_ten() {
        assert!(is_power_of_ten(1) && is_power_of_ten(10) && is_power_of_ten(1000));
        assert!(!is_power_of_ten(20) && !is_power_of_ten(11));
    }
}
