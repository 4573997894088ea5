//! Backups (CONTRACT section 1): one gzip'd tar holding a consistent copy of the database
//! and the `keys/` and `tls/` folders, so a restored server keeps its authority id and key
//! and every agent that pinned it keeps working.
//!
//! Layout: `backup.json` (format, time, schema version, every member's sha256), then
//! `satellite.db`, `keys/*`, `tls/*`. Restore checks every hash and the database's
//! integrity in a staging folder before it replaces anything, and refuses a data dir that
//! a running server holds (see `DataDirLock`).

use crate::store::{migrations, Store, StoreError};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "satellite-backup/1";
const MANIFEST: &str = "backup.json";
const DATABASE: &str = "satellite.db";
/// Folders of the data dir that travel with the database.
const FOLDERS: [&str; 2] = ["keys", "tls"];
/// A backup member larger than this is not one we wrote.
const MAX_MEMBER_BYTES: u64 = 64 << 30;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} is not a satellite backup this version can restore: {1}")]
    NotABackup(String, String),
    #[error("a running server uses {0}; stop it first")]
    InUse(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    created_at: i64,
    schema_version: usize,
    files: Vec<Member>,
}

#[derive(Serialize, Deserialize)]
struct Member {
    name: String,
    sha256: String,
    bytes: u64,
}

/// Held by a running server for as long as it serves a data dir, so `restore` can tell
/// a live data dir from a stopped one. The OS drops the lock when the process ends, even
/// by SIGKILL, so a crash never leaves a stale lock behind.
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, BackupError> {
        fs::create_dir_all(data_dir)
            .map_err(io_err(format!("cannot create {}", data_dir.display())))?;
        let path = data_dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("cannot open {}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => {
                Err(BackupError::InUse(data_dir.display().to_string()))
            }
            Err(fs::TryLockError::Error(e)) => {
                Err(io_err(format!("cannot lock {}", path.display()))(e))
            }
        }
    }
}

fn sha256_file(path: &Path) -> Result<(String, u64), BackupError> {
    let mut f = File::open(path).map_err(io_err(format!("cannot read {}", path.display())))?;
    let mut hasher = Sha256::new();
    let bytes =
        io::copy(&mut f, &mut hasher).map_err(io_err(format!("cannot read {}", path.display())))?;
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// The regular files of the data dir's travelling folders, as (name in the backup, path).
fn data_files(data_dir: &Path) -> Result<Vec<(String, PathBuf)>, BackupError> {
    let mut out = vec![];
    for folder in FOLDERS {
        let dir = data_dir.join(folder);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(io_err(format!("cannot list {}", dir.display())))?;
            let kind = entry
                .file_type()
                .map_err(io_err(format!("cannot stat {}", entry.path().display())))?;
            if kind.is_file() {
                let name = format!("{folder}/{}", entry.file_name().to_string_lossy());
                out.push((name, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a backup of a live server's data dir to `dest` (created 0600: it holds the
/// authority's private key). Safe while the server runs.
pub fn create(store: &Store, data_dir: &Path, dest: &Path, now: i64) -> Result<(), BackupError> {
    let staging = tempfile::Builder::new()
        .prefix(".backup-")
        .tempdir_in(
            dest.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
        .map_err(io_err(
            "cannot create a staging folder beside the backup file",
        ))?;
    let db_copy = staging.path().join(DATABASE);
    store.backup_to(&db_copy)?;
    let mut members = vec![(DATABASE.to_string(), db_copy)];
    members.extend(data_files(data_dir)?);
    let mut files = vec![];
    for (name, path) in &members {
        let (sha256, bytes) = sha256_file(path)?;
        files.push(Member {
            name: name.clone(),
            sha256,
            bytes,
        });
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        created_at: now,
        schema_version: migrations::LATEST,
        files,
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| io_err("cannot write the manifest")(io::Error::other(e)))?;

    let partial = staging.path().join("backup.tar.gz");
    let out = private_file(&partial)?;
    let mut tar = tar::Builder::new(GzEncoder::new(out, flate2::Compression::fast()));
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest_bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(now.max(0) as u64);
    header.set_cksum();
    tar.append_data(&mut header, MANIFEST, manifest_bytes.as_slice())
        .map_err(io_err("cannot write the backup"))?;
    for (name, path) in &members {
        let mut f = File::open(path).map_err(io_err(format!("cannot read {}", path.display())))?;
        tar.append_file(name, &mut f)
            .map_err(io_err("cannot write the backup"))?;
    }
    let gz = tar
        .into_inner()
        .map_err(io_err("cannot write the backup"))?;
    let file = gz.finish().map_err(io_err("cannot write the backup"))?;
    file.sync_all().map_err(io_err("cannot write the backup"))?;
    // Renamed into place only when whole, so a reader never sees half a backup.
    fs::rename(&partial, dest).map_err(io_err(format!("cannot write {}", dest.display())))?;
    Ok(())
}

fn private_file(path: &Path) -> Result<File, BackupError> {
    let mut options = File::options();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(io_err(format!("cannot create {}", path.display())))
}

/// Unpacks and checks a backup into `staging`: every member listed with a matching hash,
/// nothing else, no paths outside the folders a backup holds.
fn unpack(file: &Path, staging: &Path) -> Result<Manifest, BackupError> {
    let not_backup = |why: &str| BackupError::NotABackup(file.display().to_string(), why.into());
    let f = File::open(file).map_err(io_err(format!("cannot read {}", file.display())))?;
    let mut archive = tar::Archive::new(GzDecoder::new(f));
    let mut manifest: Option<Manifest> = None;
    let mut seen = vec![];
    let entries = archive.entries().map_err(|e| not_backup(&e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| not_backup(&e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            return Err(not_backup("it holds something other than plain files"));
        }
        let name = entry
            .path()
            .map_err(|e| not_backup(&e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if entry.size() > MAX_MEMBER_BYTES {
            return Err(not_backup("a member is too large"));
        }
        if name == MANIFEST {
            let mut text = vec![];
            entry
                .read_to_end(&mut text)
                .map_err(|e| not_backup(&e.to_string()))?;
            let m: Manifest =
                serde_json::from_slice(&text).map_err(|e| not_backup(&e.to_string()))?;
            if m.format != FORMAT {
                return Err(not_backup(&format!("format {}", m.format)));
            }
            manifest = Some(m);
            continue;
        }
        let Some(m) = &manifest else {
            return Err(not_backup("backup.json does not come first"));
        };
        let Some(listed) = m.files.iter().find(|f| f.name == name) else {
            return Err(not_backup(&format!("{name} is not listed")));
        };
        let allowed = name == DATABASE
            || FOLDERS.iter().any(|folder| {
                name.strip_prefix(folder)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .is_some_and(|file| !file.is_empty() && !file.contains('/') && file != "..")
            });
        if !allowed {
            return Err(not_backup(&format!(
                "{name} is not a member a backup holds"
            )));
        }
        let dest = staging.join(&name);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
        }
        let mut out = private_file(&dest)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| not_backup(&e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(io_err(format!("cannot write {}", dest.display())))?;
        }
        if hex::encode(hasher.finalize()) != listed.sha256 {
            return Err(not_backup(&format!("{name} does not match its hash")));
        }
        seen.push(name);
    }
    let manifest = manifest.ok_or_else(|| not_backup("no backup.json"))?;
    if let Some(missing) = manifest.files.iter().find(|f| !seen.contains(&f.name)) {
        return Err(not_backup(&format!("{} is missing", missing.name)));
    }
    if manifest.schema_version > migrations::LATEST {
        return Err(not_backup(&format!(
            "it was made by a newer version (schema {})",
            manifest.schema_version
        )));
    }
    Ok(manifest)
}

/// True for a bare SQLite file (what `backup` wrote before version 1 of this format).
fn is_bare_database(file: &Path) -> Result<bool, BackupError> {
    let mut head = [0u8; 16];
    let mut f = File::open(file).map_err(io_err(format!("cannot read {}", file.display())))?;
    let n = f
        .read(&mut head)
        .map_err(io_err(format!("cannot read {}", file.display())))?;
    Ok(n == 16 && &head == b"SQLite format 3\0")
}

/// Checks that the unpacked database is whole and is a satellite database.
fn check_database(path: &Path) -> Result<(), BackupError> {
    crate::store::integrity::check_satellite_database(path)
        .map_err(|why| BackupError::NotABackup(path.display().to_string(), why))
}

/// What a restore put in place.
pub struct Restored {
    pub created_at: i64,
    pub files: usize,
}

/// Restores `file` into `data_dir`: creates it, or replaces a stopped server's data.
/// Nothing is replaced until the whole backup has unpacked and checked out.
pub fn restore(file: &Path, data_dir: &Path) -> Result<Restored, BackupError> {
    let _lock = DataDirLock::acquire(data_dir)?;
    let staging = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(data_dir)
        .map_err(io_err(format!(
            "cannot create a staging folder in {}",
            data_dir.display()
        )))?;
    let staged_db = staging.path().join(DATABASE);
    let manifest = if is_bare_database(file)? {
        // A backup from before keys and certificates travelled with it: the database only.
        fs::copy(file, &staged_db).map_err(io_err(format!("cannot read {}", file.display())))?;
        Manifest {
            format: FORMAT.into(),
            created_at: 0,
            schema_version: 0,
            files: vec![],
        }
    } else {
        unpack(file, staging.path())?
    };
    check_database(&staged_db)?;
    let mut conn = rusqlite::Connection::open(&staged_db).map_err(StoreError::from)?;
    migrations::migrate(&mut conn)?;
    drop(conn);

    let db = data_dir.join(DATABASE);
    for suffix in ["-wal", "-shm"] {
        let mut stale = db.clone().into_os_string();
        stale.push(suffix);
        match fs::remove_file(PathBuf::from(stale)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("cannot remove the old write-ahead log")(e))
            }
            _ => {}
        }
    }
    fs::rename(&staged_db, &db).map_err(io_err(format!("cannot replace {}", db.display())))?;
    for folder in FOLDERS {
        let staged = staging.path().join(folder);
        if !staged.exists() {
            continue;
        }
        let live = data_dir.join(folder);
        if live.exists() {
            fs::remove_dir_all(&live)
                .map_err(io_err(format!("cannot replace {}", live.display())))?;
        }
        fs::rename(&staged, &live).map_err(io_err(format!("cannot replace {}", live.display())))?;
    }
    Ok(Restored {
        created_at: manifest.created_at,
        files: manifest.files.len(),
    })
}

/// Keeps the newest `keep` backups in `dir` (files named `satellite-*.tar.gz`), removing
/// the rest; answers how many went.
pub fn prune(dir: &Path, keep: usize) -> Result<usize, BackupError> {
    let mut backups: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_err(format!("cannot list {}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("satellite-") && n.ends_with(".tar.gz"))
        })
        .collect();
    // Names carry a sortable UTC time, so name order is age order.
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    for old in &backups[..excess] {
        fs::remove_file(old).map_err(io_err(format!("cannot remove {}", old.display())))?;
    }
    Ok(excess)
}

/// The file name of a scheduled backup taken at `now`.
pub fn scheduled_name(now: i64) -> String {
    let at = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
    format!("satellite-{}.tar.gz", at.format("%Y%m%dT%H%M%SZ"))
}

/// Takes a backup whenever `schedule` says so, keeping the newest `keep`; runs forever.
pub async fn run_scheduled(
    store: Store,
    clock: crate::clock::Clock,
    data_dir: PathBuf,
    dir: PathBuf,
    schedule: cron::Schedule,
    keep: usize,
) {
    loop {
        let now = clock.now();
        let Some(next) = crate::domain::schedule::next_runs(&schedule, now, 1)
            .first()
            .copied()
        else {
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let (store, data_dir, dir) = (store.clone(), data_dir.clone(), dir.clone());
        let at = clock.unix();
        let taken = tokio::task::spawn_blocking(move || {
            fs::create_dir_all(&dir).map_err(io_err(format!("cannot create {}", dir.display())))?;
            let dest = dir.join(scheduled_name(at));
            create(&store, &data_dir, &dest, at)?;
            let removed = prune(&dir, keep)?;
            Ok::<_, BackupError>((dest, removed))
        })
        .await;
        match taken {
            Ok(Ok((dest, removed))) => {
                tracing::info!(file = %dest.display(), removed, "scheduled backup taken")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "scheduled backup failed"),
            Err(e) => tracing::error!(error = %e, "scheduled backup task failed"),
        }
    }
}
