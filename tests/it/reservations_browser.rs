//! Headless Chromium walks the reservation wizard and the reservation page like an admin,
//! with a real `satellite-agent` on the product's side. Screenshots land in
//! target/screenshots/reservations-*.png.

use crate::support::agent::Agent;
use crate::support::fixtures::Lic;
use crate::support::webdriver::Browser;
use crate::support::{Licensed, Server};
use std::time::Duration;

async fn admin_login(browser: &Browser, server: &Server) {
    browser.first_admin_login(server, &server.url).await;
}

async fn downloaded_xml(dir: &std::path::Path) -> std::path::PathBuf {
    for _ in 0..100 {
        let found = std::fs::read_dir(dir).ok().and_then(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.extension().is_some_and(|x| x == "xml"))
        });
        if let Some(p) = found {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no .xml downloaded in {}", dir.display());
}

#[tokio::test]
async fn reservation_wizard_through_the_pages() {
    let t = Licensed::with_licenses(&[
        Lic::plain("regid.2016-07.com.cisco.UCM_Enhanced,12.0", 5).named("UC Manager Enhanced"),
        Lic::plain("regid.2016-07.com.cisco.UCM_Crypto,12.0", 2)
            .named("UC Manager Crypto")
            .export_controlled(),
    ])
    .await;
    let server = &t.server;
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.set_size(1280, 1100).await;
    admin_login(&browser, server).await;
    let agent = Agent::new();
    let out = agent.run(&["reserve", "request", "--pid", "CUCM", "--sn", "WZ1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let request_code = out.stdout.trim().to_string();

    // The account's Reservations tab, then the wizard.
    browser.goto(&format!("{}/accounts/Acme", server.url)).await;
    browser.click("#reservations-tab").await;
    assert!(browser.text(".muted").await.contains("No reservations"));
    browser.click("#new-reservation").await;
    // A mistyped code fails its checksum, next to the field.
    browser
        .fill("#request-code", &request_code.replacen("WZ1", "WZl", 1))
        .await;
    browser.click("#step1-next").await;
    assert!(browser
        .text("#request-code-error")
        .await
        .contains("checksum"));
    browser.screenshot("reservations-01-mistyped-code").await;
    browser.fill("#request-code", &request_code).await;
    browser.click("#step1-next").await;
    assert_eq!(browser.text("#reservation-udi").await, "P:CUCM,S:WZ1");
    // Step 1 answered with a redirect: step 2 is a GET (the request code in its URL),
    // so a reload shows step 2 again and posts nothing.
    let step_two = browser.current_url().await;
    assert!(
        step_two.contains("/accounts/Acme/reservations/new?request_code="),
        "{step_two}"
    );
    browser.refresh().await;
    assert_eq!(browser.current_url().await, step_two);
    assert_eq!(browser.text("#reservation-udi").await, "P:CUCM,S:WZ1");
    assert!(!browser.exists("#request-code-error").await);
    // Licenses sort by tag: Crypto (2 available) then Enhanced (5 available).
    assert_eq!(browser.text("#available-1").await, "2");
    assert_eq!(browser.text("#available-2").await, "5");
    browser.fill("#count-2", "9").await;
    browser.click("#step2-create").await;
    assert!(browser
        .text("#licenses-error")
        .await
        .contains("5 available"));
    browser.fill("#count-2", "3").await;
    browser.fill("#count-1", "1").await;
    browser.click("#step2-create").await;
    assert!(browser.text("#problem").await.contains("export-controlled"));
    browser.screenshot("reservations-02-licenses-step").await;
    browser.click("#export-ack").await;
    browser.click("#step2-create").await;

    // The authorization code, shown and downloadable.
    assert_eq!(browser.text("#reservation-state").await, "pending");
    assert!(browser.text(".flash").await.contains("Reservation created"));
    browser
        .screenshot("reservations-03-authorization-code")
        .await;
    let downloads = tempfile::tempdir().unwrap();
    browser.allow_downloads(downloads.path()).await;
    browser.click_download("#download-xml").await;
    let xml = downloaded_xml(downloads.path()).await;
    let pem = agent.dir.path().join("authority.pem");
    std::fs::copy(server.data_dir.join("keys/authority.pub.pem"), &pem).unwrap();
    let out = agent.run(&[
        "reserve",
        "install",
        xml.to_str().unwrap(),
        "--authority-key",
        pem.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let confirmation = out.stdout.trim().to_string();

    // Confirmation: a wrong code is refused next to the field, the right one confirms.
    browser.fill("#confirmation-code", "deadbeef").await;
    browser.click("#confirm-submit").await;
    assert!(browser
        .text("#confirmation-code-error")
        .await
        .contains("does not match"));
    browser.fill("#confirmation-code", &confirmation).await;
    browser.click("#confirm-submit").await;
    assert_eq!(browser.text("#reservation-state").await, "confirmed");
    browser.screenshot("reservations-04-confirmed").await;

    // Update: the new code holds the larger counts until confirmed.
    browser.fill("#update-count-2", "1").await;
    browser.click("#update-submit").await;
    assert_eq!(browser.text("#reservation-state").await, "updating");
    assert!(
        browser.text("#reserved-licenses").await.contains("1 3"),
        "held max(3, 1)"
    );
    browser.screenshot("reservations-05-updating").await;

    // The list filters by state and finds by UDI.
    browser
        .goto(&format!(
            "{}/accounts/Acme/reservations?state=updating&q=WZ1",
            server.url
        ))
        .await;
    assert!(browser.text("#reservations").await.contains("P:CUCM,S:WZ1"));
    browser
        .goto(&format!(
            "{}/accounts/Acme/reservations?state=returned",
            server.url
        ))
        .await;
    assert!(!browser.exists("#reservations").await);

    // The product installs the new code and returns it; a mistyped return code is
    // refused next to its field, the real one releases the licenses.
    browser
        .goto(&format!("{}/accounts/Acme/reservations", server.url))
        .await;
    browser.click("#reservations tbody a").await;
    let code2 = browser.text("#authorization-code").await;
    let f2 = agent.dir.path().join("v2.xml");
    std::fs::write(&f2, code2).unwrap();
    let out = agent.run(&[
        "reserve",
        "install",
        f2.to_str().unwrap(),
        "--authority-key",
        pem.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = agent.run(&["reserve", "return"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    browser
        .goto(&format!("{}/accounts/Acme/reservations", server.url))
        .await;
    browser.fill("#return-code", "RC-WRONG").await;
    browser.click("#return-submit").await;
    assert!(browser.text("#return-code-error").await.contains("RC-"));
    browser.fill("#return-code", out.stdout.trim()).await;
    browser.click("#return-submit").await;
    assert_eq!(browser.text("#reservation-state").await, "returned");
    assert!(browser.text(".flash").await.contains("released"));
    browser.screenshot("reservations-06-returned").await;
    assert_eq!(server.cli(&["check"]).code, 0);
    browser.quit().await;
}
