//! The import preview's report: what importing a bundle would change in one account,
//! per virtual account (licenses, instances, usage, resulting compliance, what turns
//! short). Built by comparing the account's picture before and after the import ran
//! under a savepoint (see `sync::import::preview`); serde gives the JSON of
//! `POST /api/v1/bundles/preview` and `bundle verify --json`, `Display` the text.

use crate::domain::compliance::PoolStatus;
use crate::store::licenses::License;
use crate::store::preview::{AccountPicture, VaPicture};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What importing would do with the bundle as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviewResult {
    /// It would be applied, with the changes listed.
    WouldApply,
    /// It was imported before: importing it again changes nothing.
    Duplicate,
}

impl PreviewResult {
    pub fn as_str(self) -> &'static str {
        match self {
            PreviewResult::WouldApply => "would_apply",
            PreviewResult::Duplicate => "duplicate",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Preview {
    pub result: PreviewResult,
    pub kind: String,
    pub bundle_id: String,
    pub sequence: i64,
    /// The account the bundle names (the sender's name for it).
    pub account: String,
    /// The account here that it changes, when it would apply.
    pub changes_account: Option<String>,
    pub virtual_accounts: Vec<VaChanges>,
    /// `VA / tag` of every pool that the import would turn short.
    pub turns_short: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LicenseView {
    pub tag: String,
    pub quantity: i64,
    pub start: String,
    pub end: Option<String>,
}

/// A value before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change<T> {
    pub old: T,
    pub new: T,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LicenseChange {
    pub tag: String,
    pub quantity: Change<i64>,
    pub start: Change<String>,
    pub end: Change<Option<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstanceMove {
    pub id: String,
    pub from_virtual_account: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageDelta {
    pub tag: String,
    pub before: i64,
    pub after: i64,
    pub delta: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PoolAfter {
    pub tag: String,
    pub in_use: i64,
    pub available: i64,
    pub status: &'static str,
    /// The pool's status before, when it existed.
    pub status_before: Option<&'static str>,
    /// Short after the import and not short before.
    pub turns_short: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VaChanges {
    pub name: String,
    /// The import creates this virtual account.
    pub created: bool,
    pub licenses_added: Vec<LicenseView>,
    pub licenses_changed: Vec<LicenseChange>,
    pub licenses_removed: Vec<LicenseView>,
    pub instances_new: Vec<String>,
    /// Instances that end up in this VA, coming from another.
    pub instances_moved: Vec<InstanceMove>,
    pub instances_gone: Vec<String>,
    pub usage: Vec<UsageDelta>,
    /// Every pool of the VA as it would be after the import.
    pub compliance: Vec<PoolAfter>,
}

impl VaChanges {
    /// Whether anything in this VA changes (its compliance listing aside).
    pub fn changes_anything(&self) -> bool {
        self.created
            || !self.licenses_added.is_empty()
            || !self.licenses_changed.is_empty()
            || !self.licenses_removed.is_empty()
            || !self.instances_new.is_empty()
            || !self.instances_moved.is_empty()
            || !self.instances_gone.is_empty()
            || !self.usage.is_empty()
            || self
                .compliance
                .iter()
                .any(|p| p.status_before != Some(p.status))
    }
}

fn view(l: &License) -> LicenseView {
    LicenseView {
        tag: l.spec.tag.clone(),
        quantity: l.spec.quantity,
        start: l.spec.start.to_string(),
        end: l.spec.end.map(|d| d.to_string()),
    }
}

fn is_short(status: PoolStatus) -> bool {
    status == PoolStatus::Insufficient
}

/// Compares one VA's pictures (an empty `before` for a VA the import creates).
fn va_changes(
    name: &str,
    before: Option<&VaPicture>,
    after: &VaPicture,
    instances: &InstanceChanges,
) -> VaChanges {
    let empty = VaPicture::default();
    let b = before.unwrap_or(&empty);
    let old: BTreeMap<&str, &License> = b
        .licenses
        .iter()
        .map(|l| (l.spec.tag.as_str(), l))
        .collect();
    let new: BTreeMap<&str, &License> = after
        .licenses
        .iter()
        .map(|l| (l.spec.tag.as_str(), l))
        .collect();
    let mut changes = VaChanges {
        name: name.to_string(),
        created: before.is_none(),
        licenses_added: vec![],
        licenses_changed: vec![],
        licenses_removed: vec![],
        instances_new: instances.new.get(name).cloned().unwrap_or_default(),
        instances_moved: instances.moved.get(name).cloned().unwrap_or_default(),
        instances_gone: instances.gone.get(name).cloned().unwrap_or_default(),
        usage: vec![],
        compliance: vec![],
    };
    for (tag, l) in &new {
        match old.get(tag) {
            None => changes.licenses_added.push(view(l)),
            Some(o) => {
                let (o, n) = (view(o), view(l));
                if o != n {
                    changes.licenses_changed.push(LicenseChange {
                        tag: n.tag,
                        quantity: Change {
                            old: o.quantity,
                            new: n.quantity,
                        },
                        start: Change {
                            old: o.start,
                            new: n.start,
                        },
                        end: Change {
                            old: o.end,
                            new: n.end,
                        },
                    });
                }
            }
        }
    }
    for (tag, l) in &old {
        if !new.contains_key(tag) {
            changes.licenses_removed.push(view(l));
        }
    }
    let tags: BTreeSet<&String> = b.demand.keys().chain(after.demand.keys()).collect();
    for tag in tags {
        let was = b.demand.get(tag).map_or(0, |d| d.total);
        let is = after.demand.get(tag).map_or(0, |d| d.total);
        if was != is {
            changes.usage.push(UsageDelta {
                tag: tag.clone(),
                before: was,
                after: is,
                delta: is - was,
            });
        }
    }
    for (tag, pool) in &after.evaluation.pools {
        let before = b.evaluation.pools.get(tag).map(|p| p.status);
        changes.compliance.push(PoolAfter {
            tag: tag.clone(),
            in_use: pool.in_use,
            available: pool.available,
            status: pool.status.as_str(),
            status_before: before.map(PoolStatus::as_str),
            turns_short: is_short(pool.status) && !before.is_some_and(is_short),
        });
    }
    changes
}

/// Instances new, moved and gone, keyed by the VA they are listed under (new and moved:
/// where they end up; gone: where they were).
#[derive(Default)]
struct InstanceChanges {
    new: BTreeMap<String, Vec<String>>,
    moved: BTreeMap<String, Vec<InstanceMove>>,
    gone: BTreeMap<String, Vec<String>>,
}

fn instance_changes(before: &AccountPicture, after: &AccountPicture) -> InstanceChanges {
    let mut c = InstanceChanges::default();
    for (id, va) in &after.instances {
        match before.instances.get(id) {
            None => c.new.entry(va.clone()).or_default().push(id.clone()),
            Some(old) if old != va => c.moved.entry(va.clone()).or_default().push(InstanceMove {
                id: id.clone(),
                from_virtual_account: old.clone(),
            }),
            Some(_) => {}
        }
    }
    for (id, va) in &before.instances {
        if !after.instances.contains_key(id) {
            c.gone.entry(va.clone()).or_default().push(id.clone());
        }
    }
    c
}

/// The per-VA changes between two pictures of one account.
pub fn compare(before: &AccountPicture, after: &AccountPicture) -> Vec<VaChanges> {
    let instances = instance_changes(before, after);
    after
        .vas
        .iter()
        .map(|(name, pic)| va_changes(name, before.vas.get(name), pic, &instances))
        .collect()
}

/// Every pool that turns short, as `VA / tag`.
pub fn turns_short(vas: &[VaChanges]) -> Vec<String> {
    vas.iter()
        .flat_map(|va| {
            va.compliance
                .iter()
                .filter(|p| p.turns_short)
                .map(move |p| format!("{} / {}", va.name, p.tag))
        })
        .collect()
}

fn dates(start: &str, end: &Option<String>) -> String {
    match end {
        Some(end) => format!("{start}..{end}"),
        None => format!("{start}.."),
    }
}

impl fmt::Display for Preview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Preview of {} {} (sequence {}) for account '{}':",
            self.kind, self.bundle_id, self.sequence, self.account
        )?;
        if self.result == PreviewResult::Duplicate {
            return writeln!(f, "  imported before: importing it again changes nothing.");
        }
        if let Some(account) = &self.changes_account {
            writeln!(f, "  changes account '{account}'")?;
        }
        let changed: Vec<&VaChanges> = self
            .virtual_accounts
            .iter()
            .filter(|v| v.changes_anything())
            .collect();
        if changed.is_empty() {
            writeln!(f, "  no license, instance or usage changes.")?;
        }
        for va in changed {
            writeln!(
                f,
                "  virtual account {}{}",
                va.name,
                if va.created { " (new)" } else { "" }
            )?;
            for l in &va.licenses_added {
                writeln!(
                    f,
                    "    + license {} quantity {} {}",
                    l.tag,
                    l.quantity,
                    dates(&l.start, &l.end)
                )?;
            }
            for l in &va.licenses_changed {
                writeln!(
                    f,
                    "    ~ license {} quantity {} -> {}, {} -> {}",
                    l.tag,
                    l.quantity.old,
                    l.quantity.new,
                    dates(&l.start.old, &l.end.old),
                    dates(&l.start.new, &l.end.new)
                )?;
            }
            for l in &va.licenses_removed {
                writeln!(f, "    - license {} quantity {}", l.tag, l.quantity)?;
            }
            for id in &va.instances_new {
                writeln!(f, "    + instance {id}")?;
            }
            for m in &va.instances_moved {
                writeln!(f, "    > instance {} from {}", m.id, m.from_virtual_account)?;
            }
            for id in &va.instances_gone {
                writeln!(f, "    - instance {id}")?;
            }
            for u in &va.usage {
                writeln!(
                    f,
                    "    usage {} {} -> {} ({:+})",
                    u.tag, u.before, u.after, u.delta
                )?;
            }
            for p in &va.compliance {
                writeln!(
                    f,
                    "    pool {} in use {} available {} {}{}",
                    p.tag,
                    p.in_use,
                    p.available,
                    p.status,
                    if p.turns_short {
                        "  <- turns short"
                    } else {
                        ""
                    }
                )?;
            }
        }
        if self.turns_short.is_empty() {
            writeln!(f, "  no pool turns short.")
        } else {
            writeln!(f, "  turns short: {}", self.turns_short.join(", "))
        }
    }
}
