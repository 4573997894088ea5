//! Licensing rules as plain data and pure functions. No I/O here, and no clock:
//! every function that depends on time takes `now` (unix seconds) as an argument.

pub mod alerts;
pub mod compliance;
pub mod error;
pub mod export_key;
pub mod instance;
pub mod ledger;
pub mod license;
pub mod lifecycle;
pub mod names;
pub mod registration;
pub mod reservation;
pub mod roles;
pub mod schedule;
pub mod sync;
pub mod timers;
pub mod token;

pub use error::DomainError;
pub use roles::{Principal, Role};
pub mod explain;
pub mod license_form;
pub(crate) mod string_enum;
