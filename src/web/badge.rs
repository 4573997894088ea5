//! The alert count every page shows in its menu. Counting alerts means evaluating every
//! visible pool, too much for each page view, so the count is kept per visibility scope
//! (everything, or one account) for a few seconds; a failure to count is logged and the
//! last known count shown, never hidden.

use crate::domain::Principal;
use crate::service::alerts::{self, Now};
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a count stays fresh: an alert shows in the menu at most this late.
const FRESH_FOR: Duration = Duration::from_secs(15);

#[derive(Default)]
pub struct AlertBadge {
    /// By `Principal::account_filter()`: `None` sees every account.
    counts: Mutex<HashMap<Option<i64>, (Instant, usize)>>,
}

impl AlertBadge {
    fn cached(&self, scope: Option<i64>) -> Option<(Instant, usize)> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&scope)
            .copied()
    }

    pub async fn count(
        &self,
        store: &Store,
        who: &Principal,
        now: i64,
        today: chrono::NaiveDate,
        overdue_days: i64,
    ) -> usize {
        let visible = crate::service::access::visible(who);
        let scope = visible.account_filter();
        let known = self.cached(scope);
        if let Some((at, n)) = known {
            if at.elapsed() < FRESH_FOR {
                return n;
            }
        }
        match store
            .read(move |c| {
                let at = Now {
                    now,
                    today,
                    overdue_days,
                };
                Ok(alerts::collect(c, visible, at)?)
            })
            .await
        {
            Ok(list) => {
                let n = list.len();
                self.counts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(scope, (Instant::now(), n));
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot count alerts for the menu; showing the last count");
                known.map_or(0, |(_, n)| n)
            }
        }
    }
}
