//! The bench's output: a table for people and a JSON object for machines. Every rate is
//! also given as a ratio to the floor measured in the same run.

use super::Sample;
use serde_json::{json, Value};

pub struct Row {
    pub sample: Sample,
    /// The floor this figure is compared with (name, throughput).
    pub floor: Option<(String, f64)>,
}

pub fn table(rows: &[Row], facts: &[(&str, String)]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<26} {:>9} {:>10} {:>9} {:>9} {:>9} {:>7} {:>22}\n",
        "phase", "requests", "per s", "p50 ms", "p99 ms", "max ms", "errors", "ratio to floor"
    ));
    for r in rows {
        let s = &r.sample;
        let ratio = r
            .floor
            .as_ref()
            .filter(|(_, f)| *f > 0.0)
            .map(|(name, f)| format!("{:.2} of {name}", s.throughput() / f))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<26} {:>9} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>22}\n",
            s.name,
            s.latencies_us.len(),
            s.throughput(),
            s.percentile_ms(0.5),
            s.percentile_ms(0.99),
            s.percentile_ms(1.0),
            s.errors,
            ratio
        ));
    }
    for (k, v) in facts {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out
}

pub fn json(rows: &[Row], facts: &[(&str, String)]) -> Value {
    let phases: Vec<Value> = rows
        .iter()
        .map(|r| {
            let s = &r.sample;
            json!({
                "name": s.name,
                "requests": s.latencies_us.len(),
                "seconds": s.elapsed.as_secs_f64(),
                "per_second": s.throughput(),
                "p50_ms": s.percentile_ms(0.5),
                "p99_ms": s.percentile_ms(0.99),
                "max_ms": s.percentile_ms(1.0),
                "errors": s.errors,
                "floor": r.floor.as_ref().map(|(n, _)| n.clone()),
                "ratio_to_floor": r.floor.as_ref().filter(|(_, f)| *f > 0.0).map(|(_, f)| s.throughput() / f),
            })
        })
        .collect();
    let facts: serde_json::Map<String, Value> = facts
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({ "phases": phases, "facts": facts })
}
