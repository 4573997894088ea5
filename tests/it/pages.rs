//! The admin pages over HTTPS as a browser uses them: login, CSRF, throttling, forms.

use crate::support::{csrf_of, Server, Session};
use reqwest::StatusCode;

#[tokio::test]
async fn initial_admin_must_change_the_generated_password() {
    let server = Server::start();
    let password = server.admin_password.clone().unwrap();
    let session = Session::new(&server.url);

    let res = session.get("/").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login?next=/");

    let res = session.login("admin", &password).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("satellite_session_"))
        .expect("session cookie");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(flag), "{cookie} has {flag}");
    }
    assert_eq!(res.headers()["location"], "/account/password");
    let res = session.get("/accounts").await;
    assert_eq!(
        res.headers()["location"],
        "/account/password",
        "forced until changed"
    );

    let new_password = "a much better passphrase";
    let (s, html, _) = session
        .submit(
            "/account/password",
            "/account/password",
            &[
                ("current", &password),
                ("new_password", "short"),
                ("confirm", "short"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("at least 12 characters"));
    let (s, _, location) = session
        .submit(
            "/account/password",
            "/account/password",
            &[
                ("current", &password),
                ("new_password", new_password),
                ("confirm", new_password),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/"));
    let (s, html) = session.page("/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Password changed."));

    let other = Session::new(&server.url);
    assert_eq!(
        other.login("admin", &password).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        other.login("admin", new_password).await.status(),
        StatusCode::SEE_OTHER
    );

    // Logout ends the session.
    let (_, html) = session.page("/").await;
    let (s, _, _) = session
        .post_form("/logout", &[("csrf", &csrf_of(&html))])
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(session.get("/").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn repeated_login_failures_are_throttled() {
    let server = Server::start();
    let session = Session::new(&server.url);
    for _ in 0..5 {
        let res = session.login("admin", "wrong password!").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res
            .text()
            .await
            .unwrap()
            .contains("Wrong username or password."));
    }
    let res = session
        .login("admin", server.admin_password.as_deref().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 900);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Too many failed attempts"));
}

#[tokio::test]
async fn forms_need_csrf_and_show_errors_next_to_fields() {
    let server = Server::start();
    let session = server.session("system-admin", None).await;

    let (s, _, _) = session
        .post_form("/accounts", &[("name", "NoCsrf"), ("csrf", "forged")])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, html, _) = session
        .submit("/accounts", "/accounts", &[("name", "bad<name>")])
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"account-name-error\""));
    assert!(!html.contains("bad<name>"), "input never echoed raw");
    assert!(
        html.contains("bad&lt;name&gt;") || html.contains("bad&#60;name&#62;"),
        "input echoed back, escaped"
    );

    let (s, _, location) = session
        .submit(
            "/accounts",
            "/accounts",
            &[("name", "Globex"), ("description", "Plant")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/accounts/Globex"));
    let (s, html, _) = session
        .submit("/accounts", "/accounts", &[("name", "Globex")])
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(html.contains("already exists"));

    let (s, _, location) = session
        .submit(
            "/accounts/Globex",
            "/accounts/Globex/virtual-accounts",
            &[("name", "Line 1")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(
        location.as_deref(),
        Some("/accounts/Globex/virtual-accounts/Line%201")
    );
    let (s, html) = session
        .page("/accounts/Globex/virtual-accounts/Line%201")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("Virtual account &#39;Line 1&#39; created.")
            || html.contains("Virtual account 'Line 1' created.")
    );

    let (s, html) = session.page("/events?action=account.created").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Globex"));

    // Pages carry the security headers.
    let res = session.get("/accounts").await;
    let h = res.headers();
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.contains_key("strict-transport-security"));
    assert!(h.contains_key("x-request-id"));
}

#[tokio::test]
async fn system_admin_manages_users_on_the_users_page() {
    let server = Server::start();
    let session = server.session("system-admin", None).await;
    let api = server.admin_api().await;
    api.create_account("Initech").await;
    let (s, _, to) = session
        .submit(
            "/users",
            "/users",
            &[
                ("username", "peter"),
                ("role", "viewer"),
                ("account", "Initech"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, html) = session.page(&to.expect("post/redirect/get")).await;
    let marker = "id=\"created-password\">";
    let start = html.find(marker).unwrap() + marker.len();
    let password = &html[start..start + 20];
    let peter = Session::new(&server.url);
    let res = peter.login("peter", password).await;
    assert_eq!(res.headers()["location"], "/account/password");

    let (s, html, _) = session
        .submit(
            "/users",
            "/users",
            &[("username", "milton"), ("role", "viewer")],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("needs an account"));

    let (s, _, _) = session.submit("/users", "/users/peter/delete", &[]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let res = Session::new(&server.url).login("peter", password).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_pages_get_the_404_page() {
    let server = Server::start();
    let session = server.session("operator", None).await;
    let (s, html) = session.page("/no/such/page").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(html.contains("404") && html.contains("request-id"));
    // Error pages keep the site menu (CONTRACT section 8).
    assert!(html.contains("class=\"main-nav\""), "{html}");
    let (s, html) = session.page("/accounts/NoSuchAccount").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(html.contains("class=\"main-nav\""), "{html}");
}
