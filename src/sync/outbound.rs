//! Bundles this server writes: a satellite's registration and sync requests, and the
//! upstream's answers (registration and sync responses) with the account's catalog.

use super::bundle::{BundleWriter, Header, Manifest};
use super::context::SyncContext;
use super::records;
use super::SyncError;
use crate::clock::rfc3339;
use crate::crypto::idcert::UdiJson;
use crate::domain::sync::{BundleKind, BundleResult, Direction, LinkMode, LinkState};
use crate::domain::timers::CERT_VALID;
use crate::store::sync_state::{self, History};
use crate::store::{accounts, synced, StoreError};
use rusqlite::Connection;
use std::path::PathBuf;

/// A bundle written to outbox/.
#[derive(Clone, Debug)]
pub struct Written {
    pub path: PathBuf,
    pub manifest: Manifest,
}

fn out_history(m: &Manifest, account_id: i64, started: std::time::Instant, now: i64) -> History {
    History {
        at: now,
        account_id: Some(account_id),
        account: Some(m.account.clone()),
        bundle_id: m.bundle_id.clone(),
        kind: m.bundle_kind(),
        direction: Direction::Out,
        sequence: m.sequence,
        records: m.records() as i64,
        result: BundleResult::Written,
        duration_ms: started.elapsed().as_millis() as i64,
        ..Default::default()
    }
}

/// Satellite: a registration request for `account` carrying the upstream's token; the
/// account's link becomes pending until the response is imported.
pub fn registration_request(
    ctx: &SyncContext,
    account: &str,
    mode: LinkMode,
    token: &str,
    url: Option<&str>,
    ca_cert_pem: Option<&str>,
) -> Result<Written, SyncError> {
    let started = std::time::Instant::now();
    let now = ctx.clock.unix();
    let id = ctx
        .store
        .read_blocking(|c| accounts::id_by_name(c, account))?
        .ok_or_else(|| StoreError::not_found(format!("account '{account}'")))?;
    let mut writer = BundleWriter::new()?;
    let mut file = writer.file("registration")?;
    file.write(&records::Registration {
        token: Some(token.to_string()),
        ..Default::default()
    })?;
    writer.close(file)?;
    let kind = BundleKind::RegistrationRequest;
    let path = ctx.outbox_path(account, kind, 0);
    let header = Header {
        kind,
        in_reply_to: None,
        sequence: 0,
        to: None,
        account: account.to_string(),
        created_at: now,
    };
    let manifest = writer.finish(header, &ctx.authority, &path)?;
    let m = manifest.clone();
    ctx.store.write_blocking(|tx| {
        sync_state::start_link(tx, id, mode, url, ca_cert_pem, &m.bundle_id, now)?;
        sync_state::record(tx, &out_history(&m, id, started, now))
    })?;
    Ok(Written { path, manifest })
}

/// Satellite: the next sync request, a full snapshot of the account's instances and usage
/// (a superset of everything not yet acknowledged).
pub fn sync_request(
    ctx: &SyncContext,
    account: &str,
    progress: &dyn Fn(u64),
) -> Result<Written, SyncError> {
    let started = std::time::Instant::now();
    let now = ctx.clock.unix();
    let link = ctx
        .store
        .read_blocking(|c| sync_state::link_by_account(c, account))?
        .filter(|l| l.state == LinkState::Registered)
        .ok_or_else(|| {
            SyncError::Invalid(crate::domain::DomainError::conflict(
                "not_registered",
                format!("Account '{account}' is not registered with an upstream yet."),
            ))
        })?;
    let sequence = link.last_sequence + 1;
    let mut writer = BundleWriter::new()?;
    super::ledger_sync::add_heads(ctx, &mut writer, &link, sequence)?;
    let mut instances = writer.file("instances")?;
    let mut usage = writer.file("usage")?;
    let mut keys = writer.file("export_keys")?;
    let mut done = 0u64;
    ctx.store.read_blocking(|c| {
        synced::for_each_instance(c, link.account_id, |i| {
            instances
                .write(&records::Instance {
                    id: i.id,
                    virtual_account: i.virtual_account,
                    udi: UdiJson {
                        pid: i.pid,
                        sn: i.sn,
                        uuid: i.uuid,
                    },
                    product: records::Product {
                        name: i.product_name,
                        version: i.product_version,
                    },
                    hostname: i.hostname,
                    export_controlled: i.export_controlled,
                    registered_at: rfc3339(i.registered_at),
                    last_contact: rfc3339(i.last_contact),
                    status: i.status,
                })
                .map_err(|e| StoreError::Io(e.to_string()))?;
            done += 1;
            if done.is_multiple_of(4096) {
                progress(done);
            }
            Ok(())
        })?;
        synced::for_each_usage(c, link.account_id, |instance_id, tag, count| {
            usage
                .write(&records::Usage {
                    instance_id,
                    tag,
                    count,
                })
                .map_err(|e| StoreError::Io(e.to_string()))
        })?;
        crate::store::export_keys::for_each_granted(c, link.account_id, |instance_id, tag| {
            keys.write(&records::ExportKey {
                instance_id,
                tag,
                state: crate::domain::export_key::ExportKeyState::Granted
                    .as_str()
                    .to_string(),
            })
            .map_err(|e| StoreError::Io(e.to_string()))
        })
    })?;
    progress(done);
    writer.close(instances)?;
    // Keys before usage: both follow their instances, and usage stays the last member.
    writer.close(keys)?;
    // Live reservations travel too, so the upstream holds back the same counts.
    let mut reservations = writer.file("reservations")?;
    for (r, held) in ctx
        .store
        .read_blocking(|c| crate::store::reservations::live_in_account(c, link.account_id))?
    {
        reservations.write(&records::Reservation {
            id: r.id,
            virtual_account: r.virtual_account,
            udi: UdiJson {
                pid: r.pid,
                sn: r.sn,
                uuid: None,
            },
            universal: r.universal,
            state: r.state.as_str().to_string(),
            licenses: held
                .into_iter()
                .map(|h| records::ReservedLicense {
                    tag: h.tag,
                    count: h.count,
                    held: h.held,
                })
                .collect(),
        })?;
    }
    writer.close(reservations)?;
    writer.close(usage)?;
    let kind = BundleKind::SyncRequest;
    let path = ctx.outbox_path(account, kind, sequence);
    let header = Header {
        kind,
        in_reply_to: None,
        sequence,
        to: link.upstream_authority_id.clone(),
        account: account.to_string(),
        created_at: now,
    };
    let manifest = writer.finish(header, &ctx.authority, &path)?;
    let m = manifest.clone();
    ctx.store.write_blocking(|tx| {
        sync_state::set_last_sequence(tx, link.account_id, sequence)?;
        sync_state::record(tx, &out_history(&m, link.account_id, started, now))
    })?;
    Ok(Written { path, manifest })
}

/// Upstream: answers a request with the account's catalog, inside the importing
/// transaction so the answer reflects exactly what was applied.
pub fn response(
    ctx: &SyncContext,
    tx: &Connection,
    request: &Manifest,
    satellite: &sync_state::Satellite,
    ack: Option<i64>,
) -> Result<Written, SyncError> {
    let started = std::time::Instant::now();
    let now = ctx.clock.unix();
    let sequence = satellite.response_sequence + 1;
    let kind = request
        .bundle_kind()
        .and_then(BundleKind::answer)
        .ok_or_else(|| SyncError::Rejected(format!("a {} is answered by nothing", request.kind)))?;
    let mut writer = BundleWriter::new()?;
    let mut reg = writer.file("registration")?;
    reg.write(&records::Registration {
        upstream_account: Some(satellite.account.clone()),
        registration_expires_at: Some(rfc3339(now + CERT_VALID)),
        ..Default::default()
    })?;
    writer.close(reg)?;
    if let Some(sequence) = ack {
        let mut acks = writer.file("acks")?;
        acks.write(&records::Ack { sequence })?;
        writer.close(acks)?;
    }
    let mut vas = writer.file("virtual_accounts")?;
    synced::for_each_va(tx, satellite.account_id, |name, description| {
        vas.write(&records::VirtualAccount { name, description })
            .map_err(|e| StoreError::Io(e.to_string()))
    })?;
    writer.close(vas)?;
    let mut licenses = writer.file("licenses")?;
    synced::for_each_license(tx, satellite.account_id, |va, l| {
        licenses
            .write(&records::License {
                virtual_account: va,
                tag: l.spec.tag,
                name: l.spec.name,
                license_type: l.spec.license_type.as_str().into(),
                quantity: l.spec.quantity,
                start: l.spec.start.to_string(),
                end: l.spec.end.map(|e| e.to_string()),
                export_controlled: l.spec.export_controlled,
                substitutes: l.spec.substitutes,
                rank: Some(l.spec.rank).filter(|r| *r != crate::domain::license::DEFAULT_RANK),
            })
            .map_err(|e| StoreError::Io(e.to_string()))
    })?;
    writer.close(licenses)?;
    // Reservations made elsewhere hold counts back on the satellite too.
    let mut reserved = writer.file("reserved")?;
    for (virtual_account, tag, held) in
        crate::store::reservations::held_elsewhere(tx, satellite.account_id, satellite.id)?
    {
        reserved.write(&records::Reserved {
            virtual_account,
            tag,
            held,
        })?;
    }
    writer.close(reserved)?;
    // One count per account: the satellite adds the demand recorded elsewhere to its own.
    super::demand::write(&mut writer, tx, satellite)?;
    let path = ctx.outbox_path(&request.account, kind, sequence);
    let header = Header {
        kind,
        in_reply_to: Some(request.bundle_id.clone()),
        sequence,
        to: Some(request.from.authority_id.clone()),
        account: request.account.clone(),
        created_at: now,
    };
    let manifest = writer.finish(header, &ctx.authority, &path)?;
    sync_state::set_response_sequence(tx, satellite.id, sequence)?;
    sync_state::record(
        tx,
        &out_history(&manifest, satellite.account_id, started, now),
    )?;
    Ok(Written { path, manifest })
}
