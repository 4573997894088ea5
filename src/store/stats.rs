//! SQLite's own counters for the group-commit writer's connection (page cache hits,
//! misses, pages written), sampled by the writer thread after each commit and kept as
//! running totals that `/metrics` shows as `satellite_sqlite_*`. They tell whether the
//! hot B-tree levels stay cached and how many pages a commit writes to the WAL.

use rusqlite::Connection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Running totals since the server started.
#[derive(Default)]
pub struct WriterStats {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    pages_written: AtomicU64,
    commits: AtomicU64,
    cache_used_bytes: AtomicU64,
}

/// A copy of the totals, for a scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub pages_written: u64,
    pub commits: u64,
    pub cache_used_bytes: u64,
}

/// One `sqlite3_db_status` counter, optionally reset to zero as it is read.
fn db_status(conn: &Connection, op: i32, reset: bool) -> u64 {
    let (mut current, mut high) = (0, 0);
    // SAFETY: the handle is the live connection `conn` borrows, used on this thread only
    // for the duration of the call; sqlite3_db_status only reads its counters.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_db_status(conn.handle(), op, &mut current, &mut high, reset.into())
    };
    if rc == rusqlite::ffi::SQLITE_OK {
        u64::try_from(current).unwrap_or(0)
    } else {
        0
    }
}

impl WriterStats {
    pub fn shared() -> Arc<WriterStats> {
        Arc::new(WriterStats::default())
    }

    /// Adds what the connection counted since the last sample (the counters are reset as
    /// they are read) and one commit.
    pub fn sample(&self, conn: &Connection) {
        use rusqlite::ffi::{
            SQLITE_DBSTATUS_CACHE_HIT, SQLITE_DBSTATUS_CACHE_MISS, SQLITE_DBSTATUS_CACHE_USED,
            SQLITE_DBSTATUS_CACHE_WRITE,
        };
        let add =
            |total: &AtomicU64, op| total.fetch_add(db_status(conn, op, true), Ordering::Relaxed);
        add(&self.cache_hits, SQLITE_DBSTATUS_CACHE_HIT);
        add(&self.cache_misses, SQLITE_DBSTATUS_CACHE_MISS);
        add(&self.pages_written, SQLITE_DBSTATUS_CACHE_WRITE);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.cache_used_bytes.store(
            db_status(conn, SQLITE_DBSTATUS_CACHE_USED, false),
            Ordering::Relaxed,
        );
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            pages_written: self.pages_written.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            cache_used_bytes: self.cache_used_bytes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hits_misses_and_pages_written_per_commit() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("s.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER)")
            .unwrap();
        let stats = WriterStats::default();
        stats.sample(&conn);
        conn.execute_batch("BEGIN; INSERT INTO t VALUES (1); COMMIT;")
            .unwrap();
        stats.sample(&conn);
        let s = stats.snapshot();
        assert_eq!(s.commits, 2);
        assert!(s.pages_written >= 1, "{s:?}");
        assert!(s.cache_hits + s.cache_misses >= 1, "{s:?}");
        assert!(s.cache_used_bytes > 0, "{s:?}");
    }
}
