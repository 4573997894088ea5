//! Export keys: plain reads and writes of `export_keys` (and, on the upstream, of the
//! granted keys satellites report in `satellite_export_keys`), plus what a granted key
//! adds to its pool's demand. The rules live in `domain::export_key`.

use super::events::{self, NewEvent};
use super::instance_ids;
use super::page::{self, Page};
use super::Result;
use crate::crypto::secrets;
use crate::domain::compliance::Demand;
use crate::domain::export_key::{self, ExportKeyState};
use crate::domain::instance::Udi;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};

#[derive(Clone, Debug)]
pub struct ExportKey {
    pub id: String,
    pub account_id: i64,
    pub account: String,
    pub va_id: i64,
    pub virtual_account: String,
    pub instance_id: String,
    pub udi: Udi,
    pub tag: String,
    pub state: ExportKeyState,
    pub requested_at: i64,
    pub decided_at: Option<i64>,
    pub reason: Option<String>,
}

const SELECT: &str = "SELECT k.id, k.account_id, a.name, k.va_id, v.name, k.instance_id, k.pid,
        k.sn, k.uuid, k.tag, k.state, k.requested_at, k.decided_at, k.reason
    FROM export_keys k JOIN accounts a ON a.id = k.account_id
    JOIN virtual_accounts v ON v.id = k.va_id";

fn row(r: &Row<'_>) -> rusqlite::Result<ExportKey> {
    let state: String = r.get(10)?;
    Ok(ExportKey {
        id: r.get(0)?,
        account_id: r.get(1)?,
        account: r.get(2)?,
        va_id: r.get(3)?,
        virtual_account: r.get(4)?,
        instance_id: r.get(5)?,
        udi: Udi {
            pid: r.get(6)?,
            sn: r.get(7)?,
            uuid: r.get(8)?,
        },
        tag: r.get(9)?,
        // The column's CHECK admits only the enum's strings.
        state: state.parse().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                10,
                rusqlite::types::Type::Text,
                format!("unknown export key state {state}").into(),
            )
        })?,
        requested_at: r.get(11)?,
        decided_at: r.get(12)?,
        reason: r.get(13)?,
    })
}

/// The newest key of an instance for a tag.
pub fn latest(conn: &Connection, instance_id: &str, tag: &str) -> Result<Option<ExportKey>> {
    let sql = format!(
        "{SELECT} WHERE k.instance_id = ?1 AND k.tag = ?2 ORDER BY k.requested_at DESC, k.rowid DESC LIMIT 1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![instance_id, tag], row)
        .optional()?)
}

/// An instance's newest key per tag, by tag.
pub fn of_instance(conn: &Connection, instance_id: &str) -> Result<Vec<ExportKey>> {
    let sql = format!(
        "{SELECT} WHERE k.instance_id = ?1 ORDER BY k.tag, k.requested_at DESC, k.rowid DESC"
    );
    let all: Vec<ExportKey> = conn
        .prepare_cached(&sql)?
        .query_map([instance_id], row)?
        .collect::<rusqlite::Result<_>>()?;
    let mut seen = HashSet::new();
    Ok(all
        .into_iter()
        .filter(|k| seen.insert(k.tag.clone()))
        .collect())
}

/// The tags an instance holds a granted key for.
pub fn granted_tags(conn: &Connection, instance_id: &str) -> Result<HashSet<String>> {
    Ok(conn
        .prepare_cached("SELECT tag FROM export_keys WHERE instance_id = ?1 AND state = 'granted'")?
        .query_map([instance_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

pub fn find(conn: &Connection, account_id: i64, id: &str) -> Result<Option<ExportKey>> {
    let sql = format!("{SELECT} WHERE k.id = ?1 AND k.account_id = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![id, account_id], row)
        .optional()?)
}

/// An account's keys, oldest request first.
pub fn list(
    conn: &Connection,
    account_id: i64,
    state: Option<ExportKeyState>,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<ExportKey>> {
    let sql = format!(
        "{SELECT} WHERE k.account_id = ?1 AND (?2 IS NULL OR k.state = ?2)
           AND (?3 IS NULL OR (k.requested_at, k.rowid) >
                (SELECT requested_at, rowid FROM export_keys WHERE id = ?3))
         ORDER BY k.requested_at, k.rowid LIMIT ?4"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(
            params![account_id, state.map(|s| s.as_str()), after, limit + 1],
            row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page::from_rows(rows, limit, |k| k.id.clone()))
}

/// For the page: pending requests first (oldest first), then the newest others.
pub fn pending_first(conn: &Connection, account_id: i64, limit: u32) -> Result<Vec<ExportKey>> {
    let sql = format!(
        "{SELECT} WHERE k.account_id = ?1
         ORDER BY k.state <> 'pending', CASE WHEN k.state = 'pending' THEN k.rowid END,
                  k.rowid DESC
         LIMIT ?2"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(params![account_id, limit], row)?
        .collect::<rusqlite::Result<_>>()?)
}

/// Pending requests of every account, or of one (for alerts).
pub fn pending(conn: &Connection, account_id: Option<i64>) -> Result<Vec<ExportKey>> {
    let sql = format!(
        "{SELECT} WHERE k.state = 'pending' AND (?1 IS NULL OR k.account_id = ?1) ORDER BY k.rowid"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_map([account_id], row)?
        .collect::<rusqlite::Result<_>>()?)
}

/// A new key as the service decided it.
pub struct NewKey<'a> {
    pub account_id: i64,
    pub va_id: i64,
    pub instance_id: &'a str,
    pub udi: &'a Udi,
    pub tag: &'a str,
    pub state: ExportKeyState,
    pub reason: Option<&'a str>,
}

pub fn insert(tx: &Connection, now: i64, k: &NewKey<'_>) -> Result<String> {
    // Time first, then random, like instance ids (lists order by request time and rowid).
    let id = format!("ek_{:09x}{}", now.max(0), secrets::random_secret(6));
    let decided = (k.state != ExportKeyState::Pending).then_some(now);
    tx.prepare_cached(
        "INSERT INTO export_keys (id, account_id, va_id, instance_id, pid, sn, uuid, tag, state,
                                  requested_at, decided_at, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        id,
        k.account_id,
        k.va_id,
        k.instance_id,
        k.udi.pid,
        k.udi.sn,
        k.udi.uuid,
        k.tag,
        k.state.as_str(),
        now,
        decided,
        k.reason
    ])?;
    Ok(id)
}

/// Moves a key to `state`; `decided_at` records when it last changed.
pub fn set_state(
    tx: &Connection,
    id: &str,
    state: ExportKeyState,
    now: i64,
    reason: Option<&str>,
) -> Result<()> {
    tx.prepare_cached(
        "UPDATE export_keys SET state = ?2, decided_at = ?3, reason = coalesce(?4, reason) WHERE id = ?1",
    )?
    .execute(params![id, state.as_str(), now, reason])?;
    Ok(())
}

/// Records an event about a key, in the transaction that changed it.
pub fn record_event(
    tx: &Connection,
    now: i64,
    actor: &str,
    action: &str,
    key: &ExportKey,
    state: ExportKeyState,
    reason: Option<&str>,
) -> Result<()> {
    events::record(
        tx,
        now,
        NewEvent {
            actor,
            action,
            account: Some((key.account_id, &key.account)),
            target: &key.id,
            detail: json!({
                "instance_id": key.instance_id, "virtual_account": key.virtual_account,
                "tag": key.tag, "state": state.as_str(), "reason": reason,
            }),
        },
    )
}

/// An instance is going away (`why` is the instance event: removed, deregistered,
/// transferred): its granted keys are returned and its pending requests cancelled, in the
/// same transaction.
pub fn release_instance(tx: &Connection, instance_id: &str, now: i64, why: &str) -> Result<()> {
    let sql = format!("{SELECT} WHERE k.instance_id = ?1 AND k.state IN ('pending', 'granted')");
    let live: Vec<ExportKey> = tx
        .prepare_cached(&sql)?
        .query_map([instance_id], row)?
        .collect::<rusqlite::Result<_>>()?;
    let why = export_key::release_reason(why);
    for key in live {
        let Some(to) = export_key::released(key.state) else {
            continue;
        };
        set_state(tx, &key.id, to, now, Some(why))?;
        let action = format!("export_key.{}", to.as_str());
        record_event(tx, now, "system", &action, &key, to, Some(why))?;
    }
    Ok(())
}

/// Adds what granted keys (this server's and, on the upstream, those satellites report)
/// add to a VA's demand per tag; see `domain::export_key::key_demand`.
pub fn add_key_demand(
    conn: &Connection,
    va_id: i64,
    demand: &mut BTreeMap<String, Demand>,
) -> Result<()> {
    // Keys name their instance by its external id (their history outlives it). The count
    // is read from the usage column: the `instance_usage` view on the right of a LEFT
    // JOIN would be built whole first.
    let key = instance_ids::key_of_sql("k.instance_id");
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT k.tag,
                coalesce(json_extract(i.usage,
                  '$.\"' || (SELECT t.id FROM tags t WHERE t.tag = k.tag) || '\"'), 0),
                i.export_controlled
         FROM export_keys k JOIN instances i ON i.id = ({key}) AND i.va_id = k.va_id
         WHERE k.va_id = ?1 AND k.state = 'granted'
         UNION ALL
         SELECT s.tag, coalesce(u.count, 0), si.export_controlled
         FROM satellite_export_keys s
         JOIN satellite_instances si ON si.satellite_id = s.satellite_id AND si.id = s.instance_id
         LEFT JOIN satellite_usage u ON u.satellite_id = s.satellite_id
              AND u.instance_id = s.instance_id AND u.tag = s.tag
         WHERE s.va_id = ?1"
    ))?;
    let rows = stmt.query_map([va_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, bool>(2)?,
        ))
    })?;
    for r in rows {
        let (tag, count, export) = r?;
        let add = export_key::key_demand(count, export);
        let d = demand.entry(tag).or_default();
        d.total += add.total;
        d.export_ok += add.export_ok;
    }
    Ok(())
}

/// Satellite: every granted key of an account's instances (instance id, tag), for sync.
pub fn for_each_granted(
    conn: &Connection,
    account_id: i64,
    mut f: impl FnMut(String, String) -> Result<()>,
) -> Result<()> {
    let key = instance_ids::key_of_sql("k.instance_id");
    let mut stmt = conn.prepare(&format!(
        "SELECT k.instance_id, k.tag FROM export_keys k
         JOIN instances i ON i.id = ({key}) AND i.va_id = k.va_id
         WHERE k.account_id = ?1 AND k.state = 'granted' ORDER BY k.instance_id, k.tag"
    ))?;
    let mut rows = stmt.query([account_id])?;
    while let Some(r) = rows.next()? {
        f(r.get(0)?, r.get(1)?)?;
    }
    Ok(())
}

/// Upstream: one granted key a satellite reported, for an instance already in the
/// snapshot (its `satellite_instances` row is replaced, and these with it, each sync).
pub fn put_satellite_key(
    tx: &Connection,
    satellite_id: i64,
    instance_id: &str,
    va_id: i64,
    tag: &str,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO satellite_export_keys (satellite_id, instance_id, tag, va_id)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![satellite_id, instance_id, tag, va_id])?;
    Ok(())
}

/// The account a virtual account belongs to.
pub fn account_of_va(conn: &Connection, va_id: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT account_id FROM virtual_accounts WHERE id = ?1")?
        .query_row([va_id], |r| r.get(0))?)
}

/// For `satellite check`: live keys whose instance is gone (its removal should have
/// released them in the same transaction).
pub fn orphans(conn: &Connection) -> Result<Vec<String>> {
    let key = instance_ids::key_of_sql("k.instance_id");
    Ok(conn
        .prepare(&format!(
            "SELECT printf('export_keys: key %s (%s) of missing instance %s', k.id, k.state, k.instance_id)
             FROM export_keys k LEFT JOIN instances i ON i.id = ({key})
             WHERE k.state IN ('pending', 'granted') AND i.id IS NULL"
        ))?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}
