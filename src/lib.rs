//! satellite: an on-prem license authority.
//!
//! Layers, calling one way only: `web` and `cli` → `store` and `domain`; `store` → `domain`;
//! `domain` calls nothing and never reads the clock.

pub mod agent;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod jobs;
pub mod store;
pub mod sync;
pub mod web;
