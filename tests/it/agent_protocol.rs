//! The agent protocol to the letter of CONTRACT.md section 4, with a raw client.

use crate::support::agent::{rfc3339, RawAgent};
use crate::support::{Licensed, VA};
use ed25519_dalek::SigningKey;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn registration_validates_before_spending_the_token() {
    let l = Licensed::start().await;
    let token = l
        .token(json!({ "expires_in_days": 30, "max_uses": 1, "export_controlled": false }))
        .await;
    let url = &l.server.url;
    let post = |body: String| async move {
        RawAgent::post_unsigned(url, "/agent/v1/register", body.as_bytes()).await
    };
    let a = post("not json".into()).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    let a = post(json!({ "token": token, "udi": { "pid": "P" } }).to_string()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "missing fields");
    let a = post(
        json!({ "token": token, "udi": { "pid": "P 1", "sn": "S" }, "public_key": "AAAA",
        "product": { "name": "p", "version": "1" } })
        .to_string(),
    )
    .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_udi"))
    );
    let a = post(
        json!({ "token": token, "udi": { "pid": "P", "sn": "S" }, "public_key": "AAAA",
        "product": { "name": "p", "version": "1" } })
        .to_string(),
    )
    .await;
    assert_eq!(a.body["error"]["code"], "invalid_public_key");
    let a = post(
        json!({ "token": "st_unknown", "udi": { "pid": "P", "sn": "S" },
        "public_key": "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=",
        "product": { "name": "p", "version": "1" } })
        .to_string(),
    )
    .await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_invalid"))
    );

    // None of that used the single use.
    let (answer, agent) = RawAgent::register(url, &token, "C9300", "FOC1").await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let agent = agent.unwrap();
    assert!(agent.instance_id.starts_with("inst_"));
    assert_eq!(answer.body["virtual_account"], "Lab");
    for field in ["renew_after", "expires_at", "authority_public_key"] {
        assert!(answer.body[field].is_string(), "{field}");
    }
    // The id certificate verifies with the authority key and describes the instance.
    let cert: satellite::crypto::idcert::SignedCertificate =
        serde_json::from_value(answer.body["id_certificate"].clone()).unwrap();
    let payload =
        satellite::crypto::idcert::verify(&agent.authority, &cert).expect("certificate verifies");
    assert_eq!(payload.instance_id, agent.instance_id);
    assert_eq!(payload.udi.pid, "C9300");
    assert!(!payload.export_controlled);
    let issued = chrono::DateTime::parse_from_rfc3339(&payload.issued_at).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(&payload.expires_at).unwrap();
    assert_eq!((expires - issued).num_days(), 365);

    let (answer, _) = RawAgent::register(url, &token, "C9300", "FOC2").await;
    assert_eq!(
        (answer.status, answer.body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("token_exhausted"))
    );
}

#[tokio::test]
async fn reregistering_a_udi_keeps_the_instance_id_and_uses_the_token() {
    let l = Licensed::start().await;
    let token = l
        .token(json!({ "expires_in_days": 30, "max_uses": 2, "export_controlled": false }))
        .await;
    let (_, first) = RawAgent::register(&l.server.url, &token, "P", "S1").await;
    let first = first.unwrap();
    // The server now knows (and caches) the first key.
    let a = first.report("r0", &rfc3339(RawAgent::now()), &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    let (again, second) = RawAgent::register(&l.server.url, &token, "P", "S1").await;
    assert_eq!(again.status, StatusCode::CREATED);
    let second = second.unwrap();
    assert_eq!(first.instance_id, second.instance_id);
    // The old key no longer works, for any signed call; the new one does.
    let a = first.report("r1", &rfc3339(RawAgent::now()), &[]).await;
    assert_eq!(a.body["error"]["code"], "bad_signature");
    let a = first.post("/agent/v1/renew", &json!({})).await;
    assert_eq!(a.body["error"]["code"], "bad_signature");
    let a = second.report("r1", &rfc3339(RawAgent::now()), &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    let a = first.post("/agent/v1/deregister", &json!({})).await;
    assert_eq!(a.body["error"]["code"], "bad_signature");
    let a = second.post("/agent/v1/renew", &json!({})).await;
    assert_eq!(a.status, StatusCode::OK);
    let (_, tokens) = l.api.get(&format!("{VA}/tokens")).await;
    assert_eq!(tokens["items"][0]["uses"], 2);
    assert_eq!(tokens["items"][0]["state"], "exhausted");
    let (_, list) = l.api.get(&format!("{VA}/instances")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn signed_requests_are_checked_in_order() {
    let l = Licensed::start().await;
    l.perpetual("ess", 5).await;
    let token = l.simple_token().await;
    let (_, agent) = RawAgent::register(&l.server.url, &token, "P", "S").await;
    let agent = agent.unwrap();
    let body = json!({ "report_id": "r1", "measured_at": rfc3339(RawAgent::now()), "entitlements": [{ "tag": "ess", "count": 1 }] })
        .to_string()
        .into_bytes();
    let now = RawAgent::now().to_string();
    let path = "/agent/v1/usage";
    let code = |a: &crate::support::agent::RawAnswer| {
        (
            a.status,
            a.body["error"]["code"].as_str().map(str::to_string),
        )
    };
    let unauthorized = |c: &str| (StatusCode::UNAUTHORIZED, Some(c.to_string()));

    let a = agent.send(path, &body, &body, &now, &agent.key, None).await;
    assert_eq!(code(&a), unauthorized("instance_not_registered"));
    let a = agent
        .send(path, &body, &body, &now, &agent.key, Some("inst_nope"))
        .await;
    assert_eq!(code(&a), unauthorized("instance_not_registered"));
    let stale = (RawAgent::now() - 301).to_string();
    let a = agent
        .send(
            path,
            &body,
            &body,
            &stale,
            &agent.key,
            Some(&agent.instance_id),
        )
        .await;
    assert_eq!(code(&a), unauthorized("stale_timestamp"));
    let a = agent
        .send(
            path,
            &body,
            &body,
            "12e3",
            &agent.key,
            Some(&agent.instance_id),
        )
        .await;
    assert_eq!(code(&a), unauthorized("stale_timestamp"));
    let wrong_key = SigningKey::generate(&mut rand_core::OsRng);
    let a = agent
        .send(
            path,
            &body,
            &body,
            &now,
            &wrong_key,
            Some(&agent.instance_id),
        )
        .await;
    assert_eq!(code(&a), unauthorized("bad_signature"));
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|b| *b == b'1').unwrap();
    tampered[pos] = b'4';
    let a = agent
        .send(
            path,
            &body,
            &tampered,
            &now,
            &agent.key,
            Some(&agent.instance_id),
        )
        .await;
    assert_eq!(code(&a), unauthorized("bad_signature"));
    // A stale timestamp is reported before a bad signature.
    let a = agent
        .send(
            path,
            &body,
            &tampered,
            &stale,
            &wrong_key,
            Some(&agent.instance_id),
        )
        .await;
    assert_eq!(code(&a), unauthorized("stale_timestamp"));
    // None of the refused requests changed anything.
    assert_eq!(l.pools().await["ess"]["in_use"], 0);
    l.assert_counters_exact();

    let a = agent
        .send(
            path,
            &body,
            &body,
            &now,
            &agent.key,
            Some(&agent.instance_id),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(l.pools().await["ess"]["in_use"], 1);
}

#[tokio::test]
async fn usage_reports_validate_and_apply_once_in_order() {
    let l = Licensed::start().await;
    l.perpetual("ess", 5).await;
    let token = l.simple_token().await;
    let (_, agent) = RawAgent::register(&l.server.url, &token, "P", "S").await;
    let agent = agent.unwrap();
    let now = RawAgent::now();

    let a = agent.report("r0", &rfc3339(now), &[("ess", -1)]).await;
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_count"))
    );
    let a = agent
        .report("r0", &rfc3339(now), &[("ess", 2_147_483_648)])
        .await;
    assert_eq!(a.body["error"]["code"], "invalid_count");
    let a = agent
        // A fresh clock reading: `now` is seconds old by here, and 301 s from it could
        // already be within the server's 300 s window.
        .report("r0", &rfc3339(RawAgent::now() + 310), &[("ess", 1)])
        .await;
    assert_eq!(a.body["error"]["code"], "measured_in_future");
    let a = agent
        .post("/agent/v1/usage", &json!({ "report_id": "r0", "measured_at": rfc3339(now), "entitlements": [{ "tag": "ess", "count": "1" }] }))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "ill-typed count");

    let a = agent
        .report("r1", &rfc3339(now - 10), &[("ess", 3), ("other", 1)])
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["status"], "not_authorized");
    assert_eq!(
        a.body["entitlements"],
        json!([{ "tag": "ess", "count": 3, "status": "authorized" }, { "tag": "other", "count": 1, "status": "not_authorized" }])
    );
    let renew = chrono::DateTime::parse_from_rfc3339(
        a.body["authorization"]["renew_after"].as_str().unwrap(),
    )
    .unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(
        a.body["authorization"]["expires_at"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        (expires - renew).num_days(),
        60,
        "renew at 30 days, expire at 90"
    );

    // The same report_id again is a retransmission: counted once.
    let a = agent
        .report("r1", &rfc3339(now - 10), &[("ess", 3), ("other", 1)])
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(l.pools().await["ess"]["in_use"], 3);
    // An older report does not replace newer counts.
    let a = agent
        .report("r-old", &rfc3339(now - 20), &[("ess", 5)])
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["entitlements"][0]["count"], 3);
    assert_eq!(l.pools().await["ess"]["in_use"], 3);
    // A newer report replaces the counts.
    let a = agent.report("r2", &rfc3339(now), &[("ess", 2)]).await;
    assert_eq!(a.body["status"], "authorized");
    assert_eq!(l.pools().await["ess"]["in_use"], 2);
    l.assert_counters_exact();

    let a = agent.post("/agent/v1/deregister", &json!({})).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        l.pools().await["ess"]["in_use"],
        0,
        "licenses released at once"
    );
    let a = agent.report("r3", &rfc3339(now), &[("ess", 1)]).await;
    assert_eq!(a.body["error"]["code"], "instance_not_registered");
    l.assert_counters_exact();
}

#[tokio::test]
async fn every_agent_response_is_signed_even_errors() {
    let l = Licensed::start().await;
    let url = &l.server.url;
    let authority = RawAgent::authority(url).await;
    let http = crate::support::async_client(false);
    for (method, path, status) in [
        ("GET", "/agent/v1/authority", 200),
        ("GET", "/agent/v1/usage", 405),
        ("GET", "/agent/v1/nothing-here", 404),
        ("POST", "/agent/v1/renew", 401),
    ] {
        let req = if method == "GET" {
            http.get(format!("{url}{path}"))
        } else {
            http.post(format!("{url}{path}"))
        };
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{method} {path}");
        let sig = res.headers()["x-satellite-response-signature"]
            .to_str()
            .unwrap()
            .to_string();
        let body = res.bytes().await.unwrap();
        assert!(
            satellite::crypto::agent_sig::verify_b64(&authority, &body, &sig),
            "{path}"
        );
    }
    let big = vec![b'x'; 300_000];
    let a = RawAgent::post_unsigned(url, "/agent/v1/register", &big).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
}
