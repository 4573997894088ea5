//! Seeds instances through `service::instances::register`, the code path real registrations
//! take, with keys derived from their index so the load phase can sign for them.

use ed25519_dalek::SigningKey;
use satellite::crypto::secrets;
use satellite::domain::instance::Udi;
use satellite::domain::license::{LicenseSpec, LicenseType};
use satellite::service::instances::{self as registration, RegisterInput};
use satellite::service::virtual_accounts as service_vas;
use satellite::service::{access, accounts as service_accounts, licenses, tokens};
use satellite::store::instances::{self, Report};
use satellite::store::{accounts, Store, StoreError};
use sha2::{Digest, Sha256};

pub const ACCOUNT: &str = "Bench";
pub const VA: &str = "Load";
pub const TAG: &str = "regid.2026-01.com.bench.ess,1.0";
/// The product id of the estate's instances (serials `SN<index>`).
pub const PID: &str = "BENCH";

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
                    rank: satellite::domain::license::DEFAULT_RANK,
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

/// The estate's instances so far (seeded, or registered over HTTPS by this or an earlier
/// run), as (key index, id) in index order: serial numbers `SN<index>` carry the index
/// their keys derive from.
pub fn existing(store: &Store) -> Result<Vec<(u64, String)>, StoreError> {
    store.read_blocking(|c| {
        let rows: Vec<(String, String)> = c
            .prepare(
                "SELECT i.sn, coalesce(i.legacy_id, 'inst_' || (SELECT prefix FROM instance_id_prefix)
                        || printf('%010d', i.id))
                 FROM instances i JOIN virtual_accounts v ON v.id = i.va_id
                 JOIN accounts a ON a.id = v.account_id
                 WHERE a.name = ?1 AND v.name = ?2 AND i.pid = ?3 ORDER BY i.sn",
            )?
            .query_map([ACCOUNT, VA, PID], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(sn, id)| Some((sn.strip_prefix("SN")?.parse().ok()?, id)))
            .collect())
    })
}

/// Registers the instances of `indices` in transactions of `batch`, each followed by its
/// first usage report (an estate in service has reported before: the measured reports then
/// replace usage as they do in steady state).
pub fn register(
    store: &Store,
    token: &str,
    indices: &[u64],
    batch: usize,
    now: i64,
    progress: &dyn Fn(u64),
) -> Result<(), StoreError> {
    let today = chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .date_naive();
    let mut done = 0u64;
    for chunk in indices.chunks(batch.max(1)) {
        store.write_blocking(|tx| {
            for &n in chunk {
                let public_key = key_for(n).verifying_key().to_bytes();
                let reg = RegisterInput {
                    token: token.to_string(),
                    udi: Udi {
                        pid: PID.into(),
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
                    // A UUID, as agents send (stored as its 16 bytes).
                    report_id: format!("00000000-0000-4000-8000-{n:012x}"),
                    measured_at_us: now * 1_000_000,
                    entitlements: vec![(TAG.to_string(), 1)],
                };
                let signer = instances::Signer {
                    id: &id,
                    public_key: &public_key,
                };
                instances::apply_report(tx, now, today, signer, &first)?;
            }
            Ok::<_, StoreError>(())
        })?;
        done += chunk.len() as u64;
        progress(done);
    }
    Ok(())
}

/// The indices below `n` that `present` (key index, id) lacks.
pub fn missing(present: &[(u64, String)], n: u64) -> Vec<u64> {
    let mut have = vec![false; n as usize];
    for (i, _) in present {
        if let Some(h) = have.get_mut(*i as usize) {
            *h = true;
        }
    }
    (0..n).filter(|i| !have[*i as usize]).collect()
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
        satellite::crypto::password::hash(&password).map_err(|e| StoreError::Io(e.to_string()))?;
    let username = format!("bench{}", now);
    store.write_blocking(|tx| {
        satellite::service::users::create(
            tx,
            &access::local_operator("bench"),
            now,
            satellite::service::users::NewUser {
                username: &username,
                password_hash: &hash,
                role: satellite::domain::Role::SystemAdmin,
                account: None,
                must_change_password: false,
            },
        )
    })?;
    Ok((username, password))
}
