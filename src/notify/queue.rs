//! The notification queue: a background job that, every tick, queues new alerts for
//! their account's targets and sends what is due, retrying failures with exponential
//! backoff. What was sent is recorded before the next tick, so a restart neither loses
//! nor repeats a notification.

use super::{deliver, http_client};
use crate::clock::Clock;
use crate::config::Settings;
use crate::service::alerts::Now;
use crate::service::notifications as queue;
use crate::store::events::{self, NewEvent};
use crate::store::{notifications, Store};
use std::time::Duration;

const BATCH: u32 = 100;
const MAX_BACKOFF: i64 = 3600;

/// Delay before attempt `attempts + 1`: the base doubled per failure, at most an hour.
pub fn backoff(base: u64, attempts: i64) -> i64 {
    let base = base.max(1) as i64;
    base.saturating_mul(1i64 << attempts.clamp(0, 20))
        .min(MAX_BACKOFF)
}

/// One tick: queue new alerts, then send what is due. Answers how many were sent.
pub async fn tick(
    store: &Store,
    clock: &Clock,
    settings: &Settings,
    http: &reqwest::Client,
) -> usize {
    let at = Now {
        now: clock.unix(),
        today: clock.now().date_naive(),
        overdue_days: settings.sync_overdue_days,
    };
    if let Err(e) = store
        .write(move |tx| Ok(queue::queue_new_alerts(tx, at)?))
        .await
    {
        tracing::error!(error = %e, "queueing alert notifications failed");
        return 0;
    }
    let now = at.now;
    let due = match store
        .read(move |c| {
            let due = notifications::due(c, now, BATCH)?;
            if due.is_empty() {
                return Ok(vec![]);
            }
            let names: std::collections::HashMap<i64, String> =
                crate::store::accounts::all_names(c)?.into_iter().collect();
            let mut out = vec![];
            for d in due {
                let s = notifications::settings(c, d.account_id)?;
                let account = names.get(&d.account_id).cloned().unwrap_or_default();
                out.push((d, s, account));
            }
            Ok(out)
        })
        .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "reading due notifications failed");
            return 0;
        }
    };
    let mut sent = 0;
    for (d, account_settings, account) in due {
        let result = deliver(
            settings,
            http,
            &d.target,
            &account_settings,
            &d.payload,
            clock.unix(),
        )
        .await;
        let now = clock.unix();
        let retry = settings.notify_retry_seconds;
        let max = i64::from(settings.notify_max_attempts);
        let ok = result.is_ok();
        let (alert_id, target, attempts) = (d.alert_id.clone(), d.target.clone(), d.attempts + 1);
        let written = store
            .write(move |tx| {
                let (action, error) = match &result {
                    Ok(()) => {
                        notifications::mark_sent(tx, d.id, now)?;
                        ("notification.sent", None)
                    }
                    Err(e) => {
                        let next = (d.attempts + 1 < max).then(|| now + backoff(retry, d.attempts));
                        notifications::mark_failed(tx, d.id, e, next)?;
                        if next.is_some() {
                            // Retries are routine; only the outcome is an event.
                            return Ok(());
                        }
                        ("notification.failed", Some(e.clone()))
                    }
                };
                events::record(
                    tx,
                    now,
                    NewEvent {
                        actor: "system",
                        action,
                        account: Some((d.account_id, &account)),
                        target: &d.alert_id,
                        detail: serde_json::json!({"target": d.target, "error": error}),
                    },
                )?;
                Ok(())
            })
            .await;
        match written {
            Ok(()) if ok => sent += 1,
            Ok(()) => tracing::warn!(
                alert = %alert_id,
                target = %target,
                attempts,
                "notification failed; will retry unless attempts are used up"
            ),
            Err(e) => tracing::error!(error = %e, "recording a notification failed"),
        }
    }
    if sent > 0 {
        tracing::info!(sent, "notifications sent");
    }
    sent
}

/// Runs `tick` every `notify_interval_seconds`, forever (not at all when it is 0).
pub async fn run(store: Store, clock: Clock, settings: Settings) {
    if settings.notify_interval_seconds == 0 {
        return;
    }
    let http = http_client();
    let mut every = tokio::time::interval(Duration::from_secs(settings.notify_interval_seconds));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        tick(&store, &clock, &settings, &http).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(30, 0), 30);
        assert_eq!(backoff(30, 1), 60);
        assert_eq!(backoff(30, 3), 240);
        assert_eq!(backoff(30, 60), MAX_BACKOFF);
    }
}
