//! Seeds instances through `service::instances::register`, the code path real registrations
//! take, with keys derived from their index so the load phase can sign for them.

use crate::crypto::secrets;
use crate::domain::instance::Udi;
use crate::domain::license::{LicenseSpec, LicenseType};
use crate::service::instances::{self as registration, RegisterInput};
use crate::service::virtual_accounts as service_vas;
use crate::service::{access, accounts as service_accounts, licenses, tokens};
use crate::store::instances::{self, Report};
use crate::store::{accounts, Store, StoreError};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

pub const ACCOUNT: &str = "Bench";
pub const VA: &str = "Load";
pub const TAG: &str = "regid.2026-01.com.bench.ess,1.0";

pub fn key_for(i: u64) -> SigningKey {
    SigningKey::from_bytes(&Sha256::digest(format!("satellite-bench-{i}")).into())
}

/// Creates the account, VA and a large pool unless an earlier run (`--dir`) left them,
/// then a fresh token; returns the token's secret.
pub fn prepare(store: &Store, now: i64) -> Result<String, StoreError> {
    let admin = access::system_principal("bench");
    store.write_blocking(|tx| {
        let cap = access::system_admin(&admin)?;
        let va = match accounts::id_by_name(tx, ACCOUNT)? {
            Some(_) => access::edit_va(tx, &admin, ACCOUNT, VA)?.1,
            None => {
                service_accounts::create(tx, &cap, now, ACCOUNT, "load test")?;
                let edit = access::edit_account(tx, &admin, ACCOUNT)?;
                let va = service_vas::create(tx, &edit, now, VA, "")?;
                let spec = LicenseSpec {
                    tag: TAG.into(),
                    name: "Bench Essentials".into(),
                    license_type: LicenseType::Perpetual,
                    quantity: i32::MAX as i64,
                    start: chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default(),
                    end: None,
                    export_controlled: false,
                    substitutes: vec![],
                    rank: crate::domain::license::DEFAULT_RANK,
                };
                licenses::create(tx, &edit, now, &va, &spec)?;
                va
            }
        };
        let edit = access::edit_account(tx, &admin, ACCOUNT)?;
        let (_, secret) = tokens::create(
            tx,
            &edit,
            now,
            &va,
            tokens::NewToken {
                description: "bench",
                expires_in_days: 365,
                max_uses: None,
                export_controlled: false,
            },
        )?;
        Ok(secret)
    })
}

/// Ids of the instances an earlier run seeded, in seeding order (their serial numbers
/// carry the index their keys derive from).
pub fn existing(store: &Store) -> Result<Vec<String>, StoreError> {
    store.read_blocking(|c| {
        Ok(c.prepare(
            "SELECT i.id FROM instances i JOIN virtual_accounts v ON v.id = i.va_id
             JOIN accounts a ON a.id = v.account_id
             WHERE a.name = ?1 AND v.name = ?2 AND i.pid = 'BENCH' ORDER BY i.sn",
        )?
        .query_map([ACCOUNT, VA], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
    })
}

/// Registers instances `from..to` in transactions of `batch`, each followed by its first
/// usage report (an estate in service has reported before: the measured reports then
/// replace usage as they do in steady state); returns their ids in order.
pub fn register(
    store: &Store,
    token: &str,
    from: u64,
    to: u64,
    batch: u64,
    now: i64,
    progress: &dyn Fn(u64),
) -> Result<Vec<String>, StoreError> {
    let mut ids = Vec::with_capacity((to - from) as usize);
    let today = chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .date_naive();
    let mut i = from;
    while i < to {
        let end = (i + batch).min(to);
        let chunk = store.write_blocking(|tx| {
            (i..end)
                .map(|n| {
                    let public_key = key_for(n).verifying_key().to_bytes();
                    let reg = RegisterInput {
                        token: token.to_string(),
                        udi: Udi {
                            pid: "BENCH".into(),
                            sn: format!("SN{n:09}"),
                            uuid: None,
                        },
                        public_key,
                        product_name: "bench".into(),
                        product_version: "1".into(),
                        hostname: None,
                        reregister: false,
                    };
                    let id = registration::register(tx, now, &reg)?.instance_id;
                    let first = Report {
                        report_id: format!("seed-{n}"),
                        measured_at_us: now * 1_000_000,
                        entitlements: vec![(TAG.to_string(), 1)],
                    };
                    let signer = instances::Signer {
                        id: &id,
                        public_key: &public_key,
                    };
                    instances::apply_report(tx, now, today, signer, &first)?;
                    Ok::<_, StoreError>(id)
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        ids.extend(chunk);
        i = end;
        progress(i - from);
    }
    Ok(ids)
}

/// Lets the seeding settle before anything is measured: the WAL copied back and emptied,
/// and the database file flushed, so no phase pays for the seed's writes.
pub fn settle(db: &std::path::Path) -> Result<(), StoreError> {
    let conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(std::time::Duration::from_secs(60))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    std::fs::File::open(db)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::Io(e.to_string()))
}

/// A user for page loads, with a known password.
pub fn page_user(store: &Store, now: i64) -> Result<(String, String), StoreError> {
    let password = secrets::random_password();
    let hash =
        crate::crypto::password::hash(&password).map_err(|e| StoreError::Io(e.to_string()))?;
    let username = format!("bench{}", now);
    store.write_blocking(|tx| {
        crate::service::users::create(
            tx,
            &access::local_operator("bench"),
            now,
            crate::service::users::NewUser {
                username: &username,
                password_hash: &hash,
                role: crate::domain::Role::SystemAdmin,
                account: None,
                must_change_password: false,
            },
        )
    })?;
    Ok((username, password))
}
