//! SQLite storage: a pool of readers, one writer, embedded versioned migrations.
//! Every function here takes a connection or transaction so callers compose them into
//! one transaction: a change and its event and counters commit together or not at all.

pub mod accounts;
pub mod alerts;
pub mod api_clients;
pub mod batch;
pub mod checkpoint;
pub mod columns;
pub mod counters;
pub mod demand_elsewhere;
pub mod evaluation_cache;
pub mod events;
pub mod export_keys;
pub mod instance_expiry;
pub mod instance_ids;
pub mod instance_list;
pub mod instance_reports;
pub mod instances;
pub mod integrity;
pub mod ledger;
pub mod licenses;
pub mod migrations;
pub mod notifications;
pub mod page;
pub mod preview;
pub mod reported;
pub mod reports;
pub mod reservations;
pub mod satellite_admin;
pub mod satellite_registry;
pub mod sessions;
pub mod settings;
pub mod stats;
pub mod status_codes;
pub mod sync_state;
pub mod synced;
pub mod tokens;
pub mod usage_column;
pub mod usage_history;
pub mod user_admin;
pub mod users;

pub use page::Page;

use crate::domain::DomainError;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database pool error: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("{0}")]
    Io(String),
    #[error("background task failed: {0}")]
    Task(String),
}

impl StoreError {
    pub fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound(what.into())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    readers: r2d2::Pool<SqliteConnectionManager>,
    // SQLite admits one writer at a time. Requests write through the group-commit
    // writer (one transaction per batch of queued jobs); blocking callers (CLI, bundle
    // import, jobs) through this mutex-guarded connection. SQLite serializes the two.
    writer: Arc<Mutex<Connection>>,
    group: batch::Batcher,
    /// Shared by the clones; the last one dropped runs the final checkpoint.
    _checkpointer: Arc<checkpoint::Checkpointer>,
    // Bounds the blocking threads waiting for a reader: more would only queue on the pool.
    read_slots: Arc<tokio::sync::Semaphore>,
    path: PathBuf,
    /// Whether writes fold into the tamper-evident ledger (setting `ledger_enabled`).
    ledger: bool,
}

const READERS: u32 = 8;

/// Waits out a lock held by another connection in fine steps (SQLite's own handler sleeps
/// up to 100 ms at a time, far longer than our locks are held), giving up after a minute.
fn wait_for_lock(attempt: i32) -> bool {
    let step = if attempt < 1_000 {
        std::time::Duration::from_micros(100)
    } else {
        std::time::Duration::from_millis(1)
    };
    std::thread::sleep(step);
    attempt < 60_000
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(wait_for_lock))?;
    // rusqlite keeps 16 prepared statements by default; a registration and a usage
    // report alone cycle through more, and a statement evicted is a statement parsed again.
    conn.set_prepared_statement_cache_capacity(256);
    // Writers never checkpoint (see checkpoint.rs); the WAL file is cut back to 64 MiB
    // whenever it is reset. The database file is memory-mapped: a page missing from a
    // connection's cache is then read by a pointer into the OS page cache instead of a
    // read() system call and a copy each time (at a million instances most reads of a
    // uniform load miss the cache), and the mapped pages are shared, not private memory.
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;
         PRAGMA wal_autocheckpoint = 0;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA mmap_size = 17179869184;",
    )
}

type Reply<T> = Box<dyn FnOnce(Result<T>) + Send>;

/// Hands the writer a reply callback and awaits what it is called with.
async fn answered<T: Send + 'static>(submit: impl FnOnce(Reply<T>) -> Result<()>) -> Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    submit(Box::new(move |r| {
        let _ = tx.send(r);
    }))?;
    rx.await
        .map_err(|_| StoreError::Task("the database writer has stopped".into()))?
}

/// The wall clock for ledger entries' `committed_at` (informational: nothing decides on it).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The WAL file SQLite keeps beside the database.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

impl Store {
    /// Opens (creating if needed) the database at `path`, in WAL mode, migrated to latest,
    /// with the ledger on.
    pub fn open(path: &Path) -> Result<Store> {
        Self::open_with(path, true)
    }

    /// As `open`; `ledger` false leaves the ledger out of every write (measuring only:
    /// changes made meanwhile are missing from the chain and `ledger verify` says so).
    pub fn open_with(path: &Path, ledger: bool) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        }
        // A file opened again at a path this thread knew may be another database.
        instance_ids::forget_known_scheme();
        let mut writer = Connection::open(path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        configure(&writer)?;
        // Bulk work (bundle import, migrations) walks the big tables.
        writer.execute_batch("PRAGMA cache_size = -32768;")?;
        migrations::migrate(&mut writer)?;
        if ledger {
            ledger::install(&writer)?;
            let tx = writer.transaction_with_behavior(TransactionBehavior::Immediate)?;
            ledger::ensure_genesis(&tx, unix_now())?;
            tx.commit()?;
        }
        let manager = SqliteConnectionManager::file(path).with_init(|c| {
            configure(c)?;
            c.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -4096;")
        });
        let group_conn = Connection::open(path)?;
        configure(&group_conn)?;
        // Interior B-tree pages of the big tables stay cached across batches. Reads that
        // miss come through the memory map, so a larger cache buys little, while SQLite
        // walks the cache's hash table at the end of many commits (`pcache1Truncate`):
        // 8 MiB keeps that walk short.
        group_conn.execute_batch("PRAGMA cache_size = -8192;")?;
        let seal: Option<batch::Seal> = if ledger {
            ledger::install(&group_conn)?;
            // The seal writes only the ledger's tables: the kept evaluations stay.
            Some(|c| evaluation_cache::unaffected_by(c, |c| ledger::seal(c, unix_now())))
        } else {
            None
        };
        let checkpoint_conn = Connection::open(path)?;
        configure(&checkpoint_conn)?;
        let readers = r2d2::Pool::builder()
            .max_size(READERS)
            .min_idle(Some(1))
            .build(manager)?;
        Ok(Store {
            readers,
            writer: Arc::new(Mutex::new(writer)),
            group: batch::Batcher::pipelined_writer(group_conn, wal_path(path), seal)?,
            _checkpointer: Arc::new(checkpoint::Checkpointer::start(checkpoint_conn)?),
            read_slots: Arc::new(tokio::sync::Semaphore::new(READERS as usize)),
            path: path.to_owned(),
            ledger,
        })
    }

    /// Whether writes fold into the ledger.
    pub fn ledger_enabled(&self) -> bool {
        self.ledger
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn read_blocking<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.readers.get()?;
        f(&conn)
    }

    /// Runs `f` in one IMMEDIATE transaction; any error rolls everything back.
    /// Callers may fail with their own error type (anything a `StoreError` converts
    /// into); whatever the error, the transaction rolls back.
    pub fn write_blocking<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Transaction) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self
            .writer
            .lock()
            .map_err(|_| StoreError::Task("writer lock poisoned".into()))?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        // Whatever fails rolls back, and the writer's kept evaluations may have been read
        // from rows now undone.
        let forgetting = |e| {
            evaluation_cache::forget_all();
            e
        };
        let value = f(&tx).map_err(forgetting)?;
        if self.ledger {
            ledger::seal(&tx, unix_now()).map_err(|e| forgetting(e.into()))?;
        }
        tx.commit()
            .map_err(|e| forgetting(StoreError::from(e).into()))?;
        Ok(value)
    }

    /// `read_blocking` on a blocking thread, for async callers.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let _slot = self
            .read_slots
            .acquire()
            .await
            .map_err(|_| StoreError::Task("the database is closing".into()))?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Queues `f` for the group-commit writer and awaits the commit without holding a
    /// thread: `f` runs atomically (a savepoint of the batch's transaction) and the
    /// answer comes only once that transaction is durable.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        answered(|reply| self.group.submit(batch::Rollback::Job, f, reply)).await
    }

    /// As `write`, for a job whose every refusal comes before its first write (a usage
    /// report, a renewal, a registration): it runs without a savepoint of its own
    /// (`batch::Rollback::Batch`).
    pub async fn write_unguarded<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        answered(|reply| self.group.submit(batch::Rollback::Batch, f, reply)).await
    }

    /// Runs a short point read (a lookup by key on a hot path) on the writer's connection,
    /// in its next batch, where the page cache is warm. Long reads (pages, exports)
    /// belong on `read`, where they do not hold up writes.
    pub async fn lookup<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        answered(|reply| self.group.submit_read(f, reply)).await
    }

    /// Has `f` told the size of every group-commit batch (for metrics).
    pub fn observe_batches(&self, f: Box<dyn Fn(usize) + Send + Sync>) {
        self.group.observe_batches(f);
    }

    /// SQLite's page cache and write counters of the group-commit writer (for metrics).
    pub fn sqlite_stats(&self) -> stats::StatsSnapshot {
        self.group.stats()
    }

    /// Cheap liveness probe of the database, for `/readyz`.
    pub fn ping(&self) -> Result<()> {
        self.read_blocking(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
    }

    /// A consistent copy of the live database, safe while the server runs.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        let dest = dest
            .to_str()
            .ok_or_else(|| StoreError::Io("backup path is not valid UTF-8".into()))?
            .to_string();
        // Readers are query_only, and VACUUM INTO needs a connection of its own.
        let conn = Connection::open(&self.path)?;
        configure(&conn)?;
        conn.execute("VACUUM INTO ?1", [dest])?;
        Ok(())
    }
}

/// True when a SQLite error is a UNIQUE constraint failure.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}
