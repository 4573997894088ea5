//! Issue 15, sync administration: the upstream lists and revokes its satellite tokens and
//! deregisters a satellite (whose bundles are then refused with that reason, connected and
//! by hand); a satellite switches its link's mode, registers again and deregisters from
//! its Sync page; failed connected attempts are listed as failed, in words.

use crate::support::agent::Agent;
use crate::support::sync::Pair;
use crate::support::{Session, VA};
use reqwest::StatusCode;
use serde_json::{json, Value};

const SAT_PAGE: &str = "/accounts/Acme/sync";

fn upstream_ca(pair: &Pair) -> String {
    std::fs::read_to_string(pair.upstream.server.data_dir.join("tls/cert.pem")).unwrap()
}

async fn token_states(pair: &Pair) -> Vec<(String, String)> {
    let (s, b) = pair
        .upstream
        .api
        .get("/api/v1/accounts/Acme/satellite-tokens")
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["description"].as_str().unwrap().to_string(),
                t["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn described_token(pair: &Pair, description: &str) -> (String, String) {
    let (s, b) = pair
        .upstream
        .api
        .post(
            "/api/v1/accounts/Acme/satellite-tokens",
            json!({ "expires_in_days": 30, "description": description }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let token = b["token"].as_str().unwrap().to_string();
    let (_, list) = pair
        .upstream
        .api
        .get("/api/v1/accounts/Acme/satellite-tokens")
        .await;
    let id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["description"] == description)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    (id, token)
}

fn in_use(pools: &[(String, i64, i64, String)], tag: &str) -> i64 {
    pools.iter().find(|p| p.0 == tag).map_or(-1, |p| p.2)
}

async fn flash_after(session: &Session, location: Option<String>) -> String {
    let (_, html) = session.page(&location.expect("a redirect")).await;
    html
}

#[tokio::test]
async fn satellite_tokens_and_satellites_are_listed_and_revoked_on_the_upstream() {
    let pair = Pair::start().await;
    // A token used by the registration, one left unused, one revoked.
    pair.register_disconnected().await;
    let (spare_id, _) = described_token(&pair, "spare").await;
    let (lost_id, lost) = described_token(&pair, "lost in the mail").await;
    let (s, b) = pair
        .upstream
        .api
        .delete(&format!("/api/v1/accounts/Acme/satellite-tokens/{lost_id}"))
        .await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::OK, Some("revoked")),
        "{b}"
    );
    let states = token_states(&pair).await;
    assert!(
        states.contains(&("spare".into(), "unused".into())),
        "{states:?}"
    );
    assert!(states.contains(&("lost in the mail".into(), "revoked".into())));
    assert!(
        states.contains(&(String::new(), "used".into())),
        "{states:?}"
    );
    // A used token cannot be revoked (the satellite is what to deregister); unknown is 404.
    let (_, list) = pair
        .upstream
        .api
        .get("/api/v1/accounts/Acme/satellite-tokens")
        .await;
    let used_id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["state"] == "used")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = pair
        .upstream
        .api
        .delete(&format!("/api/v1/accounts/Acme/satellite-tokens/{used_id}"))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("token_used"))
    );
    let (s, _) = pair
        .upstream
        .api
        .delete("/api/v1/accounts/Acme/satellite-tokens/stk_nope")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The satellite's own API has no such routes: they are the upstream's.
    let (s, b) = pair
        .sat_api
        .get("/api/v1/accounts/Acme/satellite-tokens")
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("upstream_only"))
    );

    // A revoked token registers nothing.
    let (s, b) = pair
        .sat_api
        .post(
            "/api/v1/accounts/Acme/upstream",
            json!({ "mode": "connected", "token": lost, "url": pair.upstream.server.url,
                    "ca_cert_pem": upstream_ca(&pair) }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
    assert_eq!(
        b["error"]["message"],
        "the upstream refused the token: the registration token was revoked by the upstream's admin",
        "{b}"
    );
    // ... and that failed attempt is listed as failed, with the reason, not as written.
    let (_, hist) = pair.sat_api.get("/api/v1/sync/history").await;
    let newest = &hist["items"][0];
    assert_eq!(
        (newest["kind"].as_str(), newest["result"].as_str()),
        (Some("registration-request"), Some("failed")),
        "{hist}"
    );
    assert!(newest["detail"].as_str().unwrap().contains("revoked"));

    // The failed attempt left the link pending: register again with the spare token, by hand.
    let _ = spare_id;
    pair.register_disconnected().await;

    // Products behind the satellite count upstream.
    let (s, b) = pair
        .sat_api
        .post(
            &format!("{VA}/tokens"),
            json!({ "expires_in_days": 30, "export_controlled": false }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let agent = Agent::new();
    let out = agent.register(&pair.satellite, b["token"].as_str().unwrap(), "SAT", "S1");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(agent.report(&[("ess", 3)]).code, 0);
    pair.sync_disconnected().await;
    assert_eq!(in_use(&Pair::pools(&pair.upstream.api).await, "ess"), 3);
    let (s, sats) = pair
        .upstream
        .api
        .get("/api/v1/accounts/Acme/satellites")
        .await;
    assert_eq!(s, StatusCode::OK, "{sats}");
    let sat: Value = sats["items"][0].clone();
    assert_eq!(
        (sat["satellite_account"].as_str(), sat["instances"].as_i64()),
        (Some("Acme"), Some(1)),
        "{sats}"
    );

    // The satellite switches to connected from its page, and syncs over HTTPS.
    let session = pair.satellite.session("system-admin", None).await;
    let (_, html) = session.page(SAT_PAGE).await;
    assert!(html.contains("id=\"switch-mode\""), "{html}");
    let (s, html, _) = session
        .submit(
            SAT_PAGE,
            "/accounts/Acme/sync/mode",
            &[("mode", "connected"), ("url", "http://plain")],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"switch-url-error\""), "{html}");
    assert!(
        html.contains("value=\"http://plain\""),
        "what was typed is kept"
    );
    let up_url = pair.upstream.server.url.clone();
    let ca = upstream_ca(&pair);
    let (s, _, loc) = session
        .submit(
            SAT_PAGE,
            "/accounts/Acme/sync/mode",
            &[
                ("mode", "connected"),
                ("url", &up_url),
                ("ca_cert_pem", &ca),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let html = flash_after(&session, loc).await;
    assert!(html.contains("now syncs connected"), "{html}");
    assert!(
        html.contains("id=\"schedule\""),
        "a connected link has its cron form"
    );
    let (s, _, loc) = session
        .submit(SAT_PAGE, "/accounts/Acme/sync/now", &[])
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let html = flash_after(&session, loc).await;
    assert!(
        html.contains("Synced account Acme with the upstream"),
        "{html}"
    );

    // The upstream's page lists the token states and the satellite, with a confirmation
    // step before deregistering that says what happens.
    let up = pair.upstream.server.session("system-admin", None).await;
    let (_, html) = up.page("/sync").await;
    assert!(html.contains("id=\"satellite-token-list\""), "{html}");
    assert!(
        html.contains(&format!("id=\"revoke-{spare_id}\"")),
        "an unused token is revocable"
    );
    assert!(!html.contains(&format!("id=\"revoke-{used_id}\"")));
    assert!(html.contains("id=\"deregister-Acme\""));
    // An operator reads the list but is offered neither revocation nor deregistration.
    let op = pair.upstream.server.session("operator", None).await;
    let (_, html) = op.page("/sync").await;
    assert!(html.contains("id=\"satellites\""));
    assert!(!html.contains("id=\"deregister-Acme\"") && !html.contains("id=\"revoke-"));
    let confirm = format!("/sync/satellites/Acme/{}/deregister", sat["id"]);
    let (s, html) = up.page(&confirm).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("stop counting"), "{html}");
    let (s, _, loc) = up.submit(&confirm, &confirm, &[]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let html = flash_after(&up, loc).await;
    assert!(html.contains("Deregistered satellite"), "{html}");
    assert_eq!(
        in_use(&Pair::pools(&pair.upstream.api).await, "ess"),
        0,
        "its usage no longer counts"
    );
    let (_, sats) = pair
        .upstream
        .api
        .get("/api/v1/accounts/Acme/satellites")
        .await;
    assert_eq!(sats["items"].as_array().unwrap().len(), 0);
    pair.upstream.assert_counters_exact();
    let (_, events) = pair.upstream.api.get("/api/v1/events").await;
    assert!(events.to_string().contains("satellite.revoked"));

    // Its connected sync is refused, in words, on its page; listed as failed.
    let (s, html, _) = session
        .submit(SAT_PAGE, "/accounts/Acme/sync/now", &[])
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{html}");
    // The banner is a sentence of its own: a capital first, whatever the API's clause.
    assert!(
        html.contains("id=\"problem\">The upstream refused the request: this satellite"),
        "{html}"
    );
    assert!(
        html.contains("was deregistered by the upstream&#39;s admin"),
        "{html}"
    );
    assert!(html.contains("pill-failed"), "{html}");
    // ... and so is one carried by hand.
    let out = pair
        .satellite
        .cli(&["bundle", "export", "--account", "Acme"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let refused = pair
        .upstream
        .server
        .cli(&["bundle", "import", &out.value("bundle")]);
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("was deregistered by the upstream's admin"),
        "{}",
        refused.stderr
    );

    // Registering again with a new token (connected, from the page) brings it back.
    let (_, fresh) = described_token(&pair, "again").await;
    let (s, html, loc) = session
        .submit(
            SAT_PAGE,
            "/accounts/Acme/sync/register",
            &[
                ("mode", "connected"),
                ("url", &up_url),
                ("token", &fresh),
                ("ca_cert_pem", &ca),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
    flash_after(&session, loc).await;
    let (s, _, _) = session
        .submit(SAT_PAGE, "/accounts/Acme/sync/now", &[])
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(
        in_use(&Pair::pools(&pair.upstream.api).await, "ess"),
        3,
        "counted again"
    );
    pair.upstream.assert_counters_exact();

    // Back to disconnected: no cron form; then deregister after the confirmation step.
    let (s, _, loc) = session
        .submit(
            SAT_PAGE,
            "/accounts/Acme/sync/mode",
            &[("mode", "disconnected")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let html = flash_after(&session, loc).await;
    assert!(html.contains("now syncs disconnected"), "{html}");
    assert!(!html.contains("id=\"schedule\""));
    let (s, html) = session.page("/accounts/Acme/sync/deregister").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("stay here as last synced"), "{html}");
    let (s, _, loc) = session
        .submit(
            "/accounts/Acme/sync/deregister",
            "/accounts/Acme/sync/deregister",
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let html = flash_after(&session, loc).await;
    assert!(html.contains("no longer registered"), "{html}");
    let (_, state) = pair.sat_api.get("/api/v1/accounts/Acme/upstream").await;
    assert_eq!(state["state"], "unregistered");
    let (_, va) = pair.sat_api.get(VA).await;
    assert_eq!(va["synced"], true, "synced data stays");
    // An operator may sync but not change the link.
    let op = pair.satellite.session("operator", None).await;
    let (s, _) = op.page("/accounts/Acme/sync/deregister").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
