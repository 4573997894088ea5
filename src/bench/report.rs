//! The bench's output: a table for people and a JSON object for machines. Every rate is
//! also given as a ratio to the floor measured in the same run, and so is the serving
//! process's CPU time per request.

use super::bundles::Step;
use super::Sample;
use serde_json::{json, Value};

/// What a phase is compared with, measured in the same run.
#[derive(Clone)]
pub struct Floor {
    pub name: String,
    pub per_second: f64,
    pub cpu_us: Option<f64>,
}

impl Floor {
    pub fn of(sample: &Sample) -> Floor {
        Floor {
            name: sample.name.clone(),
            per_second: sample.throughput(),
            cpu_us: sample.cpu_us_per_request(),
        }
    }
}

pub struct Row {
    pub sample: Sample,
    pub floor: Option<Floor>,
}

impl Row {
    fn throughput_ratio(&self) -> Option<f64> {
        self.floor
            .as_ref()
            .filter(|f| f.per_second > 0.0)
            .map(|f| self.sample.throughput() / f.per_second)
    }

    /// How many times the floor's CPU per request this phase used.
    fn cpu_ratio(&self) -> Option<f64> {
        let floor = self.floor.as_ref()?.cpu_us.filter(|c| *c > 0.0)?;
        Some(self.sample.cpu_us_per_request()? / floor)
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

pub fn table(rows: &[Row], steps: &[Step], facts: &[(&str, String)]) -> String {
    let mut out = format!(
        "{:<28} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6} {:>7} {:>6} {:>6}  {}\n",
        "phase",
        "requests",
        "per s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "cpu us",
        "x rate",
        "x cpu",
        "floor"
    );
    for r in rows {
        let s = &r.sample;
        out.push_str(&format!(
            "{:<28} {:>8} {:>8.0} {:>7.2} {:>7.2} {:>7.2} {:>6} {:>7} {:>6} {:>6}  {}\n",
            s.name,
            s.latencies_us.len(),
            s.throughput(),
            s.percentile_ms(0.5),
            s.percentile_ms(0.99),
            s.percentile_ms(1.0),
            s.errors,
            opt(s.cpu_us_per_request(), 0),
            opt(r.throughput_ratio(), 2),
            opt(r.cpu_ratio(), 2),
            r.floor.as_ref().map(|f| f.name.as_str()).unwrap_or("")
        ));
    }
    if !steps.is_empty() {
        out.push('\n');
        out.push_str(&format!(
            "{:<28} {:>9} {:>11}\n",
            "step", "seconds", "bundle MiB"
        ));
        for s in steps {
            out.push_str(&format!(
                "{:<28} {:>9.2} {:>11.1}\n",
                s.name,
                s.took.as_secs_f64(),
                s.bundle_mib
            ));
        }
    }
    out.push('\n');
    for (k, v) in facts {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out
}

pub fn json(rows: &[Row], steps: &[Step], facts: &[(&str, String)]) -> Value {
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
                "server_cpu_us_per_request": s.cpu_us_per_request(),
                "floor": r.floor.as_ref().map(|f| f.name.clone()),
                "ratio_to_floor": r.throughput_ratio(),
                "cpu_ratio_to_floor": r.cpu_ratio(),
            })
        })
        .collect();
    let steps: Vec<Value> = steps
        .iter()
        .map(|s| json!({ "name": s.name, "seconds": s.took.as_secs_f64(), "bundle_mib": s.bundle_mib }))
        .collect();
    let facts: serde_json::Map<String, Value> = facts
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({ "phases": phases, "steps": steps, "facts": facts })
}
