//! The compliance engine: supply against demand per license pool, with substitution.
//!
//! Order of drawing (documented in docs/protocol.md):
//! 1. Every pool first serves demand for its own tag. A pool that is not started or has
//!    expired supplies nothing; reserved counts are taken out of supply first.
//! 2. What a tag's own pool cannot cover (its shortfall) is drawn from pools whose
//!    `substitutes` list names that tag (a higher tier covering a lower one). Shortfalls
//!    are served in ascending tag order, and each from substituting pools in ascending
//!    `rank` (set on the covering license, default 100), ties by tag, so an owner says
//!    which tier goes first and the outcome never depends on arrival order.
//! 3. Export-controlled pools serve only demand from instances registered with an
//!    export-controlled token; other demand for such a tag is `export_restricted`.

use super::string_enum::string_enum;
use chrono::NaiveDate;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct Pool {
    pub tag: String,
    pub quantity: i64,
    pub reserved: i64,
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
    pub export_controlled: bool,
    pub substitutes: Vec<String>,
    /// Draw order among pools covering the same tag: lowest first, ties by tag.
    pub rank: i64,
}

/// Demand for one tag within a virtual account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    /// Everything reported by instances holding an authorization.
    pub total: i64,
    /// The part reported by instances registered with an export-controlled token.
    pub export_ok: i64,
}

impl Demand {
    /// What `count` reported by one instance adds: all of it to the total, and to the
    /// export part when the instance registered with an export-controlled token.
    pub fn of_usage(count: i64, export_controlled: bool) -> Demand {
        Demand {
            total: count,
            export_ok: if export_controlled { count } else { 0 },
        }
    }
}

string_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum PoolStatus {
        InCompliance => "in_compliance",
        Insufficient => "insufficient",
        Expired => "expired",
        NotStarted => "not_started",
    }
}

string_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum EntitlementStatus {
        Authorized => "authorized",
        OutOfCompliance => "out_of_compliance",
        NotAuthorized => "not_authorized",
        ExportRestricted => "export_restricted",
        Reserved => "reserved",
    }
}

/// The outcome for one pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolReport {
    pub tag: String,
    /// Licenses of this pool in use: its own tag's demand that is not covered by
    /// substitutes (so it exceeds the quantity when the pool is short) plus what it lends.
    pub in_use: i64,
    pub reserved: i64,
    pub available: i64,
    /// Of `in_use`, how many cover other tags' shortfalls.
    pub lent: i64,
    pub status: PoolStatus,
}

#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    pub pools: BTreeMap<String, PoolReport>,
    /// Unmet demand per tag after substitution (only tags with a shortfall).
    pub shortfall: BTreeMap<String, i64>,
    /// Demand covered by substitution, per tag covered.
    pub covered_by_substitutes: BTreeMap<String, i64>,
}

impl Evaluation {
    pub fn is_compliant(&self) -> bool {
        self.shortfall.is_empty()
    }
}

/// Whether a pool supplies anything on `today`.
pub fn date_status(
    start: NaiveDate,
    end: Option<NaiveDate>,
    today: NaiveDate,
) -> Option<PoolStatus> {
    if today < start {
        Some(PoolStatus::NotStarted)
    } else if end.is_some_and(|e| today > e) {
        Some(PoolStatus::Expired)
    } else {
        None
    }
}

pub fn evaluate(pools: &[Pool], demand: &BTreeMap<String, Demand>, today: NaiveDate) -> Evaluation {
    let mut surplus: BTreeMap<&str, i64> = BTreeMap::new();
    let mut own_use: BTreeMap<&str, i64> = BTreeMap::new();
    let mut short: BTreeMap<String, i64> = BTreeMap::new();
    // Shortfall that export-controlled substitutes may serve (from export-ok instances).
    let mut short_export_ok: BTreeMap<String, i64> = BTreeMap::new();

    for p in pools {
        let supply = if date_status(p.start, p.end, today).is_some() {
            0
        } else {
            (p.quantity - p.reserved).max(0)
        };
        let d = demand.get(&p.tag).copied().unwrap_or_default();
        let eligible = if p.export_controlled {
            d.export_ok
        } else {
            d.total
        };
        let used = eligible.min(supply);
        own_use.insert(&p.tag, used);
        surplus.insert(&p.tag, supply - used);
        if eligible > used {
            short.insert(p.tag.clone(), eligible - used);
            short_export_ok.insert(p.tag.clone(), (eligible - used).min(d.export_ok));
        }
    }
    for (tag, d) in demand {
        if d.total > 0 && !own_use.contains_key(tag.as_str()) {
            short.insert(tag.clone(), d.total);
            short_export_ok.insert(tag.clone(), d.export_ok.min(d.total));
        }
    }

    let mut lent: BTreeMap<&str, i64> = BTreeMap::new();
    let mut covered: BTreeMap<String, i64> = BTreeMap::new();
    let mut substituters: Vec<&Pool> = pools.iter().filter(|p| !p.substitutes.is_empty()).collect();
    substituters.sort_by(|a, b| (a.rank, &a.tag).cmp(&(b.rank, &b.tag)));
    for (tag, missing) in short.iter_mut() {
        for h in substituters
            .iter()
            .filter(|h| h.substitutes.iter().any(|s| s == tag))
        {
            if *missing == 0 {
                break;
            }
            let Some(spare) = surplus.get_mut(h.tag.as_str()) else {
                continue;
            };
            let limit = if h.export_controlled {
                short_export_ok.get(tag).copied().unwrap_or(0)
            } else {
                *missing
            };
            let take = (*spare).min(limit).min(*missing);
            if take > 0 {
                *spare -= take;
                *missing -= take;
                if let Some(e) = short_export_ok.get_mut(tag) {
                    *e = (*e - take).max(0);
                }
                *lent.entry(h.tag.as_str()).or_default() += take;
                *covered.entry(tag.clone()).or_default() += take;
            }
        }
    }
    short.retain(|_, n| *n > 0);

    let reports = pools
        .iter()
        .map(|p| {
            let lent_out = lent.get(p.tag.as_str()).copied().unwrap_or(0);
            let unmet = short.get(&p.tag).copied().unwrap_or(0);
            let in_use = own_use.get(p.tag.as_str()).copied().unwrap_or(0) + lent_out + unmet;
            let status =
                date_status(p.start, p.end, today).unwrap_or(if short.contains_key(&p.tag) {
                    PoolStatus::Insufficient
                } else {
                    PoolStatus::InCompliance
                });
            let report = PoolReport {
                tag: p.tag.clone(),
                in_use,
                reserved: p.reserved,
                available: surplus.get(p.tag.as_str()).copied().unwrap_or(0).max(0),
                lent: lent_out,
                status,
            };
            (p.tag.clone(), report)
        })
        .collect();
    Evaluation {
        pools: reports,
        shortfall: short,
        covered_by_substitutes: covered,
    }
}

/// The status of one entitlement an instance reports, given the VA's evaluation.
pub fn entitlement_status(
    pools: &[Pool],
    evaluation: &Evaluation,
    tag: &str,
    count: i64,
    instance_export_controlled: bool,
) -> EntitlementStatus {
    let own = pools.iter().find(|p| p.tag == tag);
    let substitutable = pools.iter().any(|p| p.substitutes.iter().any(|s| s == tag));
    match own {
        Some(p) if p.export_controlled && !instance_export_controlled && count > 0 => {
            EntitlementStatus::ExportRestricted
        }
        None if !substitutable && count > 0 => EntitlementStatus::NotAuthorized,
        _ if count == 0 => EntitlementStatus::Authorized,
        _ if evaluation.shortfall.contains_key(tag) => EntitlementStatus::OutOfCompliance,
        _ => EntitlementStatus::Authorized,
    }
}

/// The overall status of a report: out of compliance if any entitlement is short;
/// otherwise not authorized if any is unknown or export-restricted; else authorized.
pub fn overall_status(statuses: &[EntitlementStatus]) -> EntitlementStatus {
    if statuses.contains(&EntitlementStatus::OutOfCompliance) {
        EntitlementStatus::OutOfCompliance
    } else if statuses.iter().any(|s| {
        matches!(
            s,
            EntitlementStatus::NotAuthorized | EntitlementStatus::ExportRestricted
        )
    }) {
        EntitlementStatus::NotAuthorized
    } else {
        EntitlementStatus::Authorized
    }
}

/// The licenses covering `tag`, in the order they are drawn: lowest rank first, ties by tag;
/// independent of the order the pools are listed in (the VA page shows it).
pub fn draw_order<'a>(pools: &'a [Pool], tag: &str) -> Vec<&'a str> {
    let mut covering: Vec<&Pool> = pools
        .iter()
        .filter(|p| p.substitutes.iter().any(|s| s == tag))
        .collect();
    covering.sort_by(|a, b| (a.rank, &a.tag).cmp(&(b.rank, &b.tag)));
    covering.iter().map(|p| p.tag.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn pool(tag: &str, quantity: i64) -> Pool {
        Pool {
            tag: tag.into(),
            quantity,
            reserved: 0,
            start: d(2026, 1, 1),
            end: None,
            export_controlled: false,
            substitutes: vec![],
            rank: 100,
        }
    }

    fn demand(pairs: &[(&str, i64, i64)]) -> BTreeMap<String, Demand> {
        pairs
            .iter()
            .map(|(t, total, export_ok)| {
                (
                    t.to_string(),
                    Demand {
                        total: *total,
                        export_ok: *export_ok,
                    },
                )
            })
            .collect()
    }

    const TODAY: fn() -> NaiveDate = || NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();

    #[test]
    fn within_and_beyond_a_pool() {
        let pools = [pool("ess", 10)];
        let e = evaluate(&pools, &demand(&[("ess", 10, 0)]), TODAY());
        assert!(e.is_compliant());
        assert_eq!(e.pools["ess"].in_use, 10);
        assert_eq!(e.pools["ess"].available, 0);
        let e = evaluate(&pools, &demand(&[("ess", 12, 0)]), TODAY());
        assert_eq!(e.shortfall["ess"], 2);
        assert_eq!(e.pools["ess"].status, PoolStatus::Insufficient);
        assert_eq!(e.pools["ess"].in_use, 12, "overuse shows");
        assert_eq!(e.pools["ess"].available, 0);
        assert_eq!(
            entitlement_status(&pools, &e, "ess", 1, false),
            EntitlementStatus::OutOfCompliance
        );
        assert_eq!(
            entitlement_status(&pools, &e, "unknown", 1, false),
            EntitlementStatus::NotAuthorized
        );
    }

    #[test]
    fn a_higher_tier_covers_a_lower_tiers_shortfall_after_its_own_demand() {
        let mut adv = pool("adv", 5);
        adv.substitutes = vec!["ess".into()];
        let pools = [pool("ess", 2), adv];
        let e = evaluate(&pools, &demand(&[("ess", 5, 0), ("adv", 1, 0)]), TODAY());
        assert!(e.is_compliant(), "{e:?}");
        assert_eq!(e.covered_by_substitutes["ess"], 3);
        assert_eq!(e.pools["adv"].in_use, 4);
        assert_eq!(e.pools["adv"].lent, 3);
        assert_eq!(e.pools["adv"].available, 1);
        // Own demand first: adv's own users are never pushed out by a lower tier.
        let e = evaluate(&pools, &demand(&[("ess", 8, 0), ("adv", 5, 0)]), TODAY());
        assert_eq!(e.shortfall.get("adv"), None);
        assert_eq!(e.shortfall["ess"], 6);
        // A tag with no pool of its own can be covered entirely by a substitute.
        let e = evaluate(&pools[1..], &demand(&[("ess", 3, 0)]), TODAY());
        assert!(e.is_compliant());
        assert_eq!(
            entitlement_status(&pools[1..], &e, "ess", 3, false),
            EntitlementStatus::Authorized
        );
    }

    #[test]
    fn substitutes_are_drawn_in_tag_order() {
        let mut b = pool("b-tier", 1);
        b.substitutes = vec!["low".into()];
        let mut a = pool("a-tier", 1);
        a.substitutes = vec!["low".into()];
        let e = evaluate(&[b, a], &demand(&[("low", 1, 0)]), TODAY());
        assert_eq!(e.pools["a-tier"].lent, 1);
        assert_eq!(e.pools["b-tier"].lent, 0);
    }

    #[test]
    fn rank_orders_substitutes_before_tag() {
        let mut b = pool("b-tier", 1);
        b.substitutes = vec!["low".into()];
        b.rank = 10;
        let mut a = pool("a-tier", 1);
        a.substitutes = vec!["low".into()];
        let e = evaluate(&[a.clone(), b.clone()], &demand(&[("low", 1, 0)]), TODAY());
        assert_eq!(e.pools["b-tier"].lent, 1, "rank 10 before the default 100");
        assert_eq!(e.pools["a-tier"].lent, 0);
        // Equal ranks fall back to tag order.
        b.rank = 100;
        let e = evaluate(&[b, a], &demand(&[("low", 1, 0)]), TODAY());
        assert_eq!(e.pools["a-tier"].lent, 1);
    }

    /// HCS dual parenting (seed 003): Enterprise demand is served by its own pool, then HCS
    /// Foundation, then HCS Standard, though tag order alone would pick Standard first.
    #[test]
    fn hcs_dual_parenting_follows_rank() {
        let ent = pool("regid.ent", 2);
        let mut standard = pool("regid.hcs-a-standard", 5);
        standard.substitutes = vec!["regid.ent".into()];
        standard.rank = 20;
        let mut foundation = pool("regid.hcs-z-foundation", 3);
        foundation.substitutes = vec!["regid.ent".into()];
        foundation.rank = 10;
        let pools = [standard, ent, foundation];
        assert_eq!(
            draw_order(&pools, "regid.ent"),
            ["regid.hcs-z-foundation", "regid.hcs-a-standard"]
        );
        // 2 from its own pool, 3 from Foundation, the last 2 from Standard.
        let e = evaluate(&pools, &demand(&[("regid.ent", 7, 0)]), TODAY());
        assert!(e.is_compliant(), "{e:?}");
        assert_eq!(e.pools["regid.ent"].in_use, 2);
        assert_eq!(e.pools["regid.hcs-z-foundation"].lent, 3);
        assert_eq!(e.pools["regid.hcs-a-standard"].lent, 2);
        assert_eq!(e.pools["regid.hcs-a-standard"].available, 3);
        // Within Foundation's reach only: Standard is untouched.
        let e = evaluate(&pools, &demand(&[("regid.ent", 4, 0)]), TODAY());
        assert_eq!(e.pools["regid.hcs-z-foundation"].lent, 2);
        assert_eq!(e.pools["regid.hcs-a-standard"].lent, 0);
    }

    #[test]
    fn term_dates_and_reservations_limit_supply() {
        let mut term = pool("term", 10);
        term.end = Some(d(2026, 11, 22));
        let e = evaluate(&[term.clone()], &demand(&[("term", 1, 0)]), TODAY());
        assert_eq!(e.pools["term"].status, PoolStatus::Expired);
        assert_eq!(e.shortfall["term"], 1);
        term.end = Some(d(2026, 11, 23));
        let e = evaluate(&[term.clone()], &demand(&[("term", 1, 0)]), TODAY());
        assert_eq!(
            e.pools["term"].status,
            PoolStatus::InCompliance,
            "end date inclusive"
        );
        term.start = d(2026, 12, 1);
        term.end = Some(d(2027, 12, 1));
        let e = evaluate(&[term], &demand(&[]), TODAY());
        assert_eq!(e.pools["term"].status, PoolStatus::NotStarted);
        let mut reserved = pool("r", 10);
        reserved.reserved = 8;
        let e = evaluate(&[reserved], &demand(&[("r", 3, 0)]), TODAY());
        assert_eq!(e.shortfall["r"], 1);
        assert_eq!(e.pools["r"].available, 0);
    }

    #[test]
    fn export_controlled_pools_serve_only_export_registered_instances() {
        let mut crypto = pool("crypto", 10);
        crypto.export_controlled = true;
        let pools = [crypto];
        let e = evaluate(&pools, &demand(&[("crypto", 5, 2)]), TODAY());
        assert!(e.is_compliant());
        assert_eq!(e.pools["crypto"].in_use, 2);
        assert_eq!(
            entitlement_status(&pools, &e, "crypto", 3, false),
            EntitlementStatus::ExportRestricted
        );
        assert_eq!(
            entitlement_status(&pools, &e, "crypto", 2, true),
            EntitlementStatus::Authorized
        );
    }

    #[test]
    fn overall_status_orders_problems() {
        use EntitlementStatus::*;
        assert_eq!(overall_status(&[]), Authorized);
        assert_eq!(overall_status(&[Authorized, NotAuthorized]), NotAuthorized);
        assert_eq!(
            overall_status(&[ExportRestricted, OutOfCompliance]),
            OutOfCompliance
        );
    }
}
