//! Account and virtual-account settings (CONTRACT section 5) through the API and the pages:
//! defaults, PATCH leaving out fields, unknown fields refused, roles, events.

use crate::support::Server;
use reqwest::StatusCode;
use serde_json::json;

const ACCOUNT: &str = "/api/v1/accounts/Acme/settings";
const VA: &str = "/api/v1/accounts/Acme/virtual-accounts/Lab/settings";

async fn events_of(api: &crate::support::Api, action: &str) -> Vec<serde_json::Value> {
    let (s, b) = api.get("/api/v1/events?limit=100").await;
    assert_eq!(s, StatusCode::OK);
    b["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

#[tokio::test]
async fn settings_api_reads_patches_and_refuses_by_role() {
    let server = Server::start();
    let admin = server.admin_api().await;
    admin.create_account("Acme").await;
    admin.create_va("Acme", "Lab").await;
    admin.create_account("Other").await;

    let (s, b) = admin.get(ACCOUNT).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b,
        json!({ "reservation_enabled": true, "export_allowed": true })
    );
    let (s, b) = admin.get(VA).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b, json!({ "export_approval": false }));

    // A left-out field stays as it is.
    let (s, b) = admin
        .patch(ACCOUNT, json!({ "export_allowed": false }))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({ "reservation_enabled": true, "export_allowed": false })
    );
    let (s, b) = admin
        .patch(ACCOUNT, json!({ "reservation_enabled": false }))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b,
        json!({ "reservation_enabled": false, "export_allowed": false })
    );
    let (s, b) = admin.patch(VA, json!({ "export_approval": true })).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b, json!({ "export_approval": true }));
    let (_, b) = admin.patch(VA, json!({})).await;
    assert_eq!(
        b,
        json!({ "export_approval": true }),
        "empty patch changes nothing"
    );

    // Unknown or ill-typed fields: 400, nothing changes.
    for bad in [
        json!({ "export_allowed": true, "colour": "red" }),
        json!({ "export_allowed": "yes" }),
    ] {
        let (s, b) = admin.patch(ACCOUNT, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(b["error"]["code"], "bad_request");
    }
    let (s, b) = admin.patch(VA, json!({ "export_allowed": true })).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (_, b) = admin.get(ACCOUNT).await;
    assert_eq!(
        b,
        json!({ "reservation_enabled": false, "export_allowed": false })
    );
    let (s, _) = admin
        .get("/api/v1/accounts/Acme/virtual-accounts/Nope/settings")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Viewer: reads, may not change (403); another account's viewer sees nothing (404).
    let viewer = server.api("viewer", Some("Acme")).await;
    let (s, _) = viewer.get(ACCOUNT).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = viewer.get(VA).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = viewer
        .patch(ACCOUNT, json!({ "export_allowed": true }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"]["code"], "forbidden");
    let (s, _) = viewer.patch(VA, json!({ "export_approval": false })).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let outsider = server.api("viewer", Some("Other")).await;
    let (s, _) = outsider.get(ACCOUNT).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let outsider_admin = server.api("account-admin", Some("Other")).await;
    let (s, _) = outsider_admin
        .patch(VA, json!({ "export_approval": false }))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The operator reads everything and changes nothing.
    let operator = server.api("operator", None).await;
    let (s, _) = operator.get(VA).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = operator
        .patch(ACCOUNT, json!({ "export_allowed": true }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The account's own admin may.
    let acme_admin = server.api("account-admin", Some("Acme")).await;
    let (s, b) = acme_admin
        .patch(ACCOUNT, json!({ "export_allowed": true }))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["export_allowed"], true);

    // Every change is an event; refusals and no-op patches are not.
    let changed = events_of(&admin, "account.settings_changed").await;
    assert_eq!(changed.len(), 3, "{changed:?}");
    assert_eq!(changed[0]["detail"]["export_allowed"], true);
    let changed = events_of(&admin, "virtual_account.settings_changed").await;
    assert_eq!(changed.len(), 1);

    // Described in the OpenAPI document.
    let spec: serde_json::Value = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(format!("{}/api/openapi.json", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/accounts/{a}/settings",
        "/api/v1/accounts/{a}/virtual-accounts/{va}/settings",
    ] {
        assert!(spec["paths"][path]["patch"].is_object(), "{path}");
        assert!(spec["paths"][path]["get"].is_object(), "{path}");
    }
    assert!(spec["paths"]["/api/v1/accounts/{a}/export-keys"]["get"].is_object());
    for verb in ["approve", "deny"] {
        let path = format!("/api/v1/accounts/{{a}}/export-keys/{{id}}/{verb}");
        assert!(spec["paths"][&path]["post"].is_object(), "{path}");
    }
}

#[tokio::test]
async fn settings_forms_on_the_account_and_va_pages() {
    let server = Server::start();
    let admin = server.admin_api().await;
    admin.create_account("Acme").await;
    admin.create_va("Acme", "Lab").await;
    let session = server.session("account-admin", Some("Acme")).await;

    let (s, html) = session.page("/accounts/Acme").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("id=\"account-settings-form\""));
    assert!(html.contains("name=\"export_allowed\" id=\"export-allowed\" checked"));

    // Unticking a box turns the setting off (the browser leaves the field out).
    let (s, _, location) = session
        .submit(
            "/accounts/Acme",
            "/accounts/Acme/settings",
            &[("reservation_enabled", "on")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/accounts/Acme"));
    let (_, html) = session.page("/accounts/Acme").await;
    assert!(html.contains("Account settings saved."), "flash message");
    assert!(html.contains("name=\"export_allowed\" id=\"export-allowed\">"));
    let (_, b) = admin.get(ACCOUNT).await;
    assert_eq!(
        b,
        json!({ "reservation_enabled": true, "export_allowed": false })
    );

    let va_page = "/accounts/Acme/virtual-accounts/Lab";
    let (s, _, location) = session
        .submit(
            va_page,
            &format!("{va_page}/settings"),
            &[("export_approval", "on")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(va_page));
    let (_, html) = session.page(va_page).await;
    assert!(html.contains("Virtual account settings saved."));
    assert!(html.contains("id=\"export-approval\" checked"));
    let (_, b) = admin.get(VA).await;
    assert_eq!(b, json!({ "export_approval": true }));

    // A wrong CSRF token changes nothing.
    let (s, _, _) = session
        .post_form(&format!("{va_page}/settings"), &[("csrf", "forged")])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, b) = admin.get(VA).await;
    assert_eq!(b, json!({ "export_approval": true }));

    // A viewer sees the settings but cannot change them.
    let viewer = server.session("viewer", Some("Acme")).await;
    let (_, html) = viewer.page("/accounts/Acme").await;
    assert!(html.contains("id=\"export-allowed\" disabled"));
    assert!(!html.contains("save-account-settings"));
    let (s, _, _) = viewer
        .submit(
            "/accounts/Acme",
            "/accounts/Acme/settings",
            &[("export_allowed", "on")],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, b) = admin.get(ACCOUNT).await;
    assert_eq!(b["export_allowed"], false);
}
