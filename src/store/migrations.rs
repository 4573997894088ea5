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
    M::up(USAGE_IN_INSTANCE),
    M::up(FIRST_REPORT_IN_ROW),
    M::up(include_str!(
        "migrations/0023_status_index_without_authorized.sql"
    )),
    M::up(include_str!(
        "migrations/0024_status_index_without_registered.sql"
    )),
    M::up(include_str!("migrations/0025_report_room.sql")),
    M::up(EXPIRY_MARKS_IN_ORDER),
    M::up(include_str!(
        "migrations/0027_no_certificate_expiry_index.sql"
    )),
    M::up(include_str!("migrations/0028_no_satellite_usage_index.sql")),
];

/// Expiry marks count 2^20 a second, in the order they were made (issue 17).
pub const EXPIRY_MARKS_IN_ORDER: &str = include_str!("migrations/0026_expiry_marks_in_order.sql");

/// Makes a UDI unique across the server, merging duplicates (see the file).
pub const UDI_UNIQUE: &str = include_str!("migrations/0009_udi_unique.sql");

/// Integer instance keys inside, opaque text ids outside (issue 17).
pub const COMPACT_INSTANCES: &str = include_str!("migrations/0019_compact_instances.sql");

/// An instance's usage kept in its row (issue 17).
pub const USAGE_IN_INSTANCE: &str = include_str!("migrations/0021_usage_in_instance.sql");

/// An instance's first history line and its expiry mark kept where a first report writes
/// them cheaply (issue 17).
pub const FIRST_REPORT_IN_ROW: &str = include_str!("migrations/0022_first_report_in_row.sql");

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
            let mut conn = at_version(start);
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

    /// An in-memory database at schema version `version`, foreign keys on as the server
    /// runs them.
    fn at_version(version: usize) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        MIGRATIONS.to_version(&mut conn, version).unwrap();
        conn
    }

    /// An in-memory database at the version just before the migration `sql`.
    fn just_before(sql: &str) -> Connection {
        at_version(version_before(sql).unwrap())
    }

    /// Two instances of one VA: S1 authorized until `expires`, its expiry index column
    /// `expiry_column` (named as at the version tested) holding `indexed`; S2 registered.
    fn authorized_and_registered(
        conn: &Connection,
        expiry_column: &str,
        expires: i64,
        indexed: i64,
    ) {
        conn.execute_batch(&format!(
            "INSERT INTO accounts (id, name, description, created_at) VALUES (1, 'Acme', '', 0);
             INSERT INTO virtual_accounts (id, account_id, name, created_at) VALUES (1, 1, 'Lab', 0);
             INSERT INTO instances (id, va_id, pid, sn, public_key, product_name, product_version,
                 registered_at, last_contact, cert_expires_at, status, auth_expires_at,
                 {expiry_column})
               VALUES (1, 1, 'P', 'S1', x'00', 'p', '1', 0, 0, 0, 1, {expires}, {indexed}),
                      (2, 1, 'P', 'S2', x'00', 'p', '1', 0, 0, 0, 4, NULL, NULL);"
        ))
        .unwrap();
    }

    /// An instance's oldest history line moves into its row and the later ones stay; the
    /// expiry index holds the expiry itself (times 2^20 since 0026), on the same day the
    /// day index held.
    #[test]
    fn the_first_history_line_and_the_expiry_mark_move_into_the_row() {
        let mut conn = just_before(FIRST_REPORT_IN_ROW);
        let expires = 20_000 * 86_400 + 777;
        authorized_and_registered(&conn, "auth_expiry_day", expires, 20_000);
        conn.execute_batch(
            "INSERT INTO instance_history (instance_id, seq, at, status, note)
               VALUES (1, 1, 10, 1, 'usage report'), (1, 2, 20, 3, 'over'),
                      (1, 3, 30, 0, 'lapsed');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        type Row = (Option<i64>, Option<i64>, Option<String>, Option<i64>);
        let rows: Vec<Row> = conn
            .prepare(
                "SELECT first_line_at, first_line_status, first_line_note, auth_expiry_mark
                 FROM instances ORDER BY id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    Some(10),
                    Some(1),
                    Some("usage report".into()),
                    // Whole seconds in 0022, 2^20 marks a second since 0026.
                    Some(expires * crate::domain::timers::MARKS_PER_SECOND)
                ),
                (None, None, None, None),
            ]
        );
        let left: Vec<(i64, String)> = conn
            .prepare("SELECT seq, note FROM instance_history ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(left, vec![(2, "over".into()), (3, "lapsed".into())]);
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id FROM instances
                 WHERE auth_expiry_mark IS NOT NULL AND auth_expiry_mark < 5",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("instances_auth_expiry_mark"), "{plan}");
    }

    /// Marks in whole seconds become the first mark of their second: the same expiry, the
    /// same day, still found through the index.
    #[test]
    fn expiry_marks_keep_their_second() {
        use crate::domain::timers;
        let mut conn = just_before(EXPIRY_MARKS_IN_ORDER);
        let expires = 20_000 * 86_400 + 777;
        authorized_and_registered(&conn, "auth_expiry_mark", expires, expires);
        migrate(&mut conn).unwrap();
        let marks: Vec<Option<i64>> = conn
            .prepare("SELECT auth_expiry_mark FROM instances ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            marks,
            vec![Some(timers::next_expiry_mark(expires, 0)), None]
        );
        let due: Vec<i64> = conn
            .prepare(
                "SELECT id FROM instances INDEXED BY instances_auth_expiry_mark
                 WHERE auth_expiry_mark IS NOT NULL AND auth_expiry_mark < ?1",
            )
            .unwrap()
            .query_map([timers::expiry_marks_due(expires)], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(due, vec![1]);
        assert!(!timers::expiry_mark_moves(marks[0], expires + 5));
    }

    /// Usage rows move into their instance's row: the view reads them back as they were
    /// (so the ledger's canonical rows do too), and an instance without usage holds NULL.
    #[test]
    fn usage_rows_move_into_the_instance_row() {
        let mut conn = just_before(USAGE_IN_INSTANCE);
        conn.execute_batch(
            "INSERT INTO accounts (id, name, description, created_at) VALUES (1, 'Acme', '', 0);
             INSERT INTO virtual_accounts (id, account_id, name, created_at) VALUES (1, 1, 'Lab', 0);
             INSERT INTO tags (id, tag) VALUES (3, 'ess'), (7, 'adv');
             INSERT INTO instances (id, va_id, pid, sn, public_key, product_name, product_version,
                 registered_at, last_contact, cert_expires_at, status)
               VALUES (1, 1, 'P', 'S1', x'00', 'p', '1', 0, 0, 0, 1),
                      (2, 1, 'P', 'S2', x'00', 'p', '1', 0, 0, 0, 4);
             INSERT INTO instance_usage (instance_id, tag_id, count) VALUES (1, 3, 5), (1, 7, 0);",
        )
        .unwrap();
        let rows = |c: &Connection| -> Vec<(i64, i64, i64)> {
            c.prepare("SELECT instance_id, tag_id, count FROM instance_usage ORDER BY 1, 2")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let old = rows(&conn);
        migrate(&mut conn).unwrap();
        assert_eq!(rows(&conn), old);
        assert_eq!(old, vec![(1, 3, 5), (1, 7, 0)]);
        let columns: Vec<Option<String>> = conn
            .prepare("SELECT usage FROM instances ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut first = super::super::usage_column::decode(columns[0].as_deref()).unwrap();
        first.sort_unstable();
        assert_eq!(first, vec![(3, 5), (7, 0)]);
        assert_eq!(columns[1], None);
    }
}
