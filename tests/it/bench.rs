//! The benchmark as CI's smoke run uses it, small: a real `satellite-bench` run that
//! registers its estate over HTTPS, reports from every instance, and leaves a data dir a
//! real server then serves, so the rows it prints are checked against what the server kept.

use crate::support::{run_cli, Server, ServerOptions, SATELLITE};
use serde_json::Value;
use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_satellite-bench");
const TAG: &str = "regid.2026-01.com.bench.ess,1.0";

fn bench(dir: &std::path::Path, args: &[&str]) -> Value {
    let json = dir.join("bench.json");
    let out = Command::new(BENCH)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .arg("--json")
        .arg(&json)
        .args(["--seconds", "1", "--rounds", "2", "--concurrency", "8"])
        .output()
        .expect("run satellite-bench");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed:\n{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&json).expect("bench json")).expect("json")
}

fn phase<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["phases"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no phase {name} in {report:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn registers_the_estate_over_https_and_reports_from_all_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let report = bench(
        tmp.path(),
        &[
            "--instances",
            "300",
            "--register-over-https",
            "--phases",
            "registrations,reports,renewals",
        ],
    );
    // Every instance registered once over HTTPS and reported once for the first time.
    let reg = phase(&report, "registrations");
    assert_eq!(reg["requests"], 300);
    assert_eq!(reg["floor"], "floor: registration, interleaved");
    let first = phase(&report, "first reports");
    assert_eq!(first["requests"], 300);
    for name in [
        "registrations",
        "first reports",
        "reports, same counts",
        "reports, changed counts",
        "renewals",
    ] {
        let p = phase(&report, name);
        assert_eq!(p["errors"], 0, "{name}");
        assert!(p["requests"].as_u64().unwrap() > 0, "{name}");
        assert!(p["ratio_to_floor"].as_f64().unwrap() > 0.0, "{name}");
        assert!(p["cpu_ratio_to_floor"].as_f64().is_some(), "{name}");
        assert!(p["server_user_us_per_request"].as_f64().is_some(), "{name}");
        assert!(
            p["server_system_us_per_request"].as_f64().is_some(),
            "{name}"
        );
        assert!(p["load_generator_cpu_us_per_request"].as_f64().unwrap() > 0.0);
        // Null only when the phase spanned no clock tick of the machine.
        assert!(p.get("machine_idle_percent").is_some(), "{name}: {p:#}");
        if let Some(idle) = p["machine_idle_percent"].as_f64() {
            assert!((0.0..=100.0).contains(&idle), "{name}: idle {idle}");
        }
        // The server's CPU split by thread: its stages are there and add up to something.
        // The HTTP workers (which check signatures too) share one name.
        let threads = p["server_cpu_us_per_request_by_thread"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: no thread split in {p:#}"));
        for stage in ["actix-rt|system", "sqlite-writer", "sqlite-sync"] {
            assert!(
                threads.contains_key(stage),
                "{name}: {stage} in {threads:?}"
            );
        }
        let total: f64 = threads.values().filter_map(Value::as_f64).sum();
        assert!(total > 0.0, "{name}: {threads:?}");
    }
    assert_eq!(
        phase(&report, "reports, same counts")["floor"],
        "floor: durable, interleaved"
    );
    // First reports over HTTPS run in rounds of their own, beside a floor of their own.
    assert_eq!(
        phase(&report, "first reports")["floor"],
        "floor: durable, beside first reports"
    );
    // A renewal signs twice (the certificate and the reply): its floor does too.
    assert_eq!(
        phase(&report, "renewals")["floor"],
        "floor: renewal, interleaved"
    );
    let renewal_floor = phase(&report, "floor: renewal, interleaved");
    assert_eq!(renewal_floor["errors"], 0);
    assert!(renewal_floor["requests"].as_u64().unwrap() > 0);
    let facts = &report["facts"];
    assert_eq!(facts["instances at the end"], "300");
    assert_eq!(facts["reporters"], "every instance, drawn uniformly");
    assert!(facts["instances in the estate"]
        .as_str()
        .unwrap()
        .contains("300 registered over HTTPS"));

    // What the server kept: each of the 300 holds the count it last reported (1 to 3),
    // and every counter agrees with the rows it sums.
    let data = tmp.path().join("data");
    let check = run_cli(SATELLITE, &["check"], Some(&data), None);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    let server = Server::start_in(tmp, data, ServerOptions::default());
    let api = server.api("system-admin", None).await;
    let (status, body) = api
        .get("/api/v1/reports/instances?account=Bench&format=json")
        .await;
    assert!(status.is_success(), "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 300);
    let mut total = 0;
    for i in items {
        let licenses = i["licenses"].as_str().unwrap();
        let count: i64 = licenses
            .strip_prefix(&format!("{TAG}="))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no report kept for {i}"));
        assert!((1..=3).contains(&count), "{i}");
        total += count;
    }
    let (_, licenses) = api
        .get("/api/v1/reports/licenses?account=Bench&format=json")
        .await;
    assert_eq!(licenses["items"][0]["in_use"], total);
}

#[test]
fn a_hot_set_reports_from_the_seeded_estate() {
    let tmp = tempfile::tempdir().unwrap();
    let report = bench(
        tmp.path(),
        &["--instances", "200", "--hot", "20", "--phases", "reports"],
    );
    let facts = &report["facts"];
    assert_eq!(
        facts["instances in the estate"],
        "200 (seeded in the database)"
    );
    assert!(facts["reporters"]
        .as_str()
        .unwrap()
        .starts_with("hot set of 20"));
    // Seeded instances have reported already: no registrations, no first reports.
    let names: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(!names.contains(&"registrations") && !names.contains(&"first reports"));
    for name in ["reports, same counts", "reports, changed counts"] {
        assert_eq!(phase(&report, name)["errors"], 0);
    }
}
