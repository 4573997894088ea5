//! A first snapshot's new rows, inserted many to a statement. Every instance and usage row
//! of a first import is new (snapshot.rs looks nothing up), so each costs a statement's
//! round of bind, step and reset for one row; a statement of `ROWS` rows pays that once.
//! Rows wait here until `ROWS` of a table are pending, or until something must see them
//! stored (snapshot.rs flushes before a usage row's lookup, before export keys, which
//! reference their instance, and before the snapshot finishes). A later snapshot's new
//! rows go in one at a time, through the same columns and binding.

use super::super::Result;
use super::InstanceExport;
use rusqlite::{Connection, Statement};
use std::sync::LazyLock;

/// Rows per statement (at 12 columns, far below SQLite's limit on parameters).
const ROWS: usize = 32;

const INSTANCE_COLUMNS: &str = "satellite_id, id, va_id, pid, sn, product_name, \
    product_version, hostname, export_controlled, registered_at, last_contact, status";

const USAGE_COLUMNS: &str = "satellite_id, instance_id, va_id, tag, count, export";

/// `INSERT INTO table (columns) VALUES (?, ...), ...` for `rows` rows.
fn insert_sql(table: &str, columns: &str, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns.split(',').count()].join(", "));
    format!(
        "INSERT INTO {table} ({columns}) VALUES {}",
        vec![row; rows].join(", ")
    )
}

static INSTANCES_MANY: LazyLock<String> =
    LazyLock::new(|| insert_sql("satellite_instances", INSTANCE_COLUMNS, ROWS));
static INSTANCES_ONE: LazyLock<String> =
    LazyLock::new(|| insert_sql("satellite_instances", INSTANCE_COLUMNS, 1));
static USAGE_MANY: LazyLock<String> =
    LazyLock::new(|| insert_sql("satellite_usage", USAGE_COLUMNS, ROWS));
static USAGE_ONE: LazyLock<String> =
    LazyLock::new(|| insert_sql("satellite_usage", USAGE_COLUMNS, 1));

/// Binds an instance row's columns after parameter `at` (in `INSTANCE_COLUMNS` order).
fn bind_instance(
    stmt: &mut Statement<'_>,
    at: usize,
    sat: i64,
    i: &InstanceExport,
    va: i64,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(at + 1, sat)?;
    stmt.raw_bind_parameter(at + 2, &i.id)?;
    stmt.raw_bind_parameter(at + 3, va)?;
    stmt.raw_bind_parameter(at + 4, &i.pid)?;
    stmt.raw_bind_parameter(at + 5, &i.sn)?;
    stmt.raw_bind_parameter(at + 6, &i.product_name)?;
    stmt.raw_bind_parameter(at + 7, &i.product_version)?;
    stmt.raw_bind_parameter(at + 8, &i.hostname)?;
    stmt.raw_bind_parameter(at + 9, i.export_controlled)?;
    stmt.raw_bind_parameter(at + 10, i.registered_at)?;
    stmt.raw_bind_parameter(at + 11, i.last_contact)?;
    stmt.raw_bind_parameter(at + 12, &i.status)
}

/// Binds a usage row's columns after parameter `at`: (instance id, VA, tag, count,
/// export), in `USAGE_COLUMNS` order.
fn bind_usage(
    stmt: &mut Statement<'_>,
    at: usize,
    sat: i64,
    (id, va, tag, count, export): (&str, i64, &str, i64, bool),
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(at + 1, sat)?;
    stmt.raw_bind_parameter(at + 2, id)?;
    stmt.raw_bind_parameter(at + 3, va)?;
    stmt.raw_bind_parameter(at + 4, tag)?;
    stmt.raw_bind_parameter(at + 5, count)?;
    stmt.raw_bind_parameter(at + 6, export)
}

/// Inserts one new instance now (a later snapshot's: its rows are looked up as they
/// come, so nothing is queued).
pub(super) fn insert_instance(
    tx: &Connection,
    sat: i64,
    i: &InstanceExport,
    va: i64,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(&INSTANCES_ONE)?;
    bind_instance(&mut stmt, 0, sat, i, va)?;
    stmt.raw_execute()?;
    Ok(())
}

/// Inserts one new usage row now (see `insert_instance`).
pub(super) fn insert_usage(
    tx: &Connection,
    sat: i64,
    row: (&str, i64, &str, i64, bool),
) -> Result<()> {
    let mut stmt = tx.prepare_cached(&USAGE_ONE)?;
    bind_usage(&mut stmt, 0, sat, row)?;
    stmt.raw_execute()?;
    Ok(())
}

/// A usage row waiting: (instance id, VA, tag, count, export).
pub(super) type UsageRow = (String, i64, String, i64, bool);

/// The rows of a first snapshot not yet inserted.
#[derive(Default)]
pub(super) struct FirstRows {
    instances: Vec<(InstanceExport, i64)>,
    usage: Vec<UsageRow>,
}

impl FirstRows {
    /// Queues a new instance of VA `va`; inserts the queue once it is full.
    pub fn instance(
        &mut self,
        tx: &Connection,
        sat: i64,
        i: InstanceExport,
        va: i64,
    ) -> Result<()> {
        self.instances.push((i, va));
        if self.instances.len() >= ROWS {
            self.flush_instances(tx, sat)?;
        }
        Ok(())
    }

    /// Queues a new usage row; inserts both queues once it is full (its instance first:
    /// the row references it).
    pub fn usage(&mut self, tx: &Connection, sat: i64, row: UsageRow) -> Result<()> {
        self.usage.push(row);
        if self.usage.len() >= ROWS {
            self.flush(tx, sat)?;
        }
        Ok(())
    }

    /// Inserts everything queued, instances before the usage that references them.
    pub fn flush(&mut self, tx: &Connection, sat: i64) -> Result<()> {
        self.flush_instances(tx, sat)?;
        insert(
            tx,
            (&USAGE_MANY, &USAGE_ONE),
            &self.usage,
            |stmt, at, row| {
                let (id, va, tag, count, export) = row;
                bind_usage(stmt, at, sat, (id, *va, tag, *count, *export))
            },
        )?;
        // Cleared, not dropped: the buffer serves the whole import.
        self.usage.clear();
        Ok(())
    }

    fn flush_instances(&mut self, tx: &Connection, sat: i64) -> Result<()> {
        insert(
            tx,
            (&INSTANCES_MANY, &INSTANCES_ONE),
            &self.instances,
            |stmt, at, (i, va)| bind_instance(stmt, at, sat, i, *va),
        )?;
        self.instances.clear();
        Ok(())
    }
}

/// Inserts `rows`, `ROWS` to a statement (`sql.0`) and the rest one at a time (`sql.1`);
/// `bind` binds one row's columns after parameter `at`.
fn insert<R>(
    tx: &Connection,
    sql: (&str, &str),
    rows: &[R],
    bind: impl Fn(&mut Statement<'_>, usize, &R) -> rusqlite::Result<()>,
) -> Result<()> {
    let columns = |stmt: &Statement<'_>, n: usize| stmt.parameter_count() / n;
    let mut chunks = rows.chunks_exact(ROWS);
    if chunks.len() > 0 {
        let mut stmt = tx.prepare_cached(sql.0)?;
        let width = columns(&stmt, ROWS);
        for chunk in &mut chunks {
            for (n, row) in chunk.iter().enumerate() {
                bind(&mut stmt, n * width, row)?;
            }
            stmt.raw_execute()?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut stmt = tx.prepare_cached(sql.1)?;
        for row in rest {
            bind(&mut stmt, 0, row)?;
            stmt.raw_execute()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_lists_one_placeholder_per_column_of_each_row() {
        let sql = insert_sql("t", "a, b", 3);
        assert_eq!(sql, "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)");
    }
}
