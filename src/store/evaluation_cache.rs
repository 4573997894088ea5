//! The writer's memory of each virtual account's license evaluation between usage reports.
//!
//! A report is judged against its VA's pools and their demand. Reading those (licenses,
//! demand totals, demand of export keys, demand recorded elsewhere) and evaluating them
//! took four statements and a parse per report, and grew with the VA's licenses and keys,
//! although most reports change none of it. So the evaluation is kept, per VA and day,
//! for as long as nothing could have changed it:
//! - the entries belong to one connection and are dropped as soon as that connection
//!   changed any row other than through a report's own known writes (SQLite's
//!   `total_changes`, recorded at the end of each report), or another connection
//!   committed (`PRAGMA data_version`);
//! - a report that moves demand patches its VA's entry by the same deltas it wrote, and
//!   evaluates the pools again in memory; one whose instance holds a granted export key
//!   drops the entry instead (a key's demand follows its holder's count);
//! - a job or a transaction that rolls back drops every entry (`forget_all`, called by the
//!   group-commit writer), since an entry may have been read from rows now undone.
//!
//! Thread-local: each writer thread owns its connection, and the state never crosses
//! threads.

use super::licenses;
use super::Result;
use crate::domain::compliance::{self, Demand, Evaluation, Pool};
use chrono::NaiveDate;
use rusqlite::Connection;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// A VA's pools and their evaluation on one day, with the demand it was made from.
#[derive(Clone)]
pub struct Judged {
    pub pools: Vec<Pool>,
    pub evaluation: Evaluation,
    demand: BTreeMap<String, Demand>,
    day: NaiveDate,
}

#[derive(Default)]
struct Cache {
    /// The connection the entries were read on, and its counters when they were last
    /// known to hold.
    conn: usize,
    data_version: i64,
    changes: u64,
    entries: HashMap<i64, Rc<Judged>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

fn identity(conn: &Connection) -> usize {
    conn as *const Connection as usize
}

fn data_version(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))?)
}

/// Before a report: keeps the entries only if nothing but reports touched the database
/// since the last one ended.
pub fn begin(conn: &Connection) -> Result<()> {
    let version = data_version(conn)?;
    let changes = conn.total_changes();
    CACHE.with_borrow_mut(|c| {
        let same = c.conn == identity(conn) && c.data_version == version && c.changes == changes;
        if !same {
            c.entries.clear();
            c.conn = identity(conn);
            c.data_version = version;
        }
    });
    Ok(())
}

/// After a report's writes, all accounted for: what follows is measured from here.
pub fn end(conn: &Connection) {
    let changes = conn.total_changes();
    CACHE.with_borrow_mut(|c| {
        if c.conn == identity(conn) {
            c.changes = changes;
        }
    });
}

/// Runs `write`, whose writes change nothing an evaluation reads (the ledger's seal, which
/// writes only its own tables): entries known to hold before it still hold after it. A
/// batch that captured a change would otherwise drop every entry at its seal.
pub fn unaffected_by<T>(
    conn: &Connection,
    write: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let before = conn.total_changes();
    let out = write(conn)?;
    let after = conn.total_changes();
    CACHE.with_borrow_mut(|c| {
        if c.conn == identity(conn) && c.changes == before {
            c.changes = after;
        }
    });
    Ok(out)
}

/// The VA's evaluation on `today`, read once and then kept.
pub fn evaluate(conn: &Connection, va_id: i64, today: NaiveDate) -> Result<Rc<Judged>> {
    let kept = CACHE.with_borrow(|c| {
        (c.conn == identity(conn))
            .then(|| c.entries.get(&va_id).filter(|j| j.day == today).cloned())
            .flatten()
    });
    if let Some(judged) = kept {
        return Ok(judged);
    }
    let pools: Vec<Pool> = (licenses::list(conn, va_id)?.iter())
        .map(|l| l.pool())
        .collect();
    let demand = licenses::demand(conn, va_id)?;
    let judged = Rc::new(Judged {
        evaluation: compliance::evaluate(&pools, &demand, today),
        pools,
        demand,
        day: today,
    });
    CACHE.with_borrow_mut(|c| {
        if c.conn == identity(conn) {
            c.entries.insert(va_id, judged.clone());
        }
    });
    Ok(judged)
}

/// A report moved the VA's demand by `moved` (tag, total, export-eligible), as it wrote
/// it: the kept evaluation follows without reading anything.
pub fn moved(va_id: i64, moved: &[(String, Demand)]) {
    CACHE.with_borrow_mut(|c| {
        let Some(kept) = c.entries.remove(&va_id) else {
            return;
        };
        let Judged {
            pools,
            mut demand,
            day,
            ..
        } = Rc::unwrap_or_clone(kept);
        for (tag, d) in moved {
            let e = demand.entry(tag.clone()).or_default();
            e.total += d.total;
            e.export_ok += d.export_ok;
        }
        let judged = Judged {
            evaluation: compliance::evaluate(&pools, &demand, day),
            pools,
            demand,
            day,
        };
        c.entries.insert(va_id, Rc::new(judged));
    });
}

/// The VA's evaluation is read again next time.
pub fn forget(va_id: i64) {
    CACHE.with_borrow_mut(|c| {
        c.entries.remove(&va_id);
    });
}

/// Something rolled back: no entry can be trusted.
pub fn forget_all() {
    CACHE.with_borrow_mut(|c| c.entries.clear());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One account, one VA, one pool of 5 `a`.
    fn seed(conn: &mut Connection) {
        super::super::migrations::migrate(conn).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts (id, name, created_at) VALUES (1, 'Acme', 0);
             INSERT INTO virtual_accounts (id, account_id, name, description, created_at)
                 VALUES (1, 1, 'Default', '', 0);
             INSERT INTO licenses (va_id, tag, name, license_type, quantity, start_date,
                                   export_controlled, substitutes, created_at, rank)
                 VALUES (1, 'a', 'A', 'perpetual', 5, '2026-01-01', 0, '[]', 0, 0);",
        )
        .unwrap();
    }

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        seed(&mut conn);
        conn
    }

    fn quantity(conn: &Connection, today: NaiveDate) -> i64 {
        evaluate(conn, 1, today).unwrap().pools[0].quantity
    }

    #[test]
    fn kept_until_anything_else_changes_a_row_or_a_job_rolls_back() {
        let conn = store();
        let today = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        begin(&conn).unwrap();
        assert_eq!(quantity(&conn, today), 5);
        end(&conn);

        // A write outside a report: the next report reads the pool again.
        conn.execute("UPDATE licenses SET quantity = 7", [])
            .unwrap();
        begin(&conn).unwrap();
        assert_eq!(quantity(&conn, today), 7);
        end(&conn);

        // Kept while nothing changed: a value planted behind SQLite's back shows the
        // entry was used (a real change always moves total_changes).
        begin(&conn).unwrap();
        CACHE.with_borrow_mut(|c| {
            let j = c.entries.get_mut(&1).unwrap();
            Rc::get_mut(j).unwrap().pools[0].quantity = 99;
        });
        assert_eq!(quantity(&conn, today), 99);
        // Another day is evaluated afresh.
        let tomorrow = today.succ_opt().unwrap();
        assert_eq!(quantity(&conn, tomorrow), 7);
        end(&conn);

        // Writes that change no evaluation (the ledger's seal) keep the entry; any other
        // write after them still drops it.
        CACHE.with_borrow_mut(|c| {
            let j = c.entries.get_mut(&1).unwrap();
            Rc::get_mut(j).unwrap().pools[0].quantity = 99;
        });
        unaffected_by(&conn, |c| {
            c.execute_batch("CREATE TABLE sealed (n); INSERT INTO sealed VALUES (1)")?;
            Ok(())
        })
        .unwrap();
        begin(&conn).unwrap();
        assert_eq!(quantity(&conn, tomorrow), 99);
        end(&conn);
        conn.execute("INSERT INTO sealed VALUES (2)", []).unwrap();
        begin(&conn).unwrap();
        assert_eq!(quantity(&conn, tomorrow), 7);
        end(&conn);

        // A rollback (a failed job) drops everything.
        CACHE.with_borrow_mut(|c| {
            let j = c.entries.get_mut(&1).unwrap();
            Rc::get_mut(j).unwrap().pools[0].quantity = 99;
        });
        forget_all();
        begin(&conn).unwrap();
        assert_eq!(quantity(&conn, tomorrow), 7);
        end(&conn);
    }

    #[test]
    fn moved_demand_patches_the_kept_evaluation_as_a_fresh_read_would() {
        let conn = store();
        let today = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        begin(&conn).unwrap();
        evaluate(&conn, 1, today).unwrap();
        // The report's own writes, and the same deltas told to the cache.
        let add = |tag: &str, n: i64| {
            let d = super::super::counters::add_demand(&conn, 1, tag, n, false).unwrap();
            moved(1, &[(tag.to_string(), d)]);
        };
        add("a", 4);
        add("a", 3);
        add("b", 2);
        let kept = evaluate(&conn, 1, today).unwrap();
        end(&conn);
        forget_all();
        begin(&conn).unwrap();
        let fresh = evaluate(&conn, 1, today).unwrap();
        assert!(!Rc::ptr_eq(&kept, &fresh));
        assert_eq!(kept.demand, fresh.demand);
        assert_eq!(kept.evaluation.pools, fresh.evaluation.pools);
        assert_eq!(kept.evaluation.pools["a"].in_use, 7, "7 asked of 5");
        assert_eq!(kept.evaluation.shortfall, fresh.evaluation.shortfall);
        assert_eq!(kept.evaluation.shortfall["a"], 2);
    }

    #[test]
    fn a_commit_by_another_connection_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        seed(&mut writer);
        let reports = Connection::open(&path).unwrap();
        let today = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        begin(&reports).unwrap();
        assert_eq!(quantity(&reports, today), 5);
        end(&reports);
        // A bundle import, say, on the bulk connection.
        writer
            .execute("UPDATE licenses SET quantity = 8", [])
            .unwrap();
        begin(&reports).unwrap();
        assert_eq!(quantity(&reports, today), 8);
        end(&reports);
    }

    #[test]
    fn another_connection_is_never_served_this_ones_entries() {
        let (a, b) = (store(), store());
        let today = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        b.execute("UPDATE licenses SET quantity = 3", []).unwrap();
        begin(&a).unwrap();
        assert_eq!(quantity(&a, today), 5);
        end(&a);
        begin(&b).unwrap();
        assert_eq!(quantity(&b, today), 3);
        end(&b);
    }
}
