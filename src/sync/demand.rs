//! `data/demand_elsewhere.jsonl`: one count per account (CONTRACT section 6). The upstream
//! tells a satellite, per VA and tag, the demand recorded everywhere but on that satellite;
//! the satellite keeps it (`store::demand_elsewhere`) and counts it with its own.

use super::bundle::BundleWriter;
use super::records::DemandElsewhere;
use super::SyncError;
use crate::domain::compliance::Demand;
use crate::domain::license::{self, QUANTITY_MAX};
use crate::store::demand_elsewhere;
use crate::store::sync_state::Satellite;
use crate::store::synced::Catalog;
use rusqlite::Connection;

/// Upstream: writes the demand recorded elsewhere into a response for `satellite`.
pub fn write(
    writer: &mut BundleWriter,
    tx: &Connection,
    satellite: &Satellite,
) -> Result<(), SyncError> {
    let mut file = writer.file("demand_elsewhere")?;
    for (virtual_account, tag, d) in
        demand_elsewhere::for_satellite(tx, satellite.account_id, satellite.id)?
    {
        file.write(&DemandElsewhere {
            virtual_account,
            tag,
            count: d.total,
            export_count: d.export_ok,
        })?;
    }
    writer.close(file)
}

/// Satellite: checks one record and keeps it with the catalog it arrives with.
pub fn read(r: DemandElsewhere, catalog: &mut Catalog) -> Result<(), SyncError> {
    let reject = |m: String| SyncError::Rejected(format!("demand_elsewhere: {m}"));
    license::tag("tag", &r.tag).map_err(|e| reject(e.to_string()))?;
    let range = 0..=QUANTITY_MAX;
    if !range.contains(&r.count) || !range.contains(&r.export_count) {
        return Err(reject(format!("count of {} out of range", r.tag)));
    }
    catalog.demand_elsewhere.push((
        r.virtual_account,
        r.tag,
        Demand {
            total: r.count,
            export_ok: r.export_count,
        },
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tag: &str, count: i64, export_count: i64) -> DemandElsewhere {
        DemandElsewhere {
            virtual_account: "Lab".into(),
            tag: tag.into(),
            count,
            export_count,
        }
    }

    #[test]
    fn a_bad_record_rejects_the_bundle_and_a_good_one_is_kept() {
        let mut catalog = Catalog::default();
        for bad in [
            record("ess", -1, 0),
            record("ess", 1, -1),
            record("ess", QUANTITY_MAX + 1, 0),
            record("", 1, 0),
        ] {
            assert!(matches!(
                read(bad, &mut catalog),
                Err(SyncError::Rejected(m)) if m.starts_with("demand_elsewhere:")
            ));
        }
        assert!(catalog.demand_elsewhere.is_empty());
        read(record("ess", 4, 1), &mut catalog).unwrap();
        assert_eq!(
            catalog.demand_elsewhere,
            [(
                "Lab".to_string(),
                "ess".to_string(),
                Demand {
                    total: 4,
                    export_ok: 1
                }
            )]
        );
    }
}
