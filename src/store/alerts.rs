//! The rows alerts are drawn from that no other repository serves: tokens about to expire
//! and instances whose authorization lapsed. Which of them is an alert, and how it reads,
//! is decided in `service::alerts` (rules in `domain::alerts`).

use super::Result;
use crate::domain::instance::InstanceStatus;
use rusqlite::Connection;
use std::sync::LazyLock;

/// A live, not used up registration token expiring in `(now, until]`.
#[derive(Clone, Debug)]
pub struct ExpiringToken {
    pub account: String,
    pub virtual_account: String,
    pub id: String,
    pub expires_at: i64,
}

pub fn expiring_tokens(
    conn: &Connection,
    scope: Option<i64>,
    now: i64,
    until: i64,
) -> Result<Vec<ExpiringToken>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.name, v.name, t.id, t.expires_at FROM tokens t
         JOIN virtual_accounts v ON v.id = t.va_id JOIN accounts a ON a.id = v.account_id
         WHERE t.revoked_at IS NULL AND t.expires_at > ?1 AND t.expires_at <= ?2
           AND (t.max_uses IS NULL OR t.uses < t.max_uses) AND (?3 IS NULL OR a.id = ?3)",
    )?;
    let rows = stmt.query_map(rusqlite::params![now, until, scope], |r| {
        Ok(ExpiringToken {
            account: r.get(0)?,
            virtual_account: r.get(1)?,
            id: r.get(2)?,
            expires_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// An instance whose authorization lapsed (at most 200, oldest first).
#[derive(Clone, Debug)]
pub struct LapsedInstance {
    pub account: String,
    pub virtual_account: String,
    pub id: String,
    /// `pid:sn`.
    pub udi: String,
}

pub fn lapsed_instances(conn: &Connection, scope: Option<i64>) -> Result<Vec<LapsedInstance>> {
    // The status counter says which VAs have any, so this never scans the whole instance
    // table. The join order and index are spelled out: left to itself the planner walked
    // every instance in id order (for the ORDER BY), on the writer, at every notification
    // tick. The index's condition is spelled out too, so SQLite may use it (migration
    // 0023, 0024). Made once: the statement cache is keyed by its text.
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT a.name, v.name, {id}, i.pid || ':' || i.sn FROM va_status_counts c
             CROSS JOIN instances i INDEXED BY instances_va_status
               ON i.va_id = c.va_id AND {indexed} AND i.status = {code}
             JOIN virtual_accounts v ON v.id = c.va_id JOIN accounts a ON a.id = v.account_id
             WHERE c.status = ?2 AND c.n > 0 AND (?1 IS NULL OR a.id = ?1)
             ORDER BY i.id LIMIT 200",
            id = super::instance_ids::external_sql("i."),
            indexed = super::status_codes::indexed_sql("i.status"),
            code = super::status_codes::code_sql("c.status"),
        )
    });
    let mut stmt = conn.prepare_cached(&SQL)?;
    let lapsed = InstanceStatus::AuthorizationExpired.as_str();
    let rows = stmt.query_map(rusqlite::params![scope, lapsed], |r| {
        Ok(LapsedInstance {
            account: r.get(0)?,
            virtual_account: r.get(1)?,
            id: r.get(2)?,
            udi: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
