//! Headless Chromium walks the operations pages (issue #16): reports with filters, a field
//! error and a CSV download, the VA page's usage chart, the dashboard's status chart, and
//! the API clients page (create, secret shown once, revoke). Screenshots land in
//! target/screenshots/ops-*.png.

use crate::ops_pages::seed_history;
use crate::support::agent::Agent;
use crate::support::webdriver::Browser;
use crate::support::{Licensed, Server, ServerOptions};
use std::time::Duration;

const PASSWORD: &str = "walk the operations pages";

/// Waits for a finished download named `name` in `dir`.
async fn wait_download(dir: &std::path::Path, name: &str) -> String {
    for _ in 0..100 {
        let path = dir.join(name);
        if path.exists() {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if !text.is_empty() {
                    return text;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no download {name} in {}", dir.display());
}

#[tokio::test]
async fn operations_pages_walk() {
    let l = Licensed::start().await;
    l.perpetual("regid.2026-01.com.acme.ess,1.0", 40).await;
    l.perpetual("regid.2026-01.com.acme.adv,1.0", 5).await;
    let token = l.simple_token().await;
    let mut agents = vec![];
    for i in 0..6 {
        let a = Agent::new();
        assert_eq!(
            a.register(&l.server, &token, "C9300", &format!("FOC-W{i}"))
                .code,
            0
        );
        assert_eq!(a.report(&[("regid.2026-01.com.acme.ess,1.0", 4)]).code, 0);
        agents.push(a);
    }
    let late = Agent::new();
    assert_eq!(late.register(&l.server, &token, "C9500", "FOC-WX").code, 0);
    assert_eq!(
        l.server
            .cli_with_stdin(
                &[
                    "user",
                    "add",
                    "--username",
                    "ops",
                    "--role",
                    "system-admin",
                    "--password-stdin"
                ],
                Some(PASSWORD),
            )
            .code,
        0
    );
    let (dir, data_dir) = l.server.stop();
    seed_history(&data_dir, "regid.2026-01.com.acme.ess,1.0", 40, 45);
    seed_history(&data_dir, "regid.2026-01.com.acme.adv,1.0", 5, 45);
    let server = Server::start_in(dir, data_dir, ServerOptions::upstream());
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.set_size(1280, 1000).await;
    let url = server.url.clone();
    browser.goto(&format!("{url}/login")).await;
    browser.fill("#username", "ops").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("#login").await;

    // Reports: the nav link, the licenses preview, then filters.
    browser.click("#reports-link").await;
    assert!(browser
        .text("#report-summary")
        .await
        .contains("Showing 2 of 2 rows."));
    assert!(browser
        .text("#report-table")
        .await
        .contains("regid.2026-01.com.acme.adv,1.0"));
    browser.screenshot("ops-01-reports-licenses").await;
    browser.click("#tab-instances").await;
    browser.fill("#f-account", "Acme").await;
    browser.click("#apply-filters").await;
    assert!(browser
        .text("#report-summary")
        .await
        .contains("Showing 7 of 7 rows."));
    browser.screenshot("ops-02-reports-instances").await;
    browser.click("#tab-usage-history").await;
    browser.fill("#f-from", "last week").await;
    browser.click("#apply-filters").await;
    assert!(browser.text("#err-from").await.contains("YYYY-MM-DD"));
    browser.screenshot("ops-03-reports-field-error").await;
    let today = chrono::Utc::now().date_naive();
    let from = today - chrono::Duration::days(6);
    browser.fill("#f-from", &from.to_string()).await;
    browser
        .fill("#f-tag", "regid.2026-01.com.acme.ess,1.0")
        .await;
    browser.click("#apply-filters").await;
    assert!(browser
        .text("#report-summary")
        .await
        .contains("Showing 7 of 7 rows."));
    browser.screenshot("ops-04-reports-usage").await;
    let downloads = tempfile::tempdir().unwrap();
    browser.allow_downloads(downloads.path()).await;
    browser.click_download("#csv-download").await;
    let text = wait_download(downloads.path(), "usage-history.csv").await;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 7, "{text}");
    assert!(rows
        .iter()
        .all(|r| &r[3] == "regid.2026-01.com.acme.ess,1.0"));
    assert_eq!(&rows[6][0], today.to_string().as_str());
    assert_eq!(&rows[6][5], "24");

    // The VA page: a usage chart per license.
    browser
        .goto(&format!("{url}/accounts/Acme/virtual-accounts/Lab"))
        .await;
    assert!(browser.exists("#usage-chart-0").await);
    assert!(browser.exists("#usage-chart-1").await);
    browser.set_size(1280, 1900).await;
    browser.screenshot("ops-05-va-usage-chart").await;
    browser.set_size(1280, 1000).await;

    // The dashboard: instances by status, 1 visible next to 6.
    browser.goto(&format!("{url}/")).await;
    assert!(browser.exists("#status-chart").await);
    browser.screenshot("ops-06-dashboard-status-chart").await;

    // Events: a date range and the CSV link.
    browser
        .goto(&format!("{url}/events?from={today}&to={today}"))
        .await;
    assert!(browser.exists("#events-csv").await);
    browser.screenshot("ops-07-events-range").await;

    // API clients: create one, see its secret once, revoke it.
    browser.goto(&format!("{url}/api-clients")).await;
    browser.fill("#client-name", "walk-client").await;
    // A select cannot be typed into: pick the option (the page stays; click waits it out).
    browser.click("#client-role option[value=operator]").await;
    browser.click("#create-client").await;
    assert!(browser.exists("#created-client-secret").await);
    browser.screenshot("ops-08-api-client-created").await;
    browser.goto(&format!("{url}/api-clients")).await;
    assert!(
        !browser.exists("#created-client-secret").await,
        "shown once"
    );
    assert!(browser.text("#api-clients").await.contains("walk-client"));
    browser
        .click("#api-clients tbody tr:last-child button.danger")
        .await;
    browser.accept_alert().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    browser.goto(&format!("{url}/api-clients")).await;
    assert!(!browser.text("#api-clients").await.contains("walk-client"));
    browser.screenshot("ops-09-api-client-revoked").await;

    // Users: the manage controls.
    browser.goto(&format!("{url}/users")).await;
    assert!(
        !browser.exists("#user-ops details").await,
        "nobody manages themselves"
    );
    browser.click("#user-admin summary").await;
    browser.screenshot("ops-10-users-manage").await;
    browser.quit().await;
}
