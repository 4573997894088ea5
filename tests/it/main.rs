//! Integration tests: each starts the real server on port 0 with a temp data dir.

mod support;

mod api_accounts;
mod browser;
mod cli;
mod pages;
mod scoping;
