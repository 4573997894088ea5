//! Instance keys recently used, already parsed. Every signed agent request needs its
//! instance's public key: read from SQLite it costs a trip through the writer's queue,
//! and parsed it costs a point decompression. The cache is only a hint: a request that
//! fails against a cached key is checked again against the database, and the write that
//! follows a signed request confirms the key in its own transaction
//! (`store::instances::Signer`), so a stale entry can neither let a request through nor
//! keep one out.

use ed25519_dalek::VerifyingKey;
use hashlink::LruCache;
use std::sync::Mutex;

/// About 25 MiB at most: one estate's busy instances, not the whole estate.
const CAPACITY: usize = 65_536;

/// What signature checks need of an instance.
#[derive(Clone)]
pub struct KnownKey {
    pub key: VerifyingKey,
    pub cert_expires_at: i64,
}

/// Least recently used keys leave first. One lock: it is held for a hash lookup, and a
/// handful of server threads take it.
pub struct KeyCache {
    keys: Mutex<LruCache<String, KnownKey>>,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            keys: Mutex::new(LruCache::new(CAPACITY)),
        }
    }
}

impl KeyCache {
    pub fn get(&self, instance_id: &str) -> Option<KnownKey> {
        self.keys.lock().ok()?.get(instance_id).cloned()
    }

    pub fn remember(&self, instance_id: &str, known: KnownKey) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(instance_id.to_string(), known);
        }
    }

    pub fn forget(&self, instance_id: &str) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.remove(instance_id);
        }
    }
}
