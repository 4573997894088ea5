//! Instance ids: an INTEGER key inside, an opaque text id outside (migration 0019).
//!
//! A new instance's id is `inst_` + this server's prefix (6 lowercase base32 characters,
//! random, made once by the migration, the first a letter after `f`) + its key as 10
//! decimal digits. Decimal so SQLite itself writes (`printf`) and reads (`CAST`) it: every
//! SELECT, export and join shows the same id without a Rust step; fixed width so text order
//! is key order (the account-wide list merges these with satellite-reported ids by text).
//! Rows that predate 0019 keep their old id in `legacy_id` and are found by it.
//! Everything above the store sees only the text id.

use super::Result;
use rusqlite::{Connection, OptionalExtension};

/// Digits of the key in an id (text order is key order up to 10^10 keys).
pub const WIDTH: usize = 10;

/// The SQL of an instance row's external id, for a row of `instances` read through
/// `p` (`""`, `"i."`, `"NEW."`, ...).
pub fn external_sql(p: &str) -> String {
    format!(
        "coalesce({p}legacy_id, 'inst_' || (SELECT prefix FROM instance_id_prefix) \
         || printf('%010d', {p}id))"
    )
}

/// The SQL of the external id of the instance whose key is `key` (a column of a table
/// referencing instances), reading its row only for a legacy id.
pub fn external_of_key_sql(key: &str) -> String {
    format!(
        "coalesce((SELECT x.legacy_id FROM instances x WHERE x.id = {key}), 'inst_' \
         || (SELECT prefix FROM instance_id_prefix) || printf('%010d', {key}))"
    )
}

/// The SQL of the key of the instance whose external id is the text `ext` (a stored id,
/// e.g. an export key's): ours are read, others looked up as legacy ids.
pub fn key_of_sql(ext: &str) -> String {
    format!(
        "CASE WHEN substr({ext}, 1, 11) = 'inst_' || (SELECT prefix FROM instance_id_prefix)
              THEN CAST(substr({ext}, 12) AS INTEGER)
              ELSE (SELECT x.id FROM instances x WHERE x.legacy_id = {ext}) END"
    )
}

/// This server's id scheme: its prefix, and the first key that is ours (below it, rows
/// migrated with their legacy id, reachable by that id only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheme {
    pub prefix: String,
    pub first_own: i64,
}

impl Scheme {
    pub fn encode(&self, key: i64) -> String {
        format!("inst_{}{key:0width$}", self.prefix, width = WIDTH)
    }

    /// The key an id of ours names; None for anything else (another format, another
    /// server's prefix, a non-canonical number, a migrated row's key).
    pub fn parse(&self, ext: &str) -> Option<i64> {
        let digits = ext
            .strip_prefix("inst_")?
            .strip_prefix(self.prefix.as_str())?;
        if digits.len() < WIDTH || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Wider than WIDTH only once keys outgrow it, and then without a leading zero.
        if digits.len() > WIDTH && digits.starts_with('0') {
            return None;
        }
        let key: i64 = digits.parse().ok()?;
        (key >= self.first_own).then_some(key)
    }
}

pub fn scheme(conn: &Connection) -> Result<Scheme> {
    let file = conn.path().filter(|p| !p.is_empty());
    let known = file.and_then(|file| {
        KNOWN_SCHEME.with_borrow(|k| {
            k.as_ref()
                .filter(|(path, _)| path == file)
                .map(|(_, s)| s.clone())
        })
    });
    if let Some(s) = known {
        return Ok(s);
    }
    let s = conn
        .prepare_cached("SELECT prefix, first_own FROM instance_id_prefix")?
        .query_row([], |r| {
            Ok(Scheme {
                prefix: r.get(0)?,
                first_own: r.get(1)?,
            })
        })?;
    if let Some(file) = file {
        KNOWN_SCHEME.set(Some((file.to_string(), s.clone())));
    }
    Ok(s)
}

/// Drops this thread's kept scheme (a store opening: its file may have been replaced, by a
/// restore, since this thread read the one at that path). Threads a store starts begin
/// with none.
pub(crate) fn forget_known_scheme() {
    KNOWN_SCHEME.set(None);
}

thread_local! {
    /// The scheme of the database file this thread used last. A file's scheme is made once,
    /// by migration 0019, and never changes: every usage report parses its instance's id,
    /// and the group-commit writer thread reads it from here instead of the database.
    static KNOWN_SCHEME: std::cell::RefCell<Option<(String, Scheme)>> =
        const { std::cell::RefCell::new(None) };
}

/// The key of the instance with external id `ext`: ours by reading it (no index), others
/// by their legacy id. None: no such instance (ours are not checked to exist).
pub fn key(conn: &Connection, ext: &str) -> Result<Option<i64>> {
    if let Some(k) = scheme(conn)?.parse(ext) {
        return Ok(Some(k));
    }
    Ok(conn
        .prepare_cached("SELECT id FROM instances WHERE legacy_id = ?1")?
        .query_row([ext], |r| r.get(0))
        .optional()?)
}

/// A keyset bound for paging by id: the key `k` such that, among this server's instances,
/// ids after (`after`) or before `ext` in text order are exactly the keys `> k` (or `< k`).
/// `ext` may be any text (a satellite's instance id in a merged list).
pub fn bound(conn: &Connection, ext: &str, after: bool) -> Result<i64> {
    let s = scheme(conn)?;
    let own_start = format!("inst_{}", s.prefix);
    if ext >= own_start.as_str() {
        return Ok(own_bound(&s, ext, after));
    }
    // Before our own ids: among the legacy rows, whose keys follow their text order, the
    // nearest legacy id on the side walked from.
    let sql = if after {
        "SELECT id FROM instances WHERE legacy_id IS NOT NULL AND legacy_id <= ?1
         ORDER BY legacy_id DESC LIMIT 1"
    } else {
        "SELECT id FROM instances WHERE legacy_id IS NOT NULL AND legacy_id >= ?1
         ORDER BY legacy_id ASC LIMIT 1"
    };
    let found: Option<i64> = conn
        .prepare_cached(sql)?
        .query_row([ext], |r| r.get(0))
        .optional()?;
    Ok(found.unwrap_or(if after { 0 } else { s.first_own }))
}

/// `bound` for a text at or past `inst_<prefix>`: only our own keys are on its far side.
fn own_bound(s: &Scheme, ext: &str, after: bool) -> i64 {
    let digits = ext.get(5 + s.prefix.len()..).unwrap_or("");
    // Every legacy row sorts before our ids: after ours means none of them, before ours
    // means all of them.
    let at_least_own = |k: i64| k.max(if after { s.first_own - 1 } else { s.first_own });
    if !ext.starts_with("inst_") || !ext[5..].starts_with(s.prefix.as_str()) {
        return i64::MAX; // past every id of ours
    }
    let lead: String = digits.chars().take(WIDTH).collect();
    if !lead.bytes().all(|b| b.is_ascii_digit()) {
        return i64::MAX; // a letter sorts after every digit (other characters: a rare text)
    }
    let n: i64 = format!("{lead:0<w$}", w = WIDTH)
        .parse()
        .unwrap_or(i64::MAX);
    match (digits.len().cmp(&WIDTH), after) {
        // Shorter: sorts just before key n's id.
        (std::cmp::Ordering::Less, true) => at_least_own(n - 1),
        (std::cmp::Ordering::Less, false) => at_least_own(n),
        // Equal: key n's id itself.
        (std::cmp::Ordering::Equal, _) => at_least_own(n),
        // Longer: just after key n's id.
        (std::cmp::Ordering::Greater, true) => at_least_own(n),
        (std::cmp::Ordering::Greater, false) => at_least_own(n.saturating_add(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scheme() -> Scheme {
        Scheme {
            prefix: "kq3xzp".into(),
            first_own: 5,
        }
    }

    #[test]
    fn encodes_and_parses() {
        let s = scheme();
        assert_eq!(s.encode(42), "inst_kq3xzp0000000042");
        assert_eq!(s.parse("inst_kq3xzp0000000042"), Some(42));
        // A migrated row's key, another server's prefix, the old format, junk.
        assert_eq!(s.parse("inst_kq3xzp0000000004"), None);
        assert_eq!(s.parse("inst_abcdef0000000042"), None);
        assert_eq!(s.parse("inst_0692f1a2b9c7d8e9f0a1b2c3d4e5f6"), None);
        assert_eq!(s.parse("inst_kq3xzp42"), None);
        assert_eq!(s.parse("inst_kq3xzp00000000-1"), None);
        assert_eq!(s.parse("inst_kq3xzp+000000042"), None);
        assert_eq!(s.parse("inst_kq3xzp099999999999999999999"), None);
        assert_eq!(s.parse(""), None);
    }

    /// Keyset bounds: for any cursor text, our instances whose id sorts after (before) it
    /// are exactly those with a key above (below) the bound, legacy rows included.
    #[test]
    fn bounds_split_our_rows_as_their_ids_sort() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "UPDATE instance_id_prefix SET prefix = 'kq3xzp', first_own = 3;
             INSERT INTO accounts (id, name, created_at) VALUES (1, 'A', 0);
             INSERT INTO virtual_accounts (id, account_id, name, created_at) VALUES (1, 1, 'V', 0);",
        )
        .unwrap();
        for (key, legacy) in [
            (1, Some("inst_0692aa")),
            (2, Some("inst_0692cc")),
            (3, None),
            (4, None),
            (12, None),
        ] {
            conn.execute(
                "INSERT INTO instances (id, legacy_id, va_id, pid, sn, public_key, product_name,
                   product_version, registered_at, last_contact, cert_expires_at, status)
                 VALUES (?1, ?2, 1, 'P', ?1, x'00', 'p', '1', 0, 0, 0, 4)",
                rusqlite::params![key, legacy],
            )
            .unwrap();
        }
        let s = super::scheme(&conn).unwrap();
        let rows: Vec<(i64, String)> = conn
            .prepare(&format!("SELECT id, {} FROM instances", external_sql("")))
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let cursors = [
            "",
            "inst_",
            "inst_0692aa",
            "inst_0692bb",
            "inst_0692cc",
            "inst_0692dd",
            "inst_a",
            "inst_kq3xzp",
            "inst_kq3xzp00",
            &s.encode(3),
            &s.encode(4),
            "inst_kq3xzp0000000004x",
            &s.encode(7),
            &s.encode(12),
            "inst_kq3xzpzz",
            "inst_kq3xzq",
            "inst_z",
            "sat-instance-9",
        ];
        for c in cursors {
            let after = bound(&conn, c, true).unwrap();
            let before = bound(&conn, c, false).unwrap();
            for (k, ext) in &rows {
                assert_eq!(
                    ext.as_str() > c,
                    *k > after,
                    "{ext} after {c} (bound {after})"
                );
                assert_eq!(
                    ext.as_str() < c,
                    *k < before,
                    "{ext} before {c} (bound {before})"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn every_key_round_trips(k in 5i64..i64::MAX) {
            let s = scheme();
            prop_assert_eq!(s.parse(&s.encode(k)), Some(k));
        }

        #[test]
        fn text_order_is_key_order(a in 5i64..10_000_000_000, b in 5i64..10_000_000_000) {
            let s = scheme();
            prop_assert_eq!(s.encode(a).cmp(&s.encode(b)), a.cmp(&b));
        }

        #[test]
        fn anything_parsed_encodes_back(t in "inst_kq3xzp[0-9]{0,12}") {
            let s = scheme();
            if let Some(k) = s.parse(&t) {
                prop_assert_eq!(s.encode(k), t);
            }
        }
    }
}
