//! Export keys end to end (CONTRACT section 4) with real `satellite-agent` processes:
//! granted, pending -> approved, pending -> denied, denied, returned, cancelled, released
//! on deregistration and removal, usage judged as export-controlled with a key; every
//! refusal changes nothing; the admin API and page; the pending alert.

use crate::support::agent::{Agent, RawAgent};
use crate::support::fixtures::Lic;
use crate::support::{Licensed, VA};
use reqwest::StatusCode;
use serde_json::{json, Value};

const KEYS: &str = "/api/v1/accounts/Acme/export-keys";

/// Acme/Lab with `exp` (export-controlled) x2, `plain` (not export-controlled) x5.
async fn licensed() -> Licensed {
    Licensed::with_licenses(&[
        Lic::plain("exp", 2).named("Export").export_controlled(),
        Lic::plain("plain", 5),
    ])
    .await
}

fn export(agent: &Agent, action: &str, tag: &str) -> crate::support::CliOutput {
    agent.run(&["export", action, "--license", tag])
}

/// (in_use, available) of a pool.
async fn pool(l: &Licensed, tag: &str) -> (i64, i64) {
    let p = &l.pools().await[tag];
    (
        p["in_use"].as_i64().unwrap(),
        p["available"].as_i64().unwrap(),
    )
}

async fn keys(l: &Licensed, query: &str) -> Vec<Value> {
    let (s, b) = l.api.get(&format!("{KEYS}{query}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().unwrap().clone()
}

async fn actions(l: &Licensed) -> Vec<String> {
    let (_, b) = l.api.get("/api/v1/events?limit=200").await;
    b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .filter(|a| a.starts_with("export_key."))
        .collect()
}

#[tokio::test]
async fn a_granted_key_is_one_unit_until_returned_and_judges_usage_as_export_controlled() {
    let l = licensed().await;
    let a = l.registered_agent("CUCM", "A1").await;

    // Without a key, an export-controlled tag is export_restricted and uses nothing.
    let out = a.report(&[("exp", 1)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("entitlement=exp 1 export_restricted"),
        "{}",
        out.stdout
    );
    assert_eq!(pool(&l, "exp").await, (0, 2));

    let out = export(&a, "request", "exp");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "license=exp status=granted");
    // The key is one unit in use; the report of 1 it covers adds nothing.
    assert_eq!(pool(&l, "exp").await, (1, 1));
    // Asking again answers the live key and changes nothing.
    assert_eq!(
        export(&a, "request", "exp").stdout.trim(),
        "license=exp status=granted"
    );
    assert_eq!(pool(&l, "exp").await, (1, 1));

    // With the key the report is judged as for an export-controlled token.
    let out = a.report(&[("exp", 1)]);
    assert!(out.stdout.contains("status=authorized"), "{}", out.stdout);
    assert!(
        out.stdout.contains("entitlement=exp 1 authorized"),
        "{}",
        out.stdout
    );
    assert_eq!(pool(&l, "exp").await, (1, 1));
    let status = a.run(&["status"]);
    assert!(
        status
            .stdout
            .contains("license=exp status=authorized count=1"),
        "{}",
        status.stdout
    );
    // More than 1 is ordinary demand.
    let out = a.report(&[("exp", 2)]);
    assert!(
        out.stdout.contains("entitlement=exp 2 authorized"),
        "{}",
        out.stdout
    );
    assert_eq!(pool(&l, "exp").await, (2, 0));
    l.assert_counters_exact();

    // Nothing left: another instance is denied with the reason, and nothing changes.
    let b = l.registered_agent("CUCM", "B1").await;
    let out = export(&b, "request", "exp");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("license=exp status=denied reason=No export-controlled count of exp"),
        "{}",
        out.stdout
    );
    assert_eq!(pool(&l, "exp").await, (2, 0));
    let status = b.run(&["status"]);
    assert!(
        !status.stdout.contains("license=exp"),
        "a denied key is not held: {}",
        status.stdout
    );

    // Returning releases the unit; the report is export_restricted again.
    let out = export(&a, "return", "exp");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "license=exp status=returned");
    assert_eq!(pool(&l, "exp").await, (0, 2));
    let out = a.report(&[("exp", 2)]);
    assert!(
        out.stdout.contains("entitlement=exp 2 export_restricted"),
        "{}",
        out.stdout
    );
    // A retransmitted return answers the same; a cancel of a returned key is refused.
    assert_eq!(
        export(&a, "return", "exp").stdout.trim(),
        "license=exp status=returned"
    );
    let out = export(&a, "cancel", "exp");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("export_key_state"), "{}", out.stderr);
    let out = export(&a, "return", "plain");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no_export_key"), "{}", out.stderr);
    assert_eq!(pool(&l, "exp").await, (0, 2));

    // The admin view, exactly the contract's shape.
    let all = keys(&l, "").await;
    assert_eq!(all.len(), 2);
    let k = &all[0];
    assert_eq!(k["state"], "returned");
    assert_eq!(k["tag"], "exp");
    assert_eq!(k["virtual_account"], "Lab");
    assert_eq!(k["udi"]["pid"], "CUCM");
    assert_eq!(k["udi"]["sn"], "A1");
    assert!(k["id"].as_str().unwrap().starts_with("ek_"));
    assert!(k["instance_id"].as_str().unwrap().starts_with("inst_"));
    assert!(k["requested_at"].as_str().is_some() && k["decided_at"].as_str().is_some());
    let denied = keys(&l, "?state=denied").await;
    assert_eq!(denied.len(), 1);
    assert!(denied[0]["reason"]
        .as_str()
        .unwrap()
        .contains("No export-controlled count"));
    let (s, b) = l.api.get(&format!("{KEYS}?state=lost")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(
        actions(&l).await,
        [
            "export_key.returned",
            "export_key.denied",
            "export_key.granted"
        ]
    );
    l.assert_counters_exact();
}

#[tokio::test]
async fn with_approval_requests_wait_for_an_admin_who_approves_or_denies() {
    let l = licensed().await;
    l.require_export_approval().await;
    let a = l.registered_agent("CUCM", "A2").await;
    let b = l.registered_agent("CUCM", "B2").await;
    let c = l.registered_agent("CUCM", "C2").await;

    for agent in [&a, &b, &c] {
        let out = export(agent, "request", "exp");
        assert_eq!(
            out.stdout.trim(),
            "license=exp status=pending",
            "{}",
            out.stderr
        );
    }
    assert_eq!(pool(&l, "exp").await, (0, 2), "pending keys hold nothing");
    let status = a.run(&["status"]);
    assert!(
        status
            .stdout
            .contains("license=exp status=export_key_pending count=1"),
        "{}",
        status.stdout
    );

    // The pending alert, one per waiting request.
    let (_, alerts) = l.api.get("/api/v1/alerts").await;
    let pending: Vec<&Value> = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] == "export_key_pending")
        .collect();
    assert_eq!(pending.len(), 3, "{alerts}");

    let waiting = keys(&l, "?state=pending").await;
    assert_eq!(waiting.len(), 3);
    let id_of = |sn: &str| {
        waiting.iter().find(|k| k["udi"]["sn"] == sn).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (ka, kb, kc) = (id_of("A2"), id_of("B2"), id_of("C2"));

    // A viewer may not decide; another account's admin does not see the key.
    l.api.create_account("Other").await;
    let viewer = l.server.api("viewer", Some("Acme")).await;
    let (s, _) = viewer
        .post(&format!("{KEYS}/{ka}/approve"), json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let outsider = l.server.api("account-admin", Some("Other")).await;
    let (s, _) = outsider
        .post(
            &format!("/api/v1/accounts/Other/export-keys/{ka}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, k) = l.api.post(&format!("{KEYS}/{ka}/approve"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{k}");
    assert_eq!(k["state"], "granted");
    assert_eq!(pool(&l, "exp").await, (1, 1));
    let (s, k) = l
        .api
        .post(
            &format!("{KEYS}/{kb}/deny"),
            json!({ "reason": "Not for this site." }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{k}");
    assert_eq!(k["state"], "denied");
    assert_eq!(k["reason"], "Not for this site.");
    // Deciding twice is refused and changes nothing.
    let (s, e) = l.api.post(&format!("{KEYS}/{ka}/deny"), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["error"]["code"], "export_key_state");
    let (s, _) = l.api.post(&format!("{KEYS}/{kb}/approve"), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = l
        .api
        .post(&format!("{KEYS}/ek_nope/approve"), json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The agents learn the decisions at their next report (their status is offline)...
    let out = a.report(&[("exp", 1)]);
    assert!(
        out.stdout.contains("entitlement=exp 1 authorized"),
        "{}",
        out.stdout
    );
    let status = a.run(&["status"]);
    assert!(
        status
            .stdout
            .contains("license=exp status=authorized count=1"),
        "{}",
        status.stdout
    );
    let out = b.report(&[("plain", 1)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = b.run(&["status"]);
    assert!(
        !status.stdout.contains("license=exp"),
        "denied: {}",
        status.stdout
    );
    assert_eq!(pool(&l, "exp").await, (1, 1));
    // ...or by asking again (a request answers the live key).
    let out = export(&a, "request", "exp");
    assert_eq!(out.stdout.trim(), "license=exp status=granted");
    let status = a.run(&["status"]);
    assert!(
        status
            .stdout
            .contains("license=exp status=authorized count=1"),
        "{}",
        status.stdout
    );
    // C drops its request; approving it afterwards is refused.
    let out = export(&c, "cancel", "exp");
    assert_eq!(
        out.stdout.trim(),
        "license=exp status=cancelled",
        "{}",
        out.stderr
    );
    let status = c.run(&["status"]);
    assert!(!status.stdout.contains("license=exp"), "{}", status.stdout);
    let (s, _) = l.api.post(&format!("{KEYS}/{kc}/approve"), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(pool(&l, "exp").await, (1, 1));
    // B, denied, may ask again: a new pending request.
    let out = export(&b, "request", "exp");
    assert_eq!(out.stdout.trim(), "license=exp status=pending");
    // Approval re-checks the pool: with none available it is refused, the key waits.
    let (s, _) = l
        .api
        .patch(
            "/api/v1/accounts/Acme/settings",
            json!({ "export_allowed": false }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let kb2 = keys(&l, "?state=pending").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, e) = l
        .api
        .post(&format!("{KEYS}/{kb2}/approve"), json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(keys(&l, "?state=pending").await.len(), 1);
    // A bad deny body changes nothing either.
    let (s, e) = l
        .api
        .post(
            &format!("{KEYS}/{kb2}/deny"),
            json!({ "reason": "x".repeat(501) }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["code"], "invalid_reason");
    let (s, _) = l
        .api
        .post(&format!("{KEYS}/{kb2}/deny"), json!({ "why": "no" }))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(keys(&l, "?state=pending").await.len(), 1);
    // No body at all: the reason is optional.
    let res = l
        .api
        .post_raw(&format!("{KEYS}/{kb2}/deny"), "application/json", vec![])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let k: Value = res.json().await.unwrap();
    assert_eq!(k["reason"], "Denied by an admin.");

    let (_, alerts) = l.api.get("/api/v1/alerts").await;
    assert!(
        !alerts.to_string().contains("export_key_pending"),
        "cleared: {alerts}"
    );
    assert_eq!(
        actions(&l).await,
        [
            "export_key.denied",
            "export_key.requested",
            "export_key.cancelled",
            "export_key.denied",
            "export_key.granted",
            "export_key.requested",
            "export_key.requested",
            "export_key.requested",
        ]
    );
    l.assert_counters_exact();
}

#[tokio::test]
async fn requests_are_denied_with_a_reason_when_they_cannot_be_granted() {
    let l = licensed().await;
    let a = l.registered_agent("CUCM", "A3").await;
    let out = a.run(&[
        "export",
        "request",
        "--license",
        "unknown",
        "--license",
        "plain",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "license=unknown status=denied reason=The virtual account has no export-controlled license of unknown.",
            "license=plain status=denied reason=The virtual account has no export-controlled license of plain.",
        ]
    );
    let (s, _) = l
        .api
        .patch(
            "/api/v1/accounts/Acme/settings",
            json!({ "export_allowed": false }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let out = export(&a, "request", "exp");
    assert_eq!(
        out.stdout.trim(),
        "license=exp status=denied reason=This account does not allow export-controlled licenses."
    );
    assert_eq!(pool(&l, "exp").await, (0, 2));
    assert_eq!(pool(&l, "plain").await, (0, 5));
    assert_eq!(keys(&l, "?state=denied").await.len(), 3);
    assert!(keys(&l, "?state=granted").await.is_empty());

    // Malformed requests: 400/422 after the signature, nothing recorded.
    let token = l.simple_token().await;
    let (_, raw) = RawAgent::register(&l.server.url, &token, "CUCM", "RAW3").await;
    let raw = raw.unwrap();
    for (body, status, code) in [
        (
            json!({ "tags": [] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_tags",
        ),
        (
            json!({ "tags": [""] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_tag",
        ),
        (
            json!({ "tags": "exp" }),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({ "tags": ["exp"], "extra": 1 }),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (json!({}), StatusCode::BAD_REQUEST, "bad_request"),
    ] {
        let answer = raw.post("/agent/v1/export/request", &body).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        assert_eq!(answer.body["error"]["code"], code, "{body}");
    }
    // The instance's own keys, by a signed GET.
    let answer = raw
        .post(
            "/agent/v1/export/request",
            &json!({ "tags": ["exp", "plain"] }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["keys"][0]["status"], "denied");
    let ts = RawAgent::now().to_string();
    let res = crate::support::async_client(false)
        .get(format!("{}/agent/v1/export", l.server.url))
        .header("X-Satellite-Instance", &raw.instance_id)
        .header("X-Satellite-Timestamp", &ts)
        .header(
            "X-Satellite-Signature",
            satellite::crypto::agent_sig::sign_request(
                &raw.key,
                "GET",
                "/agent/v1/export",
                &ts,
                b"",
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let signature = res.headers()["x-satellite-response-signature"]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = res.bytes().await.unwrap();
    assert!(satellite::crypto::agent_sig::verify_b64(
        &raw.authority,
        &bytes,
        &signature
    ));
    let listed: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        listed,
        json!({ "keys": [
            { "tag": "exp", "status": "denied", "reason": "This account does not allow export-controlled licenses." },
            { "tag": "plain", "status": "denied", "reason": "This account does not allow export-controlled licenses." },
        ] })
    );
    // Unsigned: refused before anything is read.
    let answer = RawAgent::post_unsigned(
        &l.server.url,
        "/agent/v1/export/request",
        br#"{"tags":["exp"]}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(keys(&l, "").await.len(), 5);
    l.assert_counters_exact();
}

#[tokio::test]
async fn keys_are_released_on_deregistration_and_removal() {
    let l = licensed().await;
    let (s, _) = l
        .api
        .post(
            &format!("{VA}/licenses"),
            json!({ "tag": "exp2", "name": "Export 2",
        "type": "perpetual", "quantity": 3, "start": "2020-01-01", "export_controlled": true }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let a = l.registered_agent("CUCM", "A4").await;
    let b = l.registered_agent("CUCM", "B4").await;
    assert_eq!(
        export(&a, "request", "exp").stdout.trim(),
        "license=exp status=granted"
    );
    assert_eq!(
        export(&b, "request", "exp").stdout.trim(),
        "license=exp status=granted"
    );
    assert_eq!(pool(&l, "exp").await, (2, 0));
    let out = a.report(&[("exp", 1)]);
    assert!(
        out.stdout.contains("entitlement=exp 1 authorized"),
        "{}",
        out.stdout
    );

    let out = a.run(&["deregister"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(pool(&l, "exp").await, (1, 1));
    assert!(!a.state_dir().join("export_keys.json").exists());

    // Removal by an admin: granted keys returned, pending requests cancelled.
    l.require_export_approval().await;
    assert_eq!(
        export(&b, "request", "exp2").stdout.trim(),
        "license=exp2 status=pending"
    );
    let (_, inst) = l.api.get(&format!("{VA}/instances")).await;
    let b_id = inst["items"][0]["id"].as_str().unwrap().to_string();
    let (s, _) = l.api.delete(&format!("{VA}/instances/{b_id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(pool(&l, "exp").await, (0, 2));
    let all = keys(&l, "").await;
    let states: Vec<(&str, &str)> = all
        .iter()
        .map(|k| {
            (
                k["udi"]["sn"].as_str().unwrap(),
                k["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("A4", "returned"), ("B4", "returned"), ("B4", "cancelled")]
    );
    assert_eq!(all[0]["reason"], "Released: the instance deregistered.");
    assert_eq!(all[1]["reason"], "Released: the instance was removed.");
    assert!(keys(&l, "?state=pending").await.is_empty());
    l.assert_counters_exact();

    // Moving an instance to another VA returns its keys: they were units of the old pool.
    let c = l.registered_agent("CUCM", "C4").await;
    assert_eq!(
        export(&c, "request", "exp").stdout.trim(),
        "license=exp status=pending"
    );
    let kc = keys(&l, "?state=pending").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = l.api.post(&format!("{KEYS}/{kc}/approve"), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pool(&l, "exp").await, (1, 1));
    l.api.create_va("Acme", "Other").await;
    let (_, inst) = l.api.get(&format!("{VA}/instances")).await;
    let c_id = inst["items"][0]["id"].as_str().unwrap().to_string();
    let (s, b) = l
        .api
        .post(
            &format!("{VA}/instances/{c_id}/transfer"),
            json!({ "to_virtual_account": "Other" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(pool(&l, "exp").await, (0, 2));
    let granted = keys(&l, "?state=returned").await;
    assert_eq!(
        granted.last().unwrap()["reason"],
        "Released: the instance moved to another virtual account."
    );
    l.assert_counters_exact();

    // A re-registration that moves the product to another VA releases its keys too.
    let (s, _) = l
        .api
        .patch(
            &format!("{VA}/settings"),
            json!({ "export_approval": false }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let d = l.registered_agent("CUCM", "D4").await;
    assert_eq!(
        export(&d, "request", "exp").stdout.trim(),
        "license=exp status=granted"
    );
    assert_eq!(pool(&l, "exp").await, (1, 1));
    let (s, b) = l
        .api
        .post(
            "/api/v1/accounts/Acme/virtual-accounts/Other/tokens",
            json!({ "expires_in_days": 30, "export_controlled": false }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let ca = l.server.data_dir.join("tls/cert.pem");
    let out = d.run(&[
        "register",
        "--url",
        &l.server.url,
        "--token",
        b["token"].as_str().unwrap(),
        "--pid",
        "CUCM",
        "--sn",
        "D4",
        "--ca-cert",
        ca.to_str().unwrap(),
        "--reregister",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(pool(&l, "exp").await, (0, 2));
    let status = d.run(&["status"]);
    assert!(!status.stdout.contains("license=exp"), "{}", status.stdout);
    l.assert_counters_exact();
}

#[tokio::test]
async fn the_export_keys_page_lists_pending_first_and_decides() {
    let l = licensed().await;
    l.require_export_approval().await;
    let a = l.registered_agent("CUCM", "A5").await;
    let b = l.registered_agent("CUCM", "B5").await;
    assert_eq!(
        export(&a, "request", "plain")
            .stdout
            .trim()
            .split(' ')
            .nth(1),
        Some("status=denied")
    );
    assert_eq!(
        export(&a, "request", "exp").stdout.trim(),
        "license=exp status=pending"
    );
    assert_eq!(
        export(&b, "request", "exp").stdout.trim(),
        "license=exp status=pending"
    );
    let pending = keys(&l, "?state=pending").await;
    let (ka, kb) = (
        pending[0]["id"].as_str().unwrap().to_string(),
        pending[1]["id"].as_str().unwrap().to_string(),
    );

    let session = l.server.session("account-admin", Some("Acme")).await;
    let (s, html) = session.page("/accounts/Acme").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("href=\"/accounts/Acme/export-keys\""),
        "linked from the account page"
    );
    let page = "/accounts/Acme/export-keys";
    let (s, html) = session.page(page).await;
    assert_eq!(s, StatusCode::OK);
    // Pending first (oldest first), then the rest.
    let (pa, pb, denied) = (
        html.find(&format!("id=\"key-{ka}\"")).unwrap(),
        html.find(&format!("id=\"key-{kb}\"")).unwrap(),
        html.find("pill-key-denied").unwrap(),
    );
    assert!(pa < pb && pb < denied, "pending first");
    assert!(html.contains(&format!("id=\"approve-{ka}\"")));

    let (s, _, location) = session
        .submit(page, &format!("{page}/{ka}/approve"), &[])
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(page));
    let (_, html) = session.page(page).await;
    assert!(html.contains("Export key for exp on A5 granted."), "flash");
    assert_eq!(pool(&l, "exp").await, (1, 1));
    let (s, _, _) = session
        .submit(
            page,
            &format!("{page}/{kb}/deny"),
            &[("reason", "Lab only.")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, html) = session.page(page).await;
    assert!(html.contains("Lab only."));
    assert!(!html.contains("approve-"), "nothing left to decide");
    // Deciding again shows why on the page and changes nothing.
    let (s, html, _) = session
        .submit(page, &format!("{page}/{kb}/approve"), &[])
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(html.contains("id=\"problem\""), "{html}");
    assert_eq!(pool(&l, "exp").await, (1, 1));
    assert_eq!(
        export(&b, "request", "exp").stdout.trim(),
        "license=exp status=pending",
        "B asks again"
    );

    // A viewer sees the list without buttons and cannot decide.
    let viewer = l.server.session("viewer", Some("Acme")).await;
    let (s, html) = viewer.page(page).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!html.contains("approve-"));
    let kb2 = keys(&l, "?state=pending").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _, _) = viewer
        .submit(page, &format!("{page}/{kb2}/approve"), &[])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(keys(&l, "?state=pending").await.len(), 1);
    l.assert_counters_exact();
}

#[tokio::test]
async fn export_keys_travel_to_the_upstream_in_a_disconnected_round_trip() {
    use crate::support::sync::Pair;
    let pair = Pair::start().await;
    pair.upstream
        .license(
            json!({ "tag": "exp", "name": "Export", "type": "perpetual", "quantity": 3,
                         "start": "2020-01-01", "export_controlled": true }),
        )
        .await;
    pair.register_disconnected().await;
    let (s, b) = pair
        .sat_api
        .post(
            &format!("{VA}/tokens"),
            json!({ "expires_in_days": 30, "export_controlled": false }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let token = b["token"].as_str().unwrap();
    let (a, b) = (Agent::new(), Agent::new());
    for (agent, sn) in [(&a, "K1"), (&b, "K2")] {
        let out = agent.register(&pair.satellite, token, "SAT", sn);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            export(agent, "request", "exp").stdout.trim(),
            "license=exp status=granted"
        );
    }
    // A reports 2 (its key covers 1, one more is ordinary demand); B's key alone is 1.
    let out = a.report(&[("exp", 2)]);
    assert!(
        out.stdout.contains("entitlement=exp 2 authorized"),
        "{}",
        out.stdout
    );
    let exp_of =
        |pools: Vec<(String, i64, i64, String)>| pools.into_iter().find(|p| p.0 == "exp").unwrap();
    assert_eq!(exp_of(Pair::pools(&pair.sat_api).await).2, 3);

    pair.sync_disconnected().await;
    pair.assert_same_licenses_and_usage().await;
    assert_eq!(
        exp_of(Pair::pools(&pair.upstream.api).await),
        ("exp".into(), 3, 3, "in_compliance".into())
    );

    // B returns its key on the satellite; after one more round both sides count 2.
    assert_eq!(
        export(&b, "return", "exp").stdout.trim(),
        "license=exp status=returned"
    );
    pair.sync_disconnected().await;
    pair.assert_same_licenses_and_usage().await;
    assert_eq!(exp_of(Pair::pools(&pair.upstream.api).await).2, 2);
    for server in [&pair.upstream.server, &pair.satellite] {
        let out = server.cli(&["check"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }

    // A validly signed request whose export keys name an instance it does not list, or
    // an unknown state, is rejected whole and changes nothing on the upstream.
    use crate::support::sync::{members, pack, resign};
    use sha2::Digest;
    let out = pair
        .satellite
        .cli(&["bundle", "export", "--account", "Acme"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let good = std::path::PathBuf::from(out.value("bundle"));
    let sat_key =
        satellite::crypto::AuthorityKey::load_or_create(&pair.satellite.data_dir).unwrap();
    let before = Pair::pools(&pair.upstream.api).await;
    for (what, record, reason) in [
        (
            "missing instance",
            r#"{"instance_id":"inst_missing","tag":"exp","state":"granted"}"#,
            "does not list before it",
        ),
        (
            "unknown state",
            r#"{"instance_id":"inst_missing","tag":"exp","state":"borrowed"}"#,
            "export key of inst_missing",
        ),
    ] {
        let mut m = members(&good);
        let i = m
            .iter()
            .position(|(n, _)| n == "data/export_keys.jsonl")
            .unwrap();
        let mut data = m[i].1.clone();
        data.extend_from_slice(format!("{record}\n").as_bytes());
        m[i].1 = data.clone();
        resign(&mut m, &sat_key, |v| {
            for f in v["files"].as_array_mut().unwrap() {
                if f["name"] == "data/export_keys.jsonl" {
                    f["sha256"] = json!(hex::encode(sha2::Sha256::digest(&data)));
                    f["bytes"] = json!(data.len());
                    f["records"] = json!(f["records"].as_i64().unwrap() + 1);
                }
            }
        });
        let bad = pair
            .satellite
            .dir
            .path()
            .join(format!("bad-{}.tar.gz", what.replace(' ', "-")));
        pack(&bad, &m);
        let out = pair
            .upstream
            .server
            .cli(&["bundle", "import", bad.to_str().unwrap()]);
        assert_eq!(out.code, 1, "{what} must be rejected");
        assert!(out.stderr.contains(reason), "{what}: {}", out.stderr);
        assert_eq!(Pair::pools(&pair.upstream.api).await, before, "{what}");
    }
    // The untouched request still applies.
    let response = pair.upstream_import(&good);
    assert!(response.exists());
    assert_eq!(Pair::pools(&pair.upstream.api).await, before);
}

/// Headless Chromium: the settings forms and the export keys page, with screenshots.
#[tokio::test]
async fn browser_walk_of_settings_and_export_keys() {
    use crate::support::webdriver::Browser;
    let l = licensed().await;
    let a = l.registered_agent("CUCM", "W1").await;
    let b = l.registered_agent("CUCM", "W2").await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let url = &l.server.url;
    browser.first_admin_login(&l.server, &l.server.url).await;

    // Turn approval on from the VA page.
    browser.set_size(1280, 1900).await;
    browser
        .goto(&format!("{url}/accounts/Acme/virtual-accounts/Lab"))
        .await;
    browser.click("#export-approval").await;
    browser.click("#save-va-settings").await;
    assert_eq!(
        browser.text(".flash").await,
        "Virtual account settings saved."
    );
    browser.screenshot("export-01-va-settings").await;
    assert_eq!(
        export(&a, "request", "exp").stdout.trim(),
        "license=exp status=pending"
    );
    assert_eq!(
        export(&b, "request", "exp").stdout.trim(),
        "license=exp status=pending"
    );

    browser.goto(&format!("{url}/accounts/Acme")).await;
    browser.screenshot("export-02-account-settings").await;
    browser.click("#export-keys-link").await;
    browser.set_size(1280, 800).await;
    assert!(browser.text("#export-keys").await.contains("W1"));
    browser.screenshot("export-03-pending").await;
    let pending = keys(&l, "?state=pending").await;
    let (ka, kb) = (
        pending[0]["id"].as_str().unwrap().to_string(),
        pending[1]["id"].as_str().unwrap().to_string(),
    );
    browser.click(&format!("#approve-{ka}")).await;
    assert_eq!(
        browser.text(".flash").await,
        "Export key for exp on W1 granted."
    );
    browser.fill(&format!("#reason-{kb}"), "Lab only.").await;
    browser.click(&format!("#deny-{kb}")).await;
    assert_eq!(
        browser.text(".flash").await,
        "Export key for exp on W2 denied."
    );
    assert!(browser.text("#export-keys").await.contains("Lab only."));
    browser.screenshot("export-04-decided").await;
    browser.click(&format!("#key-{ka} a")).await;
    assert!(browser
        .text("#instance-export-keys")
        .await
        .contains("granted"));
    browser.set_size(1280, 1300).await;
    browser.screenshot("export-05-instance").await;
    assert_eq!(pool(&l, "exp").await, (1, 1));
    let status = a.run(&["status"]);
    assert!(
        status
            .stdout
            .contains("license=exp status=export_key_pending"),
        "offline until asked"
    );
    assert_eq!(
        export(&a, "request", "exp").stdout.trim(),
        "license=exp status=granted"
    );

    // Account settings: untick export_allowed.
    browser.goto(&format!("{url}/accounts/Acme")).await;
    browser.click("#export-allowed").await;
    browser.click("#save-account-settings").await;
    assert_eq!(browser.text(".flash").await, "Account settings saved.");
    let (_, s) = l.api.get("/api/v1/accounts/Acme/settings").await;
    assert_eq!(s["export_allowed"], false);
    browser.quit().await;
}
