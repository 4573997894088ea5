//! Chromium walks what issue 15's second half built, on a real upstream and satellite:
//! token states and revocation, deregistering a satellite behind a confirmation step, the
//! satellite switching mode, syncing, being refused in words, registering again and
//! deregistering; instance reasons, the VA's substitution note, readable events, and
//! wrong uploads shown next to the file field. Screenshots go to target/screenshots/.

use crate::adminux_pages::product;
use crate::support::sync::Pair;
use crate::support::webdriver::Browser;
use serde_json::json;

#[tokio::test]
async fn browser_walks_sync_administration_and_explanations() {
    let pair = Pair::start().await;
    pair.register_disconnected().await;
    // One product behind the satellite (ess 3), one on the upstream (ess 4): ess 5 + adv 2.
    let (_, t) = pair
        .sat_api
        .post(
            "/api/v1/accounts/Acme/virtual-accounts/Lab/tokens",
            json!({ "expires_in_days": 30, "export_controlled": false }),
        )
        .await;
    let agent = crate::support::agent::Agent::new();
    let out = agent.register(&pair.satellite, t["token"].as_str().unwrap(), "SAT", "S1");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(agent.report(&[("ess", 3)]).code, 0);
    pair.sync_disconnected().await;
    let l = &pair.upstream;
    let token = l.simple_token().await;
    let direct = product(l, &token, "FOC1", &[("ess", 4)]).await;
    let (_, b) = l
        .api
        .post(
            "/api/v1/accounts/Acme/satellite-tokens",
            json!({ "expires_in_days": 30, "description": "spare" }),
        )
        .await;
    assert!(b["token"].is_string(), "{b}");
    let (_, list) = l.api.get("/api/v1/accounts/Acme/satellite-tokens").await;
    let spare = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["description"] == "spare")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, sats) = l.api.get("/api/v1/accounts/Acme/satellites").await;
    let sat_id = sats["items"][0]["id"].as_i64().unwrap();

    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.set_size(1280, 1000).await;
    let up = l.server.url.clone();
    let sat = pair.satellite.url.clone();
    browser.first_admin_login(&l.server, &up).await;
    browser.first_admin_login(&pair.satellite, &sat).await;

    // Upstream: tokens with their states; an unused one revoked.
    browser.goto(&format!("{up}/sync")).await;
    let tokens = browser.text("#satellite-token-list").await;
    assert!(
        tokens.contains("used") && tokens.contains("unused"),
        "{tokens}"
    );
    browser.screenshot("adminux-10-upstream-satellites").await;
    browser.click(&format!("#revoke-{spare}")).await;
    browser.accept_alert().await;
    assert!(browser
        .text(".flash")
        .await
        .contains("no satellite can register with it now"));
    assert!(!browser.exists(&format!("#revoke-{spare}")).await);
    browser.screenshot("adminux-11-token-revoked").await;

    // A wrong file answered in the page, next to the file field, with the menu.
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), b"not a bundle at all").unwrap();
    browser.upload("#request-file", junk.path()).await;
    browser.click("#answer").await;
    let e = browser.text("#bundle-error").await;
    assert!(e.starts_with("This file was refused:"), "{e}");
    assert!(browser.exists("#server-role").await, "the menu stays");
    browser.screenshot("adminux-12-upstream-wrong-file").await;

    // The instance page explains; the VA page says where Advantage's units went.
    browser
        .goto(&format!(
            "{up}/accounts/Acme/virtual-accounts/Lab/instances/{direct}"
        ))
        .await;
    let why = browser.text("#license-reason-1").await;
    assert!(why.contains("covered by adv"), "{why}");
    browser.screenshot("adminux-13-instance-reasons").await;
    browser
        .goto(&format!("{up}/accounts/Acme/virtual-accounts/Lab"))
        .await;
    let licenses = browser.text("#licenses").await;
    assert!(
        licenses.contains("2 in use, all covering ess"),
        "{licenses}"
    );
    browser.screenshot("adminux-14-va-substitution").await;
    browser.goto(&format!("{up}/events")).await;
    assert!(browser.exists("dl.event-fields").await);
    browser.screenshot("adminux-15-events").await;

    // Satellite: switch to connected, sync, and the history fits the page.
    let page = format!("{sat}/accounts/Acme/sync");
    browser.goto(&page).await;
    assert!(!browser.exists("#schedule").await, "disconnected: no cron");
    browser.fill("#switch-url", &up).await;
    let ca = std::fs::read_to_string(l.server.data_dir.join("tls/cert.pem")).unwrap();
    browser.fill("#switch-ca", &ca).await;
    browser.click("#switch-mode-submit").await;
    assert!(browser.text(".flash").await.contains("now syncs connected"));
    assert!(browser.exists("#schedule").await);
    browser.click("#sync-now").await;
    let flash = browser.text(".flash").await;
    assert!(
        flash.starts_with("Synced account Acme with the upstream: its sync response brought"),
        "{flash}"
    );
    let width = browser
        .script("return document.documentElement.scrollWidth")
        .await;
    let width = width.and_then(|w| w.as_i64()).unwrap_or(i64::MAX);
    assert!(width <= 1280, "no overflow: {width}");
    browser.screenshot("adminux-16-satellite-connected").await;

    // Upstream deregisters it after a confirmation page; its next sync is refused in words.
    browser
        .goto(&format!("{up}/sync/satellites/Acme/{sat_id}/deregister"))
        .await;
    assert!(browser
        .text("#consequences")
        .await
        .contains("stop counting"));
    browser
        .screenshot("adminux-17-confirm-deregister-satellite")
        .await;
    browser.click("#confirm-submit").await;
    assert!(browser
        .text(".flash")
        .await
        .contains("Deregistered satellite"));
    browser.goto(&page).await;
    browser.click("#sync-now").await;
    let problem = browser.text("#problem").await;
    assert!(
        problem.contains("was deregistered by the upstream's admin"),
        "{problem}"
    );
    assert!(
        problem.starts_with("The upstream refused the request:"),
        "a banner starts with a capital: {problem}"
    );
    assert!(browser.text("#sync-history").await.contains("failed"));
    browser.screenshot("adminux-18-refused-in-words").await;

    // Registering again checks the token's shape at its field.
    browser
        .fill("#again-token", "st_not-a-satellite-token")
        .await;
    browser.click("#register-again-submit").await;
    assert!(browser.exists("#again-token-error").await);
    browser
        .script("document.getElementById('again-token-error').scrollIntoView({block: 'center'})")
        .await;
    browser.screenshot("adminux-19-register-again-error").await;

    // A wrong file to import: next to its field.
    browser.upload("#response-file", junk.path()).await;
    browser.click("#import").await;
    assert!(browser
        .text("#bundle-error")
        .await
        .starts_with("This file was refused:"));
    browser
        .script("document.getElementById('bundle-error').scrollIntoView({block: 'center'})")
        .await;
    browser.screenshot("adminux-20-satellite-wrong-file").await;

    // Deregister here too, after saying what happens.
    browser.goto(&page).await;
    browser.click("#deregister").await;
    assert!(browser
        .text("#consequences")
        .await
        .contains("stay here as last synced"));
    browser.screenshot("adminux-21-confirm-deregister").await;
    browser.click("#confirm-submit").await;
    assert_eq!(browser.text("#link-state").await, "unregistered");
    browser.screenshot("adminux-22-deregistered").await;
    browser.quit().await;
}
