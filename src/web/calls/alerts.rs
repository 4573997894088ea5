//! Alerts as pages and the API both read them.

use crate::service::access;
use crate::service::alerts::{self as service, AlertOut, DateFilter, Now};
use crate::web::{AppError, State};

/// The live alerts only (no recorded state): cheap enough for the nav's count.
pub fn now(state: &State) -> Now {
    Now {
        now: state.clock.unix(),
        today: state.clock.now().date_naive(),
        overdue_days: state.settings.sync_overdue_days,
    }
}

/// The alerts with ids, `raised_at` and acknowledgement (first-seen times are recorded).
pub async fn load_full(
    state: &State,
    who: crate::domain::Principal,
    filter: DateFilter,
) -> Result<Vec<AlertOut>, AppError> {
    let at = now(state);
    Ok(state
        .store
        .write(move |tx| Ok(service::list(tx, access::visible(&who), at, filter)?))
        .await?)
}
