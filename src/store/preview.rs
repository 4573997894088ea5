//! What an import preview needs from the database: a savepoint that runs the import and
//! is always rolled back, and a picture of one account (its virtual accounts' licenses,
//! demand and compliance, and where each of its instances sits) to compare before/after.

use super::licenses::{self, License};
use super::{Result, StoreError};
use crate::domain::compliance::{Demand, Evaluation};
use chrono::NaiveDate;
use rusqlite::Connection;
use std::collections::BTreeMap;

/// Runs `f` under a savepoint of the current transaction and rolls it back whatever `f`
/// answered: nothing `f` wrote survives, so `f` may be the real import.
pub fn rolled_back<T, E: From<StoreError>>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    conn.execute_batch("SAVEPOINT import_preview")
        .map_err(StoreError::from)?;
    let answer = f(conn);
    conn.execute_batch("ROLLBACK TO import_preview; RELEASE import_preview")
        .map_err(StoreError::from)?;
    answer
}

/// One virtual account as the preview compares it.
#[derive(Debug, Clone, Default)]
pub struct VaPicture {
    pub licenses: Vec<License>,
    /// Demand per tag (the usage totals, including what satellites report).
    pub demand: BTreeMap<String, Demand>,
    pub evaluation: Evaluation,
}

/// One account as the preview compares it.
#[derive(Debug, Clone, Default)]
pub struct AccountPicture {
    /// By VA name.
    pub vas: BTreeMap<String, VaPicture>,
    /// Instance id (prefixed with the reporting satellite's authority id for instances a
    /// satellite reported) to the name of its VA.
    pub instances: BTreeMap<String, String>,
}

/// The account's picture on `today`. Reads every instance id of the account: a preview
/// is an admin's occasional request, never a hot path.
pub fn account_picture(
    conn: &Connection,
    account_id: i64,
    today: NaiveDate,
) -> Result<AccountPicture> {
    let vas: Vec<(i64, String)> = conn
        .prepare_cached("SELECT id, name FROM virtual_accounts WHERE account_id = ?1")?
        .query_map([account_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut picture = AccountPicture::default();
    for (id, name) in vas {
        let (licenses, evaluation) = licenses::evaluate(conn, id, today)?;
        let demand = licenses::demand(conn, id)?;
        picture.vas.insert(
            name,
            VaPicture {
                licenses,
                demand,
                evaluation,
            },
        );
    }
    let mut stmt = conn.prepare(
        "SELECT coalesce(i.legacy_id, 'inst_' || (SELECT prefix FROM instance_id_prefix) || printf('%010d', i.id)), v.name FROM instances i JOIN virtual_accounts v ON v.id = i.va_id
         WHERE v.account_id = ?1
         UNION ALL
         SELECT s.authority_id || '/' || si.id, v.name FROM satellite_instances si
         JOIN satellites s ON s.id = si.satellite_id
         JOIN virtual_accounts v ON v.id = si.va_id WHERE v.account_id = ?1",
    )?;
    let mut rows = stmt.query([account_id])?;
    while let Some(r) = rows.next()? {
        picture.instances.insert(r.get(0)?, r.get(1)?);
    }
    Ok(picture)
}

/// An account's name by id (the preview names the account it changes).
pub fn account_name(conn: &Connection, account_id: i64) -> Result<Option<String>> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached("SELECT name FROM accounts WHERE id = ?1")?
        .query_row([account_id], |r| r.get(0))
        .optional()?)
}
