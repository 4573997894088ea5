//! Importing any bundle: who may send what, in which order, signed by whom. All of a
//! bundle is applied in one transaction or none of it; a bundle seen before is a no-op.
//!
//! Two passes (CONTRACT.md section 6, "verification first and whole"): the first verifies
//! the bundle to its last byte against the key this server trusts for its sender and
//! decides nothing else; only then is it looked up ("seen before"), checked for order and
//! applied in a second, transactional pass. So a tampered copy of an applied bundle is
//! rejected, never answered as a duplicate, and an unverified sender gets nothing signed.

use super::bundle::{self, BundleSink, BundleSource, Manifest, Verified};
use super::context::SyncContext;
use super::outbound::{self, Written};
use super::records::{self, parse};
use super::{storage, SyncError};
use crate::config::ServerRole;
use crate::crypto::keys::public_key_b64;
use crate::domain::instance::check_udi;
use crate::domain::license::{LicenseSpec, RawLicense};
use crate::domain::names;
use crate::store::sync_state::{self, History, Link, Satellite};
use crate::store::synced::{self, Catalog, InstanceExport, Snapshot};
use ed25519_dalek::VerifyingKey;
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the file came from decides what happens to it afterwards.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// In inbox/ (dropped by an operator, or an admin's upload saved there): moved.
    Inbox,
    /// A path given on the command line: copied, the original left alone.
    Path,
}

/// Where a bundle came from, which decides what is kept of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A file an operator or admin put there (see `Source`).
    File(Source),
    /// The upstream's answer to our own exchange, held in memory.
    Fetched,
    /// An unauthenticated peer's body on `/sync/v1/exchange`, held in memory: nothing of
    /// it is kept, and history is written only once its sender proved who it is.
    Exchange,
}

/// How the key that verified a bundle was chosen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Pinned earlier for this sender: a verified bundle comes from a known peer.
    Pinned,
    /// Introduced by the bundle itself (registration): proves nothing about the sender
    /// until the token or pending request checks out.
    Introduced,
}

#[derive(Debug)]
pub struct Outcome {
    /// `applied` or `duplicate`.
    pub result: &'static str,
    pub kind: String,
    pub bundle_id: String,
    pub account: String,
    pub summary: Value,
    /// The response bundle, when the upstream answered a request.
    pub answer: Option<Written>,
}

enum Plan {
    RegistrationResponse(Link),
    SyncResponse(Link),
    RegistrationRequest,
    SyncRequest(Satellite),
}

struct Importer<'a> {
    ctx: &'a SyncContext,
    tx: &'a Connection,
    now: i64,
    /// The key the first pass verified the bundle with; the second pass uses it again.
    key: VerifyingKey,
    plan: Option<Plan>,
    catalog: Catalog,
    registration: records::Registration,
    acks: Vec<i64>,
    snapshot: Option<Snapshot<'a>>,
    counts: BTreeMap<String, u64>,
}

fn reject(msg: impl Into<String>) -> SyncError {
    SyncError::Rejected(msg.into())
}

impl Importer<'_> {
    fn check_to(&self, m: &Manifest, required: bool) -> Result<(), SyncError> {
        match &m.to {
            Some(to) if to.authority_id != self.ctx.authority.authority_id() => {
                Err(reject(format!(
                    "addressed to authority {}, not to this one ({})",
                    to.authority_id,
                    self.ctx.authority.authority_id()
                )))
            }
            None if required => Err(reject("the bundle names no recipient authority")),
            _ => Ok(()),
        }
    }

    fn pinned(bytes: &[u8]) -> Result<VerifyingKey, SyncError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| reject("the pinned key is damaged"))?;
        VerifyingKey::from_bytes(&arr).map_err(|_| reject("the pinned key is damaged"))
    }
}

/// The key pinned for a sender, or the key it handed over to: after a key rotation the
/// manifest carries a statement signed by the pinned key vouching for the signer's new
/// key, good until its overlap ends (see `crypto::rotation`). The import then pins it.
fn rotated(
    ctx: &SyncContext,
    pinned: &[u8],
    m: &Manifest,
    signer: &VerifyingKey,
) -> Result<VerifyingKey, SyncError> {
    let pinned = Importer::pinned(pinned)?;
    let handed_over = pinned != *signer
        && m.from.public_key.as_deref() == Some(public_key_b64(signer).as_str())
        && m.from
            .key_rotation
            .as_ref()
            .is_some_and(|v| v.hands_over(&pinned, signer, ctx.clock.unix()));
    Ok(if handed_over { *signer } else { pinned })
}

/// The key this server trusts for the sender a manifest names, and how it was chosen.
/// Decides nothing about the bundle beyond that: no "seen before", no order.
fn sender_key(
    ctx: &SyncContext,
    c: &Connection,
    m: &Manifest,
    signer: &VerifyingKey,
) -> Result<(VerifyingKey, Trust), SyncError> {
    let announced = m.from.public_key.as_deref();
    let introduced = || {
        // For a registration the bundle introduces its own key; both copies must agree.
        if announced == Some(public_key_b64(signer).as_str()) {
            Ok((*signer, Trust::Introduced))
        } else {
            Err(reject(
                "signer.pub.pem and the manifest's public key differ",
            ))
        }
    };
    match (ctx.role, m.kind.as_str()) {
        (ServerRole::Satellite, "registration-response") => {
            let link = sync_state::link_by_account(c, &m.account)?.ok_or_else(|| {
                reject(format!(
                    "foreign account: there is no account '{}' here",
                    m.account
                ))
            })?;
            if link.state == "pending"
                && link.pending_request_id.as_deref() == m.in_reply_to.as_deref()
            {
                // Trust on first use: the response to our pending request pins its key.
                return introduced();
            }
            match (&link.upstream_authority_id, &link.upstream_public_key) {
                // A copy of the response that registered us verifies against the key it
                // pinned (and is then a duplicate); nothing else does.
                (Some(id), Some(key)) if *id == m.from.authority_id => {
                    Ok((rotated(ctx, key, m, signer)?, Trust::Pinned))
                }
                _ => Err(reject(
                    "it does not answer this account's pending registration request",
                )),
            }
        }
        (ServerRole::Satellite, "sync-response") => {
            let link = sync_state::link_by_account(c, &m.account)?
                .filter(|l| l.state == "registered")
                .ok_or_else(|| {
                    reject(format!(
                        "foreign account: '{}' is not registered with an upstream here",
                        m.account
                    ))
                })?;
            if link.upstream_authority_id.as_deref() != Some(m.from.authority_id.as_str()) {
                return Err(reject(format!(
                    "foreign authority {}: not this account's upstream",
                    m.from.authority_id
                )));
            }
            let pinned = link.upstream_public_key.as_deref().unwrap_or_default();
            let key = rotated(ctx, pinned, m, signer)?;
            Ok((key, Trust::Pinned))
        }
        (ServerRole::Upstream, "registration-request") => {
            // A satellite registered before is held to the key it pinned then.
            match sync_state::satellite(c, &m.from.authority_id, &m.account)? {
                Some(sat) => Ok((rotated(ctx, &sat.public_key, m, signer)?, Trust::Pinned)),
                None => introduced(),
            }
        }
        (ServerRole::Upstream, "sync-request") => {
            let sat =
                sync_state::satellite(c, &m.from.authority_id, &m.account)?.ok_or_else(|| {
                    reject(format!(
                        "foreign satellite: authority {} account '{}' is not registered here",
                        m.from.authority_id, m.account
                    ))
                })?;
            Ok((rotated(ctx, &sat.public_key, m, signer)?, Trust::Pinned))
        }
        (role, kind) => Err(reject(format!(
            "wrong kind: a {} does not import {kind} bundles",
            role.as_str()
        ))),
    }
}

/// The first pass: the whole bundle checked against its sender's trusted key.
fn verify_sender(
    ctx: &SyncContext,
    src: &BundleSource,
) -> (Result<Verified, SyncError>, Option<Trust>) {
    let mut trust = None;
    let verified = bundle::verify(src, |m, signer| {
        let (key, how) = ctx
            .store
            .read_blocking(|c| Ok(sender_key(ctx, c, m, signer)))??;
        trust = Some(how);
        Ok(key)
    });
    (verified, trust)
}

impl BundleSink for Importer<'_> {
    /// Runs only after the first pass verified the bundle whole: now it may be a
    /// duplicate, out of order, or not an answer to anything.
    fn trust(&mut self, m: &Manifest, _signer: &VerifyingKey) -> Result<VerifyingKey, SyncError> {
        if sync_state::applied_before(self.tx, &m.bundle_id)? {
            return Err(SyncError::Duplicate(m.bundle_id.clone()));
        }
        let plan = match (self.ctx.role, m.kind.as_str()) {
            (ServerRole::Satellite, "registration-response") => {
                let link = sync_state::link_by_account(self.tx, &m.account)?.ok_or_else(|| {
                    reject(format!(
                        "foreign account: there is no account '{}' here",
                        m.account
                    ))
                })?;
                if link.state != "pending"
                    || link.pending_request_id.as_deref() != m.in_reply_to.as_deref()
                {
                    return Err(reject(
                        "it does not answer this account's pending registration request",
                    ));
                }
                self.check_to(m, true)?;
                Plan::RegistrationResponse(link)
            }
            (ServerRole::Satellite, "sync-response") => {
                let link = sync_state::link_by_account(self.tx, &m.account)?
                    .filter(|l| l.state == "registered")
                    .ok_or_else(|| {
                        reject(format!(
                            "foreign account: '{}' is not registered with an upstream here",
                            m.account
                        ))
                    })?;
                if link.upstream_authority_id.as_deref() != Some(m.from.authority_id.as_str()) {
                    return Err(reject(format!(
                        "foreign authority {}: not this account's upstream",
                        m.from.authority_id
                    )));
                }
                self.check_to(m, true)?;
                // A database error here is not the sender's fault: it propagates as such.
                let answered = match m.in_reply_to.as_deref() {
                    Some(id) => sync_state::sent(self.tx, id, link.account_id)?,
                    None => false,
                };
                if !answered {
                    return Err(reject("it does not answer a request this satellite sent"));
                }
                if m.sequence <= link.last_response_sequence {
                    return Err(reject(format!(
                        "out of order: response sequence {} is not newer than {} already applied",
                        m.sequence, link.last_response_sequence
                    )));
                }
                Plan::SyncResponse(link)
            }
            (ServerRole::Upstream, "registration-request") => {
                self.check_to(m, false)?;
                // The registration token inside authenticates the request; the key it
                // introduces is pinned when the token checks out.
                Plan::RegistrationRequest
            }
            (ServerRole::Upstream, "sync-request") => {
                let sat = sync_state::satellite(self.tx, &m.from.authority_id, &m.account)?
                    .ok_or_else(|| {
                        reject(format!(
                            "foreign satellite: authority {} account '{}' is not registered here",
                            m.from.authority_id, m.account
                        ))
                    })?;
                self.check_to(m, true)?;
                if m.sequence <= sat.last_sequence {
                    return Err(reject(format!(
                        "out of order: sequence {} is not newer than {} already applied",
                        m.sequence, sat.last_sequence
                    )));
                }
                Plan::SyncRequest(sat)
            }
            (role, kind) => {
                return Err(reject(format!(
                    "wrong kind: a {} does not import {kind} bundles",
                    role.as_str()
                )))
            }
        };
        self.plan = Some(plan);
        Ok(self.key)
    }

    fn record(&mut self, file: &str, value: Value) -> Result<(), SyncError> {
        *self.counts.entry(file.to_string()).or_default() += 1;
        let upstream_request = matches!(self.plan, Some(Plan::SyncRequest(_)));
        match file {
            "registration" => self.registration = parse(file, value)?,
            "acks" => self.acks.push(parse::<records::Ack>(file, value)?.sequence),
            super::ledger_sync::FILE => match &self.plan {
                Some(Plan::SyncRequest(sat)) => {
                    super::ledger_sync::receive(self.tx, sat, &self.key, value, self.now)?
                }
                _ => return Err(reject("unexpected data file data/ledger.jsonl")),
            },
            "virtual_accounts" if !upstream_request => {
                let va: records::VirtualAccount = parse(file, value)?;
                let name = names::name("name", &va.name)
                    .map_err(|e| reject(format!("virtual account: {e}")))?;
                self.catalog.virtual_accounts.push((name, va.description));
            }
            "licenses" if !upstream_request => {
                let l: records::License = parse(file, value)?;
                let spec = LicenseSpec::validate(RawLicense {
                    tag: &l.tag,
                    name: &l.name,
                    license_type: &l.license_type,
                    quantity: l.quantity,
                    start: &l.start,
                    end: l.end.as_deref(),
                    export_controlled: l.export_controlled,
                    substitutes: &l.substitutes,
                    rank: l.rank,
                })
                .map_err(|e| reject(format!("license {}: {e}", l.tag)))?;
                self.catalog.licenses.push((l.virtual_account, spec));
            }
            "reserved" if !upstream_request => {
                let r: records::Reserved = parse(file, value)?;
                crate::domain::license::tag("tag", &r.tag)
                    .map_err(|e| reject(format!("reserved: {e}")))?;
                if !(0..=crate::domain::license::QUANTITY_MAX).contains(&r.held) {
                    return Err(reject(format!("reserved {}: count out of range", r.tag)));
                }
                self.catalog
                    .reserved
                    .push((r.virtual_account, r.tag, r.held));
            }
            "instances" if upstream_request => {
                let i: records::Instance = parse(file, value)?;
                let udi = check_udi(&i.udi.pid, &i.udi.sn, i.udi.uuid.as_deref())
                    .map_err(|e| reject(format!("instance {}: {e}", i.id)))?;
                let va = names::name("virtual_account", &i.virtual_account)
                    .map_err(|e| reject(format!("instance {}: {e}", i.id)))?;
                let snapshot = self
                    .snapshot
                    .as_mut()
                    .ok_or_else(|| reject("instances before the manifest"))?;
                snapshot.instance(&InstanceExport {
                    id: i.id,
                    virtual_account: va,
                    pid: udi.pid,
                    sn: udi.sn,
                    uuid: udi.uuid,
                    product_name: i.product.name,
                    product_version: i.product.version,
                    hostname: i.hostname,
                    export_controlled: i.export_controlled,
                    registered_at: records::parse_time("registered_at", &i.registered_at)?,
                    last_contact: records::parse_time("last_contact", &i.last_contact)?,
                    status: i.status,
                })?;
            }
            "usage" if upstream_request => {
                let u: records::Usage = parse(file, value)?;
                crate::domain::license::tag("tag", &u.tag)
                    .map_err(|e| reject(format!("usage: {e}")))?;
                if !(0..=crate::domain::license::QUANTITY_MAX).contains(&u.count) {
                    return Err(reject(format!(
                        "usage of {}: count out of range",
                        u.instance_id
                    )));
                }
                let snapshot = self
                    .snapshot
                    .as_mut()
                    .ok_or_else(|| reject("usage before the manifest"))?;
                if !snapshot.usage(&u.instance_id, &u.tag, u.count)? {
                    return Err(reject(format!(
                        "usage names instance {} that the bundle does not list before it",
                        u.instance_id
                    )));
                }
            }
            "export_keys" if upstream_request => {
                let k: records::ExportKey = parse(file, value)?;
                crate::domain::license::tag("tag", &k.tag)
                    .map_err(|e| reject(format!("export key: {e}")))?;
                let state: crate::domain::export_key::ExportKeyState = k
                    .state
                    .parse()
                    .map_err(|e| reject(format!("export key of {}: {e}", k.instance_id)))?;
                let snapshot = self
                    .snapshot
                    .as_mut()
                    .ok_or_else(|| reject("export keys before the manifest"))?;
                // Only granted keys count; other states are history the satellite keeps.
                if state == crate::domain::export_key::ExportKeyState::Granted
                    && !snapshot.export_key(&k.instance_id, &k.tag)?
                {
                    return Err(reject(format!(
                        "export key names instance {} that the bundle does not list before it",
                        k.instance_id
                    )));
                }
            }
            "reservations" if upstream_request => {
                let r: records::Reservation = parse(file, value)?;
                let va = names::name("virtual_account", &r.virtual_account)
                    .map_err(|e| reject(format!("reservation {}: {e}", r.id)))?;
                let snapshot = self
                    .snapshot
                    .as_mut()
                    .ok_or_else(|| reject("reservations before the manifest"))?;
                for l in &r.licenses {
                    crate::domain::license::tag("tag", &l.tag)
                        .map_err(|e| reject(format!("reservation {}: {e}", r.id)))?;
                    if !(0..=crate::domain::license::QUANTITY_MAX).contains(&l.held) {
                        return Err(reject(format!("reservation {}: count out of range", r.id)));
                    }
                    snapshot.reservation(&va, &l.tag, l.held)?;
                }
            }
            other => {
                return Err(reject(format!(
                    "unexpected data file data/{other}.jsonl for this kind of bundle"
                )))
            }
        }
        Ok(())
    }
}

/// Reads the manifest only (to route and to describe a file), verifying nothing.
pub fn peek(path: &Path) -> Option<Manifest> {
    BundleSource::File(path.to_owned()).peek()
}

/// The second pass, inside one transaction: seen before, order, then every record.
fn apply(
    ctx: &SyncContext,
    src: &BundleSource,
    verified: &Verified,
    progress: &dyn Fn(u64),
) -> Result<Outcome, SyncError> {
    let now = ctx.clock.unix();
    let started = std::time::Instant::now();
    ctx.store.write_blocking(|tx| {
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
        finish(imp, &manifest, started)
    })
}

/// Starts the upstream's snapshot as soon as the plan is known (records follow).
struct PrepareSnapshot<'b, 'a>(&'b mut Importer<'a>);

impl BundleSink for PrepareSnapshot<'_, '_> {
    fn trust(&mut self, m: &Manifest, signer: &VerifyingKey) -> Result<VerifyingKey, SyncError> {
        let key = self.0.trust(m, signer)?;
        if let Some(Plan::SyncRequest(sat)) = &self.0.plan {
            self.0.snapshot = Some(Snapshot::begin(
                self.0.tx,
                sat.id,
                sat.account_id,
                self.0.now,
            )?);
        }
        Ok(key)
    }

    fn record(&mut self, file: &str, record: Value) -> Result<(), SyncError> {
        self.0.record(file, record)
    }
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
    imp: Importer<'_>,
    m: &Manifest,
    started: std::time::Instant,
) -> Result<Outcome, SyncError> {
    let Importer {
        ctx,
        tx,
        now,
        key,
        plan,
        catalog,
        registration,
        acks,
        snapshot,
        counts,
    } = imp;
    let mut answer = None;
    let account_id = match plan.ok_or_else(|| reject("no plan"))? {
        Plan::RegistrationResponse(link) => {
            synced::apply_catalog(tx, link.account_id, &link.account, &catalog, now)?;
            let expires = registration
                .registration_expires_at
                .as_deref()
                .map(|t| records::parse_time("registration_expires_at", t))
                .transpose()?;
            let key = m
                .from
                .public_key
                .as_deref()
                .and_then(crate::crypto::agent_sig::decode_public_key)
                .ok_or_else(|| reject("the manifest carries no valid public key"))?;
            tx.execute(
                "UPDATE upstream_links SET state = 'registered', pending_request_id = NULL, upstream_authority_id = ?2,
                   upstream_public_key = ?3, upstream_account = ?4, registration_expires_at = ?5,
                   last_response_sequence = ?6, last_sync = ?7 WHERE account_id = ?1",
                params![link.account_id, m.from.authority_id, key.as_bytes().as_slice(), registration.upstream_account, expires, m.sequence, now],
            )?;
            link.account_id
        }
        Plan::SyncResponse(link) => {
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
            synced::apply_catalog(tx, link.account_id, &link.account, &catalog, now)?;
            let acked = acks
                .iter()
                .copied()
                .max()
                .unwrap_or(link.last_acked_sequence)
                .max(link.last_acked_sequence);
            let expires = registration
                .registration_expires_at
                .as_deref()
                .map(|t| records::parse_time("registration_expires_at", t))
                .transpose()?
                .or(link.registration_expires_at);
            tx.execute(
                "UPDATE upstream_links SET last_acked_sequence = ?2, last_response_sequence = ?3, last_sync = ?4,
                   registration_expires_at = ?5 WHERE account_id = ?1",
                params![link.account_id, acked, m.sequence, now, expires],
            )?;
            link.account_id
        }
        Plan::RegistrationRequest => {
            let token = registration
                .token
                .ok_or_else(|| reject("the request carries no registration token"))?;
            let account_id = sync_state::redeem_satellite_token(tx, &token, now)?
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
            answer = Some(outbound::response(ctx, tx, m, &sat, None)?);
            account_id
        }
        Plan::SyncRequest(sat) => {
            super::ledger_sync::on_request(
                ctx,
                tx,
                &sat,
                counts.get("ledger").copied().unwrap_or(0),
            )?;
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
            let snapshot = snapshot.ok_or_else(|| reject("no snapshot"))?;
            snapshot.finish(m.sequence)?;
            let sat =
                sync_state::satellite(tx, &sat.authority_id, &sat.local_account)?.unwrap_or(sat);
            answer = Some(outbound::response(ctx, tx, m, &sat, Some(m.sequence))?);
            sat.account_id
        }
    };
    let summary = json!(counts);
    sync_state::record(
        tx,
        &History {
            at: now,
            account_id: Some(account_id),
            account: Some(m.account.clone()),
            bundle_id: m.bundle_id.clone(),
            kind: m.kind.clone(),
            direction: "in",
            sequence: m.sequence,
            records: m.records() as i64,
            result: "applied".into(),
            duration_ms: started.elapsed().as_millis() as i64,
            detail: summary.to_string(),
            ..Default::default()
        },
    )?;
    Ok(Outcome {
        result: "applied",
        kind: m.kind.clone(),
        bundle_id: m.bundle_id.clone(),
        account: m.account.clone(),
        summary,
        answer,
    })
}

/// The upstream answers a repeated request again (from current state, nothing applied),
/// so a response lost on the way back can be recovered by resending the request.
fn answer_again(ctx: &SyncContext, m: &Manifest) -> Result<Option<Written>, SyncError> {
    if ctx.role != ServerRole::Upstream || !m.kind.ends_with("-request") {
        return Ok(None);
    }
    ctx.store.write_blocking(|tx| {
        let Some(sat) = sync_state::satellite(tx, &m.from.authority_id, &m.account)? else {
            return Ok(None);
        };
        let ack = (m.kind == "sync-request").then_some(m.sequence);
        outbound::response(ctx, tx, m, &sat, ack).map(Some)
    })
}

/// Keeps a copy of a bundle in `dir` (archive/ or rejected/): a file is moved or copied
/// as its source says; bytes held in memory are written under the bundle's kind and id.
fn keep(
    src: &BundleSource,
    origin: Origin,
    dir: &Path,
    kind: &str,
    bundle_id: &str,
) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let to = match (src, origin) {
        (BundleSource::File(from), Origin::File(source)) => {
            let name = from
                .file_name()?
                .to_string_lossy()
                .trim_start_matches('.')
                .to_string();
            let to = dir.join(name);
            let done = match source {
                Source::Inbox => {
                    std::fs::rename(from, &to).or_else(|_| std::fs::copy(from, &to).map(|_| ()))
                }
                Source::Path => std::fs::copy(from, &to).map(|_| ()),
            };
            done.ok().map(|_| to)
        }
        (BundleSource::Memory(bytes), _) => {
            let to = dir.join(format!(
                "{}-{}.tar.gz",
                storage::safe_name(kind),
                storage::safe_name(bundle_id)
            ));
            std::fs::write(&to, &bytes[..]).ok().map(|_| to)
        }
        (BundleSource::File(_), _) => None,
    }?;
    // The age that caps go by is when the file was kept here, not when it was written.
    storage::touch(&to);
    Some(to)
}

fn log_rejection(ctx: &SyncContext, m: Option<&Manifest>, reason: &str) {
    let now = ctx.clock.unix();
    let h = History {
        at: now,
        account: m.map(|m| m.account.clone()),
        bundle_id: m.map(|m| m.bundle_id.clone()).unwrap_or_else(|| "-".into()),
        kind: m
            .map(|m| m.kind.clone())
            .unwrap_or_else(|| "unknown".into()),
        direction: "in",
        sequence: m.map_or(0, |m| m.sequence),
        result: "rejected".into(),
        detail: reason.to_string(),
        ..Default::default()
    };
    if let Err(e) = ctx.store.write_blocking(|tx| sync_state::record(tx, &h)) {
        tracing::error!(error = %e, "cannot record a rejected bundle");
    }
}

/// Imports a bundle file: verifies, applies, archives (or moves it to rejected/ with a
/// `.reason` file beside it). An error that is not the sender's fault (the database, the
/// disk) leaves the file where it is, to be tried again.
pub fn import_file(
    ctx: &SyncContext,
    path: &Path,
    source: Source,
    progress: &dyn Fn(u64),
) -> Result<Outcome, SyncError> {
    import(
        ctx,
        &BundleSource::File(path.to_owned()),
        Origin::File(source),
        progress,
    )
}

/// Imports an admin's upload saved under a hidden name in inbox/. Whatever the outcome the
/// upload is gone from inbox/ afterwards: archived, in rejected/ within its caps, or
/// (after an error that is not the sender's fault) deleted, for the admin to send again.
pub fn import_upload(ctx: &SyncContext, path: &Path) -> Result<Outcome, SyncError> {
    let result = import_file(ctx, path, Source::Inbox, &|_| {});
    if path.exists() {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Imports the upstream's answer to our own exchange, held in memory.
pub fn import_fetched(ctx: &SyncContext, body: std::sync::Arc<[u8]>) -> Result<Outcome, SyncError> {
    import(ctx, &BundleSource::Memory(body), Origin::Fetched, &|_| {})
}

/// Imports an unauthenticated peer's body from `/sync/v1/exchange`. Until it verifies
/// against a pinned key (or its registration token checks out) nothing of it is written:
/// no file, no history row.
pub fn import_exchange(
    ctx: &SyncContext,
    body: std::sync::Arc<[u8]>,
) -> Result<Outcome, SyncError> {
    import(ctx, &BundleSource::Memory(body), Origin::Exchange, &|_| {})
}

fn import(
    ctx: &SyncContext,
    src: &BundleSource,
    origin: Origin,
    progress: &dyn Fn(u64),
) -> Result<Outcome, SyncError> {
    let (verified, trust) = verify_sender(ctx, src);
    let result = match verified {
        Ok(v) => match apply(ctx, src, &v, progress) {
            Err(SyncError::Duplicate(id)) => duplicate(ctx, &v.manifest, id),
            other => other,
        }
        .map_err(|e| (e, Some(v.manifest))),
        Err(e) => Err((e, None)),
    };
    match result {
        Ok(outcome) => {
            // Files leave inbox/ either way; bytes in memory are archived only when applied.
            if matches!(origin, Origin::File(_)) || outcome.result == "applied" {
                keep(
                    src,
                    origin,
                    &ctx.dir("archive"),
                    &outcome.kind,
                    &outcome.bundle_id,
                );
            }
            tracing::info!(kind = %outcome.kind, bundle = %outcome.bundle_id, result = outcome.result, "bundle imported");
            Ok(outcome)
        }
        Err((SyncError::Rejected(reason), verified)) => {
            rejected(ctx, src, origin, trust, verified.as_ref(), &reason);
            tracing::warn!(%reason, "bundle rejected");
            Err(SyncError::Rejected(reason))
        }
        // Not the sender's fault (database, disk): no verdict, the file stays for a retry.
        Err((other, _)) => Err(other),
    }
}

fn duplicate(ctx: &SyncContext, m: &Manifest, id: String) -> Result<Outcome, SyncError> {
    Ok(Outcome {
        result: "duplicate",
        kind: m.kind.clone(),
        bundle_id: id,
        account: m.account.clone(),
        summary: json!({ "message": "this bundle was imported before; nothing changed" }),
        answer: answer_again(ctx, m)?,
    })
}

/// What is kept of a rejected bundle. An exchange body is never kept, and its rejection
/// is written to history only when the bundle verified against a key pinned for its
/// sender (so no stranger can write rows with text of its choosing). Files (and the
/// upstream's answers to us) go to rejected/ with their reason, within the caps.
fn rejected(
    ctx: &SyncContext,
    src: &BundleSource,
    origin: Origin,
    trust: Option<Trust>,
    verified: Option<&Manifest>,
    reason: &str,
) {
    if origin == Origin::Exchange {
        if let (Some(m), Some(Trust::Pinned)) = (verified, trust) {
            log_rejection(ctx, Some(m), reason);
        }
        return;
    }
    let peeked;
    let m = match verified {
        Some(m) => Some(m),
        None => {
            peeked = src.peek();
            peeked.as_ref()
        }
    };
    log_rejection(ctx, m, reason);
    let dir = ctx.dir("rejected");
    let size = match src {
        BundleSource::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        BundleSource::Memory(b) => b.len() as u64,
    };
    let kept = if size <= ctx.limits.rejected_max_bytes && ctx.limits.rejected_max_files > 0 {
        keep(
            src,
            origin,
            &dir,
            m.map_or("unknown", |m| m.kind.as_str()),
            m.map_or("-", |m| m.bundle_id.as_str()),
        )
    } else {
        // Too large to keep at all: an inbox file is dropped, only its reason stays.
        if let (BundleSource::File(p), Origin::File(Source::Inbox)) = (src, origin) {
            let _ = std::fs::remove_file(p);
        }
        None
    };
    let name = match (&kept, src) {
        (Some(p), _) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
        (None, BundleSource::File(p)) => p
            .file_name()
            .map(|n| n.to_string_lossy().trim_start_matches('.').to_string()),
        (None, BundleSource::Memory(_)) => None,
    }
    .unwrap_or_else(|| format!("{}.tar.gz", uuid::Uuid::new_v4()));
    let note = if kept.is_some() {
        format!("{reason}\n")
    } else {
        format!(
            "{reason}\n(the bundle itself was not kept: {size} bytes is over rejected_max_bytes)\n"
        )
    };
    if let Err(e) = storage::keep_rejected(&dir, &name, &note, &ctx.limits) {
        tracing::error!(error = %e, "cannot record why a bundle was rejected");
    }
}

/// Verifies a bundle without applying it: the signature against the pinned key when this
/// server knows the sender, else against the key the bundle carries.
pub fn verify_file(ctx: &SyncContext, path: &Path) -> Result<(Manifest, bool), SyncError> {
    struct Verifier<'a> {
        ctx: &'a SyncContext,
        pinned: bool,
    }
    impl BundleSink for Verifier<'_> {
        fn trust(
            &mut self,
            m: &Manifest,
            signer: &VerifyingKey,
        ) -> Result<VerifyingKey, SyncError> {
            let pinned: Option<Vec<u8>> = self.ctx.store.read_blocking(|c| {
                Ok(match self.ctx.role {
                    ServerRole::Satellite => sync_state::link_by_account(c, &m.account)?
                        .filter(|l| {
                            l.upstream_authority_id.as_deref() == Some(m.from.authority_id.as_str())
                        })
                        .and_then(|l| l.upstream_public_key),
                    ServerRole::Upstream => {
                        sync_state::satellite(c, &m.from.authority_id, &m.account)?
                            .map(|s| s.public_key)
                    }
                })
            })?;
            match pinned {
                Some(bytes) => {
                    self.pinned = true;
                    rotated(self.ctx, &bytes, m, signer)
                }
                None => Ok(*signer),
            }
        }
        fn record(&mut self, _: &str, _: Value) -> Result<(), SyncError> {
            Ok(())
        }
        fn wants_records(&self) -> bool {
            false
        }
    }
    let mut v = Verifier { ctx, pinned: false };
    let manifest = bundle::read(&BundleSource::File(path.to_owned()), &mut v, |_| {})?;
    Ok((manifest, v.pinned))
}
