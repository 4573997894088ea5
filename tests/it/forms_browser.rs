//! Chromium walks the forms of issue #15: a form with several bad fields shows each error
//! next to its field at once and keeps what was typed; a created token shows once, and
//! the browser's reload neither shows it again nor makes another.

use crate::support::webdriver::Browser;
use crate::support::{Licensed, VA};

async fn scroll_to(browser: &Browser, id: &str) {
    let _ = browser
        .script(&format!(
            "document.getElementById('{id}').scrollIntoView({{block: 'center'}}); return true"
        ))
        .await;
}

#[tokio::test]
async fn forms_show_every_error_at_once_and_a_reload_never_submits_twice() {
    let l = Licensed::start().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let url = l.server.url.clone();
    browser.first_admin_login(&l.server, &url).await;

    // The token form with three bad fields (the browser's own checks set aside, as an old
    // browser or a script would post it).
    browser
        .goto(&format!("{url}/accounts/Acme/virtual-accounts/Lab"))
        .await;
    let _ = browser
        .script("document.getElementById('new-token').noValidate = true; return true")
        .await;
    browser.fill("#token-description", "line\u{7}feed").await;
    browser.fill("#token-days", "400").await;
    browser.fill("#token-max-uses", "0").await;
    browser.click("#create-token").await;
    assert!(browser.exists("#token-days-error").await);
    assert!(browser.exists("#token-max-uses-error").await);
    assert!(browser
        .text("#token-days-error")
        .await
        .contains("1 and 365"));
    scroll_to(&browser, "new-token").await;
    browser.screenshot("forms-01-token-errors-at-once").await;

    // Fixed, it is made and shown once; a reload shows that it was shown, and makes none.
    browser.fill("#token-description", "plant floor").await;
    browser.fill("#token-days", "30").await;
    browser.fill("#token-max-uses", "").await;
    browser.click("#create-token").await;
    let token = browser.text("#token-secret").await;
    assert!(token.starts_with("st_"), "{token}");
    assert!(!browser.current_url().await.contains(&token));
    browser.screenshot("forms-02-token-shown-once").await;
    browser.refresh().await;
    assert!(!browser.exists("#token-secret").await, "shown again");
    assert!(browser.exists("#token-shown-already").await);
    browser.screenshot("forms-03-token-after-reload").await;
    let (_, tokens) = l.api.get(&format!("{VA}/tokens")).await;
    assert_eq!(
        tokens["items"].as_array().map_or(0, Vec::len),
        1,
        "{tokens}"
    );

    // The new user form: a bad username and a role without its account, both at once.
    browser.goto(&format!("{url}/users")).await;
    let _ = browser
        .script("document.getElementById('new-user').noValidate = true; return true")
        .await;
    browser.fill("#user-username", "Not Valid!").await;
    browser.click("#user-role option[value=viewer]").await;
    browser.click("#create-user").await;
    let page = browser.source().await;
    assert!(page.contains("Username is 1-64"), "{page}");
    assert!(page.contains("Role viewer needs an account."), "{page}");
    scroll_to(&browser, "new-user").await;
    browser.screenshot("forms-04-user-errors-at-once").await;

    // Made right, the one-time password shows once, then a reload says it was shown.
    browser.fill("#user-username", "floor").await;
    browser.click("#user-account option[value=Acme]").await;
    browser.click("#create-user").await;
    assert!(browser.exists("#created-password").await);
    browser.screenshot("forms-05-password-shown-once").await;
    browser.refresh().await;
    assert!(!browser.exists("#created-password").await);
    assert!(browser.exists("#password-shown-already").await);
    browser.screenshot("forms-06-password-after-reload").await;
    browser.quit().await;
}
