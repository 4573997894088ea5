//! The one shape of an account-scoped call from a handler (pages and admin API alike):
//! read the clock once, take the caller's capability on the named account inside the
//! store closure, run the service operation. Changes go through the group-commit writer
//! (`edit_account`), reads through the reader pool (`read_account`, `read_as`), so
//! a handler says only which operation it runs.

use crate::domain::Principal;
use crate::service::access::{self, EditAccount, ReadAccount};
use crate::service::Result as ServiceResult;
use crate::web::{AppError, State};
use chrono::NaiveDate;
use rusqlite::Connection;

/// The clock as a call sees it: one reading, taken before the call queues, so a change
/// carries the time it was asked for however long the writer's queue is.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub unix: i64,
    pub today: NaiveDate,
}

impl Now {
    pub fn of(state: &State) -> Self {
        let t = state.clock.now();
        Now {
            unix: t.timestamp(),
            today: t.date_naive(),
        }
    }
}

/// Runs `f` in one write transaction with proof that `who` may change `account` (403
/// when it may only see it, 404 when it may not even see it). `f`'s refusal rolls all
/// back.
pub async fn edit_account<T, F>(
    state: &State,
    who: &Principal,
    account: &str,
    f: F,
) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&Connection, &EditAccount, Now) -> ServiceResult<T> + Send + 'static,
{
    let (who, account, now) = (who.clone(), account.to_string(), Now::of(state));
    let value = state
        .store
        .write(move |tx| {
            let cap = access::edit_account(tx, &who, &account)?;
            Ok(f(tx, &cap, now)?)
        })
        .await?;
    Ok(value)
}

/// Runs `f` on a reader with proof that `who` may see `account`.
pub async fn read_account<T, F>(
    state: &State,
    who: &Principal,
    account: &str,
    f: F,
) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&Connection, &ReadAccount, Now) -> ServiceResult<T> + Send + 'static,
{
    read_as(state, who, account, access::read_account, f).await
}

/// How a capability is taken: `access::read_account` or `access::edit_account`.
pub type Take<C> = fn(&Connection, &Principal, &str) -> ServiceResult<C>;

/// As `read_account`, with the capability `take` gives: `access::edit_account` for what
/// only an editor may see (a form that changes the account).
pub async fn read_as<C, T, F>(
    state: &State,
    who: &Principal,
    account: &str,
    take: Take<C>,
    f: F,
) -> Result<T, AppError>
where
    C: 'static,
    T: Send + 'static,
    F: FnOnce(&Connection, &C, Now) -> ServiceResult<T> + Send + 'static,
{
    let (who, account, now) = (who.clone(), account.to_string(), Now::of(state));
    let value = state
        .store
        .read(move |c| {
            let cap = take(c, &who, &account)?;
            Ok(f(c, &cap, now)?)
        })
        .await?;
    Ok(value)
}
