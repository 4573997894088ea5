//! Reads of one account for the bundles sync sends: the satellite's instances, usage (a
//! sync request) and the upstream's virtual accounts and licenses (a response). Each
//! streams through a callback, so a large account is never held in memory.

use crate::store::Result;
use rusqlite::Connection;

/// Calls `f` with every virtual account of an account (name, description).
pub fn for_each_va(
    conn: &Connection,
    account_id: i64,
    mut f: impl FnMut(String, String) -> Result<()>,
) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT name, description FROM virtual_accounts WHERE account_id = ?1 ORDER BY name",
    )?;
    let mut rows = stmt.query([account_id])?;
    while let Some(r) = rows.next()? {
        f(r.get(0)?, r.get(1)?)?;
    }
    Ok(())
}

/// Calls `f` with every license of an account: (virtual account, license).
pub fn for_each_license(
    conn: &Connection,
    account_id: i64,
    mut f: impl FnMut(String, crate::store::licenses::License) -> Result<()>,
) -> Result<()> {
    let vas: Vec<(i64, String)> = conn
        .prepare("SELECT id, name FROM virtual_accounts WHERE account_id = ?1 ORDER BY name")?
        .query_map([account_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, name) in vas {
        for l in crate::store::licenses::list(conn, id)? {
            f(name.clone(), l)?;
        }
    }
    Ok(())
}

/// One instance row for export, in the record's terms.
pub struct InstanceExport {
    pub id: String,
    pub virtual_account: String,
    pub pid: String,
    pub sn: String,
    pub uuid: Option<String>,
    pub product_name: String,
    pub product_version: String,
    pub hostname: Option<String>,
    pub export_controlled: bool,
    pub registered_at: i64,
    pub last_contact: i64,
    pub status: String,
}

/// True when `account_id` holds at least a quarter of all instances (from the counters):
/// reading the whole table in storage order is then cheaper than one random row fetch per
/// instance through the index.
fn holds_most(conn: &Connection, account_id: i64) -> Result<bool> {
    let (mine, all): (i64, i64) = conn.query_row(
        "SELECT coalesce(sum(CASE WHEN account_id = ?1 THEN instance_count END), 0),
                coalesce(sum(instance_count), 0)
         FROM virtual_accounts",
        [account_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(mine * 4 >= all)
}

/// Streams an account's instances in id order without loading them all: through the
/// virtual-account index for a small account, by reading the table in storage order and
/// sorting when the account holds most of them. Id order matters to the reader: the
/// upstream then inserts into its id-keyed indexes at one end instead of all over them.
pub fn for_each_instance(
    conn: &Connection,
    account_id: i64,
    mut f: impl FnMut(InstanceExport) -> Result<()>,
) -> Result<()> {
    let from = if holds_most(conn, account_id)? {
        "instances i NOT INDEXED JOIN virtual_accounts v ON v.id = i.va_id"
    } else {
        "instances i JOIN virtual_accounts v ON v.id = i.va_id"
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT coalesce(i.legacy_id, 'inst_' || (SELECT prefix FROM instance_id_prefix) || printf('%010d', i.id)), v.name, i.pid, i.sn, i.uuid, i.product_name, i.product_version, i.hostname,
                i.export_controlled, i.registered_at, i.last_contact,
                CASE i.status WHEN 0 THEN 'authorization_expired' WHEN 1 THEN 'authorized' WHEN 2 THEN 'not_authorized' WHEN 3 THEN 'out_of_compliance' WHEN 4 THEN 'registered' WHEN 5 THEN 'reserved' END
         FROM {from} WHERE v.account_id = ?1 ORDER BY i.id"
    ))?;
    let mut rows = stmt.query([account_id])?;
    while let Some(r) = rows.next()? {
        f(InstanceExport {
            id: r.get(0)?,
            virtual_account: r.get(1)?,
            pid: r.get(2)?,
            sn: r.get(3)?,
            uuid: r.get(4)?,
            product_name: r.get(5)?,
            product_version: r.get(6)?,
            hostname: r.get(7)?,
            export_controlled: r.get(8)?,
            registered_at: r.get(9)?,
            last_contact: r.get(10)?,
            status: r.get(11)?,
        })?;
    }
    Ok(())
}

pub fn for_each_usage(
    conn: &Connection,
    account_id: i64,
    mut f: impl FnMut(String, String, i64) -> Result<()>,
) -> Result<()> {
    // VA, then its instances by the (va_id, id) index, so their rows (which hold their
    // usage, migration 0021) are read in id order: pages in sequence, not one per row.
    // The column is read here, not through the `instance_usage` view, which would look
    // each instance's row up a second time.
    let mut stmt = conn.prepare(
        "SELECT coalesce(i.legacy_id, 'inst_' || (SELECT prefix FROM instance_id_prefix) || printf('%010d', i.id)),
                (SELECT t.tag FROM tags t WHERE t.id = CAST(u.key AS INTEGER)), u.value
         FROM virtual_accounts v CROSS JOIN instances i CROSS JOIN json_each(i.usage) u
         WHERE v.account_id = ?1 AND i.va_id = v.id",
    )?;
    let mut rows = stmt.query([account_id])?;
    while let Some(r) = rows.next()? {
        f(r.get(0)?, r.get(1)?, r.get(2)?)?;
    }
    Ok(())
}

/// How many instances an account holds (from the counters), to size an export's progress.
pub fn instance_total(conn: &Connection, account: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT coalesce(sum(v.instance_count), 0) FROM virtual_accounts v
         JOIN accounts a ON a.id = v.account_id WHERE a.name = ?1",
        [account],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    /// Account 1 holds one instance, account 2 nine: both read paths (index for the
    /// small account, table scan for the large one) return exactly the account's rows.
    #[test]
    fn exports_read_only_the_accounts_instances_whichever_path_they_take() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("s.db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.execute_batch(
                    "INSERT INTO accounts (id, name, created_at) VALUES (1, 'Small', 0), (2, 'Large', 0);
                     INSERT INTO virtual_accounts (id, account_id, name, instance_count, created_at)
                       VALUES (10, 1, 'A', 1, 0), (20, 2, 'B', 9, 0);
                     INSERT INTO tags (tag) VALUES ('t');",
                )?;
                for n in 0..10 {
                    let va = if n == 0 { 10 } else { 20 };
                    tx.execute(
                        "INSERT INTO instances (id, legacy_id, va_id, pid, sn, public_key,
                           product_name, product_version, registered_at, last_contact,
                           cert_expires_at, status)
                         VALUES (?3, ?1, ?2, 'P', ?1, x'00', 'p', '1', 0, 0, 0, 4)",
                        params![format!("inst_{n}"), va, n + 1],
                    )?;
                    tx.execute(
                        "UPDATE instances SET usage = json_object(
                           (SELECT CAST(id AS TEXT) FROM tags WHERE tag = 't'), ?2) WHERE id = ?1",
                        params![n + 1, n],
                    )?;
                }
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
        for (account, expected) in [(1, 1), (2, 9)] {
            let (mut instances, mut usage) = (vec![], vec![]);
            store
                .read_blocking(|c| {
                    for_each_instance(c, account, |i| {
                        instances.push(i.id);
                        Ok(())
                    })?;
                    for_each_usage(c, account, |id, _, _| {
                        usage.push(id);
                        Ok(())
                    })
                })
                .unwrap();
            instances.sort();
            usage.sort();
            assert_eq!(instances.len(), expected, "account {account}");
            assert_eq!(instances, usage, "account {account}");
            assert_eq!(instances.contains(&"inst_0".to_string()), account == 1);
        }
    }
}
