//! Licensing rules as plain data and pure functions. No I/O here, and no clock:
//! every function that depends on time takes `now` (unix seconds) as an argument.

pub mod error;
pub mod names;
pub mod roles;

pub use error::DomainError;
pub use roles::{Principal, Role};
