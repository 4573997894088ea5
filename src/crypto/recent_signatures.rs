//! Signatures of the response bodies signed last, so a body signed a moment ago is not
//! signed again. Ed25519 is deterministic (RFC 8032, 5.1.6): one key signs one message to
//! one signature, so a kept signature is the very one signing again would make. Agent
//! replies repeat: every instance that reports the same counts within a second gets the
//! same body (nothing in it names the instance), and so does every refusal of a kind.
//!
//! Bounded: bodies past `MAX_BODY` bytes are signed without being kept, and at most
//! `CAPACITY` are kept, the least recently used leaving first.

use hashlink::LruCache;
use std::sync::Mutex;

/// Bodies kept at most: a few hundred distinct replies a second is already a varied
/// estate; more would only be evicted before they repeat.
const CAPACITY: usize = 256;

/// Largest body kept (a usage reply with a few dozen entitlements): 256 KiB at most in all.
const MAX_BODY: usize = 1024;

#[derive(Default)]
pub struct RecentSignatures {
    kept: Mutex<Option<LruCache<Box<[u8]>, String>>>,
}

impl RecentSignatures {
    /// The signature `sign` makes of `body`, kept from the last time when there was one,
    /// and whether it was (true: nothing was signed).
    pub fn get_or_sign(&self, body: &[u8], sign: impl FnOnce(&[u8]) -> String) -> (String, bool) {
        if body.len() > MAX_BODY {
            return (sign(body), false);
        }
        if let Some(kept) = self.with(|kept| kept.get(body).cloned()).flatten() {
            return (kept, true);
        }
        let signature = sign(body);
        self.with(|kept| kept.insert(body.into(), signature.clone()));
        (signature, false)
    }

    /// Runs `f` on the kept signatures; None when the lock is poisoned (then nothing is
    /// kept and every body is signed).
    fn with<T>(&self, f: impl FnOnce(&mut LruCache<Box<[u8]>, String>) -> T) -> Option<T> {
        let mut guard = self.kept.lock().ok()?;
        Some(f(guard.get_or_insert_with(|| LruCache::new(CAPACITY))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_repeated_body_is_signed_once_and_gets_the_same_signature() {
        let memo = RecentSignatures::default();
        let key = crate::crypto::AuthorityKey::from_signing_key(
            ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
        );
        let signed = Cell::new(0);
        let sign = |b: &[u8]| {
            signed.set(signed.get() + 1);
            key.sign_b64(b)
        };
        let (a, kept) = memo.get_or_sign(b"{\"status\":\"authorized\"}", sign);
        assert!(!kept);
        let (b, kept) = memo.get_or_sign(b"{\"status\":\"authorized\"}", sign);
        assert!(kept);
        assert_eq!(a, b);
        assert_eq!(a, key.sign_b64(b"{\"status\":\"authorized\"}"));
        assert_eq!(signed.get(), 1);
        let (c, _) = memo.get_or_sign(b"{\"status\":\"not_authorized\"}", sign);
        assert_ne!(a, c, "another body, its own signature");
        assert_eq!(signed.get(), 2);
    }

    #[test]
    fn large_bodies_are_not_kept_and_the_oldest_leave_first() {
        let memo = RecentSignatures::default();
        let signed = Cell::new(0);
        let sign = |b: &[u8]| {
            signed.set(signed.get() + 1);
            format!("sig{}", b.len())
        };
        let large = vec![b'x'; MAX_BODY + 1];
        memo.get_or_sign(&large, sign);
        memo.get_or_sign(&large, sign);
        assert_eq!(signed.get(), 2, "not kept");
        for n in 0..=CAPACITY {
            memo.get_or_sign(format!("body {n}").as_bytes(), sign);
        }
        let before = signed.get();
        memo.get_or_sign(format!("body {CAPACITY}").as_bytes(), sign);
        assert_eq!(signed.get(), before, "the newest is kept");
        memo.get_or_sign(b"body 0", sign);
        assert_eq!(signed.get(), before + 1, "the oldest left");
    }
}
