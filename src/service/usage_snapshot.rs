//! The daily usage-history snapshot (the job behind the usage report): today's figures of
//! every tracked pool written once a day, and days past the kept window dropped.

use super::Result;
use crate::store::licenses;
use crate::store::usage_history::{self, PoolFigures};
use chrono::NaiveDate;
use rusqlite::Connection;

/// Days of history kept: two years.
pub const HISTORY_DAYS: i64 = 730;

/// Writes today's history rows for every tracked VA and drops days older than two years.
/// Cheap at any estate size: it reads the pool counters, never the instances.
pub fn snapshot_day(tx: &Connection, today: NaiveDate) -> Result<usize> {
    let day = today.to_string();
    let vas = usage_history::tracked_vas(tx)?;
    for va in &vas {
        let (ls, evaluation) = licenses::evaluate(tx, va.va_id, today)?;
        let figures: Vec<PoolFigures<'_>> = ls
            .iter()
            .map(|l| {
                let pool = evaluation.pools.get(&l.spec.tag);
                PoolFigures {
                    tag: &l.spec.tag,
                    purchased: l.spec.quantity,
                    in_use: pool.map_or(0, |p| p.in_use),
                    reserved: l.reserved,
                    available: pool.map_or(0, |p| p.available),
                }
            })
            .collect();
        usage_history::set_pools(tx, va.va_id, &day, &figures)?;
        usage_history::set_statuses(tx, va.va_id, &day)?;
    }
    let oldest = today - chrono::Duration::days(HISTORY_DAYS - 1);
    usage_history::prune(tx, &oldest.to_string())?;
    Ok(vas.len())
}
