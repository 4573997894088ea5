//! Use cases. Each operation takes a capability from `access` (proof that the caller may
//! do it, checked once), the clock's `now` and a typed input parsed at the edge; it applies
//! `domain` rules, calls `store` repositories (plain SQL, no principals) and records the
//! event, all inside one `store.write(...)` so group commit is unchanged. Pages, the admin
//! API, the agent API, the CLI and sync call these; none calls another's handlers.

pub mod access;
pub mod accounts;
pub mod alerts;
pub mod api_clients;
pub mod bundle_preview;
pub mod events;
pub mod export_keys;
pub mod instance_list;
pub mod instances;
pub mod ledger;
pub mod licenses;
pub mod notifications;
pub mod reports;
pub mod reservations;
pub mod satellites;
pub mod settings;
pub mod sign_in;
pub mod sync_link;
pub mod tokens;
pub mod user_admin;
pub mod users;
pub mod virtual_accounts;

use crate::domain::DomainError;
use crate::store::StoreError;

/// The service layer's one error type: a broken rule, or storage failing underneath.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ServiceError {
    fn from(e: rusqlite::Error) -> Self {
        ServiceError::Store(e.into())
    }
}

impl From<ServiceError> for StoreError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Domain(d) => StoreError::Domain(d),
            ServiceError::Store(s) => s,
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
pub mod alert_rules;
pub mod instance_explain;
pub mod usage_snapshot;
