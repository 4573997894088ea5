//! Reservations (CONTRACT section 5) end to end: real `satellite-agent` processes make
//! request codes, install authorization codes and make return codes; the admin API
//! drives the lifecycle; every refusal is checked to change nothing.

use crate::support::agent::Agent;
use crate::support::fixtures::{request_code, reserve, Lic, RES};
use crate::support::{Licensed, VA};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Writes a file in the agent's dir and returns its path.
fn file(agent: &Agent, name: &str, text: &str) -> PathBuf {
    let p = agent.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

async fn authority_pem(t: &Licensed, agent: &Agent) -> PathBuf {
    let res = crate::support::async_client(false)
        .get(format!("{}/agent/v1/authority.pem", t.server.url))
        .send()
        .await
        .unwrap();
    assert!(
        res.headers().contains_key("x-satellite-response-signature"),
        "signed like every /agent/v1 answer"
    );
    let pem = res.text().await.unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    file(agent, "authority.pub.pem", &pem)
}

fn install(agent: &Agent, code: &Path, key: Option<&Path>) -> crate::support::CliOutput {
    let mut args = vec!["reserve", "install", code.to_str().unwrap()];
    if let Some(k) = key {
        args.extend(["--authority-key", k.to_str().unwrap()]);
    }
    agent.run(&args)
}

use std::path::Path;

fn pool(pools: &std::collections::BTreeMap<String, Value>, tag: &str) -> (i64, i64, i64) {
    let l = &pools[tag];
    (
        l["in_use"].as_i64().unwrap(),
        l["reserved"].as_i64().unwrap(),
        l["available"].as_i64().unwrap(),
    )
}

/// The reservations and pools, to show a refusal changed nothing.
async fn snapshot(t: &Licensed) -> (Value, std::collections::BTreeMap<String, Value>) {
    let (s, list) = t.api.get(RES).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    (list, t.pools().await)
}

async fn refused(t: &Licensed, path: &str, body: Value, status: StatusCode, code: &str) {
    let before = snapshot(t).await;
    let (s, b) = t.api.post(path, body).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (status, Some(code)),
        "{b}"
    );
    assert_eq!(snapshot(t).await, before, "a refusal changes nothing");
}

#[tokio::test]
async fn specific_reservation_round_trip_with_update_and_return() {
    let t = Licensed::with_licenses(&[Lic::plain("tag.a", 10), Lic::plain("tag.b", 5)]).await;
    let agent = Agent::new();
    // Never registered: the key is made on first run.
    let rc = request_code(&agent, "CUCM", "SN-1", false);
    let status = agent.run(&["status"]);
    assert_eq!(status.value("state"), "reservation-pending");

    let (s, b) = t
        .api
        .post(
            RES,
            json!({"request_code": rc, "virtual_account": "Lab",
                   "licenses": [{"tag": "tag.a", "count": 3}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["state"], "pending");
    let id = b["id"].as_str().unwrap().to_string();
    let code1 = b["authorization_code"].as_str().unwrap().to_string();
    assert!(code1.starts_with("<specificPLR><authorizationCode><flag>A</flag><version>1</version>"));
    assert_eq!(
        pool(&t.pools().await, "tag.a"),
        (0, 3, 7),
        "reserved from pending on"
    );

    // No pinned key and none given: refused. Tampered: refused. Then installed.
    let f1 = file(&agent, "auth1.xml", &code1);
    let out = install(&agent, &f1, None);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let pem = authority_pem(&t, &agent).await;
    let tampered = file(
        &agent,
        "bad.xml",
        &code1.replace("<count>3</count>", "<count>9</count>"),
    );
    let out = install(&agent, &tampered, Some(&pem));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not signed"), "{}", out.stderr);
    let out = install(&agent, &f1, Some(&pem));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let confirmation = out.stdout.trim().to_string();
    assert_eq!(confirmation.len(), 8);

    refused(
        &t,
        &format!("{RES}/{id}/confirm"),
        json!({"confirmation_code": "00000000"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_confirmation_code",
    )
    .await;
    let (s, b) = t
        .api
        .post(
            &format!("{RES}/{id}/confirm"),
            json!({"confirmation_code": confirmation}),
        )
        .await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("confirmed")),
        "{b}"
    );
    let status = agent.run(&["status"]);
    assert_eq!(status.value("state"), "reserved");
    assert!(
        status
            .stdout
            .contains("license=tag.a status=reserved count=3"),
        "{}",
        status.stdout
    );

    // The product registers after all: its reports of reserved tags draw nothing.
    let token = t.simple_token().await;
    let out = agent.register(&t.server, &token, "CUCM", "SN-1");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = agent.report(&[("tag.a", 2), ("tag.b", 1)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pools = t.pools().await;
    assert_eq!(
        pool(&pools, "tag.a"),
        (0, 3, 7),
        "reserved tag draws nothing more"
    );
    assert_eq!(pool(&pools, "tag.b"), (1, 0, 4));
    let (_, inst) = t.api.get(&format!("{VA}/instances")).await;
    assert_eq!(inst["items"][0]["status"], "reserved", "{inst}");
    assert_eq!(agent.run(&["status"]).value("state"), "reserved");

    // Update: the larger of old and new is held until the new code is confirmed.
    let (s, b) = t
        .api
        .post(
            &format!("{RES}/{id}/update"),
            json!({"licenses": [{"tag": "tag.a", "count": 1}, {"tag": "tag.b", "count": 2}]}),
        )
        .await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("updating")),
        "{b}"
    );
    let code2 = b["authorization_code"].as_str().unwrap().to_string();
    assert!(code2.contains("<version>2</version>"));
    let pools = t.pools().await;
    assert_eq!(pool(&pools, "tag.a"), (0, 3, 7), "in transit: max(3, 1)");
    assert_eq!(pool(&pools, "tag.b"), (1, 2, 2));
    // The old code's confirmation code is refused from the update on.
    refused(
        &t,
        &format!("{RES}/{id}/confirm"),
        json!({"confirmation_code": confirmation}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_confirmation_code",
    )
    .await;
    // And so is the old code's return code (made here as an independent product would,
    // with the key the request was made with).
    let old_return = {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let pem = std::fs::read_to_string(agent.state_dir().join("reservation.key")).unwrap();
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap();
        let parsed = satellite::domain::reservation::parse_authorization(&code1).unwrap();
        satellite::domain::reservation::make_return_code(&key, &id, &parsed.code_bytes)
    };
    refused(
        &t,
        &format!("{RES}/return"),
        json!({"return_code": old_return}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_return_code",
    )
    .await;
    let (_, got) = t.api.get(&format!("{RES}/{id}")).await;
    assert_eq!(got["authorization_code"], code2.as_str());
    assert_eq!(
        got["licenses"],
        json!([{"tag": "tag.a", "count": 1}, {"tag": "tag.b", "count": 2}])
    );
    // Now registered: the pinned key checks the code.
    let f2 = file(&agent, "auth2.xml", &code2);
    let out = install(&agent, &f2, None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (s, b) = t
        .api
        .post(
            &format!("{RES}/{id}/confirm"),
            json!({"confirmation_code": out.stdout.trim()}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let pools = t.pools().await;
    assert_eq!(pool(&pools, "tag.a"), (0, 1, 9));
    // tag.b is now reserved for this UDI, so its report no longer draws on the pool
    // once it reports again.
    let out = agent.report(&[("tag.a", 1), ("tag.b", 1)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(pool(&t.pools().await, "tag.b"), (0, 2, 3));

    // Return: the code releases everything, once.
    let out = agent.run(&["reserve", "return"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ret = out.stdout.trim().to_string();
    assert!(ret.starts_with("RC-"));
    let (s, b) = t
        .api
        .post(&format!("{RES}/return"), json!({"return_code": ret}))
        .await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("returned")),
        "{b}"
    );
    assert_eq!(b["id"], id.as_str());
    let pools = t.pools().await;
    assert_eq!(pool(&pools, "tag.a").1, 0);
    assert_eq!(pool(&pools, "tag.b").1, 0);
    refused(
        &t,
        &format!("{RES}/return"),
        json!({"return_code": ret}),
        StatusCode::CONFLICT,
        "already_returned",
    )
    .await;
    let (_, ev) = t.api.get("/api/v1/events?limit=50").await;
    let actions: Vec<&str> = ev["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("reservation."))
        .collect();
    assert_eq!(
        actions,
        [
            "reservation.returned",
            "reservation.confirmed",
            "reservation.updated",
            "reservation.confirmed",
            "reservation.created"
        ]
    );
    t.assert_counters_exact();
}

#[tokio::test]
async fn universal_return_authorization_cancel_and_remove() {
    let t = Licensed::with_licenses(&[Lic::plain("tag.a", 2)]).await;
    let pem_agent = Agent::new();

    // Universal: no counts held, every tag reported answers reserved.
    let agent = Agent::new();
    let rc = request_code(&agent, "EXPWY", "U1", true);
    let (s, b) = t
        .api
        .post(
            RES,
            json!({"request_code": rc, "virtual_account": "Lab", "universal": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert!(b["authorization_code"]
        .as_str()
        .unwrap()
        .contains("<flag>U</flag>"));
    let uid = b["id"].as_str().unwrap().to_string();
    assert_eq!(pool(&t.pools().await, "tag.a"), (0, 0, 2));
    let pem = authority_pem(&t, &pem_agent).await;
    let f = file(&agent, "u.xml", b["authorization_code"].as_str().unwrap());
    let out = install(&agent, &f, Some(&pem));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (s, _) = t
        .api
        .post(
            &format!("{RES}/{uid}/confirm"),
            json!({"confirmation_code": out.stdout.trim()}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let token = t.simple_token().await;
    assert_eq!(agent.register(&t.server, &token, "EXPWY", "U1").code, 0);
    let out = agent.report(&[("tag.a", 5), ("tag.unknown", 1)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        pool(&t.pools().await, "tag.a"),
        (0, 0, 2),
        "universal draws nothing"
    );
    // The instance's page shows the reservation its UDI holds.
    let (_, inst) = t.api.get(&format!("{VA}/instances")).await;
    let inst_id = inst["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(inst["items"][0]["status"], "reserved");
    let session = t.server.session("viewer", Some("Acme")).await;
    let (s, html) = session
        .page(&format!(
            "/accounts/Acme/virtual-accounts/Lab/instances/{inst_id}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("instance-reservation") && html.contains(&uid),
        "{html}"
    );
    let (s, html) = session.page("/accounts/Acme/reservations?q=U1").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains(&uid), "the Reservations tab lists it");
    let status = agent.run(&["status"]);
    assert_eq!(status.value("state"), "reserved");
    assert_eq!(status.value("reservation"), "universal");
    // A code for another product is refused by the agent.
    let other = Agent::new();
    request_code(&other, "EXPWY", "U2", false);
    let out = install(&other, &f, Some(&pem));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not this product"), "{}", out.stderr);
    // The universal reservation is returned; the product's reports draw again.
    let out = agent.run(&["reserve", "return"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (s, b) = t
        .api
        .post(
            &format!("{RES}/return"),
            json!({"return_code": out.stdout.trim()}),
        )
        .await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("returned")),
        "{b}"
    );
    assert_ne!(agent.run(&["status"]).value("state"), "reserved");
    let out = agent.report(&[("tag.a", 1)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(pool(&t.pools().await, "tag.a"), (1, 0, 1));
    assert_eq!(agent.run(&["deregister"]).code, 0);
    assert_eq!(pool(&t.pools().await, "tag.a"), (0, 0, 2));

    // return-authorization: a code never installed is returned from pending.
    let r2 = reserve(&t.api, "CMS", "R1", json!([{"tag": "tag.a", "count": 2}])).await;
    let a2 = &r2.agent;
    assert_eq!(pool(&t.pools().await, "tag.a"), (0, 2, 0));
    let f2 = file(a2, "r.xml", r2.authorization_code());
    let out = a2.run(&["reserve", "return-authorization", f2.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (s, b) = t
        .api
        .post(
            &format!("{RES}/return"),
            json!({"return_code": out.stdout.trim()}),
        )
        .await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("returned")),
        "{b}"
    );
    assert_eq!(pool(&t.pools().await, "tag.a"), (0, 0, 2));

    // Cancel a pending one; a cancelled one cannot be cancelled or confirmed again.
    let r3 = reserve(&t.api, "CMS", "C1", json!([{"tag": "tag.a", "count": 1}])).await;
    let (a3, cid) = (&r3.agent, &r3.id);
    let (s, b) = t.api.delete(&format!("{RES}/{cid}")).await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{b}"
    );
    let out = a3.run(&["reserve", "cancel"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (s, b) = t.api.delete(&format!("{RES}/{cid}")).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_state"))
    );
    refused(
        &t,
        &format!("{RES}/{cid}/confirm"),
        json!({"confirmation_code": "00000000"}),
        StatusCode::CONFLICT,
        "invalid_state",
    )
    .await;

    // Remove: system admins only, with a reason; the product is lost.
    let r4 = reserve(&t.api, "CMS", "L1", json!([{"tag": "tag.a", "count": 1}])).await;
    let rid = &r4.id;
    let account_admin = t.server.api("account-admin", Some("Acme")).await;
    let (s, b) = account_admin
        .post(&format!("{RES}/{rid}/remove"), json!({"reason": "lost"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    refused(
        &t,
        &format!("{RES}/{rid}/remove"),
        json!({"reason": "  "}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "reason_required",
    )
    .await;
    let (s, b) = t
        .api
        .post(
            &format!("{RES}/{rid}/remove"),
            json!({"reason": "appliance destroyed"}),
        )
        .await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("removed")),
        "{b}"
    );
    assert_eq!(pool(&t.pools().await, "tag.a"), (0, 0, 2));
    let (_, list) = t.api.get(&format!("{RES}?state=removed")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["reason"], "appliance destroyed");
    let (_, list) = t.api.get(&format!("{RES}?q=EXPWY:U1")).await;
    assert_eq!(list["items"][0]["id"], uid.as_str());
    t.assert_counters_exact();
}

fn set_setting(t: &Licensed, column: &str, value: bool) {
    let db = rusqlite::Connection::open(t.server.data_dir.join("satellite.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    db.execute(
        &format!("UPDATE accounts SET {column} = ?1 WHERE name = 'Acme'"),
        [value],
    )
    .unwrap();
}

#[tokio::test]
async fn every_refusal_has_its_code_and_changes_nothing() {
    let t = Licensed::with_licenses(&[Lic::plain("tag.a", 3)]).await;
    t.license(
        json!({"tag": "tag.x", "name": "Crypto", "type": "perpetual", "quantity": 2,
                     "start": "2020-01-01", "export_controlled": true}),
    )
    .await;
    let agent = Agent::new();
    let rc = request_code(&agent, "CUCM", "REF1", false);
    let body = |licenses: Value| json!({"request_code": rc, "virtual_account": "Lab", "licenses": licenses});

    // A mistyped code fails its checksum.
    let typo = rc.replacen("REF1", "REFl", 1);
    refused(
        &t,
        RES,
        json!({"request_code": typo, "virtual_account": "Lab", "licenses": [{"tag": "tag.a", "count": 1}]}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request_code",
    )
    .await;
    refused(
        &t,
        RES,
        body(json!([{"tag": "tag.a", "count": 4}])),
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_licenses",
    )
    .await;
    refused(
        &t,
        RES,
        body(json!([{"tag": "tag.x", "count": 1}])),
        StatusCode::FORBIDDEN,
        "export_not_acknowledged",
    )
    .await;
    set_setting(&t, "export_allowed", false);
    refused(
        &t,
        RES,
        json!({"request_code": rc, "virtual_account": "Lab", "export_acknowledged": true,
               "licenses": [{"tag": "tag.x", "count": 1}]}),
        StatusCode::FORBIDDEN,
        "export_not_allowed",
    )
    .await;
    set_setting(&t, "export_allowed", true);
    set_setting(&t, "reservation_enabled", false);
    refused(
        &t,
        RES,
        body(json!([{"tag": "tag.a", "count": 1}])),
        StatusCode::FORBIDDEN,
        "reservation_disabled",
    )
    .await;
    set_setting(&t, "reservation_enabled", true);

    // Acknowledged export-controlled reservation goes through.
    let (s, b) = t
        .api
        .post(RES, json!({"request_code": rc, "virtual_account": "Lab", "export_acknowledged": true,
                          "licenses": [{"tag": "tag.x", "count": 1}, {"tag": "tag.a", "count": 3}]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    refused(
        &t,
        RES,
        body(json!([{"tag": "tag.a", "count": 1}])),
        StatusCode::CONFLICT,
        "already_reserved",
    )
    .await;
    // Wrong state: a pending one cannot be updated.
    refused(
        &t,
        &format!("{RES}/{id}/update"),
        json!({"licenses": [{"tag": "tag.a", "count": 1}]}),
        StatusCode::CONFLICT,
        "invalid_state",
    )
    .await;
    refused(
        &t,
        &format!("{RES}/return"),
        json!({"return_code": "RC-NOTACODE"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_return_code",
    )
    .await;

    // Another account sees none of it: 404 for the reservation, and its return code
    // matches nothing there.
    t.api.create_account("Other").await;
    let other = t.server.api("account-admin", Some("Other")).await;
    let (s, _) = other.get(&format!("{RES}/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = other
        .get(&format!("/api/v1/accounts/Other/reservations/{id}"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let f = file(&agent, "x.xml", b["authorization_code"].as_str().unwrap());
    let out = agent.run(&["reserve", "return-authorization", f.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ret = out.stdout.trim().to_string();
    let before = snapshot(&t).await;
    let (s, b) = other
        .post(
            "/api/v1/accounts/Other/reservations/return",
            json!({"return_code": ret}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_return_code")
        )
    );
    assert_eq!(snapshot(&t).await, before);
    // A viewer may read but not change.
    let viewer = t.server.api("viewer", Some("Acme")).await;
    let (s, _) = viewer.get(&format!("{RES}/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = viewer.delete(&format!("{RES}/{id}")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The OpenAPI document lists the routes.
    let (_, spec) = t.api.get("/api/openapi.json").await;
    assert!(spec["paths"]["/api/v1/accounts/{a}/reservations/{id}/confirm"].is_object());
    t.assert_counters_exact();
}

#[tokio::test]
async fn a_reservation_waiting_seven_days_raises_an_alert_that_clears_on_confirm() {
    let t = Licensed::with_licenses(&[Lic::plain("tag.a", 3)]).await;
    let r = reserve(&t.api, "CUCM", "AL1", json!([{"tag": "tag.a", "count": 1}])).await;
    let (agent, id) = (&r.agent, &r.id);
    let kinds = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, alerts) = t.api.get("/api/v1/alerts").await;
    assert!(
        !kinds(&alerts).contains(&"reservation_pending".to_string()),
        "{alerts}"
    );
    let server = t
        .server
        .restart(crate::support::ServerOptions::upstream().days_later(8));
    let api = server.admin_api().await;
    let (_, alerts) = api.get("/api/v1/alerts").await;
    assert!(
        kinds(&alerts).contains(&"reservation_pending".to_string()),
        "{alerts}"
    );
    let pem = crate::support::async_client(false)
        .get(format!("{}/agent/v1/authority.pem", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = file(agent, "a.pem", &pem);
    let f = file(agent, "a.xml", r.authorization_code());
    let out = install(agent, &f, Some(&key));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (s, _) = api
        .post(
            &format!("{RES}/{id}/confirm"),
            json!({"confirmation_code": out.stdout.trim()}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, alerts) = api.get("/api/v1/alerts").await;
    assert!(
        !kinds(&alerts).contains(&"reservation_pending".to_string()),
        "{alerts}"
    );
}

/// (tag, reserved, available) per license as one side lists them.
async fn reserved_counts(api: &crate::support::Api) -> Vec<(String, i64, i64)> {
    let (s, b) = api.get(&format!("{VA}/licenses")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["tag"].as_str().unwrap().to_string(),
                l["reserved"].as_i64().unwrap(),
                l["available"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_reservation_made_on_a_satellite_counts_alike_on_the_upstream_after_sync() {
    let pair = crate::support::sync::Pair::start().await;
    pair.register_disconnected().await;
    let r = reserve(
        &pair.sat_api,
        "CUCM",
        "SAT1",
        json!([{"tag": "ess", "count": 2}]),
    )
    .await;
    let (agent, id) = (&r.agent, &r.id);
    pair.sync_disconnected().await;
    let up = reserved_counts(&pair.upstream.api).await;
    assert_eq!(up, reserved_counts(&pair.sat_api).await, "both sides agree");
    assert!(up.contains(&("ess".into(), 2, 3)), "{up:?}");
    pair.upstream.assert_counters_exact();

    // A reservation made on the upstream counts on the satellite after the next round.
    reserve(
        &pair.upstream.api,
        "CUCM",
        "UP1",
        json!([{"tag": "ess", "count": 1}]),
    )
    .await;
    pair.sync_disconnected().await;
    let up = reserved_counts(&pair.upstream.api).await;
    assert_eq!(up, reserved_counts(&pair.sat_api).await, "both sides agree");
    assert!(up.contains(&("ess".into(), 3, 2)), "{up:?}");
    // A second request from the same product is refused while its reservation is live.
    let (s, b) = pair
        .sat_api
        .post(
            RES,
            json!({"request_code": request_code(agent, "CUCM", "SAT1", false),
                          "virtual_account": "Lab", "licenses": [{"tag": "ess", "count": 1}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");

    // Cancelled on the satellite: one more round and the upstream releases it too.
    let (s, _) = pair.sat_api.delete(&format!("{RES}/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    pair.sync_disconnected().await;
    let up = reserved_counts(&pair.upstream.api).await;
    assert_eq!(up, reserved_counts(&pair.sat_api).await);
    assert!(up.contains(&("ess".into(), 1, 4)), "{up:?}");
    pair.upstream.assert_counters_exact();
    let out = pair.satellite.cli(&["check"]);
    assert_eq!(out.code, 0, "satellite counters: {}", out.stderr);
}

/// docs/check-authorization-code.sh (the recipe of docs/protocol.md) checks a code with
/// grep, sed, base64, xxd, sha256sum and openssl alone, and agrees with the agent.
#[tokio::test]
async fn the_documented_openssl_recipe_checks_an_authorization_code() {
    let t = Licensed::with_licenses(&[Lic::plain(
        "regid.2016-07.com.cisco.UCM_Enhanced,12.0_66d0d1cf",
        4,
    )])
    .await;
    let r = reserve(
        &t.api,
        "CUCM",
        "DOC1",
        json!([{"tag": "regid.2016-07.com.cisco.UCM_Enhanced,12.0_66d0d1cf", "count": 2}]),
    )
    .await;
    let agent = &r.agent;
    let f = file(agent, "auth.xml", r.authorization_code());
    let pem = authority_pem(&t, agent).await;
    assert_eq!(
        std::fs::read_to_string(&pem).unwrap(),
        std::fs::read_to_string(t.server.data_dir.join("keys/authority.pub.pem")).unwrap(),
        "authority.pem is the key file on disk"
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/check-authorization-code.sh"
    );
    let run = |xml: &Path| {
        std::process::Command::new("sh")
            .args([script, xml.to_str().unwrap(), pem.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = run(&f);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Signature Verified Successfully"),
        "{stdout}"
    );
    let installed = install(agent, &f, Some(&pem));
    assert_eq!(installed.code, 0, "{}", installed.stderr);
    assert!(
        stdout.contains(&format!("confirmation_code={}", installed.stdout.trim())),
        "the recipe's confirmation code is the agent's: {stdout}"
    );
    let bad = file(
        agent,
        "bad.xml",
        &r.authorization_code()
            .replace("<count>2</count>", "<count>3</count>"),
    );
    assert!(
        !run(&bad).status.success(),
        "a tampered code fails the recipe"
    );
}

/// The reservation page's cancel and remove forms, and what each role may do there.
#[tokio::test]
async fn reservation_pages_cancel_remove_and_refuse_like_the_api() {
    let t = Licensed::with_licenses(&[Lic::plain("tag.a", 4)]).await;
    let mut ids = vec![];
    for sn in ["P1", "P2"] {
        let r = reserve(&t.api, "CMS", sn, json!([{"tag": "tag.a", "count": 1}])).await;
        ids.push(r.id);
    }
    let page = |id: &str| format!("/accounts/Acme/reservations/{id}");

    // An account admin cancels a pending one from its page; it has no remove form.
    let admin = t.server.session("account-admin", Some("Acme")).await;
    let (_, html) = admin.page(&page(&ids[0])).await;
    assert!(html.contains("cancel-submit") && !html.contains("remove-submit"));
    let (s, _, to) = admin
        .submit(&page(&ids[0]), &format!("{}/cancel", page(&ids[0])), &[])
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(to.as_deref(), Some(page(&ids[0]).as_str()));
    let (_, html) = admin.page(&page(&ids[0])).await;
    assert!(html.contains(">cancelled<") && html.contains("back in the pool"));
    // Posting remove anyway is refused, and changes nothing.
    let (s, _, _) = admin
        .submit(
            &page(&ids[1]),
            &format!("{}/remove", page(&ids[1])),
            &[("reason", "lost")],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A system admin removes one, with a reason; an empty one shows next to the field.
    let sys = t.server.session("system-admin", None).await;
    let (s, html, _) = sys
        .submit(
            &page(&ids[1]),
            &format!("{}/remove", page(&ids[1])),
            &[("reason", " ")],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("remove-reason-error"), "{html}");
    let (s, _, _) = sys
        .submit(
            &page(&ids[1]),
            &format!("{}/remove", page(&ids[1])),
            &[("reason", "fire")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, html) = sys.page(&page(&ids[1])).await;
    assert!(html.contains(">removed<") && html.contains("fire"));
    // A wrong-state change shows the refusal as a banner.
    let (s, html, _) = sys
        .submit(&page(&ids[1]), &format!("{}/cancel", page(&ids[1])), &[])
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(html.contains("id=\"problem\""), "{html}");
    // A viewer sees the list and the page, not the wizard.
    let viewer = t.server.session("viewer", Some("Acme")).await;
    let (s, html) = viewer
        .page("/accounts/Acme/reservations?state=removed")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains(&ids[1]) && !html.contains(&ids[0]));
    assert!(!html.contains("new-reservation"));
    let (s, _) = viewer.page("/accounts/Acme/reservations/new").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The wizard's first step answers with a redirect to the GET of its second
    // (post/redirect/get); the request code is no secret, so it rides in the URL.
    let agent = Agent::new();
    let rc = request_code(&agent, "CMS", "P3", false);
    let new = "/accounts/Acme/reservations/new";
    let (s, _, to) = sys
        .submit(
            new,
            new,
            &[("request_code", &rc), ("virtual_account", "Lab")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let to = to.unwrap_or_default();
    assert!(to.starts_with(&format!("{new}?request_code=")), "{to}");
    let (s, html) = sys.page(&to).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("id=\"reservation-step2\""), "{html}");
    assert!(html.contains("P:CMS,S:P3"), "{html}");
    // A code mistyped in that URL is checked again: step 1, the error next to it.
    let (s, html) = sys
        .page(&format!(
            "{new}?request_code=CB-ZCMS:P3-0&virtual_account=Lab"
        ))
        .await;
    assert!(s.is_client_error(), "{s}");
    assert!(html.contains("id=\"request-code-error\""), "{html}");
    assert!(!html.contains("id=\"reservation-step2\""), "{html}");
    // The .xml download is the authorization code.
    let res = viewer
        .get(&format!("{}/authorization.xml", page(&ids[0])))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(".xml"));
    assert!(res.text().await.unwrap().starts_with("<specificPLR>"));
    assert_eq!(pool(&t.pools().await, "tag.a"), (0, 0, 4));
    t.assert_counters_exact();
}

/// The agent takes its UDI from its registration, refuses a code that answers an older
/// request of its own, and prints codes as JSON with --json; a universal reservation in
/// a VA holding export-controlled licenses needs the acknowledgement.
#[tokio::test]
async fn agent_request_details_and_universal_export_control() {
    let t = Licensed::with_licenses(&[Lic::plain("tag.a", 2)]).await;
    let agent = Agent::new();
    let token = t.simple_token().await;
    assert_eq!(agent.register(&t.server, &token, "ISR", "REG1").code, 0);
    let out = agent.run(&["reserve", "request"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let first = out.stdout.trim().to_string();
    assert!(first.starts_with("CB-ZISR:REG1-"), "{first}");
    let (s, b) = t
        .api
        .post(
            RES,
            json!({"request_code": first, "virtual_account": "Lab",
                          "licenses": [{"tag": "tag.a", "count": 1}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let old = file(&agent, "old.xml", b["authorization_code"].as_str().unwrap());
    // A new request replaces the pending one: the first code no longer answers it.
    let out = agent.run(&["--json", "reserve", "request"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(v["code"].as_str().unwrap().starts_with("CB-ZISR:REG1-"));
    let out = install(&agent, &old, None);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("another request"), "{}", out.stderr);
    let out = agent.run(&["reserve", "cancel"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_ne!(agent.run(&["status"]).value("state"), "reservation-pending");

    t.license(
        json!({"tag": "tag.x", "name": "Crypto", "type": "perpetual", "quantity": 1,
                     "start": "2020-01-01", "export_controlled": true}),
    )
    .await;
    let other = Agent::new();
    let rc = request_code(&other, "ISR", "U9", true);
    refused(
        &t,
        RES,
        json!({"request_code": rc, "virtual_account": "Lab", "universal": true}),
        StatusCode::FORBIDDEN,
        "export_not_acknowledged",
    )
    .await;
    refused(
        &t,
        RES,
        json!({"request_code": rc, "virtual_account": "Lab", "universal": true,
               "licenses": [{"tag": "tag.a", "count": 1}]}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_licenses",
    )
    .await;
    let (s, b) = t
        .api
        .post(
            RES,
            json!({"request_code": rc, "virtual_account": "Lab", "universal": true,
                          "export_acknowledged": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    refused(
        &t,
        &format!("{RES}/{}/update", b["id"].as_str().unwrap()),
        json!({"licenses": [{"tag": "tag.a", "count": 1}]}),
        StatusCode::CONFLICT,
        "invalid_state",
    )
    .await;
}

/// An update may use what is available plus what the reservation already holds, no more.
#[tokio::test]
async fn an_update_may_use_available_plus_what_it_holds() {
    let t = Licensed::with_licenses(&[Lic::plain("tag.a", 3)]).await;
    let r = reserve(
        &t.api,
        "CUCM",
        "UPD1",
        json!([{"tag": "tag.a", "count": 2}]),
    )
    .await;
    let (agent, id) = (&r.agent, &r.id);
    let pem = authority_pem(&t, agent).await;
    let f = file(agent, "a.xml", r.authorization_code());
    let out = install(agent, &f, Some(&pem));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (s, _) = t
        .api
        .post(
            &format!("{RES}/{id}/confirm"),
            json!({"confirmation_code": out.stdout.trim()}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pool(&t.pools().await, "tag.a"), (0, 2, 1));
    refused(
        &t,
        &format!("{RES}/{id}/update"),
        json!({"licenses": [{"tag": "tag.a", "count": 4}]}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_licenses",
    )
    .await;
    let (s, b) = t
        .api
        .post(
            &format!("{RES}/{id}/update"),
            json!({"licenses": [{"tag": "tag.a", "count": 3}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "1 available + 2 held: {b}");
    assert_eq!(pool(&t.pools().await, "tag.a"), (0, 3, 0));
    // A second update before confirmation keeps holding the most of any code in transit.
    let (s, b) = t
        .api
        .post(
            &format!("{RES}/{id}/update"),
            json!({"licenses": [{"tag": "tag.a", "count": 1}]}),
        )
        .await;
    assert_eq!((s, b["version"].as_i64()), (StatusCode::OK, Some(3)), "{b}");
    assert_eq!(pool(&t.pools().await, "tag.a"), (0, 3, 0));
    let f = file(agent, "c.xml", b["authorization_code"].as_str().unwrap());
    let out = install(agent, &f, Some(&pem));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (s, _) = t
        .api
        .post(
            &format!("{RES}/{id}/confirm"),
            json!({"confirmation_code": out.stdout.trim()}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pool(&t.pools().await, "tag.a"), (0, 1, 2));
    // Reports count the reservation alike.
    let (s, report) = t.api.get("/api/v1/reports/licenses?account=Acme").await;
    assert_eq!(s, StatusCode::OK, "{report}");
    let row = &report["items"][0];
    assert_eq!(
        (row["reserved"].as_i64(), row["available"].as_i64()),
        (Some(1), Some(2)),
        "{report}"
    );
    t.assert_counters_exact();
}
