//! Reservations and the counts they hold: plain SQL and typed rows. Every change of what
//! a reservation holds moves `licenses.reserved` in the same transaction (`set_held`).

use super::page::{self, Page};
use super::Result;
use crate::domain::reservation::ReservationState;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct Reservation {
    pub id: String,
    pub account_id: i64,
    pub va_id: i64,
    pub virtual_account: String,
    pub request_code: String,
    pub pid: String,
    pub sn: String,
    pub key_hash: String,
    pub nonce: String,
    pub universal: bool,
    pub state: ReservationState,
    pub version: i64,
    pub authorization_code: String,
    pub code_hash: String,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub waiting_since: i64,
    pub ended_at: Option<i64>,
    pub reason: Option<String>,
}

/// One tag of a reservation: what its current code grants and what the pool holds back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub tag: String,
    pub count: i64,
    pub held: i64,
}

const COLUMNS: &str = "r.id, r.account_id, r.va_id, v.name, r.request_code, r.pid, r.sn,
    r.key_hash, r.nonce, r.universal, r.state, r.version, r.authorization_code, r.code_hash,
    r.created_at, r.confirmed_at, r.waiting_since, r.ended_at, r.reason";

const FROM: &str = "reservations r JOIN virtual_accounts v ON v.id = r.va_id";

pub const LIVE: &str = "('pending', 'confirmed', 'updating')";

fn row(r: &Row<'_>) -> rusqlite::Result<Reservation> {
    row_at(r, 0)
}

pub struct NewReservation<'a> {
    pub id: &'a str,
    pub account_id: i64,
    pub va_id: i64,
    pub request_code: &'a str,
    pub pid: &'a str,
    pub sn: &'a str,
    pub key_hash: &'a str,
    pub nonce: &'a str,
    pub universal: bool,
    pub authorization_code: &'a str,
    pub code_hash: &'a str,
    pub now: i64,
}

pub fn insert(tx: &Connection, n: &NewReservation<'_>) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO reservations (id, account_id, va_id, request_code, pid, sn, key_hash, nonce,
           universal, state, version, authorization_code, code_hash, created_at, waiting_since)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', 1, ?10, ?11, ?12, ?12)",
    )?
    .execute(params![
        n.id,
        n.account_id,
        n.va_id,
        n.request_code,
        n.pid,
        n.sn,
        n.key_hash,
        n.nonce,
        n.universal,
        n.authorization_code,
        n.code_hash,
        n.now
    ])?;
    Ok(())
}

pub fn find(conn: &Connection, account_id: i64, id: &str) -> Result<Option<Reservation>> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE r.id = ?1 AND r.account_id = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![id, account_id], row)
        .optional()?)
}

/// A live reservation with this request code or this UDI, anywhere on the server.
pub fn live_clash(conn: &Connection, request_code: &str, pid: &str, sn: &str) -> Result<bool> {
    let sql = format!(
        "SELECT 1 FROM reservations WHERE state IN {LIVE} AND (request_code = ?1 OR (pid = ?2 AND sn = ?3))
         LIMIT 1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![request_code, pid, sn], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Reservations of an account made for the key whose hash is `key_hash` (hex).
pub fn by_key_hash(conn: &Connection, account_id: i64, key_hash: &str) -> Result<Vec<Reservation>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE r.key_hash = ?1 AND r.account_id = ?2 ORDER BY r.id"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(params![key_hash, account_id], row)?
        .collect::<rusqlite::Result<_>>()?)
}

pub fn return_code_used(conn: &Connection, fingerprint: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM reservations WHERE return_fingerprint = ?1")?
        .query_row([fingerprint], |_| Ok(()))
        .optional()?
        .is_some())
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub state: Option<ReservationState>,
    /// A substring of the UDI (pid or sn) or of the request code.
    pub q: Option<String>,
    pub va_id: Option<i64>,
}

pub fn list(
    conn: &Connection,
    account_id: i64,
    filter: &Filter,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<Reservation>> {
    let pattern = filter
        .q
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            format!(
                "%{}%",
                s.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        });
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE r.account_id = ?1 AND (?2 IS NULL OR r.id > ?2)
           AND (?3 IS NULL OR r.state = ?3) AND (?4 IS NULL OR r.va_id = ?4)
           AND (?5 IS NULL OR r.pid LIKE ?5 ESCAPE '\\' OR r.sn LIKE ?5 ESCAPE '\\'
                OR (r.pid || ':' || r.sn) LIKE ?5 ESCAPE '\\' OR r.request_code LIKE ?5 ESCAPE '\\')
         ORDER BY r.id LIMIT ?6"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                account_id,
                after,
                filter.state.map(|s| s.as_str()),
                filter.va_id,
                pattern,
                limit + 1
            ],
            row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page::from_rows(rows, limit, |r| r.id.clone()))
}

pub fn licenses_of(conn: &Connection, id: &str) -> Result<Vec<Held>> {
    Ok(conn
        .prepare_cached(
            "SELECT tag, count, held FROM reservation_licenses WHERE reservation_id = ?1 ORDER BY tag",
        )?
        .query_map([id], |r| {
            Ok(Held {
                tag: r.get(0)?,
                count: r.get(1)?,
                held: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// Moves a license's reserved count (the counter every view of `available` reads).
pub fn add_reserved(tx: &Connection, va_id: i64, tag: &str, delta: i64) -> Result<()> {
    if delta != 0 {
        tx.prepare_cached(
            "UPDATE licenses SET reserved = reserved + ?3 WHERE va_id = ?1 AND tag = ?2",
        )?
        .execute(params![va_id, tag, delta])?;
    }
    Ok(())
}

/// Makes a reservation's rows `new` (tag -> (count, held)), moving `licenses.reserved` by
/// the differences in `held`. Tags left out are dropped.
pub fn set_held(
    tx: &Connection,
    id: &str,
    va_id: i64,
    new: &BTreeMap<String, (i64, i64)>,
) -> Result<()> {
    let old: BTreeMap<String, Held> = licenses_of(tx, id)?
        .into_iter()
        .map(|h| (h.tag.clone(), h))
        .collect();
    for (tag, h) in &old {
        if !new.contains_key(tag) {
            add_reserved(tx, va_id, tag, -h.held)?;
            tx.prepare_cached(
                "DELETE FROM reservation_licenses WHERE reservation_id = ?1 AND tag = ?2",
            )?
            .execute(params![id, tag])?;
        }
    }
    for (tag, (count, held)) in new {
        let before = old.get(tag).map_or(0, |h| h.held);
        add_reserved(tx, va_id, tag, held - before)?;
        tx.prepare_cached(
            "INSERT INTO reservation_licenses (reservation_id, tag, count, held) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (reservation_id, tag) DO UPDATE SET count = ?3, held = ?4",
        )?
        .execute(params![id, tag, count, held])?;
    }
    Ok(())
}

/// Releases everything a reservation holds (its rows stay, as history, with held 0).
pub fn release(tx: &Connection, id: &str, va_id: i64) -> Result<()> {
    for h in licenses_of(tx, id)? {
        add_reserved(tx, va_id, &h.tag, -h.held)?;
    }
    tx.prepare_cached("UPDATE reservation_licenses SET held = 0 WHERE reservation_id = ?1")?
        .execute([id])?;
    Ok(())
}

/// A new state; `ended` for a state that is history, `confirmed` when it is confirmed.
pub struct StateChange<'a> {
    pub state: ReservationState,
    pub now: i64,
    pub reason: Option<&'a str>,
    pub return_fingerprint: Option<&'a str>,
}

pub fn set_state(tx: &Connection, id: &str, c: &StateChange<'_>) -> Result<()> {
    use ReservationState as S;
    tx.prepare_cached(
        "UPDATE reservations SET state = ?2,
           confirmed_at = CASE WHEN ?2 = 'confirmed' THEN ?3 ELSE confirmed_at END,
           ended_at = CASE WHEN ?4 THEN ?3 ELSE ended_at END,
           reason = coalesce(?5, reason),
           return_fingerprint = coalesce(?6, return_fingerprint)
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        c.state.as_str(),
        c.now,
        matches!(c.state, S::Returned | S::Cancelled | S::Removed),
        c.reason,
        c.return_fingerprint
    ])?;
    Ok(())
}

/// A new authorization code after an update: the version goes up and it waits again.
pub fn set_code(
    tx: &Connection,
    id: &str,
    version: i64,
    authorization_code: &str,
    code_hash: &str,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "UPDATE reservations SET state = 'updating', version = ?2, authorization_code = ?3,
           code_hash = ?4, waiting_since = ?5 WHERE id = ?1",
    )?
    .execute(params![id, version, authorization_code, code_hash, now])?;
    Ok(())
}

/// What a reporting instance's UDI holds: `None` without a live reservation, else
/// whether it is universal and the tags reserved.
pub fn held_by_instance(
    conn: &Connection,
    instance_key: i64,
) -> Result<Option<(bool, Vec<String>)>> {
    let sql = format!(
        "SELECT r.id, r.universal FROM reservations r JOIN instances i ON i.pid = r.pid AND i.sn = r.sn
         WHERE i.id = ?1 AND r.state IN {LIVE}"
    );
    let found: Option<(String, bool)> = conn
        .prepare_cached(&sql)?
        .query_row([instance_key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((id, universal)) = found else {
        return Ok(None);
    };
    let tags = licenses_of(conn, &id)?
        .into_iter()
        .filter(|h| h.count > 0)
        .map(|h| h.tag)
        .collect();
    Ok(Some((universal, tags)))
}

/// The live reservation a UDI holds, if any (the instance page shows it).
pub fn live_for_udi(conn: &Connection, pid: &str, sn: &str) -> Result<Option<Reservation>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE r.pid = ?1 AND r.sn = ?2 AND r.state IN {LIVE}"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![pid, sn], row)
        .optional()?)
}

/// Reservations waiting (pending or updating) since before `before`, for the alert.
pub fn waiting_since_before(
    conn: &Connection,
    account_filter: Option<i64>,
    before: i64,
) -> Result<Vec<(String, Reservation)>> {
    let sql = format!(
        "SELECT a.name, {COLUMNS} FROM {FROM} JOIN accounts a ON a.id = r.account_id
         WHERE r.state IN ('pending', 'updating') AND r.waiting_since <= ?1
           AND (?2 IS NULL OR r.account_id = ?2) ORDER BY r.waiting_since LIMIT 1000"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(params![before, account_filter], |r| {
            let account: String = r.get(0)?;
            // Shift the row by one column: the account name comes first.
            let res = row_at(r, 1)?;
            Ok((account, res))
        })?
        .collect::<rusqlite::Result<_>>()?)
}

fn row_at(r: &Row<'_>, o: usize) -> rusqlite::Result<Reservation> {
    let state: String = r.get(o + 10)?;
    Ok(Reservation {
        id: r.get(o)?,
        account_id: r.get(o + 1)?,
        va_id: r.get(o + 2)?,
        virtual_account: r.get(o + 3)?,
        request_code: r.get(o + 4)?,
        pid: r.get(o + 5)?,
        sn: r.get(o + 6)?,
        key_hash: r.get(o + 7)?,
        nonce: r.get(o + 8)?,
        universal: r.get(o + 9)?,
        state: state.parse().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                o + 10,
                rusqlite::types::Type::Text,
                format!("unknown reservation state {state}").into(),
            )
        })?,
        version: r.get(o + 11)?,
        authorization_code: r.get(o + 12)?,
        code_hash: r.get(o + 13)?,
        created_at: r.get(o + 14)?,
        confirmed_at: r.get(o + 15)?,
        waiting_since: r.get(o + 16)?,
        ended_at: r.get(o + 17)?,
        reason: r.get(o + 18)?,
    })
}

/// Everything that holds a license's count back: local live reservations and what sync
/// reported from elsewhere. `?1` is the VA id, `?2` the tag.
const HELD_SUM: &str = "coalesce((SELECT sum(h.held) FROM reservation_licenses h
           JOIN reservations r ON r.id = h.reservation_id
         WHERE r.va_id = ?1 AND h.tag = ?2 AND r.state IN ('pending', 'confirmed', 'updating')), 0)
      + coalesce((SELECT sum(s.held) FROM satellite_reservations s WHERE s.va_id = ?1 AND s.tag = ?2), 0)
      + coalesce((SELECT sum(u.held) FROM upstream_reservations u WHERE u.va_id = ?1 AND u.tag = ?2), 0)";

/// Sets a license's reserved count from its sources. Used where sync replaces whole
/// snapshots: a license the catalog removed and brought back starts again from its
/// sources rather than from a stale delta.
fn refresh_reserved(tx: &Connection, va_id: i64, tag: &str) -> Result<()> {
    let sql = format!("UPDATE licenses SET reserved = {HELD_SUM} WHERE va_id = ?1 AND tag = ?2");
    tx.prepare_cached(&sql)?.execute(params![va_id, tag])?;
    Ok(())
}

/// Upstream side: replaces what one satellite's reservations hold, writing only the
/// holds that changed (every sync request repeats them; the ledger records real changes).
pub fn replace_satellite_held(
    tx: &Connection,
    satellite_id: i64,
    new: &BTreeMap<(i64, String), i64>,
) -> Result<()> {
    let old: BTreeMap<(i64, String), i64> = tx
        .prepare_cached(
            "SELECT va_id, tag, held FROM satellite_reservations WHERE satellite_id = ?1",
        )?
        .query_map([satellite_id], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (va_id, tag) in old.keys().filter(|k| !new.contains_key(*k)) {
        tx.prepare_cached(
            "DELETE FROM satellite_reservations WHERE satellite_id = ?1 AND va_id = ?2 AND tag = ?3",
        )?
        .execute(params![satellite_id, va_id, tag])?;
    }
    for ((va_id, tag), held) in new {
        if old.get(&(*va_id, tag.clone())) == Some(held) {
            continue;
        }
        tx.prepare_cached(
            "INSERT INTO satellite_reservations (satellite_id, va_id, tag, held) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (satellite_id, va_id, tag) DO UPDATE SET held = excluded.held",
        )?
        .execute(params![satellite_id, va_id, tag, held])?;
    }
    // Every pool either side names, changed or not: a license created here since the
    // last sync starts from its sources (an unchanged count is not captured again).
    for (va_id, tag) in old.keys().chain(new.keys()) {
        refresh_reserved(tx, *va_id, tag)?;
    }
    Ok(())
}

/// Satellite side: replaces what reservations made elsewhere hold in an account.
pub fn replace_upstream_held(
    tx: &Connection,
    account_id: i64,
    new: &BTreeMap<(i64, String), i64>,
) -> Result<()> {
    let old: Vec<(i64, String)> = tx
        .prepare_cached(
            "SELECT u.va_id, u.tag FROM upstream_reservations u JOIN virtual_accounts v ON v.id = u.va_id
             WHERE v.account_id = ?1",
        )?
        .query_map([account_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    tx.prepare_cached(
        "DELETE FROM upstream_reservations WHERE va_id IN (SELECT id FROM virtual_accounts WHERE account_id = ?1)",
    )?
    .execute([account_id])?;
    for ((va_id, tag), held) in new {
        tx.prepare_cached(
            "INSERT INTO upstream_reservations (va_id, tag, held) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![va_id, tag, held])?;
    }
    for (va_id, tag) in old.iter().chain(new.keys()) {
        refresh_reserved(tx, *va_id, tag)?;
    }
    Ok(())
}

/// Upstream side: what reservations not made on satellite `satellite_id` hold in an
/// account (the upstream's own and other satellites'), per VA name and tag, for its sync
/// response.
pub fn held_elsewhere(
    conn: &Connection,
    account_id: i64,
    satellite_id: i64,
) -> Result<Vec<(String, String, i64)>> {
    let sql = format!(
        "SELECT v.name, x.tag, sum(x.held) FROM (
           SELECT r.va_id AS va_id, h.tag AS tag, h.held AS held FROM reservation_licenses h
             JOIN reservations r ON r.id = h.reservation_id
           WHERE r.account_id = ?1 AND r.state IN {LIVE}
           UNION ALL
           SELECT s.va_id, s.tag, s.held FROM satellite_reservations s
             JOIN virtual_accounts w ON w.id = s.va_id
           WHERE w.account_id = ?1 AND s.satellite_id <> ?2) x
         JOIN virtual_accounts v ON v.id = x.va_id
         GROUP BY v.name, x.tag HAVING sum(x.held) > 0 ORDER BY v.name, x.tag"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(params![account_id, satellite_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// The `satellite check` recount of `licenses.reserved`.
pub const RECOUNT_SQL: &str = "SELECT printf('va %d tag %s: reserved %d, recount %d', va_id, tag, reserved, rc) FROM (
   SELECT l.va_id AS va_id, l.tag AS tag, l.reserved AS reserved,
     coalesce((SELECT sum(h.held) FROM reservation_licenses h JOIN reservations r ON r.id = h.reservation_id
               WHERE r.va_id = l.va_id AND h.tag = l.tag AND r.state IN ('pending', 'confirmed', 'updating')), 0)
   + coalesce((SELECT sum(s.held) FROM satellite_reservations s WHERE s.va_id = l.va_id AND s.tag = l.tag), 0)
   + coalesce((SELECT sum(u.held) FROM upstream_reservations u WHERE u.va_id = l.va_id AND u.tag = l.tag), 0) AS rc
   FROM licenses l)
 WHERE reserved <> rc";

/// The live reservations of an account with what each holds (satellite side, for sync).
pub fn live_in_account(
    conn: &Connection,
    account_id: i64,
) -> Result<Vec<(Reservation, Vec<Held>)>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE r.account_id = ?1 AND r.state IN {LIVE} ORDER BY r.id"
    );
    let rows: Vec<Reservation> = conn
        .prepare_cached(&sql)?
        .query_map([account_id], row)?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|r| {
            let held = licenses_of(conn, &r.id)?;
            Ok((r, held))
        })
        .collect()
}
