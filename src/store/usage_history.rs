//! Daily usage history: today's rows rewritten by the timer job, ranges read by reports
//! and charts. Days are `YYYY-MM-DD` text, so they sort and compare as dates.

use super::Result;
use rusqlite::{params, Connection};

/// One pool's figures on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolDay {
    pub day: String,
    pub account: String,
    pub virtual_account: String,
    pub tag: String,
    pub purchased: i64,
    pub in_use: i64,
    pub reserved: i64,
    pub available: i64,
}

/// A virtual account whose history is kept.
pub struct TrackedVa {
    pub account_id: i64,
    pub account: String,
    pub va_id: i64,
    pub va: String,
}

/// Every virtual account that has licenses or instances.
pub fn tracked_vas(conn: &Connection) -> Result<Vec<TrackedVa>> {
    Ok(conn
        .prepare_cached(
            "SELECT a.id, a.name, v.id, v.name FROM virtual_accounts v JOIN accounts a ON a.id = v.account_id
             WHERE v.license_count > 0 OR v.instance_count > 0 ORDER BY a.name, v.name",
        )?
        .query_map([], |r| {
            Ok(TrackedVa {
                account_id: r.get(0)?,
                account: r.get(1)?,
                va_id: r.get(2)?,
                va: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

pub struct PoolFigures<'a> {
    pub tag: &'a str,
    pub purchased: i64,
    pub in_use: i64,
    pub reserved: i64,
    pub available: i64,
}

/// Makes `day`'s rows for one VA exactly `pools`: pools gone since an earlier run of the
/// same day are dropped.
pub fn set_pools(tx: &Connection, va_id: i64, day: &str, pools: &[PoolFigures<'_>]) -> Result<()> {
    tx.prepare_cached("DELETE FROM usage_history WHERE va_id = ?1 AND day = ?2")?
        .execute(params![va_id, day])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO usage_history (va_id, tag, day, purchased, in_use, reserved, available)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for p in pools {
        insert.execute(params![
            va_id,
            p.tag,
            day,
            p.purchased,
            p.in_use,
            p.reserved,
            p.available
        ])?;
    }
    Ok(())
}

/// Makes `day`'s instance counts by status for one VA those of its live counters.
pub fn set_statuses(tx: &Connection, va_id: i64, day: &str) -> Result<()> {
    tx.prepare_cached("DELETE FROM instance_status_history WHERE va_id = ?1 AND day = ?2")?
        .execute(params![va_id, day])?;
    tx.prepare_cached(
        "INSERT INTO instance_status_history (va_id, day, status, n)
         SELECT va_id, ?2, status, n FROM va_status_counts WHERE va_id = ?1 AND n > 0",
    )?
    .execute(params![va_id, day])?;
    Ok(())
}

/// Drops days before `oldest_kept`.
pub fn prune(tx: &Connection, oldest_kept: &str) -> Result<usize> {
    let a = tx
        .prepare_cached("DELETE FROM usage_history WHERE day < ?1")?
        .execute([oldest_kept])?;
    let b = tx
        .prepare_cached("DELETE FROM instance_status_history WHERE day < ?1")?
        .execute([oldest_kept])?;
    Ok(a + b)
}

/// What a history query selects; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub account_id: Option<i64>,
    pub va_id: Option<i64>,
    pub tag: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

pub fn pools(conn: &Connection, f: &HistoryFilter) -> Result<Vec<PoolDay>> {
    Ok(conn
        .prepare_cached(
            "SELECT h.day, a.name, v.name, h.tag, h.purchased, h.in_use, h.reserved, h.available
             FROM usage_history h JOIN virtual_accounts v ON v.id = h.va_id
             JOIN accounts a ON a.id = v.account_id
             WHERE (?1 IS NULL OR a.id = ?1) AND (?2 IS NULL OR h.va_id = ?2)
               AND (?3 IS NULL OR h.tag = ?3) AND (?4 IS NULL OR h.day >= ?4)
               AND (?5 IS NULL OR h.day <= ?5)
             ORDER BY h.day, a.name, v.name, h.tag",
        )?
        .query_map(params![f.account_id, f.va_id, f.tag, f.from, f.to], |r| {
            Ok(PoolDay {
                day: r.get(0)?,
                account: r.get(1)?,
                virtual_account: r.get(2)?,
                tag: r.get(3)?,
                purchased: r.get(4)?,
                in_use: r.get(5)?,
                reserved: r.get(6)?,
                available: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// Instance counts by status per day, summed over the VAs the filter selects.
pub fn statuses(conn: &Connection, f: &HistoryFilter) -> Result<Vec<(String, String, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT h.day, h.status, sum(h.n) FROM instance_status_history h
             JOIN virtual_accounts v ON v.id = h.va_id
             WHERE (?1 IS NULL OR v.account_id = ?1) AND (?2 IS NULL OR h.va_id = ?2)
               AND (?3 IS NULL OR h.day >= ?3) AND (?4 IS NULL OR h.day <= ?4)
             GROUP BY h.day, h.status ORDER BY h.day, h.status",
        )?
        .query_map(params![f.account_id, f.va_id, f.from, f.to], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?)
}
