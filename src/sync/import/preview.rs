//! The import preview: the same two passes as an import, the second run under a savepoint
//! that is always rolled back, so a preview and the import that follows it cannot
//! disagree. Nothing is kept: no file in archive/ or rejected/, no history row, no event,
//! no sequence advanced, no answer bundle written.

use super::apply::{apply_in, Mode};
use super::verify;
use crate::store::preview::{self, AccountPicture};
use crate::sync::bundle::BundleSource;
use crate::sync::context::SyncContext;
use crate::sync::preview_report::{compare, turns_short, Preview, PreviewResult};
use crate::sync::SyncError;

/// What importing the bundle would change. A bundle that would be rejected answers
/// `SyncError::Rejected` with the reason, exactly as the import would.
pub fn preview(ctx: &SyncContext, src: &BundleSource) -> Result<Preview, SyncError> {
    let (verified, _) = verify::verify_sender(ctx, src);
    let verified = verified?;
    let m = &verified.manifest;
    let today = ctx.clock.now().date_naive();
    let report = |result, changes_account, virtual_accounts: Vec<_>| Preview {
        result,
        kind: m.kind.clone(),
        bundle_id: m.bundle_id.clone(),
        sequence: m.sequence,
        account: m.account.clone(),
        changes_account,
        turns_short: turns_short(&virtual_accounts),
        virtual_accounts,
    };
    // The writer's transaction ends in a rollback too (by answering `Ended::Done`, which
    // write_blocking takes for an error), so not even unchanged pages are written to the
    // WAL: the database files stay byte for byte as they were.
    let ended = ctx.store.write_blocking(|tx| {
        let (account_id, after) = preview::rolled_back(tx, |tx| {
            let (_, account_id) = apply_in(ctx, tx, src, &verified, Mode::Preview, &|_| {})?;
            let after = preview::account_picture(tx, account_id, today)?;
            Ok::<_, SyncError>((account_id, after))
        })?;
        // Rolled back: what the database holds now is exactly what it held before.
        let before: AccountPicture = preview::account_picture(tx, account_id, today)?;
        let name = preview::account_name(tx, account_id)?;
        Err::<(), _>(Ended::Done(name, compare(&before, &after)))
    });
    let ran = match ended {
        Err(Ended::Done(name, vas)) => Ok((name, vas)),
        Err(Ended::Failed(e)) => Err(e),
        Ok(()) => Err(SyncError::Io("the preview did not end".into())),
    };
    match ran {
        Ok((name, vas)) => Ok(report(PreviewResult::WouldApply, name, vas)),
        Err(SyncError::Duplicate(_)) => Ok(report(PreviewResult::Duplicate, None, vec![])),
        Err(e) => Err(e),
    }
}

/// How the preview's transaction ended: always rolled back, with the report or a failure.
enum Ended {
    Done(Option<String>, Vec<crate::sync::preview_report::VaChanges>),
    Failed(SyncError),
}

impl From<SyncError> for Ended {
    fn from(e: SyncError) -> Self {
        Ended::Failed(e)
    }
}

impl From<crate::store::StoreError> for Ended {
    fn from(e: crate::store::StoreError) -> Self {
        Ended::Failed(e.into())
    }
}

/// Previews a bundle held in memory (an upload, an API body).
pub fn preview_bytes(ctx: &SyncContext, bytes: std::sync::Arc<[u8]>) -> Result<Preview, SyncError> {
    preview(ctx, &BundleSource::Memory(bytes))
}

/// Previews a bundle file, leaving it where it is.
pub fn preview_file(ctx: &SyncContext, path: &std::path::Path) -> Result<Preview, SyncError> {
    preview(ctx, &BundleSource::File(path.to_owned()))
}
