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

/// Keeps the checkpointer alive; it stops when the last clone of this is dropped.
#[derive(Clone)]
pub struct Checkpointer {
    _alive: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Fails loudly when the thread cannot start: without checkpoints the WAL grows
    /// without bound.
    pub fn start(conn: Connection) -> Result<Checkpointer, super::StoreError> {
        let (alive, stop) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(conn, stop))
            .map_err(|e| {
                super::StoreError::Io(format!("cannot start the WAL checkpoint thread: {e}"))
            })?;
        Ok(Checkpointer { _alive: alive })
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

fn checkpoint(conn: &Connection) {
    let passive = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    let result = match passive {
        Ok((log, _)) if log > RESTART_FRAMES => {
            conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
        }
        other => other.map(|_| ()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
    }
}
