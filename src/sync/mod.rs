//! Sync with the upstream (CONTRACT.md section 6): signed bundles, the satellite's and the
//! upstream's side of registration and sync, connected transport, schedules and the inbox.

pub mod bundle;
pub mod preview_report;
pub mod records;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The bundle failed verification or breaks the protocol; nothing was changed.
    #[error("{0}")]
    Rejected(String),
    /// Seen before: a no-op.
    #[error("bundle {0} was imported before")]
    Duplicate(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
    #[error("cannot reach the upstream: {0}")]
    Network(String),
    /// The upstream's TLS certificate does not chain to the configured CA.
    #[error("{0}")]
    Untrusted(String),
    /// The upstream answered, refusing.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Invalid(#[from] crate::domain::DomainError),
}

impl SyncError {
    /// A verdict on the bundle or the request (the sender's doing, final), as opposed to
    /// a failure here or on the way (database, disk, network) that a retry may get past.
    /// Only a verdict moves a bundle to rejected/; anything else leaves it where it is.
    pub fn is_verdict(&self) -> bool {
        match self {
            SyncError::Rejected(_)
            | SyncError::Duplicate(_)
            | SyncError::Invalid(_)
            | SyncError::Refused(_)
            | SyncError::Untrusted(_) => true,
            SyncError::Store(_) | SyncError::Io(_) | SyncError::Network(_) => false,
        }
    }

    pub(crate) fn io(what: &'static str) -> impl Fn(std::io::Error) -> SyncError {
        move |e| SyncError::Io(format!("{what}: {e}"))
    }
}

impl From<rusqlite::Error> for SyncError {
    fn from(e: rusqlite::Error) -> Self {
        SyncError::Store(e.into())
    }
}

pub mod context;
pub mod import;
pub mod ledger_sync;
pub mod outbound;

pub use context::SyncContext;
pub mod scheduler;
pub mod transport;

pub mod storage;

pub mod demand;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_and_disk_errors_are_no_verdict() {
        assert!(SyncError::Rejected("tampered".into()).is_verdict());
        let sqlite = rusqlite::Error::InvalidQuery;
        assert!(!SyncError::from(sqlite).is_verdict());
        assert!(!SyncError::Io("disk full".into()).is_verdict());
        assert!(!SyncError::Network("timeout".into()).is_verdict());
    }
}
