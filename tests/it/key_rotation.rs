//! Authority key rotation with an overlap: `satellite keys rotate`, then a restart; peers
//! and agents that pinned the old key move to the new one on the old key's word.

use crate::support::agent::Agent;
use crate::support::sync::{members, pack, resign, Pair};
use crate::support::{Licensed, Server, ServerOptions, VA};
use reqwest::StatusCode;
use satellite::crypto::AuthorityKey;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Rotates the upstream's key with the CLI and restarts it on the same port.
async fn rotate_upstream(pair: Pair) -> Pair {
    let Pair {
        upstream,
        satellite,
        sat_api,
    } = pair;
    let out = upstream
        .server
        .cli(&["keys", "rotate", "--overlap-days", "7"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.value("overlap_until").is_empty());
    let server = upstream.server.restart(ServerOptions::upstream());
    // A fresh client: the old one's pooled connections died with the old process.
    let api = server.admin_api().await;
    Pair {
        upstream: Licensed { server, api },
        satellite,
        sat_api,
    }
}

fn pinned_upstream_key(satellite: &Server) -> Vec<u8> {
    let db = rusqlite::Connection::open(satellite.data_dir.join("satellite.db")).unwrap();
    db.query_row("SELECT upstream_public_key FROM upstream_links", [], |r| {
        r.get(0)
    })
    .unwrap()
}

#[tokio::test]
async fn a_satellite_pinned_to_the_old_upstream_key_syncs_after_the_upstream_rotates() {
    let pair = Pair::start().await;
    pair.register_disconnected().await;
    pair.sync_disconnected().await;
    let old = AuthorityKey::load_or_create(&pair.upstream.server.data_dir).unwrap();
    assert_eq!(
        pinned_upstream_key(&pair.satellite),
        old.verifying_key().as_bytes()
    );

    let pair = rotate_upstream(pair).await;
    let new = AuthorityKey::load_or_create(&pair.upstream.server.data_dir).unwrap();
    assert_ne!(new.public_key_b64(), old.public_key_b64());
    assert_eq!(new.authority_id(), old.authority_id(), "the id stays");

    let out = pair
        .satellite
        .cli(&["bundle", "export", "--account", "Acme"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let response = pair.upstream_import(Path::new(&out.value("bundle")));
    let m: Value = serde_json::from_slice(&members(&response)[0].1).unwrap();
    assert_eq!(m["from"]["public_key"], new.public_key_b64());
    assert!(m["from"]["key_rotation"]["statement"].is_string(), "{m}");

    // The statement vouches for the new key only: a stranger carrying it gets nowhere.
    let stranger_server = Server::start();
    let stranger = AuthorityKey::load_or_create(&stranger_server.data_dir).unwrap();
    let mut forged = members(&response);
    resign(&mut forged, &stranger, |v| {
        v["from"]["public_key"] = json!(stranger.public_key_b64())
    });
    let work = tempfile::tempdir().unwrap();
    let forged_path: PathBuf = work.path().join("forged.tar.gz");
    pack(&forged_path, &forged);
    let out = pair
        .satellite
        .cli(&["bundle", "import", forged_path.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("does not verify"), "{}", out.stderr);
    assert_eq!(
        pinned_upstream_key(&pair.satellite),
        old.verifying_key().as_bytes()
    );

    // Once the overlap is over, the old key's word counts no more.
    let late = crate::support::run_cli_env(
        crate::support::SATELLITE,
        &["bundle", "verify", response.to_str().unwrap()],
        Some(&pair.satellite.data_dir),
        None,
        &[(
            "SATELLITE_CLOCK_OFFSET_SECONDS".to_string(),
            (8 * 86_400).to_string(),
        )],
    );
    assert_eq!(late.code, 1, "{}", late.stdout);
    assert!(late.stderr.contains("does not verify"), "{}", late.stderr);

    // The real response applies on the old key's word, and the new key is pinned.
    let out = pair
        .satellite
        .cli(&["bundle", "verify", response.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = pair
        .satellite
        .cli(&["bundle", "import", response.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.value("result"), "applied");
    assert_eq!(
        pinned_upstream_key(&pair.satellite),
        new.verifying_key().as_bytes()
    );
    pair.sync_disconnected().await;
    pair.assert_same_licenses_and_usage().await;
}

#[tokio::test]
async fn an_agent_pinned_to_the_old_key_renews_and_then_trusts_the_new_one() {
    let l = Licensed::start().await;
    l.perpetual("ess", 5).await;
    let (s, b) = l
        .api
        .post(
            &format!("{VA}/tokens"),
            json!({ "expires_in_days": 30, "export_controlled": false }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let agent = Agent::new();
    let out = agent.register(&l.server, b["token"].as_str().unwrap(), "P", "S1");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let old = AuthorityKey::load_or_create(&l.server.data_dir).unwrap();
    let pinned = || -> Value {
        let state = std::fs::read(agent.state_dir().join("state.json")).unwrap();
        let state: Value = serde_json::from_slice(&state).unwrap();
        state["registration"]["authority_public_key"].clone()
    };
    assert_eq!(pinned(), json!(old.public_key_b64()));

    let out = l.server.cli(&["keys", "rotate", "--overlap-days", "3"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let Licensed { server, api: _ } = l;
    let server = server.restart(ServerOptions::upstream());
    let new = AuthorityKey::load_or_create(&server.data_dir).unwrap();

    let out = agent.run(&["renew"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        pinned(),
        json!(new.public_key_b64()),
        "the new key is pinned"
    );
    // Everything signed by the new key checks out from now on.
    let out = agent.report(&[("ess", 2)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.value("status"), "authorized");
}

#[tokio::test]
async fn the_upstream_moves_to_a_satellites_new_key_when_the_satellite_rotates() {
    let pair = Pair::start().await;
    pair.register_disconnected().await;
    pair.sync_disconnected().await;
    let old = AuthorityKey::load_or_create(&pair.satellite.data_dir).unwrap();
    let Pair {
        upstream,
        satellite,
        sat_api: _,
    } = pair;
    let out = satellite.cli(&["keys", "rotate", "--overlap-days", "7"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let satellite = satellite.restart(ServerOptions::default());
    let sat_api = satellite.admin_api().await;
    let pair = Pair {
        upstream,
        satellite,
        sat_api,
    };
    let new = AuthorityKey::load_or_create(&pair.satellite.data_dir).unwrap();
    assert_ne!(new.public_key_b64(), old.public_key_b64());
    let upstream_db =
        rusqlite::Connection::open(pair.upstream.server.data_dir.join("satellite.db")).unwrap();
    let pinned = || -> Vec<u8> {
        upstream_db
            .query_row("SELECT public_key FROM satellites", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(pinned(), old.verifying_key().as_bytes());
    pair.sync_disconnected().await;
    assert_eq!(pinned(), new.verifying_key().as_bytes(), "re-pinned");
    let events: i64 = upstream_db
        .query_row(
            "SELECT count(*) FROM events WHERE action = 'sync.peer_key_rotated'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(events, 1);
    pair.sync_disconnected().await;
    pair.assert_same_licenses_and_usage().await;
}
