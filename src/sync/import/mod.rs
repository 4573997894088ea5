//! Importing any bundle: who may send what, in which order, signed by whom. All of a
//! bundle is applied in one transaction or none of it; a bundle seen before is a no-op.
//!
//! Two passes (CONTRACT.md section 6, "verification first and whole"): the first verifies
//! the bundle to its last byte against the key this server trusts for its sender and
//! decides nothing else; only then is it looked up ("seen before"), checked for order and
//! applied in a second, transactional pass. So a tampered copy of an applied bundle is
//! rejected, never answered as a duplicate, and an unverified sender gets nothing signed.

//!
//! The passes live apart: verify.rs (first pass), plan.rs (the plan and each record
//! parsed), apply.rs (one function per kind of bundle), keep.rs (archive/, rejected/),
//! preview.rs (the second pass rolled back, reporting what it would change).

mod apply;
mod keep;
mod plan;
pub mod preview;

mod verify;

pub use verify::verify_file;

use super::bundle::{BundleSource, Manifest};
use super::context::SyncContext;
use super::outbound::{self, Written};
use super::SyncError;
use crate::config::ServerRole;
use crate::domain::sync::{BundleKind, BundleResult};
use crate::store::sync_state;
use serde_json::{json, Value};
use std::path::Path;

/// Where the file came from decides what happens to it afterwards.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// In inbox/ (dropped by an operator, or an admin's upload saved there): moved.
    Inbox,
    /// A path given on the command line: copied, the original left alone.
    Path,
}

/// Where a bundle came from, which decides what is kept of it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A file an operator or admin put there (see `Source`).
    File(Source),
    /// The upstream's answer to our own exchange, held in memory.
    Fetched,
    /// An unauthenticated peer's body on `/sync/v1/exchange`, held in memory: nothing of
    /// it is kept, and history is written only once its sender proved who it is.
    Exchange,
}

#[derive(Debug)]
pub struct Outcome {
    /// Applied or duplicate.
    pub result: BundleResult,
    pub kind: BundleKind,
    pub bundle_id: String,
    pub account: String,
    pub summary: Value,
    /// The response bundle, when the upstream answered a request.
    pub answer: Option<Written>,
}

/// The kind of a verified bundle (verification refuses any other, so this is a guard).
pub(crate) fn known_kind(m: &Manifest) -> Result<BundleKind, SyncError> {
    m.bundle_kind()
        .ok_or_else(|| reject(format!("'{}' is not a kind of bundle", m.kind)))
}

fn reject(msg: impl Into<String>) -> SyncError {
    SyncError::Rejected(msg.into())
}

/// Reads the manifest only (to route and to describe a file), verifying nothing.
pub fn peek(path: &Path) -> Option<Manifest> {
    BundleSource::File(path.to_owned()).peek()
}

/// The upstream answers a repeated request again (from current state, nothing applied),
/// so a response lost on the way back can be recovered by resending the request.
fn answer_again(ctx: &SyncContext, m: &Manifest) -> Result<Option<Written>, SyncError> {
    let Some(kind) = m.bundle_kind().filter(|k| k.is_request()) else {
        return Ok(None);
    };
    if ctx.role != ServerRole::Upstream {
        return Ok(None);
    }
    ctx.store.write_blocking(|tx| {
        let Some(sat) = sync_state::satellite(tx, &m.from.authority_id, &m.account)? else {
            return Ok(None);
        };
        let ack = (kind == BundleKind::SyncRequest).then_some(m.sequence);
        outbound::response(ctx, tx, m, &sat, ack).map(Some)
    })
}

/// Imports a bundle file: verifies, applies, archives (or moves it to rejected/ with a
/// `.reason` file beside it). An error that is not the sender's fault (the database, the
/// disk) leaves the file where it is, to be tried again.
pub fn import_file(
    ctx: &SyncContext,
    path: &Path,
    source: Source,
    progress: &dyn Fn(u64),
) -> Result<Outcome, SyncError> {
    import(
        ctx,
        &BundleSource::File(path.to_owned()),
        Origin::File(source),
        progress,
    )
}

/// Imports an admin's upload saved under a hidden name in inbox/. Whatever the outcome the
/// upload is gone from inbox/ afterwards: archived, in rejected/ within its caps, or
/// (after an error that is not the sender's fault) deleted, for the admin to send again.
pub fn import_upload(ctx: &SyncContext, path: &Path) -> Result<Outcome, SyncError> {
    let result = import_file(ctx, path, Source::Inbox, &|_| {});
    if path.exists() {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Imports the upstream's answer to our own exchange, held in memory.
pub fn import_fetched(ctx: &SyncContext, body: std::sync::Arc<[u8]>) -> Result<Outcome, SyncError> {
    import(ctx, &BundleSource::Memory(body), Origin::Fetched, &|_| {})
}

/// Imports an unauthenticated peer's body from `/sync/v1/exchange`. Until it verifies
/// against a pinned key (or its registration token checks out) nothing of it is written:
/// no file, no history row.
pub fn import_exchange(
    ctx: &SyncContext,
    body: std::sync::Arc<[u8]>,
) -> Result<Outcome, SyncError> {
    import(ctx, &BundleSource::Memory(body), Origin::Exchange, &|_| {})
}

fn import(
    ctx: &SyncContext,
    src: &BundleSource,
    origin: Origin,
    progress: &dyn Fn(u64),
) -> Result<Outcome, SyncError> {
    let (verified, trust) = verify::verify_sender(ctx, src);
    let result = match verified {
        Ok(v) => match apply::apply(ctx, src, &v, progress) {
            Err(SyncError::Duplicate(id)) => duplicate(ctx, &v.manifest, id),
            other => other,
        }
        .map_err(|e| (e, Some(v.manifest))),
        Err(e) => Err((e, None)),
    };
    match result {
        Ok(outcome) => {
            // Files leave inbox/ either way; bytes in memory are archived only when applied.
            if matches!(origin, Origin::File(_)) || outcome.result == BundleResult::Applied {
                keep::keep(
                    src,
                    origin,
                    &ctx.dir("archive"),
                    outcome.kind.as_str(),
                    &outcome.bundle_id,
                );
            }
            tracing::info!(kind = %outcome.kind, bundle = %outcome.bundle_id, result = %outcome.result, "bundle imported");
            Ok(outcome)
        }
        Err((SyncError::Rejected(reason), verified)) => {
            keep::rejected(ctx, src, origin, trust, verified.as_ref(), &reason);
            tracing::warn!(%reason, "bundle rejected");
            Err(SyncError::Rejected(reason))
        }
        // Not the sender's fault (database, disk): no verdict, the file stays for a retry.
        Err((other, _)) => Err(other),
    }
}

fn duplicate(ctx: &SyncContext, m: &Manifest, id: String) -> Result<Outcome, SyncError> {
    Ok(Outcome {
        kind: known_kind(m)?,
        result: BundleResult::Duplicate,
        bundle_id: id,
        account: m.account.clone(),
        summary: json!({ "message": "this bundle was imported before; nothing changed" }),
        answer: answer_again(ctx, m)?,
    })
}
