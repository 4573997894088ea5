//! Licensing with real `satellite-agent` processes: pools, substitution, export control,
//! tokens, timers (clock injected by restarting with an offset), admin remove/transfer.

use crate::support::agent::Agent;
use crate::support::{Licensed, Server, ServerOptions, VA};
use reqwest::StatusCode;
use serde_json::json;

const DAY: i64 = 86_400;

#[tokio::test]
async fn reports_within_and_beyond_the_pool_with_substitution() {
    let l = Licensed::start().await;
    l.perpetual("ess", 2).await;
    l.license(
        json!({ "tag": "adv", "name": "Advantage", "type": "perpetual", "quantity": 3,
                      "start": "2020-01-01", "substitutes": ["ess"] }),
    )
    .await;
    let token = l.simple_token().await;
    let a = Agent::new();
    assert_eq!(a.run(&["status"]).value("state"), "evaluation");
    assert_eq!(a.run(&["status"]).value("days_left"), "90");
    let out = a.register(&l.server, &token, "C9300-24T", "FOC0001");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.value("instance_id").starts_with("inst_"));
    assert_eq!(a.run(&["status"]).value("state"), "registered");

    let out = a.report(&[("ess", 2)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.value("status"), "authorized");
    let status = a.run(&["status"]);
    assert_eq!(status.value("state"), "authorized");
    assert_eq!(status.value("days_left"), "90");

    // 4 of ess: 2 from its own pool, 2 covered by adv (a higher tier).
    let out = a.report(&[("ess", 4)]);
    assert_eq!(
        out.value("status"),
        "authorized",
        "substitution covers the shortfall"
    );
    let pools = l.pools().await;
    assert_eq!(
        (
            pools["ess"]["in_use"].as_i64(),
            pools["ess"]["status"].as_str()
        ),
        (Some(2), Some("in_compliance"))
    );
    assert_eq!(
        (
            pools["adv"]["in_use"].as_i64(),
            pools["adv"]["available"].as_i64()
        ),
        (Some(2), Some(1))
    );

    // Beyond pool and substitutes: 6 ess needs 2 + 3 and one is missing.
    let out = a.report(&[("ess", 6)]);
    assert_eq!(out.value("status"), "out_of_compliance");
    assert!(out.stdout.contains("entitlement=ess 6 out_of_compliance"));
    let pools = l.pools().await;
    assert_eq!(pools["ess"]["status"], "insufficient");
    assert_eq!(pools["ess"]["in_use"], 3, "own 2 plus the 1 nobody covers");
    let (_, list) = l.api.get(&format!("{VA}/instances")).await;
    assert_eq!(list["items"][0]["status"], "out_of_compliance");
    assert_eq!(
        list["items"][0]["licenses"],
        json!([{ "tag": "ess", "count": 6 }])
    );

    let out = a.run(&["renew"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = a.run(&["deregister"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pools = l.pools().await;
    assert_eq!(
        (
            pools["ess"]["in_use"].as_i64(),
            pools["adv"]["in_use"].as_i64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(a.run(&["status"]).value("state"), "evaluation");
    l.assert_counters_exact();
}

#[tokio::test]
async fn export_controlled_licenses_need_an_export_controlled_token() {
    let l = Licensed::start().await;
    l.license(
        json!({ "tag": "crypto", "name": "Strong crypto", "type": "perpetual", "quantity": 5,
                      "start": "2020-01-01", "export_controlled": true }),
    )
    .await;
    // `export_controlled` may be left out (CONTRACT section 3): then it is false.
    let (s, made) = l
        .api
        .post(&format!("{VA}/tokens"), json!({ "expires_in_days": 30 }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    assert_eq!(made["export_controlled"], false);
    let plain = made["token"].as_str().unwrap().to_string();
    let export = l
        .token(json!({ "expires_in_days": 30, "export_controlled": true }))
        .await;
    let a = Agent::new();
    a.register(&l.server, &plain, "P", "PLAIN");
    let out = a.report(&[("crypto", 1)]);
    assert!(
        out.stdout
            .contains("entitlement=crypto 1 export_restricted"),
        "{}",
        out.stdout
    );
    assert_eq!(out.value("status"), "not_authorized");
    let b = Agent::new();
    b.register(&l.server, &export, "P", "EXPORT");
    let out = b.report(&[("crypto", 1)]);
    assert_eq!(out.value("status"), "authorized");
    assert_eq!(
        l.pools().await["crypto"]["in_use"],
        1,
        "restricted demand consumes nothing"
    );
    l.assert_counters_exact();
}

#[tokio::test]
async fn refused_tokens_say_why() {
    let l = Licensed::start().await;
    let once = l
        .token(json!({ "expires_in_days": 1, "max_uses": 1, "export_controlled": false }))
        .await;
    let (_, created) = l
        .api
        .post(
            &format!("{VA}/tokens"),
            json!({ "expires_in_days": 30, "export_controlled": false }),
        )
        .await;
    let revoked = created["token"].as_str().unwrap().to_string();
    let revoked_id = created["id"].as_str().unwrap().to_string();
    let (s, t) = l.api.delete(&format!("{VA}/tokens/{revoked_id}")).await;
    assert_eq!((s, t["state"].as_str()), (StatusCode::OK, Some("revoked")));

    let a = Agent::new();
    let out = a.register(&l.server, &revoked, "P", "S");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("token_revoked"), "{}", out.stderr);
    let out = a.register(&l.server, "st_made_up", "P", "S");
    assert!(out.stderr.contains("token_invalid"));
    assert_eq!(a.register(&l.server, &once, "P", "S").code, 0);
    let out = Agent::new().register(&l.server, &once, "P", "S2");
    assert!(out.stderr.contains("token_exhausted"), "{}", out.stderr);

    let (s, b) = l
        .api
        .post(
            &format!("{VA}/tokens"),
            json!({ "expires_in_days": 366, "export_controlled": false }),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_expiry"))
    );

    // Two days later the one-day token has expired (the clock is injected by restarting).
    let fresh = l
        .token(json!({ "expires_in_days": 1, "export_controlled": false }))
        .await;
    let later = l.server.restart(ServerOptions::upstream().days_later(2));
    let out = Agent::new().register(&later, &fresh, "P", "S3");
    assert!(out.stderr.contains("token_expired"), "{}", out.stderr);
}

#[tokio::test]
async fn term_licenses_and_authorizations_expire_on_the_clock() {
    let l = Licensed::start().await;
    let today = chrono::Utc::now().date_naive();
    l.license(
        json!({ "tag": "term", "name": "One-day term", "type": "term", "quantity": 5,
                      "start": "2020-01-01", "end": today.to_string() }),
    )
    .await;
    l.perpetual("perm", 5).await;
    let token = l.simple_token().await;
    let a = Agent::new();
    a.register(&l.server, &token, "P", "S");
    assert_eq!(
        a.report(&[("term", 1), ("perm", 1)]).value("status"),
        "authorized"
    );

    // Two days on, the term license has expired.
    let server = l.server.restart(ServerOptions::upstream().days_later(2));
    let l = Licensed {
        api: server.admin_api().await,
        server,
    };
    let mut a = a;
    a.env = vec![(
        "SATELLITE_CLOCK_OFFSET_SECONDS".into(),
        (2 * DAY).to_string(),
    )];
    let out = a.report(&[("term", 1), ("perm", 1)]);
    assert_eq!(out.value("status"), "out_of_compliance", "{}", out.stdout);
    assert!(out.stdout.contains("entitlement=perm 1 authorized"));
    assert_eq!(l.pools().await["term"]["status"], "expired");

    // 95 days on with no report, the authorization has lapsed: no licenses held.
    let server = l.server.restart(ServerOptions::upstream().days_later(95));
    let api = server.admin_api().await;
    let (_, list) = api.get(&format!("{VA}/instances")).await;
    assert_eq!(list["items"][0]["status"], "authorization_expired");
    assert_eq!(list["items"][0]["licenses"], json!([]));
    let (_, pools) = api.get(&format!("{VA}/licenses")).await;
    assert!(pools["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["in_use"] == 0));
    a.env = vec![(
        "SATELLITE_CLOCK_OFFSET_SECONDS".into(),
        (95 * DAY).to_string(),
    )];
    let status = a.run(&["status"]);
    assert_eq!(status.value("state"), "authorization-expired");
    assert_eq!(status.value("days_left"), "0");
    let (_, events) = api
        .get("/api/v1/events?action=instance.authorization_expired")
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
    let out = server.cli(&["check"]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // The same counts as before the lapse are drawn again: the lapse emptied the stored
    // usage, so its fingerprint (migration 0020) must not pass them as unchanged.
    let out = a.report(&[("term", 1), ("perm", 1)]);
    assert!(
        out.stdout.contains("entitlement=perm 1 authorized"),
        "{}",
        out.stdout
    );
    let l = Licensed { api, server };
    assert_eq!(l.pools().await["perm"]["in_use"], 1);
    let (_, list) = l.api.get(&format!("{VA}/instances")).await;
    assert_ne!(list["items"][0]["licenses"], json!([]), "{list}");
}

#[tokio::test]
async fn admins_remove_and_transfer_instances_and_licenses() {
    let l = Licensed::start().await;
    l.api.create_va("Acme", "Other").await;
    l.perpetual("ess", 10).await;
    let token = l.simple_token().await;
    let (a, b) = (Agent::new(), Agent::new());
    a.register(&l.server, &token, "P", "A");
    b.register(&l.server, &token, "P", "B");
    a.report(&[("ess", 3)]);
    b.report(&[("ess", 4)]);
    assert_eq!(l.pools().await["ess"]["in_use"], 7);

    // A transfer that would leave the source short is refused and changes nothing.
    let (s, body) = l
        .api
        .post(
            &format!("{VA}/licenses/transfer"),
            json!({ "tag": "ess", "quantity": 4, "to_virtual_account": "Other" }),
        )
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("insufficient_licenses"))
    );
    assert_eq!(l.pools().await["ess"]["quantity"], 10);
    let (s, _) = l
        .api
        .post(
            &format!("{VA}/licenses/transfer"),
            json!({ "tag": "ess", "quantity": 3, "to_virtual_account": "Other" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(l.pools().await["ess"]["quantity"], 7);
    let (_, other) = l
        .api
        .get("/api/v1/accounts/Acme/virtual-accounts/Other/licenses")
        .await;
    assert_eq!(other["items"][0]["quantity"], 3);

    // Move B with its usage to Other; Other's 3 cannot cover B's 4.
    let (_, list) = l.api.get(&format!("{VA}/instances?search=B")).await;
    let b_id = list["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (s, moved) = l
        .api
        .post(
            &format!("{VA}/instances/{b_id}/transfer"),
            json!({ "to_virtual_account": "Other" }),
        )
        .await;
    assert_eq!(
        (s, moved["virtual_account"].as_str()),
        (StatusCode::OK, Some("Other"))
    );
    assert_eq!(l.pools().await["ess"]["in_use"], 3);
    let (_, other) = l
        .api
        .get("/api/v1/accounts/Acme/virtual-accounts/Other/licenses")
        .await;
    assert_eq!(
        (
            other["items"][0]["in_use"].as_i64(),
            other["items"][0]["status"].as_str()
        ),
        (Some(4), Some("insufficient"))
    );
    // B keeps working from its new VA.
    assert_eq!(b.report(&[("ess", 3)]).value("status"), "authorized");

    // Removing A releases its licenses at once; A's agent is then unknown.
    let (_, list) = l.api.get(&format!("{VA}/instances")).await;
    let a_id = list["items"][0]["id"].as_str().unwrap().to_string();
    let (s, _) = l.api.delete(&format!("{VA}/instances/{a_id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(l.pools().await["ess"]["in_use"], 0);
    let out = a.report(&[("ess", 1)]);
    assert!(
        out.stderr.contains("instance_not_registered"),
        "{}",
        out.stderr
    );

    // A VA that still holds licenses cannot be deleted.
    let (s, body) = l.api.delete(VA).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("virtual_account_in_use"))
    );
    l.assert_counters_exact();
}

#[tokio::test]
async fn licenses_are_created_only_on_the_upstream_and_validated() {
    let satellite = Server::start();
    let api = satellite.admin_api().await;
    api.create_account("Acme").await;
    api.create_va("Acme", "Lab").await;
    let (s, b) = api.post(&format!("{VA}/licenses"), json!({ "tag": "x", "name": "x", "type": "perpetual", "quantity": 1, "start": "2026-01-01" })).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("upstream_only"))
    );

    let l = Licensed::start().await;
    for (body, code) in [
        (
            json!({ "tag": "", "name": "x", "type": "perpetual", "quantity": 1, "start": "2026-01-01" }),
            "invalid_tag",
        ),
        (
            json!({ "tag": "t", "name": "x", "type": "lease", "quantity": 1, "start": "2026-01-01" }),
            "invalid_license",
        ),
        (
            json!({ "tag": "t", "name": "x", "type": "term", "quantity": 1, "start": "2026-01-01" }),
            "invalid_license",
        ),
        (
            json!({ "tag": "t", "name": "x", "type": "perpetual", "quantity": -1, "start": "2026-01-01" }),
            "invalid_quantity",
        ),
        (
            json!({ "tag": "t", "name": "x", "type": "perpetual", "quantity": 1, "start": "2026-13-01" }),
            "invalid_date",
        ),
    ] {
        let (s, b) = l.api.post(&format!("{VA}/licenses"), body).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code))
        );
    }
    l.perpetual("t", 1).await;
    let (s, b) = l.api.post(&format!("{VA}/licenses"), json!({ "tag": "t", "name": "x", "type": "perpetual", "quantity": 1, "start": "2026-01-01" })).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate_name"))
    );
    assert_eq!(l.pools().await.len(), 1);
}

/// Two hundred agents register and report at once; every counter equals a full recount.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_agents_leave_counters_exact() {
    let l = Licensed::start().await;
    l.perpetual("ess", 500).await;
    l.perpetual("adv", 100).await;
    let token = l
        .token(json!({ "expires_in_days": 30, "max_uses": 200, "export_controlled": false }))
        .await;
    let agents: Vec<Agent> = (0..200).map(|_| Agent::new()).collect();
    let ca = l.server.data_dir.join("tls/cert.pem");
    let run = |agent: &Agent, args: Vec<String>| {
        let mut cmd = tokio::process::Command::new(crate::support::AGENT);
        cmd.arg("--state-dir").arg(agent.state_dir()).args(args);
        cmd.output()
    };
    let registrations = agents.iter().enumerate().map(|(i, a)| {
        run(
            a,
            vec![
                "register".into(),
                "--url".into(),
                l.server.url.clone(),
                "--token".into(),
                token.clone(),
                "--pid".into(),
                "LOAD".into(),
                "--sn".into(),
                format!("SN{i:04}"),
                "--ca-cert".into(),
                ca.display().to_string(),
            ],
        )
    });
    for out in futures_join(registrations).await {
        let out = out.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Each agent reports twice concurrently with all others; the second replaces the first.
    let mut expected = 0;
    for round in 0..2 {
        let reports = agents.iter().enumerate().map(|(i, a)| {
            let count = ((i * 7 + round * 3) % 5) as i64;
            run(
                a,
                vec![
                    "report".into(),
                    "--license".into(),
                    format!("ess={count}"),
                    "--license".into(),
                    format!("adv={}", i % 2),
                ],
            )
        });
        for out in futures_join(reports).await {
            let out = out.unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        expected = (0..200)
            .map(|i| ((i * 7 + round * 3) % 5) as i64)
            .sum::<i64>();
    }
    let pools = l.pools().await;
    assert_eq!(pools["ess"]["in_use"].as_i64(), Some(expected));
    assert_eq!(pools["adv"]["in_use"].as_i64(), Some(100));
    l.assert_counters_exact();
    let (_, tokens) = l.api.get(&format!("{VA}/tokens")).await;
    assert_eq!(tokens["items"][0]["uses"], 200);
    assert_eq!(tokens["items"][0]["state"], "exhausted");
}

/// Awaits all futures concurrently (a small join_all, to avoid a dependency for tests).
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// The writer keeps each VA's evaluation between reports (store/evaluation_cache.rs): a
/// report repeating its counts is still judged against the pool as it is now, after
/// another instance's report used up the pool and after an admin moved licenses in. (A
/// commit by another connection, as a bundle import's, is the module's own test.)
#[tokio::test]
async fn a_repeated_report_is_judged_against_the_pool_as_it_is_now() {
    let l = Licensed::start().await;
    l.api.create_va("Acme", "Other").await;
    l.perpetual("ess", 5).await;
    let other = "/api/v1/accounts/Acme/virtual-accounts/Other/licenses";
    let (s, b) = l
        .api
        .post(
            other,
            json!({ "tag": "ess", "name": "ess", "type": "perpetual", "quantity": 5,
                    "start": "2020-01-01" }),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let token = l.simple_token().await;
    let (a, b) = (Agent::new(), Agent::new());
    a.register(&l.server, &token, "P", "A");
    b.register(&l.server, &token, "P", "B");
    assert_eq!(a.report(&[("ess", 3)]).value("status"), "authorized");
    assert_eq!(a.report(&[("ess", 3)]).value("status"), "authorized");

    // B's report takes the pool past its 5: A's unchanged report is now short too.
    assert_eq!(b.report(&[("ess", 3)]).value("status"), "out_of_compliance");
    let out = a.report(&[("ess", 3)]);
    assert_eq!(out.value("status"), "out_of_compliance", "{}", out.stdout);
    assert_eq!(a.report(&[("ess", 3)]).value("status"), "out_of_compliance");

    // An admin moves 2 in from Other: 7 cover the 6.
    let (s, body) = l
        .api
        .post(
            "/api/v1/accounts/Acme/virtual-accounts/Other/licenses/transfer",
            json!({ "tag": "ess", "quantity": 2, "to_virtual_account": "Lab" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(a.report(&[("ess", 3)]).value("status"), "authorized");
    assert_eq!(a.report(&[("ess", 3)]).value("status"), "authorized");
    l.assert_counters_exact();
}
