//! What is kept of an imported bundle: a copy in archive/ when applied, in rejected/ with
//! its reason (within the caps) when rejected, and the rejection's history row.

use super::verify::Trust;
use super::{Origin, Source};
use crate::domain::sync::{BundleResult, Direction};
use crate::store::sync_state::{self, History};
use crate::sync::bundle::{BundleSource, Manifest};
use crate::sync::context::SyncContext;
use crate::sync::storage;
use std::path::{Path, PathBuf};

/// Keeps a copy of a bundle in `dir` (archive/ or rejected/): a file is moved or copied
/// as its source says; bytes held in memory are written under the bundle's kind and id.
pub(super) fn keep(
    src: &BundleSource,
    origin: Origin,
    dir: &Path,
    kind: &str,
    bundle_id: &str,
) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let to = match (src, origin) {
        (BundleSource::File(from), Origin::File(source)) => {
            let name = from
                .file_name()?
                .to_string_lossy()
                .trim_start_matches('.')
                .to_string();
            let to = dir.join(name);
            let done = match source {
                Source::Inbox => {
                    std::fs::rename(from, &to).or_else(|_| std::fs::copy(from, &to).map(|_| ()))
                }
                Source::Path => std::fs::copy(from, &to).map(|_| ()),
            };
            done.ok().map(|_| to)
        }
        (BundleSource::Memory(bytes), _) => {
            let to = dir.join(format!(
                "{}-{}.tar.gz",
                storage::safe_name(kind),
                storage::safe_name(bundle_id)
            ));
            std::fs::write(&to, &bytes[..]).ok().map(|_| to)
        }
        (BundleSource::File(_), _) => None,
    }?;
    // The age that caps go by is when the file was kept here, not when it was written.
    storage::touch(&to);
    Some(to)
}

fn log_rejection(ctx: &SyncContext, m: Option<&Manifest>, reason: &str) {
    let now = ctx.clock.unix();
    let h = History {
        at: now,
        account: m.map(|m| m.account.clone()),
        bundle_id: m.map(|m| m.bundle_id.clone()).unwrap_or_else(|| "-".into()),
        kind: m.and_then(Manifest::bundle_kind),
        direction: Direction::In,
        sequence: m.map_or(0, |m| m.sequence),
        result: BundleResult::Rejected,
        detail: reason.to_string(),
        ..Default::default()
    };
    if let Err(e) = ctx.store.write_blocking(|tx| sync_state::record(tx, &h)) {
        tracing::error!(error = %e, "cannot record a rejected bundle");
    }
}

/// What is kept of a rejected bundle. An exchange body is never kept, and its rejection
/// is written to history only when the bundle verified against a key pinned for its
/// sender (so no stranger can write rows with text of its choosing). Files (and the
/// upstream's answers to us) go to rejected/ with their reason, within the caps.
pub(super) fn rejected(
    ctx: &SyncContext,
    src: &BundleSource,
    origin: Origin,
    trust: Option<Trust>,
    verified: Option<&Manifest>,
    reason: &str,
) {
    if origin == Origin::Exchange {
        if let (Some(m), Some(Trust::Pinned)) = (verified, trust) {
            log_rejection(ctx, Some(m), reason);
        }
        return;
    }
    let peeked;
    let m = match verified {
        Some(m) => Some(m),
        None => {
            peeked = src.peek();
            peeked.as_ref()
        }
    };
    log_rejection(ctx, m, reason);
    let dir = ctx.dir("rejected");
    let size = match src {
        BundleSource::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        BundleSource::Memory(b) => b.len() as u64,
    };
    let kept = if size <= ctx.limits.rejected_max_bytes && ctx.limits.rejected_max_files > 0 {
        keep(
            src,
            origin,
            &dir,
            m.map_or("unknown", |m| m.kind.as_str()),
            m.map_or("-", |m| m.bundle_id.as_str()),
        )
    } else {
        // Too large to keep at all: an inbox file is dropped, only its reason stays.
        if let (BundleSource::File(p), Origin::File(Source::Inbox)) = (src, origin) {
            let _ = std::fs::remove_file(p);
        }
        None
    };
    let name = match (&kept, src) {
        (Some(p), _) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
        (None, BundleSource::File(p)) => p
            .file_name()
            .map(|n| n.to_string_lossy().trim_start_matches('.').to_string()),
        (None, BundleSource::Memory(_)) => None,
    }
    .unwrap_or_else(|| format!("{}.tar.gz", uuid::Uuid::new_v4()));
    let note = if kept.is_some() {
        format!("{reason}\n")
    } else {
        format!(
            "{reason}\n(the bundle itself was not kept: {size} bytes is over rejected_max_bytes)\n"
        )
    };
    if let Err(e) = storage::keep_rejected(&dir, &name, &note, &ctx.limits) {
        tracing::error!(error = %e, "cannot record why a bundle was rejected");
    }
}
