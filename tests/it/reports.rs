//! Reports (CONTRACT section 7): licenses, instances and usage history as JSON and as
//! CSV parsed back, scoped by role, with formula cells neutralised.

use crate::support::agent::Agent;
use crate::support::{Licensed, ServerOptions};
use reqwest::StatusCode;
use serde_json::json;

/// GETs a CSV report with the API's bearer and parses it back: (header, rows).
async fn csv_report(api: &crate::support::Api, path: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let res = api
        .http
        .get(format!("{}{path}", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = res.text().await.unwrap();
    assert!(text.contains("\r\n"), "RFC 4180 line ends");
    crate::support::parse_csv(&text)
}

#[tokio::test]
async fn license_and_instance_reports_in_json_and_csv() {
    let l = Licensed::start().await;
    l.perpetual("ess", 3).await;
    l.license(
        json!({ "tag": "adv", "name": "=HYPERLINK(\"http://evil\")", "type": "term",
                      "quantity": 1, "start": "2020-01-01", "end": "2099-12-31" }),
    )
    .await;
    let token = l.simple_token().await;
    let (a, b) = (Agent::new(), Agent::new());
    assert_eq!(a.register(&l.server, &token, "C9300", "FOC-R1").code, 0);
    assert_eq!(b.register(&l.server, &token, "C9500", "FOC-R2").code, 0);
    assert_eq!(a.report(&[("ess", 2), ("adv", 1)]).code, 0);

    let (s, body) = l.api.get("/api/v1/reports/licenses?account=Acme").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let ess = items.iter().find(|i| i["tag"] == "ess").unwrap();
    assert_eq!(ess["account"], "Acme");
    assert_eq!(ess["virtual_account"], "Lab");
    assert_eq!(ess["in_use"], 2);
    assert_eq!(ess["available"], 1);
    assert_eq!(ess["status"], "in_compliance");

    let (header, rows) = csv_report(&l.api, "/api/v1/reports/licenses?format=csv").await;
    assert_eq!(
        header,
        [
            "account",
            "virtual_account",
            "tag",
            "name",
            "type",
            "quantity",
            "in_use",
            "reserved",
            "available",
            "status",
            "start",
            "end"
        ]
    );
    let adv = rows.iter().find(|r| r[2] == "adv").unwrap();
    assert_eq!(
        adv[3], "'=HYPERLINK(\"http://evil\")",
        "formula neutralised"
    );
    assert_eq!(adv[11], "2099-12-31");

    let (s, body) = l
        .api
        .get("/api/v1/reports/instances?account=Acme&virtual_account=Lab")
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let reported = items.iter().find(|i| i["sn"] == "FOC-R1").unwrap();
    assert_eq!(reported["licenses"], "adv=1;ess=2");
    assert_eq!(reported["status"], "authorized");

    let (s, body) = l
        .api
        .get("/api/v1/reports/instances?status=registered")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["items"][0]["sn"], "FOC-R2");
    let (s, body) = l.api.get("/api/v1/reports/instances?status=happy").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_status");
    let (s, _) = l.api.get("/api/v1/reports/instances?format=xml").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    let (header, rows) = csv_report(&l.api, "/api/v1/reports/instances?format=csv").await;
    assert_eq!(header.len(), 12);
    assert_eq!(header[11], "licenses");
    assert_eq!(rows.len(), 2);

    // Scoped like everything else: another account's admin sees nothing of Acme.
    l.api.create_account("Other").await;
    let other = l.server.api("account-admin", Some("Other")).await;
    let (s, _) = other.get("/api/v1/reports/licenses?account=Acme").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, body) = other.get("/api/v1/reports/instances").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["items"], json!([]));
    let (header, rows) = csv_report(&other, "/api/v1/reports/licenses?format=csv").await;
    assert_eq!(header.len(), 12);
    assert!(rows.is_empty());
    let (s, _) = other
        .get("/api/v1/reports/licenses?virtual_account=Lab")
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn usage_history_keeps_each_day_and_today_is_current() {
    let l = Licensed::start().await;
    l.perpetual("ess", 5).await;
    let token = l.simple_token().await;
    let agent = Agent::new();
    assert_eq!(agent.register(&l.server, &token, "C9300", "FOC-H1").code, 0);
    assert_eq!(agent.report(&[("ess", 2)]).code, 0);
    // A restart runs the timer job at once, which writes today's row.
    let server = l.server.restart(ServerOptions::upstream());
    let api = server.admin_api().await;
    let today = chrono::Utc::now().date_naive();
    let tomorrow = today + chrono::Duration::days(1);
    // The timer runs beside the start: wait until today's row is written before the next
    // restart stops this server.
    let written =
        format!("/api/v1/reports/usage-history?account=Acme&tag=ess&from={today}&to={today}");
    let mut rows = 0;
    for _ in 0..100 {
        let (_, body) = api.get(&written).await;
        rows = body["items"].as_array().map_or(0, |a| a.len());
        if rows == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(rows, 1, "today's usage history row was never written");
    // The next day: yesterday's row is kept as it was, today's is live.
    let server = server.restart(ServerOptions::upstream().days_later(1));
    let api2 = server.admin_api().await;
    drop(api);
    let path =
        format!("/api/v1/reports/usage-history?account=Acme&tag=ess&from={today}&to={tomorrow}");
    let (s, body) = api2.get(&path).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{body}");
    assert_eq!(items[0]["date"], today.to_string());
    assert_eq!(items[1]["date"], tomorrow.to_string());
    for day in items {
        assert_eq!(day["purchased"], 5);
        assert_eq!(day["in_use"], 2);
        assert_eq!(day["reserved"], 0);
        assert_eq!(day["available"], 3);
        assert_eq!(day["virtual_account"], "Lab");
    }
    let (header, rows) = csv_report(&api2, &format!("{path}&format=csv")).await;
    assert_eq!(
        header,
        [
            "date",
            "account",
            "virtual_account",
            "tag",
            "purchased",
            "in_use",
            "reserved",
            "available"
        ]
    );
    assert_eq!(rows.len(), 2);
    let (s, body) = api2
        .get("/api/v1/reports/usage-history?from=yesterday")
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_date");
}
