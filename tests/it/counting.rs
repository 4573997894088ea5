//! One count per account (CONTRACT sections 3 and 6): products registered on the
//! upstream and behind a satellite in the same account, a substituting license drawn in
//! rank order, and after a disconnected or a connected round trip both sides show the same
//! `in_use`, `reserved`, `available` and `status`. The upstream lists the satellite's
//! instances read-only, marked with who reported them.

use crate::support::sync::{agents_on, members, Pair};
use crate::support::{Api, VA};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::Path;

/// Every license as the API lists it: tag -> (in_use, reserved, available, status).
async fn figures(api: &Api) -> Vec<(String, i64, i64, i64, String)> {
    let (s, b) = api.get(&format!("{VA}/licenses")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["tag"].as_str().unwrap().to_string(),
                l["in_use"].as_i64().unwrap(),
                l["reserved"].as_i64().unwrap(),
                l["available"].as_i64().unwrap(),
                l["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row(tag: &str, in_use: i64, available: i64, status: &str) -> (String, i64, i64, i64, String) {
    (tag.to_string(), in_use, 0, available, status.to_string())
}

/// The upstream of `Pair::start` (ess x5, adv x2 covering ess at the default rank 100)
/// plus `dna` x3 covering ess at rank 10: dna is drawn before adv.
async fn with_ranked_substitute(pair: &Pair) {
    pair.upstream
        .license(
            json!({ "tag": "dna", "name": "dna", "type": "perpetual", "quantity": 3,
                         "start": "2020-01-01", "substitutes": ["ess"], "rank": 10 }),
        )
        .await;
}

async fn assert_both(pair: &Pair, expected: &[(String, i64, i64, i64, String)]) {
    let up = figures(&pair.upstream.api).await;
    let sat = figures(&pair.sat_api).await;
    assert_eq!(up, expected, "upstream");
    assert_eq!(sat, expected, "satellite");
}

#[tokio::test]
async fn both_sides_count_the_same_after_a_disconnected_round_trip() {
    let pair = Pair::start().await;
    with_ranked_substitute(&pair).await;
    pair.register_disconnected().await;
    // 4 units on the upstream directly, 3 + 2 behind the satellite: 9 of ess's 5.
    let direct = agents_on(&pair.upstream.server, &pair.upstream.api, "UP", &[4]).await;
    let _behind = agents_on(&pair.satellite, &pair.sat_api, "SAT", &[3, 2]).await;
    // Before the round trip the satellite sees only its own 5: it may lag, not disagree.
    assert_eq!(
        figures(&pair.sat_api).await,
        [
            row("adv", 0, 2, "in_compliance"),
            row("dna", 0, 3, "in_compliance"),
            row("ess", 5, 0, "in_compliance")
        ]
    );

    let out = pair
        .satellite
        .cli(&["bundle", "export", "--account", "Acme"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let request = out.value("bundle");
    let manifest: Value = serde_json::from_slice(&members(Path::new(&request))[0].1).unwrap();
    let satellite_id = manifest["from"]["authority_id"]
        .as_str()
        .unwrap()
        .to_string();
    let response = pair.upstream_import(Path::new(&request));
    // The response carries the direct 4 only: the satellite's own 5 are not sent back.
    let demand: Vec<Value> = members(&response)
        .iter()
        .filter(|(name, _)| name == "data/demand_elsewhere.jsonl")
        .flat_map(|(_, data)| {
            String::from_utf8(data.clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect();
    assert_eq!(
        demand,
        [json!({ "virtual_account": "Lab", "tag": "ess", "count": 4, "export_count": 0 })]
    );
    let out = pair
        .satellite
        .cli(&["bundle", "import", response.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // ess serves 5, dna (rank 10) the next 3, adv (rank 100) the last 1.
    assert_both(
        &pair,
        &[
            row("adv", 1, 1, "in_compliance"),
            row("dna", 3, 0, "in_compliance"),
            row("ess", 5, 0, "in_compliance"),
        ],
    )
    .await;

    // More direct demand than all three cover: ess is short on both sides after a round.
    assert_eq!(direct[0].report(&[("ess", 6)]).code, 0);
    pair.sync_disconnected().await;
    assert_both(
        &pair,
        &[
            row("adv", 2, 0, "in_compliance"),
            row("dna", 3, 0, "in_compliance"),
            row("ess", 6, 0, "insufficient"),
        ],
    )
    .await;
    // The satellite's alert agrees: its own tag's demand is not covered.
    let (_, alerts) = pair.sat_api.get("/api/v1/alerts").await;
    assert!(
        alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "license_short"),
        "{alerts}"
    );

    // Counters stay exact on both sides.
    pair.upstream.assert_counters_exact();
    let out = pair.satellite.cli(&["check"]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // The upstream lists the satellite's instances with who reported them.
    let (s, list) = pair
        .upstream
        .api
        .get("/api/v1/accounts/Acme/instances")
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{list}");
    assert_eq!(list["total"], 3, "{list}");
    let reported: Vec<&Value> = items
        .iter()
        .filter(|i| i.get("reported_by").is_some())
        .collect();
    assert_eq!(reported.len(), 2, "{list}");
    for i in &reported {
        assert_eq!(i["udi"]["pid"], "SAT");
        assert_eq!(i["reported_by"]["authority_id"], satellite_id.as_str());
        let at = i["reported_by"]["synced_at"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    }
    let direct_item = items.iter().find(|i| i["udi"]["pid"] == "UP").unwrap();
    assert!(direct_item.get("reported_by").is_none(), "{direct_item}");
    // The VA's list too, paged by id across both kinds.
    let (_, page1) = pair
        .upstream
        .api
        .get(&format!("{VA}/instances?limit=2"))
        .await;
    let after = page1["next_after"].as_str().unwrap().to_string();
    let (_, page2) = pair
        .upstream
        .api
        .get(&format!("{VA}/instances?limit=2&after={after}"))
        .await;
    let ids: Vec<&str> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["items"].as_array().unwrap())
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!((ids.len(), &ids), (3, &sorted), "{page1} {page2}");
    assert!(page2["next_after"].is_null());
    // Read-only: the upstream neither removes nor moves what a satellite reported.
    let sat_id = reported[0]["id"].as_str().unwrap();
    let (s, b) = pair
        .upstream
        .api
        .delete(&format!("{VA}/instances/{sat_id}"))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("synced_read_only")),
        "{b}"
    );
    pair.upstream.api.create_va("Acme", "Other").await;
    let (s, b) = pair
        .upstream
        .api
        .post(
            &format!("{VA}/instances/{sat_id}/transfer"),
            json!({ "to_virtual_account": "Other" }),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("synced_read_only")),
        "{b}"
    );
    assert_eq!(figures(&pair.upstream.api).await[0].1, 2, "nothing changed");
}

#[tokio::test]
async fn both_sides_count_the_same_after_a_connected_round_trip() {
    let pair = Pair::start().await;
    with_ranked_substitute(&pair).await;
    pair.register_connected().await;
    let _direct = agents_on(&pair.upstream.server, &pair.upstream.api, "UP", &[2]).await;
    let behind = agents_on(&pair.satellite, &pair.sat_api, "SAT", &[4]).await;

    pair.sync_now().await;
    // 6 of ess's 5: dna (rank 10) covers the one over, adv stays untouched.
    assert_both(
        &pair,
        &[
            row("adv", 0, 2, "in_compliance"),
            row("dna", 1, 2, "in_compliance"),
            row("ess", 5, 0, "in_compliance"),
        ],
    )
    .await;

    // The satellite's demand drops; the next exchange brings both sides down together.
    assert_eq!(behind[0].report(&[("ess", 1)]).code, 0);
    pair.sync_now().await;
    assert_both(
        &pair,
        &[
            row("adv", 0, 2, "in_compliance"),
            row("dna", 0, 3, "in_compliance"),
            row("ess", 3, 2, "in_compliance"),
        ],
    )
    .await;
    pair.upstream.assert_counters_exact();
    let (_, list) = pair
        .upstream
        .api
        .get("/api/v1/accounts/Acme/instances?sort=last_contact")
        .await;
    let reported = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["reported_by"]["authority_id"].is_string())
        .count();
    assert_eq!(reported, 1, "{list}");
}

/// Chromium: the upstream's instance list shows a satellite's instance marked with who
/// reported it and when, and its page is read-only (no transfer or remove).
#[tokio::test]
async fn the_upstream_pages_show_satellite_instances_read_only() {
    let pair = Pair::start().await;
    pair.register_disconnected().await;
    let _direct = agents_on(&pair.upstream.server, &pair.upstream.api, "UP", &[1]).await;
    let _behind = agents_on(&pair.satellite, &pair.sat_api, "SAT", &[2]).await;
    pair.sync_disconnected().await;
    let Some(browser) = crate::support::webdriver::Browser::start().await else {
        return;
    };
    let url = &pair.upstream.server.url;
    browser.first_admin_login(&pair.upstream.server, url).await;
    browser
        .goto(&format!("{url}/accounts/Acme/instances"))
        .await;
    assert_eq!(browser.text("#instance-total").await, "2 instances.");
    let marker = browser.text(".reported-by").await;
    assert!(marker.starts_with("reported by satellite "), "{marker}");
    assert!(marker.contains(", synced at "), "{marker}");
    browser.screenshot("counting-01-upstream-instances").await;

    browser
        .click(".reported-by + a, td:has(.reported-by) a")
        .await;
    assert!(browser
        .text("#reported-by")
        .await
        .starts_with("Reported by satellite"));
    assert!(!browser.exists("#remove-instance").await);
    assert!(!browser.exists("#transfer-instance").await);
    browser.screenshot("counting-02-reported-instance").await;

    browser
        .goto(&format!(
            "{url}/accounts/Acme/virtual-accounts/Lab/instances"
        ))
        .await;
    assert!(browser.text(".reported-by").await.contains("synced at"));
    browser
        .goto(&format!("{url}/accounts/Acme/virtual-accounts/Lab"))
        .await;
    assert_eq!(browser.text("#reported-count").await, "1");
    browser.screenshot("counting-03-upstream-va").await;
    browser.quit().await;

    // The satellite's VA page says what its counts hold besides its own products.
    let browser = crate::support::webdriver::Browser::start().await.unwrap();
    let sat = &pair.satellite.url;
    browser.first_admin_login(&pair.satellite, sat).await;
    browser
        .goto(&format!("{sat}/accounts/Acme/virtual-accounts/Lab"))
        .await;
    let note = browser.text("#demand-elsewhere").await;
    assert!(note.ends_with("ess 1."), "{note}");
    browser.screenshot("counting-04-satellite-va").await;
    browser.quit().await;
}
