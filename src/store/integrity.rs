//! Checks on a database file that is not (yet) the live one: a restore's unpacked copy.

use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// Whether the file at `path` is a whole SQLite database holding satellite's tables.
/// The error says why not, in words for the operator.
pub fn check_satellite_database(path: &Path) -> Result<(), String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| e.to_string())?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if integrity != "ok" {
        return Err(format!("integrity check: {integrity}"));
    }
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('accounts', 'users')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if tables != 2 {
        return Err("it has no satellite tables".into());
    }
    Ok(())
}
