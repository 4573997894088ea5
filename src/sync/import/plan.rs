//! The second pass's decisions and parsing: once a bundle verified whole, whether it is
//! new, in order and an answer to something (the plan), and each record parsed into what
//! apply.rs writes. One method per record kind, so a new kind has one obvious place.

use super::reject;
use super::verify::wrong_kind;
use crate::config::ServerRole;
use crate::domain::instance::check_udi;
use crate::domain::license::{LicenseSpec, RawLicense};
use crate::domain::names;
use crate::domain::sync::{BundleKind, LinkState};
use crate::store::sync_state::{self, Link, Satellite};
use crate::store::synced::{Catalog, InstanceExport, Snapshot};
use crate::sync::bundle::{BundleSink, Manifest};
use crate::sync::context::SyncContext;
use crate::sync::records::{self, parse, Line};
use crate::sync::SyncError;
use ed25519_dalek::VerifyingKey;
use rusqlite::Connection;
use std::collections::BTreeMap;

/// What the bundle is to this server, decided once it verified.
pub(super) enum Plan {
    RegistrationResponse(Link),
    SyncResponse(Link),
    RegistrationRequest,
    SyncRequest(Satellite),
}

/// One bundle being read in the second pass: the plan, and what its records said.
pub(super) struct Importer<'a> {
    pub ctx: &'a SyncContext,
    pub tx: &'a Connection,
    pub now: i64,
    /// The key the first pass verified the bundle with; the second pass uses it again.
    pub key: VerifyingKey,
    pub plan: Option<Plan>,
    pub catalog: Catalog,
    pub registration: records::Registration,
    pub acks: Vec<i64>,
    pub snapshot: Option<Snapshot<'a>>,
    pub counts: BTreeMap<String, u64>,
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
}

impl BundleSink for Importer<'_> {
    /// Runs only after the first pass verified the bundle whole: now it may be a
    /// duplicate, out of order, or not an answer to anything.
    fn trust(&mut self, m: &Manifest, _signer: &VerifyingKey) -> Result<VerifyingKey, SyncError> {
        if sync_state::applied_before(self.tx, &m.bundle_id)? {
            return Err(SyncError::Duplicate(m.bundle_id.clone()));
        }
        let plan = match (self.ctx.role, m.bundle_kind()) {
            (ServerRole::Satellite, Some(BundleKind::RegistrationResponse)) => {
                let link = sync_state::link_by_account(self.tx, &m.account)?.ok_or_else(|| {
                    reject(format!(
                        "foreign account: there is no account '{}' here",
                        m.account
                    ))
                })?;
                if link.state != LinkState::Pending
                    || link.pending_request_id.as_deref() != m.in_reply_to.as_deref()
                {
                    return Err(reject(
                        "it does not answer this account's pending registration request",
                    ));
                }
                self.check_to(m, true)?;
                Plan::RegistrationResponse(link)
            }
            (ServerRole::Satellite, Some(BundleKind::SyncResponse)) => {
                let link = sync_state::link_by_account(self.tx, &m.account)?
                    .filter(|l| l.state == LinkState::Registered)
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
            (ServerRole::Upstream, Some(BundleKind::RegistrationRequest)) => {
                self.check_to(m, false)?;
                // The registration token inside authenticates the request; the key it
                // introduces is pinned when the token checks out.
                Plan::RegistrationRequest
            }
            (ServerRole::Upstream, Some(BundleKind::SyncRequest)) => {
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
            (role, _) => return Err(wrong_kind(role, m)),
        };
        self.plan = Some(plan);
        Ok(self.key)
    }

    fn record(&mut self, file: &str, line: Line<'_>) -> Result<(), SyncError> {
        // No key allocated per record: the files are few, the records many.
        match self.counts.get_mut(file) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(file.to_string(), 1);
            }
        }
        let upstream_request = matches!(self.plan, Some(Plan::SyncRequest(_)));
        match file {
            "registration" => {
                self.registration = parse(file, line)?;
                Ok(())
            }
            "acks" => {
                self.acks.push(parse::<records::Ack>(file, line)?.sequence);
                Ok(())
            }
            "virtual_accounts" if !upstream_request => self.virtual_account(line),
            "licenses" if !upstream_request => self.license(line),
            "reserved" if !upstream_request => self.reserved(line),
            "demand_elsewhere" if !upstream_request => {
                crate::sync::demand::read(parse(file, line)?, &mut self.catalog)
            }
            crate::sync::ledger_sync::FILE => match &self.plan {
                Some(Plan::SyncRequest(sat)) => {
                    crate::sync::ledger_sync::receive(self.tx, sat, &self.key, line, self.now)
                }
                _ => Err(reject("unexpected data file data/ledger.jsonl")),
            },
            "instances" if upstream_request => self.instance(line),
            "usage" if upstream_request => self.usage(line),
            "export_keys" if upstream_request => self.export_key(line),
            "reservations" if upstream_request => self.reservation(line),
            other => Err(reject(format!(
                "unexpected data file data/{other}.jsonl for this kind of bundle"
            ))),
        }
    }
}

/// One method per record kind: parse at the edge, then hand to the catalog (satellite)
/// or the snapshot (upstream).
impl Importer<'_> {
    fn virtual_account(&mut self, line: Line<'_>) -> Result<(), SyncError> {
        let file = "virtual_accounts";
        let va: records::VirtualAccount = parse(file, line)?;
        let name =
            names::name("name", &va.name).map_err(|e| reject(format!("virtual account: {e}")))?;
        self.catalog.virtual_accounts.push((name, va.description));
        Ok(())
    }

    fn license(&mut self, line: Line<'_>) -> Result<(), SyncError> {
        let file = "licenses";
        let l: records::License = parse(file, line)?;
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
        Ok(())
    }

    fn reserved(&mut self, line: Line<'_>) -> Result<(), SyncError> {
        let file = "reserved";
        let r: records::Reserved = parse(file, line)?;
        crate::domain::license::tag("tag", &r.tag).map_err(|e| reject(format!("reserved: {e}")))?;
        if !(0..=crate::domain::license::QUANTITY_MAX).contains(&r.held) {
            return Err(reject(format!("reserved {}: count out of range", r.tag)));
        }
        self.catalog
            .reserved
            .push((r.virtual_account, r.tag, r.held));
        Ok(())
    }

    fn instance(&mut self, line: Line<'_>) -> Result<(), SyncError> {
        let file = "instances";
        let i: records::Instance = parse(file, line)?;
        let udi = check_udi(&i.udi.pid, &i.udi.sn, i.udi.uuid.as_deref())
            .map_err(|e| reject(format!("instance {}: {e}", i.id)))?;
        let va = names::name("virtual_account", &i.virtual_account)
            .map_err(|e| reject(format!("instance {}: {e}", i.id)))?;
        let snapshot = self
            .snapshot
            .as_mut()
            .ok_or_else(|| reject("instances before the manifest"))?;
        let id = i.id.clone();
        let first = snapshot.instance(InstanceExport {
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
        if !first {
            return Err(reject(format!("instance {id} is listed twice")));
        }
        Ok(())
    }

    fn usage(&mut self, line: Line<'_>) -> Result<(), SyncError> {
        let file = "usage";
        let u: records::Usage = parse(file, line)?;
        crate::domain::license::tag("tag", &u.tag).map_err(|e| reject(format!("usage: {e}")))?;
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
        Ok(())
    }

    fn export_key(&mut self, line: Line<'_>) -> Result<(), SyncError> {
        let file = "export_keys";
        let k: records::ExportKey = parse(file, line)?;
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
        Ok(())
    }

    fn reservation(&mut self, line: Line<'_>) -> Result<(), SyncError> {
        let file = "reservations";
        let r: records::Reservation = parse(file, line)?;
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
        Ok(())
    }
}

/// Starts the upstream's snapshot as soon as the plan is known (records follow).
pub(super) struct PrepareSnapshot<'b, 'a>(pub &'b mut Importer<'a>);

impl BundleSink for PrepareSnapshot<'_, '_> {
    fn trust(&mut self, m: &Manifest, signer: &VerifyingKey) -> Result<VerifyingKey, SyncError> {
        let key = self.0.trust(m, signer)?;
        if let Some(Plan::SyncRequest(sat)) = &self.0.plan {
            let mut snapshot = Snapshot::begin(self.0.tx, sat.id, sat.account_id, self.0.now)?;
            snapshot.expect_instances(m.records_in("instances"));
            self.0.snapshot = Some(snapshot);
        }
        Ok(key)
    }

    fn record(&mut self, file: &str, record: Line<'_>) -> Result<(), SyncError> {
        self.0.record(file, record)
    }
}
