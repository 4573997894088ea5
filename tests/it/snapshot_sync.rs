//! The upstream applies a satellite's snapshot differentially: an unchanged second sync
//! request writes no counted row (the ledger gains no entry), a changed one writes exactly
//! the rows that changed, and an instance gone from the satellite goes with its usage.
//! Real servers, real `satellite-agent` processes, bundles carried by the CLI.

use crate::support::agent::Agent;
use crate::support::sync::Pair;
use crate::support::{Server, VA};
use reqwest::StatusCode;
use std::path::Path;

fn db(server: &Server) -> rusqlite::Connection {
    rusqlite::Connection::open(server.data_dir.join("satellite.db")).unwrap()
}

/// (entries, sum of their changes) in the ledger.
fn ledger(server: &Server) -> (i64, i64) {
    db(server)
        .query_row(
            "SELECT count(*), coalesce(sum(changes), 0) FROM ledger_entries",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

/// What the upstream holds from the satellite: (instance sn, tag, count), sorted.
fn reported(up: &Server) -> Vec<(String, String, i64)> {
    let conn = db(up);
    let mut stmt = conn
        .prepare(
            "SELECT i.sn, u.tag, u.count FROM satellite_usage u
             JOIN satellite_instances i ON i.satellite_id = u.satellite_id AND i.id = u.instance_id
             ORDER BY i.sn, u.tag",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

fn instance_count(up: &Server) -> i64 {
    db(up)
        .query_row("SELECT count(*) FROM satellite_instances", [], |r| r.get(0))
        .unwrap()
}

/// One round trip whose upstream import must apply.
async fn sync(pair: &Pair) {
    let out = pair
        .satellite
        .cli(&["bundle", "export", "--account", "Acme"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let response = pair.upstream_import(Path::new(&out.value("bundle")));
    let out = pair
        .satellite
        .cli(&["bundle", "import", response.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

fn assert_checks(server: &Server) {
    let out = server.cli(&["check"]);
    assert_eq!(out.code, 0, "check: {}{}", out.stdout, out.stderr);
    let out = server.cli(&["ledger", "verify"]);
    assert_eq!(out.code, 0, "ledger verify: {}{}", out.stdout, out.stderr);
}

#[tokio::test]
async fn a_resync_writes_only_what_changed_and_removes_a_gone_instance_with_its_usage() {
    let pair = Pair::start().await;
    pair.register_disconnected().await;
    let (s, b) = pair
        .sat_api
        .post(
            &format!("{VA}/tokens"),
            serde_json::json!({ "expires_in_days": 30, "export_controlled": false }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let token = b["token"].as_str().unwrap().to_string();
    let agents: Vec<Agent> = (1..=3).map(|_| Agent::new()).collect();
    for (n, agent) in agents.iter().enumerate() {
        let out = agent.register(&pair.satellite, &token, "C9300", &format!("SNAP{n}"));
        assert_eq!(out.code, 0, "{}", out.stderr);
        let out = agent.report(&[("ess", 1)]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let up = &pair.upstream.server;

    // First sync: all of it is new.
    sync(&pair).await;
    let first = reported(up);
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(instance_count(up), 3);
    pair.assert_same_licenses_and_usage().await;
    let before = ledger(up);

    // Unchanged: the request applies (a new sequence) and writes no counted row.
    sync(&pair).await;
    assert_eq!(
        ledger(up),
        before,
        "an unchanged snapshot adds no ledger entry"
    );
    assert_eq!(reported(up), first);
    pair.assert_same_licenses_and_usage().await;

    // One count changed, one instance removed on the satellite.
    let out = agents[0].report(&[("ess", 2)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (s, b) = pair.sat_api.get(&format!("{VA}/instances")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let gone = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["udi"]["sn"] == "SNAP2")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = pair.sat_api.delete(&format!("{VA}/instances/{gone}")).await;
    assert!(s.is_success(), "{s} {b}");
    sync(&pair).await;
    let after = ledger(up);
    // The pool stays in compliance (4 of 5), so no instance's status moves: the count
    // is one usage row out and one in, the gone instance its usage row and itself.
    assert_eq!(after.0, before.0 + 1, "one entry for the one import");
    assert_eq!(
        after.1 - before.1,
        2 + 1 + 1,
        "exactly the changed rows are captured"
    );
    let expected: Vec<(String, String, i64)> = [("SNAP0", "ess", 2), ("SNAP1", "ess", 1)]
        .iter()
        .map(|(sn, t, c)| (sn.to_string(), t.to_string(), *c))
        .collect();
    assert_eq!(reported(up), expected);
    assert_eq!(instance_count(up), 2);
    pair.assert_same_licenses_and_usage().await;
    assert_checks(up);
    assert_checks(&pair.satellite);
}
