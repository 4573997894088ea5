//! Integration tests: each starts the real server on port 0 with a temp data dir.

mod support;

mod adminux;
mod agent_protocol;
mod api_accounts;
mod browser;
mod cli;
mod hardening;
mod key_rotation;
mod licensing;
mod lifecycle;
mod operations;
mod pages;
mod reports;
mod scoping;
mod sync;
mod sync_hardening;
