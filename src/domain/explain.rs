//! Compliance in words, for the pages: why each license an instance reports has the status
//! it has (and which license covered it when a substitute did), and how many units of a
//! license went to covering others. Pure: the evaluation comes in, sentences go out.

use super::compliance::{self, EntitlementStatus, Evaluation, Pool};
use std::collections::BTreeMap;

/// One license an instance reports, explained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LicenseReason {
    pub tag: String,
    pub count: i64,
    pub status: EntitlementStatus,
    pub reason: String,
    /// The licenses (by name) that cover this tag's demand beyond its own pool, in draw order.
    pub covered_by: Vec<String>,
}

fn name<'a>(names: &'a BTreeMap<String, String>, tag: &'a str) -> &'a str {
    names.get(tag).map_or(tag, String::as_str)
}

fn joined(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{}, then {last}", init.join(", ")),
    }
}

/// The licenses that lend units to `tag`'s demand, in draw order.
fn lenders(
    pools: &[Pool],
    e: &Evaluation,
    names: &BTreeMap<String, String>,
    tag: &str,
) -> Vec<String> {
    if e.covered_by_substitutes.get(tag).copied().unwrap_or(0) <= 0 {
        return vec![];
    }
    compliance::draw_order(pools, tag)
        .into_iter()
        .filter(|t| e.pools.get(*t).is_some_and(|p| p.lent > 0))
        .map(|t| name(names, t).to_string())
        .collect()
}

/// Why `count` units of `tag` reported by an instance have their status; `names` maps the
/// VA's license tags to their names.
pub fn license_reason(
    pools: &[Pool],
    e: &Evaluation,
    names: &BTreeMap<String, String>,
    tag: &str,
    count: i64,
    instance_export_controlled: bool,
) -> LicenseReason {
    let status = compliance::entitlement_status(pools, e, tag, count, instance_export_controlled);
    let covered_by = lenders(pools, e, names, tag);
    let own = pools.iter().any(|p| p.tag == tag);
    let n = name(names, tag);
    let reason = match status {
        EntitlementStatus::ExportRestricted => format!(
            "Export restricted: {n} is export-controlled, and this instance was registered without an export-controlled token."
        ),
        EntitlementStatus::NotAuthorized => format!(
            "Not authorized: this virtual account has no {tag} license, and no license here covers it."
        ),
        EntitlementStatus::OutOfCompliance => {
            let short = e.shortfall.get(tag).copied().unwrap_or(0);
            let unit = if short == 1 { "license" } else { "licenses" };
            if covered_by.is_empty() {
                format!("Out of compliance: the {n} pool is short by {short} {unit}.")
            } else {
                format!(
                    "Out of compliance: the {n} pool is short by {short} {unit}, even after {} covered what it could.",
                    joined(&covered_by)
                )
            }
        }
        EntitlementStatus::Reserved => format!("Reserved: {n} is held for this device by a reservation."),
        EntitlementStatus::Authorized if count == 0 => "Nothing in use.".to_string(),
        EntitlementStatus::Authorized if !covered_by.is_empty() && own => format!(
            "Authorized: the {n} pool is used up, and its further demand is covered by {}.",
            joined(&covered_by)
        ),
        EntitlementStatus::Authorized if !covered_by.is_empty() => format!(
            "Authorized: there is no {tag} license here; it is covered by {}.",
            joined(&covered_by)
        ),
        EntitlementStatus::Authorized => format!("Authorized by its own license, {n}."),
    };
    LicenseReason {
        tag: tag.to_string(),
        count,
        status,
        reason,
        covered_by,
    }
}

/// For a license that covers others: "3 in use, all covering DNA Essentials" or "5 in use,
/// 2 of them covering DNA Essentials"; None when none of its units cover anything.
pub fn substitution_note(
    pool: &Pool,
    e: &Evaluation,
    names: &BTreeMap<String, String>,
) -> Option<String> {
    let report = e.pools.get(&pool.tag)?;
    if report.lent <= 0 {
        return None;
    }
    let covered: Vec<String> = pool
        .substitutes
        .iter()
        .filter(|t| e.covered_by_substitutes.get(*t).copied().unwrap_or(0) > 0)
        .map(|t| name(names, t).to_string())
        .collect();
    let what = if covered.is_empty() {
        "other licenses".to_string()
    } else {
        covered.join(" and ")
    };
    Some(if report.lent >= report.in_use {
        format!("{} in use, all covering {what}", report.in_use)
    } else {
        format!(
            "{} in use, {} of them covering {what}",
            report.in_use, report.lent
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn pool(tag: &str, quantity: i64, substitutes: &[&str], export: bool) -> Pool {
        Pool {
            tag: tag.into(),
            quantity,
            reserved: 0,
            start: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
            end: None,
            export_controlled: export,
            substitutes: substitutes.iter().map(|s| s.to_string()).collect(),
            rank: 100,
        }
    }

    fn names() -> BTreeMap<String, String> {
        [
            ("ess", "DNA Essentials"),
            ("adv", "DNA Advantage"),
            ("sec", "Secure"),
        ]
        .iter()
        .map(|(t, n)| (t.to_string(), n.to_string()))
        .collect()
    }

    fn demand(pairs: &[(&str, i64)]) -> BTreeMap<String, compliance::Demand> {
        pairs
            .iter()
            .map(|(t, n)| {
                (
                    t.to_string(),
                    compliance::Demand {
                        total: *n,
                        export_ok: 0,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn each_status_has_its_reason_in_words() {
        let pools = vec![
            pool("ess", 5, &[], false),
            pool("adv", 3, &["ess"], false),
            pool("sec", 1, &[], true),
        ];
        let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let e = compliance::evaluate(&pools, &demand(&[("ess", 8), ("unknown", 1)]), today);
        let r = license_reason(&pools, &e, &names(), "ess", 4, false);
        assert_eq!(r.status, EntitlementStatus::Authorized);
        assert_eq!(r.covered_by, vec!["DNA Advantage".to_string()]);
        assert!(
            r.reason.contains("covered by DNA Advantage"),
            "{}",
            r.reason
        );
        let r = license_reason(&pools, &e, &names(), "sec", 1, false);
        assert_eq!(r.status, EntitlementStatus::ExportRestricted);
        assert!(r.reason.contains("without an export-controlled token"));
        let r = license_reason(&pools, &e, &names(), "unknown", 1, false);
        assert_eq!(r.status, EntitlementStatus::NotAuthorized);
        assert!(r.reason.contains("no unknown license"));
        assert_eq!(
            substitution_note(&pools[1], &e, &names()).as_deref(),
            Some("3 in use, all covering DNA Essentials")
        );
        assert_eq!(substitution_note(&pools[0], &e, &names()), None);

        let e = compliance::evaluate(&pools, &demand(&[("ess", 10)]), today);
        let r = license_reason(&pools, &e, &names(), "ess", 10, false);
        assert_eq!(r.status, EntitlementStatus::OutOfCompliance);
        assert!(r.reason.contains("short by 2 licenses"), "{}", r.reason);
    }
}
