//! Sync between two real server processes: the disconnected loop by files, the connected
//! loop on a cron schedule, bundles checked with standard tools, and every rejection.

use crate::support::agent::Agent;
use crate::support::sync::{agents_on, members, pack, resign, Pair};
use crate::support::{Server, VA};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// Agents behind the satellite (product SAT), each reporting `ess` = n.
async fn satellite_agents(pair: &Pair, usage: &[i64]) -> Vec<Agent> {
    agents_on(&pair.satellite, &pair.sat_api, "SAT", usage).await
}

#[tokio::test]
async fn disconnected_loop_by_files_ends_with_the_same_licenses_and_usage() {
    let pair = Pair::start().await;
    pair.register_disconnected().await;
    // The catalog arrived: Lab is synced (read-only here) with the upstream's licenses.
    let (_, va) = pair.sat_api.get(VA).await;
    assert_eq!(va["synced"], true);
    let (s, b) = pair.sat_api.delete(VA).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("synced_read_only"))
    );

    let agents = satellite_agents(&pair, &[3, 3]).await;
    pair.sync_disconnected().await;
    pair.assert_same_licenses_and_usage().await;
    let up = Pair::pools(&pair.upstream.api).await;
    assert!(
        up.contains(&("ess".into(), 5, 5, "in_compliance".into())),
        "{up:?}"
    );
    assert!(
        up.contains(&("adv".into(), 2, 1, "in_compliance".into())),
        "adv covers one: {up:?}"
    );

    // Usage changes and a license changes upstream; one more round and both agree again.
    agents[0].report(&[("ess", 1)]);
    pair.upstream
        .license(json!({ "tag": "new", "name": "new", "type": "perpetual", "quantity": 9, "start": "2020-01-01" }))
        .await;
    pair.sync_disconnected().await;
    pair.assert_same_licenses_and_usage().await;
    let (_, state) = pair.sat_api.get("/api/v1/accounts/Acme/upstream").await;
    assert_eq!(
        (
            state["last_sequence"].as_i64(),
            state["last_acked_sequence"].as_i64()
        ),
        (Some(2), Some(2))
    );

    // The upstream lists the satellite; its counters still equal a recount.
    let out = pair.upstream.server.cli(&["check"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (_, history) = pair.upstream.api.get("/api/v1/sync/history").await;
    let kinds: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"sync-request") && kinds.contains(&"sync-response"));
    // Imported files were archived on both sides.
    assert!(
        std::fs::read_dir(pair.upstream.server.bundle_dir().join("archive"))
            .unwrap()
            .count()
            >= 3
    );
}

#[tokio::test]
async fn a_lost_or_repeated_file_is_harmless() {
    let pair = Pair::start().await;
    pair.register_disconnected().await;
    satellite_agents(&pair, &[2]).await;
    // Request 1 is lost on the way; request 2 carries everything not acknowledged.
    let lost = pair
        .satellite
        .cli(&["bundle", "export", "--account", "Acme"]);
    assert_eq!(lost.code, 0);
    pair.sync_disconnected().await;
    pair.assert_same_licenses_and_usage().await;
    // Request 1 found later: older than what was applied, so refused, and nothing changes.
    let out = pair
        .upstream
        .server
        .cli(&["bundle", "import", &lost.value("bundle")]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("out of order"), "{}", out.stderr);
    pair.assert_same_licenses_and_usage().await;
}

#[tokio::test]
async fn connected_loop_on_a_cron_schedule() {
    let pair = Pair::start().await;
    let state = pair.register_connected().await;
    assert_eq!(
        (state["state"].as_str(), state["mode"].as_str()),
        (Some("registered"), Some("connected"))
    );

    let (s, sched) = pair
        .sat_api
        .get("/api/v1/accounts/Acme/sync/schedule")
        .await;
    assert_eq!(
        (s, sched["cron"].as_str()),
        (StatusCode::OK, Some("0 0 2 * * *"))
    );
    assert_eq!(sched["next_runs"].as_array().unwrap().len(), 5);
    let (s, b) = pair
        .sat_api
        .put(
            "/api/v1/accounts/Acme/sync/schedule",
            json!({ "cron": "0 2 * *" }),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_cron"))
    );
    // Five fields are read with seconds 0 and shown back in six.
    let (s, b) = pair
        .sat_api
        .put(
            "/api/v1/accounts/Acme/sync/schedule",
            json!({ "cron": "0 2 * * *" }),
        )
        .await;
    assert_eq!(
        (s, b["cron"].as_str()),
        (StatusCode::OK, Some("0 0 2 * * *")),
        "{b}"
    );
    let (s, sched) = pair
        .sat_api
        .put(
            "/api/v1/accounts/Acme/sync/schedule",
            json!({ "cron": "*/2 * * * * *" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{sched}");

    let agents = satellite_agents(&pair, &[4]).await;
    wait_until_same(&pair, "ess", 4).await;
    assert_eq!(
        agents[0].report(&[("ess", 2)]).value("status"),
        "authorized"
    );
    wait_until_same(&pair, "ess", 2).await;
    // Sync now works too, and history shows scheduled runs.
    pair.sync_now().await;
    let (_, history) = pair.sat_api.get("/api/v1/sync/history?limit=100").await;
    let responses = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "sync-response")
        .count();
    assert!(responses >= 3, "{history}");
}

async fn wait_until_same(pair: &Pair, tag: &str, in_use: i64) {
    for _ in 0..60 {
        let up = Pair::pools(&pair.upstream.api).await;
        if up.iter().any(|p| p.0 == tag && p.2 == in_use) {
            pair.assert_same_licenses_and_usage().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = pair.satellite.log();
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    panic!(
        "the scheduled sync never brought {tag}={in_use} upstream; satellite log:\n{}",
        tail.join("\n")
    );
}

#[tokio::test]
async fn bundles_check_out_with_tar_sha256sum_and_openssl() {
    let pair = Pair::start().await;
    pair.register_disconnected().await;
    satellite_agents(&pair, &[1]).await;
    let out = pair
        .satellite
        .cli(&["bundle", "export", "--account", "Acme"]);
    let bundle = std::fs::canonicalize(out.value("bundle")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |cmd: &str, args: &[&str]| {
        let o = std::process::Command::new(cmd)
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect(cmd);
        assert!(
            o.status.success(),
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    run("tar", &["xzf", bundle.to_str().unwrap()]);
    let verified = run(
        "openssl",
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "signer.pub.pem",
            "-rawin",
            "-in",
            "manifest.json",
            "-sigfile",
            "manifest.sig",
        ],
    );
    assert!(
        verified.contains("Signature Verified Successfully"),
        "{verified}"
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "satellite-bundle/1");
    assert_eq!(manifest["kind"], "sync-request");
    for f in manifest["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let sum = run("sha256sum", &[name]);
        assert_eq!(
            sum.split_whitespace().next(),
            f["sha256"].as_str(),
            "{name}"
        );
        let lines = std::fs::read_to_string(dir.path().join(name))
            .unwrap()
            .lines()
            .count();
        assert_eq!(lines as u64, f["records"].as_u64().unwrap());
    }
    let out = pair
        .upstream
        .server
        .cli(&["bundle", "verify", bundle.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.value("signature"), "pinned key");
}

/// The upstream's view of the satellite: sequence and instances, to prove nothing changed.
async fn upstream_state(pair: &Pair) -> (Value, Vec<(String, i64, i64, String)>) {
    let (_, history) = pair
        .upstream
        .api
        .get("/api/v1/sync/history?limit=500")
        .await;
    let applied: Vec<Value> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["result"] == "applied")
        .cloned()
        .collect();
    (json!(applied), Pair::pools(&pair.upstream.api).await)
}

#[tokio::test]
async fn every_bad_bundle_is_rejected_whole_and_changes_nothing() {
    let pair = Pair::start().await;
    pair.register_disconnected().await;
    satellite_agents(&pair, &[2]).await;
    pair.sync_disconnected().await;
    satellite_agents(&pair, &[1]).await;
    let out = pair
        .satellite
        .cli(&["bundle", "export", "--account", "Acme"]);
    let good = std::path::PathBuf::from(out.value("bundle"));
    let work = tempfile::tempdir().unwrap();
    let sat_key =
        satellite::crypto::AuthorityKey::load_or_create(&pair.satellite.data_dir).unwrap();
    let other = Server::start();
    let stranger = satellite::crypto::AuthorityKey::load_or_create(&other.data_dir).unwrap();

    let mut cases: Vec<(&str, std::path::PathBuf, &str)> = vec![];
    let write = |name: &str, m: &[(String, Vec<u8>)]| {
        let p = work.path().join(format!("{name}.tar.gz"));
        pack(&p, m);
        p
    };
    let base = members(&good);
    // tampered: a data file changed, manifest untouched
    let mut m = base.clone();
    let last = m.len() - 1;
    let text = String::from_utf8(m[last].1.clone())
        .unwrap()
        .replace("\"count\":1", "\"count\":7");
    m[last].1 = text.into_bytes();
    cases.push((
        "tampered",
        write("tampered", &m),
        "does not match the manifest",
    ));
    // truncated: cut in half
    let bytes = std::fs::read(&good).unwrap();
    let p = work.path().join("truncated.tar.gz");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    cases.push(("truncated", p, "truncated"));
    // unsigned: no manifest.sig
    let mut m = base.clone();
    m.remove(1);
    cases.push(("unsigned", write("unsigned", &m), "manifest.sig"));
    // wrongly signed: a stranger's signature
    let mut m = base.clone();
    resign(&mut m, &stranger, |_| {});
    cases.push(("wrongly signed", write("wrong-sig", &m), "does not verify"));
    // foreign account: re-signed by the real satellite, for an account the upstream does not know
    let mut m = base.clone();
    resign(&mut m, &sat_key, |v| v["account"] = json!("Other"));
    cases.push(("foreign account", write("foreign-account", &m), "foreign"));
    // foreign authority: a stranger claiming its own authority id
    let mut m = base.clone();
    resign(&mut m, &stranger, |v| {
        v["from"]["authority_id"] = json!(stranger.authority_id())
    });
    cases.push((
        "foreign authority",
        write("foreign-authority", &m),
        "foreign",
    ));
    // out of order: an older sequence
    let mut m = base.clone();
    resign(&mut m, &sat_key, |v| {
        v["sequence"] = json!(1);
        v["bundle_id"] = json!("00000000-0000-4000-8000-000000000001");
    });
    cases.push(("out of order", write("out-of-order", &m), "out of order"));
    // wrong kind: a response sent to the upstream
    let mut m = base.clone();
    resign(&mut m, &sat_key, |v| v["kind"] = json!("sync-response"));
    cases.push(("wrong kind", write("wrong-kind", &m), "wrong kind"));

    let before = upstream_state(&pair).await;
    for (what, path, reason) in &cases {
        let out = pair
            .upstream
            .server
            .cli(&["bundle", "import", path.to_str().unwrap()]);
        assert_eq!(out.code, 1, "{what} must be rejected");
        assert!(out.stderr.contains(reason), "{what}: {}", out.stderr);
        let rejected = pair
            .upstream
            .server
            .bundle_dir()
            .join("rejected")
            .join(path.file_name().unwrap());
        assert!(rejected.exists(), "{what}: copied to rejected/");
        let why = std::fs::read_to_string(format!("{}.reason", rejected.display())).unwrap();
        assert!(why.contains(reason), "{what}: {why}");
        assert_eq!(
            upstream_state(&pair).await,
            before,
            "{what} changed nothing"
        );
    }
    // Over the API a rejection is 422 bundle_rejected.
    let res = pair
        .upstream
        .api
        .post_raw(
            "/api/v1/bundles/import",
            "application/gzip",
            std::fs::read(&cases[0].1).unwrap(),
        )
        .await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bundle_rejected");
    // The good bundle still applies, once; again it is a no-op.
    pair.upstream_import(&good);
    let again = pair
        .upstream
        .server
        .cli(&["bundle", "import", good.to_str().unwrap()]);
    assert_eq!(again.value("result"), "duplicate");
    // A satellite refuses request kinds.
    let out = pair
        .satellite
        .cli(&["bundle", "import", good.to_str().unwrap()]);
    assert!(out.stderr.contains("wrong kind"), "{}", out.stderr);
}

/// A minimal HTTP CONNECT proxy on loopback that counts the tunnels it opens.
async fn connect_proxy() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let Some(target) = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split_whitespace().next())
                else {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                        .await;
                    return;
                };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (format!("http://{addr}"), tunnels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_sync_goes_through_a_proxy_with_tls_verified_end_to_end() {
    let (proxy, tunnels) = connect_proxy().await;
    let upstream = crate::support::Licensed::start().await;
    upstream.perpetual("ess", 3).await;
    let satellite = Server::start_with(crate::support::ServerOptions {
        env: vec![("SATELLITE_UPSTREAM_PROXY".into(), proxy)],
        ..Default::default()
    });
    let api = satellite.admin_api().await;
    api.create_account("Acme").await;
    async fn token(up: &crate::support::Licensed) -> String {
        let (_, b) = up
            .api
            .post(
                "/api/v1/accounts/Acme/satellite-tokens",
                json!({ "expires_in_days": 1 }),
            )
            .await;
        b["token"].as_str().unwrap().to_string()
    }
    // A CA that did not issue the upstream's certificate: refused, nothing registered.
    let wrong_ca = std::fs::read_to_string(satellite.data_dir.join("tls/cert.pem")).unwrap();
    let (s, b) = api
        .post(
            "/api/v1/accounts/Acme/upstream",
            json!({ "mode": "connected", "token": token(&upstream).await,
                "url": upstream.server.url, "ca_cert_pem": wrong_ca }),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("upstream_untrusted")),
        "{b}"
    );
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not trusted"));
    let ca = std::fs::read_to_string(upstream.server.data_dir.join("tls/cert.pem")).unwrap();
    let (s, b) = api
        .post(
            "/api/v1/accounts/Acme/upstream",
            json!({ "mode": "connected", "token": token(&upstream).await,
                "url": upstream.server.url, "ca_cert_pem": ca }),
        )
        .await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("registered")),
        "{b}"
    );
    let (s, _) = api.post("/api/v1/accounts/Acme/sync/now", json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        tunnels.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "every exchange went through the proxy"
    );
    let (_, licenses) = api.get(&format!("{VA}/licenses")).await;
    assert_eq!(licenses["items"][0]["tag"], "ess");
}

#[tokio::test]
async fn alerts_come_and_go_with_their_causes() {
    let pair = Pair::start().await;
    pair.register_disconnected().await;
    let (_, alerts) = pair.sat_api.get("/api/v1/alerts").await;
    assert_eq!(
        alerts["items"],
        json!([]),
        "a fresh registration needs nothing"
    );
    // A token that expires in 3 days and a pool that is short.
    let (_, t) = pair
        .sat_api
        .post(
            &format!("{VA}/tokens"),
            json!({ "expires_in_days": 3, "export_controlled": false }),
        )
        .await;
    let agent = Agent::new();
    agent.register(&pair.satellite, t["token"].as_str().unwrap(), "P", "S");
    agent.report(&[("ess", 9)]);
    let (_, alerts) = pair.sat_api.get("/api/v1/alerts").await;
    let kinds: Vec<&str> = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"license_short") && kinds.contains(&"token_expiring"),
        "{alerts}"
    );
    // The cause goes away, so does the alert.
    agent.report(&[("ess", 1)]);
    let (_, alerts) = pair.sat_api.get("/api/v1/alerts").await;
    assert!(!alerts.to_string().contains("license_short"), "{alerts}");
    // 31 days without a sync: overdue.
    let later = pair
        .satellite
        .restart(crate::support::ServerOptions::default().days_later(31));
    let api = later.admin_api().await;
    let (_, alerts) = api.get("/api/v1/alerts").await;
    let overdue = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "sync_overdue")
        .cloned();
    assert_eq!(overdue.expect("sync_overdue")["severity"], "major");
}

#[tokio::test]
async fn bundles_dropped_into_the_inbox_are_imported_or_rejected() {
    let pair = Pair::start().await;
    pair.register_disconnected().await;
    satellite_agents(&pair, &[2]).await;
    let out = pair
        .satellite
        .cli(&["bundle", "export", "--account", "Acme"]);
    let response = pair.upstream_import(Path::new(&out.value("bundle")));
    let inbox = pair.satellite.bundle_dir().join("inbox");
    std::fs::copy(&response, inbox.join("response.tar.gz")).unwrap();
    std::fs::write(inbox.join("garbage.tar.gz"), b"not a bundle").unwrap();
    let archived = pair.satellite.bundle_dir().join("archive/response.tar.gz");
    let rejected = pair
        .satellite
        .bundle_dir()
        .join("rejected/garbage.tar.gz.reason");
    for _ in 0..100 {
        if archived.exists() && rejected.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(archived.exists(), "the response was imported and archived");
    assert!(std::fs::read_to_string(&rejected)
        .unwrap()
        .contains("not a gzip"));
    assert!(!inbox.join("response.tar.gz").exists() && !inbox.join("garbage.tar.gz").exists());
    pair.assert_same_licenses_and_usage().await;
    let (_, state) = pair.sat_api.get("/api/v1/accounts/Acme/upstream").await;
    assert_eq!(state["last_acked_sequence"], 1);
}
