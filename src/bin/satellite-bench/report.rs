//! The bench's output: a table for people and a JSON object for machines. Every rate is
//! also given as a ratio to the floor measured in the same run, and so is the serving
//! process's CPU time per request; beside it the CPU split (server user and system time,
//! the load generator's) and the server's SQLite counters per phase when it exposes them.

use super::bundles::Step;
use super::Sample;
use serde_json::{json, Value};
use std::collections::BTreeMap;

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

const NAME: usize = 32;

pub fn table(rows: &[Row], steps: &[Step], facts: &[(&str, String)]) -> String {
    let mut out = format!(
        "{:<NAME$} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6} {:>6} {:>5} {:>5} {:>6} {:>6} {:>6} {:>6}  {}\n",
        "phase",
        "requests",
        "per s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "cpu us",
        "usr",
        "sys",
        "gen us",
        "idle %",
        "x rate",
        "x cpu",
        "floor"
    );
    for r in rows {
        let s = &r.sample;
        out.push_str(&format!(
            "{:<NAME$} {:>8} {:>8.0} {:>7.2} {:>7.2} {:>7.2} {:>6} {:>6} {:>5} {:>5} {:>6} {:>6} {:>6} {:>6}  {}\n",
            s.name,
            s.latencies_us.len(),
            s.throughput(),
            s.percentile_ms(0.5),
            s.percentile_ms(0.99),
            s.percentile_ms(1.0),
            s.errors,
            opt(s.cpu_us_per_request(), 0),
            opt(s.user_us_per_request(), 0),
            opt(s.system_us_per_request(), 0),
            opt(s.client_us_per_request(), 0),
            opt(s.machine_idle_percent(), 1),
            opt(r.throughput_ratio(), 2),
            opt(r.cpu_ratio(), 2),
            r.floor.as_ref().map(|f| f.name.as_str()).unwrap_or("")
        ));
    }
    out.push_str(&sqlite_table(rows));
    out.push_str(&thread_table(rows));
    if !steps.is_empty() {
        out.push('\n');
        out.push_str(&format!(
            "{:<NAME$} {:>9} {:>11}\n",
            "step", "seconds", "bundle MiB"
        ));
        for s in steps {
            out.push_str(&format!(
                "{:<NAME$} {:>9.2} {:>11.1}\n",
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

/// The server's SQLite counters, grown over each product phase, per answered request: one
/// column per series the server exposes (its `satellite_sqlite_` prefix dropped), "-"
/// where a phase has none.
fn sqlite_table(rows: &[Row]) -> String {
    let per_request = |s: &Sample| {
        let n = s.latencies_us.len().max(1) as f64;
        let m = s.sqlite.as_ref()?;
        Some(m.iter().map(|(k, v)| (k.clone(), v / n)).collect())
    };
    let short = |k: &str| {
        k.strip_prefix(super::metrics::PREFIX)
            .unwrap_or(k)
            .to_string()
    };
    per_request_table("SQLite, per request", rows, per_request, short, 2).unwrap_or_else(|| {
        "\nSQLite counters: - (the server's /metrics has no satellite_sqlite_* series)\n".into()
    })
}

/// The serving process's CPU per answered request, in microseconds, by thread name: where
/// a phase's cost went (HTTP workers, which check request signatures too, the SQLite
/// writer, its sync and checkpoint threads).
fn thread_table(rows: &[Row]) -> String {
    let short = |k: &str| k.replace(' ', "_");
    per_request_table(
        "server cpu us, by thread",
        rows,
        Sample::thread_us_per_request,
        short,
        1,
    )
    .unwrap_or_default()
}

/// A table of one value per named series and phase, a column per series any phase has
/// ("-" where a phase lacks it); `None` when no phase has any.
fn per_request_table(
    title: &str,
    rows: &[Row],
    values: impl Fn(&Sample) -> Option<BTreeMap<String, f64>>,
    short: impl Fn(&str) -> String,
    digits: usize,
) -> Option<String> {
    let values: Vec<Option<BTreeMap<String, f64>>> =
        rows.iter().map(|r| values(&r.sample)).collect();
    let mut series: Vec<&String> = values.iter().flatten().flat_map(|m| m.keys()).collect();
    series.sort();
    series.dedup();
    if series.is_empty() {
        return None;
    }
    let names: Vec<String> = series.iter().map(|k| short(k)).collect();
    let mut out = format!("\n{title:<NAME$}");
    for k in &names {
        out.push_str(&format!(" {:>w$}", k, w = k.len().max(8)));
    }
    out.push('\n');
    for (r, v) in rows.iter().zip(&values) {
        out.push_str(&format!("{:<NAME$}", r.sample.name));
        for (k, name) in series.iter().zip(&names) {
            let cell = opt(v.as_ref().and_then(|m| m.get(*k)).copied(), digits);
            out.push_str(&format!(" {:>w$}", cell, w = name.len().max(8)));
        }
        out.push('\n');
    }
    Some(out)
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
                "server_user_us_per_request": s.user_us_per_request(),
                "server_system_us_per_request": s.system_us_per_request(),
                "load_generator_cpu_us_per_request": s.client_us_per_request(),
                "machine_idle_percent": s.machine_idle_percent(),
                "server_cpu_us_per_request_by_thread": s.thread_us_per_request(),
                "sqlite": s.sqlite,
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
