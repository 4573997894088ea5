//! Account scoping: an account-admin or viewer of A sees nothing of B, in API and pages.

use crate::support::Server;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn account_admin_of_a_cannot_touch_b_through_the_api() {
    let server = Server::start();
    let admin = server.admin_api().await;
    admin.create_account("A").await;
    admin.create_account("B").await;
    admin.create_va("B", "b-va").await;
    let a_admin = server.api("account-admin", Some("A")).await;

    let (s, list) = a_admin.get("/api/v1/accounts").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"], json!([{ "name": "A", "description": "" }]));
    for path in [
        "/api/v1/accounts/B",
        "/api/v1/accounts/B/virtual-accounts",
        "/api/v1/accounts/B/virtual-accounts/b-va",
    ] {
        let (s, _) = a_admin.get(path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let (s, _) = a_admin
        .post(
            "/api/v1/accounts/B/virtual-accounts",
            json!({ "name": "sneaky" }),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = a_admin
        .delete("/api/v1/accounts/B/virtual-accounts/b-va")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = a_admin
        .patch("/api/v1/accounts/B", json!({ "description": "x" }))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, body) = a_admin
        .post("/api/v1/accounts", json!({ "name": "C" }))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
    let (s, _) = a_admin.delete("/api/v1/accounts/A").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = a_admin
        .patch("/api/v1/accounts/A", json!({ "name": "A2" }))
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "account-admins do not rename accounts"
    );

    // Within A: full control of virtual accounts.
    let (s, _) = a_admin
        .post(
            "/api/v1/accounts/A/virtual-accounts",
            json!({ "name": "a-va" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = a_admin
        .patch("/api/v1/accounts/A", json!({ "description": "ours" }))
        .await;
    assert_eq!(s, StatusCode::OK);

    // Events: only A's.
    let (_, events) = a_admin.get("/api/v1/events?limit=500").await;
    let items = events["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|e| e["account"] == "A"), "{events}");

    // A viewer of A reads but may not change anything.
    let viewer = server.api("viewer", Some("A")).await;
    let (s, _) = viewer.get("/api/v1/accounts/A/virtual-accounts").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = viewer
        .post(
            "/api/v1/accounts/A/virtual-accounts",
            json!({ "name": "v" }),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = viewer.get("/api/v1/accounts/B").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn account_admin_of_a_cannot_touch_b_through_pages() {
    let server = Server::start();
    let admin = server.admin_api().await;
    admin.create_account("A").await;
    admin.create_account("B").await;
    admin.create_va("B", "b-va").await;
    let session = server.session("account-admin", Some("A")).await;

    let (s, html) = session.page("/accounts").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains(">A</a>") && !html.contains(">B</a>"));
    assert!(
        !html.contains("id=\"new-account\""),
        "no create form for account-admins"
    );
    for path in ["/accounts/B", "/accounts/B/virtual-accounts/b-va"] {
        let (s, html) = session.page(path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains("request-id"), "error page shows a request id");
    }
    let (s, _, _) = session
        .submit(
            "/accounts/A",
            "/accounts/B/virtual-accounts",
            &[("name", "sneaky")],
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = session
        .submit("/accounts/A", "/accounts/B/delete", &[])
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = session.page("/users").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, html) = session.page("/events").await;
    assert_eq!(s, StatusCode::OK);
    assert!(!html.contains("b-va"), "no events of B");

    let (s, _, location) = session
        .submit(
            "/accounts/A",
            "/accounts/A/virtual-accounts",
            &[("name", "mine")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(
        location.as_deref(),
        Some("/accounts/A/virtual-accounts/mine")
    );
    let (_, b_vas) = admin.get("/api/v1/accounts/B/virtual-accounts").await;
    assert_eq!(b_vas["items"].as_array().unwrap().len(), 1, "B unchanged");
}
