//! Headless Chromium walks the admin pages like a person. Screenshots land in
//! target/screenshots/ for people to look at.

use crate::support::webdriver::Browser;
use crate::support::Server;

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
