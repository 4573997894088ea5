//! Async steps around service use cases that both the pages and the admin API take (a read
//! and a write around I/O, the clock and the settings), so neither calls the other's
//! handlers.

pub mod alerts;
pub mod instance_list;
pub mod notifications;
pub mod sync;

pub mod account;
pub use account::{edit_account, read_account, read_as, Now};
