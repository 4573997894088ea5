//! A usage report's changed counts, captured by the report itself.
//!
//! The general capture of `instance_usage` is a trigger on the instance's `usage` column:
//! it reads the old and new JSON objects with `json_each`, looks every tag's name up and
//! quotes each entry in SQL, one insert per change. A report already holds all of that
//! (the instance's id, each tag's name, both counts), so it builds the same canonical rows
//! and hashes them in Rust, and hands the blob (`capture::HASHED` format) to a second
//! trigger through this thread: `stash` before its update of the row, dropped after it.
//! That trigger writes the blob as the one pending row, and the general one stands aside
//! for the row stashed for, so every change is captured once either way. A connection
//! without the ledger has neither trigger, and the stash is dropped unread.

use super::capture::{index_of, push_hashed, Canonical, HASHED};
use super::Result;
use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;
use std::cell::RefCell;

/// SQL: whether a blob is stashed for the row with this rowid.
pub const STASHED: &str = "ledger_usage_stashed";
/// SQL: the blob stashed for the row with this rowid, or NULL.
pub const STASH: &str = "ledger_usage_stash";

thread_local! {
    /// The row a report is updating and its usage changes, hashed. Statements (and the
    /// triggers they fire) run on the thread that steps them, so the trigger reads what
    /// the report put here.
    static STASHED_FOR: RefCell<Option<(i64, Vec<u8>)>> = const { RefCell::new(None) };
}

/// Makes the two functions the triggers call known to `conn`.
pub fn register(conn: &Connection) -> Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8;
    conn.create_scalar_function(STASHED, 1, flags, |ctx| {
        let rowid: i64 = ctx.get(0)?;
        Ok(STASHED_FOR.with_borrow(|s| s.as_ref().is_some_and(|(r, _)| *r == rowid)))
    })?;
    conn.create_scalar_function(STASH, 1, flags, |ctx| {
        let rowid: i64 = ctx.get(0)?;
        Ok(STASHED_FOR.with_borrow(|s| {
            s.as_ref()
                .filter(|(r, _)| *r == rowid)
                .map(|(_, blob)| blob.clone())
        }))
    })?;
    Ok(())
}

/// The trigger that writes a stashed blob, on a connection where `register` ran.
pub fn trigger_sql() -> String {
    format!(
        "CREATE TEMP TRIGGER IF NOT EXISTS ledger_instance_usage_s AFTER UPDATE OF usage ON main.instances
           WHEN OLD.usage IS NOT NEW.usage AND {STASHED}(NEW.rowid) BEGIN
           INSERT INTO ledger_pending (tbl, old, new) VALUES ({HASHED}, NULL, {STASH}(NEW.rowid)); END;\n"
    )
}

/// The condition the general trigger adds: no report stashed this row's changes.
pub fn general_condition() -> String {
    format!("NOT {STASHED}(NEW.rowid)")
}

/// Held while the report's update of `rowid` runs; the stash is emptied when dropped.
pub struct Stashed(());

impl Drop for Stashed {
    fn drop(&mut self) {
        STASHED_FOR.set(None);
    }
}

/// Puts `blob` (from `changes`) where the row's trigger finds it, until the guard drops.
pub fn stash(rowid: i64, blob: Vec<u8>) -> Stashed {
    STASHED_FOR.set(Some((rowid, blob)));
    Stashed(())
}

/// One change to an instance's usage: the tag, its count before (None: it came) and
/// after (None: it went).
pub type UsageChange<'a> = (&'a str, Option<i64>, Option<i64>);

/// The `changes` of the usage of the instance whose external id is `instance`, hashed as
/// the general trigger captures them. The caller lists them in the trigger's order: tags
/// whose count changed or that went, in the stored column's order, then the tags that
/// came, in the report's. Empty when there are none.
pub fn changes(instance: &str, changes: &[UsageChange<'_>]) -> Vec<u8> {
    let Some(table) = index_of("instance_usage") else {
        return Vec::new();
    };
    let row = |tag: &str, count: i64| Canonical::default().text(instance).text(tag).int(count);
    let mut blob = Vec::new();
    for &(tag, was, now) in changes {
        let (old, new) = (was.map(|c| row(tag, c)), now.map(|c| row(tag, c)));
        push_hashed(&mut blob, table, old.as_ref(), new.as_ref());
    }
    blob
}

#[cfg(test)]
mod tests {
    use super::super::capture::decode;
    use super::super::COUNTED;
    use super::*;
    use crate::domain::ledger::row_hash;
    use crate::store::{Store, StoreError};
    use rusqlite::params;

    /// A pending change: its table, old row hash and new row hash.
    type Change = (i64, Option<[u8; 32]>, Option<[u8; 32]>);

    /// Each pending change, whichever trigger wrote it.
    fn pending(tx: &Connection) -> Vec<Change> {
        let mut out = vec![];
        let mut stmt = tx
            .prepare("SELECT tbl, old, new FROM temp.ledger_pending ORDER BY id")
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let tbl: i64 = r.get(0).unwrap();
            if tbl == HASHED {
                let blob: Vec<u8> = r.get(2).unwrap();
                for c in decode(&blob).unwrap() {
                    out.push((c.table as i64, c.old, c.new));
                }
            } else {
                let name = COUNTED[tbl as usize].table;
                let hash = |i| {
                    r.get::<_, Option<String>>(i)
                        .unwrap()
                        .map(|t| row_hash(name, &t))
                };
                out.push((tbl, hash(1), hash(2)));
            }
        }
        out
    }

    /// The same change to an instance's usage (a count changed, a tag gone, a tag new),
    /// captured by the report's own hashing and by the general trigger, with the status
    /// moving in the same statement: the same changes in the same order (so the same
    /// entry), each written once, the stashed ones as one blob.
    #[test]
    fn a_stashed_capture_is_the_general_triggers_capture() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let captured = store
            .write_blocking(|tx| {
                tx.execute_batch(
                    "INSERT INTO accounts (name, created_at) VALUES ('Acme', 0);
                     INSERT INTO virtual_accounts (account_id, name, created_at) VALUES (1, 'Lab', 0);
                     INSERT INTO tags (id, tag) VALUES (1, 'ess'), (2, 'adv'), (3, 'it''s');",
                )?;
                tx.execute(
                    "INSERT INTO instances (va_id, pid, sn, public_key, product_name,
                       product_version, registered_at, last_contact, cert_expires_at, status,
                       usage)
                     VALUES (1, 'C9300', 'S1', x'00', 'p', '1', 0, 0, 0, 1,
                       '{\"1\":2,\"2\":1}')",
                    [],
                )?;
                let rowid = tx.last_insert_rowid();
                let id: String = tx.query_row(
                    &format!(
                        "SELECT {} FROM instances WHERE rowid = ?1",
                        crate::store::instance_ids::external_sql("")
                    ),
                    [rowid],
                    |r| r.get(0),
                )?;
                tx.execute("DELETE FROM temp.ledger_pending", [])?;
                // The status moves too, as on a first report: its own trigger fires in the
                // same statement, and its change keeps its place among the usage changes.
                let update = "UPDATE instances SET usage = '{\"1\":5,\"3\":7}', status = 2
                              WHERE rowid = ?1";
                let blob = changes(
                    &id,
                    &[
                        ("ess", Some(2), Some(5)),
                        ("adv", Some(1), None),
                        ("it's", None, Some(7)),
                    ],
                );
                tx.execute_batch("SAVEPOINT general")?;
                tx.execute(update, params![rowid])?;
                let general = pending(tx);
                let general_rows: i64 =
                    tx.query_row("SELECT count(*) FROM temp.ledger_pending", [], |r| r.get(0))?;
                tx.execute_batch("ROLLBACK TO general; RELEASE general")?;
                {
                    let _stashed = stash(rowid, blob);
                    tx.execute(update, params![rowid])?;
                }
                let stashed = pending(tx);
                let stashed_rows: i64 =
                    tx.query_row("SELECT count(*) FROM temp.ledger_pending", [], |r| r.get(0))?;
                Ok::<_, StoreError>((general, general_rows, stashed, stashed_rows))
            })
            .unwrap();
        let (general, general_rows, stashed, stashed_rows) = captured;
        assert_eq!(
            general.len(),
            4,
            "the instance; changed, gone, new: {general:?}"
        );
        assert_eq!(general_rows, 4);
        assert_eq!(stashed, general, "the same changes in the same order");
        assert_eq!(
            stashed_rows, 2,
            "the instance's row and one blob: the general usage trigger stood aside"
        );
        assert!(
            STASHED_FOR.with_borrow(Option::is_none),
            "the stash went with its guard"
        );
    }

    #[test]
    fn no_change_hashes_nothing() {
        assert!(changes("inst_x", &[]).is_empty());
    }
}
