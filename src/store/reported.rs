//! Upstream side: the instances satellites reported in their sync requests, read as
//! instance rows (read-only, marked with the satellite and when it synced) so the lists
//! show them next to the instances registered here (CONTRACT section 6).

use super::instances::{row, Instance};
use super::Result;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// Who reported a satellite instance, and when that satellite last synced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportedBy {
    /// The satellites row (internal: to find the instance's usage).
    pub satellite_id: i64,
    pub authority_id: String,
    pub synced_at: i64,
}

/// A satellite instance in the column order of `instances::COLUMNS` (what the satellite
/// does not send reads as empty), then the satellite, its authority and last sync. The
/// rest of the WHERE clause and the ORDER BY are appended by the caller, on the same
/// column names as the instances table.
pub const SELECT: &str = "SELECT id, va_id, pid, sn, NULL, x'', product_name, product_version,
       hostname, export_controlled, registered_at, last_contact, 0, 0, NULL, NULL, status,
       NULL, NULL, 0, satellite_id,
       (SELECT t.authority_id FROM satellites t WHERE t.id = satellite_id),
       (SELECT coalesce(t.last_sync, t.registered_at) FROM satellites t WHERE t.id = satellite_id)
     FROM satellite_instances WHERE va_id = ?1";

/// Reads the three columns `SELECT` adds after the instance's.
pub fn reported_by(r: &Row<'_>) -> rusqlite::Result<ReportedBy> {
    Ok(ReportedBy {
        satellite_id: r.get(20)?,
        authority_id: r.get(21)?,
        synced_at: r.get(22)?,
    })
}

fn full_row(r: &Row<'_>) -> rusqlite::Result<(Instance, ReportedBy)> {
    Ok((row(r)?, reported_by(r)?))
}

/// A satellite instance's usage as it reported it, by tag.
pub fn usage_of(
    conn: &Connection,
    satellite_id: i64,
    instance_id: &str,
) -> Result<Vec<(String, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT tag, count FROM satellite_usage WHERE satellite_id = ?1 AND instance_id = ?2 ORDER BY tag",
        )?
        .query_map(params![satellite_id, instance_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// How many satellite instances the VAs hold (with `status` only), read from the
/// `(va_id, status, id)` index alone.
pub fn count(conn: &Connection, va_ids: &[i64], status: Option<&str>) -> Result<i64> {
    let mut stmt = conn.prepare_cached(
        "SELECT count(*) FROM satellite_instances WHERE va_id = ?1 AND (?2 IS NULL OR status = ?2)",
    )?;
    let mut n = 0;
    for va in va_ids {
        n += stmt.query_row(params![va, status], |r| r.get::<_, i64>(0))?;
    }
    Ok(n)
}

/// A VA's satellite instances by id after `after`, optionally only those whose id, pid,
/// sn or hostname starts with `prefix` (the VA instance list's search); up to `limit`.
pub fn va_page(
    conn: &Connection,
    va_id: i64,
    prefix: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<(Instance, ReportedBy)>> {
    let pattern = prefix
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("{}%", super::instances::like_escaped(s)));
    let sql = format!(
        "{SELECT} AND (?2 IS NULL OR id > ?2)
           AND (?3 IS NULL OR id LIKE ?3 ESCAPE '\\' OR pid LIKE ?3 ESCAPE '\\'
                OR sn LIKE ?3 ESCAPE '\\' OR hostname LIKE ?3 ESCAPE '\\')
         ORDER BY id LIMIT ?4"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(params![va_id, after, pattern, limit], full_row)?
        .collect::<rusqlite::Result<_>>()?)
}

/// One satellite instance of a VA by id (the first satellite's, should two report it).
pub fn find(conn: &Connection, va_id: i64, id: &str) -> Result<Option<(Instance, ReportedBy)>> {
    let sql = format!("{SELECT} AND id = ?2 ORDER BY satellite_id LIMIT 1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![va_id, id], full_row)
        .optional()?)
}

/// A VA's satellite instances by id after `after` for the VA's instance page, filtered as
/// `instances::list_filtered` filters (a substring of the id, pid, sn, hostname, product
/// or status; one status only); up to `limit`.
pub fn va_filtered(
    conn: &Connection,
    va_id: i64,
    search: Option<&str>,
    status: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<(Instance, ReportedBy)>> {
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    let pattern = search.map(|s| format!("%{}%", super::instances::like_escaped(s)));
    let status_pattern =
        search.map(|s| format!("%{}%", super::instances::like_escaped(&s.replace(' ', "_"))));
    let sql = format!(
        "{SELECT} AND (?2 IS NULL OR id > ?2)
           AND (?3 IS NULL OR id LIKE ?3 ESCAPE '\\' OR pid LIKE ?3 ESCAPE '\\'
                OR sn LIKE ?3 ESCAPE '\\' OR hostname LIKE ?3 ESCAPE '\\'
                OR product_name LIKE ?3 ESCAPE '\\' OR status LIKE ?5 ESCAPE '\\')
           AND (?6 IS NULL OR status = ?6)
         ORDER BY id LIMIT ?4"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_map(
            params![va_id, after, pattern, limit, status_pattern, status],
            full_row,
        )?
        .collect::<rusqlite::Result<_>>()?)
}
