//! Product lifecycle use cases called by the agent protocol: registration (with the
//! server-wide UDI identity of CONTRACT section 4: re-register, move, or refuse) and the
//! id certificate's renewal (which may record a changed hostname).
//!
//! Registration has no admin capability to check: the registration token is the
//! credential, redeemed (and its use counted) in the same transaction as the outcome.

use super::Result;
use crate::domain::instance::Udi;
use crate::domain::registration::{self, Holder, Placement};
use crate::domain::timers;
use crate::store::events::{self, NewEvent};
use crate::store::instances::{self, Enrolment, Instance, Signer};
use crate::store::tokens;
use rusqlite::Connection;
use serde_json::json;

/// A registration as parsed at the edge (shape, UDI, key, product and hostname checked).
pub struct RegisterInput {
    pub token: String,
    pub udi: Udi,
    pub public_key: [u8; 32],
    pub product_name: String,
    pub product_version: String,
    pub hostname: Option<String>,
    /// Move the UDI here from another VA of the same account.
    pub reregister: bool,
}

pub struct Registered {
    pub instance_id: String,
    pub virtual_account: String,
    pub export_controlled: bool,
    pub issued_at: i64,
    pub renew_after: i64,
    pub expires_at: i64,
    pub placement: Placement,
}

/// Registers a UDI with a token. Every successful registration spends one use of the
/// token; a refused one (any 4xx) changes nothing, the use included: every check comes
/// before the first write, so the request writer runs it without a savepoint
/// (`Store::write_unguarded`).
pub fn register(tx: &Connection, now: i64, input: &RegisterInput) -> Result<Registered> {
    let token = tokens::usable(tx, &input.token, now)?;
    let (va_name, account_id, account_name) = instances::va_and_account(tx, token.va_id)?;
    let (existing, ended) = match instances::find_by_udi(tx, &input.udi.pid, &input.udi.sn)? {
        // A registration that ended unrenewed counts as deregistered: the timer deletes
        // such instances within a minute, and this closes that window.
        Some(old) if old.cert_expires_at <= now => (None, Some(old)),
        other => (other, None),
    };
    let holder_names = existing
        .as_ref()
        .map(|i| instances::va_and_account(tx, i.va_id))
        .transpose()?;
    let holder = existing
        .as_ref()
        .zip(holder_names.as_ref())
        .map(|(i, (name, account, _))| Holder {
            va_id: i.va_id,
            va_name: name,
            account_id: *account,
        });
    let placement = registration::place(holder, token.va_id, account_id, input.reregister)?;
    // Decided: from here on only the database can fail.
    if let Some(old) = ended {
        instances::end_registration(tx, &old, now)?;
    }
    let token = tokens::spend(tx, token)?;
    let (renew_after, expires_at) = timers::certificate_times(now);
    let export = token.export_controlled;
    let enrolment = Enrolment {
        va_id: token.va_id,
        udi: &input.udi,
        public_key: &input.public_key,
        product_name: &input.product_name,
        product_version: &input.product_version,
        hostname: input.hostname.as_deref(),
        export_controlled: export,
        token_id: &token.id,
        cert_expires_at: expires_at,
    };
    let (id, event) = match (placement, existing) {
        (Placement::Reregister, Some(inst)) => {
            instances::switch_export_bucket(tx, &inst, export)?;
            instances::enrol_again(tx, &inst, now, &enrolment)?;
            instances::add_history(
                tx,
                &inst.id,
                now,
                inst.status,
                "re-registered with a new key",
            )?;
            let detail = json!({ "virtual_account": va_name });
            (inst.id, Some(("instance.reregistered", detail)))
        }
        (Placement::Move, Some(inst)) => {
            let from = holder_names.map(|(name, _, _)| name).unwrap_or_default();
            let note = format!("moved from {from} to {va_name} by re-registration");
            // Release first (by the old VA and export bucket), then rewrite the row.
            instances::move_released(tx, &inst, token.va_id, now, &note)?;
            instances::enrol_again(tx, &inst, now, &enrolment)?;
            let detail = json!({ "from": from, "to": va_name });
            (inst.id, Some(("instance.moved", detail)))
        }
        // A new instance is its own record (row, registered_at, token_id): the event log
        // keeps admin and security actions, not one line per product registered.
        _ => (instances::insert(tx, now, &enrolment)?, None),
    };
    if let Some((action, mut detail)) = event {
        detail["pid"] = json!(input.udi.pid);
        detail["sn"] = json!(input.udi.sn);
        events::record(
            tx,
            now,
            NewEvent {
                actor: &format!("token:{}", token.id),
                action,
                account: Some((account_id, &account_name)),
                target: &id,
                detail,
            },
        )?;
    }
    Ok(Registered {
        instance_id: id,
        virtual_account: va_name,
        export_controlled: export,
        issued_at: now,
        renew_after,
        expires_at,
        placement,
    })
}

/// Renews the id certificate of the signing instance, recording a changed hostname.
pub fn renew(
    tx: &Connection,
    now: i64,
    signer: Signer<'_>,
    hostname: Option<&str>,
) -> Result<(Instance, String)> {
    let (mut inst, va_name) = instances::renew_certificate(tx, now, signer)?;
    if let Some(h) = hostname {
        if instances::set_hostname(tx, &inst, h)? {
            let before = inst.hostname.replace(h.to_string());
            instances::add_history(
                tx,
                &inst.id,
                now,
                inst.status,
                &format!("hostname changed to {h}"),
            )?;
            let (_, account_id, account_name) = instances::va_and_account(tx, inst.va_id)?;
            events::record(
                tx,
                now,
                NewEvent {
                    actor: &format!("instance:{}", inst.id),
                    action: "instance.hostname_changed",
                    account: Some((account_id, &account_name)),
                    target: &inst.id,
                    detail: json!({ "from": before, "to": h }),
                },
            )?;
        }
    }
    Ok((inst, va_name))
}

/// An editor of the account removes an instance by hand (its usage and keys go with it).
pub fn remove(
    tx: &Connection,
    cap: &super::access::EditAccount,
    now: i64,
    va: &crate::store::accounts::VirtualAccount,
    id: &str,
) -> Result<()> {
    Ok(instances::remove(tx, &cap.actor, now, va, id)?)
}

/// An editor of the account moves an instance, with its usage, to another of its virtual
/// accounts; the one it went to.
pub fn transfer(
    tx: &Connection,
    cap: &super::access::EditAccount,
    now: i64,
    from: &crate::store::accounts::VirtualAccount,
    id: &str,
    to_name: &str,
) -> Result<crate::store::accounts::VirtualAccount> {
    // The instance must exist before the destination is judged, as the errors always came.
    instances::find_in_va(tx, from, id)?;
    let to = super::virtual_accounts::transfer_target(tx, &cap.account, from, to_name)?;
    Ok(instances::transfer(
        tx,
        &cap.actor,
        now,
        &cap.account,
        from,
        id,
        to,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::secrets::secret_hash;
    use crate::domain::timers::DAY;
    use crate::domain::DomainError;
    use crate::store::{Store, StoreError};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.execute_batch(
                    "INSERT INTO accounts (id, name, created_at) VALUES (1, 'Acme', 0), (2, 'Other', 0);
                     INSERT INTO virtual_accounts (id, account_id, name, created_at)
                       VALUES (10, 1, 'Lab', 0), (11, 1, 'Lab2', 0), (20, 2, 'Ops', 0);",
                )?;
                for (id, va) in [("lab", 10), ("lab2", 11), ("ops", 20)] {
                    tx.execute(
                        "INSERT INTO tokens (id, va_id, secret_hash, created_by, created_at, expires_at)
                         VALUES (?1, ?2, ?3, 'test', 0, ?4)",
                        rusqlite::params![id, va, secret_hash(id), 1000 * DAY],
                    )?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        (dir, store)
    }

    fn input(token: &str, reregister: bool) -> RegisterInput {
        RegisterInput {
            token: token.into(),
            udi: Udi {
                pid: "P".into(),
                sn: "S".into(),
                uuid: None,
            },
            public_key: [7; 32],
            product_name: "p".into(),
            product_version: "1".into(),
            hostname: None,
            reregister,
        }
    }

    fn register_at(store: &Store, now: i64, token: &str, re: bool) -> Result<Registered> {
        store.write_blocking(|tx| register(tx, now, &input(token, re)))
    }

    fn uses(store: &Store, token: &str) -> i64 {
        store
            .read_blocking(|c| {
                Ok(
                    c.query_row("SELECT uses FROM tokens WHERE id = ?1", [token], |r| {
                        r.get(0)
                    })?,
                )
            })
            .unwrap()
    }

    fn code(r: Result<Registered>) -> &'static str {
        match r {
            Err(super::super::ServiceError::Domain(DomainError::Conflict { code, .. })) => code,
            Err(e) => panic!("expected a conflict, got {e}"),
            Ok(_) => panic!("expected a conflict"),
        }
    }

    /// The timer's walk finds the registrations that ran out, and ending them leaves
    /// alone one renewed since the walk read it.
    #[test]
    fn ended_registrations_are_found_by_the_walk_and_a_renewed_one_stays() {
        let (_dir, store) = store();
        let at = |sn: &str, now: i64| {
            let mut i = input("lab", false);
            i.udi.sn = sn.into();
            store.write_blocking(|tx| register(tx, now, &i)).unwrap()
        };
        at("S1", 0);
        at("S2", 0);
        let year = 366 * DAY;
        let (keys, more) = store
            .read_blocking(|c| instances::registrations_ended(c, year, 0, 10))
            .unwrap();
        assert_eq!((keys.len(), more), (2, None), "one step reads them all");
        // A step of one: each read names where the next starts, and the last says none.
        let first = store
            .read_blocking(|c| instances::registrations_ended(c, year, 0, 1))
            .unwrap();
        assert_eq!(first, (vec![keys[0]], Some(keys[0])));
        let second = store
            .read_blocking(|c| instances::registrations_ended(c, year, keys[0], 1))
            .unwrap();
        assert_eq!(second, (vec![keys[1]], Some(keys[1])));
        let past = store
            .read_blocking(|c| instances::registrations_ended(c, year, keys[1], 1))
            .unwrap();
        assert_eq!(past, (vec![], None), "only keys past `after`");
        // S2 registers again, with a new certificate, before the timer ends it.
        assert_eq!(at("S2", 300 * DAY).placement, Placement::Reregister);
        let ended = store
            .write_blocking(|tx| instances::end_registrations(tx, &keys, year))
            .unwrap();
        assert_eq!(ended, 1);
        let left: Vec<String> = store
            .read_blocking(|c| {
                Ok(c.prepare("SELECT sn FROM instances")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?)
            })
            .unwrap();
        assert_eq!(left, ["S2"]);
    }

    #[test]
    fn registrations_reregister_move_refuse_and_replace_an_expired_one() {
        let (_dir, store) = store();
        let first = register_at(&store, 0, "lab", false).unwrap();
        assert_eq!(first.placement, Placement::New);
        let again = register_at(&store, 1, "lab", false).unwrap();
        assert_eq!(again.placement, Placement::Reregister);
        assert_eq!(again.instance_id, first.instance_id);
        assert_eq!(
            code(register_at(&store, 2, "lab2", false)),
            "already_registered"
        );
        assert_eq!(
            code(register_at(&store, 2, "ops", true)),
            "registered_elsewhere"
        );
        assert_eq!((uses(&store, "lab2"), uses(&store, "ops")), (0, 0));
        let moved = register_at(&store, 3, "lab2", true).unwrap();
        assert_eq!(moved.placement, Placement::Move);
        assert_eq!(moved.instance_id, first.instance_id);
        assert_eq!(moved.virtual_account, "Lab2");
        assert_eq!((uses(&store, "lab"), uses(&store, "lab2")), (2, 1));
        // A year unrenewed: the old registration is gone, another account may take the UDI.
        let later = register_at(&store, 3 + 365 * DAY, "ops", false).unwrap();
        assert_eq!(later.placement, Placement::New);
        assert_ne!(later.instance_id, first.instance_id);
        let ended: i64 = store
            .read_blocking(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM events WHERE action = 'instance.registration_expired'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(ended, 1);
        let problems = store
            .read_blocking(crate::store::counters::recount)
            .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }
}
