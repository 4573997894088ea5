//! The tamper-evident ledger (docs/ledger.md): the chain across agent traffic, a restart
//! and a sync; `ledger verify` passing on a healthy database and naming the first bad
//! entry after a hand-edited usage row or a dropped entry; the signed head checked with
//! openssl and sha256sum by the documented recipe; and the upstream refusing a satellite
//! whose history was rewritten.

use crate::support::agent::Agent;
use crate::support::sync::{members, Pair};
use crate::support::{Licensed, Server, ServerOptions};
use serde_json::Value;
use std::path::Path;

fn db(server_data: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(server_data.join("satellite.db")).unwrap()
}

fn verify(server: &Server) -> crate::support::CliOutput {
    server.cli(&["ledger", "verify"])
}

fn assert_verified(server: &Server) -> i64 {
    let out = verify(server);
    assert_eq!(out.code, 0, "ledger verify: {}{}", out.stdout, out.stderr);
    assert_eq!(out.value("ledger"), "ok");
    out.value("last_seq").parse().unwrap()
}

fn show_head(server: &Server) -> Value {
    let out = server.cli(&["ledger", "show-head"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(out.stdout.trim()).unwrap()
}

/// An upstream with ess x5 and one agent registered that reported ess=2, then ess=3.
async fn with_traffic() -> (Licensed, Agent) {
    let lic = Licensed::start().await;
    lic.perpetual("ess", 5).await;
    let token = lic.simple_token().await;
    let agent = Agent::new();
    let out = agent.register(&lic.server, &token, "C9300", "LEDGER1");
    assert_eq!(out.code, 0, "{}", out.stderr);
    for n in [2, 3] {
        let out = agent.report(&[("ess", n)]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    (lic, agent)
}

#[tokio::test]
async fn verify_passes_across_a_restart_and_names_the_entry_a_hand_edited_usage_row_breaks() {
    let (lic, agent) = with_traffic().await;
    let before = assert_verified(&lic.server);
    assert!(
        before >= 4,
        "genesis, license, registration, reports: {before}"
    );
    // The head the server signed at start verifies by the documented recipe.
    run_recipe(&lic.server);

    // Across a restart the chain goes on from where it was.
    let server = lic.server.restart(ServerOptions::upstream());
    let out = agent.report(&[("ess", 4)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let after = assert_verified(&server);
    assert!(after > before, "{after} > {before}");
    let changed_usage_at: i64 = db(&server.data_dir)
        .query_row(
            "SELECT seq FROM ledger_state WHERE tbl = 'instance_usage'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        changed_usage_at > before,
        "the last report after the restart"
    );

    // A usage row edited by hand while the server is stopped.
    let (dir, data_dir) = server.stop();
    let n = db(&data_dir)
        .execute(
            "UPDATE instances SET usage = json_set(usage,
               '$.\"' || (SELECT id FROM tags WHERE tag = 'ess') || '\"', 1)
             WHERE usage IS NOT NULL",
            [],
        )
        .unwrap();
    assert_eq!(n, 1);
    let out = crate::support::run_cli(
        crate::support::SATELLITE,
        &["ledger", "verify"],
        Some(&data_dir),
        None,
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains(&format!("the first bad entry is {changed_usage_at} (")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("table instance_usage"),
        "{}",
        out.stderr
    );
    drop(dir);
}

#[tokio::test]
async fn verify_names_a_dropped_entry() {
    let (lic, _agent) = with_traffic().await;
    let last = assert_verified(&lic.server);
    let (dir, data_dir) = lic.server.stop();
    let n = db(&data_dir)
        .execute("DELETE FROM ledger_entries WHERE seq = 3", [])
        .unwrap();
    assert_eq!(n, 1);
    let out = crate::support::run_cli(
        crate::support::SATELLITE,
        &["ledger", "verify"],
        Some(&data_dir),
        None,
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("the first bad entry is 3 (entry 3 is missing"),
        "{}",
        out.stderr
    );
    assert!(last > 3);
    drop(dir);
}

/// Runs the recipe block of docs/ledger.md on the server's newest signed head.
fn run_recipe(server: &Server) {
    let head = show_head(server);
    let doc = include_str!("../../docs/ledger.md");
    let block = doc
        .split("<!-- recipe -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- /recipe -->").next())
        .expect("recipe block");
    let script: String = block
        .lines()
        .filter(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n");
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(
        server.data_dir.join("keys/authority.pub.pem"),
        work.path().join("authority.pub.pem"),
    )
    .unwrap();
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let e = &head["entry"];
    let out = std::process::Command::new("sh")
        .arg("-ec")
        .arg(&script)
        .current_dir(work.path())
        .env("AUTHORITY_ID", s(&head["authority_id"]))
        .env("SEQ", s(&head["seq"]))
        .env("ENTRY_HASH", s(&head["entry_hash"]))
        .env("PREV_HEAD_SEQ", s(&head["prev_head_seq"]))
        .env("PREV_HEAD_HASH", s(&head["prev_head_hash"]))
        .env("SIGNED_AT", s(&head["signed_at"]))
        .env("SIGNATURE", s(&head["signature"]))
        .env("E_SEQ", s(&e["seq"]))
        .env("E_PREV_HASH", s(&e["prev_hash"]))
        .env("E_BATCH_DIGEST", s(&e["batch_digest"]))
        .env("E_CHANGES", s(&e["changes"]))
        .env("E_STATE_DIGEST", s(&e["state_digest"]))
        .env("E_COMMITTED_AT", s(&e["committed_at"]))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Signature Verified Successfully"),
        "{stdout}"
    );
    assert!(stdout.contains("Entry hash matches"), "{stdout}");
}

/// The heads a sync request carries, from its data/ledger.jsonl.
fn carried_heads(bundle: &Path) -> Vec<Value> {
    let m = members(bundle);
    let data: Vec<&str> = m
        .iter()
        .filter(|(n, _)| n.starts_with("data/"))
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(data.first(), Some(&"data/ledger.jsonl"), "{data:?}");
    let (_, bytes) = m.iter().find(|(n, _)| n == "data/ledger.jsonl").unwrap();
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn export(pair: &Pair) -> std::path::PathBuf {
    let out = pair
        .satellite
        .cli(&["bundle", "export", "--account", "Acme"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::path::PathBuf::from(out.value("bundle"))
}

fn upstream_peer_heads(upstream: &Server) -> Vec<(i64, Vec<u8>)> {
    let conn = db(&upstream.data_dir);
    let mut stmt = conn
        .prepare("SELECT seq, entry_hash FROM ledger_peer_heads ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

#[tokio::test]
async fn sync_carries_the_heads_and_the_upstream_refuses_a_rewritten_history() {
    let pair = Pair::start().await;
    pair.register_disconnected().await;
    let token = {
        let (s, b) = pair
            .sat_api
            .post(
                "/api/v1/accounts/Acme/virtual-accounts/Lab/tokens",
                serde_json::json!({ "expires_in_days": 30, "export_controlled": false }),
            )
            .await;
        assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");
        b["token"].as_str().unwrap().to_string()
    };
    let agent = Agent::new();
    let out = agent.register(&pair.satellite, &token, "C9300", "LEDGERSAT1");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = agent.report(&[("ess", 2)]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // First sync: the request carries every head so far, newest naming the chain's end.
    let first = export(&pair);
    let heads = carried_heads(&first);
    assert!(!heads.is_empty());
    let response = pair.upstream_import(&first);
    let out = pair
        .satellite
        .cli(&["bundle", "import", response.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = upstream_peer_heads(&pair.upstream.server);
    assert_eq!(seen.len(), heads.len());
    assert_eq!(
        seen.last().unwrap().0,
        heads.last().unwrap()["seq"].as_i64().unwrap()
    );

    // More traffic, a second round: heads start at the acknowledged one and extend it.
    let out = agent.report(&[("ess", 3)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let second = export(&pair);
    let again = carried_heads(&second);
    assert_eq!(
        again[0],
        *heads.last().unwrap(),
        "starts at the acknowledged head"
    );
    assert!(again.len() >= 2);
    let response = pair.upstream_import(&second);
    let out = pair
        .satellite
        .cli(&["bundle", "import", response.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        upstream_peer_heads(&pair.upstream.server).len(),
        heads.len() + again.len() - 1
    );
    assert_verified(&pair.satellite);
    assert_verified(&pair.upstream.server);

    // The satellite's history re-forged: its chain and heads dropped and started again
    // (the same key signs the new heads, and the new chain verifies on its own).
    let satellite = pair.satellite;
    let (dir, data_dir) = satellite.stop();
    db(&data_dir)
        .execute_batch(
            "DELETE FROM ledger_entries; DELETE FROM ledger_heads; DELETE FROM ledger_state;
             DELETE FROM ledger_sync_sent;",
        )
        .unwrap();
    let satellite = Server::start_in(dir, data_dir, ServerOptions::default());
    assert_verified(&satellite);
    let out = satellite.cli(&["bundle", "export", "--account", "Acme"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let forged = std::path::PathBuf::from(out.value("bundle"));
    assert_eq!(carried_heads(&forged)[0]["seq"], 1, "a chain started again");
    let upstream = &pair.upstream.server;
    let seen = upstream_peer_heads(upstream);
    let out = upstream.cli(&["bundle", "import", forged.to_str().unwrap()]);
    assert_eq!(out.code, 1, "refused: {}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("its ledger"), "{}", out.stderr);
    let rejected: Vec<_> = std::fs::read_dir(upstream.bundle_dir().join("rejected"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tar.gz"))
        .collect();
    assert_eq!(
        rejected.len(),
        1,
        "the refused request is kept in rejected/"
    );
    assert_eq!(
        upstream_peer_heads(upstream),
        seen,
        "nothing of it was kept"
    );
    drop(satellite);
}

/// The newest signed head's seq, once the server's timer has signed one.
fn signed_seq(server: &Server) -> i64 {
    for _ in 0..100 {
        let out = server.cli(&["ledger", "show-head"]);
        if out.code == 0 {
            let head: Value = serde_json::from_str(out.stdout.trim()).unwrap();
            return head["seq"].as_i64().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no head signed: {}", server.log());
}

#[tokio::test]
async fn the_head_is_signed_at_start_and_again_a_day_later_once_the_chain_moved() {
    let lic = Licensed::start().await;
    let first = signed_seq(&lic.server);
    lic.perpetual("ess", 5).await;
    // A restart within the day signs nothing new.
    let server = lic.server.restart(ServerOptions::upstream());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(signed_seq(&server), first);
    let server = server.restart(ServerOptions::upstream().days_later(1));
    let mut now = first;
    for _ in 0..100 {
        now = signed_seq(&server);
        if now > first {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        now > first,
        "a day later the moved chain is signed: {now} > {first}"
    );
    assert_verified(&server);
}

/// Usage lives in the instance's row (migration 0021); the ledger still folds it tag by
/// tag. Tags added, changed and dropped by reports, then the instance removed with its
/// usage, each leave a chain `ledger verify` recounts to the same state, and the
/// `instance_usage` view reads what the agent last reported.
#[tokio::test]
async fn usage_changes_fold_per_tag_through_a_removal() {
    use crate::support::agent::{rfc3339, RawAgent};
    let lic = Licensed::start().await;
    lic.perpetual("ess", 5).await;
    lic.perpetual("adv", 5).await;
    let token = lic.simple_token().await;
    let (answer, agent) = RawAgent::register(&lic.server.url, &token, "C9300", "FOLD1").await;
    let agent = agent.unwrap_or_else(|| panic!("{}", answer.body));
    let at = RawAgent::now();
    // The third report carries more tags than a report's tags are walked for, and the
    // fourth replaces that many stored ones: both sides of the diff by index.
    let many: Vec<(String, i64)> = (0..9).map(|i| (format!("extra{i}"), i + 1)).collect();
    let mut third: Vec<(&str, i64)> = vec![("ess", 3), ("adv", 2)];
    third.extend(many.iter().map(|(t, c)| (t.as_str(), *c)));
    let reports: [&[(&str, i64)]; 4] = [
        &[("ess", 2)],
        &[("ess", 3), ("adv", 1)],
        &third,
        &[("adv", 4)],
    ];
    let mut last = assert_verified(&lic.server);
    for (n, counts) in reports.iter().enumerate() {
        let answer = agent
            .report(&format!("fold-{n}"), &rfc3339(at - 60 + n as i64), counts)
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let seq = assert_verified(&lic.server);
        assert!(seq > last, "report {n} folded: {seq} > {last}");
        last = seq;
    }
    let stored: Vec<(String, i64)> = db(&lic.server.data_dir)
        .prepare(
            "SELECT t.tag, u.count FROM instance_usage u JOIN tags t ON t.id = u.tag_id
             ORDER BY t.tag",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        stored,
        vec![("adv".to_string(), 4)],
        "ess and the extra tags dropped, adv changed"
    );
    let (status, body) = lic
        .api
        .delete(&format!(
            "{}/instances/{}",
            crate::support::VA,
            agent.instance_id
        ))
        .await;
    assert!(status.is_success(), "{status} {body}");
    assert!(assert_verified(&lic.server) > last, "the removal folded");
    let left: i64 = db(&lic.server.data_dir)
        .query_row("SELECT count(*) FROM instance_usage", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    let out = lic.server.cli(&["check"]);
    assert_eq!(out.code, 0, "counters: {}{}", out.stdout, out.stderr);
}
