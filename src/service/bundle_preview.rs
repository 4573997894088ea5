//! Import preview as a use case: who may ask (those who run sync), and the preview itself,
//! which changes nothing (see `sync::import::preview`). Pages, the admin API and the CLI
//! call this; the bytes were read at the edge and stay in memory.

use super::Result;
use crate::domain::{DomainError, Principal};
use crate::sync::import::preview;
use crate::sync::preview_report::Preview;
use crate::sync::{SyncContext, SyncError};
use std::sync::Arc;

/// The caller may run sync and handle bundles (system admins and operators).
#[derive(Debug, Clone)]
pub struct RunSync {
    pub actor: String,
}

pub fn run_sync(who: &Principal) -> Result<RunSync> {
    if who.can_sync() {
        Ok(RunSync {
            actor: who.actor.clone(),
        })
    } else {
        Err(DomainError::Forbidden("Only system admins and operators run sync.".into()).into())
    }
}

/// What importing `bundle` would change, nothing applied, nothing kept. Blocking: call
/// it off the async runtime.
pub fn preview_bundle(
    _cap: &RunSync,
    ctx: &SyncContext,
    bundle: Arc<[u8]>,
) -> std::result::Result<Preview, SyncError> {
    preview::preview_bytes(ctx, bundle)
}
