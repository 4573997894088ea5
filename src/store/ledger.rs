//! The ledger's storage (docs/ledger.md). Which rows count, and how a row reads as
//! canonical text, is declared once in `COUNTED`: the temporary triggers that capture each
//! change as it happens and `rows`, the one reader `ledger verify` recounts with, are both
//! built from it, so a change to a counted table's shape touches this list only.
//!
//! Capture costs one small insert per changed row into a per-connection in-memory table,
//! with no extra read; `seal`, run once per committed batch, hashes those changes and
//! appends one fixed-size entry. Savepoint and transaction rollbacks undo captured
//! changes with the rows themselves. The triggers are TEMP: only the server's own writer
//! connections capture, so a row edited by any other program is never folded in.

use super::Result;
use crate::domain::ledger::{self, Entry, Hash, Head, Op, StateDigest, ZERO};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

pub mod capture;
mod instance_capture;

/// A counted table and the columns of it that count.
pub struct Counted {
    pub table: &'static str,
    pub columns: &'static [&'static str],
}

/// Everything that decides a pool's counts. Order is part of the format (a pending
/// change names its table by index); add new tables at the end.
pub const COUNTED: &[Counted] = &[
    Counted {
        table: "licenses",
        columns: &[
            "id",
            "va_id",
            "tag",
            "license_type",
            "quantity",
            "reserved",
            "start_date",
            "end_date",
            "export_controlled",
            "substitutes",
            "rank",
        ],
    },
    Counted {
        table: "instances",
        columns: &[
            "id",
            "va_id",
            "pid",
            "sn",
            "status",
            "export_controlled",
            "registered_at",
        ],
    },
    Counted {
        table: "instance_usage",
        columns: &["instance_id", "tag_id", "count"],
    },
    Counted {
        table: "reservations",
        columns: &["id", "va_id", "state", "version"],
    },
    Counted {
        table: "reservation_licenses",
        columns: &["reservation_id", "tag", "count", "held"],
    },
    Counted {
        table: "export_keys",
        columns: &["id", "va_id", "instance_id", "tag", "state"],
    },
    Counted {
        table: "upstream_reservations",
        columns: &["va_id", "tag", "held"],
    },
    Counted {
        table: "satellite_instances",
        columns: &["satellite_id", "id", "va_id", "status", "export_controlled"],
    },
    Counted {
        table: "satellite_usage",
        columns: &[
            "satellite_id",
            "instance_id",
            "va_id",
            "tag",
            "count",
            "export",
        ],
    },
    Counted {
        table: "satellite_export_keys",
        columns: &["satellite_id", "instance_id", "tag", "va_id"],
    },
    Counted {
        table: "satellite_reservations",
        columns: &["satellite_id", "va_id", "tag", "held"],
    },
    // A satellite adds the demand recorded elsewhere to its own (CONTRACT section 6).
    Counted {
        table: "demand_elsewhere",
        columns: &["va_id", "tag", "demand", "demand_export"],
    },
];

/// How a counted column reads in the canonical text, through `p`. An instance is named by
/// its external id: migration 0019 made its key an integer, and the text (so every digest
/// folded before) stays what it was.
fn column_text(table: &str, col: &str, p: &str) -> String {
    match (table, col) {
        ("instances", "id") => super::instance_ids::external_sql(p),
        // Statuses are stored as codes (0019); the text names the status.
        ("instances", "status") => super::status_codes::text_sql(&format!("{p}status")),
        ("instance_usage", "instance_id") => {
            super::instance_ids::external_of_key_sql(&format!("{p}instance_id"))
        }
        // Tags are interned (0019); the text names the tag itself.
        ("instance_usage", "tag_id") => {
            format!("(SELECT t.tag FROM tags t WHERE t.id = {p}tag_id)")
        }
        _ => format!("{p}{col}"),
    }
}

/// The canonical text of a row in SQL: `quote(a)||','||quote(b)...`, each column read
/// through `prefix` (`NEW.`, `OLD.` or nothing).
fn canonical_sql(c: &Counted, prefix: &str) -> String {
    c.columns
        .iter()
        .map(|col| format!("quote({})", column_text(c.table, col, prefix)))
        .collect::<Vec<_>>()
        .join("||','||")
}

/// Creates the capture table and triggers on this connection (the server's writers).
pub fn install(conn: &Connection) -> Result<()> {
    // No constraint on any column: a trigger's insert then can not abort the statement
    // that fired it (instance_capture).
    let mut sql = format!(
        "PRAGMA temp_store = MEMORY;
         CREATE TEMP TABLE IF NOT EXISTS ledger_pending (
             id INTEGER PRIMARY KEY, tbl INTEGER, old TEXT, new TEXT, {});\n",
        instance_capture::pending_columns()
    );
    for (i, c) in COUNTED.iter().enumerate() {
        sql.push_str(&triggers_sql(i, c));
    }
    conn.execute_batch(&sql)?;
    Ok(())
}

/// The three capture triggers of counted table `i` (also re-created by `capture`).
/// `instances` copies its columns as they are, and `instance_usage`, the view of its
/// usage column, is captured with it (instance_capture).
fn triggers_sql(i: usize, c: &Counted) -> String {
    match c.table {
        "instances" => return instance_capture::triggers_sql(),
        "instance_usage" => return String::new(),
        _ => {}
    }
    let t = c.table;
    let new = canonical_sql(c, "NEW.");
    let old = canonical_sql(c, "OLD.");
    let cols = c.columns.join(", ");
    let same = c
        .columns
        .iter()
        .map(|col| format!("OLD.{col} IS NEW.{col}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!(
        "CREATE TEMP TRIGGER IF NOT EXISTS ledger_{t}_i AFTER INSERT ON main.{t} BEGIN
           INSERT INTO ledger_pending (tbl, old, new) VALUES ({i}, NULL, {new}); END;
         CREATE TEMP TRIGGER IF NOT EXISTS ledger_{t}_u AFTER UPDATE OF {cols} ON main.{t}
           WHEN NOT ({same}) BEGIN
           INSERT INTO ledger_pending (tbl, old, new) VALUES ({i}, {old}, {new}); END;
         CREATE TEMP TRIGGER IF NOT EXISTS ledger_{t}_d AFTER DELETE ON main.{t} BEGIN
           INSERT INTO ledger_pending (tbl, old, new) VALUES ({i}, {old}, NULL); END;\n"
    )
}

/// Every row of a counted table as its canonical text: the ONE reader of counted rows.
pub fn rows(conn: &Connection, c: &Counted, mut f: impl FnMut(&str)) -> Result<()> {
    let sql = format!("SELECT {} FROM main.{}", canonical_sql(c, ""), c.table);
    let mut stmt = conn.prepare(&sql)?;
    let mut rs = stmt.query([])?;
    while let Some(r) = rs.next()? {
        f(super::columns::borrowed_text(r, 0)?);
    }
    Ok(())
}

fn hash_col(b: Vec<u8>) -> Hash {
    b.try_into().unwrap_or(ZERO)
}

fn entry_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Entry, Hash)> {
    Ok((
        Entry {
            seq: r.get(0)?,
            prev_hash: hash_col(r.get(1)?),
            batch_digest: hash_col(r.get(2)?),
            changes: r.get(3)?,
            state_digest: hash_col(r.get(4)?),
            committed_at: r.get(5)?,
        },
        hash_col(r.get(6)?),
    ))
}

const ENTRY_COLS: &str =
    "seq, prev_hash, batch_digest, changes, state_digest, committed_at, entry_hash";

/// The newest entry and its stored hash.
pub fn last_entry(conn: &Connection) -> Result<Option<(Entry, Hash)>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLS} FROM ledger_entries ORDER BY seq DESC LIMIT 1"
        ))?
        .query_row([], entry_from)
        .optional()?)
}

pub fn entry_at(conn: &Connection, seq: i64) -> Result<Option<(Entry, Hash)>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLS} FROM ledger_entries WHERE seq = ?1"
        ))?
        .query_row([seq], entry_from)
        .optional()?)
}

/// The database's schema version (`PRAGMA user_version`): rows of an older schema do not
/// read as the ledger's text does now, so `ledger verify` wants the latest.
pub fn schema_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// True when the database has the ledger's table (a server of this version ran on it).
pub fn installed(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'ledger_entries')",
        [],
        |r| r.get(0),
    )?)
}

pub fn entry_count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM ledger_entries", [], |r| r.get(0))?)
}

/// Every entry in seq order, with its stored hash.
pub fn for_each_entry(conn: &Connection, mut f: impl FnMut(Entry, Hash) -> bool) -> Result<()> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ENTRY_COLS} FROM ledger_entries ORDER BY seq"
    ))?;
    let mut rs = stmt.query([])?;
    while let Some(r) = rs.next()? {
        let (e, h) = entry_from(r)?;
        if !f(e, h) {
            break;
        }
    }
    Ok(())
}

fn insert_entry(conn: &Connection, e: &Entry) -> Result<Hash> {
    let hash = e.hash();
    conn.prepare_cached(
        "INSERT INTO ledger_entries (seq, prev_hash, batch_digest, changes, state_digest, committed_at, entry_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.seq,
        &e.prev_hash[..],
        &e.batch_digest[..],
        e.changes,
        &e.state_digest[..],
        e.committed_at,
        &hash[..]
    ])?;
    Ok(hash)
}

/// Per counted table: its digest as the chain last folded it and the entry that did.
pub fn table_states(conn: &Connection) -> Result<Vec<(String, StateDigest, i64)>> {
    let mut stmt = conn.prepare("SELECT tbl, digest, seq FROM ledger_state ORDER BY tbl")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            StateDigest(hash_col(r.get(1)?)),
            r.get(2)?,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn set_table_state(conn: &Connection, table: &str, d: &StateDigest, seq: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO ledger_state (tbl, digest, seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (tbl) DO UPDATE SET digest = ?2, seq = ?3",
    )?
    .execute(params![table, &d.0[..], seq])?;
    Ok(())
}

/// Starts the chain when it has no entry yet: entry 1 folds every counted row already
/// present (a database that predates the ledger, or a fresh one). Its batch digest covers
/// the lines `<table> = <digest hex>` in `COUNTED` order.
pub fn ensure_genesis(conn: &Connection, now: i64) -> Result<()> {
    if last_entry(conn)?.is_some() {
        return Ok(());
    }
    let mut total = StateDigest::default();
    let mut batch = Sha256::new();
    let mut changes = 0i64;
    for c in COUNTED {
        let mut d = StateDigest::default();
        rows(conn, c, |row| {
            d.add(&ledger::row_hash(c.table, row));
            changes += 1;
        })?;
        total.add(&d.0);
        batch.update(format!("{} = {}\n", c.table, hex::encode(d.0)));
        set_table_state(conn, c.table, &d, 1)?;
    }
    insert_entry(
        conn,
        &Entry {
            seq: 1,
            prev_hash: ZERO,
            batch_digest: batch.finalize().into(),
            changes,
            state_digest: total.0,
            committed_at: now,
        },
    )?;
    Ok(())
}

/// Folds the changes captured in this transaction into one new entry (none when nothing
/// counted changed). Runs just before the commit, in the same transaction.
pub fn seal(conn: &Connection, now: i64) -> Result<()> {
    // Made once: every batch runs it, and the statement cache is keyed by its text.
    static PENDING: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT tbl, old, new, {} FROM temp.ledger_pending ORDER BY id",
            instance_capture::pending_columns()
        )
    });
    let mut stmt = conn.prepare_cached(&PENDING)?;
    let mut rs = stmt.query([])?;
    let mut batch = Sha256::new();
    let mut changes = 0i64;
    // Per table: (sum added, sum removed, touched).
    let mut delta = vec![(StateDigest::default(), StateDigest::default(), false); COUNTED.len()];
    // One change, its rows hashed: the ONE fold for trigger rows and hashed blobs alike.
    let mut fold = |change: capture::HashedChange| {
        let Some(c) = COUNTED.get(change.table) else {
            return;
        };
        let slot = &mut delta[change.table];
        slot.2 = true;
        if let Some(h) = change.old {
            ledger::hash_change_line(&mut batch, c.table, Op::Remove, &h);
            slot.1.add(&h);
            changes += 1;
        }
        if let Some(h) = change.new {
            ledger::hash_change_line(&mut batch, c.table, Op::Add, &h);
            slot.0.add(&h);
            changes += 1;
        }
    };
    let mut names = instance_capture::Names::default();
    while let Some(r) = rs.next()? {
        let tbl = r.get::<_, i64>(0)?;
        if tbl == instance_capture::RAW {
            instance_capture::changes(conn, r, 3, &mut names, |table, old, new| {
                let name = COUNTED.get(table).map_or("", |c| c.table);
                let hashed = |row: Option<&capture::Canonical>| {
                    row.map(|row| ledger::row_hash(name, row.as_str()))
                };
                fold(capture::HashedChange {
                    table,
                    old: hashed(old),
                    new: hashed(new),
                });
            })?;
            continue;
        }
        if tbl == capture::HASHED {
            let blob = r.get_ref(2)?.as_blob().map_err(rusqlite::Error::from)?;
            let hashed = capture::decode(blob).ok_or_else(|| {
                super::StoreError::Task(
                    "ledger: a pending blob of hashed changes is malformed".into(),
                )
            })?;
            hashed.into_iter().for_each(&mut fold);
            continue;
        }
        let table = tbl as usize;
        let Some(c) = COUNTED.get(table) else {
            continue;
        };
        let hashed = |i: usize| -> Result<Option<Hash>> {
            Ok(r.get_ref(i)?
                .as_str_or_null()
                .map_err(rusqlite::Error::from)?
                .map(|row| ledger::row_hash(c.table, row)))
        };
        fold(capture::HashedChange {
            table,
            old: hashed(1)?,
            new: hashed(2)?,
        });
    }
    drop(rs);
    if changes == 0 {
        return Ok(());
    }
    conn.prepare_cached("DELETE FROM temp.ledger_pending")?
        .execute([])?;
    let (prev, prev_hash) = match last_entry(conn)? {
        Some(last) => last,
        None => {
            // Only when the chain was started by another connection's open: start it here.
            ensure_genesis(conn, now)?;
            last_entry(conn)?.ok_or_else(|| super::StoreError::not_found("ledger entry 1"))?
        }
    };
    let seq = prev.seq + 1;
    let mut state = StateDigest(prev.state_digest);
    for (c, (added, removed, touched)) in COUNTED.iter().zip(&delta) {
        if !touched {
            continue;
        }
        let mut d = conn
            .prepare_cached("SELECT digest FROM ledger_state WHERE tbl = ?1")?
            .query_row([c.table], |r| r.get::<_, Vec<u8>>(0))
            .optional()?
            .map(|b| StateDigest(hash_col(b)))
            .unwrap_or_default();
        d.add(&added.0);
        d.sub(&removed.0);
        set_table_state(conn, c.table, &d, seq)?;
        state.add(&added.0);
        state.sub(&removed.0);
    }
    insert_entry(
        conn,
        &Entry {
            seq,
            prev_hash,
            batch_digest: batch.finalize().into(),
            changes,
            state_digest: state.0,
            committed_at: now,
        },
    )?;
    Ok(())
}

/// A signed head as stored.
#[derive(Clone, Debug)]
pub struct SignedHead {
    pub head: Head,
    pub signature: [u8; 64],
}

fn head_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<SignedHead> {
    let sig: Vec<u8> = r.get(6)?;
    Ok(SignedHead {
        head: Head {
            seq: r.get(0)?,
            entry_hash: hash_col(r.get(1)?),
            prev_head_seq: r.get(2)?,
            prev_head_hash: hash_col(r.get(3)?),
            authority_id: r.get(4)?,
            signed_at: r.get(5)?,
        },
        signature: sig.try_into().unwrap_or([0; 64]),
    })
}

const HEAD_COLS: &str =
    "seq, entry_hash, prev_head_seq, prev_head_hash, authority_id, signed_at, signature";

pub fn latest_head(conn: &Connection) -> Result<Option<SignedHead>> {
    Ok(conn
        .query_row(
            &format!("SELECT {HEAD_COLS} FROM ledger_heads ORDER BY seq DESC LIMIT 1"),
            [],
            head_from,
        )
        .optional()?)
}

/// Signed heads from `seq` on (all of them from 0), oldest first.
pub fn heads_from(conn: &Connection, seq: i64) -> Result<Vec<SignedHead>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {HEAD_COLS} FROM ledger_heads WHERE seq >= ?1 ORDER BY seq"
    ))?;
    let rows = stmt.query_map([seq], head_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn insert_head(conn: &Connection, h: &SignedHead) -> Result<()> {
    conn.execute(
        &format!("INSERT INTO ledger_heads ({HEAD_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
        params![
            h.head.seq,
            &h.head.entry_hash[..],
            h.head.prev_head_seq,
            &h.head.prev_head_hash[..],
            h.head.authority_id,
            h.head.signed_at,
            &h.signature[..]
        ],
    )?;
    Ok(())
}

/// Satellite: which head the request with `sequence` carried last.
pub fn record_sent(conn: &Connection, account_id: i64, sequence: i64, head_seq: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO ledger_sync_sent (account_id, sequence, head_seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, sequence) DO UPDATE SET head_seq = ?3",
        params![account_id, sequence, head_seq],
    )?;
    Ok(())
}

pub fn sent_head(conn: &Connection, account_id: i64, sequence: i64) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT head_seq FROM ledger_sync_sent WHERE account_id = ?1 AND sequence = ?2",
            params![account_id, sequence],
            |r| r.get(0),
        )
        .optional()?)
}

/// Upstream: the head a satellite authority sent at `seq`, if any.
pub fn peer_head_at(conn: &Connection, authority_id: &str, seq: i64) -> Result<Option<Hash>> {
    Ok(conn
        .query_row(
            "SELECT entry_hash FROM ledger_peer_heads WHERE authority_id = ?1 AND seq = ?2",
            params![authority_id, seq],
            |r| r.get::<_, Vec<u8>>(0),
        )
        .optional()?
        .map(hash_col))
}

/// Upstream: the newest head a satellite authority sent.
pub fn peer_last(conn: &Connection, authority_id: &str) -> Result<Option<(i64, Hash)>> {
    Ok(conn
        .query_row(
            "SELECT seq, entry_hash FROM ledger_peer_heads WHERE authority_id = ?1
             ORDER BY seq DESC LIMIT 1",
            [authority_id],
            |r| Ok((r.get(0)?, hash_col(r.get(1)?))),
        )
        .optional()?)
}

pub fn insert_peer_head(conn: &Connection, h: &SignedHead, now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO ledger_peer_heads (authority_id, seq, entry_hash, prev_head_seq, prev_head_hash,
           signed_at, signature, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            h.head.authority_id,
            h.head.seq,
            &h.head.entry_hash[..],
            h.head.prev_head_seq,
            &h.head.prev_head_hash[..],
            h.head.signed_at,
            &h.signature[..],
            now
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreError};

    const LICENSE: &str =
        "INSERT INTO licenses (va_id, tag, name, license_type, quantity, start_date, created_at)
                           VALUES (1, ?1, ?1, 'perpetual', ?2, '2020-01-01', 0)";

    fn digest_of_rows(conn: &Connection) -> StateDigest {
        let mut sum = StateDigest::default();
        for c in COUNTED {
            rows(conn, c, |r| sum.add(&ledger::row_hash(c.table, r))).unwrap();
        }
        sum
    }

    #[tokio::test]
    async fn batches_fold_what_committed_and_nothing_a_rolled_back_job_did() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("l.db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.execute_batch(
                    "INSERT INTO accounts (name, created_at) VALUES ('Acme', 0);
                     INSERT INTO virtual_accounts (account_id, name, created_at) VALUES (1, 'Lab', 0);",
                )?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let count = |s: &Store| s.read_blocking(entry_count).unwrap();
        assert_eq!(
            count(&store),
            1,
            "only genesis: accounts and VAs do not count"
        );
        store
            .write(|tx| Ok(tx.execute(LICENSE, params!["ess", 5])?))
            .await
            .unwrap();
        assert_eq!(count(&store), 2);
        // A job that fails after writing rolls back its captured change with its row.
        let failed = store
            .write(|tx| {
                tx.execute(LICENSE, params!["adv", 1])?;
                Err::<(), _>(StoreError::not_found("on purpose"))
            })
            .await;
        assert!(failed.is_err());
        // An update that changes no counted column writes no entry.
        store
            .write(|tx| Ok(tx.execute("UPDATE licenses SET name = 'Essentials'", [])?))
            .await
            .unwrap();
        assert_eq!(count(&store), 2);
        store
            .write(|tx| Ok(tx.execute("UPDATE licenses SET quantity = 7", [])?))
            .await
            .unwrap();
        let (last, hash) = store.read_blocking(last_entry).unwrap().unwrap();
        assert_eq!((last.seq, last.changes), (3, 2), "one - and one + line");
        assert_eq!(last.hash(), hash);
        let rows_now = store.read_blocking(|c| Ok(digest_of_rows(c))).unwrap();
        assert_eq!(
            rows_now.0, last.state_digest,
            "the chain's state is the rows'"
        );
    }

    /// Every kind of change to an instance, its row and its usage, sealed from the raw
    /// columns the triggers copy: after each batch the chain's state is the digest of the
    /// rows as `rows` (the SQL reader `ledger verify` uses) reads them, so the text built
    /// in Rust is SQL's for every change; the entry counts the change lines expected.
    #[tokio::test]
    async fn an_instances_changes_fold_to_the_rows_as_sql_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("i.db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.execute_batch(
                    "INSERT INTO accounts (name, created_at) VALUES ('Acme', 0);
                     INSERT INTO virtual_accounts (account_id, name, created_at) VALUES (1, 'Lab', 0);
                     INSERT INTO virtual_accounts (account_id, name, created_at) VALUES (1, 'Ops', 0);
                     INSERT INTO tags (id, tag) VALUES (1, 'ess'), (2, 'adv'), (3, 'it''s');",
                )?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let steps: &[(&str, i64)] = &[
            // An instance with two tags: its row and two usage rows come.
            (
                "INSERT INTO instances (va_id, pid, sn, public_key, product_name, product_version,
                   registered_at, last_contact, cert_expires_at, status, usage)
                 VALUES (1, 'C9300', 'O''Neil', x'00', 'p', '1', 5, 0, 0, 4, '{\"1\":2,\"2\":1}')",
                3,
            ),
            // Its status and usage at once, as a first report: the row moves (- and +), a
            // count changes (- and +), a tag goes (-) and one comes (+).
            (
                "UPDATE instances SET status = 1, usage = '{\"1\":5,\"3\":7}'",
                6,
            ),
            // Only a column that does not count: nothing.
            ("UPDATE instances SET last_contact = 99", 0),
            // Usage alone, to none at all.
            ("UPDATE instances SET usage = NULL", 2),
            ("UPDATE instances SET usage = '{\"2\":4}'", 1),
            // Another VA and an unknown status code (NULL in the text).
            ("UPDATE instances SET va_id = 2, status = 42", 2),
            // A legacy id renames the row and every usage row with it.
            ("UPDATE instances SET legacy_id = 'old-1'", 4),
            ("DELETE FROM instances", 2),
        ];
        for (sql, lines) in steps {
            let statement = sql.to_string();
            let before = store.read_blocking(last_entry).unwrap().unwrap().0.seq;
            store
                .write(move |tx| Ok(tx.execute(&statement, [])?))
                .await
                .unwrap();
            let (last, _) = store.read_blocking(last_entry).unwrap().unwrap();
            if *lines == 0 {
                assert_eq!(last.seq, before, "{sql}: no entry");
                continue;
            }
            assert_eq!(last.changes, *lines, "{sql}");
            let rows_now = store.read_blocking(|c| Ok(digest_of_rows(c))).unwrap();
            assert_eq!(rows_now.0, last.state_digest, "{sql}");
        }
    }

    #[test]
    fn the_instance_capture_names_the_tables_it_captures_by_their_index() {
        assert_eq!(COUNTED[instance_capture::INSTANCES].table, "instances");
        assert_eq!(COUNTED[instance_capture::USAGE].table, "instance_usage");
        // A raw row's side is known empty from its first column, the rowid.
        assert_eq!(COUNTED[instance_capture::INSTANCES].columns[0], "id");
    }
}
