//! Importing any bundle: who may send what, in which order, signed by whom. All of a
//! bundle is applied in one transaction or none of it; a bundle seen before is a no-op.

use super::bundle::{self, BundleSink, Manifest};
use super::context::SyncContext;
use super::outbound::{self, Written};
use super::records::{self, parse};
use super::SyncError;
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
    /// In inbox/ (dropped by an operator, or an upload/exchange body saved there): moved.
    Inbox,
    /// A path given on the command line: copied, the original left alone.
    Path,
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

impl BundleSink for Importer<'_> {
    fn trust(&mut self, m: &Manifest, signer: &VerifyingKey) -> Result<VerifyingKey, SyncError> {
        if sync_state::applied_before(self.tx, &m.bundle_id)? {
            return Err(SyncError::Duplicate(m.bundle_id.clone()));
        }
        let announced = m.from.public_key.as_deref();
        let (plan, key) = match (self.ctx.role, m.kind.as_str()) {
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
                // Trust on first use: the response introduces the upstream's key, pinned from now on.
                if announced != Some(public_key_b64(signer).as_str()) {
                    return Err(reject(
                        "signer.pub.pem and the manifest's public key differ",
                    ));
                }
                (Plan::RegistrationResponse(link), *signer)
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
                let answered = m.in_reply_to.as_deref().is_some_and(|id| {
                    sync_state::sent(self.tx, id, link.account_id).unwrap_or(false)
                });
                if !answered {
                    return Err(reject("it does not answer a request this satellite sent"));
                }
                if m.sequence <= link.last_response_sequence {
                    return Err(reject(format!(
                        "out of order: response sequence {} is not newer than {} already applied",
                        m.sequence, link.last_response_sequence
                    )));
                }
                let key = Self::pinned(link.upstream_public_key.as_deref().unwrap_or_default())?;
                (Plan::SyncResponse(link), key)
            }
            (ServerRole::Upstream, "registration-request") => {
                self.check_to(m, false)?;
                if announced != Some(public_key_b64(signer).as_str()) {
                    return Err(reject(
                        "signer.pub.pem and the manifest's public key differ",
                    ));
                }
                // The registration token inside authenticates the request; the key it
                // introduces is pinned when the token checks out.
                (Plan::RegistrationRequest, *signer)
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
                let key = Self::pinned(&sat.public_key)?;
                (Plan::SyncRequest(sat), key)
            }
            (role, kind) => {
                return Err(reject(format!(
                    "wrong kind: a {} does not import {kind} bundles",
                    role.as_str()
                )))
            }
        };
        self.plan = Some(plan);
        Ok(key)
    }

    fn record(&mut self, file: &str, value: Value) -> Result<(), SyncError> {
        *self.counts.entry(file.to_string()).or_default() += 1;
        let upstream_request = matches!(self.plan, Some(Plan::SyncRequest(_)));
        match file {
            "registration" => self.registration = parse(file, value)?,
            "acks" => self.acks.push(parse::<records::Ack>(file, value)?.sequence),
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
                })
                .map_err(|e| reject(format!("license {}: {e}", l.tag)))?;
                self.catalog.licenses.push((l.virtual_account, spec));
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
    let file = std::fs::File::open(path).ok()?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut entry = archive.entries().ok()?.next()?.ok()?;
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, 1 << 20), &mut buf).ok()?;
    serde_json::from_slice(&buf).ok()
}

fn apply(ctx: &SyncContext, path: &Path, progress: &dyn Fn(u64)) -> Result<Outcome, SyncError> {
    let now = ctx.clock.unix();
    let started = std::time::Instant::now();
    ctx.store.write_blocking(|tx| {
        let mut imp = Importer {
            ctx,
            tx,
            now,
            plan: None,
            catalog: Catalog::default(),
            registration: records::Registration::default(),
            acks: vec![],
            snapshot: None,
            counts: BTreeMap::new(),
        };
        let manifest = bundle::read(path, &mut PrepareSnapshot(&mut imp), progress)?;
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

fn finish(
    imp: Importer<'_>,
    m: &Manifest,
    started: std::time::Instant,
) -> Result<Outcome, SyncError> {
    let Importer {
        ctx,
        tx,
        now,
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
            let account_id = sync_state::redeem_satellite_token(tx, &token, now).map_err(reject)?;
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

fn move_or_copy(from: &Path, dir: &Path, source: Source) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
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

fn log_rejection(ctx: &SyncContext, path: &Path, reason: &str) {
    let m = peek(path);
    let now = ctx.clock.unix();
    let h = History {
        at: now,
        account: m.as_ref().map(|m| m.account.clone()),
        bundle_id: m
            .as_ref()
            .map(|m| m.bundle_id.clone())
            .unwrap_or_else(|| "-".into()),
        kind: m
            .as_ref()
            .map(|m| m.kind.clone())
            .unwrap_or_else(|| "unknown".into()),
        direction: "in",
        sequence: m.as_ref().map_or(0, |m| m.sequence),
        result: "rejected".into(),
        detail: reason.to_string(),
        ..Default::default()
    };
    if let Err(e) = ctx.store.write_blocking(|tx| sync_state::record(tx, &h)) {
        tracing::error!(error = %e, "cannot record a rejected bundle");
    }
}

/// Imports a bundle file: verifies, applies, archives (or moves it to rejected/ with a
/// `.reason` file beside it).
pub fn import_file(
    ctx: &SyncContext,
    path: &Path,
    source: Source,
    progress: &dyn Fn(u64),
) -> Result<Outcome, SyncError> {
    match apply(ctx, path, progress) {
        Ok(outcome) => {
            move_or_copy(path, &ctx.dir("archive"), source);
            tracing::info!(kind = %outcome.kind, bundle = %outcome.bundle_id, "bundle applied");
            Ok(outcome)
        }
        Err(SyncError::Duplicate(id)) => {
            let m = peek(path);
            let answer = match &m {
                Some(m) => answer_again(ctx, m)?,
                None => None,
            };
            move_or_copy(path, &ctx.dir("archive"), source);
            Ok(Outcome {
                result: "duplicate",
                kind: m.as_ref().map(|m| m.kind.clone()).unwrap_or_default(),
                bundle_id: id,
                account: m.map(|m| m.account).unwrap_or_default(),
                summary: json!({ "message": "this bundle was imported before; nothing changed" }),
                answer,
            })
        }
        Err(SyncError::Rejected(reason)) => {
            log_rejection(ctx, path, &reason);
            if let Some(to) = move_or_copy(path, &ctx.dir("rejected"), source) {
                let mut reason_path = to.into_os_string();
                reason_path.push(".reason");
                let _ = std::fs::write(PathBuf::from(reason_path), format!("{reason}\n"));
            }
            tracing::warn!(%reason, "bundle rejected");
            Err(SyncError::Rejected(reason))
        }
        Err(other) => Err(other),
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
                    Importer::pinned(&bytes)
                }
                None => Ok(*signer),
            }
        }
        fn record(&mut self, _: &str, _: Value) -> Result<(), SyncError> {
            Ok(())
        }
    }
    let mut v = Verifier { ctx, pinned: false };
    let manifest = bundle::read(path, &mut v, |_| {})?;
    Ok((manifest, v.pinned))
}
