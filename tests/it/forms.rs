//! Forms (issue #15): post/redirect/get everywhere, so a refresh never submits twice and a
//! secret shows once; every error of a form at once; a failed re-registration keeps the
//! registration in place.

use crate::support::sync::Pair;
use crate::support::{Licensed, Session, VA};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn count(list: &Value) -> usize {
    list["items"].as_array().map_or(0, Vec::len)
}

/// POSTs a form, checks it answers 303 to a page carrying only an opaque id, then GETs
/// that page twice (a refresh): the first shows `shown`, the second does not.
async fn post_then_refresh(
    session: &Session,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
    shown: &str,
) -> (String, String) {
    let (s, html, to) = session.submit(page, action, fields).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{action}: {html}");
    let to = to.expect("a redirect");
    assert!(to.contains("shown="), "{to}");
    let res = session.get(&to).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["cache-control"],
        "no-store",
        "a page with a secret is not cached"
    );
    let first = res.text().await.unwrap();
    assert!(first.contains(shown), "{action}: {first}");
    let (s, again) = session.page(&to).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!again.contains(shown), "{action}: shown twice");
    (first, again)
}

#[tokio::test]
async fn a_refresh_after_a_form_never_submits_twice_and_a_secret_shows_once() {
    let l = Licensed::start().await;
    let session = l.server.session("system-admin", None).await;
    let va_page = "/accounts/Acme/virtual-accounts/Lab";

    // A VA token: shown once, one token made however often the page is refreshed.
    let (first, again) = post_then_refresh(
        &session,
        va_page,
        &format!("{va_page}/tokens"),
        &[("description", "prg"), ("expires_in_days", "30")],
        "id=\"token-secret\"",
    )
    .await;
    let secret_start = first.find("id=\"token-secret\">").unwrap() + 18;
    let secret = &first[secret_start..secret_start + first[secret_start..].find('<').unwrap()];
    assert!(!again.contains(secret));
    assert!(again.contains("id=\"token-shown-already\""), "{again}");
    assert!(again.contains("create a new one"), "{again}");
    let (_, tokens) = l.api.get(&format!("{VA}/tokens")).await;
    assert_eq!(count(&tokens), 1, "{tokens}");

    // Another session given the same address sees nothing of it.
    let other = l.server.session("system-admin", None).await;
    let (s, _, to) = other
        .submit(
            va_page,
            &format!("{va_page}/tokens"),
            &[("expires_in_days", "30")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, theirs) = session.page(&to.unwrap()).await;
    assert!(!theirs.contains("id=\"token-secret\""), "another session's");

    // An API client's secret.
    let (_, before) = l.api.get("/api/v1/api-clients").await;
    let (_, again) = post_then_refresh(
        &session,
        "/api-clients",
        "/api-clients",
        &[
            ("name", "prg-client"),
            ("role", "viewer"),
            ("account", "Acme"),
        ],
        "id=\"created-client-secret\"",
    )
    .await;
    assert!(again.contains("id=\"client-shown-already\""), "{again}");
    let (_, after) = l.api.get("/api/v1/api-clients").await;
    assert_eq!(count(&after), count(&before) + 1, "{after}");

    // A new user's one-time password, and a reset one.
    let (_, again) = post_then_refresh(
        &session,
        "/users",
        "/users",
        &[
            ("username", "prguser"),
            ("role", "viewer"),
            ("account", "Acme"),
        ],
        "id=\"created-password\"",
    )
    .await;
    assert!(again.contains("id=\"password-shown-already\""), "{again}");
    let (_, again) = post_then_refresh(
        &session,
        "/users",
        "/users/prguser/reset-password",
        &[],
        "id=\"reset-password\"",
    )
    .await;
    assert!(again.contains("id=\"password-shown-already\""), "{again}");

    // A satellite registration token on the upstream's Satellites page.
    let (_, again) = post_then_refresh(
        &session,
        "/sync",
        "/sync/satellite-tokens",
        &[
            ("account", "Acme"),
            ("description", "prg"),
            ("expires_in_days", "30"),
        ],
        "id=\"satellite-token\"",
    )
    .await;
    assert!(
        again.contains("id=\"satellite-token-shown-already\""),
        "{again}"
    );
    let (_, sat_tokens) = l.api.get("/api/v1/accounts/Acme/satellite-tokens").await;
    assert_eq!(count(&sat_tokens), 1, "{sat_tokens}");

    // The notifications test button: one test sent, however often the result is reloaded.
    post_then_refresh(
        &session,
        "/accounts/Acme/notifications",
        "/accounts/Acme/notifications/test",
        &[],
        "id=\"test-result\"",
    )
    .await;
    let (_, events) = l
        .api
        .get("/api/v1/events?action=notifications.tested")
        .await;
    assert_eq!(count(&events), 1, "{events}");
}

/// Registering again, connected, with a token the upstream refuses or at an address that
/// does not answer keeps the registration in place: still registered, still syncing.
#[tokio::test]
async fn a_failed_re_registration_keeps_the_link_registered_and_syncing() {
    let pair = Pair::start().await;
    let ca = std::fs::read_to_string(pair.upstream.server.data_dir.join("tls/cert.pem")).unwrap();
    let up_url = pair.upstream.server.url.clone();
    let used = pair.satellite_token().await;
    let (s, state) = pair
        .sat_api
        .post(
            "/api/v1/accounts/Acme/upstream",
            json!({ "mode": "connected", "token": used, "url": up_url, "ca_cert_pem": ca }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{state}");
    let authority = state["upstream_authority_id"].clone();
    let session = pair.satellite.session("system-admin", None).await;
    let page = "/accounts/Acme/sync";

    // A plain http:// address and a token of the wrong shape: both said at once.
    let (s, html, _) = session
        .submit(
            page,
            "/accounts/Acme/sync/register",
            &[
                ("mode", "connected"),
                ("url", "http://plain"),
                ("token", "nope"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"again-url-error\""), "{html}");
    assert!(html.contains("id=\"again-token-error\""), "{html}");
    assert!(html.contains("value=\"http://plain\""), "typed value kept");

    // The token was used already: the upstream refuses it; said next to the token field.
    let (s, html, _) = session
        .submit(
            page,
            "/accounts/Acme/sync/register",
            &[("mode", "connected"), ("url", &up_url), ("token", &used)],
        )
        .await;
    assert!(s.is_client_error() || s == StatusCode::BAD_GATEWAY, "{s}");
    assert!(html.contains("id=\"again-token-error\""), "{html}");
    assert!(
        html.contains(&format!("value=\"{used}\"")),
        "typed value kept"
    );
    let (_, now) = pair.sat_api.get("/api/v1/accounts/Acme/upstream").await;
    assert_eq!(now["state"], "registered", "{now}");
    assert_eq!(now["mode"], "connected", "{now}");
    assert_eq!(now["upstream_authority_id"], authority, "{now}");

    // An address that does not answer: the same.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = format!("https://127.0.0.1:{refused}");
    let fresh = pair.satellite_token().await;
    let (s, html, _) = session
        .submit(
            page,
            "/accounts/Acme/sync/register",
            &[("mode", "connected"), ("url", &dead), ("token", &fresh)],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{html}");
    assert!(html.contains("id=\"again-problem\""), "{html}");
    assert!(html.contains("Cannot reach"), "{html}");
    let (_, now) = pair.sat_api.get("/api/v1/accounts/Acme/upstream").await;
    assert_eq!(now["state"], "registered", "{now}");
    assert_eq!(now["upstream_authority_id"], authority, "{now}");
    let sequence = now["last_sequence"].as_i64().unwrap_or(0);

    // A later sync still works over the registration in place.
    let (s, html, to) = session.submit(page, "/accounts/Acme/sync/now", &[]).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
    let (_, html) = session.page(&to.unwrap()).await;
    assert!(html.contains("class=\"flash\""), "{html}");
    let (_, after) = pair.sat_api.get("/api/v1/accounts/Acme/upstream").await;
    assert!(
        after["last_sequence"].as_i64().unwrap_or(0) > sequence,
        "synced: {after}"
    );
}

/// Several bad fields in one submission: every error shows next to its field at once, what
/// was typed stays, and nothing is made.
#[tokio::test]
async fn a_form_with_several_bad_fields_shows_every_error_at_once() {
    let l = Licensed::start().await;
    let session = l.server.session("system-admin", None).await;
    let long = "d".repeat(600);

    let va_page = "/accounts/Acme/virtual-accounts/Lab";
    let (s, html, _) = session
        .submit(
            va_page,
            &format!("{va_page}/tokens"),
            &[
                ("description", &long),
                ("expires_in_days", "0"),
                ("max_uses", "many"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    for id in [
        "token-description-error",
        "token-days-error",
        "token-max-uses-error",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}: {html}");
    }
    assert!(html.contains("value=\"many\""), "typed value kept");
    let (_, tokens) = l.api.get(&format!("{VA}/tokens")).await;
    assert_eq!(count(&tokens), 0, "{tokens}");

    l.perpetual("ess", 5).await;
    l.api.create_va("Acme", "Edge").await;
    let (s, html, _) = session
        .submit(
            va_page,
            &format!("{va_page}/licenses/transfer"),
            &[("tag", ""), ("quantity", "two"), ("to_virtual_account", "")],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("Choose the license to move."), "{html}");
    assert!(html.contains("id=\"transfer-quantity-error\""), "{html}");
    assert!(html.contains("Choose the virtual account"), "{html}");

    let (s, html, _) = session
        .submit(va_page, va_page, &[("name", " "), ("description", &long)])
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("Name is required."), "{html}");
    assert!(html.contains("Description is at most"), "{html}");

    let (s, html, _) = session
        .submit(
            "/accounts",
            "/accounts",
            &[("name", ""), ("description", &long)],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"account-name-error\""), "{html}");
    assert!(html.contains("Description is at most"), "{html}");

    let (s, html, _) = session
        .submit(
            "/accounts/Acme",
            "/accounts/Acme/virtual-accounts",
            &[("name", ""), ("description", &long)],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"va-name-error\""), "{html}");
    assert!(html.contains("Description is at most"), "{html}");

    let (s, html, _) = session
        .submit(
            "/users",
            "/users",
            &[
                ("username", "Not Valid!"),
                ("role", "viewer"),
                ("account", ""),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("Username is 1-64"), "{html}");
    assert!(html.contains("Role viewer needs an account."), "{html}");
    assert!(html.contains("value=\"Not Valid!\""), "{html}");

    let (_, before) = l.api.get("/api/v1/api-clients").await;
    let (s, html, _) = session
        .submit(
            "/api-clients",
            "/api-clients",
            &[("name", ""), ("role", "operator"), ("account", "Acme")],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("Name is required."), "{html}");
    assert!(
        html.contains("Role operator is not scoped to an account."),
        "{html}"
    );
    let (_, after) = l.api.get("/api/v1/api-clients").await;
    assert_eq!(count(&after), count(&before));

    let (s, html, _) = session
        .submit(
            "/sync",
            "/sync/satellite-tokens",
            &[
                ("account", "Acme"),
                ("description", &long),
                ("expires_in_days", "999"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains("id=\"satellite-token-description-error\""),
        "{html}"
    );
    assert!(html.contains("id=\"satellite-token-days-error\""), "{html}");
    assert!(html.contains("value=\"999\""), "typed value kept");

    let (s, html, _) = session
        .submit(
            "/accounts/Acme/notifications",
            "/accounts/Acme/notifications",
            &[
                ("emails", "not an address"),
                ("webhook_url", "ftp://x"),
                ("kinds", "no_such_kind"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("is not an email address"), "{html}");
    assert!(html.contains("is not an http(s) URL"), "{html}");
    assert_eq!(html.matches("class=\"field-error\"").count(), 3, "{html}");
    assert!(html.contains("not an address"), "typed value kept");
}
