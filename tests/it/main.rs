//! Integration tests: each starts the real server on port 0 with a temp data dir.

mod support;

mod adminux;
mod adminux_browser;
mod adminux_pages;
mod adminux_sync;
mod agent_protocol;
mod api_accounts;
mod bench;
mod browser;
mod capabilities;
mod cli;
mod counting;
mod export_keys;
mod forms;
mod forms_browser;
mod hardening;
mod import_preview;
mod key_rotation;
mod layering;
mod layering_sql;
mod ledger;
mod licensing;
mod lifecycle;
mod notifications;
mod operations;
mod ops_browser;
mod ops_pages;
mod pages;
mod reports;
mod reservations;
mod reservations_browser;
mod scoping;
mod settings;
mod sync;
mod sync_hardening;
