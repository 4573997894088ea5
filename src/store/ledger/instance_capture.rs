//! The ledger's capture of `instances` and of `instance_usage`, the view of each row's
//! usage column. Their triggers copy the columns that count as they are, and `seal`
//! writes each change's canonical text in Rust (`changes`).
//!
//! The other tables' triggers write the text in SQL. These do not, for the usage
//! report's sake. SQLite opens a statement journal for a write that fires a trigger that
//! may abort, and any call of an SQL function (quote, printf, json_each) counts as one
//! that may; the journal then takes a copy of every page the write touches. On a first
//! report at a million instances, that journal and the dozen function calls of the text
//! were a fifth of the writer's time (perf). These triggers call no function and write a
//! table without constraints, and the report's own update is `UPDATE OR FAIL`, so nothing
//! in it can abort half-way, and SQLite keeps no journal for it.

use super::capture::Canonical;
use super::{Result, COUNTED};
use crate::store::instance_ids::Scheme;
use crate::store::{instance_ids, status_codes, usage_column};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::LazyLock;

/// `tbl` of a pending row that holds an instance's columns as they were and are.
pub const RAW: i64 = -2;

/// The columns copied, as `old_<column>` and `new_<column>` of `ledger_pending`: the
/// counted ones of `instances` (`COUNTED`, `id` first), then what their text and the
/// usage rows need besides.
static COLUMNS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut columns = COUNTED[INSTANCES].columns.to_vec();
    columns.extend(["legacy_id", "usage"]);
    columns
});

/// `each` of the copied columns, joined by `sep`.
fn joined(sep: &str, each: impl Fn(&str) -> String) -> String {
    COLUMNS
        .iter()
        .map(|c| each(c))
        .collect::<Vec<_>>()
        .join(sep)
}

fn columns(side: &str) -> String {
    joined(", ", |c| format!("{side}_{c}"))
}

fn values(row: &str) -> String {
    joined(", ", |c| format!("{row}.{c}"))
}

/// The raw columns of `ledger_pending`, old then new: declared without a type or a
/// constraint, and selected in this order by `seal`.
pub fn pending_columns() -> String {
    format!("{}, {}", columns("old"), columns("new"))
}

/// The three triggers on `instances` (their names follow the other tables').
pub fn triggers_sql() -> String {
    let (old, new) = (columns("old"), columns("new"));
    let (was, is) = (values("OLD"), values("NEW"));
    let watched = COLUMNS.join(", ");
    let same = joined(" AND ", |c| format!("OLD.{c} IS NEW.{c}"));
    format!(
        "CREATE TEMP TRIGGER IF NOT EXISTS ledger_instances_i AFTER INSERT ON main.instances BEGIN
           INSERT INTO ledger_pending (tbl, {new}) VALUES ({RAW}, {is}); END;
         CREATE TEMP TRIGGER IF NOT EXISTS ledger_instances_u AFTER UPDATE OF {watched}
           ON main.instances WHEN NOT ({same}) BEGIN
           INSERT INTO ledger_pending (tbl, {old}, {new}) VALUES ({RAW}, {was}, {is}); END;
         CREATE TEMP TRIGGER IF NOT EXISTS ledger_instances_d AFTER DELETE ON main.instances BEGIN
           INSERT INTO ledger_pending (tbl, {old}) VALUES ({RAW}, {was}); END;\n"
    )
}

/// What `changes` looks up while a batch is sealed: the id scheme and the tags' names.
#[derive(Default)]
pub struct Names {
    scheme: Option<Scheme>,
    tags: HashMap<i64, Option<String>>,
}

impl Names {
    /// Our external id of the instance with key `key` (`instance_ids::Scheme::encode`).
    fn external_id(&mut self, conn: &Connection, key: i64) -> Result<String> {
        if let Some(scheme) = &self.scheme {
            return Ok(scheme.encode(key));
        }
        Ok(self.scheme.insert(instance_ids::scheme(conn)?).encode(key))
    }

    /// A tag's name; None (NULL in the text) when no tag has that id.
    fn tag(&mut self, conn: &Connection, id: i64) -> Result<Option<String>> {
        if let Some(name) = self.tags.get(&id) {
            return Ok(name.clone());
        }
        let name: Option<String> = conn
            .prepare_cached("SELECT tag FROM tags WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        self.tags.insert(id, name.clone());
        Ok(name)
    }
}

/// One side (old or new) of a raw pending row.
struct Side<'r> {
    cols: Vec<ValueRef<'r>>,
}

impl<'r> Side<'r> {
    /// The side starting at column `at`; None when it is empty (an insert has no old
    /// row, a delete no new one: `id`, the rowid, is never NULL in a row).
    fn read(r: &'r Row<'r>, at: usize) -> Result<Option<Self>> {
        if r.get_ref(at)? == ValueRef::Null {
            return Ok(None);
        }
        let cols = (at..at + COLUMNS.len())
            .map(|i| r.get_ref(i))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(Side { cols }))
    }

    /// The column named `name`, one of `COLUMNS`.
    fn col(&self, name: &str) -> ValueRef<'r> {
        COLUMNS
            .iter()
            .position(|c| *c == name)
            .map_or(ValueRef::Null, |i| self.cols[i])
    }

    /// The external id as `quote()` writes it: the legacy id, or ours from the key
    /// (`instance_ids::external_sql`).
    fn external_id(&self, conn: &Connection, names: &mut Names) -> Result<String> {
        match (self.col("legacy_id"), self.col("id")) {
            (ValueRef::Null, ValueRef::Integer(key)) => Ok(Canonical::default()
                .text(&names.external_id(conn, key)?)
                .into_string()),
            (ValueRef::Null, key) => {
                // Only an integer is stored in a rowid column; read anything else as SQL would.
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT quote({})",
                        instance_ids::external_of_key_sql("?1")
                    ))?
                    .query_row([ToSqlOutput::Borrowed(key)], |r| r.get(0))?)
            }
            (legacy, _) => quoted(conn, legacy),
        }
    }

    /// The instance's canonical row (`COUNTED`'s columns of `instances`, read as
    /// `ledger::column_text` reads them).
    fn canonical(&self, conn: &Connection, external_id: &str) -> Result<Canonical> {
        let mut row = Canonical::default();
        for &col in COUNTED[INSTANCES].columns {
            row = match col {
                "id" => row.quoted(external_id),
                "status" => match self.col("status") {
                    ValueRef::Integer(code) => match status_codes::from_code(code) {
                        Some(status) => row.text(status.as_str()),
                        None => row.quoted("NULL"),
                    },
                    _ => row.quoted("NULL"),
                },
                other => row.quoted(&quoted(conn, self.col(other))?),
            };
        }
        Ok(row)
    }

    /// The usage column's (tag id, count) entries, in its order.
    fn usage(&self) -> Result<Vec<(i64, i64)>> {
        let text = self
            .col("usage")
            .as_str_or_null()
            .map_err(rusqlite::Error::from)?;
        usage_column::decode(text)
    }
}

/// A value as SQL's `quote()` writes it. A REAL (which no counted instance column holds
/// when written by this server) is left to SQLite's own formatting.
fn quoted(conn: &Connection, v: ValueRef<'_>) -> Result<String> {
    Ok(match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Text(t) => Canonical::default()
            .text(&String::from_utf8_lossy(t))
            .into_string(),
        ValueRef::Blob(b) => {
            let mut s = String::with_capacity(3 + 2 * b.len());
            s.push_str("X'");
            for byte in b {
                // Writing into a String cannot fail.
                let _ = write!(s, "{byte:02X}");
            }
            s.push('\'');
            s
        }
        ValueRef::Real(_) => conn
            .prepare_cached("SELECT quote(?1)")?
            .query_row([ToSqlOutput::Borrowed(v)], |r| r.get(0))?,
    })
}

/// The changes one raw pending row stands for, whose old side starts at column `at`, each
/// handed to `out` as (index in `COUNTED`, old row, new row), in order: the instance's
/// row (when its canonical text moved), then its usage as the view's rows: the entries
/// whose row changed or went, in the old column's order, then those that came, in the
/// new one's.
pub fn changes(
    conn: &Connection,
    r: &Row<'_>,
    at: usize,
    names: &mut Names,
    mut out: impl FnMut(usize, Option<&Canonical>, Option<&Canonical>),
) -> Result<()> {
    let old = Side::read(r, at)?;
    let new = Side::read(r, at + COLUMNS.len())?;
    let ids = |side: &Option<Side<'_>>, names: &mut Names| -> Result<Option<String>> {
        side.as_ref()
            .map(|s| s.external_id(conn, names))
            .transpose()
    };
    let (old_id, new_id) = (ids(&old, names)?, ids(&new, names)?);
    let rows = |side: &Option<Side<'_>>, id: &Option<String>| -> Result<Option<Canonical>> {
        match (side, id) {
            (Some(s), Some(id)) => Ok(Some(s.canonical(conn, id)?)),
            _ => Ok(None),
        }
    };
    let (old_row, new_row) = (rows(&old, &old_id)?, rows(&new, &new_id)?);
    if old_row.as_ref().map(Canonical::as_str) != new_row.as_ref().map(Canonical::as_str) {
        out(INSTANCES, old_row.as_ref(), new_row.as_ref());
    }
    let entries = |side: &Option<Side<'_>>| side.as_ref().map_or(Ok(Vec::new()), Side::usage);
    let (was, is) = (entries(&old)?, entries(&new)?);
    let now: HashMap<i64, i64> = is.iter().copied().collect();
    let before: HashMap<i64, i64> = was.iter().copied().collect();
    let mut usage_row = |id: &Option<String>, tag: i64, count: i64| -> Result<Canonical> {
        let id = id.as_deref().unwrap_or("NULL");
        let row = Canonical::default().quoted(id);
        Ok(match names.tag(conn, tag)? {
            Some(name) => row.text(&name),
            None => row.quoted("NULL"),
        }
        .int(count))
    };
    for &(tag, count) in &was {
        let after = now.get(&tag).copied();
        if after == Some(count) && old_id == new_id {
            continue;
        }
        let gone = usage_row(&old_id, tag, count)?;
        let came = after.map(|c| usage_row(&new_id, tag, c)).transpose()?;
        out(USAGE, Some(&gone), came.as_ref());
    }
    for &(tag, count) in &is {
        if !before.contains_key(&tag) {
            let came = usage_row(&new_id, tag, count)?;
            out(USAGE, None, Some(&came));
        }
    }
    Ok(())
}

/// Indexes in `COUNTED` (checked by a test).
pub(super) const INSTANCES: usize = 1;
pub(super) const USAGE: usize = 2;
