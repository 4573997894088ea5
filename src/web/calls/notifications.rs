//! The notification test, as the settings page and the API both run it.

use crate::notify::{self, TestResult};
use crate::service::access;
use crate::store::events::{self, NewEvent};
use crate::store::notifications as stored;
use crate::web::{AppError, State};

/// Sends a `test` notification to the account's targets now (editors only: it reaches
/// outside) and records that it was tried.
pub async fn run_test(
    state: &State,
    who: crate::domain::Principal,
    name: String,
) -> Result<TestResult, AppError> {
    let (cap, settings) = state
        .store
        .read(move |c| {
            let cap = access::edit_account(c, &who, &name)?;
            let s = stored::settings(c, cap.account.id)?;
            Ok((cap, s))
        })
        .await?;
    let now = state.clock.unix();
    let result = notify::send_test(&state.settings, &cap.account.name, &settings, now).await;
    let detail = serde_json::json!(result);
    state
        .store
        .write(move |tx| {
            events::record(
                tx,
                now,
                NewEvent {
                    actor: &cap.actor,
                    action: "notifications.tested",
                    account: Some((cap.account.id, &cap.account.name)),
                    target: &cap.account.name,
                    detail,
                },
            )
        })
        .await?;
    Ok(result)
}
