//! Login throttling: after repeated failures for one username or from one address, further
//! attempts are refused for a while with 429 and Retry-After.

use std::collections::HashMap;
use std::sync::Mutex;

pub const WINDOW_SECONDS: i64 = 15 * 60;
pub const MAX_FAILURES_PER_USER: u32 = 5;
pub const MAX_FAILURES_PER_ADDRESS: u32 = 20;
const MAX_TRACKED: usize = 100_000;

#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, i64)>>,
}

impl LoginThrottle {
    fn keys(username: &str, address: &str) -> [(String, u32); 2] {
        [
            (
                format!("u:{}", username.to_lowercase()),
                MAX_FAILURES_PER_USER,
            ),
            (format!("a:{address}"), MAX_FAILURES_PER_ADDRESS),
        ]
    }

    /// `Err(seconds)` when attempts must wait that long.
    pub fn check(&self, username: &str, address: &str, now: i64) -> Result<(), u64> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for (key, max) in Self::keys(username, address) {
            if let Some(&(count, since)) = map.get(&key) {
                if count >= max && now - since < WINDOW_SECONDS {
                    return Err((WINDOW_SECONDS - (now - since)).max(1) as u64);
                }
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, username: &str, address: &str, now: i64) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (_, since)| now - *since < WINDOW_SECONDS);
        }
        for (key, _) in Self::keys(username, address) {
            let entry = map.entry(key).or_insert((0, now));
            if now - entry.1 >= WINDOW_SECONDS {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
    }

    pub fn record_success(&self, username: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("u:{}", username.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_five_failures_then_recovers() {
        let t = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_USER {
            assert!(t.check("admin", "1.2.3.4", 100).is_ok());
            t.record_failure("admin", "1.2.3.4", 100);
        }
        let wait = t.check("Admin", "5.6.7.8", 160).unwrap_err();
        assert_eq!(wait, (WINDOW_SECONDS - 60) as u64);
        assert!(t.check("other", "5.6.7.8", 160).is_ok());
        assert!(t.check("admin", "1.2.3.4", 100 + WINDOW_SECONDS).is_ok());
        t.record_success("admin");
        assert!(t.check("admin", "9.9.9.9", 161).is_ok());
    }
}
