//! The second pass of an import, inside one transaction: the plan (seen before, order),
//! then every record, then one function per kind of bundle that writes what it means.
//! A preview runs this very code under a savepoint that is rolled back (see preview.rs),
//! so the only difference is `Mode`: a preview writes no answer bundle to disk.

use super::plan::{Importer, Plan, PrepareSnapshot};
use super::{reject, Outcome};
use crate::crypto::keys::public_key_b64;
use crate::domain::sync::{BundleResult, Direction};
use crate::store::sync_state::{self, History, Link, Registered, Satellite};
use crate::store::synced::{self, Catalog};
use crate::sync::bundle::{self, BundleSource, Manifest, Verified};
use crate::sync::context::SyncContext;
use crate::sync::ledger_sync;
use crate::sync::outbound::{self, Written};
use crate::sync::records;
use crate::sync::SyncError;
use ed25519_dalek::VerifyingKey;
use rusqlite::Connection;
use serde_json::json;
use std::collections::BTreeMap;

/// Whether the second pass is for real or for a preview.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Apply,
    /// Everything as for real, rolled back afterwards by the caller; no file written.
    Preview,
}

/// The second pass on the writer's transaction `tx`: reads the bundle again, decides and
/// writes. Returns the outcome and the id of the account it changed.
pub(super) fn apply_in(
    ctx: &SyncContext,
    tx: &Connection,
    src: &BundleSource,
    verified: &Verified,
    mode: Mode,
    progress: &dyn Fn(u64),
) -> Result<(Outcome, i64), SyncError> {
    let now = ctx.clock.unix();
    let started = std::time::Instant::now();
    let mut imp = Importer {
        ctx,
        tx,
        now,
        key: verified.key,
        plan: None,
        catalog: Catalog::default(),
        registration: records::Registration::default(),
        acks: vec![],
        snapshot: None,
        counts: BTreeMap::new(),
    };
    let manifest = bundle::read(src, &mut PrepareSnapshot(&mut imp), progress)?;
    if manifest != verified.manifest {
        // A file swapped between the passes: decide nothing on it.
        return Err(reject("the bundle changed while it was being imported"));
    }
    finish(imp, &manifest, mode, started)
}

/// The second pass in a transaction of its own, committed when all of it applied.
pub(super) fn apply(
    ctx: &SyncContext,
    src: &BundleSource,
    verified: &Verified,
    progress: &dyn Fn(u64),
) -> Result<Outcome, SyncError> {
    ctx.store.write_blocking(|tx| {
        apply_in(ctx, tx, src, verified, Mode::Apply, progress).map(|(outcome, _)| outcome)
    })
}

/// The event for a peer's key pinned anew under its rotation statement.
fn key_rotated(
    tx: &Connection,
    now: i64,
    account: (i64, &str),
    authority_id: &str,
    key: &VerifyingKey,
) -> Result<(), SyncError> {
    crate::store::events::record(
        tx,
        now,
        crate::store::events::NewEvent {
            actor: "sync",
            action: "sync.peer_key_rotated",
            account: Some(account),
            target: authority_id,
            detail: json!({ "public_key": public_key_b64(key) }),
        },
    )?;
    Ok(())
}

fn finish(
    mut imp: Importer<'_>,
    m: &Manifest,
    mode: Mode,
    started: std::time::Instant,
) -> Result<(Outcome, i64), SyncError> {
    let plan = imp.plan.take().ok_or_else(|| reject("no plan"))?;
    let (account_id, answer) = match plan {
        Plan::RegistrationResponse(link) => (registration_response(&imp, m, link)?, None),
        Plan::SyncResponse(link) => (sync_response(&imp, m, link)?, None),
        Plan::RegistrationRequest => registration_request(&imp, m, mode)?,
        Plan::SyncRequest(sat) => {
            let snapshot = imp.snapshot.take().ok_or_else(|| reject("no snapshot"))?;
            sync_request(snapshot, &imp, m, sat, mode)?
        }
    };
    let Importer {
        tx, now, counts, ..
    } = imp;
    let summary = json!(counts);
    sync_state::record(
        tx,
        &History {
            at: now,
            account_id: Some(account_id),
            account: Some(m.account.clone()),
            bundle_id: m.bundle_id.clone(),
            kind: m.bundle_kind(),
            direction: Direction::In,
            sequence: m.sequence,
            records: m.records() as i64,
            result: BundleResult::Applied,
            duration_ms: started.elapsed().as_millis() as i64,
            detail: summary.to_string(),
            ..Default::default()
        },
    )?;
    let outcome = Outcome {
        result: BundleResult::Applied,
        kind: super::known_kind(m)?,
        bundle_id: m.bundle_id.clone(),
        account: m.account.clone(),
        summary,
        answer,
    };
    Ok((outcome, account_id))
}

/// Satellite: the upstream accepted our registration; its catalog arrives with its key.
fn registration_response(imp: &Importer<'_>, m: &Manifest, link: Link) -> Result<i64, SyncError> {
    let (tx, now) = (imp.tx, imp.now);
    synced::apply_catalog(tx, link.account_id, &link.account, &imp.catalog, now)?;
    let expires = expires_at(&imp.registration)?;
    let key = m
        .from
        .public_key
        .as_deref()
        .and_then(crate::crypto::agent_sig::decode_public_key)
        .ok_or_else(|| reject("the manifest carries no valid public key"))?;
    sync_state::complete_registration(
        tx,
        link.account_id,
        &Registered {
            upstream_authority_id: &m.from.authority_id,
            upstream_public_key: key.as_bytes().as_slice(),
            upstream_account: imp.registration.upstream_account.as_deref(),
            registration_expires_at: expires,
            response_sequence: m.sequence,
        },
        now,
    )?;
    Ok(link.account_id)
}

/// Satellite: the upstream's answer to a sync request: its catalog and what it acknowledged.
fn sync_response(imp: &Importer<'_>, m: &Manifest, link: Link) -> Result<i64, SyncError> {
    let (tx, now, key) = (imp.tx, imp.now, imp.key);
    if link.upstream_public_key.as_deref() != Some(key.as_bytes().as_slice()) {
        // Verified under a rotation statement: the new key is pinned from now on.
        sync_state::repin_upstream(tx, link.account_id, key.as_bytes())?;
        key_rotated(
            tx,
            now,
            (link.account_id, &link.account),
            &m.from.authority_id,
            &key,
        )?;
    }
    synced::apply_catalog(tx, link.account_id, &link.account, &imp.catalog, now)?;
    let acked = imp
        .acks
        .iter()
        .copied()
        .max()
        .unwrap_or(link.last_acked_sequence)
        .max(link.last_acked_sequence);
    let expires = expires_at(&imp.registration)?.or(link.registration_expires_at);
    sync_state::record_response(tx, link.account_id, acked, m.sequence, expires, now)?;
    Ok(link.account_id)
}

/// Upstream: a satellite registers with a satellite token; its key is pinned and the
/// response answers it (not written in a preview).
fn registration_request(
    imp: &Importer<'_>,
    m: &Manifest,
    mode: Mode,
) -> Result<(i64, Option<Written>), SyncError> {
    let (tx, now) = (imp.tx, imp.now);
    let token = imp
        .registration
        .token
        .as_deref()
        .ok_or_else(|| reject("the request carries no registration token"))?;
    let account_id = sync_state::redeem_satellite_token(tx, token, now)?
        .map_err(|refusal| reject(refusal.message()))?;
    let key = m
        .from
        .public_key
        .as_deref()
        .and_then(crate::crypto::agent_sig::decode_public_key)
        .ok_or_else(|| reject("the manifest carries no valid public key"))?;
    let sat = sync_state::register_satellite(
        tx,
        account_id,
        &m.from.authority_id,
        key.as_bytes(),
        &m.account,
        now,
    )?;
    let answer = match mode {
        Mode::Apply => Some(outbound::response(imp.ctx, tx, m, &sat, None)?),
        Mode::Preview => None,
    };
    Ok((account_id, answer))
}

/// Upstream: a satellite's snapshot replaces what it reported before; the response
/// acknowledges it (not written in a preview).
fn sync_request(
    snapshot: synced::Snapshot<'_>,
    imp: &Importer<'_>,
    m: &Manifest,
    sat: Satellite,
    mode: Mode,
) -> Result<(i64, Option<Written>), SyncError> {
    let (tx, now, key) = (imp.tx, imp.now, imp.key);
    let carried = imp.counts.get(ledger_sync::FILE).copied().unwrap_or(0);
    ledger_sync::on_request(imp.ctx, tx, &sat, carried)?;
    if sat.public_key != key.as_bytes() {
        sync_state::repin_satellite(tx, sat.id, key.as_bytes())?;
        key_rotated(
            tx,
            now,
            (sat.account_id, &sat.account),
            &sat.authority_id,
            &key,
        )?;
    }
    let written = snapshot.finish(m.sequence)?;
    // What differed from the stored snapshot: an unchanged re-sync writes nothing.
    tracing::info!(satellite = %sat.authority_id, ?written, "satellite snapshot applied");
    let sat = sync_state::satellite(tx, &sat.authority_id, &sat.local_account)?.unwrap_or(sat);
    let answer = match mode {
        Mode::Apply => Some(outbound::response(imp.ctx, tx, m, &sat, Some(m.sequence))?),
        Mode::Preview => None,
    };
    Ok((sat.account_id, answer))
}

fn expires_at(registration: &records::Registration) -> Result<Option<i64>, SyncError> {
    registration
        .registration_expires_at
        .as_deref()
        .map(|t| records::parse_time("registration_expires_at", t))
        .transpose()
}
