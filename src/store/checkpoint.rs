//! WAL checkpoints on a thread of their own. Left to SQLite, the connection whose commit
//! crosses the autocheckpoint mark copies the WAL back into the database and fsyncs it
//! before its callers hear back: at a million instances that stalled the group-commit
//! writer for hundreds of milliseconds. Here writers never checkpoint; this thread runs
//! PASSIVE checkpoints (which never block a writer) on its own connection.

use rusqlite::Connection;
use std::sync::mpsc;
use std::time::Duration;

/// How often the WAL is copied back; short enough that it stays a few MB.
const INTERVAL: Duration = Duration::from_millis(250);

/// Keeps the checkpointer alive. Dropping it stops the thread and waits for its last
/// checkpoint, so a short-lived process (a CLI import) leaves its writes in the database
/// file rather than only in the WAL when it exits.
pub struct Checkpointer {
    alive: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Fails loudly when the thread cannot start: without checkpoints the WAL grows
    /// without bound.
    pub fn start(conn: Connection) -> Result<Checkpointer, super::StoreError> {
        let (alive, stop) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(conn, stop))
            .map_err(|e| {
                super::StoreError::Io(format!("cannot start the WAL checkpoint thread: {e}"))
            })?;
        Ok(Checkpointer {
            alive: Some(alive),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.alive.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: Connection, stop: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(INTERVAL) {
        checkpoint(&conn);
    }
    // Last one out: leave the database whole in its main file.
    checkpoint(&conn);
}

/// WAL frames (pages) past which the log is restarted even if that briefly holds up the
/// writer: PASSIVE copies frames back but cannot rewind a log that readers keep using,
/// and under steady load it would otherwise grow without bound.
const RESTART_FRAMES: i64 = 16_384;

/// Frames left uncopied below which RESTART may run: it holds the writer off while it
/// copies what is left and syncs the database file, so the PASSIVE passes before it copy
/// the bulk while the writer keeps going, and RESTART is left only the tail.
const RESTART_TAIL: i64 = 512;

/// PASSIVE passes tried before a RESTART, each copying what the writer added meanwhile.
const CATCH_UP_PASSES: usize = 8;

/// One PASSIVE checkpoint: frames in the log and frames copied back.
fn passive(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })
}

/// Pushes the pages the PASSIVE passes copied from the OS cache to the disk, outside any
/// lock. RESTART ends by syncing the database file while it holds the writer off; left to
/// it, that sync wrote out tens of MB and was the p99 of a WAL-heavy load. Any descriptor
/// of the file flushes all its dirty pages. Best effort: RESTART syncs anyway.
fn flush_database_file(conn: &Connection) {
    let Some(path) = conn.path().filter(|p| !p.is_empty()) else {
        return;
    };
    if let Err(e) = std::fs::File::open(path).and_then(|f| f.sync_data()) {
        tracing::debug!(error = %e, "early sync of the database file failed");
    }
}

fn checkpoint(conn: &Connection) {
    let result = passive(conn).and_then(|(log, mut copied)| {
        if log <= RESTART_FRAMES {
            return Ok(());
        }
        let mut log = log;
        for _ in 0..CATCH_UP_PASSES {
            if log - copied <= RESTART_TAIL {
                break;
            }
            (log, copied) = passive(conn)?;
        }
        flush_database_file(conn);
        // What the writer added during the sync, copied while it keeps going.
        passive(conn)?;
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn a_closed_store_leaves_its_writes_in_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("satellite.db");
        let store = Store::open(&db).unwrap();
        store
            .write_blocking(|tx| {
                tx.execute_batch("CREATE TABLE probe (x); INSERT INTO probe VALUES (42);")?;
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
        drop(store);
        // The main file alone, without its WAL, holds the write: a CLI run that ends
        // right after an import leaves nothing only in the log.
        let copy = dir.path().join("copy.db");
        std::fs::copy(&db, &copy).unwrap();
        let c = rusqlite::Connection::open(&copy).unwrap();
        let x: i64 = c
            .query_row("SELECT x FROM probe", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 42);
    }
}
