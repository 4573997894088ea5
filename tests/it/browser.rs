//! Headless Chromium walks the admin pages like a person. Screenshots land in
//! target/screenshots/ for people to look at.

use crate::support::agent::Agent;
use crate::support::webdriver::Browser;
use crate::support::{Server, ServerOptions};

/// Logs in as the initial admin and replaces the generated password.
async fn admin_login(browser: &Browser, server: &Server) {
    let initial = server.admin_password.as_deref().unwrap();
    browser.goto(&format!("{}/login", server.url)).await;
    browser.fill("#username", "admin").await;
    browser.fill("#password", initial).await;
    browser.click("#login").await;
    browser.fill("#current", initial).await;
    browser
        .fill("#new_password", "browser chosen passphrase")
        .await;
    browser.fill("#confirm", "browser chosen passphrase").await;
    browser.click("#change-password").await;
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
    assert_eq!(a.register(&server, &token, "GLX-1", "A1").code, 0);
    assert_eq!(b.register(&server, &token, "GLX-1", "B1").code, 0);
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
    browser.fill("#instance-search", "B1").await;
    browser.click("#search").await;
    let rows = browser.text("#instances").await;
    assert!(rows.contains("B1") && !rows.contains("A1"), "{rows}");
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
