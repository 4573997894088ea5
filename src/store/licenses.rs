//! License pools of a virtual account and their evaluation; the changes' rules (create,
//! transfer, edit, remove) are `service::licenses`.

use super::counters;
use super::{is_unique_violation, Result};
use crate::domain::compliance::{self, Demand, Evaluation, Pool};
use crate::domain::license::{LicenseSpec, LicenseType};
use crate::domain::DomainError;
use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct License {
    pub id: i64,
    pub va_id: i64,
    pub spec: LicenseSpec,
    pub reserved: i64,
}

impl License {
    pub fn pool(&self) -> Pool {
        Pool {
            tag: self.spec.tag.clone(),
            quantity: self.spec.quantity,
            reserved: self.reserved,
            start: self.spec.start,
            end: self.spec.end,
            export_controlled: self.spec.export_controlled,
            substitutes: self.spec.substitutes.clone(),
            rank: self.spec.rank,
        }
    }
}

const COLUMNS: &str =
    "id, va_id, tag, name, license_type, quantity, reserved, start_date, end_date,
    export_controlled, substitutes, rank";

/// A stored `YYYY-MM-DD` date (`FromStr` reads that form, without a format to interpret:
/// this runs for every license on every usage report).
fn date(s: &str) -> NaiveDate {
    s.parse().unwrap_or_default()
}

/// Stored substitutes: most licenses have none, written as `[]`, which needs no parser.
fn parse_substitutes(s: &str) -> Vec<String> {
    if s == "[]" {
        return Vec::new();
    }
    serde_json::from_str(s).unwrap_or_default()
}

fn row(r: &Row<'_>) -> rusqlite::Result<License> {
    let license_type: String = r.get(4)?;
    let start: String = r.get(7)?;
    let end: Option<String> = r.get(8)?;
    let substitutes: String = r.get(10)?;
    Ok(License {
        id: r.get(0)?,
        va_id: r.get(1)?,
        reserved: r.get(6)?,
        spec: LicenseSpec {
            tag: r.get(2)?,
            name: r.get(3)?,
            license_type: LicenseType::parse(&license_type).unwrap_or(LicenseType::Perpetual),
            quantity: r.get(5)?,
            start: date(&start),
            end: end.as_deref().map(date),
            export_controlled: r.get(9)?,
            substitutes: parse_substitutes(&substitutes),
            rank: r.get(11)?,
        },
    })
}

pub fn list(conn: &Connection, va_id: i64) -> Result<Vec<License>> {
    let sql = format!("SELECT {COLUMNS} FROM licenses WHERE va_id = ?1 ORDER BY tag");
    Ok(conn
        .prepare_cached(&sql)?
        .query_map([va_id], row)?
        .collect::<rusqlite::Result<_>>()?)
}

pub fn find(conn: &Connection, va_id: i64, tag: &str) -> Result<Option<License>> {
    let sql = format!("SELECT {COLUMNS} FROM licenses WHERE va_id = ?1 AND tag = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![va_id, tag], row)
        .optional()?)
}

/// Demand per tag in a virtual account (one row per tag: no instance is read).
pub fn demand(conn: &Connection, va_id: i64) -> Result<BTreeMap<String, Demand>> {
    // Moves a report's batch still holds count too.
    super::counters::held::flush(conn)?;
    let mut rows = conn
        .prepare_cached("SELECT tag, demand, demand_export FROM usage_totals WHERE va_id = ?1")?
        .query_map([va_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Demand {
                    total: r.get(1)?,
                    export_ok: r.get(2)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    super::export_keys::add_key_demand(conn, va_id, &mut rows)?;
    // One count per account: a satellite adds what the upstream says is used elsewhere.
    super::demand_elsewhere::add(conn, va_id, &mut rows)?;
    Ok(rows)
}

/// A virtual account's licenses and their evaluation on `today`.
pub fn evaluate(
    conn: &Connection,
    va_id: i64,
    today: NaiveDate,
) -> Result<(Vec<License>, Evaluation)> {
    let licenses = list(conn, va_id)?;
    let pools: Vec<Pool> = licenses.iter().map(License::pool).collect();
    let evaluation = compliance::evaluate(&pools, &demand(conn, va_id)?, today);
    Ok((licenses, evaluation))
}

/// Inserts a license and counts it on its virtual account.
pub fn insert(tx: &Connection, va_id: i64, spec: &LicenseSpec, now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO licenses (va_id, tag, name, license_type, quantity, start_date, end_date,
                               export_controlled, substitutes, created_at, rank)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            va_id,
            spec.tag,
            spec.name,
            spec.license_type.as_str(),
            spec.quantity,
            spec.start.format("%Y-%m-%d").to_string(),
            spec.end.map(|e| e.format("%Y-%m-%d").to_string()),
            spec.export_controlled,
            serde_json::to_string(&spec.substitutes).unwrap_or_else(|_| "[]".into()),
            now,
            spec.rank
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            DomainError::duplicate(
                "tag",
                format!(
                    "This virtual account already has a license for {}.",
                    spec.tag
                ),
            )
            .into()
        } else {
            super::StoreError::from(e)
        }
    })?;
    counters::bump_va(tx, va_id, 1, 0)
}

pub fn set_quantity(tx: &Connection, id: i64, quantity: i64) -> Result<()> {
    tx.execute(
        "UPDATE licenses SET quantity = ?2 WHERE id = ?1",
        params![id, quantity],
    )?;
    Ok(())
}

pub fn add_quantity(tx: &Connection, id: i64, quantity: i64) -> Result<()> {
    tx.execute(
        "UPDATE licenses SET quantity = quantity + ?2 WHERE id = ?1",
        params![id, quantity],
    )?;
    Ok(())
}

/// Rewrites a license's terms (its tag and VA stay).
pub fn update_spec(tx: &Connection, id: i64, spec: &LicenseSpec) -> Result<()> {
    tx.execute(
        "UPDATE licenses SET name = ?2, quantity = ?3, start_date = ?4, end_date = ?5,
                export_controlled = ?6, substitutes = ?7, rank = ?8 WHERE id = ?1",
        params![
            id,
            spec.name,
            spec.quantity,
            spec.start.to_string(),
            spec.end.map(|e| e.to_string()),
            spec.export_controlled,
            serde_json::to_string(&spec.substitutes).unwrap_or_else(|_| "[]".into()),
            spec.rank
        ],
    )?;
    Ok(())
}

pub fn delete(tx: &Connection, id: i64) -> Result<()> {
    tx.execute("DELETE FROM licenses WHERE id = ?1", [id])?;
    Ok(())
}
