//! Uploads waiting for Apply or Discard after the Sync page showed their preview. Held in
//! memory only (nothing of an unapplied upload touches disk), bounded in number and age,
//! each under a random id that only the session that uploaded it can use.

use crate::crypto::secrets;
use crate::sync::preview_report::Preview;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One previewed upload.
#[derive(Clone)]
pub struct PendingImport {
    pub id: String,
    /// The session that uploaded it (its token hash): no other session sees it.
    session: String,
    pub bytes: Arc<[u8]>,
    /// Hex sha256 of `bytes` as previewed; Apply checks the bytes still match it.
    pub sha256: String,
    pub preview: Preview,
    /// Where to return after Apply or Discard (the page the upload came from).
    pub back: String,
    created: Instant,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub struct PendingImports {
    items: Mutex<Vec<PendingImport>>,
    max: usize,
    ttl: Duration,
}

impl PendingImports {
    pub fn new(max: usize, ttl: Duration) -> Self {
        Self {
            items: Mutex::new(vec![]),
            max,
            ttl,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vec<PendingImport>) -> T) -> T {
        // A poisoned lock only means another request panicked mid-update: the list of
        // plain values is still whole, so go on with it.
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = self.ttl;
        items.retain(|p| p.created.elapsed() < ttl);
        f(&mut items)
    }

    /// Keeps an upload and its preview; answers its id. The oldest go when over the cap.
    pub fn put(&self, session: &str, bytes: Arc<[u8]>, preview: Preview, back: &str) -> String {
        let id = secrets::random_secret(16);
        let item = PendingImport {
            id: id.clone(),
            session: session.to_string(),
            sha256: sha256_hex(&bytes),
            bytes,
            preview,
            back: back.to_string(),
            created: Instant::now(),
        };
        let max = self.max.max(1);
        self.with(|items| {
            while items.len() >= max {
                items.remove(0);
            }
            items.push(item);
        });
        id
    }

    /// The upload `id` of this session, left in place.
    pub fn get(&self, id: &str, session: &str) -> Option<PendingImport> {
        self.with(|items| {
            items
                .iter()
                .find(|p| p.id == id && p.session == session)
                .cloned()
        })
    }

    /// The upload `id` of this session, removed (Apply or Discard).
    pub fn take(&self, id: &str, session: &str) -> Option<PendingImport> {
        self.with(|items| {
            let at = items
                .iter()
                .position(|p| p.id == id && p.session == session)?;
            Some(items.remove(at))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::preview_report::PreviewResult;

    fn preview() -> Preview {
        Preview {
            result: PreviewResult::Duplicate,
            kind: crate::domain::sync::BundleKind::SyncResponse
                .as_str()
                .into(),
            bundle_id: "b".into(),
            sequence: 1,
            account: "Acme".into(),
            changes_account: None,
            virtual_accounts: vec![],
            turns_short: vec![],
        }
    }

    #[test]
    fn an_upload_is_its_sessions_only_bounded_and_taken_once() {
        let pending = PendingImports::new(2, Duration::from_secs(600));
        let a = pending.put("s1", Arc::from(&b"one"[..]), preview(), "/sync");
        assert!(pending.get(&a, "s2").is_none(), "another session");
        assert_eq!(pending.get(&a, "s1").unwrap().sha256, sha256_hex(b"one"));
        let b = pending.put("s1", Arc::from(&b"two"[..]), preview(), "/sync");
        let _c = pending.put("s1", Arc::from(&b"three"[..]), preview(), "/sync");
        assert!(
            pending.get(&a, "s1").is_none(),
            "the oldest went over the cap"
        );
        assert!(pending.take(&b, "s1").is_some());
        assert!(pending.take(&b, "s1").is_none(), "taken once");
        let gone = PendingImports::new(2, Duration::ZERO);
        let d = gone.put("s1", Arc::from(&b"x"[..]), preview(), "/sync");
        assert!(gone.get(&d, "s1").is_none(), "expired");
    }
}
