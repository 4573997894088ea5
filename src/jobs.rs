//! Background jobs: timers that no request triggers (authorization expiry, and the end of
//! a registration that was not renewed for a year, and the ledger head's daily signature).

use crate::clock::Clock;
use crate::store::{instances, Store};
use std::time::Duration;

/// How often timers are applied.
pub const TIMER_INTERVAL: Duration = Duration::from_secs(60);
const BATCH: u32 = 1000;

/// Applies due timers once; returns how many instances changed.
pub async fn apply_timers(store: &Store, clock: &Clock) -> usize {
    let mut total = 0;
    loop {
        let now = clock.unix();
        match store
            .write(move |tx| instances::expire_authorizations(tx, now, BATCH))
            .await
        {
            Ok(n) => {
                total += n;
                if n < BATCH as usize {
                    break;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "applying timers failed");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(expired = total, "authorizations expired");
    }
    let ended = end_registrations(store, clock).await;
    if ended > 0 {
        tracing::info!(
            ended,
            "registrations expired; instances treated as deregistered"
        );
    }
    total + ended
}

/// Ends the registrations that ran out unrenewed: found by a walk of the instances in key
/// order, a step at a time on a reader (no index holds the certificate's expiry, migration
/// 0027), and ended on the writer a batch at a time.
async fn end_registrations(store: &Store, clock: &Clock) -> usize {
    let (mut after, mut ended) = (0, 0);
    loop {
        let now = clock.unix();
        let found = store
            .read(move |c| {
                let step = crate::store::instance_expiry::REGISTRATION_STEP;
                instances::registrations_ended(c, now, after, step)
            })
            .await;
        let (keys, next) = match found {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "finding ended registrations failed");
                return ended;
            }
        };
        for batch in keys.chunks(BATCH as usize) {
            let batch = batch.to_vec();
            match store
                .write(move |tx| instances::end_registrations(tx, &batch, now))
                .await
            {
                Ok(n) => ended += n,
                Err(e) => {
                    tracing::error!(error = %e, "expiring registrations failed");
                    return ended;
                }
            }
        }
        match next {
            Some(last) => after = last,
            None => return ended,
        }
    }
}

/// Rewrites today's usage history rows (reports and charts read them).
pub async fn snapshot_usage(store: &Store, clock: &Clock) {
    let today = clock.now().date_naive();
    let written = store
        .write(move |tx| Ok(crate::service::usage_snapshot::snapshot_day(tx, today)?))
        .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "writing the usage history failed");
    }
}

/// Runs `apply_timers` and the usage snapshot at start and then every `TIMER_INTERVAL`,
/// forever.
pub async fn run_timers(store: Store, clock: Clock) {
    let mut tick = tokio::time::interval(TIMER_INTERVAL);
    loop {
        tick.tick().await;
        apply_timers(&store, &clock).await;
        snapshot_usage(&store, &clock).await;
    }
}

/// Signs the ledger's head when it is due (none yet, or the newest a day old).
pub async fn sign_ledger_head(
    store: &Store,
    authority: std::sync::Arc<crate::crypto::AuthorityKey>,
    clock: &Clock,
) {
    let now = clock.unix();
    let signed = store
        .write(move |tx| Ok(crate::service::ledger::sign_if_due(tx, &authority, now)?))
        .await;
    if let Err(e) = signed {
        tracing::error!(error = %e, "signing the ledger head failed");
    }
}

/// Runs `sign_ledger_head` at start and then every `TIMER_INTERVAL`, forever: the head is
/// signed at least daily.
pub async fn run_ledger_signing(
    store: Store,
    authority: std::sync::Arc<crate::crypto::AuthorityKey>,
    clock: Clock,
) {
    let mut tick = tokio::time::interval(TIMER_INTERVAL);
    loop {
        tick.tick().await;
        sign_ledger_head(&store, authority.clone(), &clock).await;
    }
}
