//! The ledger's capture done by a bulk writer itself instead of by the triggers.
//!
//! A TEMP trigger makes every write to its table a multi-write statement, so SQLite opens
//! a statement journal for each one; over the hundreds of thousands of rows of a
//! satellite's snapshot that journal alone costs a fifth of the import. For the duration
//! of such a bulk write this drops the triggers of the tables it names, on this
//! connection only and inside its open transaction (a rollback brings them back), and the
//! writer records exactly what the triggers would have, in the same order: the table's
//! index in `COUNTED`, and the old and new rows as canonical text (SQL `quote()` of each
//! counted column, joined by ','), which `Canonical` builds in Rust. Each row is hashed
//! here at once and the changes go to `temp.ledger_pending` as blobs of many
//! (`HASHED` rows, read by `seal`), not one insert per change: an insert per row was most
//! of the capture's cost. `end` writes the last blob and re-creates the triggers before
//! any other write of the transaction, so every other write, in this transaction or
//! later, is captured by them as before.
//!
//! Two rules keep the entry the triggers would have made, since changes wait in memory
//! until a blob is written: between `begin` and `end` the writer changes no other
//! counted table (its trigger row would land before changes still buffered), and a
//! writer that stops without `end` is inside a transaction or savepoint that rolls back
//! (the buffered changes are dropped with it). The snapshot, the one user, keeps both.

use super::{triggers_sql, Result, COUNTED};
use crate::domain::ledger::{row_hash, Hash};
use rusqlite::{params, Connection};
use std::cell::RefCell;
use std::fmt::Write;

/// `tbl` of a pending row whose `new` is a blob of hashed changes (read by `decode`).
pub const HASHED: i64 = -1;

/// Changes buffered before they are written as one blob row.
const BLOB_BYTES: usize = 1 << 20;

/// Flags of a hashed change: which of the old and new row hashes follow.
const HAS_OLD: u8 = 1;
const HAS_NEW: u8 = 2;

/// One change with its rows already hashed: the table's index in `COUNTED`.
pub struct HashedChange {
    pub table: usize,
    pub old: Option<Hash>,
    pub new: Option<Hash>,
}

/// Reads a `HASHED` blob back, in the order the changes were made. None when the blob
/// is not one this module wrote.
pub fn decode(blob: &[u8]) -> Option<Vec<HashedChange>> {
    let mut out = Vec::new();
    let mut rest = blob;
    let hash = |rest: &mut &[u8]| -> Option<Hash> {
        let (h, tail) = rest.split_first_chunk::<32>()?;
        *rest = tail;
        Some(*h)
    };
    while let [table, flags, tail @ ..] = rest {
        let (table, flags) = (*table as usize, *flags);
        rest = tail;
        let old = if flags & HAS_OLD != 0 {
            Some(hash(&mut rest)?)
        } else {
            None
        };
        let new = if flags & HAS_NEW != 0 {
            Some(hash(&mut rest)?)
        } else {
            None
        };
        out.push(HashedChange { table, old, new });
    }
    Some(out)
}

/// Appends one change of counted table `table` to a blob of hashed changes (read back by
/// `decode`): an insert has no old row, a delete no new one.
pub fn push_hashed(
    blob: &mut Vec<u8>,
    table: usize,
    old: Option<&Canonical>,
    new: Option<&Canonical>,
) {
    let name = COUNTED.get(table).map_or("", |c| c.table);
    let flags = u8::from(old.is_some()) * HAS_OLD + u8::from(new.is_some()) * HAS_NEW;
    // COUNTED has a dozen tables: an index fits a byte.
    blob.extend([table as u8, flags]);
    for row in [old, new].into_iter().flatten() {
        blob.extend(row_hash(name, row.as_str()));
    }
}

/// A row's canonical text, built column by column as `quote()` writes it.
#[derive(Default)]
pub struct Canonical(String);

impl Canonical {
    fn sep(&mut self) {
        if !self.0.is_empty() {
            self.0.push(',');
        }
    }

    /// An integer column (booleans are stored as 0 and 1).
    pub fn int(mut self, v: i64) -> Self {
        self.sep();
        // Writing into a String cannot fail.
        let _ = write!(self.0, "{v}");
        self
    }

    /// A text column: in single quotes, a quote inside doubled. `quote()` reads text as
    /// a C string, so it ends at a NUL character if there is one.
    pub fn text(mut self, v: &str) -> Self {
        self.sep();
        let v = v.split('\0').next().unwrap_or("");
        self.0.push('\'');
        if v.contains('\'') {
            self.0.push_str(&v.replace('\'', "''"));
        } else {
            self.0.push_str(v);
        }
        self.0.push('\'');
        self
    }

    /// A column already written as `quote()` writes it.
    pub fn quoted(mut self, v: &str) -> Self {
        self.sep();
        self.0.push_str(v);
        self
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The triggers of some counted tables suspended on one connection, while the bulk
/// writer that holds this captures their changes itself.
pub struct SelfCapture<'c> {
    conn: &'c Connection,
    /// Indexes into `COUNTED` of the suspended tables.
    tables: Vec<usize>,
    /// Changes hashed and not yet written (see `HASHED`).
    buffered: RefCell<Vec<u8>>,
    ended: bool,
}

/// The index in `COUNTED` of a counted table.
pub(super) fn index_of(table: &str) -> Option<usize> {
    COUNTED.iter().position(|c| c.table == table)
}

impl<'c> SelfCapture<'c> {
    /// Suspends the capture triggers of `tables` on `conn`, which must be in a
    /// transaction. None when this connection captures nothing (the ledger is off and
    /// no trigger is installed): the writer then records nothing either.
    pub fn begin(conn: &'c Connection, tables: &[&str]) -> Result<Option<Self>> {
        let mut idx = Vec::with_capacity(tables.len());
        let mut sql = String::new();
        for t in tables {
            let i = index_of(t)
                .ok_or_else(|| super::super::StoreError::not_found(format!("counted table {t}")))?;
            let installed: bool = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM temp.sqlite_master WHERE type = 'trigger' AND name = ?1)",
                )?
                .query_row([format!("ledger_{t}_i")], |r| r.get(0))?;
            if !installed {
                return Ok(None);
            }
            idx.push(i);
            sql.push_str(&format!(
                "DROP TRIGGER IF EXISTS temp.ledger_{t}_i;
                 DROP TRIGGER IF EXISTS temp.ledger_{t}_u;
                 DROP TRIGGER IF EXISTS temp.ledger_{t}_d;
                 DROP TRIGGER IF EXISTS temp.ledger_{t}_s;\n"
            ));
        }
        conn.execute_batch(&sql)?;
        Ok(Some(SelfCapture {
            conn,
            tables: idx,
            buffered: RefCell::new(Vec::with_capacity(BLOB_BYTES + 80)),
            ended: false,
        }))
    }

    /// The index to pass to `record` for one of the suspended tables.
    pub fn table(&self, table: &str) -> Option<usize> {
        index_of(table).filter(|i| self.tables.contains(i))
    }

    /// One change, as the table's trigger would have captured it: an insert has no old
    /// row, a delete no new one, an update both (and only when a counted column changed).
    pub fn record(
        &self,
        table: usize,
        old: Option<&Canonical>,
        new: Option<&Canonical>,
    ) -> Result<()> {
        let full = {
            let mut buf = self.buffered.borrow_mut();
            push_hashed(&mut buf, table, old, new);
            buf.len() >= BLOB_BYTES
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered changes as one pending row.
    fn flush(&self) -> Result<()> {
        let mut buf = self.buffered.borrow_mut();
        if buf.is_empty() {
            return Ok(());
        }
        self.conn
            .prepare_cached(
                "INSERT INTO temp.ledger_pending (tbl, old, new) VALUES (?1, NULL, ?2)",
            )?
            .execute(params![HASHED, &buf[..]])?;
        buf.clear();
        Ok(())
    }

    /// Writes what is buffered, then re-creates the suspended triggers: every later write
    /// is captured by them again, after this writer's changes.
    pub fn end(mut self) -> Result<()> {
        self.flush()?;
        self.ended = true;
        self.conn.execute_batch(&self.resume_sql())?;
        Ok(())
    }

    fn resume_sql(&self) -> String {
        self.tables
            .iter()
            .filter_map(|&i| COUNTED.get(i).map(|c| triggers_sql(i, c)))
            .collect()
    }
}

impl Drop for SelfCapture<'_> {
    /// A writer that stopped early (its transaction is about to roll back, which restores
    /// the triggers anyway) still leaves them in place, whatever happens next.
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.conn.execute_batch(&self.resume_sql());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ledger::rows;

    /// The text built in Rust is the text `quote()` gives for the same row, quotes,
    /// negative numbers and all.
    #[test]
    fn canonical_text_matches_quote() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE satellite_usage (satellite_id INTEGER, instance_id TEXT, va_id INTEGER,
               tag TEXT, count INTEGER, export INTEGER);",
        )
        .unwrap();
        let cases: &[(i64, &str, i64, &str, i64, bool)] = &[
            (1, "a", 2, "t", 3, false),
            (-7, "it's", 0, "O''Neil,x", i64::MAX, true),
            (i64::MIN, "", 9, "ünï", 0, true),
        ];
        for &(s, i, v, t, c, e) in cases {
            conn.execute(
                "INSERT INTO satellite_usage VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![s, i, v, t, c, e],
            )
            .unwrap();
        }
        let c = COUNTED
            .iter()
            .find(|c| c.table == "satellite_usage")
            .unwrap();
        let mut from_sql = vec![];
        rows(&conn, c, |r| from_sql.push(r.to_string())).unwrap();
        let from_rust: Vec<String> = cases
            .iter()
            .map(|&(s, i, v, t, c, e)| {
                Canonical::default()
                    .int(s)
                    .text(i)
                    .int(v)
                    .text(t)
                    .int(c)
                    .int(e as i64)
                    .as_str()
                    .to_string()
            })
            .collect();
        assert_eq!(from_sql, from_rust);
    }
}
