//! Embedded, numbered schema migrations; `PRAGMA user_version` records the version.

use super::{Result, StoreError};
use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};

const MIGRATIONS_SLICE: &[M<'_>] = &[
    M::up(include_str!("migrations/0001_foundation.sql")),
    M::up(include_str!("migrations/0002_licensing.sql")),
    M::up(include_str!("migrations/0003_sync.sql")),
    M::up(include_str!("migrations/0004_auth_expiry_day.sql")),
    M::up(include_str!("migrations/0005_settings.sql")),
    M::up(include_str!("migrations/0006_api_clients.sql")),
    M::up(include_str!("migrations/0007_usage_history.sql")),
    M::up(include_str!("migrations/0008_measured_precision.sql")),
    M::up(UDI_UNIQUE),
    M::up(include_str!("migrations/0010_reservations.sql")),
    M::up(include_str!("migrations/0011_export_keys.sql")),
    M::up(include_str!("migrations/0012_notifications.sql")),
    M::up(include_str!("migrations/0013_user_admin.sql")),
    M::up(include_str!("migrations/0014_license_rank.sql")),
    M::up(include_str!("migrations/0015_names_nocase.sql")),
    M::up(include_str!("migrations/0016_demand_elsewhere.sql")),
    M::up(include_str!("migrations/0017_ledger.sql")),
    M::up(include_str!("migrations/0018_admin_ux.sql")),
    M::up(COMPACT_INSTANCES),
    M::up(include_str!("migrations/0020_usage_fingerprint.sql")),
];

/// Makes a UDI unique across the server, merging duplicates (see the file).
pub const UDI_UNIQUE: &str = include_str!("migrations/0009_udi_unique.sql");

/// Integer instance keys inside, opaque text ids outside (issue 17).
pub const COMPACT_INSTANCES: &str = include_str!("migrations/0019_compact_instances.sql");

/// The schema version a database has just before the migration `sql` is applied: tests
/// build "the previous version" by name, whatever other migrations come before it.
pub fn version_before(sql: &str) -> Option<usize> {
    MIGRATIONS_SLICE.iter().position(|m| *m == M::up(sql))
}

pub const MIGRATIONS: Migrations<'_> = Migrations::from_slice(MIGRATIONS_SLICE);

/// Number of migrations, i.e. the schema version of a fully migrated database.
pub const LATEST: usize = MIGRATIONS_SLICE.len();

pub fn migrate(conn: &mut Connection) -> Result<()> {
    MIGRATIONS
        .to_latest(conn)
        .map_err(|e| StoreError::Migration(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS.validate().unwrap();
    }

    /// From an empty database and from every earlier version to the latest.
    #[test]
    fn migrates_from_every_previous_version() {
        for start in 0..=LATEST {
            let mut conn = Connection::open_in_memory().unwrap();
            conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
            MIGRATIONS.to_version(&mut conn, start).unwrap();
            if start >= 1 {
                conn.execute(
                    "INSERT INTO accounts (name, description, created_at) VALUES ('Acme', '', 0)",
                    [],
                )
                .unwrap();
            }
            migrate(&mut conn).unwrap();
            let version: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(version as usize, LATEST, "from version {start}");
            let problems: i64 = conn
                .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(problems, 0);
            if start >= 1 {
                let n: i64 = conn
                    .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(n, 1, "data survives migration from version {start}");
            }
        }
    }
}
