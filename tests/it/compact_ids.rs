//! Migration 0019 (issue 17, a compact instance layout): integer keys inside, opaque text
//! ids outside. A database of the version before, with instances, usage, history, a
//! reservation and an export key, migrates keeping every id, count and history line, and
//! the old id still authenticates a signed agent request; a new id reads as its integer;
//! a removed instance's id never comes back.

use crate::support::agent::{rfc3339, RawAgent};
use crate::support::{Server, ServerOptions};
use ed25519_dalek::SigningKey;
use reqwest::StatusCode;
use satellite::store::ledger::{self, COUNTED};
use satellite::store::migrations::{version_before, COMPACT_INSTANCES, MIGRATIONS};
use serde_json::json;
use std::collections::BTreeSet;

const OLD_A: &str = "inst_0692f00aa1b2c3d4e5f6a7b8c9d0e1f2";
const OLD_B: &str = "inst_0692f00bb1b2c3d4e5f6a7b8c9d0e1f2";
const VA: &str = "/api/v1/accounts/Acme/virtual-accounts/Lab";

/// The canonical text of every row of the counted instance tables (the ledger's).
fn counted_texts(conn: &rusqlite::Connection, migrated: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in COUNTED {
        if !["instances", "instance_usage", "export_keys"].contains(&c.table) {
            continue;
        }
        if migrated {
            ledger::rows(conn, c, |t| {
                out.insert(format!("{}:{t}", c.table));
            })
            .unwrap();
        } else {
            // Version 18: every column was stored as it reads (tags were not interned).
            let cols: Vec<String> = c
                .columns
                .iter()
                .map(|k| format!("quote({})", if *k == "tag_id" { "tag" } else { k }))
                .collect();
            let sql = format!("SELECT {} FROM {}", cols.join("||','||"), c.table);
            let mut stmt = conn.prepare(&sql).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
            for t in rows {
                out.insert(format!("{}:{}", c.table, t.unwrap()));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_version_18_estate_migrates_and_its_old_ids_still_sign_in() {
    let key_a = SigningKey::from_bytes(&[7u8; 32]);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let before = {
        let mut c = rusqlite::Connection::open(data_dir.join("satellite.db")).unwrap();
        c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")
            .unwrap();
        let v18 = version_before(COMPACT_INSTANCES).expect("0019 is in the list");
        MIGRATIONS.to_version(&mut c, v18).unwrap();
        c.execute_batch(&format!(
            "INSERT INTO accounts (id, name, created_at) VALUES (1, 'Acme', 0);
             INSERT INTO virtual_accounts (id, account_id, name, created_at, instance_count)
               VALUES (1, 1, 'Lab', 0, 2);
             INSERT INTO instances (id, va_id, pid, sn, public_key, product_name, product_version,
                 registered_at, last_contact, cert_renew_after, cert_expires_at, status,
                 last_report_id, last_measured_at_us, auth_renew_after, auth_expires_at)
               VALUES ('{OLD_A}', 1, 'P', 'A', x'{pk}', 'p', '1', 100, 100, 4102444800,
                       4102444800, 'authorized', '0b0e7ee0-1111-4222-8333-944455556666',
                       1000000, 4102444800, 4102444800),
                      ('{OLD_B}', 1, 'P', 'B', x'00', 'p', '1', 200, 200, 4102444800,
                       4102444800, 'authorized', 'not-a-uuid', 2000000, 4102444800, 4102444800);
             INSERT INTO instance_usage (instance_id, tag, count)
               VALUES ('{OLD_A}', 'ess', 3), ('{OLD_B}', 'ess', 2);
             INSERT INTO instance_history (instance_id, at, status, note)
               VALUES ('{OLD_A}', 100, 'registered', 'registered'),
                      ('{OLD_A}', 150, 'authorized', 'usage report'),
                      ('{OLD_B}', 200, 'registered', 'registered');
             INSERT INTO usage_totals (va_id, tag, demand, demand_export) VALUES (1, 'ess', 5, 0);
             INSERT INTO va_status_counts (va_id, status, n) VALUES (1, 'authorized', 2);
             INSERT INTO reservations (id, account_id, va_id, request_code, pid, sn, key_hash,
                 nonce, universal, state, authorization_code, code_hash, created_at, waiting_since)
               VALUES ('res_old', 1, 1, 'RC', 'P', 'R', 'kh', 'n', 1, 'confirmed', 'AC', 'ch', 0, 0);
             INSERT INTO export_keys (id, account_id, va_id, instance_id, pid, sn, tag, state,
                 requested_at)
               VALUES ('ek_old', 1, 1, '{OLD_A}', 'P', 'A', 'crypto', 'granted', 120);",
            pk = hex(key_a.verifying_key().as_bytes())
        ))
        .unwrap();
        counted_texts(&c, false)
    };

    let server = Server::start_in(dir, data_dir, ServerOptions::upstream());
    let api = server.admin_api().await;
    let db = || rusqlite::Connection::open(server.data_dir.join("satellite.db")).unwrap();
    // The ledger reads every counted row as it did before: its digests still hold.
    assert_eq!(counted_texts(&db(), true), before);
    let legacy: i64 = db()
        .query_row(
            "SELECT count(*) FROM instances WHERE legacy_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(legacy, 2);
    // The registration's own history line became the row's registered_at, not a copy,
    // and the line after it moved into the row too (migration 0022).
    let lines: i64 = db()
        .query_row("SELECT count(*) FROM instance_history", [], |r| r.get(0))
        .unwrap();
    assert_eq!(lines, 0);
    let first: (i64, i64, String) = db()
        .query_row(
            "SELECT first_line_at, first_line_status, first_line_note FROM instances
             WHERE legacy_id = ?1",
            [OLD_A],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(first, (150, 1, "usage report".to_string()));

    // The list and the detail show the same ids, usage and status.
    let (s, list) = api.get(&format!("{VA}/instances")).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [OLD_A, OLD_B]);
    let one = &list["items"][0];
    assert_eq!(one["status"], "authorized");
    assert_eq!(one["licenses"][0]["count"], 3, "{one}");

    // The old id signs in: a usage report from it is judged and applied.
    let lic = json!({"tag": "ess", "name": "ess", "type": "perpetual", "quantity": 10, "start": "2020-01-01"});
    let (s, b) = api.post(&format!("{VA}/licenses"), lic).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = api
        .post(
            &format!("{VA}/tokens"),
            json!({"description": "t", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let token = b["token"].as_str().unwrap().to_string();
    let (_, fresh) = RawAgent::register(&server.url, &token, "P", "NEW1").await;
    let fresh = fresh.expect("a new instance registers");
    let body = json!({
        "report_id": "0b0e7ee0-1111-4222-8333-944455556667",
        "measured_at": rfc3339(RawAgent::now()),
        "entitlements": [{"tag": "ess", "count": 4}],
    })
    .to_string()
    .into_bytes();
    let ts = RawAgent::now().to_string();
    let a = fresh
        .send("/agent/v1/usage", &body, &body, &ts, &key_a, Some(OLD_A))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["status"], "authorized", "{}", a.body);
    // The same report again is a duplicate (its id compared through the same mapping).
    let a = fresh
        .send("/agent/v1/usage", &body, &body, &ts, &key_a, Some(OLD_A))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let (_, pools) = api.get(&format!("{VA}/licenses")).await;
    let ess = pools["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["tag"] == "ess")
        .cloned()
        .unwrap();
    assert_eq!(ess["in_use"], 6, "4 from A, 2 from B: {ess}");

    // History still reads as before, the registration line included.
    let s = server.session("system-admin", None).await;
    let (st, html) = s
        .page(&format!(
            "/accounts/Acme/virtual-accounts/Lab/instances/{OLD_A}"
        ))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("usage report"), "{html}");
    assert!(html.contains("registered"), "{html}");

    // And in a browser: the migrated instance's page, its history oldest line included.
    if let Some(browser) = crate::support::webdriver::Browser::start().await {
        // No first-start admin here (the database came with its data): a user of the CLI.
        let out = server.cli_with_stdin(
            &[
                "user",
                "add",
                "--username",
                "viewer",
                "--role",
                "system-admin",
                "--password-stdin",
            ],
            Some("correct horse battery staple"),
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        browser.goto(&format!("{}/login", server.url)).await;
        browser.fill("#username", "viewer").await;
        browser
            .fill("#password", "correct horse battery staple")
            .await;
        browser.click("#login").await;
        browser
            .goto(&format!(
                "{}/accounts/Acme/virtual-accounts/Lab/instances/{OLD_A}",
                server.url
            ))
            .await;
        browser.screenshot("compact-01-migrated-instance").await;
        let history = browser.text("#history").await;
        assert!(history.contains("usage report"), "{history}");
        assert!(history.contains("registered"), "{history}");
        browser.quit().await;
    }

    // The reservation and the export key are still there, and still tied to A.
    let (_, res) = api.get("/api/v1/accounts/Acme/reservations").await;
    assert!(res.to_string().contains("res_old"), "{res}");
    assert_eq!(
        server.cli(&["check"]).code,
        0,
        "{}",
        server.cli(&["check"]).stderr
    );
    let out = server.cli(&["ledger", "verify"]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
}

#[tokio::test]
async fn a_new_id_reads_as_its_integer_and_a_removed_one_never_returns() {
    let l = crate::support::Licensed::start().await;
    l.perpetual("ess", 10).await;
    let token = l.simple_token().await;
    let (_, a) = RawAgent::register(&l.server.url, &token, "P", "S1").await;
    let a = a.expect("registers");
    let db = rusqlite::Connection::open(l.server.data_dir.join("satellite.db")).unwrap();
    let (prefix, first): (String, i64) = db
        .query_row(
            "SELECT prefix, first_own FROM instance_id_prefix",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(prefix.len(), 6);
    let key: i64 = db
        .query_row("SELECT id FROM instances WHERE sn = 'S1'", [], |r| r.get(0))
        .unwrap();
    assert!(key >= first);
    assert_eq!(a.instance_id, format!("inst_{prefix}{key:010}"));
    // The row holds room for its first report (migration 0025).
    let room: Vec<u8> = db
        .query_row(
            "SELECT report_room FROM instances WHERE id = ?1",
            [key],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(room, vec![0; satellite::store::instances::REPORT_ROOM]);
    // No event per registration: the instance row is its record.
    let (_, events) = l.api.get("/api/v1/events?action=instance.registered").await;
    assert_eq!(events["items"].as_array().unwrap().len(), 0, "{events}");

    let ok = a
        .report(
            "0b0e7ee0-1111-4222-8333-944455556668",
            &rfc3339(RawAgent::now()),
            &[("ess", 1)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // The report took the room, and marked its expiry within the expiry's second
    // (migration 0026).
    let (room, mark, expires): (Option<Vec<u8>>, i64, i64) = db
        .query_row(
            "SELECT report_room, auth_expiry_mark, auth_expires_at FROM instances WHERE id = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(room, None);
    assert_eq!(satellite::domain::timers::marked_expiry(mark), expires);
    let (s, b) = l
        .api
        .delete(&format!(
            "{}/instances/{}",
            crate::support::VA,
            a.instance_id
        ))
        .await;
    assert!(s.is_success(), "{s} {b}");
    // Its key is never handed out again: the next registration gets a larger one.
    let (_, b2) = RawAgent::register(&l.server.url, &token, "P", "S2").await;
    let b2 = b2.expect("registers");
    assert!(
        b2.instance_id > a.instance_id,
        "{} {}",
        b2.instance_id,
        a.instance_id
    );
    let gone = a
        .report(
            "0b0e7ee0-1111-4222-8333-944455556669",
            &rfc3339(RawAgent::now()),
            &[("ess", 1)],
        )
        .await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gone.body["error"]["code"], "instance_not_registered");
    // Ids that are not ours, or ours with a number that was never issued, are unknown.
    for id in [
        format!("inst_{prefix}0000000000"),
        format!("inst_{prefix}{:010}", key + 1000),
        "inst_nope".to_string(),
    ] {
        let (s, body) = l
            .api
            .delete(&format!("{}/instances/{id}", crate::support::VA))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(body["error"]["code"], "not_found", "{id}: {body}");
    }
    l.assert_counters_exact();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
