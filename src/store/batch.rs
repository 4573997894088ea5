//! Group commit: one writer thread owns the write connection. It takes every write job
//! queued while it was busy, runs each in a savepoint of one transaction (a failing job
//! rolls back only itself), commits once, and only then answers each caller. Durable
//! writes then cost one fsync per batch instead of one per request. A job that makes
//! every refusal before its first write (a usage report) may run without its savepoint
//! (`Rollback::Batch`): should it fail after writing, the whole batch rolls back.
//!
//! A pipelined writer goes one step further: it commits without waiting for the disk
//! (`synchronous = NORMAL`) and hands the batch's replies to a sync thread, which flushes
//! the WAL file and only then answers. The writer runs the next batch meanwhile, so the
//! flush is no longer dead time on the one thread every write goes through. A reply still
//! means the change is on disk: the flush started after the commit's frames were written.
//! While a flush is in flight the writer keeps its transaction open and runs the jobs that
//! arrive into it, committing when the flush is done: a batch committed meanwhile would
//! wait for the next flush anyway, and every commit costs its own WAL and lock work. The
//! sync thread tells the writer when a flush is done, so the writer commits at once
//! instead of when a timer next has it look. Under load a batch also stays open a little
//! longer after the flush (`LINGER`): every flush has a fixed cost, and larger commits
//! spread it over more replies.
//!
//! Hot point reads (an agent's key, looked up for every signed request) run in the same
//! batches on the same connection and are answered as soon as they have run: that
//! connection's page cache survives commits, while any other connection's is emptied
//! whenever the database changed since its last read, which under load is every time.

use super::{counters, Result, StoreError};
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Most jobs in one transaction; bounds the latency a long batch adds.
const MAX_BATCH: usize = 256;

/// Longest a transaction is held open for a flush: a stalled disk must not keep the
/// write lock for ever (the batch then commits, and its replies still wait for a flush).
const FLUSH_WAIT_MAX: Duration = Duration::from_millis(50);

/// Under load (a flush was in flight while the batch ran), a batch stays open at least
/// this long from its first job, until it holds `LINGER_JOBS`. A flush costs the sync
/// thread about 60 us whatever it carries, plus about 2 us a page: commits of 10 reports
/// spent 7-8 us of it on each, commits of 25 spend 4-5. At 1.5 ms a round the replies
/// wait no longer than they did for the flush (p99 fell in 100k runs: docs/benchmarks.md).
const LINGER: Duration = Duration::from_micros(1500);
const LINGER_JOBS: usize = 32;

/// Runs in the transaction; returns what to tell the caller once the commit's fate is known.
struct Job {
    run: Box<dyn FnOnce(&Connection) -> Ran + Send>,
    /// False for reads: a batch of reads only has nothing to flush.
    writes: bool,
}
type Completion = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// What the writer thread is sent.
enum Message {
    Job(Job),
    /// From the sync thread: a flush is done, so a batch held open for it may commit.
    Flushed,
}

/// What a job left behind.
struct Ran {
    completion: Completion,
    /// It failed after writing, outside a savepoint: the transaction holds part of it, so
    /// the whole batch must roll back (see `Rollback::Batch`).
    spoiled: bool,
}

/// Tells `reply` the job's outcome once the commit's is known: the job's own error first.
fn completion<T: Send + 'static>(
    outcome: Result<T>,
    reply: impl FnOnce(Result<T>) + Send + 'static,
) -> Completion {
    Box::new(move |commit: std::result::Result<(), String>| {
        reply(match (outcome, commit) {
            (Err(e), _) => Err(e),
            (Ok(v), Ok(())) => Ok(v),
            (Ok(_), Err(e)) => Err(StoreError::Task(format!("commit failed: {e}"))),
        })
    })
}

/// Runs last in every batch that wrote, inside its transaction (the ledger's fold): when
/// it fails the whole batch rolls back, so nothing commits that the ledger missed.
pub type Seal = fn(&Connection) -> Result<()>;

/// Told the size of every batch the writer runs (metrics); set once, after start.
pub type BatchObserver = std::sync::Arc<std::sync::OnceLock<Box<dyn Fn(usize) + Send + Sync>>>;

#[derive(Clone)]
pub struct Batcher {
    /// The sync thread keeps only a weak reference, so the writer still stops (its queue
    /// closes) once every `Batcher` is gone.
    jobs: Arc<mpsc::Sender<Message>>,
    observer: BatchObserver,
    stats: std::sync::Arc<super::stats::WriterStats>,
}

/// Where a committed batch's replies go.
enum Deliver {
    /// Answer at once: the commit itself was durable.
    Now,
    /// Answer after the sync thread has flushed the WAL file. The count is of batches
    /// handed to it and not yet answered.
    AfterSync(mpsc::Sender<Vec<Completion>>, Arc<AtomicUsize>),
}

impl Deliver {
    /// Whether a flush is under way, so a commit now would only wait for the next one.
    fn flushing(&self) -> bool {
        match self {
            Deliver::Now => false,
            Deliver::AfterSync(_, in_flight) => in_flight.load(Ordering::Acquire) > 0,
        }
    }
}

impl Batcher {
    /// Commits are durable as the connection is configured, and replies follow them.
    pub fn writer(conn: Connection) -> Result<Batcher> {
        let (jobs, queue) = mpsc::channel::<Message>();
        Self::spawn(conn, (Arc::new(jobs), queue), Deliver::Now, None)
    }

    /// As `writer`, with the WAL flush taken off the writer thread (see the module docs).
    /// `wal` is the database's WAL file.
    pub fn pipelined_writer(conn: Connection, wal: PathBuf, seal: Option<Seal>) -> Result<Batcher> {
        conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        let (jobs, queue) = mpsc::channel::<Message>();
        let jobs = Arc::new(jobs);
        let writer = Arc::downgrade(&jobs);
        let (synced, waiting) = mpsc::channel::<Vec<Completion>>();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let answered = in_flight.clone();
        std::thread::Builder::new()
            .name("sqlite-sync".into())
            .spawn(move || sync_loop(&wal, waiting, &answered, &writer))
            .map_err(|e| StoreError::Io(format!("cannot start the sync thread: {e}")))?;
        let deliver = Deliver::AfterSync(synced, in_flight);
        Self::spawn(conn, (jobs, queue), deliver, seal)
    }

    /// Fails loudly when the thread cannot start: a store without its writer would
    /// accept work that never commits.
    fn spawn(
        conn: Connection,
        (jobs, queue): (Arc<mpsc::Sender<Message>>, mpsc::Receiver<Message>),
        deliver: Deliver,
        seal: Option<Seal>,
    ) -> Result<Batcher> {
        let observer = BatchObserver::default();
        let seen = observer.clone();
        let stats = super::stats::WriterStats::shared();
        let counted = stats.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue, deliver, seen, seal, &counted))
            .map_err(|e| StoreError::Io(format!("cannot start the database writer thread: {e}")))?;
        Ok(Batcher {
            jobs,
            observer,
            stats,
        })
    }

    /// Has `f` told the size of each batch from now on (only the first call counts).
    pub fn observe_batches(&self, f: Box<dyn Fn(usize) + Send + Sync>) {
        let _ = self.observer.set(f);
    }

    /// SQLite's counters for this writer's connection (see stats.rs).
    pub fn stats(&self) -> super::stats::StatsSnapshot {
        self.stats.snapshot()
    }

    fn send(&self, job: Job) -> Result<()> {
        self.jobs
            .send(Message::Job(job))
            .map_err(|_| StoreError::Task("the database writer has stopped".into()))
    }

    /// Queues a read to run in the next batch; `reply` hears at once, not after the commit.
    /// Reads sharing the writer's connection find its page cache warm: a reader
    /// connection's cache is emptied whenever the database changed since its last read,
    /// which under steady writes is every time. A read here sees the batch's writes but
    /// not the counter moves it holds (`counters::held`): it must not read the counters.
    pub fn submit_read<T, F>(
        &self,
        f: F,
        reply: impl FnOnce(Result<T>) + Send + 'static,
    ) -> Result<()>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let job = Job {
            run: Box::new(move |conn: &Connection| {
                let changes = conn.total_changes();
                reply(f(conn));
                debug_assert_eq!(changes, conn.total_changes(), "a read job wrote");
                Ran {
                    completion: Box::new(|_| {}),
                    spoiled: false,
                }
            }),
            writes: false,
        };
        self.send(job)
    }

    /// Queues `f`; `reply` receives its result after the commit (or the commit's error).
    /// `rollback` says what a failure of `f` undoes (see `Rollback`).
    pub fn submit<T, F>(
        &self,
        rollback: Rollback,
        f: F,
        reply: impl FnOnce(Result<T>) + Send + 'static,
    ) -> Result<()>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let run = Box::new(move |conn: &Connection| match rollback {
            Rollback::Job => {
                // The counter moves held by the jobs before are written first: this one
                // may read the counters, and rolls back to its own savepoint.
                if let Err(e) = flush_held_counters(conn) {
                    return Ran {
                        completion: completion(Err(e), reply),
                        spoiled: true,
                    };
                }
                Ran {
                    completion: completion(in_savepoint(conn, f), reply),
                    spoiled: false,
                }
            }
            Rollback::Batch => {
                let (changes, moves) = (conn.total_changes(), counters::held::moves());
                let outcome = counters::held::holding(|| f(conn));
                let wrote = conn.total_changes() != changes || counters::held::moves() != moves;
                let spoiled = outcome.is_err() && wrote;
                if outcome.is_err() {
                    super::evaluation_cache::forget_all();
                }
                Ran {
                    completion: completion(outcome, reply),
                    spoiled,
                }
            }
        });
        let job = Job { run, writes: true };
        self.send(job)
    }
}

/// What a write job's failure rolls back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollback {
    /// The job alone: it runs in a savepoint of the batch's transaction.
    Job,
    /// Nothing when it fails before writing; the whole batch when it fails after (every
    /// job of it is told). For a job that makes every refusal before its first write, so
    /// that only the database itself can fail it later: it runs without the savepoint,
    /// which would copy every page it touches once more (a tenth of the writer's time on
    /// a usage report).
    Batch,
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
            super::evaluation_cache::forget_all();
            exec("ROLLBACK TO job")?;
            exec("RELEASE job")?;
            Err(e)
        }
    }
}

fn run(
    conn: Connection,
    queue: mpsc::Receiver<Message>,
    deliver: Deliver,
    observer: BatchObserver,
    seal: Option<Seal>,
    stats: &super::stats::WriterStats,
) {
    let exec = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    while let Ok(message) = queue.recv() {
        // A flush ended while nothing was held open for it.
        let Message::Job(first) = message else {
            continue;
        };
        if let Err(e) = exec("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "cannot begin a transaction");
            // Not started: the job never runs, and its caller hears that the store failed.
            continue;
        }
        let (completions, writes, spoiled) = run_batch(&conn, first, &queue, &deliver);
        if let Some(observe) = observer.get() {
            observe(completions.len());
        }
        if spoiled {
            tracing::error!(
                "a job failed after writing outside a savepoint; the batch rolled back"
            );
            roll_back(&conn);
            answer(completions, Err("another write of its batch failed".into()));
            continue;
        }
        let sealed = flush_held_counters(&conn)
            .and_then(|()| match seal {
                Some(seal) if writes => seal(&conn),
                _ => Ok(()),
            })
            .map_err(|e| e.to_string());
        if let Err(e) = sealed {
            tracing::error!(error = %e, "cannot fold the batch into the ledger; rolled back");
            roll_back(&conn);
            answer(completions, Err(format!("ledger: {e}")));
            continue;
        }
        let commit = exec("COMMIT").map(|_| ()).map_err(|e| {
            roll_back(&conn);
            e.to_string()
        });
        stats.sample(&conn);
        match (&deliver, commit) {
            (Deliver::AfterSync(sync, in_flight), Ok(())) if writes => {
                in_flight.fetch_add(1, Ordering::AcqRel);
                if let Err(mpsc::SendError(completions)) = sync.send(completions) {
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                    answer(completions, Err("the sync thread has stopped".into()));
                }
            }
            (_, commit) => answer(completions, commit),
        }
    }
}

/// Writes the counter moves the batch's jobs held (`counters::held`). The kept
/// evaluations already follow them (`evaluation_cache::moved`), so they stay.
fn flush_held_counters(conn: &Connection) -> Result<()> {
    super::evaluation_cache::unaffected_by(conn, counters::held::flush)
}

/// Ends the batch's transaction without committing it; what the evaluation cache learnt
/// in it goes too.
fn roll_back(conn: &Connection) {
    super::evaluation_cache::forget_all();
    counters::held::discard();
    let _ = conn.execute_batch("ROLLBACK");
}

/// Runs `first` and every job queued meanwhile in the open transaction, up to
/// `MAX_BATCH`; while a flush is in flight it waits for more (see the module docs).
/// Returns the completions, whether any job wrote, and whether one spoiled the
/// transaction (the batch then stops there).
fn run_batch(
    conn: &Connection,
    first: Job,
    queue: &mpsc::Receiver<Message>,
    deliver: &Deliver,
) -> (Vec<Completion>, bool, bool) {
    let mut batch = Batch::default();
    let run = |job: Job, batch: &mut Batch| {
        batch.writes |= job.writes;
        let ran = (job.run)(conn);
        // A transaction SQLite ended itself (it rolls back the whole of it on a full disk
        // or an I/O error in a statement without a journal) spoils the batch as well:
        // the jobs before lost their writes, and those after would run outside it.
        batch.spoiled |= ran.spoiled || conn.is_autocommit();
        batch.completions.push(ran.completion);
    };
    run(first, &mut batch);
    let held_since = Instant::now();
    let mut loaded = false;
    while batch.completions.len() < MAX_BATCH && !batch.spoiled {
        let next = match queue.try_recv() {
            Ok(message) => message,
            Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {
                let flushing = deliver.flushing();
                loaded |= flushing;
                let open = Open {
                    writes: batch.writes,
                    jobs: batch.completions.len(),
                    held: held_since.elapsed(),
                    flushing,
                    loaded,
                };
                let Some(wait) = open.wait() else {
                    break;
                };
                // Until a job comes, the sync thread says the flush is done, or the wait
                // is over.
                match queue.recv_timeout(wait) {
                    Ok(message) => message,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        if let Message::Job(job) = next {
            run(job, &mut batch);
        }
    }
    (batch.completions, batch.writes, batch.spoiled)
}

/// An open batch with nothing queued: whether to wait for more before committing.
struct Open {
    /// Only a batch that wrote waits: reads alone hold nothing worth a flush.
    writes: bool,
    jobs: usize,
    held: Duration,
    /// A flush is in flight now: a commit would only wait for the next one.
    flushing: bool,
    /// A flush was in flight at some point while this batch was open.
    loaded: bool,
}

impl Open {
    /// How long to wait for the next job (or the flush's end); None: commit now.
    fn wait(&self) -> Option<Duration> {
        if !self.writes || self.held >= FLUSH_WAIT_MAX {
            return None;
        }
        if self.flushing {
            return Some(FLUSH_WAIT_MAX - self.held);
        }
        // Light load (no flush met) commits at once: a lone request never lingers.
        (self.loaded && self.jobs < LINGER_JOBS && self.held < LINGER).then(|| LINGER - self.held)
    }
}

/// The jobs a batch ran so far.
#[derive(Default)]
struct Batch {
    completions: Vec<Completion>,
    writes: bool,
    spoiled: bool,
}

fn answer(completions: Vec<Completion>, outcome: std::result::Result<(), String>) {
    for done in completions {
        done(outcome.clone());
    }
}

/// Flushes the WAL once for every batch committed before the flush began, then answers
/// them and tells the writer, which may be holding a batch open for it. The file is
/// opened by path each time, so the flush reaches the WAL SQLite is writing now even if
/// it was replaced meanwhile.
fn sync_loop(
    wal: &std::path::Path,
    waiting: mpsc::Receiver<Vec<Completion>>,
    in_flight: &AtomicUsize,
    writer: &std::sync::Weak<mpsc::Sender<Message>>,
) {
    while let Ok(first) = waiting.recv() {
        let mut batches = vec![first];
        batches.extend(waiting.try_iter());
        let synced = std::fs::File::open(wal)
            .and_then(|f| f.sync_data())
            .map_err(|e| format!("cannot flush {}: {e}", wal.display()));
        let n = batches.len();
        for completions in batches {
            answer(completions, synced.clone());
        }
        in_flight.fetch_sub(n, Ordering::AcqRel);
        if let Some(writer) = writer.upgrade() {
            let _ = writer.send(Message::Flushed);
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
            Batcher::pipelined_writer(conn, dir.path().join("w.db-wal"), None).unwrap()
        } else {
            Batcher::writer(conn).unwrap()
        };
        let (tx, rx) = mpsc::channel();
        for v in [1, 2, 2, 3] {
            let tx = tx.clone();
            writer
                .submit(
                    Rollback::Job,
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

    fn open(jobs: usize, held_us: u64, flushing: bool, loaded: bool) -> Open {
        Open {
            writes: true,
            jobs,
            held: Duration::from_micros(held_us),
            flushing,
            loaded,
        }
    }

    /// A batch waits for a flush in flight; once the flush is done it lingers only if
    /// it met one (load), until LINGER from its first job or LINGER_JOBS jobs.
    #[test]
    fn a_batch_lingers_only_under_load_and_within_its_bounds() {
        assert_eq!(
            open(1, 0, false, false).wait(),
            None,
            "a lone request commits at once"
        );
        assert_eq!(
            open(1, 100, true, true).wait(),
            Some(FLUSH_WAIT_MAX - Duration::from_micros(100))
        );
        assert_eq!(
            open(5, 400, false, true).wait(),
            Some(LINGER - Duration::from_micros(400))
        );
        assert_eq!(
            open(LINGER_JOBS, 400, false, true).wait(),
            None,
            "full enough"
        );
        let lingered = LINGER.as_micros() as u64;
        assert_eq!(
            open(5, lingered, false, true).wait(),
            None,
            "lingered long enough"
        );
        let stalled = FLUSH_WAIT_MAX.as_micros() as u64;
        assert_eq!(open(5, stalled, true, true).wait(), None, "a stalled flush");
        let reads = Open {
            writes: false,
            ..open(1, 0, true, true)
        };
        assert_eq!(reads.wait(), None, "reads alone never wait");
    }

    #[test]
    fn a_failing_job_rolls_back_only_itself_and_replies_come_after_commit() {
        failing_job_rolls_back_only_itself(false);
    }

    /// The sync thread's way to wake the writer must not keep the writer alive: once
    /// every handle is gone the writer closes its connection, and SQLite then removes the
    /// WAL.
    #[test]
    fn the_pipelined_writer_stops_when_its_last_handle_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let wal = dir.path().join("s.db-wal");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER)")
            .unwrap();
        let writer = Batcher::pipelined_writer(conn, wal.clone(), None).unwrap();
        let (tx, rx) = mpsc::channel();
        for v in 0..20 {
            let tx = tx.clone();
            let insert = move |c: &Connection| Ok(c.execute("INSERT INTO t VALUES (?1)", [v])?);
            writer
                .submit(Rollback::Job, insert, move |r| tx.send(r.is_ok()).unwrap())
                .unwrap();
        }
        assert!((0..20).all(|_| rx.recv().unwrap()));
        assert!(wal.exists(), "the writer's WAL while it runs");
        drop(writer);
        let deadline = Instant::now() + Duration::from_secs(10);
        while wal.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!wal.exists(), "the writer still holds its connection");
        let reader = Connection::open(&path).unwrap();
        let n: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 20);
    }

    #[test]
    fn reads_share_the_batches_and_see_earlier_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER)")
            .unwrap();
        let writer = Batcher::pipelined_writer(conn, dir.path().join("r.db-wal"), None).unwrap();
        let (tx, rx) = mpsc::channel();
        let wrote = tx.clone();
        writer
            .submit(
                Rollback::Job,
                |c| Ok(c.execute("INSERT INTO t (v) VALUES (7)", [])?),
                move |r| wrote.send(r.map(|n| n as i64).unwrap()).unwrap(),
            )
            .unwrap();
        writer
            .submit_read(
                |c| Ok(c.query_row("SELECT sum(v) FROM t", [], |r| r.get::<_, i64>(0))?),
                move |r| tx.send(r.unwrap()).unwrap(),
            )
            .unwrap();
        let mut got = vec![rx.recv().unwrap(), rx.recv().unwrap()];
        got.sort();
        assert_eq!(got, vec![1, 7], "one row inserted, and the read saw it");
    }

    #[derive(Clone, Copy)]
    enum Step {
        Insert,
        RefuseFirst,
        FailAfterWriting,
        /// Fails as SQLite does on a full disk in a statement without a journal: the
        /// whole transaction is rolled back, with no change of the job's own undone.
        LoseTheTransaction,
    }

    /// Runs a held first job (it inserts 0) and `steps` as unguarded jobs of one batch:
    /// the first holds the writer until every other is queued. The replies, in order.
    fn unguarded_batch(
        writer: &Batcher,
        steps: &[(i64, Step)],
    ) -> Vec<std::result::Result<i64, String>> {
        let (release, hold) = mpsc::channel::<()>();
        let (tx, rx) = mpsc::channel();
        let first = tx.clone();
        writer
            .submit(
                Rollback::Batch,
                move |c| {
                    hold.recv().unwrap();
                    c.execute("INSERT INTO t (v) VALUES (0)", [])?;
                    Ok(0)
                },
                move |r| first.send((0, r.map_err(|e| e.to_string()))).unwrap(),
            )
            .unwrap();
        for (n, &(v, step)) in steps.iter().enumerate() {
            let tx = tx.clone();
            writer
                .submit(
                    Rollback::Batch,
                    move |c| {
                        match step {
                            Step::RefuseFirst => {
                                return Err(StoreError::not_found("refused before writing"));
                            }
                            Step::LoseTheTransaction => {
                                c.execute_batch("ROLLBACK")?;
                                return Err(StoreError::Task("the disk is full".into()));
                            }
                            _ => {}
                        }
                        c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                        match step {
                            Step::FailAfterWriting => {
                                Err(StoreError::Task("failed after writing".into()))
                            }
                            _ => Ok(v),
                        }
                    },
                    move |r| tx.send((n + 1, r.map_err(|e| e.to_string()))).unwrap(),
                )
                .unwrap();
        }
        release.send(()).unwrap();
        let mut got: Vec<_> = (0..=steps.len()).map(|_| rx.recv().unwrap()).collect();
        got.sort_by_key(|(n, _)| *n);
        got.into_iter().map(|(_, r)| r).collect()
    }

    /// Replies of a held first job and three unguarded ones, the second of which spoiled
    /// the batch: the first two hear so, the spoiler its own error, and the last, queued
    /// behind, commits `next` in the next batch.
    fn spoiled(got: &[std::result::Result<i64, String>], own: &str, next: i64) {
        for lost in &got[..2] {
            assert!(
                lost.as_ref()
                    .is_err_and(|e| e.contains("another write of its batch failed")),
                "{got:?}"
            );
        }
        assert!(got[2].as_ref().is_err_and(|e| e.contains(own)), "{got:?}");
        assert_eq!(
            got[3],
            Ok(next),
            "queued behind the spoiled batch: the next one"
        );
    }

    /// An unguarded job that refuses before writing spoils nothing: the others of its
    /// batch commit. One that fails after writing, or whose failure ended the
    /// transaction, rolls its whole batch back and every job of it hears so (its own
    /// error for itself); a job queued behind it commits in the next batch.
    #[test]
    fn an_unguarded_job_spoils_its_batch_when_it_fails_after_writing_or_ends_the_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER)")
            .unwrap();
        let writer = Batcher::writer(conn).unwrap();
        let rows = || -> Vec<i64> {
            let reader = Connection::open(&path).unwrap();
            let mut stmt = reader.prepare("SELECT v FROM t ORDER BY v").unwrap();
            let v = stmt.query_map([], |r| r.get(0)).unwrap();
            v.map(|v| v.unwrap()).collect()
        };

        let got = unguarded_batch(
            &writer,
            &[(1, Step::Insert), (2, Step::RefuseFirst), (3, Step::Insert)],
        );
        assert_eq!(got[0], Ok(0));
        assert_eq!(got[1], Ok(1));
        assert!(
            got[2]
                .as_ref()
                .is_err_and(|e| e.contains("refused before writing")),
            "{got:?}"
        );
        assert_eq!(got[3], Ok(3));
        assert_eq!(rows(), vec![0, 1, 3]);

        let got = unguarded_batch(
            &writer,
            &[
                (4, Step::Insert),
                (5, Step::FailAfterWriting),
                (6, Step::Insert),
            ],
        );
        spoiled(&got, "failed after writing", 6);
        assert_eq!(rows(), vec![0, 1, 3, 6]);

        // Writing nothing itself, but the transaction is gone: the jobs before lost their
        // rows, and the one after must not write outside a transaction.
        let got = unguarded_batch(
            &writer,
            &[
                (7, Step::Insert),
                (8, Step::LoseTheTransaction),
                (9, Step::Insert),
            ],
        );
        spoiled(&got, "disk is full", 9);
        assert_eq!(rows(), vec![0, 1, 3, 6, 9]);
    }

    /// Counter moves of unguarded jobs are held and written once before anything else
    /// can read them: a guarded job in the same batch sees them, the commit keeps them,
    /// and a job that fails having only held a move spoils its batch (nothing else wrote).
    #[test]
    fn held_counter_moves_are_written_before_anything_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        let writer = Batcher::writer(conn).unwrap();
        let counted = || -> (i64, i64) {
            let reader = Connection::open(&path).unwrap();
            let n = reader
                .query_row(
                    "SELECT coalesce(sum(n), 0) FROM va_status_counts WHERE va_id = 1 AND status = 'authorized'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let demand = reader
                .query_row(
                    "SELECT coalesce(sum(demand), 0) FROM usage_totals WHERE va_id = 1 AND tag = 'a'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            (n, demand)
        };
        let (tx, rx) = mpsc::channel::<std::result::Result<(i64, i64), String>>();
        let answer = |tx: &mpsc::Sender<_>| {
            let tx = tx.clone();
            move |r: Result<(i64, i64)>| tx.send(r.map_err(|e| e.to_string())).unwrap()
        };
        let moving = |c: &Connection| -> Result<(i64, i64)> {
            counters::bump_status(c, 1, "authorized", 1)?;
            counters::add_demand(c, 1, "a", 2, false)?;
            Ok((0, 0))
        };
        // A first job that moves the counters once the rest of its batch is queued.
        let held_first = || {
            let (release, hold) = mpsc::channel::<()>();
            writer
                .submit(
                    Rollback::Batch,
                    move |c| {
                        hold.recv().unwrap();
                        moving(c)
                    },
                    answer(&tx),
                )
                .unwrap();
            release
        };
        let release = held_first();
        for _ in 0..2 {
            writer.submit(Rollback::Batch, moving, answer(&tx)).unwrap();
        }
        writer
            .submit(
                Rollback::Job,
                |c| {
                    let n = c.query_row(
                        "SELECT n FROM va_status_counts WHERE va_id = 1 AND status = 'authorized'",
                        [],
                        |r| r.get(0),
                    )?;
                    let demand = c.query_row(
                        "SELECT demand FROM usage_totals WHERE va_id = 1 AND tag = 'a'",
                        [],
                        |r| r.get(0),
                    )?;
                    Ok((n, demand))
                },
                answer(&tx),
            )
            .unwrap();
        writer.submit(Rollback::Batch, moving, answer(&tx)).unwrap();
        release.send(()).unwrap();
        let got: Vec<_> = (0..5).map(|_| rx.recv().unwrap()).collect();
        assert!(got.iter().all(|r| r.is_ok()), "{got:?}");
        assert!(
            got.contains(&Ok((3, 6))),
            "the guarded job saw 3 moves: {got:?}"
        );
        assert_eq!(counted(), (4, 8), "all four committed");

        let release = held_first();
        writer
            .submit(
                Rollback::Batch,
                |c| {
                    counters::bump_status(c, 1, "authorized", 1)?;
                    Err(StoreError::Task("fails having moved a counter".into()))
                },
                answer(&tx),
            )
            .unwrap();
        release.send(()).unwrap();
        let got: Vec<_> = (0..2).map(|_| rx.recv().unwrap()).collect();
        assert!(got.iter().all(|r| r.is_err()), "{got:?}");
        assert_eq!(counted(), (4, 8), "the spoiled batch moved nothing");
        // Nothing held survives the rollback.
        writer.submit(Rollback::Batch, moving, answer(&tx)).unwrap();
        assert!(rx.recv().unwrap().is_ok());
        assert_eq!(counted(), (5, 10));
    }

    #[test]
    fn the_pipelined_writer_answers_after_the_flush_with_the_same_isolation() {
        failing_job_rolls_back_only_itself(true);
    }
}
