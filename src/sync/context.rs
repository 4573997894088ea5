//! What sync operations need, whoever starts them (CLI, web, scheduler).

use crate::clock::Clock;
use crate::config::{ServerRole, Settings};
use crate::crypto::AuthorityKey;
use crate::domain::sync::BundleKind;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
pub struct SyncContext {
    pub store: Store,
    pub authority: Arc<AuthorityKey>,
    pub role: ServerRole,
    pub bundle_dir: PathBuf,
    pub clock: Clock,
    pub proxy: Option<String>,
    pub limits: super::storage::Limits,
}

impl SyncContext {
    pub fn new(
        store: Store,
        authority: Arc<AuthorityKey>,
        settings: &Settings,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            authority,
            role: settings.role,
            bundle_dir: settings.bundle_dir.clone(),
            clock,
            proxy: settings.upstream_proxy.clone(),
            limits: super::storage::Limits {
                exchange_body_max_bytes: settings.exchange_body_max_bytes,
                rejected_max_files: settings.rejected_max_files,
                rejected_max_bytes: settings.rejected_max_bytes,
            },
        }
    }

    pub fn dir(&self, sub: &str) -> PathBuf {
        self.bundle_dir.join(sub)
    }

    /// A file name in outbox/ that says what the bundle is.
    pub fn outbox_path(&self, account: &str, kind: BundleKind, sequence: i64) -> PathBuf {
        let safe: String = account
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3f");
        self.dir("outbox").join(format!(
            "{safe}-{}-{sequence}-{stamp}.tar.gz",
            kind.as_str()
        ))
    }
}
