//! Access decided once, in `service::access`, keeps the order callers always saw: what a
//! caller may not see is 404 before anything else, an unknown virtual account is 404
//! before a missing right is 403, and a refusal says which right is missing and changes
//! nothing (no row, no event, counters exact).

use crate::support::{Licensed, VA};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn event_count(api: &crate::support::Api) -> usize {
    let (s, events) = api.get("/api/v1/events?limit=500").await;
    assert_eq!(s, StatusCode::OK, "{events}");
    events["items"].as_array().unwrap().len()
}

fn refused(s: StatusCode, body: &Value, status: StatusCode, code: &str, message: &str) {
    assert_eq!(s, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(message),
        "wanted '{message}' in {body}"
    );
}

#[tokio::test]
async fn refusals_come_in_order_name_the_right_and_change_nothing() {
    let lab = Licensed::start().await;
    let admin = &lab.api;
    admin.create_account("Other").await;
    admin.create_va("Acme", "Spare").await;
    lab.perpetual("regid.2026-01.com.example.cap,1.0", 5).await;
    let token = admin
        .post(
            &format!("{VA}/tokens"),
            json!({ "expires_in_days": 30, "export_controlled": false }),
        )
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_string();
    let viewer = lab.server.api("viewer", Some("Acme")).await;
    let operator = lab.server.api("operator", None).await;
    let acme_admin = lab.server.api("account-admin", Some("Acme")).await;
    let before = event_count(admin).await;

    // A viewer: an unknown VA is 404, a known one 403 for every change in it.
    let (s, b) = viewer
        .patch(
            "/api/v1/accounts/Acme/virtual-accounts/Nowhere",
            json!({ "description": "x" }),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let forbidden = "may not change account 'Acme'";
    let (s, b) = viewer.patch(VA, json!({ "description": "x" })).await;
    refused(s, &b, StatusCode::FORBIDDEN, "forbidden", forbidden);
    let (s, b) = viewer.delete(&format!("{VA}/tokens/{token}")).await;
    refused(s, &b, StatusCode::FORBIDDEN, "forbidden", forbidden);
    let (s, b) = viewer
        .post(
            &format!("{VA}/tokens"),
            json!({ "expires_in_days": 30, "export_controlled": false }),
        )
        .await;
    refused(s, &b, StatusCode::FORBIDDEN, "forbidden", forbidden);
    let (s, b) = viewer
        .post(
            &format!("{VA}/licenses/transfer"),
            json!({ "tag": "regid.2026-01.com.example.cap,1.0", "quantity": 1, "to_virtual_account": "Spare" }),
        )
        .await;
    refused(s, &b, StatusCode::FORBIDDEN, "forbidden", forbidden);
    // The right is checked before the instance is looked for.
    let (s, b) = viewer.delete(&format!("{VA}/instances/no-such")).await;
    refused(s, &b, StatusCode::FORBIDDEN, "forbidden", forbidden);

    // An operator sees every account but creates, deletes and renames none; an unknown
    // account is still 404 first.
    let (s, b) = operator
        .post("/api/v1/accounts", json!({ "name": "New" }))
        .await;
    refused(
        s,
        &b,
        StatusCode::FORBIDDEN,
        "forbidden",
        "Only system admins create accounts.",
    );
    let (s, b) = operator.delete("/api/v1/accounts/Other").await;
    refused(
        s,
        &b,
        StatusCode::FORBIDDEN,
        "forbidden",
        "Only system admins delete accounts.",
    );
    let (s, _) = operator.delete("/api/v1/accounts/Nowhere").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, list) = operator.get("/api/v1/accounts").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");

    // An account-admin re-describes its account but does not rename it; naming it as it
    // is is no rename.
    let (s, b) = acme_admin
        .patch("/api/v1/accounts/Acme", json!({ "name": "Acme2" }))
        .await;
    refused(
        s,
        &b,
        StatusCode::FORBIDDEN,
        "forbidden",
        "Only system admins rename accounts.",
    );
    assert_eq!(event_count(admin).await, before, "refusals write no event");
    let (s, b) = acme_admin.get("/api/v1/accounts/Other").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

    let (s, b) = acme_admin
        .patch(
            "/api/v1/accounts/Acme",
            json!({ "name": "Acme", "description": "ours" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, json!({ "name": "Acme", "description": "ours" }));
    // Its edits land with its name on the event.
    let (s, b) = acme_admin.delete(&format!("{VA}/tokens/{token}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "revoked");
    let (_, events) = admin.get("/api/v1/events?limit=2").await;
    let actions: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["token.revoked", "account.updated"]);
    assert!(events["items"][0]["actor"]
        .as_str()
        .unwrap()
        .starts_with("client:"));

    // Transfers judge the destination in the same account.
    for (to, code) in [
        ("Nowhere", "unknown_virtual_account"),
        ("Lab", "invalid_transfer"),
    ] {
        let (s, b) = acme_admin
            .post(
                &format!("{VA}/licenses/transfer"),
                json!({ "tag": "regid.2026-01.com.example.cap,1.0", "quantity": 1, "to_virtual_account": to }),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["code"], code, "{b}");
    }
    let (s, b) = acme_admin
        .post(
            &format!("{VA}/licenses/transfer"),
            json!({ "tag": "regid.2026-01.com.example.cap,1.0", "quantity": 2, "to_virtual_account": "Spare" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["items"][0]["quantity"], 3, "{b}");
    lab.assert_counters_exact();
}
