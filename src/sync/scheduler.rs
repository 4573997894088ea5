//! Background sync work: each connected account's cron schedule, and the inbox/ folder.

use super::context::SyncContext;
use super::import::{self, Source};
use super::transport;
use crate::domain::schedule;
use crate::domain::sync::{LinkMode, LinkState};
use crate::store::sync_state;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

/// Runs each connected account's sync when its schedule says so. Schedules are re-read
/// every second, so an edited schedule takes effect at once.
pub async fn run_schedules(ctx: SyncContext) {
    let mut next: HashMap<i64, (String, DateTime<Utc>)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let store = ctx.store.clone();
        let links = match store.read(sync_state::links).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot read sync schedules");
                continue;
            }
        };
        let now = ctx.clock.now();
        for link in links
            .into_iter()
            .filter(|l| l.state == LinkState::Registered && l.mode == LinkMode::Connected)
        {
            let Ok(sched) = schedule::parse(&link.cron) else {
                continue;
            };
            let entry = next.entry(link.account_id).or_insert_with(|| {
                let at = schedule::next_runs(&sched, now, 1)
                    .first()
                    .copied()
                    .unwrap_or(now);
                (link.cron.clone(), at)
            });
            if entry.0 != link.cron {
                *entry = (
                    link.cron.clone(),
                    schedule::next_runs(&sched, now, 1)
                        .first()
                        .copied()
                        .unwrap_or(now),
                );
            }
            if now < entry.1 {
                continue;
            }
            let c = ctx.clone();
            let account = link.account.clone();
            let result =
                tokio::task::spawn_blocking(move || transport::sync_now(&c, &account)).await;
            match result {
                Ok(Ok(o)) => {
                    tracing::info!(account = %link.account, bundle = %o.bundle_id, "scheduled sync done")
                }
                Ok(Err(e)) => {
                    tracing::warn!(account = %link.account, error = %e, "scheduled sync failed")
                }
                Err(e) => tracing::error!(error = %e, "scheduled sync task failed"),
            }
            let after = ctx.clock.now();
            entry.1 = schedule::next_runs(&sched, after, 1)
                .first()
                .copied()
                .unwrap_or(after);
        }
    }
}

/// Imports what operators drop into inbox/. Files starting with '.' are still being
/// written and are left alone.
pub async fn watch_inbox(ctx: SyncContext, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let c = ctx.clone();
        let _ = tokio::task::spawn_blocking(move || scan_inbox(&c)).await;
    }
}

pub fn scan_inbox(ctx: &SyncContext) -> usize {
    let Ok(entries) = std::fs::read_dir(ctx.dir("inbox")) else {
        return 0;
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    for path in &files {
        match import::import_file(ctx, path, Source::Inbox, &|_| {}) {
            Ok(o) => {
                tracing::info!(file = %path.display(), result = %o.result, kind = %o.kind, "inbox bundle imported")
            }
            Err(e) if e.is_verdict() => {
                tracing::warn!(file = %path.display(), error = %e, "inbox bundle rejected")
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "inbox bundle not imported; left in inbox/ to try again")
            }
        }
    }
    files.len()
}
