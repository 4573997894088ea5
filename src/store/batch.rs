//! Group commit: one writer thread owns the write connection. It takes every write job
//! queued while it was busy, runs each in a savepoint of one transaction (a failing job
//! rolls back only itself), commits once, and only then answers each caller. Durable
//! writes then cost one fsync per batch instead of one per request.
//!
//! A pipelined writer goes one step further: it commits without waiting for the disk
//! (`synchronous = NORMAL`) and hands the batch's replies to a sync thread, which flushes
//! the WAL file and only then answers. The writer runs the next batch meanwhile, so the
//! flush is no longer dead time on the one thread every write goes through. A reply still
//! means the change is on disk: the flush started after the commit's frames were written.
//!
//! The same loop serves batched reads: short point lookups on hot paths share one read
//! transaction per batch, so starting a read (WAL locks, a page cache emptied by every
//! commit elsewhere) and waking a thread are paid once per batch, not once per request.

use super::{Result, StoreError};
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::mpsc;

/// Most jobs in one transaction; bounds the latency a long batch adds.
const MAX_BATCH: usize = 256;

/// Runs in the transaction; returns what to tell the caller once the commit's fate is known.
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;
type Completion = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

#[derive(Clone)]
pub struct Batcher {
    jobs: mpsc::Sender<Job>,
    reads_only: bool,
}

/// Where a committed batch's replies go.
enum Deliver {
    /// Answer at once: the commit itself was durable (or the connection only reads).
    Now,
    /// Answer after the sync thread has flushed the WAL file.
    AfterSync(mpsc::Sender<Vec<Completion>>),
}

impl Batcher {
    /// Commits are durable as the connection is configured, and replies follow them.
    pub fn writer(conn: Connection) -> Batcher {
        Self::spawn(
            conn,
            "sqlite-writer",
            "BEGIN IMMEDIATE",
            false,
            Deliver::Now,
        )
    }

    /// As `writer`, with the WAL flush taken off the writer thread (see the module docs).
    /// `wal` is the database's WAL file.
    pub fn pipelined_writer(conn: Connection, wal: PathBuf) -> Result<Batcher> {
        conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        let (synced, waiting) = mpsc::channel::<Vec<Completion>>();
        std::thread::Builder::new()
            .name("sqlite-sync".into())
            .spawn(move || sync_loop(&wal, waiting))
            .map_err(|e| StoreError::Io(format!("cannot start the sync thread: {e}")))?;
        let deliver = Deliver::AfterSync(synced);
        Ok(Self::spawn(
            conn,
            "sqlite-writer",
            "BEGIN IMMEDIATE",
            false,
            deliver,
        ))
    }

    /// A batched reader: jobs share one read transaction and are not isolated by savepoints.
    pub fn reader(conn: Connection) -> Batcher {
        Self::spawn(conn, "sqlite-lookup", "BEGIN", true, Deliver::Now)
    }

    fn spawn(
        conn: Connection,
        name: &str,
        begin: &'static str,
        reads_only: bool,
        deliver: Deliver,
    ) -> Batcher {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(conn, queue, begin, deliver))
            .ok();
        Batcher { jobs, reads_only }
    }

    /// Queues `f`; `reply` receives its result after the commit (or the commit's error).
    pub fn submit<T, F>(&self, f: F, reply: impl FnOnce(Result<T>) + Send + 'static) -> Result<()>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let reads_only = self.reads_only;
        let job: Job = Box::new(move |conn: &Connection| {
            let outcome = if reads_only {
                f(conn)
            } else {
                in_savepoint(conn, f)
            };
            Box::new(move |commit: std::result::Result<(), String>| {
                reply(match commit {
                    Ok(()) => outcome,
                    Err(e) => Err(StoreError::Task(format!("commit failed: {e}"))),
                })
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Task("the database writer has stopped".into()))
    }
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    // Cached statements: a batch runs these hundreds of times.
    let exec = |sql: &str| -> Result<()> {
        conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    };
    exec("SAVEPOINT job")?;
    match f(conn) {
        Ok(v) => {
            exec("RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            exec("ROLLBACK TO job")?;
            exec("RELEASE job")?;
            Err(e)
        }
    }
}

fn run(conn: Connection, queue: mpsc::Receiver<Job>, begin: &str, deliver: Deliver) {
    let exec = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = exec(begin) {
            tracing::error!(error = %e, "cannot begin a transaction");
            // Not started: the jobs never run, and their callers hear that the store failed.
            continue;
        }
        let completions: Vec<Completion> = batch.into_iter().map(|job| job(&conn)).collect();
        let commit = exec("COMMIT").map(|_| ()).map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            e.to_string()
        });
        match (&deliver, commit) {
            (Deliver::AfterSync(sync), Ok(())) => {
                if let Err(mpsc::SendError(completions)) = sync.send(completions) {
                    answer(completions, Err("the sync thread has stopped".into()));
                }
            }
            (_, commit) => answer(completions, commit),
        }
    }
}

fn answer(completions: Vec<Completion>, outcome: std::result::Result<(), String>) {
    for done in completions {
        done(outcome.clone());
    }
}

/// Flushes the WAL once for every batch committed before the flush began, then answers
/// them. The file is opened by path each time, so the flush reaches the WAL SQLite is
/// writing now even if it was replaced meanwhile.
fn sync_loop(wal: &std::path::Path, waiting: mpsc::Receiver<Vec<Completion>>) {
    while let Ok(first) = waiting.recv() {
        let mut batches = vec![first];
        batches.extend(waiting.try_iter());
        let synced = std::fs::File::open(wal)
            .and_then(|f| f.sync_data())
            .map_err(|e| format!("cannot flush {}: {e}", wal.display()));
        for completions in batches {
            answer(completions, synced.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing_job_rolls_back_only_itself(pipelined: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER UNIQUE)")
            .unwrap();
        let writer = if pipelined {
            Batcher::pipelined_writer(conn, dir.path().join("w.db-wal")).unwrap()
        } else {
            Batcher::writer(conn)
        };
        let (tx, rx) = mpsc::channel();
        for v in [1, 2, 2, 3] {
            let tx = tx.clone();
            writer
                .submit(
                    move |c| {
                        c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                        Ok(v)
                    },
                    move |r| tx.send(r.is_ok()).unwrap(),
                )
                .unwrap();
        }
        let results: Vec<bool> = (0..4).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(results.iter().filter(|ok| **ok).count(), 3, "{results:?}");
        // Replied means committed: a separate connection sees the three rows.
        let reader = Connection::open(&path).unwrap();
        let n: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn a_failing_job_rolls_back_only_itself_and_replies_come_after_commit() {
        failing_job_rolls_back_only_itself(false);
    }

    #[test]
    fn the_pipelined_writer_answers_after_the_flush_with_the_same_isolation() {
        failing_job_rolls_back_only_itself(true);
    }
}
