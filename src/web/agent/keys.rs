//! Instance keys, kept so that a signed request need not fetch its key. Every signed
//! agent request needs its instance's public key: read from SQLite it costs a trip
//! through the writer's queue, and parsed it costs a point decompression (about 4 us).
//!
//! Two levels:
//! - the busy instances' keys, parsed (a least-recently-used map of 65,536, about 25 MiB);
//! - every instance's key as its 32 stored bytes with its certificate's expiry, in a
//!   table indexed by the instance's integer key (40 bytes an instance: 40 MiB at a
//!   million), so that an estate reporting evenly, where the busy set is the whole
//!   estate, still makes no trip to the database. Only ids of this server's scheme
//!   (`store::instance_ids`) are kept there; a migrated row's legacy id uses the first
//!   level only.
//!
//! Both are only hints: a request that fails against a kept key is checked again against
//! the database, and the write that follows a signed request confirms the key in its own
//! transaction (`store::instances::Signer`), so a stale entry can neither let a request
//! through nor keep one out.

use crate::store::instance_ids::Scheme;
use crate::store::instances::{self, StoredKey};
use crate::web::State;
use ed25519_dalek::VerifyingKey;
use hashlink::LruCache;
use std::sync::{Mutex, RwLock};

/// Parsed keys kept: one estate's busy instances, not the whole estate.
const PARSED_CAPACITY: usize = 65_536;

/// Instance keys at or above this are not kept in the estate table (their requests fetch
/// their key): bounds the table at 640 MiB, far past the estates the satellite is sized
/// for. The table holds only keys read from the database or given at registration, so
/// its size follows the highest instance key issued (chunks of removed instances stay
/// allocated), never what an unauthenticated peer sends.
const ESTATE_KEYS_MAX: i64 = 16 << 20;

/// Slots per chunk of the estate table (160 KiB); chunks are allocated when first used.
const CHUNK: usize = 4096;

/// What signature checks need of an instance.
#[derive(Clone)]
pub struct KnownKey {
    pub key: VerifyingKey,
    pub cert_expires_at: i64,
}

/// An instance's key as stored. An expiry of 0 marks an empty slot (a certificate never
/// expires at the epoch), `FORGOTTEN` a key dropped since the server started.
#[derive(Clone, Copy, Default)]
struct Slot {
    public_key: [u8; 32],
    cert_expires_at: i64,
}

/// The expiry of a forgotten slot: never served, and never filled by `preload` (whose
/// rows may have been read before the instance was removed), only by `remember`.
const FORGOTTEN: i64 = i64::MIN;

impl Slot {
    fn holds_key(&self) -> bool {
        self.cert_expires_at != 0 && self.cert_expires_at != FORGOTTEN
    }
}

/// Every instance's stored key, by integer key (see the module docs).
#[derive(Default)]
struct EstateKeys {
    chunks: RwLock<Vec<Option<Box<[Slot]>>>>,
}

impl EstateKeys {
    fn position(key: i64) -> Option<(usize, usize)> {
        let key = usize::try_from(key)
            .ok()
            .filter(|_| key < ESTATE_KEYS_MAX)?;
        Some((key / CHUNK, key % CHUNK))
    }

    fn get(&self, key: i64) -> Option<Slot> {
        let (chunk, at) = Self::position(key)?;
        let chunks = self.chunks.read().ok()?;
        let slot = *chunks.get(chunk)?.as_ref()?.get(at)?;
        slot.holds_key().then_some(slot)
    }

    /// The slot of `key` in `chunks`, its chunk allocated if need be; None past the bound.
    fn slot_mut(chunks: &mut Vec<Option<Box<[Slot]>>>, key: i64) -> Option<&mut Slot> {
        let (chunk, at) = Self::position(key)?;
        if chunks.len() <= chunk {
            chunks.resize_with(chunk + 1, || None);
        }
        let slots = chunks[chunk].get_or_insert_with(|| vec![Slot::default(); CHUNK].into());
        slots.get_mut(at)
    }

    /// Changes the slot of `key` in place, under one lock.
    fn update(&self, key: i64, change: impl FnOnce(&mut Slot)) {
        if let Ok(mut chunks) = self.chunks.write() {
            if let Some(slot) = Self::slot_mut(&mut chunks, key) {
                change(slot);
            }
        }
    }

    /// Fills empty slots only: a key kept since the rows were read stays.
    fn fill(&self, rows: &[StoredKey]) {
        let Ok(mut chunks) = self.chunks.write() else {
            return;
        };
        for row in rows {
            let Ok(public_key) = <[u8; 32]>::try_from(row.public_key.as_slice()) else {
                continue;
            };
            // Empty only: neither a key kept since the rows were read nor a forgotten one.
            if let Some(slot) = Self::slot_mut(&mut chunks, row.key) {
                if slot.cert_expires_at == 0 {
                    *slot = Slot {
                        public_key,
                        cert_expires_at: row.cert_expires_at,
                    };
                }
            }
        }
    }

    fn set(&self, key: i64, slot: Slot) {
        self.update(key, |kept| *kept = slot);
    }
}

/// Least recently used parsed keys leave first; the estate table keeps the rest. Locks
/// are held for a lookup, and a handful of server threads take them.
pub struct KeyCache {
    parsed: Mutex<LruCache<String, KnownKey>>,
    estate: EstateKeys,
    /// This server's id scheme, to find an id's integer key.
    scheme: Scheme,
}

impl KeyCache {
    pub fn new(scheme: Scheme) -> Self {
        KeyCache {
            parsed: Mutex::new(LruCache::new(PARSED_CAPACITY)),
            estate: EstateKeys::default(),
            scheme,
        }
    }

    fn estate_key(&self, instance_id: &str) -> Option<i64> {
        self.scheme.parse(instance_id)
    }

    pub fn get(&self, instance_id: &str) -> Option<KnownKey> {
        if let Some(known) = self.parsed.lock().ok()?.get(instance_id).cloned() {
            return Some(known);
        }
        let slot = self.estate.get(self.estate_key(instance_id)?)?;
        let known = KnownKey {
            key: VerifyingKey::from_bytes(&slot.public_key).ok()?,
            cert_expires_at: slot.cert_expires_at,
        };
        self.remember_parsed(instance_id, known.clone());
        Some(known)
    }

    pub fn remember(&self, instance_id: &str, known: KnownKey) {
        if let Some(key) = self.estate_key(instance_id) {
            let slot = Slot {
                public_key: known.key.to_bytes(),
                cert_expires_at: known.cert_expires_at,
            };
            self.estate.set(key, slot);
        }
        self.remember_parsed(instance_id, known);
    }

    fn remember_parsed(&self, instance_id: &str, known: KnownKey) {
        if let Ok(mut keys) = self.parsed.lock() {
            keys.insert(instance_id.to_string(), known);
        }
    }

    /// A renewal moved the registration's end: the kept key stays, with the new expiry.
    pub fn renewed(&self, instance_id: &str, cert_expires_at: i64) {
        if let Ok(mut keys) = self.parsed.lock() {
            if let Some(known) = keys.get_mut(instance_id) {
                known.cert_expires_at = cert_expires_at;
            }
        }
        if let Some(key) = self.estate_key(instance_id) {
            self.estate.update(key, |slot| {
                if slot.holds_key() {
                    slot.cert_expires_at = cert_expires_at;
                }
            });
        }
    }

    /// Keeps these stored keys in the estate table (see `preload`).
    pub fn fill(&self, rows: &[StoredKey]) {
        self.estate.fill(rows);
    }

    pub fn forget(&self, instance_id: &str) {
        if let Ok(mut keys) = self.parsed.lock() {
            keys.remove(instance_id);
        }
        if let Some(key) = self.estate_key(instance_id) {
            let forgotten = Slot {
                public_key: [0; 32],
                cert_expires_at: FORGOTTEN,
            };
            self.estate.set(key, forgotten);
        }
    }
}

/// Rows read per step of `preload`: one short read transaction each.
const PRELOAD_STEP: usize = 50_000;

/// Fills the estate table from the database after a start, a step at a time, so that an
/// estate reporting evenly finds its keys within seconds of a restart instead of once
/// each instance has made a trip. About a second per million instances, off the
/// executor; requests meanwhile fall back to the database as they would anyway.
pub async fn preload(state: State) {
    let (mut after, mut loaded) = (0, 0);
    loop {
        let read = state
            .store
            .read(move |c| instances::keys_after(c, after, PRELOAD_STEP))
            .await;
        match read {
            Ok(rows) => {
                let Some(last) = rows.last() else { break };
                after = last.key;
                state.agent_keys.fill(&rows);
                loaded += rows.len();
                if rows.len() < PRELOAD_STEP {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot preload instance keys; they are read as needed");
                return;
            }
        }
    }
    tracing::info!(instances = loaded, "instance keys loaded");
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn known(seed: u8) -> KnownKey {
        KnownKey {
            key: SigningKey::from_bytes(&[seed; 32]).verifying_key(),
            cert_expires_at: 1_900_000_000 + i64::from(seed),
        }
    }

    fn scheme() -> Scheme {
        Scheme {
            prefix: "kabcde".into(),
            first_own: 1,
        }
    }

    #[test]
    fn keys_of_the_whole_estate_outlive_the_parsed_level() {
        let cache = KeyCache::new(scheme());
        let ids: Vec<String> = (1..=(PARSED_CAPACITY as i64 + 10))
            .map(|k| scheme().encode(k))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            cache.remember(id, known((i % 250) as u8));
        }
        // The first ids left the parsed level long ago; the estate table still has them.
        let first = cache.get(&ids[0]).expect("kept in the estate table");
        assert_eq!(first.key, known(0).key);
        assert_eq!(first.cert_expires_at, known(0).cert_expires_at);
        cache.renewed(&ids[0], 2_000_000_000);
        cache.renewed(&ids[ids.len() - 1], 2_000_000_001);
        assert_eq!(cache.get(&ids[0]).unwrap().cert_expires_at, 2_000_000_000);
        let last = cache.get(&ids[ids.len() - 1]).unwrap();
        assert_eq!(last.cert_expires_at, 2_000_000_001, "both levels renewed");
        cache.forget(&ids[0]);
        assert!(cache.get(&ids[0]).is_none(), "forgotten in both levels");
        assert!(cache.get(&scheme().encode(999_999)).is_none(), "never seen");
    }

    #[test]
    fn filling_keeps_keys_already_known() {
        let cache = KeyCache::new(scheme());
        let id = scheme().encode(5);
        cache.remember(&id, known(5));
        let stored = |key: i64, seed: u8| StoredKey {
            key,
            public_key: known(seed).key.to_bytes().to_vec(),
            cert_expires_at: 1_950_000_000,
        };
        let removed = scheme().encode(7);
        cache.remember(&removed, known(7));
        cache.forget(&removed);
        cache.fill(&[stored(5, 9), stored(6, 6), stored(7, 7)]);
        assert_eq!(cache.get(&id).unwrap().key, known(5).key, "not overwritten");
        assert!(
            cache.get(&removed).is_none(),
            "a forgotten key is not filled again"
        );
        cache.renewed(&removed, 2_000_000_000);
        assert!(cache.get(&removed).is_none(), "nor renewed");
        cache.remember(&removed, known(8));
        assert_eq!(
            cache.get(&removed).unwrap().key,
            known(8).key,
            "remembered again"
        );
        let filled = cache.get(&scheme().encode(6)).expect("filled");
        assert_eq!(filled.key, known(6).key);
        assert_eq!(filled.cert_expires_at, 1_950_000_000);
    }

    #[test]
    fn ids_outside_the_scheme_use_the_parsed_level_only() {
        let cache = KeyCache::new(scheme());
        cache.remember("legacy-7", known(7));
        assert_eq!(cache.get("legacy-7").map(|k| k.key), Some(known(7).key));
        // Another server's prefix, and a key past the table's bound: not in the table.
        let other = "inst_zzzzzz0000000003";
        cache.remember(other, known(3));
        let far = scheme().encode(ESTATE_KEYS_MAX);
        cache.remember(&far, known(4));
        assert!(cache.estate.get(3).is_none());
        assert!(EstateKeys::position(ESTATE_KEYS_MAX).is_none());
        assert!(cache.get(&far).is_some(), "still in the parsed level");
    }
}
