//! The admin API for accounts, virtual accounts and events, with a bearer token.

use crate::support::{async_client, Server};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn oauth_refuses_bad_credentials_and_missing_tokens() {
    let server = Server::start();
    let http = async_client(false);
    let res = http
        .post(format!("{}/oauth/token", server.url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sc_x"),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_client");
    let res = http
        .get(format!("{}/api/v1/accounts", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = http
        .get(format!("{}/api/v1/accounts", server.url))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn accounts_and_virtual_accounts_lifecycle() {
    let server = Server::start();
    let api = server.admin_api().await;
    let (s, body) = api
        .post(
            "/api/v1/accounts",
            json!({ "name": " Acme Corp ", "description": "HQ" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(body, json!({ "name": "Acme Corp", "description": "HQ" }));

    let (s, body) = api
        .post("/api/v1/accounts", json!({ "name": "Acme Corp" }))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "duplicate_name");

    let (s, body) = api
        .post("/api/v1/accounts", json!({ "name": "bad/name" }))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_name");

    let (s, body) = api
        .post("/api/v1/accounts", json!({ "description": "no name" }))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_request");

    let res = api
        .post_raw(
            "/api/v1/accounts",
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(res.status(), 400);
    let big = format!(
        "{{\"name\":\"x\",\"description\":\"{}\"}}",
        "a".repeat(300_000)
    );
    let res = api
        .post_raw("/api/v1/accounts", "application/json", big.into_bytes())
        .await;
    assert_eq!(res.status(), 413);

    let base = "/api/v1/accounts/Acme%20Corp/virtual-accounts";
    let (s, body) = api.post(base, json!({ "name": "Lab" })).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        body,
        json!({ "name": "Lab", "description": "", "synced": false })
    );
    let (s, _) = api.post(base, json!({ "name": "Lab" })).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, body) = api
        .patch(
            &format!("{base}/Lab"),
            json!({ "name": "Lab-2", "description": "renamed" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Lab-2");
    let (s, _) = api.get(&format!("{base}/Lab")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, list) = api.get(base).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["next_after"], serde_json::Value::Null);

    let (s, body) = api
        .patch(
            "/api/v1/accounts/Acme%20Corp",
            json!({ "name": "Acme", "description": "renamed" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, json!({ "name": "Acme", "description": "renamed" }));

    let (s, _) = api
        .delete("/api/v1/accounts/Acme/virtual-accounts/Lab-2")
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api.delete("/api/v1/accounts/Acme").await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = api.get("/api/v1/accounts/Acme").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");

    // Every change is in the event log with its actor, newest first, before/after kept.
    let (s, events) = api.get("/api/v1/events?limit=100").await;
    assert_eq!(s, StatusCode::OK);
    let items = events["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        &actions[..6],
        &[
            "account.deleted",
            "virtual_account.deleted",
            "account.updated",
            "virtual_account.updated",
            "virtual_account.created",
            "account.created"
        ]
    );
    assert!(items[0]["actor"].as_str().unwrap().starts_with("client:"));
    assert_eq!(items[2]["detail"]["before"]["name"], "Acme Corp");
    assert_eq!(items[2]["detail"]["after"]["name"], "Acme");
    // Refused requests wrote nothing: exactly one account.created.
    assert_eq!(
        actions.iter().filter(|a| **a == "account.created").count(),
        1
    );
}

#[tokio::test]
async fn deleting_an_account_with_members_is_refused() {
    let server = Server::start();
    let api = server.admin_api().await;
    api.create_account("Busy").await;
    server.cli(&[
        "user",
        "add",
        "--username",
        "busy-admin",
        "--role",
        "account-admin",
        "--account",
        "Busy",
    ]);
    let (s, body) = api.delete("/api/v1/accounts/Busy").await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "account_in_use");
    assert!(body["error"]["message"].as_str().unwrap().contains("user"));
    let (s, _) = api.get("/api/v1/accounts/Busy").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn lists_page_with_a_cursor() {
    let server = Server::start();
    let api = server.admin_api().await;
    for name in ["e", "a", "d", "b", "c"] {
        api.create_account(name).await;
    }
    let mut seen = vec![];
    let mut path = "/api/v1/accounts?limit=2".to_string();
    loop {
        let (s, page) = api.get(&path).await;
        assert_eq!(s, StatusCode::OK);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_string()),
        );
        match page["next_after"].as_str() {
            Some(after) => path = format!("/api/v1/accounts?limit=2&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    let (s, body) = api.get("/api/v1/accounts?limit=abc").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_request");
}

#[tokio::test]
async fn openapi_describes_the_api() {
    let server = Server::start();
    let res = async_client(false)
        .get(format!("{}/api/openapi.json", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let spec: serde_json::Value = res.json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/oauth/token",
        "/api/v1/accounts",
        "/api/v1/accounts/{a}",
        "/api/v1/accounts/{a}/virtual-accounts",
        "/api/v1/events",
    ] {
        assert!(spec["paths"].get(path).is_some(), "spec has {path}");
    }
}
