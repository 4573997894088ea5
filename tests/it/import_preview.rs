//! Import preview (issue 18): `bundle verify` and `POST /api/v1/bundles/preview` say what
//! importing a bundle would change, for bundles of every kind, and change nothing; the
//! import that follows changes exactly what the preview said.

use crate::support::agent::Agent;
use crate::support::sync::{agents_on, Pair};
use crate::support::{Api, Server, VA};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every row of every table that a preview could touch, as text, plus each file under
/// the bundle dir with its hash: equal before and after means nothing was changed or kept.
/// API clients and sessions are left out: a bearer call stamps `last_used_at` by design.
fn fingerprint(server: &Server) -> (BTreeMap<String, Vec<String>>, BTreeMap<String, String>) {
    let conn = rusqlite::Connection::open_with_flags(
        server.data_dir.join("satellite.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .filter(|t: &String| !["api_clients", "sessions", "api_tokens"].contains(&t.as_str()))
        .collect();
    let mut db = BTreeMap::new();
    for t in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        db.insert(t, rows);
    }
    let mut files = BTreeMap::new();
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(
                    p.strip_prefix(root).unwrap().display().to_string(),
                    hex::encode(Sha256::digest(&bytes)),
                );
            }
        }
    }
    walk(&server.bundle_dir(), &server.bundle_dir(), &mut files);
    (db, files)
}

/// The instances satellites reported to this upstream, named as the preview names them.
fn reported_instances(server: &Server) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(
        server.data_dir.join("satellite.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT s.authority_id || '/' || si.id FROM satellite_instances si
             JOIN satellites s ON s.id = si.satellite_id ORDER BY 1",
        )
        .unwrap();
    let ids: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    ids
}

async fn preview_api(api: &Api, url: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let res = api
        .http
        .post(format!("{url}/api/v1/bundles/preview"))
        .bearer_auth(&api.token)
        .header("content-type", "application/gzip")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Previews `file` on `server` both ways, by the CLI (`bundle verify --json`) and by the
/// API as `api`: both must say the same and neither may change anything. Returns the
/// CLI's answer (the verification fields and `preview`).
async fn preview_both(server: &Server, api: &Api, file: &Path) -> Value {
    let before = fingerprint(server);
    let cli = verify_json(server, file);
    let (s, api_preview) = preview_api(api, &server.url, std::fs::read(file).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{api_preview}");
    assert_eq!(cli["preview"], api_preview, "CLI and API agree");
    assert_eq!(fingerprint(server), before, "the previews changed nothing");
    cli
}

/// A product behind the satellite (product `pid`) reports more `ess` (9) than the pools
/// hold; returns it with the sync request the satellite exports then.
async fn short_sync_request(pair: &Pair, pid: &str) -> (Vec<Agent>, PathBuf) {
    let agents = agents_on(&pair.satellite, &pair.sat_api, pid, &[9]).await;
    let out = pair
        .satellite
        .cli(&["bundle", "export", "--account", "Acme"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    (agents, PathBuf::from(out.value("bundle")))
}

/// `bundle verify --json`: the verification fields and the preview.
fn verify_json(server: &Server, file: &Path) -> Value {
    let out = server.cli(&["bundle", "verify", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(out.stdout.trim()).unwrap()
}

fn va<'a>(preview: &'a Value, name: &str) -> &'a Value {
    preview["virtual_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no VA {name} in {preview}"))
}

/// (tag, in_use, available, status) per pool, as the preview's compliance lists them.
fn preview_pools(va: &Value) -> Vec<(String, i64, i64, String)> {
    va["compliance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["tag"].as_str().unwrap().to_string(),
                p["in_use"].as_i64().unwrap(),
                p["available"].as_i64().unwrap(),
                p["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The same, as the licenses route lists them after the import.
async fn listed_pools(api: &Api) -> Vec<(String, i64, i64, String)> {
    let (s, b) = api.get(&format!("{VA}/licenses")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let mut pools: Vec<_> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["tag"].as_str().unwrap().to_string(),
                l["in_use"].as_i64().unwrap(),
                l["available"].as_i64().unwrap(),
                l["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    pools.sort();
    pools
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// One pair, all four kinds: each previewed by the API and the CLI (same JSON), each
/// preview leaving the database and the bundle dir as they were, each import then
/// changing exactly what its preview said; the sync request is the one that makes a pool
/// short on the upstream; a repeated bundle previews as a duplicate, a tampered one is
/// refused with the import's code and kept nowhere.
#[tokio::test]
async fn previews_of_every_kind_change_nothing_and_match_the_import() {
    let pair = Pair::start().await;
    let up = &pair.upstream.server;
    let sat = &pair.satellite;
    let carry = tempfile::tempdir().unwrap();

    // registration-request, previewed on the upstream.
    let token = pair.satellite_token().await;
    let res = pair
        .sat_api
        .http
        .post(format!("{}/api/v1/accounts/Acme/upstream", sat.url))
        .bearer_auth(&pair.sat_api.token)
        .json(&json!({ "mode": "disconnected", "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let request = res.bytes().await.unwrap().to_vec();
    let request_path = write(carry.path(), "reg-request.tar.gz", &request);
    let cli = preview_both(up, &pair.upstream.api, &request_path).await;
    assert_eq!(cli["import"], "would_apply");
    assert_eq!(cli["preview"]["result"], "would_apply");
    assert_eq!(cli["preview"]["kind"], "registration-request");
    assert_eq!(cli["preview"]["changes_account"], "Acme");
    // Only those who run sync may ask (as for the import).
    let admin = up.api("account-admin", Some("Acme")).await;
    let (s, b) = preview_api(&admin, &up.url, request.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    // The token is still unused: the import itself redeems it.
    let response = pair.upstream_import(&request_path);

    // registration-response, previewed on the satellite: the catalog arrives.
    let preview = preview_both(sat, &pair.sat_api, &response).await["preview"].clone();
    assert_eq!(preview["kind"], "registration-response");
    let lab = va(&preview, "Lab");
    assert_eq!(lab["created"], true);
    let added: Vec<(&str, i64)> = lab["licenses_added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["tag"].as_str().unwrap(), l["quantity"].as_i64().unwrap()))
        .collect();
    assert_eq!(added, vec![("adv", 2), ("ess", 5)]);
    let out = sat.cli(&["bundle", "import", response.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(listed_pools(&pair.sat_api).await, preview_pools(lab));

    // A product uses more than the pools hold: short on the satellite at once, and the
    // sync request would make the upstream's pool short too.
    let (_agents, sync_request) = short_sync_request(&pair, "PV").await;

    // sync-request, previewed on the upstream.
    let preview = preview_both(up, &pair.upstream.api, &sync_request).await["preview"].clone();
    assert_eq!(preview["kind"], "sync-request");
    let lab = va(&preview, "Lab");
    assert_eq!(lab["instances_new"].as_array().unwrap().len(), 1, "{lab}");
    let usage = &lab["usage"][0];
    assert_eq!(
        (
            &usage["tag"],
            &usage["before"],
            &usage["after"],
            &usage["delta"]
        ),
        (&json!("ess"), &json!(0), &json!(9), &json!(9))
    );
    assert_eq!(preview["turns_short"], json!(["Lab / ess"]), "{preview}");
    let ess = lab["compliance"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["tag"] == "ess")
        .unwrap();
    assert_eq!(ess["status"], "insufficient");
    assert_eq!(ess["turns_short"], true);
    let text = up.cli(&["bundle", "verify", sync_request.to_str().unwrap()]);
    assert!(
        text.stdout.contains("turns short: Lab / ess"),
        "{}",
        text.stdout
    );
    assert!(reported_instances(up).is_empty());
    let sync_response = pair.upstream_import(&sync_request);
    assert_eq!(listed_pools(&pair.upstream.api).await, preview_pools(lab));
    assert_eq!(
        json!(reported_instances(up)),
        lab["instances_new"],
        "exactly the instances the preview named"
    );

    // The same request again: a duplicate, nothing would change.
    let (_, again) = preview_api(
        &pair.upstream.api,
        &up.url,
        std::fs::read(&sync_request).unwrap(),
    )
    .await;
    assert_eq!(again["result"], "duplicate", "{again}");

    // sync-response, previewed on the satellite, after the upstream raised ess to 8.
    let (s, b) = pair
        .upstream
        .api
        .patch(&format!("{VA}/licenses/ess"), json!({ "quantity": 8 }))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let out = sat.cli(&["bundle", "export", "--account", "Acme"]);
    let second = pair.upstream_import(Path::new(&out.value("bundle")));
    let _ = sync_response; // superseded by the newer response below
    let preview = preview_both(sat, &pair.sat_api, &second).await["preview"].clone();
    assert_eq!(preview["kind"], "sync-response");
    let changed = &va(&preview, "Lab")["licenses_changed"][0];
    assert_eq!(changed["tag"], "ess");
    assert_eq!(changed["quantity"], json!({ "old": 5, "new": 8 }));
    let out = sat.cli(&["bundle", "import", second.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        listed_pools(&pair.sat_api).await,
        preview_pools(va(&preview, "Lab"))
    );

    // Tampered: refused as the import would refuse it, and kept nowhere.
    let mut bytes = std::fs::read(&second).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    let before = fingerprint(sat);
    let (s, b) = preview_api(&pair.sat_api, &sat.url, bytes).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "bundle_rejected");
    assert_eq!(
        fingerprint(sat),
        before,
        "no rejected/ file, no history row"
    );

    // Byte for byte: with the satellite stopped, the CLI previews a new response and
    // the database files and the bundle dir are exactly as they were.
    let out = sat.cli(&["bundle", "export", "--account", "Acme"]);
    let third = pair.upstream_import(Path::new(&out.value("bundle")));
    let Pair { satellite, .. } = pair;
    let bundles = satellite.bundle_dir();
    let (_keep_dir, data_dir) = satellite.stop();
    let cli = |args: &[&str]| {
        crate::support::run_cli(crate::support::SATELLITE, args, Some(&data_dir), None)
    };
    assert_eq!(cli(&["check"]).code, 0);
    // Copies whatever a WAL holds into the database file and closes, which removes the
    // WAL and its index. A CLI process can exit before its checkpointer's first pass
    // (250 ms) and leave both behind, so their bytes say nothing; the database file's
    // bytes, once settled, say whether anything was committed.
    let settle = || {
        let conn = rusqlite::Connection::open(data_dir.join("satellite.db")).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    };
    settle();
    let files = |dir: &Path| {
        let mut all = BTreeMap::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                all.insert(p.display().to_string(), std::fs::read(&p).unwrap());
            }
        }
        all
    };
    let tree = |dir: &Path| {
        ["inbox", "outbox", "archive", "rejected"]
            .map(|sub| files(&dir.join(sub)))
            .to_vec()
    };
    let (db_before, bundles_before) = (files(&data_dir), tree(&bundles));
    let out = cli(&["bundle", "verify", third.to_str().unwrap(), "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["preview"]["result"], "would_apply", "{v}");
    settle();
    let db_after = files(&data_dir);
    let changed: Vec<&String> = db_after
        .keys()
        .chain(db_before.keys())
        .filter(|k| db_after.get(*k) != db_before.get(*k))
        .collect();
    assert!(
        changed.is_empty(),
        "the database files are byte-identical, but these changed: {changed:?}"
    );
    assert!(tree(&bundles) == bundles_before, "the bundle dir too");
}

/// The Sync pages import in two steps: the upload shows the preview (the pool the import
/// makes short highlighted), Discard leaves everything as it was, Apply imports exactly
/// the previewed bytes.
#[tokio::test]
async fn the_pages_show_the_preview_then_apply_or_discard() {
    use crate::support::webdriver::Browser;
    let pair = Pair::start().await;
    pair.register_disconnected().await;
    let up = &pair.upstream.server;
    let sat = &pair.satellite;
    let (_agents, request) = short_sync_request(&pair, "PB").await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let downloads = tempfile::tempdir().unwrap();
    browser.allow_downloads(downloads.path()).await;
    let up_url = up.url.clone();
    let sat_url = sat.url.replace("127.0.0.1", "localhost");
    browser.first_admin_login(up, &up_url).await;
    browser.first_admin_login(sat, &sat_url).await;

    // Upstream: the request's preview, the pool it makes short flagged; Discard first.
    browser.goto(&format!("{up_url}/sync")).await;
    let before = fingerprint(up);
    browser.upload("#request-file", &request).await;
    browser.click("#answer").await;
    assert!(browser.current_url().await.contains("/sync/previews/"));
    assert_eq!(browser.text("#changes-account").await, "Acme");
    assert!(browser.text("#preview-short").await.contains("Lab / ess"));
    assert!(browser
        .text(".preview-pools tr.turns-short")
        .await
        .contains("ess"));
    assert!(browser.text(".preview-usage").await.contains("+9"));
    browser.screenshot("preview-01-upstream-request").await;
    browser.click("#discard").await;
    assert!(browser.text(".flash").await.contains("Discarded"));
    assert_eq!(
        fingerprint(up).1,
        before.1,
        "nothing kept in the bundle dir"
    );
    assert!(reported_instances(up).is_empty(), "nothing applied");

    // Again, and Apply: the response downloads and the upstream counts the instance.
    browser.upload("#request-file", &request).await;
    browser.click("#answer").await;
    browser.click_download("#apply").await;
    let response = browser.downloaded(downloads.path(), "sync-response").await;
    assert_eq!(reported_instances(up).len(), 1);

    // Satellite: the response's preview, then Apply.
    browser.goto(&format!("{sat_url}/accounts/Acme/sync")).await;
    browser.upload("#response-file", &response).await;
    browser.click("#import").await;
    assert!(browser.text("h1").await.contains("sync-response"));
    browser.screenshot("preview-02-satellite-response").await;
    browser.click("#apply").await;
    assert!(browser
        .text(".flash")
        .await
        .contains("Imported the sync response"));
    assert_eq!(browser.text("#sequences").await, "1 / 1");
    // A used preview is gone: applying it twice is not possible.
    browser.goto(&format!("{sat_url}/sync/previews/nope")).await;
    browser.screenshot("preview-03-gone").await;
    browser.quit().await;
}
