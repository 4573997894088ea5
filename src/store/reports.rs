//! Reads for reports that walk many rows: instances with their usage, handed to the
//! caller one row at a time so a million-instance report never sits in memory whole.

use super::Result;
use rusqlite::{params, Connection};

#[derive(Debug, Clone, Default)]
pub struct InstanceRow {
    pub account: String,
    pub virtual_account: String,
    pub id: String,
    pub pid: String,
    pub sn: String,
    pub product: String,
    pub version: String,
    pub hostname: Option<String>,
    pub status: String,
    pub registered_at: i64,
    pub last_contact: i64,
    /// `TAG=COUNT` joined by `;`, in tag order.
    pub licenses: String,
}

/// Calls `each` for every instance the filter selects, in account, VA and id order; stops
/// early (without error) when `each` answers false.
pub fn for_each_instance(
    conn: &Connection,
    account_id: Option<i64>,
    va_id: Option<i64>,
    status: Option<&str>,
    mut each: impl FnMut(InstanceRow) -> bool,
) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT a.name, v.name, coalesce(i.legacy_id, 'inst_' || (SELECT prefix FROM instance_id_prefix) || printf('%010d', i.id)), i.pid, i.sn, i.product_name, i.product_version, i.hostname,
                CASE i.status WHEN 0 THEN 'authorization_expired' WHEN 1 THEN 'authorized' WHEN 2 THEN 'not_authorized' WHEN 3 THEN 'out_of_compliance' WHEN 4 THEN 'registered' WHEN 5 THEN 'reserved' END,
                i.registered_at, i.last_contact,
                (SELECT group_concat(tag || '=' || count, ';')
                   FROM (SELECT t.tag, u.count FROM instance_usage u JOIN tags t ON t.id = u.tag_id
                         WHERE u.instance_id = i.id ORDER BY t.tag))
         FROM instances i JOIN virtual_accounts v ON v.id = i.va_id
         JOIN accounts a ON a.id = v.account_id
         WHERE (?1 IS NULL OR v.account_id = ?1) AND (?2 IS NULL OR i.va_id = ?2)
           AND (?3 IS NULL OR i.status = CASE ?3 WHEN 'authorization_expired' THEN 0 WHEN 'authorized' THEN 1 WHEN 'not_authorized' THEN 2 WHEN 'out_of_compliance' THEN 3 WHEN 'registered' THEN 4 WHEN 'reserved' THEN 5 END)
         ORDER BY a.name, v.name, i.id",
    )?;
    let mut rows = stmt.query(params![account_id, va_id, status])?;
    while let Some(r) = rows.next()? {
        let row = InstanceRow {
            account: r.get(0)?,
            virtual_account: r.get(1)?,
            id: r.get(2)?,
            pid: r.get(3)?,
            sn: r.get(4)?,
            product: r.get(5)?,
            version: r.get(6)?,
            hostname: r.get(7)?,
            status: r.get(8)?,
            registered_at: r.get(9)?,
            last_contact: r.get(10)?,
            licenses: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
        };
        if !each(row) {
            break;
        }
    }
    Ok(())
}
