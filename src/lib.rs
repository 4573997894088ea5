//! satellite: an on-prem license authority.
//!
//! Layers, calling one way only: `web` and `cli` → `store` and `domain`; `store` → `domain`;
//! `domain` calls nothing and never reads the clock.

// A panic in a request handler is a dropped connection and a lost answer: errors are values.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod agent;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod fuzzing;
pub mod jobs;
pub mod notify;
pub mod service;
pub mod store;
pub mod sync;
pub mod web;
