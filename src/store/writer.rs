//! Group commit: one writer thread owns the write connection. It takes every write job
//! queued while it was busy, runs each in a savepoint of one transaction (a failing job
//! rolls back only itself), commits once, and only then answers each caller. Durable
//! writes then cost one fsync per batch instead of one per request.

use super::{Result, StoreError};
use rusqlite::Connection;
use std::sync::mpsc;

/// Most jobs in one transaction; bounds the latency a long batch adds.
const MAX_BATCH: usize = 256;

/// Runs in the transaction; returns what to tell the caller once the commit's fate is known.
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;
type Completion = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(conn: Connection) -> Writer {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue))
            .ok();
        Writer { jobs }
    }

    /// Queues `f`; `reply` receives its result after the commit (or the commit's error).
    pub fn submit<T, F>(&self, f: F, reply: impl FnOnce(Result<T>) + Send + 'static) -> Result<()>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let job: Job = Box::new(move |conn: &Connection| {
            let outcome = in_savepoint(conn, f);
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

fn run(conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let msg = e.to_string();
            for job in batch {
                // Not started: the job is never run, its caller hears why.
                drop(job);
                tracing::error!(error = %msg, "cannot begin a write transaction");
            }
            continue;
        }
        let completions: Vec<Completion> = batch.into_iter().map(|job| job(&conn)).collect();
        let commit = conn.execute_batch("COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            e.to_string()
        });
        for done in completions {
            done(commit.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_job_rolls_back_only_itself_and_replies_come_after_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER UNIQUE)")
            .unwrap();
        let writer = Writer::start(conn);
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
}
