//! Headless Chromium walks the admin pages like a person. Screenshots land in
//! target/screenshots/ for people to look at.

use crate::support::agent::Agent;
use crate::support::webdriver::Browser;
use crate::support::{Server, ServerOptions};

/// Logs in as the initial admin and replaces the generated password.
async fn admin_login(browser: &Browser, server: &Server) {
    admin_login_at(browser, server, &server.url).await
}

async fn admin_login_at(browser: &Browser, server: &Server, base: &str) {
    browser.first_admin_login(server, base).await;
    assert_eq!(browser.text(".flash").await, "Password changed.");
}

#[tokio::test]
async fn admin_logs_in_and_creates_an_account_and_a_virtual_account() {
    let server = Server::start();
    let Some(browser) = Browser::start().await else {
        return;
    };
    let url = &server.url;
    browser.goto(&format!("{url}/")).await;
    assert!(browser.current_url().await.contains("/login"));
    browser.screenshot("foundation-01-login").await;

    browser.fill("#username", "admin").await;
    browser
        .fill("#password", server.admin_password.as_deref().unwrap())
        .await;
    browser.click("#login").await;
    assert!(browser.current_url().await.ends_with("/account/password"));
    let new_password = "browser chosen passphrase";
    browser
        .fill("#current", server.admin_password.as_deref().unwrap())
        .await;
    browser.fill("#new_password", new_password).await;
    browser.fill("#confirm", new_password).await;
    browser.click("#change-password").await;
    assert_eq!(browser.text(".flash").await, "Password changed.");

    browser.goto(&format!("{url}/accounts")).await;
    browser.fill("#account-name", "bad/name").await;
    browser.click("#create-account").await;
    assert!(browser
        .text("#account-name-error")
        .await
        .contains("letters, digits"));
    browser.screenshot("foundation-02-field-error").await;

    browser.fill("#account-name", "Acme Industries").await;
    browser.fill("#account-description", "Headquarters").await;
    browser.click("#create-account").await;
    assert_eq!(browser.text("#account-title").await, "Acme Industries");
    assert_eq!(
        browser.text(".flash").await,
        "Account 'Acme Industries' created."
    );

    browser.fill("#va-name", "Plant-Floor").await;
    browser.fill("#va-description", "Line controllers").await;
    browser.click("#create-va").await;
    assert!(browser.text("#va-title").await.starts_with("Plant-Floor"));
    browser.click(".crumbs a:nth-of-type(2)").await;
    let table = browser.text("#virtual-accounts").await;
    assert!(
        table.contains("Plant-Floor") && table.contains("Line controllers"),
        "{table}"
    );
    browser.screenshot("foundation-03-account").await;

    browser.goto(&format!("{url}/")).await;
    assert_eq!(browser.text("#account-total").await, "1");
    assert_eq!(browser.text("#va-total").await, "1");
    browser.screenshot("foundation-04-dashboard").await;

    browser.goto(&format!("{url}/events")).await;
    let events = browser.text("#events").await;
    assert!(events.contains("virtual_account.created") && events.contains("user:admin"));
    browser.screenshot("foundation-05-events").await;

    browser.set_size(390, 844).await;
    browser
        .goto(&format!("{url}/accounts/Acme%20Industries"))
        .await;
    browser.screenshot("foundation-06-phone").await;
    browser.quit().await;
}

#[tokio::test]
async fn licensing_on_the_virtual_account_page() {
    let server = Server::start_with(ServerOptions::upstream());
    let Some(browser) = Browser::start().await else {
        return;
    };
    let url = server.url.clone();
    admin_login(&browser, &server).await;
    browser.goto(&format!("{url}/accounts")).await;
    browser.fill("#account-name", "Globex").await;
    browser.click("#create-account").await;
    for va in ["Plant", "Spare"] {
        browser.goto(&format!("{url}/accounts/Globex")).await;
        browser.fill("#va-name", va).await;
        browser.click("#create-va").await;
    }
    let va_url = format!("{url}/accounts/Globex/virtual-accounts/Plant");
    browser.goto(&va_url).await;

    // A license with a bad tag shows its error next to the field; then two good ones.
    browser.fill("#license-tag", " ").await;
    browser.fill("#license-name", "Essentials").await;
    browser.fill("#license-quantity", "2").await;
    browser.fill("#license-start", "01/01/2026").await;
    browser.click("#create-license").await;
    assert!(browser
        .text("#license-tag-error")
        .await
        .contains("non-empty"));
    browser
        .fill("#license-tag", "regid.2026-01.com.globex.ess,1.0")
        .await;
    browser.click("#create-license").await;
    assert_eq!(
        browser.text(".flash").await,
        "License regid.2026-01.com.globex.ess,1.0 added."
    );
    browser
        .fill("#license-tag", "regid.2026-01.com.globex.adv,1.0")
        .await;
    browser.fill("#license-name", "Advantage").await;
    browser.fill("#license-quantity", "1").await;
    browser.fill("#license-start", "01/01/2026").await;
    browser
        .fill("#license-substitutes", "regid.2026-01.com.globex.ess,1.0")
        .await;
    browser.click("#create-license").await;

    // A token, shown once.
    browser.fill("#token-description", "plant floor").await;
    browser.fill("#token-max-uses", "5").await;
    browser.click("#create-token").await;
    let token = browser.text("#token-secret").await;
    assert!(token.starts_with("st_"), "{token}");

    // Real agents use it: 3 of ess is covered with the adv substitute, 4 is not.
    let (a, b) = (Agent::new(), Agent::new());
    assert_eq!(a.register(&server, &token, "GLX-1", "SN-ALPHA").code, 0);
    assert_eq!(b.register(&server, &token, "GLX-1", "SN-BRAVO").code, 0);
    assert_eq!(
        a.report(&[("regid.2026-01.com.globex.ess,1.0", 2)])
            .value("status"),
        "authorized"
    );
    assert_eq!(
        b.report(&[("regid.2026-01.com.globex.ess,1.0", 2)])
            .value("status"),
        "out_of_compliance"
    );
    browser.goto(&va_url).await;
    let table = browser.text("#licenses").await;
    assert!(table.contains("insufficient"), "{table}");
    // Advantage lends its one license to Essentials: 1 in use, 0 available.
    let adv_row = table
        .lines()
        .find(|l| l.starts_with("Advantage"))
        .unwrap_or_default()
        .to_string();
    assert!(
        table.contains("covers regid.2026-01.com.globex.ess,1.0"),
        "{table}"
    );
    let licenses = server.cli(&["check"]);
    assert_eq!(licenses.code, 0);
    let api = server.admin_api().await;
    let (_, pools) = api
        .get("/api/v1/accounts/Globex/virtual-accounts/Plant/licenses")
        .await;
    assert_eq!(pools["items"][0]["tag"], "regid.2026-01.com.globex.adv,1.0");
    assert_eq!(pools["items"][0]["in_use"], 1, "{adv_row}");
    assert!(browser.text("#tokens").await.contains("2 / 5"));
    browser.screenshot("licensing-01-va-page").await;

    browser.goto(&format!("{url}/")).await;
    assert!(browser.text("#short-pools").await.contains("Essentials"));
    assert!(browser.exists("#status-chart").await);
    browser.screenshot("licensing-02-dashboard").await;

    // Move B to Spare from its page; Plant is back in compliance.
    browser.goto(&format!("{va_url}/instances")).await;
    // Search matches substrings of ids too; serials no hex id can contain keep it exact.
    browser.fill("#instance-search", "BRAVO").await;
    browser.click("#search").await;
    let rows = browser.text("#instances").await;
    assert!(
        rows.contains("SN-BRAVO") && !rows.contains("SN-ALPHA"),
        "{rows}"
    );
    browser.click("#instances tbody a").await;
    assert!(browser
        .text("#usage")
        .await
        .contains("regid.2026-01.com.globex.ess,1.0"));
    browser.screenshot("licensing-03-instance").await;
    browser.click("#transfer").await;
    assert_eq!(browser.text(".flash").await, "Instance moved to Spare.");
    browser.goto(&va_url).await;
    assert!(!browser.text("#licenses").await.contains("insufficient"));

    // Remove A: its licenses are released at once.
    browser.goto(&format!("{va_url}/instances")).await;
    browser.click("#instances tbody a").await;
    browser.click("#remove-instance").await;
    browser.accept_alert().await;
    assert!(browser.text(".flash").await.contains("removed"));
    let out = a.report(&[("regid.2026-01.com.globex.ess,1.0", 1)]);
    assert!(
        out.stderr.contains("instance_not_registered"),
        "{}",
        out.stderr
    );
    browser.goto(&va_url).await;
    browser.screenshot("licensing-04-after-remove").await;
    assert_eq!(server.cli(&["check"]).code, 0);
    browser.quit().await;
}

/// The disconnected loop through the pages of both servers: token on the upstream,
/// registration request down from the satellite, up to the upstream, response back;
/// then a sync request and its response the same way.
#[tokio::test]
async fn disconnected_sync_through_the_pages() {
    let pair = crate::support::sync::Pair::start().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let downloads = tempfile::tempdir().unwrap();
    browser.allow_downloads(downloads.path()).await;
    // Two host names keep the two servers' session cookies apart.
    let up = pair.upstream.server.url.clone();
    let sat = pair.satellite.url.replace("127.0.0.1", "localhost");
    admin_login_at(&browser, &pair.upstream.server, &up).await;
    admin_login_at(&browser, &pair.satellite, &sat).await;

    browser.goto(&format!("{up}/sync")).await;
    browser.click("#create-satellite-token").await;
    let token = browser.text("#satellite-token").await;
    assert!(token.starts_with("sat_"), "{token}");

    browser.goto(&format!("{sat}/accounts/Acme/sync")).await;
    assert_eq!(browser.text("#link-state").await, "unregistered");
    browser.fill("#disconnected-token", &token).await;
    browser
        .click_download("#register-disconnected-submit")
        .await;
    let request = browser
        .downloaded(downloads.path(), "registration-request")
        .await;

    browser.goto(&format!("{up}/sync")).await;
    browser.upload("#request-file", &request).await;
    browser.click("#answer").await;
    assert_eq!(browser.text("#changes-account").await, "Acme");
    browser.click_download("#apply").await;
    let response = browser
        .downloaded(downloads.path(), "registration-response")
        .await;

    browser.goto(&format!("{sat}/accounts/Acme/sync")).await;
    browser.upload("#response-file", &response).await;
    browser.click("#import").await;
    assert!(browser.text(".preview-licenses").await.contains("ess"));
    browser.click("#apply").await;
    assert_eq!(browser.text("#link-state").await, "registered");
    assert!(browser
        .text(".flash")
        .await
        .contains("Imported the registration response for account Acme"));
    browser.screenshot("sync-01-satellite-registered").await;

    // An agent uses the synced licenses; its usage goes up with the next round.
    let (_, t) = pair
        .sat_api
        .post(
            "/api/v1/accounts/Acme/virtual-accounts/Lab/tokens",
            serde_json::json!({ "expires_in_days": 5, "export_controlled": false }),
        )
        .await;
    let agent = Agent::new();
    assert_eq!(
        agent
            .register(&pair.satellite, t["token"].as_str().unwrap(), "WEB", "1")
            .code,
        0
    );
    assert_eq!(agent.report(&[("ess", 4)]).value("status"), "authorized");

    browser.click_download("#export").await;
    let sync_request = browser.downloaded(downloads.path(), "sync-request").await;
    browser.goto(&format!("{up}/sync")).await;
    browser.upload("#request-file", &sync_request).await;
    browser.click("#answer").await;
    browser.click_download("#apply").await;
    let sync_response = browser.downloaded(downloads.path(), "sync-response").await;
    browser.goto(&format!("{up}/sync")).await;
    assert!(browser.text("#satellites").await.contains("Acme"));
    browser.screenshot("sync-02-upstream-satellites").await;

    browser.goto(&format!("{sat}/accounts/Acme/sync")).await;
    browser.upload("#response-file", &sync_response).await;
    browser.click("#import").await;
    browser.click("#apply").await;
    assert_eq!(browser.text("#sequences").await, "1 / 1");
    assert!(browser
        .text("#sync-history")
        .await
        .contains("sync-response"));
    browser.screenshot("sync-03-satellite-synced").await;
    pair.assert_same_licenses_and_usage().await;
    browser.quit().await;
}
